//! `/healthz`, `/api/v1/whoami` and `/api/v1/bridges`.

use axum::Json;
use axum::extract::State;

use super::AppState;
use super::extract::Authed;
use crate::api::{BridgeList, Health, WhoAmI};

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

/// `GET /api/v1/bridges`: the agent servers followed, and how each connection stands.
pub async fn bridges(State(state): State<AppState>) -> Json<BridgeList> {
    Json(state.bridges.list())
}
