//! Rules: what a policy says about a kind of action whose target matches a glob.
//!
//! A rule is parsed once ([`Rule::new`]) into a compiled form; invalid globs, filters or values are
//! refused with a reason that names the field.

use std::fmt;
use std::str::FromStr;

use globset::{Glob, GlobBuilder, GlobMatcher};
use serde::{Deserialize, Serialize};

/// What a rule does to a matching request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Effect {
    /// Let it happen.
    Allow,
    /// Hold it for a person.
    Ask,
    /// Refuse it.
    Deny,
}

impl Effect {
    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Effect::Allow => "allow",
            Effect::Ask => "ask",
            Effect::Deny => "deny",
        }
    }

    /// Precedence, order-independent: deny > ask > allow.
    pub const fn rank(self) -> u8 {
        match self {
            Effect::Allow => 0,
            Effect::Ask => 1,
            Effect::Deny => 2,
        }
    }

    /// The stronger of two effects.
    pub fn max(self, other: Effect) -> Effect {
        if other.rank() > self.rank() {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What kind of action a request or rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// File operations; the pattern is a path glob.
    File,
    /// Shell commands; the pattern is a command glob over each normalised part.
    Shell,
    /// Tool calls (e.g. MCP `server__tool`); the pattern is a name glob.
    Tool,
    /// Network access; the pattern is a glob over `host/path` for https, `scheme://host/path`
    /// for any other scheme (an https rule never covers plain http).
    Network,
    /// Access to a directory outside the agent's workspace; the pattern is a path glob.
    Directory,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::File,
        Kind::Shell,
        Kind::Tool,
        Kind::Network,
        Kind::Directory,
    ];

    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::File => "file",
            Kind::Shell => "shell",
            Kind::Tool => "tool",
            Kind::Network => "network",
            Kind::Directory => "directory",
        }
    }

    /// Whether `*` stops at `/` in this kind's patterns (paths, URLs) or not (commands, names).
    pub const fn separator_is_literal(self) -> bool {
        matches!(self, Kind::File | Kind::Network | Kind::Directory)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// File operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileOp {
    /// Read a file.
    Read,
    /// Create a new file.
    Create,
    /// Change part of a file.
    Modify,
    /// Replace a file's contents.
    Overwrite,
    /// Delete a file.
    Delete,
    /// Rename a file.
    Rename,
    /// Move a file.
    Move,
}

impl FileOp {
    /// Every operation.
    pub const ALL: [FileOp; 7] = [
        FileOp::Read,
        FileOp::Create,
        FileOp::Modify,
        FileOp::Overwrite,
        FileOp::Delete,
        FileOp::Rename,
        FileOp::Move,
    ];

    /// Wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            FileOp::Read => "read",
            FileOp::Create => "create",
            FileOp::Modify => "modify",
            FileOp::Overwrite => "overwrite",
            FileOp::Delete => "delete",
            FileOp::Rename => "rename",
            FileOp::Move => "move",
        }
    }
}

impl FromStr for FileOp {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        FileOp::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| {
                let valid: Vec<&str> = FileOp::ALL.iter().map(|o| o.as_str()).collect();
                format!(
                    "unknown operation `{s}`; valid operations are: {}",
                    valid.join(", ")
                )
            })
    }
}

/// Where a rule came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase")]
pub enum Origin {
    /// `[[rules]]` in the config file, at this position (1-based).
    Config {
        /// Position in the file.
        index: usize,
    },
    /// Added through the API or CLI by an admin.
    Api {
        /// The token's name.
        by: String,
        /// When (Unix ms).
        at: i64,
    },
    /// Saved from a person's reply.
    Remembered {
        /// The request that was answered.
        request_id: String,
        /// The approving token's name.
        approver: String,
        /// When (Unix ms).
        at: i64,
    },
}

