//! `/api/v1/pairings`: one-time links that sign a second device into the web inbox.

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, JsonBody};
use crate::api::{CreatePairing, CreatedPairing, PairingList, RevokedPairing};

/// `POST /api/v1/pairings`: the link is built from the `Host` the request came to (already
/// checked against our own names), so it points where the creator reached the daemon.
pub async fn create_pairing(
    State(state): State<AppState>,
    Authed(creator): Authed,
    headers: HeaderMap,
    JsonBody(request): JsonBody<CreatePairing>,
) -> Result<(StatusCode, Json<CreatedPairing>), ApiError> {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or_else(|| ApiError::bad_request("invalid_request", "the request has no Host"))?
        .to_owned();
    let (info, code) = state.sessions.create_pairing(&creator, request).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedPairing {
            url: format!("http://{host}/pair/{code}"),
            info,
        }),
    ))
}

/// `GET /api/v1/pairings`.
pub async fn list_pairings(State(state): State<AppState>) -> Result<Json<PairingList>, ApiError> {
    Ok(Json(PairingList {
        pairings: state.sessions.pairings().await?,
    }))
}

/// `DELETE /api/v1/pairings/{id}`: the link stops working and a paired device is signed out.
pub async fn revoke_pairing(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<RevokedPairing>, ApiError> {
    let Path(id) = id.map_err(|e| ApiError::bad_request("invalid_request", e.body_text()))?;
    let sessions_ended = state.sessions.revoke_pairing(&id).await?;
    Ok(Json(RevokedPairing { id, sessions_ended }))
}
