//! Matching a tool call's arguments: `[rules.input]` maps a top-level key or a JSON pointer to a
//! glob. The caller hands the arguments in already normalised (every path-like string resolved as
//! a file path: `~`, `..`, symlinks), with the home directory so that `~/…` globs can be written.
//!
//! A matcher on an argument that is an array matches when every element matches (for an `allow`
//! rule) or when any element matches (for `ask` and `deny`): one element outside the allowed tree
//! is enough to keep a person in the loop. A missing argument, an object or `null` never matches.

use globset::GlobMatcher;
use serde_json::Value;

use crate::rule::{Effect, Kind, glob};

/// Most matchers one rule may have.
pub const MAX_MATCHERS: usize = 16;

/// The hints a tool's server may give about it (MCP tool annotations), as rules name them.
pub const HINTS: [&str; 4] = ["read_only", "destructive", "idempotent", "open_world"];

/// A tool call's arguments as the policy sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// The arguments, path-like strings resolved.
    pub value: Value,
    /// The home directory, for `~/…` globs.
    pub home: Option<String>,
    /// What the tool's server says of the tool (its own claim, not verified).
    pub hints: std::collections::BTreeMap<String, bool>,
}

/// Checks a rule's `annotations`: only known hints.
pub(crate) fn check_hints(hints: &std::collections::BTreeMap<String, bool>) -> Result<(), String> {
    match hints.keys().find(|k| !HINTS.contains(&k.as_str())) {
        Some(bad) => Err(format!(
            "unknown hint `{bad}`; hints are: {}",
            HINTS.join(", ")
        )),
        None if hints.is_empty() => Err("list at least one hint or leave it out".into()),
        None => Ok(()),
    }
}

/// Whether every hint a rule names is what the server said (a hint it did not give never
/// matches).
pub(crate) fn hints_match(
    wanted: &std::collections::BTreeMap<String, bool>,
    input: &Input,
) -> bool {
    wanted.iter().all(|(k, v)| input.hints.get(k) == Some(v))
}

/// One compiled `[rules.input]` entry.
#[derive(Debug, Clone)]
pub(crate) struct Matcher {
    /// As written (for explanations).
    pub key: String,
    /// As a JSON pointer.
    pointer: String,
    glob: GlobMatcher,
    /// The glob starts with `~`: the value is matched with the home directory written as `~`.
    home_relative: bool,
}

/// Compiles a rule's input matchers.
pub(crate) fn compile(entries: &[(String, String)]) -> Result<Vec<Matcher>, String> {
    if entries.len() > MAX_MATCHERS {
        return Err(format!("at most {MAX_MATCHERS} argument matchers"));
    }
    entries
        .iter()
        .map(|(key, pattern)| {
            if key.is_empty() {
                return Err("an argument name cannot be empty".to_owned());
            }
            let pointer = if key.starts_with('/') {
                key.clone()
            } else {
                format!("/{}", key.replace('~', "~0").replace('/', "~1"))
            };
            let glob = glob(Kind::File, pattern)
                .map_err(|e| format!("`{key}`: {e}"))?
                .compile_matcher();
            Ok(Matcher {
                key: key.clone(),
                pointer,
                glob,
                home_relative: pattern.starts_with('~'),
            })
        })
        .collect()
}

impl Matcher {
    fn scalar(&self, value: &Value, home: Option<&str>) -> bool {
        let text = match value {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            _ => return false,
        };
        if self.glob.is_match(&text) {
            return true;
        }
        // `~/src/**` against `/home/me/src/x`: the value with its home prefix written as `~`.
        match (self.home_relative, home) {
            (true, Some(home)) if !home.is_empty() => {
                let home = home.trim_end_matches('/');
                match text.strip_prefix(home) {
                    Some("") => self.glob.is_match("~"),
                    Some(rest) if rest.starts_with('/') => self.glob.is_match(format!("~{rest}")),
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// Whether the argument this matcher names matches, for a rule with `effect`.
    pub fn matches(&self, input: &Input, effect: Effect) -> bool {
        let home = input.home.as_deref();
        match input.value.pointer(&self.pointer) {
            Some(Value::Array(items)) if !items.is_empty() => {
                if effect == Effect::Allow {
                    items.iter().all(|v| self.scalar(v, home))
                } else {
                    items.iter().any(|v| self.scalar(v, home))
                }
            }
            Some(v) => self.scalar(v, home),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(key: &str, pattern: &str) -> Matcher {
        compile(&[(key.into(), pattern.into())]).unwrap().remove(0)
    }

    fn input(v: Value) -> Input {
        Input {
            value: v,
            home: Some("/home/me".into()),
            hints: Default::default(),
        }
    }

    #[test]
    fn keys_pointers_home_and_arrays() {
        let m = one("path", "~/src/**");
        assert!(m.matches(
            &input(json!({"path": "/home/me/src/a/b.rs"})),
            Effect::Allow
        ));
        assert!(!m.matches(&input(json!({"path": "/home/me/.ssh/id"})), Effect::Allow));
        assert!(!m.matches(&input(json!({"path": "/home/meow/src/x"})), Effect::Allow));
        assert!(!m.matches(&input(json!({"other": "/home/me/src/x"})), Effect::Allow));
        assert!(!m.matches(&input(json!({"path": {"x": 1}})), Effect::Allow));
        let nested = one("/options/url", "https://api.github.com/**");
        assert!(nested.matches(
            &input(json!({"options": {"url": "https://api.github.com/repos/x"}})),
            Effect::Allow
        ));
        let paths = one("paths", "/tmp/**");
        let mixed = input(json!({"paths": ["/tmp/a", "/etc/passwd"]}));
        assert!(
            !paths.matches(&mixed, Effect::Allow),
            "allow needs every element"
        );
        assert!(paths.matches(&mixed, Effect::Deny), "deny needs one");
        assert!(one("count", "3").matches(&input(json!({"count": 3})), Effect::Allow));
        assert!(one("a/b", "x").matches(&input(json!({"a/b": "x"})), Effect::Allow));
        assert!(compile(&[("".into(), "x".into())]).is_err());
        assert!(compile(&[("k".into(), "a[".into())]).is_err());
    }
}
