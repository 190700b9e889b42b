//! An agent's tool call as a broker request: Claude Code's (and Codex's) built-in tools become
//! the broker's kinds, so shell, path and URL rules apply to them; any other tool is asked about
//! as a tool call with its whole input. Used by the hooks and by `/mcp`'s `approval_prompt`.

use std::path::Path;

use agentgate_policy::{FileOp, Kind};
use serde_json::Value;

use crate::api::{NewPermission, PermissionView, Source, Status};

/// A content preview handed to the broker is cut to this.
pub const PREVIEW_MAX: usize = 4096;

/// Who is calling the tool, and where.
#[derive(Debug, Clone, Default)]
pub struct Caller {
    /// The agent's name (`claude-code`, `codex`).
    pub agent: String,
    /// The agent's session id.
    pub session: Option<String>,
    /// The agent's working directory: the workspace, the shell's cwd, and what relative paths
    /// are relative to.
    pub cwd: Option<String>,
}

impl Caller {
    fn base(&self) -> NewPermission {
        NewPermission {
            agent: Some(self.agent.clone()),
            session: self.session.clone(),
            workspace: self.cwd.clone().filter(|c| Path::new(c).is_absolute()),
            ..NewPermission::default()
        }
    }

    fn absolute(&self, path: String) -> String {
        match &self.cwd {
            Some(cwd) if !path.starts_with('/') && !path.starts_with('~') => {
                Path::new(cwd).join(path).display().to_string()
            }
            _ => path,
        }
    }
}

/// The tool call as such: kind `tool`, its name and whole input.
pub fn as_tool(caller: &Caller, tool_name: &str, input: &Value) -> NewPermission {
    NewPermission {
        kind: Some(Kind::Tool),
        name: Some(tool_name.to_owned()),
        input: Some(input.clone()),
        ..caller.base()
    }
}

/// The tool call in the broker's kinds where the tool is one the broker understands
/// (`Bash` → shell, `Read`/`Edit`/`Write` → file, `WebFetch` → network), else [`as_tool`].
pub fn request(caller: &Caller, tool_name: &str, input: &Value) -> NewPermission {
    let field = |key: &str| input.get(key).and_then(Value::as_str).map(str::to_owned);
    let base = NewPermission {
        reason: field("description"),
        ..caller.base()
    };
    let file = |op: FileOp, key: &str| NewPermission {
        kind: Some(Kind::File),
        operation: Some(op),
        path: field(key).map(|p| caller.absolute(p)),
        ..base.clone()
    };
    match tool_name {
        "Bash" if field("command").is_some() => NewPermission {
            kind: Some(Kind::Shell),
            command: field("command"),
            cwd: caller.cwd.clone(),
            ..base.clone()
        },
        "Read" if field("file_path").is_some() => file(FileOp::Read, "file_path"),
        "Edit" | "MultiEdit" if field("file_path").is_some() => file(FileOp::Modify, "file_path"),
        "NotebookEdit" if field("notebook_path").is_some() => file(FileOp::Modify, "notebook_path"),
        "Write" if field("file_path").is_some() => NewPermission {
            content_preview: field("content").map(|c| cut(&c, PREVIEW_MAX)),
            ..file(FileOp::Overwrite, "file_path")
        },
        "WebFetch" if field("url").is_some() => NewPermission {
            kind: Some(Kind::Network),
            url: field("url"),
            method: Some("GET".into()),
            ..base.clone()
        },
        _ => as_tool(caller, tool_name, input),
    }
}

/// What a denial tells the agent (and so the model): the person's message, or who decided.
pub fn denial_words(view: &PermissionView) -> String {
    if let Some(message) = view.message.as_deref().filter(|m| !m.is_empty()) {
        return message.to_owned();
    }
    match (view.status, view.decided_by.as_ref().map(|d| d.source)) {
        (Status::Timeout, _) | (_, Some(Source::Timeout)) => {
            "No one answered the permission request in time (timed out).".into()
        }
        (Status::Pending, _) => "The permission request is still waiting for a person.".into(),
        (Status::Cancelled, _) => "The request was withdrawn before anyone answered it.".into(),
        (_, Some(Source::Rule)) => format!(
            "Denied by agentgate policy{}",
            view.decided_by
                .as_ref()
                .and_then(|d| d.rule.as_deref())
                .map(|r| format!(" (rule {r})"))
                .unwrap_or_default()
        ),
        (_, Some(Source::Upstream)) => "Denied in the agent's own interface.".into(),
        _ => "Denied by the person approving requests.".into(),
    }
}

/// `text` cut to at most `max` bytes, on a character boundary.
pub fn cut(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claude() -> Caller {
        Caller {
            agent: "claude-code".into(),
            session: Some("s1".into()),
            cwd: Some("/work/proj".into()),
        }
    }

    #[test]
    fn built_in_tools_become_broker_kinds() {
        let bash = request(
            &claude(),
            "Bash",
            &json!({"command": "git status", "description": "see"}),
        );
        assert_eq!(bash.kind, Some(Kind::Shell));
        assert_eq!(bash.command.as_deref(), Some("git status"));
        assert_eq!(bash.cwd.as_deref(), Some("/work/proj"));
        assert_eq!(bash.reason.as_deref(), Some("see"));
        assert_eq!(bash.session.as_deref(), Some("s1"));
        let write = request(
            &claude(),
            "Write",
            &json!({"file_path": "/tmp/a", "content": "é".repeat(3000)}),
        );
        assert_eq!(write.operation, Some(FileOp::Overwrite));
        assert!(write.content_preview.unwrap().len() <= PREVIEW_MAX);
        // A relative path is the agent's working directory's.
        let edit = request(&claude(), "Edit", &json!({"file_path": "src/main.rs"}));
        assert_eq!(edit.path.as_deref(), Some("/work/proj/src/main.rs"));
        let other = request(
            &claude(),
            "mcp__github__create_issue",
            &json!({"title": "x"}),
        );
        assert_eq!(other.kind, Some(Kind::Tool));
        assert_eq!(other.name.as_deref(), Some("mcp__github__create_issue"));
        // A built-in tool without its usual field is asked about as a tool call.
        assert_eq!(
            request(&claude(), "Bash", &json!({})).kind,
            Some(Kind::Tool)
        );
    }
}
