//! Validating and normalising a request before the policy sees it: required fields per kind,
//! fields that do not belong refused, sizes capped, paths made absolute and resolved as the
//! kernel will (`paths`), shell commands split into every part bash runs (`shell`), URLs read
//! the WHATWG way (`network`). Whatever cannot be known statically becomes an opaque target,
//! which no allow rule covers. This (through `paths`) is the broker's only filesystem access.

use std::path::{Path, PathBuf};

use agentgate_policy::{FileOp, Kind, Subject, Target, shell};

use super::paths;

use crate::api::NewPermission;

/// Largest `content_preview`, in bytes.
pub const MAX_PREVIEW: usize = 4 * 1024;
/// Largest `old_content`, in bytes.
pub const MAX_OLD_CONTENT: usize = 256 * 1024;
/// Largest shell command, in bytes.
pub const MAX_COMMAND: usize = 64 * 1024;
/// Most paths in one bulk file request.
pub const MAX_PATHS: usize = 1000;
/// Longest timeout a request may ask for: one week.
pub const MAX_TIMEOUT_SECS: u64 = 7 * 86_400;

/// A request the broker can store and the policy can decide.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The request with paths and names normalised.
    pub request: NewPermission,
    /// What the policy matches.
    pub subject: Subject,
    /// One line for people.
    pub summary: String,
}

/// A request that cannot be accepted: which field and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The offending field.
    pub field: &'static str,
    /// Why.
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> Invalid {
    Invalid {
        field,
        message: format!("{field}: {}", message.into()),
    }
}

/// Checks and normalises `req`; `home` expands `~` and `$HOME`.
pub fn normalize(mut req: NewPermission, home: Option<&Path>) -> Result<Normalized, Invalid> {
    let kinds: Vec<&str> = Kind::ALL.iter().map(|k| k.as_str()).collect();
    let kind = req.kind.ok_or_else(|| {
        invalid(
            "kind",
            format!("required; valid kinds are: {}", kinds.join(", ")),
        )
    })?;
    check_len("agent", req.agent.as_deref(), 256)?;
    check_len("session", req.session.as_deref(), 256)?;
    check_len("reason", req.reason.as_deref(), 4096)?;
    if req.timeout.is_some_and(|t| t > MAX_TIMEOUT_SECS) {
        return Err(invalid(
            "timeout",
            format!("at most {MAX_TIMEOUT_SECS} seconds (0 waits indefinitely)"),
        ));
    }
    if let Some(ws) = req.workspace.take() {
        req.workspace = Some(absolute("workspace", &ws, home)?);
    }
    let allowed: &[&str] = match kind {
        Kind::File => &[
            "operation",
            "path",
            "paths",
            "target_path",
            "content_preview",
            "old_content",
        ],
        Kind::Shell => &["command", "cwd"],
        Kind::Tool => &["name", "input", "hints"],
        Kind::Network => &["url", "method"],
        Kind::Directory => &["path"],
    };
    for (field, present) in [
        ("operation", req.operation.is_some()),
        ("path", req.path.is_some()),
        ("paths", req.paths.is_some()),
        ("target_path", req.target_path.is_some()),
        ("content_preview", req.content_preview.is_some()),
        ("old_content", req.old_content.is_some()),
        ("command", req.command.is_some()),
        ("cwd", req.cwd.is_some()),
        ("name", req.name.is_some()),
        ("input", req.input.is_some()),
        ("hints", req.hints.is_some()),
        ("url", req.url.is_some()),
        ("method", req.method.is_some()),
    ] {
        if present && !allowed.contains(&field) {
            return Err(invalid(
                field,
                format!(
                    "not a field of {kind} requests (they take: {})",
                    allowed.join(", ")
                ),
            ));
        }
    }
    let (targets, summary): (Vec<Target>, String) = match kind {
        Kind::File => {
            let ops: Vec<&str> = FileOp::ALL.iter().map(|o| o.as_str()).collect();
            let op = req.operation.ok_or_else(|| {
                invalid(
                    "operation",
                    format!(
                        "required for file requests; valid operations are: {}",
                        ops.join(", ")
                    ),
                )
            })?;
            let mut paths = match (req.path.take(), req.paths.take()) {
                (Some(p), None) => vec![p],
                (None, Some(ps)) if !ps.is_empty() && ps.len() <= MAX_PATHS => ps,
                (None, Some(_)) => {
                    return Err(invalid("paths", format!("give 1 to {MAX_PATHS} paths")));
                }
                (Some(_), Some(_)) => {
                    return Err(invalid("paths", "give `path` or `paths`, not both"));
                }
                (None, None) => {
                    return Err(invalid("path", "required for file requests (or `paths`)"));
                }
            };
            let mut targets = Vec::with_capacity(paths.len() + 1);
            for p in &mut paths {
                let t = path_target("path", p, home)?;
                p.clone_from(&t.text);
                targets.push(t);
            }
            match (op, req.target_path.take()) {
                (FileOp::Rename | FileOp::Move, Some(t)) => {
                    let t = path_target("target_path", &t, home)?;
                    req.target_path = Some(t.text.clone());
                    targets.push(t);
                }
                (FileOp::Rename | FileOp::Move, None) => {
                    return Err(invalid(
                        "target_path",
                        format!("required for {}", op.as_str()),
                    ));
                }
                (_, Some(_)) => return Err(invalid("target_path", "only for rename and move")),
                (_, None) => {}
            }
            check_len(
                "content_preview",
                req.content_preview.as_deref(),
                MAX_PREVIEW,
            )?;
            check_len("old_content", req.old_content.as_deref(), MAX_OLD_CONTENT)?;
            let summary = match (&req.target_path, paths.as_slice()) {
                (Some(t), [one]) => format!("{} {one} → {t}", op.as_str()),
                (_, [one]) => format!("{} {one}", op.as_str()),
                (_, many) => format!("{} {} files", op.as_str(), many.len()),
            };
            if paths.len() == 1 {
                req.path = paths.pop();
            } else {
                req.paths = Some(paths);
            }
            (targets, summary)
        }
        Kind::Shell => {
            let command = req.command.clone().unwrap_or_default();
            if command.trim().is_empty() {
                return Err(invalid("command", "required for shell requests"));
            }
            check_len("command", Some(&command), MAX_COMMAND)?;
            if let Some(cwd) = req.cwd.take() {
                req.cwd = Some(absolute("cwd", &cwd, home)?);
            }
            (shell::targets(&command), command)
        }
        Kind::Tool => {
            let name = req.name.clone().unwrap_or_default();
            if name.is_empty() || name.len() > 256 || name.chars().any(char::is_control) {
                return Err(invalid(
                    "name",
                    "required for tool requests: 1 to 256 printable characters",
                ));
            }
            if let Some(hints) = &req.hints
                && let Some(bad) = hints
                    .keys()
                    .find(|k| !agentgate_policy::input::HINTS.contains(&k.as_str()))
            {
                return Err(invalid(
                    "hints",
                    format!(
                        "unknown hint `{}`; hints are: {}",
                        crate::display::visible(bad, 32),
                        agentgate_policy::input::HINTS.join(", ")
                    ),
                ));
            }
            (vec![Target::new(&name)], name)
        }
        Kind::Network => {
            let raw = req
                .url
                .clone()
                .ok_or_else(|| invalid("url", "required for network requests"))?;
            let target = super::network::target(&raw).map_err(|e| invalid("url", e))?;
            let method = match req.method.take() {
                Some(m)
                    if !m.is_empty()
                        && m.len() <= 16
                        && m.chars().all(|c| c.is_ascii_alphabetic()) =>
                {
                    m.to_ascii_uppercase()
                }
                Some(_) => return Err(invalid("method", "an HTTP method such as GET or POST")),
                None => "GET".to_owned(),
            };
            req.method = Some(method.clone());
            (vec![target], format!("{method} {raw}"))
        }
        Kind::Directory => {
            let path = req
                .path
                .take()
                .ok_or_else(|| invalid("path", "required for directory requests"))?;
            let path = path_target("path", &path, home)?;
            req.path = Some(path.text.clone());
            let summary = format!("access {}", path.text);
            (vec![path], summary)
        }
    };
    let subject = Subject {
        kind,
        targets,
        operation: req.operation,
        agent: req.agent.clone(),
        workspace: req.workspace.clone(),
        session: req.session.clone(),
        requester: None,
        input: tool_input(kind, &req, home),
    };
    Ok(Normalized {
        request: req,
        subject,
        summary,
    })
}

