//! The HTTP surface: the router built from the scope table, and the layers every request passes.
//!
//! Order, outermost first: the edge ([`Site::handle`]: request log, then browser safety: `Host`,
//! `Origin`, credentials in the URL, body size, response headers) → routing (404/405 for anything
//! not in the table) → the route's access check (401/403) → the handler. Handlers are thin: extract, call a domain
//! module, map its error through [`error::ApiError`]. This module never touches SQL.

mod access;
mod challenge;
pub mod cookie;
pub mod error;
mod events;
pub mod extract;
mod forward_auth;
pub mod gateway;
mod guard;
mod hooks;
mod lane;
mod limits;
mod log;
mod mcp_endpoint;
mod oauth_endpoints;
mod pairings;
mod passphrase;
mod permissions;
pub mod routes;
mod rules;
pub mod serve;
pub mod surface;
mod system;
mod tokens;
mod upstream;
mod upstream_events;
mod web;

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit};
use axum::http::StatusCode;
use axum::middleware::from_fn;

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
    /// The upstream MCP servers behind `/mcp/{server}`.
    pub mcp_servers: crate::mcp_gateway::McpServers,
    /// Which credential opened which MCP session.
    pub(crate) mcp_sessions: mcp_endpoint::SessionOwners,
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
    /// The agent servers whose prompts the daemon follows.
    pub bridges: crate::bridge::Bridges,
    /// The gateways' route tables (forward-auth).
    pub gateways: crate::gateway::Gateways,
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

/// What a listener serves: its router behind the edge that every request passes first and
/// last, the request log and the browser-safety guard. The edge is one plain function around the
/// router rather than two middleware layers, so a parked long-poll holds one small future here
/// instead of two boxed layers, each with its own copy of the request.
#[derive(Clone)]
pub struct Site {
    routes: Routes,
    hosts: Arc<HostPolicy>,
    /// Largest declared body (the daemon's 1 MiB, or a gateway's limit).
    max_body: u64,
}

/// An answer, with what the edge needs to know of it: carried beside the response rather than in
/// its extensions, which would cost allocations on every proxied request.
struct Answered {
    response: axum::response::Response,
    /// Who asked, once known: the log line's token.
    caller: Option<access::Caller>,
    /// The upstream's own answer, which keeps its own headers ([`Routes::Proxy`]).
    from_upstream: bool,
}

impl Answered {
    /// One of our own answers.
    fn ours(response: axum::response::Response, caller: Option<access::Caller>) -> Answered {
        Answered {
            response,
            caller,
            from_upstream: false,
        }
    }
}

/// What answers the requests the guard lets through.
#[derive(Clone)]
enum Routes {
    /// Our own API: the router built from the scope table.
    Api(Router),
    /// A gateway's listener: every request goes to the proxy (no router: there is one handler).
    /// The upstream's answers keep their own headers (its web UI sets its own security policy);
    /// only our own answers get ours.
    Proxy(Arc<gateway::Gate>),
}

impl Site {
    /// What the site does with a request the moment hyper has parsed its head, before hyper
    /// reads on: a gateway gives the head its own memory (`gateway::own_head`).
    pub fn on_head<B>(&self, req: &mut hyper::Request<B>) {
        if let Routes::Proxy(gate) = &self.routes {
            let stream_route = gate.stream_route(req.uri().path());
            gateway::own_head(req, stream_route);
        }
    }

    /// Answers one request: log timer → guard (421/400/403/413, preflights) → router → safety
    /// headers → log line. Never fails (errors are answers); the `Result` is hyper's service
    /// shape, so the connection holds this future itself rather than a wrapper around it.
    pub async fn handle(
        mut self,
        mut req: axum::extract::Request,
        peer: SocketAddr,
    ) -> Result<axum::response::Response, std::convert::Infallible> {
        use tower_service::Service;
        let started = std::time::Instant::now();
        let method = req.method().clone();
        // Copied: the URI's bytes are slices of hyper's read buffer, which a parked long-poll
        // would otherwise keep (and hyper then reads into a new one).
        let path = log::redacted(req.uri().path()).to_owned();
        let (mut answered, cors) = match guard::screen(&self.hosts, &req, self.max_body) {
            guard::Screen::Pass { cors } => match &mut self.routes {
                Routes::Api(router) => {
                    req.extensions_mut().insert(ConnectInfo(peer));
                    let response = match router.call(req).await {
                        Ok(response) => response,
                        Err(never) => match never {},
                    };
                    // Our routes' access layer puts the caller here.
                    let caller = response.extensions().get::<access::Caller>().cloned();
                    (Answered::ours(response, caller), cors)
                }
                // Boxed: hyper keeps this future's box for the connection's life, and a
                // proxied stream may idle for hours; the proxy's own future is freed once the
                // answer's head is out.
                Routes::Proxy(gate) => (Box::pin(gateway::handle(gate, req, peer)).await, cors),
            },
            guard::Screen::Answer { response, cors } => (Answered::ours(response, None), cors),
        };
        if !answered.from_upstream {
            guard::secure(&mut answered.response, cors);
        }
        log::record(
            &method,
            &path,
            started,
            &answered.response,
            answered.caller.as_ref(),
        );
        Ok(answered.response)
    }
}

/// The daemon's site: exactly the routes of [`routes::table`], each behind its access check.
pub fn site(state: AppState) -> Site {
    let mut router = Router::new();
    for route in routes::table() {
        let check = access::Require {
            state: state.clone(),
            access: route.access,
            surface: route.surface,
        };
        router = router.route(route.path, route.handler.route_layer(check));
    }
    let hosts = Arc::new(state.hosts.clone());
    Site {
        routes: Routes::Api(
            router
                .fallback(not_found)
                .method_not_allowed_fallback(method_not_allowed)
                .layer(DefaultBodyLimit::max(extract::MAX_BODY))
                .with_state(state),
        ),
        hosts,
        max_body: extract::MAX_BODY as u64,
    }
}

/// The opt-in OpenWork listener: only `POST /permission`, with no credential, every request made
/// as `principal` (a `request`-only service token). Loopback only, with the same Host and Origin
/// checks as the main listener. Weaker by design: any local process can ask (never answer).
pub fn openwork_site(state: AppState, principal: Arc<Principal>, hosts: HostPolicy) -> Site {
    let as_service = move |mut req: axum::extract::Request, next: axum::middleware::Next| {
        let principal = principal.clone();
        async move {
            req.extensions_mut().insert(principal.clone());
            let mut response = next.run(req).await;
            response.extensions_mut().insert(access::Caller(principal));
            response
        }
    };
    Site {
        routes: Routes::Api(
            Router::new()
                .route(
                    "/permission",
                    axum::routing::post(permissions::openwork_permission),
                )
                .route_layer(from_fn(as_service))
                .fallback(not_found)
                .method_not_allowed_fallback(method_not_allowed)
                .layer(DefaultBodyLimit::max(extract::MAX_BODY))
                .with_state(state),
        ),
        hosts: Arc::new(hosts),
        max_body: extract::MAX_BODY as u64,
    }
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
