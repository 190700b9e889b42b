//! The hook entries `agentgate hook install` writes into an agent's settings (Claude Code's
//! `.claude/settings.json`, Codex's `hooks.json`: the same shape), merged into what is there and
//! removed again by `hook uninstall`. Pure: JSON in, JSON out.

use serde_json::{Map, Value, json};

use super::hook::Agent;

/// Tools whose calls Claude Code asks agentgate about before running (`PreToolUse`): everything
/// that writes, runs or reaches out. Other tools' own prompts come through `PermissionRequest`.
pub const CLAUDE_MATCHER: &str =
    "Bash|Edit|Write|MultiEdit|NotebookEdit|WebFetch|WebSearch|mcp__.*";
/// Codex hooks see shell commands, patches and MCP tools: all of them.
pub const CODEX_MATCHER: &str = ".*";

/// Seconds the agent gives the hook beyond the request's own deadline, so the person's silence
/// is answered as `timeout` by agentgate before the agent kills the hook.
pub const TIMEOUT_MARGIN: u64 = 30;

/// How the agent reaches agentgate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    /// A command hook: the shell command line (quoted by the caller).
    Command(String),
    /// Claude Code's http hook: the URL and the bearer token.
    Http {
        /// `…/api/v1/hooks/claude-code?timeout=N`.
        url: String,
        /// The hook's `request` token.
        token: String,
    },
}

/// The hook handler for `agent`. Every entry blocks on failure where the agent has that option
/// (`onFailure: "block"`, Claude Code), and carries an explicit timeout.
pub fn entry(agent: Agent, transport: &Transport, patience_secs: u64) -> Value {
    let timeout = patience_secs + TIMEOUT_MARGIN;
    let mut entry = match transport {
        Transport::Command(command) => {
            json!({"type": "command", "command": command, "timeout": timeout})
        }
        Transport::Http { url, token } => json!({
            "type": "http", "url": url, "timeout": timeout,
            "headers": {"Authorization": format!("Bearer {token}")},
        }),
    };
    if agent == Agent::ClaudeCode {
        entry["onFailure"] = json!("block");
        entry["statusMessage"] = json!("Asking agentgate");
    }
    entry
}

/// Whether a hook handler is one agentgate installed for `agent`.
pub fn is_ours(agent: Agent, handler: &Value) -> bool {
    let command = handler.get("command").and_then(Value::as_str).unwrap_or("");
    let url = handler.get("url").and_then(Value::as_str).unwrap_or("");
    (command.contains("agentgate") && command.contains(&format!(" hook {} ", agent.as_str())))
        || url.contains(&format!("/api/v1/hooks/{}", agent.as_str()))
}

/// Puts `handler` under `hooks.<event>` in a group with `matcher`, replacing any handler of ours
/// already there. Returns whether anything changed (installing twice changes nothing).
pub fn add(
    settings: &mut Value,
    agent: Agent,
    event: &str,
    matcher: &str,
    handler: Value,
) -> Result<bool, String> {
    let before = settings.clone();
    remove_event(settings, agent, event)?;
    let hooks = object_at(settings, "hooks")?;
    let groups = hooks
        .entry(event.to_owned())
        .or_insert_with(|| Value::Array(Vec::new()));
    let Some(groups) = groups.as_array_mut() else {
        return Err(format!("`hooks.{event}` is not a list"));
    };
    groups.push(json!({"matcher": matcher, "hooks": [handler]}));
    Ok(*settings != before)
}

/// Removes every handler of ours (and groups and events left empty by that). Returns how many.
pub fn remove(settings: &mut Value, agent: Agent) -> Result<usize, String> {
    let events: Vec<String> = match settings.get("hooks").and_then(Value::as_object) {
        Some(hooks) => hooks.keys().cloned().collect(),
        None => return Ok(0),
    };
    let mut removed = 0;
    for event in events {
        removed += remove_event(settings, agent, &event)?;
    }
    if settings
        .get("hooks")
        .and_then(Value::as_object)
        .is_some_and(Map::is_empty)
        && let Some(obj) = settings.as_object_mut()
    {
        obj.remove("hooks");
    }
    Ok(removed)
}

fn remove_event(settings: &mut Value, agent: Agent, event: &str) -> Result<usize, String> {
    let Some(hooks) = settings.get_mut("hooks") else {
        return Ok(0);
    };
    let Some(hooks) = hooks.as_object_mut() else {
        return Err("`hooks` is not an object".into());
    };
    let Some(groups) = hooks.get_mut(event) else {
        return Ok(0);
    };
    let Some(list) = groups.as_array_mut() else {
        return Err(format!("`hooks.{event}` is not a list"));
    };
    let mut removed = 0;
    for group in list.iter_mut() {
        if let Some(handlers) = group.get_mut("hooks").and_then(Value::as_array_mut) {
            let before = handlers.len();
            handlers.retain(|h| !is_ours(agent, h));
            removed += before - handlers.len();
        }
    }
    list.retain(|g| {
        g.get("hooks")
            .and_then(Value::as_array)
            .is_none_or(|h| !h.is_empty())
    });
    if list.is_empty() {
        hooks.remove(event);
    }
    Ok(removed)
}

fn object_at<'a>(settings: &'a mut Value, key: &str) -> Result<&'a mut Map<String, Value>, String> {
    let Some(root) = settings.as_object_mut() else {
        return Err("the settings file does not hold a JSON object".into());
    };
    root.entry(key.to_owned())
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| format!("`{key}` is not an object"))
}