/// What `[rules.input]` and `[rules.annotations]` see of a tool request: its arguments with
/// path-like strings resolved, and its hints.
pub(super) fn tool_input(
    kind: Kind,
    req: &NewPermission,
    home: Option<&Path>,
) -> Option<agentgate_policy::Input> {
    (kind == Kind::Tool).then(|| agentgate_policy::Input {
        value: req
            .input
            .as_ref()
            .map_or(serde_json::Value::Null, |v| resolved_paths(v, home)),
        home: home.map(|h| h.to_string_lossy().into_owned()),
        hints: req.hints.clone().unwrap_or_default(),
    })
}

/// A tool call's arguments with every path-like string (`/…`, `~`, `~/…`) resolved as the
/// kernel will resolve it, for rules that match arguments: `~/src/../.ssh` is `~/.ssh`.
fn resolved_paths(value: &serde_json::Value, home: Option<&Path>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        Value::String(s) if s.starts_with('/') || s == "~" || s.starts_with("~/") => {
            match path_target("input", s, home) {
                Ok(t) => Value::String(t.text),
                Err(_) => value.clone(),
            }
        }
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| resolved_paths(v, home)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), resolved_paths(v, home)))
                .collect(),
        ),
        other => other.clone(),
    }
}

fn check_len(field: &'static str, value: Option<&str>, max: usize) -> Result<(), Invalid> {
    match value {
        Some(v) if v.len() > max => Err(invalid(
            field,
            format!("at most {max} bytes ({} given)", v.len()),
        )),
        _ => Ok(()),
    }
}

/// A path that is not a target (workspace, cwd): resolved the same way, its text only.
fn absolute(field: &'static str, raw: &str, home: Option<&Path>) -> Result<String, Invalid> {
    Ok(path_target(field, raw, home)?.text)
}

