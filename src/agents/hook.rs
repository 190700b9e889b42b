//! The hook contract of Claude Code and Codex, as observed against the real CLIs
//! (`../shared/research/agent-hooks.md`): the event JSON they send, and the answer each expects.
//!
//! Pure: parsing and answers. Asking the broker is [`super::ask_hook`]; the command hook and the
//! HTTP hook endpoint only move bytes.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::tool_call::Caller;

/// Which agent's hook contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Agent {
    /// Claude Code: `PreToolUse` can allow, deny or ask; command and http hooks.
    ClaudeCode,
    /// Codex: `PreToolUse` can only deny (its `allow` approves nothing), `PermissionRequest`
    /// can allow or deny; command hooks only.
    Codex,
}

impl Agent {
    /// Its name in URLs, commands and requests.
    pub const fn as_str(self) -> &'static str {
        match self {
            Agent::ClaudeCode => "claude-code",
            Agent::Codex => "codex",
        }
    }

    /// Parses a name as [`Agent::as_str`] writes it.
    pub fn parse(name: &str) -> Option<Agent> {
        [Agent::ClaudeCode, Agent::Codex]
            .into_iter()
            .find(|a| a.as_str() == name)
    }
}

/// The hook events agentgate answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Before every matched tool call.
    PreToolUse,
    /// When the agent would show its own permission prompt.
    PermissionRequest,
}

impl Event {
    const fn as_str(self) -> &'static str {
        match self {
            Event::PreToolUse => "PreToolUse",
            Event::PermissionRequest => "PermissionRequest",
        }
    }
}

/// A hook event, as much as agentgate reads of it.
#[derive(Debug, Clone)]
pub struct HookCall {
    /// Which event.
    pub event: Event,
    /// The tool's name (`Bash`, `Write`, `mcp__server__tool`).
    pub tool_name: String,
    /// Its input, an object.
    pub tool_input: Value,
    /// The agent, its session and working directory.
    pub caller: Caller,
}

/// The fields read from the event; everything else the agents send is ignored (they add fields
/// from version to version).
#[derive(Deserialize)]
struct Wire {
    hook_event_name: Option<String>,
    tool_name: Option<String>,
    tool_input: Option<Value>,
    session_id: Option<String>,
    cwd: Option<String>,
}

/// Largest hook event read (a `Write` of a large file carries its content).
pub const MAX_EVENT: usize = 1024 * 1024;

/// Reads a hook event. Every error is a sentence for the person and the model.
pub fn parse(agent: Agent, bytes: &[u8]) -> Result<HookCall, String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err("the hook event is empty (expected the agent's hook JSON on stdin)".into());
    }
    if bytes.len() > MAX_EVENT {
        return Err(format!(
            "the hook event is larger than {} KiB",
            MAX_EVENT / 1024
        ));
    }
    let wire: Wire = serde_json::from_slice(bytes)
        .map_err(|e| format!("the hook event is not valid JSON: {e}"))?;
    let event = match wire.hook_event_name.as_deref() {
        Some("PreToolUse") => Event::PreToolUse,
        Some("PermissionRequest") => Event::PermissionRequest,
        Some(other) => {
            return Err(format!(
                "agentgate answers PreToolUse and PermissionRequest hooks, not `{}`",
                crate::display::visible(other, 64)
            ));
        }
        None => return Err("the hook event has no `hook_event_name`".into()),
    };
    let tool_name = match wire.tool_name {
        Some(name) if !name.is_empty() && name.len() <= 256 => name,
        _ => return Err("the hook event has no `tool_name`".into()),
    };
    let tool_input = match wire.tool_input {
        Some(input @ Value::Object(_)) => input,
        _ => return Err("the hook event's `tool_input` is not an object".into()),
    };
    Ok(HookCall {
        event,
        tool_name,
        tool_input,
        caller: Caller {
            agent: agent.as_str().to_owned(),
            session: wire.session_id.filter(|s| !s.is_empty()),
            cwd: wire.cwd.filter(|c| !c.is_empty()),
        },
    })
}

/// What agentgate says to a hook.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Let the call run.
    Allow(String),
    /// Block it; the reason reaches the model.
    Deny(String),
    /// Leave it to the agent's own prompt (only when the person configured `ask` for errors).
    Ask(String),
}

