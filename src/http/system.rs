//! `/healthz` and `/api/v1/whoami`.

use axum::Json;

use super::extract::Authed;
use crate::api::{Health, WhoAmI};

/// `GET /healthz`: the daemon answers. No credential needed.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".to_owned(),
    })
}

/// `GET /api/v1/whoami`: the presented credential, as verified.
pub async fn whoami(Authed(who): Authed) -> Json<WhoAmI> {
    Json(WhoAmI {
        id: who.token_id.clone(),
        name: who.name.clone(),
        scopes: who.scopes.to_vec(),
        expires_at: who.expires_at,
    })
}