/// A path target: `~`/`$HOME` expanded, required absolute, resolved as the kernel will (and
/// opaque when that cannot be done safely).
fn path_target(field: &'static str, raw: &str, home: Option<&Path>) -> Result<Target, Invalid> {
    if raw.is_empty() || raw.len() > 4096 || raw.contains('\0') {
        return Err(invalid(
            field,
            "must be a non-empty path of at most 4096 bytes",
        ));
    }
    let expanded: PathBuf = match (raw, home) {
        ("~", Some(h)) => h.to_owned(),
        ("$HOME", Some(h)) => h.to_owned(),
        (r, Some(h)) if r.starts_with("~/") => h.join(&r[2..]),
        (r, Some(h)) if r.starts_with("$HOME/") => h.join(&r[6..]),
        (r, _) => PathBuf::from(r),
    };
    if !expanded.is_absolute() {
        return Err(invalid(
            field,
            format!("must be absolute (or start with ~): `{raw}`"),
        ));
    }
    let utf8 = |p: PathBuf| {
        p.into_os_string()
            .into_string()
            .map_err(|_| invalid(field, "must be valid UTF-8"))
    };
    match (paths::resolve(&expanded), paths::resolve(&expanded)) {
        (Ok(a), Ok(b)) if a == b => Ok(Target::new(utf8(a)?)),
        (Ok(_), Ok(_)) => Ok(Target::opaque(
            utf8(paths::lexical(&expanded))?,
            "the path changed while it was being resolved",
        )),
        (Err(why), _) | (_, Err(why)) => Ok(Target::opaque(utf8(paths::lexical(&expanded))?, why)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(n: &Normalized) -> Vec<String> {
        n.subject.targets.iter().map(|t| t.text.clone()).collect()
    }

    fn req(kind: Kind) -> NewPermission {
        NewPermission {
            kind: Some(kind),
            ..NewPermission::default()
        }
    }

    #[test]
    fn paths_are_expanded_resolved_and_symlinks_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let real = std::fs::canonicalize(&real).unwrap();
        let n = normalize(
            NewPermission {
                operation: Some(FileOp::Delete),
                path: Some(format!("{}/link/./x/../new.txt", dir.path().display())),
                ..req(Kind::File)
            },
            None,
        )
        .unwrap();
        assert_eq!(texts(&n), vec![format!("{}/new.txt", real.display())]);
        let n = normalize(
            NewPermission {
                path: Some("~/proj".into()),
                ..req(Kind::Directory)
            },
            Some(Path::new("/home/u")),
        )
        .unwrap();
        assert_eq!(texts(&n), vec!["/home/u/proj"]);
    }

    #[test]
    fn bad_requests_name_the_field() {
        let field = |r: NewPermission| normalize(r, Some(Path::new("/h"))).unwrap_err().field;
        assert_eq!(field(NewPermission::default()), "kind");
        assert_eq!(
            field(NewPermission {
                path: Some("/x".into()),
                ..req(Kind::File)
            }),
            "operation"
        );
        assert_eq!(
            field(NewPermission {
                operation: Some(FileOp::Read),
                ..req(Kind::File)
            }),
            "path"
        );
        assert_eq!(
            field(NewPermission {
                operation: Some(FileOp::Read),
                path: Some("rel/x".into()),
                ..req(Kind::File)
            }),
            "path"
        );
        assert_eq!(
            field(NewPermission {
                operation: Some(FileOp::Move),
                path: Some("/x".into()),
                ..req(Kind::File)
            }),
            "target_path"
        );
        assert_eq!(
            field(NewPermission {
                operation: Some(FileOp::Modify),
                path: Some("/x".into()),
                content_preview: Some("x".repeat(5000)),
                ..req(Kind::File)
            }),
            "content_preview"
        );
        assert_eq!(
            field(NewPermission {
                command: Some("ls".into()),
                path: Some("/x".into()),
                ..req(Kind::Shell)
            }),
            "path"
        );
        assert_eq!(field(req(Kind::Shell)), "command");
        assert_eq!(
            field(NewPermission {
                command: Some("ls".into()),
                cwd: Some("here".into()),
                ..req(Kind::Shell)
            }),
            "cwd"
        );
        assert_eq!(field(req(Kind::Tool)), "name");
        assert_eq!(
            field(NewPermission {
                url: Some("not a url".into()),
                ..req(Kind::Network)
            }),
            "url"
        );
        assert_eq!(
            field(NewPermission {
                command: Some("ls".into()),
                timeout: Some(10_000_000),
                ..req(Kind::Shell)
            }),
            "timeout"
        );
    }

    #[test]
    fn urls_become_host_and_path() {
        let n = normalize(
            NewPermission {
                url: Some("https://API.GitHub.com:8443/repos/x?q=1".into()),
                ..req(Kind::Network)
            },
            None,
        )
        .unwrap();
        assert_eq!(texts(&n), vec!["api.github.com:8443/repos/x"]);
        assert_eq!(n.request.method.as_deref(), Some("GET"));
    }
}
