//! `POST /api/v1/hooks/{agent}`: Claude Code's `type: "http"` hooks (and the command hook
//! `agentgate hook …`, which forwards its stdin here). The body is the agent's hook event; the
//! answer is always 200 with the hook output the agent expects (`{}` for no verdict), because a
//! non-2xx answer is a non-blocking error to Claude Code: an event that cannot be read, or a
//! broker that cannot decide, is a block with the reason in the answer.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, path, query};
use crate::agents::{self, hook::Agent};

/// `?timeout=N`: seconds the hook waits for a person (default 300, at most 3600); the request
/// times out, recorded as `timeout`, before the agent gives up on the hook.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HookQuery {
    #[serde(default)]
    timeout: Option<u64>,
}

/// Answers one hook event.
pub async fn hook(
    State(state): State<AppState>,
    Authed(who): Authed,
    agent: Result<Path<String>, PathRejection>,
    timeout: Result<Query<HookQuery>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let name = path(agent)?;
    let Some(agent) = Agent::parse(&name) else {
        return Err(ApiError::new(
            axum::http::StatusCode::NOT_FOUND,
            "unknown_hook",
            "agentgate answers hooks for `claude-code` and `codex`",
        ));
    };
    let patience = match query(timeout)?.timeout {
        None => agents::DEFAULT_PATIENCE,
        Some(secs) if (1..=agents::MAX_PATIENCE.as_secs()).contains(&secs) => {
            Duration::from_secs(secs)
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "timeout: expected 1 to 3600 seconds",
            ));
        }
    };
    let answer = Box::pin(agents::answer_hook(
        &state.broker,
        &who,
        agent,
        &body,
        patience,
    ))
    .await;
    Ok(Json(answer.unwrap_or_else(|| json!({}))))
}
