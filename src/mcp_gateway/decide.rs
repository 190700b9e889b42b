//! A relayed `tools/call` decided by the broker: a request of kind `tool` named
//! `{server}__{tool}` whose input is the call's arguments, exactly as they will be forwarded.

use std::future::Future;

use agentgate_policy::{Effect, Kind};
use rmcp::model::{JsonObject, ToolAnnotations};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::relay::PROGRESS_EVERY;
use crate::api::{NewPermission, Status};
use crate::auth::Principal;
use crate::broker::{self, Broker};

/// One call, as the client made it.
pub struct Call<'a> {
    /// The `[[mcp_server]]` name.
    pub server: &'a str,
    /// The upstream's tool name.
    pub tool: &'a str,
    /// Its arguments.
    pub arguments: Option<&'a JsonObject>,
    /// What the upstream says of the tool (its own claim).
    pub hints: Option<&'a ToolAnnotations>,
    /// The client's name, from its `initialize`.
    pub agent: Option<String>,
}

/// What happens to the call.
pub enum Verdict {
    /// Forward it.
    Allow,
    /// Answer it with a tool error the model reads (denied, or nobody answered in time).
    Refuse(String),
    /// The request itself is unusable (too large, a bad name).
    Invalid(String),
    /// The client cancelled while a person was being asked.
    Cancelled,
}

/// The tool's name in rules.
pub fn rule_name(server: &str, tool: &str) -> String {
    format!("{server}__{tool}")
}

/// The upstream's hints as words for the inbox, marked as its own claim.
fn hint_words(hints: &ToolAnnotations) -> Option<String> {
    let said: Vec<&str> = [
        (hints.read_only_hint, "read-only", "not read-only"),
        (hints.destructive_hint, "destructive", "not destructive"),
        (hints.idempotent_hint, "idempotent", "not idempotent"),
        (
            hints.open_world_hint,
            "reaches outside systems",
            "closed-world",
        ),
    ]
    .into_iter()
    .filter_map(|(v, yes, no)| v.map(|v| if v { yes } else { no }))
    .collect();
    (!said.is_empty()).then(|| {
        format!(
            "The server describes this tool as {} (its own claim, not verified by agentgate).",
            said.join(", ")
        )
    })
}

/// The server's annotations as the hints rules match (`destructive = true`).
fn hints_of(a: &ToolAnnotations) -> std::collections::BTreeMap<String, bool> {
    [
        ("read_only", a.read_only_hint),
        ("destructive", a.destructive_hint),
        ("idempotent", a.idempotent_hint),
        ("open_world", a.open_world_hint),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_owned(), v?)))
    .collect()
}

/// Whether `tools/list` leaves the tool out: a rule denies it whatever its arguments.
pub fn hidden(broker: &Broker, server: &str, tool: &str, hints: Option<&ToolAnnotations>) -> bool {
    let request = NewPermission {
        kind: Some(Kind::Tool),
        name: Some(rule_name(server, tool)),
        hints: hints.map(hints_of),
        ..NewPermission::default()
    };
    broker
        .explain(request)
        .is_ok_and(|e| e.decision.effect == Effect::Deny)
}

/// Decides `call` for `who`: at once by the policy, or by a person while the client waits (with
/// progress every few seconds when it asked for progress, and cancellable by the client).
pub async fn tool_call<F, Fut>(
    broker: &Broker,
    who: &Principal,
    call: Call<'_>,
    cancelled: &CancellationToken,
    progress: F,
) -> Verdict
where
    F: Fn(u32, String) -> Fut,
    Fut: Future<Output = ()>,
{
    let name = rule_name(call.server, call.tool);
    let request = NewPermission {
        kind: Some(Kind::Tool),
        name: Some(name.clone()),
        input: Some(Value::Object(call.arguments.cloned().unwrap_or_default())),
        agent: call.agent,
        hints: call.hints.map(hints_of),
        reason: call.hints.and_then(hint_words),
        ..NewPermission::default()
    };
    let mut view = match broker.create(who, request).await {
        Ok(view) => view,
        Err(broker::Error::Invalid(e)) => {
            return Verdict::Invalid(format!("{}: {}", e.field, e.message));
        }
        Err(e) => return Verdict::Refuse(format!("agentgate could not decide `{name}`: {e}")),
    };
    let mut step = 0;
    while view.status == Status::Pending {
        step += 1;
        progress(
            step,
            format!(
                "waiting for a person to approve `{name}` in agentgate ({})",
                view.id
            ),
        )
        .await;
        tokio::select! {
            waited = broker.wait(who, &view.id, PROGRESS_EVERY) => match waited {
                Ok(v) => view = v,
                Err(e) => return Verdict::Refuse(format!("agentgate could not decide `{name}`: {e}")),
            },
            () = cancelled.cancelled() => {
                let _ = broker
                    .withdraw(&view.id, "the MCP client", Some("the client cancelled the call".into()))
                    .await;
                return Verdict::Cancelled;
            }
        }
        if *broker.stopping().borrow() && view.status == Status::Pending {
            return Verdict::Refuse("agentgate is shutting down; try again".into());
        }
    }
    match view.status {
        Status::Allowed => Verdict::Allow,
        _ => Verdict::Refuse(format!(
            "agentgate refused `{name}`: {} ({})",
            crate::agents::tool_call::denial_words(&view),
            view.id
        )),
    }
}
