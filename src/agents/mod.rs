//! The agents' own permission prompts as broker requests, decided by the same policy and
//! answered from the same inbox: Claude Code's and Codex's hooks (`hook`), the tool-call mapping
//! they share with `/mcp`'s `approval_prompt` (`tool_call`), and opencode's `permission.asked`
//! (`opencode`, followed by `crate::bridge`).

pub mod hook;
pub mod install;
pub mod opencode;
pub mod tool_call;

use std::time::Duration;

use serde_json::Value;

use crate::api::{PermissionView, Status};
use crate::auth::Principal;
use crate::broker::{self, Broker};
use hook::{Agent, Verdict};
use tool_call::Caller;

/// How long a hook waits for a person unless told otherwise (Claude Code's own default hook
/// timeout is 600 s; `hook install` sets the entry's timeout above this).
pub const DEFAULT_PATIENCE: Duration = Duration::from_secs(300);
/// The longest a hook may wait.
pub const MAX_PATIENCE: Duration = Duration::from_secs(3600);

/// Asks the broker about one tool call: in the broker's kinds where it understands the tool,
/// else (or when that form does not validate, a relative path say) as a tool call. Waits at most
/// `patience`; a person's silence until then is a recorded `timeout`.
pub async fn ask_tool_call(
    broker: &Broker,
    who: &Principal,
    caller: &Caller,
    tool_name: &str,
    input: &Value,
    patience: Duration,
) -> Result<PermissionView, broker::Error> {
    let request = tool_call::request(caller, tool_name, input);
    match broker.ask_within(who, request, patience).await {
        Err(broker::Error::Invalid(_)) => {
            let request = tool_call::as_tool(caller, tool_name, input);
            broker.ask_within(who, request, patience).await
        }
        other => other,
    }
}

/// Answers one hook event: the output the agent expects, or `None` for no verdict. Never an
/// error: an event that cannot be read, or a broker that cannot decide, is a block with the
/// reason (fail closed).
pub async fn answer_hook(
    broker: &Broker,
    who: &Principal,
    agent: Agent,
    event: &[u8],
    patience: Duration,
) -> Option<Value> {
    let call = match hook::parse(agent, event) {
        Ok(call) => call,
        Err(reason) => {
            tracing::warn!(agent = agent.as_str(), %reason, "refused a hook event");
            return Some(hook::refusal(&format!("agentgate: {reason}")));
        }
    };
    let verdict = match ask_tool_call(
        broker,
        who,
        &call.caller,
        &call.tool_name,
        &call.tool_input,
        patience,
    )
    .await
    {
        Ok(view) if view.status == Status::Allowed => Verdict::Allow(allow_words(&view)),
        Ok(view) => Verdict::Deny(format!(
            "{} (agentgate {})",
            tool_call::denial_words(&view),
            view.id
        )),
        Err(e) => Verdict::Deny(format!("agentgate could not decide: {e}")),
    };
    hook::answer(agent, call.event, &verdict)
}

fn allow_words(view: &PermissionView) -> String {
    match view.decided_by.as_ref() {
        Some(by) if by.rule.is_some() => format!(
            "allowed by agentgate rule {} ({})",
            by.rule.as_deref().unwrap_or_default(),
            view.id
        ),
        Some(by) if by.approver.is_some() => format!(
            "allowed by {} through agentgate ({})",
            by.approver.as_deref().unwrap_or_default(),
            view.id
        ),
        _ => format!("allowed by agentgate ({})", view.id),
    }
}