/// Codex's trust entry for one hook in its `config.toml`: `[hooks.state."<key>"]` with
/// `trusted_hash`, replaced where it is, appended otherwise. Text-level, so the person's comments
/// and layout stay as they are.
pub fn codex_trust(config: &str, key: &str, hash: &str) -> String {
    let header = trust_header(key);
    let line = format!("trusted_hash = {}", toml_string(hash));
    let mut out: Vec<String> = Vec::new();
    let mut lines = config.lines().peekable();
    let mut found = false;
    while let Some(l) = lines.next() {
        out.push(l.to_owned());
        if l.trim() != header {
            continue;
        }
        found = true;
        out.push(line.clone());
        while let Some(next) = lines.peek() {
            if next.trim_start().starts_with('[') {
                break;
            }
            let next = lines.next().unwrap_or_default();
            if !next.trim_start().starts_with("trusted_hash") {
                out.push(next.to_owned());
            }
        }
    }
    let mut text = out.join("\n");
    if !found {
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&format!("\n{header}\n{line}\n"));
    } else if config.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Removes every Codex trust entry whose key starts with `prefix` (the hooks file's path).
pub fn codex_untrust(config: &str, prefix: &str) -> String {
    let start = format!("[hooks.state.{}", toml_string(prefix).trim_end_matches('"'));
    let mut out = Vec::new();
    let mut skipping = false;
    for l in config.lines() {
        if l.trim_start().starts_with('[') {
            skipping = l.trim().starts_with(&start);
        }
        if !skipping {
            out.push(l);
        }
    }
    let mut text = out.join("\n");
    while text.ends_with("\n\n") {
        text.pop();
    }
    if !text.is_empty() {
        text.push('\n');
    }
    text
}

fn trust_header(key: &str) -> String {
    format!("[hooks.state.{}]", toml_string(key))
}

fn toml_string(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_keeps_what_is_there_is_idempotent_and_uninstall_removes_only_ours() {
        let mut settings = json!({
            "model": "x",
            "permissions": {"deny": ["Bash(rm:*)"]},
            "hooks": {"PreToolUse": [{"matcher": "Bash", "hooks": [{"type": "command", "command": "./lint.sh"}]}]}
        });
        let original = settings.clone();
        let ours = entry(
            Agent::ClaudeCode,
            &Transport::Command("'/bin/agentgate' hook claude-code --token-file '/d/t'".into()),
            300,
        );
        assert_eq!(ours["timeout"], 330);
        assert_eq!(ours["onFailure"], "block");
        assert!(
            add(
                &mut settings,
                Agent::ClaudeCode,
                "PreToolUse",
                CLAUDE_MATCHER,
                ours.clone()
            )
            .unwrap()
        );
        assert!(
            !add(
                &mut settings,
                Agent::ClaudeCode,
                "PreToolUse",
                CLAUDE_MATCHER,
                ours.clone()
            )
            .unwrap()
        );
        assert!(
            add(
                &mut settings,
                Agent::ClaudeCode,
                "PermissionRequest",
                "*",
                ours
            )
            .unwrap()
        );
        assert_eq!(settings["hooks"]["PreToolUse"].as_array().unwrap().len(), 2);
        assert_eq!(settings["model"], "x");
        // Codex's entries are not Claude Code's.
        assert_eq!(remove(&mut settings.clone(), Agent::Codex).unwrap(), 0);
        assert_eq!(remove(&mut settings, Agent::ClaudeCode).unwrap(), 2);
        assert_eq!(settings, original);
        let mut empty = json!({});
        let codex = entry(
            Agent::Codex,
            &Transport::Command("agentgate hook codex --x".into()),
            60,
        );
        assert!(codex.get("onFailure").is_none(), "Codex has no onFailure");
        add(&mut empty, Agent::Codex, "PreToolUse", CODEX_MATCHER, codex).unwrap();
        assert_eq!(remove(&mut empty, Agent::Codex).unwrap(), 1);
        assert_eq!(empty, json!({}));
        assert!(add(&mut json!([1]), Agent::Codex, "PreToolUse", "*", json!({})).is_err());
    }

    #[test]
    fn codex_trust_entries_are_written_replaced_and_removed_as_text() {
        let config = "# mine\nmodel = \"x\"\n";
        let key = "/h/.codex/hooks.json:pre_tool_use:0:0";
        let once = codex_trust(config, key, "sha256:aa");
        let parsed: toml::Table = toml::from_str(&once).unwrap();
        assert_eq!(
            parsed["hooks"]["state"][key]["trusted_hash"].as_str(),
            Some("sha256:aa")
        );
        assert!(once.starts_with("# mine\n"));
        let again = codex_trust(&once, key, "sha256:bb");
        let parsed: toml::Table = toml::from_str(&again).unwrap();
        assert_eq!(
            parsed["hooks"]["state"][key]["trusted_hash"].as_str(),
            Some("sha256:bb")
        );
        assert_eq!(again.matches("trusted_hash").count(), 1);
        let other = codex_trust(&again, "/elsewhere/hooks.json:stop:0:0", "sha256:cc");
        let removed = codex_untrust(&other, "/h/.codex/hooks.json:");
        let parsed: toml::Table = toml::from_str(&removed).unwrap();
        assert!(parsed["hooks"]["state"].get(key).is_none());
        assert!(
            parsed["hooks"]["state"]
                .get("/elsewhere/hooks.json:stop:0:0")
                .is_some()
        );
        assert!(removed.starts_with("# mine\nmodel"));
    }
}
