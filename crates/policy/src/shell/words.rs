//! Reading words as bash does: which expansions make a word unknowable, the code hidden in
//! text the parser left whole, ANSI-C quoting.

use brush_parser::ast::CompoundCommand;
use brush_parser::word::{Parameter, ParameterExpr};

/// `$x`, `${x}`, `$1`, `$@`: a value and nothing more.
pub(super) fn plain_parameter(expr: &ParameterExpr) -> bool {
    match expr {
        ParameterExpr::Parameter {
            parameter,
            indirect: false,
        } => !matches!(parameter, Parameter::NamedWithIndex { .. }),
        _ => false,
    }
}

/// What bash expands in unquoted text: globs, braces, `$[…]`.
pub(super) fn unquoted_expansion(s: &str) -> Option<String> {
    if s.contains("$[") {
        return Some("arithmetic `$[…]` evaluates names and subscripts".into());
    }
    if s.contains(['*', '?', '[']) {
        return Some(format!("`{s}` is a pattern bash expands to file names"));
    }
    if let Some(open) = s.find('{') {
        let rest = &s[open..];
        if rest.contains('}') && (rest.contains(',') || rest.contains("..")) {
            return Some(format!("`{s}` is a brace expansion"));
        }
    }
    None
}

/// Only digits, operators and spaces: nothing is looked up.
pub(super) fn numeric(expr: &str) -> bool {
    expr.chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_whitespace() || "+-*/%()<>=!&|^~?:,".contains(c))
}

/// `name[…]`: a name whose subscript a builtin evaluates.
pub(super) fn subscripted(arg: &str) -> bool {
    let name_end = arg
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(arg.len());
    name_end > 0 && arg[name_end..].starts_with('[')
}

/// The code inside every `$(…)` and backtick pair found by scanning text that the parser left
/// whole (arithmetic, subscripts, parameter operators). Over-reporting is safe: it only adds
/// parts for ask and deny rules to see.
pub(super) fn hidden_substitutions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'$' if bytes.get(i + 1) == Some(&b'(') && bytes.get(i + 2) != Some(&b'(') => {
                let start = i + 2;
                let mut level = 1;
                let mut j = start;
                while j < bytes.len() && level > 0 {
                    match bytes[j] {
                        b'(' => level += 1,
                        b')' => level -= 1,
                        _ => {}
                    }
                    j += 1;
                }
                let end = if level == 0 { j - 1 } else { j };
                if let Some(code) = text.get(start..end) {
                    out.push(code.to_owned());
                }
                i = start;
            }
            b'`' => {
                let start = i + 1;
                let end = text[start..].find('`').map_or(text.len(), |e| start + e);
                if let Some(code) = text.get(start..end) {
                    out.push(code.to_owned());
                }
                i = end + 1;
            }
            _ => i += 1,
        }
    }
    out
}

/// Decodes the inside of `$'…'` as bash does.
pub(super) fn ansi_c(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    let digits = |chars: &mut std::iter::Peekable<std::str::Chars<'_>>, radix: u32, max: usize| {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match chars.peek().and_then(|c| c.to_digit(radix)) {
                Some(d) => {
                    v = v * radix + d;
                    chars.next();
                    n += 1;
                }
                None => break,
            }
        }
        (v, n)
    };
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let Some(e) = chars.next() else {
            out.push('\\');
            break;
        };
        let ch = match e {
            'a' => Some('\x07'),
            'b' => Some('\x08'),
            'e' | 'E' => Some('\x1b'),
            'f' => Some('\x0c'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\x0b'),
            '\\' | '\'' | '"' | '?' => Some(e),
            '0'..='7' => {
                let mut v = e.to_digit(8).unwrap_or(0);
                let (rest, n) = digits(&mut chars, 8, 2);
                if n > 0 {
                    v = v * 8u32.pow(n as u32) + rest;
                }
                char::from_u32(v & 0xff)
            }
            'x' => {
                let (v, n) = digits(&mut chars, 16, 2);
                if n == 0 { None } else { char::from_u32(v) }
            }
            'u' => {
                let (v, n) = digits(&mut chars, 16, 4);
                if n == 0 { None } else { char::from_u32(v) }
            }
            'U' => {
                let (v, n) = digits(&mut chars, 16, 8);
                if n == 0 { None } else { char::from_u32(v) }
            }
            'c' => chars
                .next()
                .map(|c| char::from_u32(u32::from(c) & 0x1f).unwrap_or(c)),
            _ => None,
        };
        match ch {
            Some(c) => out.push(c),
            None => {
                out.push('\\');
                out.push(e);
            }
        }
    }
    out
}

pub(super) fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

pub(super) fn compound_name(c: &CompoundCommand) -> &'static str {
    match c {
        CompoundCommand::BraceGroup(_) => "{ … }",
        CompoundCommand::Subshell(_) => "( … )",
        CompoundCommand::ForClause(_) | CompoundCommand::ArithmeticForClause(_) => "for …",
        CompoundCommand::CaseClause(_) => "case …",
        CompoundCommand::IfClause(_) => "if …",
        CompoundCommand::WhileClause(_) => "while …",
        CompoundCommand::UntilClause(_) => "until …",
        CompoundCommand::Coprocess(_) => "coproc …",
        CompoundCommand::Arithmetic(_) => "(( … ))",
    }
}
