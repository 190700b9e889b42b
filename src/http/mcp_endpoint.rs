//! `/mcp` and `/mcp/{server}`: hand authenticated requests to their rmcp streamable-HTTP service
//! (see [`crate::mcp`] and [`crate::mcp_gateway`]).
//!
//! Before a message reaches the service, this layer
//! - refuses a tool call at `/mcp` the credential lacks the scope for, with a 403
//!   `insufficient_scope` challenge naming every scope to ask for (so an MCP client can step up),
//! - binds each MCP session to the actor that opened it: another credential presenting the
//!   session id gets 404, as for an unknown session;
//! - ends an event-stream answer when its token is revoked or expires.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

use agentgate_policy::Scope;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde_json::Value;

use super::AppState;
use super::challenge::Challenge;
use super::error::ApiError;
use super::extract::{MAX_BODY, too_large};
use crate::auth::Principal;

const SESSION_HEADER: &str = "mcp-session-id";
/// Session owners remembered at most (past it the oldest half is forgotten; their clients get
/// 404 and initialize again).
const MAX_SESSIONS: usize = 10_000;

/// Which actor opened which MCP session, each numbered in the order it was opened.
#[derive(Default)]
pub struct SessionOwners(Mutex<Owners>);

#[derive(Default)]
struct Owners {
    opened: u64,
    by_session: HashMap<String, (u64, String)>,
}

impl SessionOwners {
    fn owned_by(&self, session: &str, actor: &str) -> bool {
        self.0.lock().is_ok_and(|o| {
            o.by_session
                .get(session)
                .is_some_and(|(_, owner)| owner == actor)
        })
    }

    fn record(&self, session: String, actor: &str) {
        if let Ok(mut o) = self.0.lock() {
            o.opened += 1;
            let number = o.opened;
            if o.by_session.len() >= MAX_SESSIONS {
                let cut = number.saturating_sub(MAX_SESSIONS as u64 / 2);
                o.by_session.retain(|_, (n, _)| *n >= cut);
            }
            o.by_session.insert(session, (number, actor.to_owned()));
        }
    }

    fn forget(&self, session: &str) {
        if let Ok(mut o) = self.0.lock() {
            o.by_session.remove(session);
        }
    }
}

fn session_id(headers: &HeaderMap) -> Option<String> {
    headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// An event-stream answer (the GET stream, or a POST answered as SSE) ends with its credential,
/// as `/api/v1/events` does.
fn end_with_credential(
    response: Response,
    ended: impl Future<Output = ()> + Send + 'static,
) -> Response {
    let streaming = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if !streaming {
        return response;
    }
    let (parts, body) = response.into_parts();
    let data = body.into_data_stream().take_until(Box::pin(ended));
    Response::from_parts(parts, Body::from_stream(data))
}

/// The scope a JSON-RPC body's tool calls need that `who` lacks, if any (single or batch).
fn missing_scope(body: &[u8], who: &Principal) -> Option<Scope> {
    let parsed: Value = serde_json::from_slice(body).ok()?;
    let messages = match parsed {
        Value::Array(items) => items,
        one => vec![one],
    };
    messages.iter().find_map(|m| {
        if m.get("method").and_then(Value::as_str) != Some("tools/call") {
            return None;
        }
        let tool = m.pointer("/params/name").and_then(Value::as_str)?;
        crate::mcp::required_scope(tool).filter(|s| !who.scopes.allows(*s))
    })
}

/// Every method of `/mcp/{server}`: an upstream MCP server behind the broker.
pub async fn upstream(
    State(state): State<AppState>,
    Path(server): Path<String>,
    req: Request,
) -> Response {
    let Some(service) = state.mcp_servers.get(&server).cloned() else {
        return ApiError::unknown_mcp_server(&server).into_response();
    };
    relay(&state, req, |req| async move {
        service.handle(req).await.map(Body::new)
    })
    .await
}

/// Every method of `/mcp`. A tool call there needs its tool's own scope (an upstream's tools at
/// `/mcp/{server}` are the broker's to decide, whatever their names).
pub async fn handle(State(state): State<AppState>, req: Request) -> Response {
    let req = if req.method() == Method::POST {
        let Some(who) = req.extensions().get::<Arc<Principal>>().cloned() else {
            return ApiError::internal("no principal on an authenticated route").into_response();
        };
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY).await else {
            return too_large().into_response();
        };
        if let Some(needed) = missing_scope(&bytes, &who) {
            return Challenge::for_request(&parts.headers)
                .insufficient(&who, &[needed])
                .into_response();
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        req
    };
    let service = state.mcp.clone();
    relay(&state, req, |req| async move {
        service.handle(req).await.map(Body::new)
    })
    .await
}

/// The checks every MCP endpoint makes around its rmcp service.
async fn relay<F, Fut>(state: &AppState, req: Request, serve: F) -> Response
where
    F: FnOnce(Request) -> Fut,
    Fut: Future<Output = Response>,
{
    let Some(who) = req.extensions().get::<Arc<Principal>>().cloned() else {
        return ApiError::internal("no principal on an authenticated route").into_response();
    };
    let session = session_id(req.headers());
    if let Some(id) = &session
        && !state.mcp_sessions.owned_by(id, who.actor())
    {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "session_not_found",
            "no MCP session with this id belongs to this credential; initialize a new one",
        )
        .into_response();
    }
    let is_delete = req.method() == Method::DELETE;
    let ended = super::access::credential_ended(state, &who);
    let response = serve(req).await;
    let response = end_with_credential(response, ended);
    match (&session, session_id(response.headers())) {
        (None, Some(new)) if response.status().is_success() => {
            state.mcp_sessions.record(new, who.actor());
        }
        (Some(old), _) if is_delete && response.status().is_success() => {
            state.mcp_sessions.forget(old);
        }
        _ => {}
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::CredentialKind;

    fn who(scopes: &[Scope]) -> Principal {
        Principal {
            token_id: "tok_1".into(),
            name: "t".into(),
            scopes: scopes.iter().copied().collect(),
            expires_at: None,
            kind: CredentialKind::Token,
            oauth: None,
            person: None,
        }
    }

    #[test]
    fn tool_calls_need_their_tool_scope_in_single_and_batch_messages() {
        let call = |tool: &str| {
            format!(
                r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{tool}"}}}}"#
            )
        };
        let agent = who(&[Scope::Request]);
        assert_eq!(
            missing_scope(call("request_permission").as_bytes(), &agent),
            None
        );
        assert_eq!(
            missing_scope(call("reply").as_bytes(), &agent),
            Some(Scope::Approve)
        );
        let batch = format!("[{},{}]", call("approval_prompt"), call("list_pending"));
        assert_eq!(
            missing_scope(batch.as_bytes(), &agent),
            Some(Scope::Approve)
        );
        assert_eq!(missing_scope(batch.as_bytes(), &who(&[Scope::Admin])), None);
        assert_eq!(missing_scope(br#"{"method":"tools/list"}"#, &agent), None);
        assert_eq!(missing_scope(b"not json", &agent), None);
    }

    #[test]
    fn sessions_belong_to_who_opened_them() {
        let owners = SessionOwners::default();
        owners.record("s1".into(), "cli_a");
        assert!(owners.owned_by("s1", "cli_a"));
        assert!(!owners.owned_by("s1", "cli_b"));
        assert!(!owners.owned_by("s2", "cli_a"));
        owners.forget("s1");
        assert!(!owners.owned_by("s1", "cli_a"));
    }
}
