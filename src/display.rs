//! Characters a person cannot see: control characters, bidi overrides and isolates, zero-width
//! characters and line/paragraph separators. An agent can use them to make what a person reads
//! differ from what runs (`rm \u{202e}…` reversed on screen, an ANSI escape that clears the
//! terminal), so the CLI and the inbox show each one as a visible escape.

/// Whether `c` changes how text around it looks (or looks like nothing at all).
pub fn hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061c}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2069}'
                | '\u{feff}'
        )
}

/// `c` written as an escape a person can read: `\n`, `\x1b`, `\u{202e}`.
pub fn escape(c: char) -> String {
    match c {
        '\n' => "\\n".into(),
        '\r' => "\\r".into(),
        '\t' => "\\t".into(),
        c if c.is_control() && u32::from(c) < 0x100 => format!("\\x{:02x}", u32::from(c)),
        c => format!("\\u{{{:04x}}}", u32::from(c)),
    }
}

/// `text` with every hidden character escaped, cut to `max` characters (an ellipsis marks the
/// cut): safe to put in a message that a person or a model reads.
pub fn visible(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if hidden(c) {
            out.push_str(&escape(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invisible_and_control_characters_are_hidden_and_escape_visibly() {
        for c in [
            '\x1b', '\n', '\u{202e}', '\u{2066}', '\u{200b}', '\u{2028}', '\u{feff}', '\u{85}',
        ] {
            assert!(hidden(c), "{c:?}");
        }
        for c in ['a', 'é', '✓', ' ', '—'] {
            assert!(!hidden(c), "{c:?}");
        }
        assert_eq!(escape('\x1b'), "\\x1b");
        assert_eq!(escape('\u{202e}'), "\\u{202e}");
        assert_eq!(escape('\n'), "\\n");
    }
}
