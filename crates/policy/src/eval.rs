//! Deciding: a [`Subject`] (a normalised request) against a [`RuleSet`].
//!
//! Precedence is order-independent: for each target part the strongest matching effect wins
//! (deny > ask > allow), no match means ask, and the request's effect is the strongest over its
//! parts. A remembered allow therefore never outranks a configured ask or deny. Ties between rules
//! of the same effect are broken by rule id, so the reported rule does not depend on rule order.

use globset::{GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::rule::{Effect, FileOp, Kind, Rule, RuleError, RuleSpec, glob};

/// A request, normalised by the caller (paths absolute and resolved, commands split).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// What kind of action.
    pub kind: Kind,
    /// The normalised targets: one per path, command part, tool name or URL.
    pub targets: Vec<Target>,
    /// The file operation, for file requests.
    pub operation: Option<FileOp>,
    /// The asking agent's name.
    pub agent: Option<String>,
    /// The agent's workspace (absolute path).
    pub workspace: Option<String>,
    /// The agent's session id.
    pub session: Option<String>,
    /// The verified credential that asked (a token, an OAuth client, a bridge), as opposed to
    /// the names it declared about itself. `None` when nobody asks (`policy explain`).
    pub requester: Option<String>,
    /// A tool call's arguments, for rules with `[rules.input]`.
    pub input: Option<crate::input::Input>,
}

/// One thing a request touches, as the policy matches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TargetRepr")]
pub struct Target {
    /// What every rule matches (allow rules only this).
    pub text: String,
    /// Further forms only ask and deny rules match (a command by basename, the command a
    /// wrapper runs at each place it could start).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// Why the normaliser cannot know what this target really is; an allow never covers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

impl Target {
    /// A target known completely.
    pub fn new(text: impl Into<String>) -> Target {
        Target {
            text: text.into(),
            also: Vec::new(),
            opaque: None,
        }
    }

    /// A target no allow rule covers, and why.
    pub fn opaque(text: impl Into<String>, why: impl Into<String>) -> Target {
        Target {
            opaque: Some(why.into()),
            ..Target::new(text)
        }
    }
}

impl From<crate::shell::Part> for Target {
    fn from(p: crate::shell::Part) -> Target {
        Target {
            text: p.text,
            also: p.also,
            opaque: p.opaque,
        }
    }
}

/// Stored targets are objects; rows written before opaque targets existed hold plain strings.
#[derive(Deserialize)]
#[serde(untagged)]
enum TargetRepr {
    Plain(String),
    Full {
        text: String,
        #[serde(default)]
        also: Vec<String>,
        #[serde(default)]
        opaque: Option<String>,
    },
}

impl From<TargetRepr> for Target {
    fn from(r: TargetRepr) -> Target {
        match r {
            TargetRepr::Plain(text) => Target::new(text),
            TargetRepr::Full { text, also, opaque } => Target { text, also, opaque },
        }
    }
}

/// One rule that matched one target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleMatch {
    /// The rule.
    pub rule: String,
    /// What it says.
    pub action: Effect,
    /// Its pattern.
    pub pattern: String,
    /// The arguments its `[rules.input]` matched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<String>,
}

/// The decision for one target part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartDecision {
    /// The normalised target.
    pub target: String,
    /// Its effect.
    pub effect: Effect,
    /// The rule that decided it; `None` when nothing matched (ask).
    pub rule: Option<String>,
    /// Every rule that matched, sorted by id.
    pub matched: Vec<RuleMatch>,
    /// Why no allow rule can cover this part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opaque: Option<String>,
}

/// What the policy says about a request, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    /// allow, ask or deny.
    pub effect: Effect,
    /// The rule that decided; `None` when the default (ask) did.
    pub rule: Option<String>,
    /// Per target part.
    pub parts: Vec<PartDecision>,
    /// For ask: the shortest timeout among matching ask rules (seconds; 0 = indefinitely).
    pub timeout: Option<u64>,
    /// For ask: distinct approvals needed (the most any matching ask rule requires).
    pub approvals: u32,
    /// A sentence saying why.
    pub reason: String,
}

