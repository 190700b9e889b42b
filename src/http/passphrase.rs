//! `/api/v1/passphrase`: set the owner passphrase (admin only).

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, JsonBody};
use crate::api::{PassphraseSet, SetPassphrase};

/// `PUT /api/v1/passphrase`.
pub async fn set_passphrase(
    State(state): State<AppState>,
    Authed(who): Authed,
    JsonBody(body): JsonBody<SetPassphrase>,
) -> Result<Json<PassphraseSet>, ApiError> {
    let updated_at = state.passphrases.set(body.passphrase, &who.name).await?;
    Ok(Json(PassphraseSet { updated_at }))
}
