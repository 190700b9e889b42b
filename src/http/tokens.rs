//! `/api/v1/tokens`: create (the secret is shown once), list (never secrets), revoke.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, JsonBody, path};
use crate::api::{CreateToken, CreatedToken, RevokedToken, TokenInfo, TokenList};
use crate::clock::Timestamp;
use crate::store::TokenRow;

/// `POST /api/v1/tokens`.
pub async fn create_token(
    State(state): State<AppState>,
    Authed(creator): Authed,
    JsonBody(request): JsonBody<CreateToken>,
) -> Result<(StatusCode, Json<CreatedToken>), ApiError> {
    let (secret, row) = state.auth.create_token(&creator, request).await?;
    let info = info(&row, state.clock.now());
    Ok((
        StatusCode::CREATED,
        Json(CreatedToken {
            token: secret.expose().to_owned(),
            info,
        }),
    ))
}

/// `GET /api/v1/tokens`.
pub async fn list_tokens(State(state): State<AppState>) -> Result<Json<TokenList>, ApiError> {
    let now = state.clock.now();
    let tokens = state.auth.list_tokens().await?;
    Ok(Json(TokenList {
        tokens: tokens.iter().map(|row| info(row, now)).collect(),
    }))
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<AppState>,
    Authed(who): Authed,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RevokedToken>, ApiError> {
    let id = path(id)?;
    let row = state.auth.revoke_token(&id, &who.name).await?;
    Ok(Json(RevokedToken {
        id: row.id,
        name: row.name,
        revoked_at: row.revoked_at.unwrap_or_else(|| state.clock.now()),
    }))
}

pub(super) fn info(row: &TokenRow, now: Timestamp) -> TokenInfo {
    TokenInfo {
        id: row.id.clone(),
        name: row.name.clone(),
        scopes: row.scopes.to_vec(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        last_used_at: row.last_used_at,
        expired: row.expires_at.is_some_and(|at| at <= now),
        person: row.person.clone(),
    }
}