struct KindIndex {
    set: GlobSet,
    rules: Vec<usize>,
}

/// A compiled set of rules, indexed by kind for matching in one pass per target.
pub struct RuleSet {
    rules: Vec<Rule>,
    index: Vec<(Kind, KindIndex)>,
}

impl RuleSet {
    /// Indexes `rules`. Ids must be unique.
    pub fn new(rules: Vec<Rule>) -> Result<RuleSet, RuleError> {
        let mut seen = std::collections::HashSet::new();
        for r in &rules {
            if !seen.insert(r.id.as_str()) {
                return Err(RuleError {
                    field: "id",
                    reason: format!("duplicate rule id `{}`", r.id),
                });
            }
        }
        let mut index = Vec::new();
        for kind in Kind::ALL {
            let mut builder = GlobSetBuilder::new();
            let mut ids = Vec::new();
            for (i, rule) in rules
                .iter()
                .enumerate()
                .filter(|(_, r)| r.spec.kind == kind)
            {
                let g = glob(kind, &rule.spec.pattern).map_err(|reason| RuleError {
                    field: "pattern",
                    reason,
                })?;
                builder.add(g);
                ids.push(i);
            }
            let set = builder.build().map_err(|e| RuleError {
                field: "pattern",
                reason: e.to_string(),
            })?;
            index.push((kind, KindIndex { set, rules: ids }));
        }
        Ok(RuleSet { rules, index })
    }

    /// The rules, in the order given.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Decides `subject` at time `now` (Unix ms; expired rules are ignored).
    pub fn decide(&self, subject: &Subject, now: i64) -> Decision {
        let index = self
            .index
            .iter()
            .find(|(k, _)| *k == subject.kind)
            .map(|(_, i)| i);
        let mut parts = Vec::with_capacity(subject.targets.len());
        let mut timeout: Option<u64> = None;
        let mut approvals = 1;
        for target in &subject.targets {
            let mut matched: Vec<(&Rule, Effect)> = Vec::new();
            if let Some(index) = index {
                // A tool is also named as Claude Code names MCP tools: `mcp__server__tool`.
                let alias = (subject.kind == Kind::Tool).then(|| format!("mcp__{}", target.text));
                let forms = std::iter::once((&target.text, true))
                    .chain(alias.iter().map(|a| (a, true)))
                    .chain(target.also.iter().map(|a| (a, false)));
                for (form, primary) in forms {
                    for hit in index.set.matches(form) {
                        let Some(rule) = index.rules.get(hit).and_then(|&i| self.rules.get(i))
                        else {
                            continue;
                        };
                        // An allow covers only what the normaliser understood completely, as
                        // written; ask and deny match every form the target could have.
                        let allow = rule.spec.action == Effect::Allow;
                        if allow && (!primary || target.opaque.is_some()) {
                            continue;
                        }
                        if applies(rule, subject, now)
                            && !matched.iter().any(|(r, _)| r.id == rule.id)
                        {
                            matched.push((rule, rule.spec.action));
                        }
                    }
                }
            }
            matched.sort_by(|a, b| a.0.id.cmp(&b.0.id));
            let winner = matched.iter().max_by(|a, b| {
                a.1.rank()
                    .cmp(&b.1.rank())
                    .then_with(|| b.0.id.cmp(&a.0.id))
            });
            let (effect, rule) = match winner {
                Some((r, e)) => (*e, Some(r.id.clone())),
                None => (Effect::Ask, None),
            };
            for (r, e) in &matched {
                if *e == Effect::Ask {
                    if let Some(t) = r.spec.timeout {
                        timeout = Some(shorter(timeout, t));
                    }
                    approvals = approvals.max(r.spec.approvals.unwrap_or(1));
                }
            }
            parts.push(PartDecision {
                target: target.text.clone(),
                opaque: target.opaque.clone(),
                effect,
                rule,
                matched: matched
                    .iter()
                    .map(|(r, e)| RuleMatch {
                        rule: r.id.clone(),
                        action: *e,
                        pattern: r.spec.pattern.clone(),
                        arguments: r.input.iter().map(|m| m.key.clone()).collect(),
                    })
                    .collect(),
            });
        }
        let effect = if parts.is_empty() {
            Effect::Ask
        } else {
            parts.iter().fold(Effect::Allow, |acc, p| acc.max(p.effect))
        };
        let deciding = parts.iter().find(|p| p.effect == effect);
        let rule = deciding.and_then(|p| p.rule.clone());
        let reason = match deciding {
            None => "nothing to match: ask".to_owned(),
            Some(p) => match (&p.rule, p.effect, &p.opaque) {
                (None, _, Some(why)) => format!(
                    "no rule can allow `{}` ({why}), so a person decides",
                    p.target
                ),
                (None, _, None) => {
                    format!("no rule matches `{}`, so a person decides", p.target)
                }
                (Some(id), Effect::Allow, _) if parts.len() > 1 => {
                    format!("every part is allowed (first by rule `{id}`)")
                }
                (Some(id), e, _) => {
                    let found = p.matched.iter().find(|m| &m.rule == id);
                    let pattern = found.map_or("", |m| m.pattern.as_str());
                    let arguments = match found.map(|m| m.arguments.join(", ")) {
                        Some(a) if !a.is_empty() => format!(" and its arguments ({a})"),
                        _ => String::new(),
                    };
                    format!(
                        "`{}` matches `{pattern}`{arguments} of rule `{id}`: {e}",
                        p.target
                    )
                }
            },
        };
        if effect != Effect::Ask {
            timeout = None;
            approvals = 1;
        }
        Decision {
            effect,
            rule,
            parts,
            timeout,
            approvals,
            reason,
        }
    }
}