/// The hook output for `verdict`, or `None` for "no verdict" (print nothing): the agent's own
/// flow goes on. Codex's `PreToolUse` `allow` approves nothing and its `ask` is unsupported, so
/// those are no verdict there.
pub fn answer(agent: Agent, event: Event, verdict: &Verdict) -> Option<Value> {
    let name = event.as_str();
    match (event, verdict) {
        (Event::PreToolUse, Verdict::Deny(reason)) => Some(json!({"hookSpecificOutput": {
            "hookEventName": name, "permissionDecision": "deny", "permissionDecisionReason": reason,
        }})),
        (Event::PreToolUse, Verdict::Allow(_) | Verdict::Ask(_)) if agent == Agent::Codex => None,
        (Event::PreToolUse, Verdict::Allow(reason)) => Some(json!({"hookSpecificOutput": {
            "hookEventName": name, "permissionDecision": "allow", "permissionDecisionReason": reason,
        }})),
        (Event::PreToolUse, Verdict::Ask(reason)) => Some(json!({"hookSpecificOutput": {
            "hookEventName": name, "permissionDecision": "ask", "permissionDecisionReason": reason,
        }})),
        (Event::PermissionRequest, Verdict::Allow(_)) => Some(json!({"hookSpecificOutput": {
            "hookEventName": name, "decision": {"behavior": "allow"},
        }})),
        (Event::PermissionRequest, Verdict::Deny(reason)) => Some(json!({"hookSpecificOutput": {
            "hookEventName": name, "decision": {"behavior": "deny", "message": reason},
        }})),
        // No verdict: the agent shows its own prompt.
        (Event::PermissionRequest, Verdict::Ask(_)) => None,
    }
}

/// The answer to an event that could not be read: a block, in the form every version of both
/// agents honours for any event (`decision: block`).
pub fn refusal(reason: &str) -> Value {
    json!({"decision": "block", "reason": reason})
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASH: &str = r#"{"session_id":"4552562b","transcript_path":"/h/t.jsonl","cwd":"/tmp/proj",
        "permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Bash",
        "tool_input":{"command":"touch /tmp/proj/x","description":"x"},"tool_use_id":"toolu_1",
        "some_future_field":{"a":1}}"#;

    #[test]
    fn reads_the_observed_event_and_ignores_new_fields() {
        let call = parse(Agent::ClaudeCode, BASH.as_bytes()).unwrap();
        assert_eq!(call.event, Event::PreToolUse);
        assert_eq!(call.tool_name, "Bash");
        assert_eq!(call.caller.cwd.as_deref(), Some("/tmp/proj"));
        assert_eq!(call.caller.session.as_deref(), Some("4552562b"));
        assert_eq!(call.caller.agent, "claude-code");
    }

    #[test]
    fn bad_events_are_clear_sentences() {
        for (bytes, words) in [
            ("", "empty"),
            ("{\"hook_event_name\":\"PreToolUse\",", "not valid JSON"),
            ("[1,2]", "not valid JSON"),
            ("{}", "no `hook_event_name`"),
            (
                r#"{"hook_event_name":"PostToolUse","tool_name":"Bash","tool_input":{}}"#,
                "not `PostToolUse`",
            ),
            (
                r#"{"hook_event_name":"PreToolUse","tool_input":{}}"#,
                "no `tool_name`",
            ),
            (
                r#"{"hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":"rm"}"#,
                "not an object",
            ),
        ] {
            let err = parse(Agent::Codex, bytes.as_bytes()).unwrap_err();
            assert!(err.contains(words), "{bytes:?}: {err}");
        }
    }

    #[test]
    fn each_agent_gets_the_answer_its_contract_honours() {
        let deny = Verdict::Deny("no".into());
        let allow = Verdict::Allow("rule config-1".into());
        let pre = Event::PreToolUse;
        assert_eq!(
            answer(Agent::ClaudeCode, pre, &deny).unwrap()["hookSpecificOutput"]["permissionDecision"],
            "deny"
        );
        assert_eq!(
            answer(Agent::ClaudeCode, pre, &allow).unwrap()["hookSpecificOutput"]["permissionDecision"],
            "allow"
        );
        // Codex ignores a PreToolUse allow: say nothing rather than pretend.
        assert_eq!(answer(Agent::Codex, pre, &allow), None);
        assert_eq!(
            answer(Agent::Codex, pre, &deny).unwrap()["hookSpecificOutput"]["permissionDecisionReason"],
            "no"
        );
        let pr = Event::PermissionRequest;
        assert_eq!(
            answer(Agent::Codex, pr, &deny).unwrap()["hookSpecificOutput"]["decision"],
            json!({"behavior": "deny", "message": "no"})
        );
        assert_eq!(
            answer(Agent::ClaudeCode, pr, &allow).unwrap()["hookSpecificOutput"]["decision"]["behavior"],
            "allow"
        );
    }
}
