//! `/api/v1/rules`: list (configured and stored), add, delete.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Serialize;

use super::AppState;
use super::error::ApiError;
use super::extract::path;
use super::extract::{Authed, JsonBody};
use crate::api::{NewRule, RuleList, RuleView};

/// `GET /api/v1/rules`.
pub async fn list_rules(State(state): State<AppState>) -> Json<RuleList> {
    Json(RuleList {
        rules: state.broker.rules(),
    })
}

/// A rule just added, and the pending requests it decided.
#[derive(Serialize)]
pub struct AddedRule {
    rule: RuleView,
    resolved: Vec<String>,
}

/// `POST /api/v1/rules`.
pub async fn add_rule(
    State(state): State<AppState>,
    Authed(who): Authed,
    JsonBody(rule): JsonBody<NewRule>,
) -> Result<(StatusCode, Json<AddedRule>), ApiError> {
    let (rule, resolved) = state.broker.add_rule(&who, rule).await?;
    Ok((StatusCode::CREATED, Json(AddedRule { rule, resolved })))
}

/// `DELETE /api/v1/rules/{id}`.
pub async fn delete_rule(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RuleView>, ApiError> {
    let id = path(id)?;
    Ok(Json(state.broker.delete_rule(&id).await?))
}