/// 0 means "wait indefinitely", the longest wait of all.
fn shorter(current: Option<u64>, candidate: u64) -> u64 {
    match current {
        None => candidate,
        Some(0) => candidate,
        Some(c) if candidate == 0 => c,
        Some(c) => c.min(candidate),
    }
}

fn applies(rule: &Rule, subject: &Subject, now: i64) -> bool {
    let agent_ok = rule
        .agent
        .as_ref()
        .is_none_or(|g| subject.agent.as_deref().is_some_and(|a| g.is_match(a)));
    let workspace_ok = rule
        .workspace
        .as_ref()
        .is_none_or(|g| subject.workspace.as_deref().is_some_and(|w| g.is_match(w)));
    let session_ok = rule
        .spec
        .session
        .as_ref()
        .is_none_or(|s| subject.session.as_deref() == Some(s.as_str()));
    let requester_ok = rule
        .spec
        .requester
        .as_ref()
        .is_none_or(|r| subject.requester.as_deref() == Some(r.as_str()));
    let operation_ok = rule
        .spec
        .operations
        .as_ref()
        .is_none_or(|ops| subject.operation.is_some_and(|op| ops.contains(&op)));
    // Every argument matcher must match; a rule without matchers matches any arguments.
    let input_ok = rule.input.iter().all(|m| {
        subject
            .input
            .as_ref()
            .is_some_and(|input| m.matches(input, rule.spec.action))
    });
    let hints_ok = rule.spec.annotations.as_ref().is_none_or(|wanted| {
        subject
            .input
            .as_ref()
            .is_some_and(|input| crate::input::hints_match(wanted, input))
    });
    !rule.expired(now)
        && agent_ok
        && workspace_ok
        && session_ok
        && requester_ok
        && operation_ok
        && input_ok
        && hints_ok
}

/// The narrow rules that "always allow this" (or "for this session") would save: the command
/// prefix of each shell part, the exact paths, tool name or `host/path`, limited to this agent and
/// workspace (and session). Shown to the approver before saving.
pub fn narrow_rules(subject: &Subject, session_only: bool) -> Vec<RuleSpec> {
    // An opaque target cannot be allowed by any rule, so none is suggested for it.
    let known = subject
        .targets
        .iter()
        .filter(|t| t.opaque.is_none())
        .map(|t| t.text.as_str());
    let mut patterns: Vec<String> = match subject.kind {
        Kind::Shell => known.map(command_prefix).collect(),
        Kind::Directory => known
            .map(|t| format!("{}/**", escape(t.trim_end_matches('/'))))
            .collect(),
        _ => known.map(escape).collect(),
    };
    patterns.dedup();
    let input = subject.input.as_ref().and_then(exact_input);
    patterns
        .into_iter()
        .map(|pattern| RuleSpec {
            input: input.clone(),
            agent: subject.agent.as_ref().map(|a| escape(a)),
            workspace: subject.workspace.as_ref().map(|w| escape(w)),
            session: if session_only {
                subject.session.clone()
            } else {
                None
            },
            requester: subject.requester.clone(),
            operations: subject.operation.map(|op| vec![op]),
            ..RuleSpec::new(Effect::Allow, subject.kind, pattern)
        })
        .collect()
}

