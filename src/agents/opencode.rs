//! opencode's permission prompts (`permission.asked`, and `permission.v2.asked` where a version
//! sends it) as broker requests, and our decisions as opencode's replies. Pure; the connection
//! that follows opencode's event stream is `crate::bridge`.

use std::path::Path;

use agentgate_policy::{FileOp, Kind};
use serde_json::Value;

use super::tool_call::{PREVIEW_MAX, cut};
use crate::api::NewPermission;

/// Which of opencode's permission APIs a prompt came from (and so where its reply goes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `permission.asked`; reply `POST /permission/{id}/reply`.
    V1,
    /// `permission.v2.asked`; reply `POST /api/session/{sid}/permission/{id}/reply`.
    V2,
}

/// One prompt opencode raised.
#[derive(Debug, Clone, PartialEq)]
pub struct Asked {
    /// `per_…`.
    pub id: String,
    /// `ses_…`.
    pub session_id: String,
    /// `bash`, `edit`, `external_directory`, `webfetch`, … (v2: `action`).
    pub permission: String,
    /// What it asks for: commands, paths, URLs (v2: `resources`).
    pub patterns: Vec<String>,
    /// Tool-specific details (`command`, `filepath`, `diff`, `url`).
    pub metadata: Value,
    /// Which API it came from.
    pub api: Api,
    /// The whole properties object, for a tool request.
    pub raw: Value,
}

/// Reads a `permission.asked` (or `permission.v2.asked`) properties object.
pub fn parse_asked(api: Api, props: &Value) -> Result<Asked, String> {
    let text = |key: &str| props.get(key).and_then(Value::as_str).map(str::to_owned);
    let id = text("id").filter(|i| !i.is_empty() && i.len() <= 200);
    let Some(id) = id else {
        return Err("a permission prompt without an `id`".into());
    };
    let session_id = text("sessionID").unwrap_or_default();
    let (permission, patterns_key) = match api {
        Api::V1 => (text("permission"), "patterns"),
        Api::V2 => (text("action"), "resources"),
    };
    let patterns = props
        .get(patterns_key)
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Asked {
        id,
        session_id,
        permission: permission.unwrap_or_else(|| "unknown".into()),
        patterns,
        metadata: props.get("metadata").cloned().unwrap_or(Value::Null),
        api,
        raw: props.clone(),
    })
}

/// The broker request for a prompt, in the broker's kinds where the permission is one it
/// understands; `directory` is the opencode instance's (relative paths are its).
pub fn request(asked: &Asked, agent: &str, directory: Option<&str>) -> NewPermission {
    let meta = |key: &str| asked.metadata.get(key).and_then(Value::as_str);
    let absolute = |path: &str| match directory {
        Some(dir) if !path.starts_with('/') => Path::new(dir).join(path).display().to_string(),
        _ => path.to_owned(),
    };
    let base = NewPermission {
        agent: Some(agent.to_owned()),
        session: (!asked.session_id.is_empty()).then(|| asked.session_id.clone()),
        workspace: directory.map(str::to_owned),
        reason: Some(reason(asked, agent)),
        ..NewPermission::default()
    };
    let first = asked.patterns.first().map(String::as_str);
    match asked.permission.as_str() {
        "bash" => {
            let command = meta("command")
                .map(str::to_owned)
                .or_else(|| (!asked.patterns.is_empty()).then(|| asked.patterns.join("\n")));
            match command {
                Some(command) => NewPermission {
                    kind: Some(Kind::Shell),
                    command: Some(command),
                    cwd: directory.map(str::to_owned),
                    ..base
                },
                None => as_tool(asked, base),
            }
        }
        "edit" | "write" | "patch" | "apply_patch" => {
            match meta("filepath").or(meta("filePath")).or(first) {
                Some(path) => {
                    let path = absolute(path);
                    let operation = match (Path::new(&path).exists(), &*asked.permission) {
                        (false, _) => FileOp::Create,
                        (true, "write") => FileOp::Overwrite,
                        (true, _) => FileOp::Modify,
                    };
                    NewPermission {
                        kind: Some(Kind::File),
                        operation: Some(operation),
                        path: Some(path),
                        // opencode sends the change as a unified diff: that is what a person
                        // should read.
                        content_preview: meta("diff").map(|d| cut(d, PREVIEW_MAX)),
                        ..base
                    }
                }
                None => as_tool(asked, base),
            }
        }
        "external_directory" => {
            let dir = first
                .map(|p| p.trim_end_matches("/*").trim_end_matches("/**").to_owned())
                .or_else(|| {
                    asked
                        .metadata
                        .get("directories")
                        .and_then(Value::as_array)
                        .and_then(|d| d.first())
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                });
            match dir {
                Some(dir) => NewPermission {
                    kind: Some(Kind::Directory),
                    path: Some(absolute(&dir)),
                    ..base
                },
                None => as_tool(asked, base),
            }
        }
        "webfetch" => match meta("url").or(first) {
            Some(url) => NewPermission {
                kind: Some(Kind::Network),
                url: Some(url.to_owned()),
                method: Some("GET".into()),
                ..base
            },
            None => as_tool(asked, base),
        },
        _ => as_tool(asked, base),
    }
}

