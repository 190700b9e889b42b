//! The HTTP surface: the router built from the scope table, and the layers every request passes.
//!
//! Order, outermost first: request log → browser safety (`Host`, `Origin`, credentials in the
//! URL, body size, response headers) → routing (404/405 for anything not in the table) → the
//! route's access check (401/403) → the handler. Handlers are thin: extract, call a domain
//! module, map its error through [`error::ApiError`]. This module never touches SQL.

mod access;
pub mod error;
mod events;
pub mod extract;
mod guard;
mod log;
mod mcp;
mod oauth;
mod pairings;
mod passphrase;
mod permissions;
pub mod routes;
mod rules;
pub mod serve;
mod system;
mod tokens;
mod web;

use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::middleware::{from_fn, from_fn_with_state};

use crate::auth::passphrase::Passphrases;
use crate::auth::session::Sessions;
use crate::auth::{Authenticator, Principal};
use crate::broker::Broker;
use crate::clock::Clock;
use error::ApiError;

pub use guard::HostPolicy;

/// What handlers share. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

/// The shared parts behind [`AppState`].
pub struct Shared {
    /// Token verification and management.
    pub auth: Arc<Authenticator>,
    /// The OAuth authorization server.
    pub oauth: crate::oauth::OAuth,
    /// The MCP endpoint's service.
    pub mcp: crate::mcp::Service,
    /// Which credential opened which MCP session.
    pub(crate) mcp_sessions: mcp::SessionOwners,
    /// The permission broker.
    pub broker: Arc<Broker>,
    /// Web sessions and pairing links.
    pub sessions: Sessions,
    /// The owner passphrase.
    pub passphrases: Passphrases,
    /// Time.
    pub clock: Clock,
    /// Which `Host` values we answer.
    pub hosts: HostPolicy,
}

impl AppState {
    /// Wraps the shared parts.
    pub fn new(shared: Shared) -> AppState {
        AppState(Arc::new(shared))
    }
}

impl Deref for AppState {
    type Target = Shared;
    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The daemon's router: exactly the routes of [`routes::table`], each behind its access check.
pub fn router(state: AppState) -> Router {
    let mut router = Router::new();
    for route in routes::table() {
        let check = from_fn_with_state(
            (state.clone(), route.access, route.surface),
            access::require,
        );
        router = router.route(route.path, route.handler.route_layer(check));
    }
    router
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(from_fn_with_state(
            Arc::new(state.hosts.clone()),
            guard::guard,
        ))
        .layer(from_fn(log::log_request))
        .with_state(state)
}

/// The opt-in OpenWork listener: only `POST /permission`, with no credential, every request made
/// as `principal` (a `request`-only service token). Loopback only, with the same Host and Origin
/// checks as the main listener. Weaker by design: any local process can ask (never answer).
pub fn openwork_router(state: AppState, principal: Arc<Principal>, hosts: HostPolicy) -> Router {
    let as_service = move |mut req: axum::extract::Request, next: axum::middleware::Next| {
        let principal = principal.clone();
        async move {
            req.extensions_mut().insert(principal.clone());
            let mut response = next.run(req).await;
            response.extensions_mut().insert(access::Caller(principal));
            response
        }
    };
    Router::new()
        .route(
            "/permission",
            axum::routing::post(permissions::openwork_permission),
        )
        .route_layer(from_fn(as_service))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY))
        .layer(from_fn_with_state(Arc::new(hosts), guard::guard))
        .layer(from_fn(log::log_request))
        .with_state(state)
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not accept that method",
    )
}