/// A rule as written: every field but `action`, `kind` and `pattern` optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Stable id; assigned when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// allow, ask or deny.
    pub action: Effect,
    /// The kind of action.
    pub kind: Kind,
    /// Glob over the normalised target.
    pub pattern: String,
    /// Only for this agent name (glob).
    #[serde(default)]
    pub agent: Option<String>,
    /// Only for requests from this workspace (path glob).
    #[serde(default)]
    pub workspace: Option<String>,
    /// Only for this session id (remembered "for the session" decisions).
    #[serde(default)]
    pub session: Option<String>,
    /// Only for requests made by this verified credential (a `tok_…` id or OAuth client id):
    /// remembered rules are bound to whoever asked, not only to the names it declared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requester: Option<String>,
    /// Only these file operations (file rules).
    #[serde(default)]
    pub operations: Option<Vec<FileOp>>,
    /// For `ask`: seconds to wait for a person (0 = indefinitely).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// For `ask`: distinct approvals needed before allowing.
    #[serde(default)]
    pub approvals: Option<u32>,
    /// Unix ms after which the rule no longer applies.
    #[serde(default)]
    pub expires_at: Option<i64>,
    /// Only for tool calls whose arguments match: argument name (or JSON pointer) → glob. Every
    /// matcher must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<std::collections::BTreeMap<String, String>>,
    /// Only for tools whose server describes them so (`destructive = true`, `read_only`,
    /// `idempotent`, `open_world`): the server's own claim, so best used to ask or deny.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<std::collections::BTreeMap<String, bool>>,
}

impl RuleSpec {
    /// A rule with no filters, no timeout, no expiry: the rest is set with struct update syntax.
    pub fn new(action: Effect, kind: Kind, pattern: impl Into<String>) -> RuleSpec {
        RuleSpec {
            id: None,
            action,
            kind,
            pattern: pattern.into(),
            agent: None,
            workspace: None,
            session: None,
            requester: None,
            operations: None,
            timeout: None,
            approvals: None,
            expires_at: None,
            input: None,
            annotations: None,
        }
    }
}

/// Why a rule could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RuleError {
    /// The offending field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: String,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Its id.
    pub id: String,
    /// What it says.
    pub spec: RuleSpec,
    /// Where it came from.
    pub origin: Origin,
    pub(crate) agent: Option<GlobMatcher>,
    pub(crate) workspace: Option<GlobMatcher>,
    pub(crate) input: Vec<crate::input::Matcher>,
}

/// Longest accepted pattern, in bytes.
pub const MAX_PATTERN: usize = 4096;
/// Most approvals a rule can require.
pub const MAX_APPROVALS: u32 = 16;

impl Rule {
    /// Compiles a rule; `id` is used when the spec has none.
    pub fn new(mut spec: RuleSpec, id: String, origin: Origin) -> Result<Rule, RuleError> {
        let err = |field, reason: String| RuleError { field, reason };
        if spec.pattern.trim().is_empty() {
            return Err(err("pattern", "cannot be empty".into()));
        }
        if spec.pattern.len() > MAX_PATTERN {
            return Err(err("pattern", format!("longer than {MAX_PATTERN} bytes")));
        }
        glob(spec.kind, &spec.pattern).map_err(|e| err("pattern", e))?;
        let agent = spec
            .agent
            .as_deref()
            .map(|a| glob(Kind::Tool, a))
            .transpose()
            .map_err(|e| err("agent", e))?
            .map(|g| g.compile_matcher());
        let workspace = spec
            .workspace
            .as_deref()
            .map(|w| glob(Kind::File, w))
            .transpose()
            .map_err(|e| err("workspace", e))?
            .map(|g| g.compile_matcher());
        let input = match &spec.input {
            Some(entries) if entries.is_empty() => {
                return Err(err(
                    "input",
                    "list at least one argument or leave it out".into(),
                ));
            }
            Some(_) if spec.kind != Kind::Tool => {
                return Err(err("input", "only tool rules match arguments".into()));
            }
            Some(entries) => {
                let entries: Vec<(String, String)> = entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                crate::input::compile(&entries).map_err(|e| err("input", e))?
            }
            None => Vec::new(),
        };
        if let Some(hints) = &spec.annotations {
            if spec.kind != Kind::Tool {
                return Err(err(
                    "annotations",
                    "only tool rules match annotations".into(),
                ));
            }
            crate::input::check_hints(hints).map_err(|e| err("annotations", e))?;
        }
        if spec.operations.is_some() && spec.kind != Kind::File {
            return Err(err("operations", "only file rules have operations".into()));
        }
        if spec.operations.as_ref().is_some_and(Vec::is_empty) {
            return Err(err(
                "operations",
                "list at least one operation or leave it out".into(),
            ));
        }
        match spec.approvals {
            Some(0) => return Err(err("approvals", "must be at least 1".into())),
            Some(n) if n > MAX_APPROVALS => {
                return Err(err("approvals", format!("at most {MAX_APPROVALS}")));
            }
            Some(_) if spec.action != Effect::Ask => {
                return Err(err(
                    "approvals",
                    "only `ask` rules wait for approvals".into(),
                ));
            }
            _ => {}
        }
        if spec.timeout.is_some() && spec.action != Effect::Ask {
            return Err(err(
                "timeout",
                "only `ask` rules wait, so only they have a timeout".into(),
            ));
        }
        let id = spec.id.clone().unwrap_or(id);
        if id.is_empty()
            || id.len() > 64
            || !id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c))
        {
            return Err(err(
                "id",
                format!("invalid rule id `{id}`: letters, digits, `-_.:`, at most 64"),
            ));
        }
        spec.id = Some(id.clone());
        Ok(Rule {
            id,
            spec,
            origin,
            agent,
            workspace,
            input,
        })
    }

    /// Whether the rule has expired at `now` (Unix ms).
    pub fn expired(&self, now: i64) -> bool {
        self.spec.expires_at.is_some_and(|at| at <= now)
    }
}