/// The prompt as a tool call: its permission as the name, the whole properties object as input.
/// Used for every permission this version does not know, and when a known one's mapped form
/// does not validate: never dropped.
pub fn as_tool(asked: &Asked, base: NewPermission) -> NewPermission {
    NewPermission {
        kind: Some(Kind::Tool),
        name: Some(format!("opencode__{}", asked.permission)),
        input: Some(asked.raw.clone()),
        cwd: None,
        ..base
    }
}

fn reason(asked: &Asked, agent: &str) -> String {
    let what = match asked.metadata.get("description").and_then(Value::as_str) {
        Some(d) => format!(": {d}"),
        None => String::new(),
    };
    format!(
        "{agent} asks for `{}` in session {}{what}",
        asked.permission,
        if asked.session_id.is_empty() {
            "?"
        } else {
            &asked.session_id
        }
    )
}

/// A `permission.replied` (or v2) event: which prompt, and whether it was allowed.
pub fn parse_replied(props: &Value) -> Option<(String, bool)> {
    let id = props
        .get("requestID")
        .or_else(|| props.get("permissionID"))
        .and_then(Value::as_str)?;
    let reply = props
        .get("reply")
        .or_else(|| props.get("response"))
        .and_then(Value::as_str)?;
    Some((id.to_owned(), reply != "reject"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn asked(props: Value) -> Asked {
        parse_asked(Api::V1, &props).unwrap()
    }

    #[test]
    fn observed_bash_prompt_becomes_a_shell_request() {
        let a = asked(json!({"id":"per_1","sessionID":"ses_1","permission":"bash",
            "patterns":["touch approved.txt"],"metadata":{"command":"touch approved.txt"},
            "always":["touch *"],"tool":{"messageID":"msg_1","callID":"c1"}}));
        let r = request(&a, "opencode", Some("/w/proj"));
        assert_eq!(r.kind, Some(Kind::Shell));
        assert_eq!(r.command.as_deref(), Some("touch approved.txt"));
        assert_eq!(r.cwd.as_deref(), Some("/w/proj"));
        assert_eq!(r.session.as_deref(), Some("ses_1"));
        assert_eq!(r.workspace.as_deref(), Some("/w/proj"));
        assert_eq!(r.agent.as_deref(), Some("opencode"));
        assert!(r.reason.unwrap().contains("`bash` in session ses_1"));
    }

    #[test]
    fn every_permission_type_maps_and_unknown_ones_are_never_dropped() {
        let edit = request(
            &asked(
                json!({"id":"p","sessionID":"s","permission":"edit","patterns":["src/a.rs"],
                "metadata":{"filepath":"/w/proj/src/a.rs","diff":"--- a\n+++ b\n"}}),
            ),
            "opencode",
            Some("/w/proj"),
        );
        assert_eq!(edit.kind, Some(Kind::File));
        assert_eq!(edit.path.as_deref(), Some("/w/proj/src/a.rs"));
        assert_eq!(edit.content_preview.as_deref(), Some("--- a\n+++ b\n"));
        let ext = request(
            &asked(
                json!({"id":"p","sessionID":"s","permission":"external_directory",
                "patterns":["/etc/*"]}),
            ),
            "opencode",
            None,
        );
        assert_eq!(ext.kind, Some(Kind::Directory));
        assert_eq!(ext.path.as_deref(), Some("/etc"));
        let web = request(
            &asked(json!({"id":"p","sessionID":"s","permission":"webfetch",
                "patterns":["https://x.dev/a"],"metadata":{"url":"https://x.dev/a"}})),
            "opencode",
            None,
        );
        assert_eq!(web.kind, Some(Kind::Network));
        let props = json!({"id":"p","sessionID":"s","permission":"teleport","patterns":["mars"]});
        let other = request(&asked(props.clone()), "opencode", None);
        assert_eq!(other.kind, Some(Kind::Tool));
        assert_eq!(other.name.as_deref(), Some("opencode__teleport"));
        assert_eq!(other.input, Some(props));
        // v2 names its fields differently.
        let v2 = parse_asked(
            Api::V2,
            &json!({"id":"p","sessionID":"s","action":"bash","resources":["ls"]}),
        )
        .unwrap();
        assert_eq!(request(&v2, "oc", None).command.as_deref(), Some("ls"));
        assert!(parse_asked(Api::V1, &json!({"sessionID":"s"})).is_err());
    }

    #[test]
    fn replies_are_read_in_both_spellings() {
        assert_eq!(
            parse_replied(&json!({"sessionID":"s","requestID":"per_1","reply":"reject"})),
            Some(("per_1".into(), false))
        );
        assert_eq!(
            parse_replied(&json!({"permissionID":"per_2","response":"once"})),
            Some(("per_2".into(), true))
        );
        assert_eq!(parse_replied(&json!({})), None);
    }
}