/// A tool call's arguments as exact matchers, so "always allow this" allows this call and not
/// every call of the tool: each top-level string, number or boolean as itself, each list of them
/// as the set of its elements. Nested objects are left out (the rule is wider there), and at most
/// [`crate::input::MAX_MATCHERS`] arguments are bound.
fn exact_input(input: &crate::input::Input) -> Option<std::collections::BTreeMap<String, String>> {
    use serde_json::Value;
    let scalar = |v: &Value| match v {
        Value::String(s) => Some(escape(s)),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    let map: std::collections::BTreeMap<String, String> = input
        .value
        .as_object()?
        .iter()
        .filter_map(|(k, v)| {
            let glob = match v {
                Value::Array(items) if !items.is_empty() => {
                    let each: Option<Vec<String>> = items.iter().map(scalar).collect();
                    let mut each = each?;
                    each.sort();
                    each.dedup();
                    // A one-element `{x}` is `x`; braces need no empty alternates.
                    if each.len() == 1 {
                        each.pop()?
                    } else {
                        format!("{{{}}}", each.join(","))
                    }
                }
                other => scalar(other)?,
            };
            Some((k.clone(), glob))
        })
        .take(crate::input::MAX_MATCHERS)
        .collect();
    (!map.is_empty()).then_some(map)
}

/// Whether `pattern` (a replier's edit of a suggested rule) covers nothing the suggested narrow
/// rules do not: equal to one of them, or, where a suggestion ends in "anything" (`{X,X *}` for
/// a command, `D/**` for a directory), a pattern whose literal start already lies inside it.
/// The caller also checks that the pattern matches every target of the request.
pub fn no_wider(pattern: &str, suggested: &[RuleSpec]) -> bool {
    let literal = literal_prefix(pattern);
    let exact = literal.len() == pattern.len();
    suggested.iter().any(|s| {
        if s.pattern == pattern {
            return true;
        }
        let any_after = s
            .pattern
            .strip_prefix('{')
            .and_then(|r| r.strip_suffix(" *}"))
            .and_then(|inner| inner.split_once(','))
            .filter(|(first, second)| first == second);
        if let Some((first, _)) = any_after {
            let command = literal_prefix(first);
            return literal.starts_with(&format!("{command} ")) || (exact && literal == command);
        }
        if let Some(dir) = s.pattern.strip_suffix("/**") {
            return literal.starts_with(&format!("{}/", literal_prefix(dir)));
        }
        false
    })
}

/// The text before the first unescaped glob metacharacter, unescaped.
fn literal_prefix(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => break,
            },
            '*' | '?' | '[' | '{' => return out,
            c => out.push(c),
        }
    }
    out
}

/// `git commit -m x` → `{git commit,git commit *}`: a command with a sub-command word keeps that
/// prefix; anything else (`rm -rf ~`, `ls`) is remembered exactly, never as "any `rm`".
fn command_prefix(part: &str) -> String {
    let words: Vec<&str> = part.split(' ').collect();
    let plain = |w: &str| {
        !w.is_empty()
            && !w.starts_with('-')
            && w.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
    };
    match words.as_slice() {
        [cmd, sub, _, ..] if plain(cmd) && plain(sub) => {
            let p = format!("{} {}", escape(cmd), escape(sub));
            format!("{{{p},{p} *}}")
        }
        _ => escape(part),
    }
}

/// Escapes glob metacharacters so the text matches only itself.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "*?[]{},\\!".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests;