/// Compiles a pattern the way rules of `kind` use it.
pub(crate) fn glob(kind: Kind, pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(kind.separator_is_literal())
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map_err(|e| format!("invalid glob `{pattern}`: {}", e.kind()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(action: Effect, kind: Kind, pattern: &str) -> RuleSpec {
        RuleSpec::new(action, kind, pattern)
    }

    #[test]
    fn invalid_rules_name_the_field() {
        let origin = Origin::Config { index: 1 };
        let bad = |s: RuleSpec| Rule::new(s, "r".into(), origin.clone()).unwrap_err().field;
        assert_eq!(bad(spec(Effect::Allow, Kind::Shell, "git [")), "pattern");
        assert_eq!(bad(spec(Effect::Allow, Kind::Shell, "  ")), "pattern");
        assert_eq!(
            bad(RuleSpec {
                approvals: Some(2),
                ..spec(Effect::Allow, Kind::Shell, "x")
            }),
            "approvals"
        );
        assert_eq!(
            bad(RuleSpec {
                approvals: Some(0),
                ..spec(Effect::Ask, Kind::Shell, "x")
            }),
            "approvals"
        );
        assert_eq!(
            bad(RuleSpec {
                timeout: Some(5),
                ..spec(Effect::Deny, Kind::Shell, "x")
            }),
            "timeout"
        );
        assert_eq!(
            bad(RuleSpec {
                operations: Some(vec![FileOp::Read]),
                ..spec(Effect::Allow, Kind::Shell, "x")
            }),
            "operations"
        );
        assert_eq!(
            bad(RuleSpec {
                agent: Some("a[".into()),
                ..spec(Effect::Allow, Kind::Shell, "x")
            }),
            "agent"
        );
        assert_eq!(
            bad(RuleSpec {
                id: Some("has space".into()),
                ..spec(Effect::Allow, Kind::Shell, "x")
            }),
            "id"
        );
        let ok = Rule::new(
            spec(Effect::Ask, Kind::File, "/home/*/src/**"),
            "r1".into(),
            origin,
        )
        .unwrap();
        assert_eq!(ok.id, "r1");
    }

    #[test]
    fn effects_rank_deny_over_ask_over_allow() {
        assert_eq!(Effect::Allow.max(Effect::Ask), Effect::Ask);
        assert_eq!(Effect::Deny.max(Effect::Ask), Effect::Deny);
        assert_eq!(Effect::Allow.max(Effect::Allow), Effect::Allow);
    }
}
