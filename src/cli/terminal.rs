//! Text for a person's terminal. Agents and MCP clients write much of what the CLI prints (a
//! request's reason and command, a client's name), so every control character is shown rather
//! than obeyed: an ANSI escape cannot clear the screen, print a fake "All clear" on a line of its
//! own, or set the window title, and bidi overrides cannot reorder what is read.

/// `text` with control, bidi, invisible and line-separating characters written as escapes
/// (`\x1b`, `\n`, `\u{202e}`).
pub fn visible(text: &str) -> String {
    crate::display::visible(text, usize::MAX)
}

/// `println!` for lines that carry text from agents or clients.
macro_rules! say {
    ($($arg:tt)*) => {
        println!("{}", $crate::cli::terminal::visible(&format!($($arg)*)))
    };
}

/// `eprintln!` for the same.
macro_rules! esay {
    ($($arg:tt)*) => {
        eprintln!("{}", $crate::cli::terminal::visible(&format!($($arg)*)))
    };
}

pub(crate) use {esay, say};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_bidi_characters_are_shown_not_obeyed() {
        assert_eq!(visible("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(visible("x\nAll clear"), "x\\nAll clear");
        assert_eq!(visible("\x1b]0;title\x07"), "\\x1b]0;title\\x07");
        assert_eq!(visible("rm \u{202e}fdp.exe"), "rm \\u{202e}fdp.exe");
        assert_eq!(visible("a\u{2028}b\u{200b}c"), "a\\u{2028}b\\u{200b}c");
        assert_eq!(visible("plain — ünïcode ✓"), "plain — ünïcode ✓");
    }
}
