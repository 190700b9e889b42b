//! `/api/v1/permissions`: ask, follow, list, reply; `/api/v1/policy/explain`; and the OpenWork
//! Permission API drop-in (`POST /permission`).

use std::time::Duration;

use axum::Json;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, JsonBody, path, query};
use crate::api::{
    Explanation, NewPermission, PermissionPage, PermissionView, ReplyOutcome, ReplyRequest, Status,
};
use agentgate_policy::{FileOp, Kind};

/// `?wait=N`: seconds to long-poll for a decision (capped at 300, not an error).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitQuery {
    #[serde(default)]
    wait: Option<u64>,
}

/// `GET /api/v1/permissions` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    #[serde(default)]
    status: Option<StatusFilter>,
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum StatusFilter {
    Pending,
    Allowed,
    Denied,
    Timeout,
    Cancelled,
    All,
}

fn respond(view: PermissionView) -> (StatusCode, Json<PermissionView>) {
    let status = if view.status == Status::Pending {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    (status, Json(view))
}

/// `POST /api/v1/permissions[?wait=N]`: 200 when decided (at once or within the wait), 202 while
/// pending.
pub async fn create_permission(
    State(state): State<AppState>,
    Authed(who): Authed,
    wait: Result<Query<WaitQuery>, QueryRejection>,
    JsonBody(request): JsonBody<NewPermission>,
) -> Result<(StatusCode, Json<PermissionView>), ApiError> {
    let wait = Duration::from_secs(query(wait)?.wait.unwrap_or(0)).min(crate::broker::MAX_WAIT);
    // Boxed here and below: what a parked long-poll holds is this handler's state plus the wait's.
    let view = Box::pin(state.broker.ask_and_wait(&who, request, Some(wait))).await?;
    Ok(respond(view))
}

/// `GET /api/v1/permissions/{id}[?wait=N]`: the requester, or any `read` holder.
pub async fn get_permission(
    State(state): State<AppState>,
    Authed(who): Authed,
    id: Result<Path<String>, PathRejection>,
    wait: Result<Query<WaitQuery>, QueryRejection>,
) -> Result<(StatusCode, Json<PermissionView>), ApiError> {
    let id = path(id)?;
    let wait = query(wait)?.wait.unwrap_or(0);
    let view = if wait > 0 {
        Box::pin(state.broker.wait(&who, &id, Duration::from_secs(wait))).await?
    } else {
        Box::pin(state.broker.get(&who, &id)).await?
    };
    Ok(respond(view))
}

/// `GET /api/v1/permissions?status=…&cursor=…&limit=…`.
pub async fn list_permissions(
    State(state): State<AppState>,
    q: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<PermissionPage>, ApiError> {
    let q = query(q)?;
    let status = match q.status.unwrap_or(StatusFilter::All) {
        StatusFilter::All => None,
        StatusFilter::Pending => Some(Status::Pending),
        StatusFilter::Allowed => Some(Status::Allowed),
        StatusFilter::Denied => Some(Status::Denied),
        StatusFilter::Timeout => Some(Status::Timeout),
        StatusFilter::Cancelled => Some(Status::Cancelled),
    };
    let page = state
        .broker
        .list(status, q.cursor.as_deref(), q.limit.unwrap_or(100))
        .await?;
    Ok(Json(page))
}

/// `POST /api/v1/permissions/{id}/reply`.
pub async fn reply_permission(
    State(state): State<AppState>,
    Authed(who): Authed,
    id: Result<Path<String>, PathRejection>,
    JsonBody(reply): JsonBody<ReplyRequest>,
) -> Result<Json<ReplyOutcome>, ApiError> {
    let id = path(id)?;
    Ok(Json(state.broker.reply(&who, &id, reply).await?))
}

/// `POST /api/v1/policy/explain`: what the policy would decide, and why; nothing is stored.
pub async fn explain_policy(
    State(state): State<AppState>,
    JsonBody(request): JsonBody<NewPermission>,
) -> Result<Json<Explanation>, ApiError> {
    Ok(Json(state.broker.explain(request)?))
}

/// `POST /permission`: the OpenWork Permission API, unmodified clients included. Blocks until
/// decided; answers `{"allowed": bool}`, or OpenWork's own error shapes.
pub async fn openwork_permission(
    State(state): State<AppState>,
    Authed(who): Authed,
    JsonBody(body): JsonBody<serde_json::Value>,
) -> Response {
    let ops = ["create", "delete", "rename", "move", "modify", "overwrite"];
    let invalid =
        |msg: String| (StatusCode::BAD_REQUEST, Json(json!({ "error": msg }))).into_response();
    let operation = body.get("operation").and_then(|v| v.as_str()).unwrap_or("");
    let Some(op) = ops
        .contains(&operation)
        .then(|| operation.parse::<FileOp>().ok())
        .flatten()
    else {
        return invalid(format!(
            "Invalid operation. Must be one of: {}",
            ops.join(", ")
        ));
    };
    let text = |key: &str| body.get(key).and_then(|v| v.as_str()).map(str::to_owned);
    let paths = body.get("filePaths").and_then(|v| v.as_array()).map(|a| {
        a.iter()
            .filter_map(|p| p.as_str().map(str::to_owned))
            .collect::<Vec<_>>()
    });
    if text("filePath").is_none() && paths.as_ref().is_none_or(Vec::is_empty) {
        return invalid("filePath or filePaths is required".into());
    }
    let request = NewPermission {
        kind: Some(Kind::File),
        operation: Some(op),
        path: text("filePath").filter(|_| paths.is_none()),
        paths,
        target_path: text("targetPath"),
        content_preview: text("contentPreview"),
        agent: Some("openwork".into()),
        ..NewPermission::default()
    };
    let outcome = state.broker.ask_and_wait(&who, request, None).await;
    match outcome {
        Ok(view) if view.status == Status::Timeout => (
            StatusCode::REQUEST_TIMEOUT,
            Json(json!({"error": "Request timed out", "allowed": false})),
        )
            .into_response(),
        Ok(view) => (StatusCode::OK, Json(json!({ "allowed": view.allowed }))).into_response(),
        Err(crate::broker::Error::Invalid(i)) => invalid(i.message),
        Err(e) => ApiError::from(e).into_response(),
    }
}
