//! The scope table: every route of the daemon, its method and the access it requires, in one
//! place. The router is built from this table and nothing else, so a route cannot exist without
//! an access rule, and a path or method not listed here never reaches a handler.

use agentgate_policy::Scope;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

pub use super::surface::{Access, CORS_PATHS, MCP_PATH, Surface};
use super::{
    AppState, events, forward_auth, hooks, mcp_endpoint, oauth_endpoints, pairings, passphrase,
    permissions, rules, system, tokens, web,
};

/// The HTTP methods routes use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// GET (and HEAD).
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// DELETE.
    Delete,
}

impl Verb {
    /// As an `http::Method`.
    pub fn method(self) -> Method {
        match self {
            Verb::Get => Method::GET,
            Verb::Post => Method::POST,
            Verb::Put => Method::PUT,
            Verb::Delete => Method::DELETE,
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
            Verb::Delete => MethodFilter::DELETE,
        }
    }
}

/// One row of the table.
pub struct Route {
    /// Method.
    pub verb: Verb,
    /// Path, with `{param}` segments.
    pub path: &'static str,
    /// What the credential must hold.
    pub access: Access,
    /// JSON API or web page.
    pub surface: Surface,
    pub(super) handler: MethodRouter<AppState>,
}

impl Route {
    fn new<H, T>(verb: Verb, path: &'static str, access: Access, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            verb,
            path,
            access,
            surface: Surface::Api,
            handler: on(verb.filter(), handler),
        }
    }

    fn with_surface(self, surface: Surface) -> Route {
        Route { surface, ..self }
    }

    fn page<H, T>(verb: Verb, path: &'static str, access: Access, handler: H) -> Route
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        Route {
            surface: Surface::Page,
            ..Route::new(verb, path, access, handler)
        }
    }
}

/// Who may use `/mcp` at all: agents (`request`) and approvers (`approve`); each tool then needs
/// its own scope (see `mcp::required_scope`).
pub const MCP: Access = Access::AnyOf(&[Scope::Request, Scope::Approve]);

/// Who may use an upstream MCP server (`/mcp/{server}`): agents; each tool call is then a broker
/// request.
pub const MCP_UPSTREAM: Access = Access::Scope(Scope::Request);

/// Every route of the daemon.
pub fn table() -> Vec<Route> {
    use Access::{AnyCredential, Public};
    use Verb::{Delete, Get, Post, Put};
    let admin = Access::Scope(Scope::Admin);
    let read = Access::Scope(Scope::Read);
    let request = Access::Scope(Scope::Request);
    let approve = Access::Scope(Scope::Approve);
    vec![
        Route::new(Get, "/healthz", Public, system::healthz),
        Route::new(Get, "/api/v1/whoami", AnyCredential, system::whoami),
        Route::new(Post, "/api/v1/tokens", admin, tokens::create_token),
        Route::new(Get, "/api/v1/tokens", admin, tokens::list_tokens),
        Route::new(Delete, "/api/v1/tokens/{id}", admin, tokens::revoke_token),
        Route::new(Put, "/api/v1/passphrase", admin, passphrase::set_passphrase),
        // Permission broker.
        Route::new(
            Post,
            "/api/v1/permissions",
            request,
            permissions::create_permission,
        ),
        Route::new(
            Get,
            "/api/v1/permissions",
            read,
            permissions::list_permissions,
        ),
        // The requester may follow its own request; anyone else needs `read` (checked by the broker).
        Route::new(
            Get,
            "/api/v1/permissions/{id}",
            AnyCredential,
            permissions::get_permission,
        ),
        Route::new(
            Post,
            "/api/v1/permissions/{id}/reply",
            approve,
            permissions::reply_permission,
        ),
        // The agents' own prompts: Claude Code's http hooks and the command hooks.
        Route::new(Post, "/api/v1/hooks/{agent}", request, hooks::hook),
        Route::new(Get, "/api/v1/bridges", read, system::bridges),
        Route::new(Get, "/api/v1/gateways", read, system::gateways),
        // Forward-auth for a reverse proxy in front of an agent server: the scope comes from
        // the gateway's table for the original method and URI, not from this row.
        Route::new(
            Get,
            "/api/v1/forward-auth/{gateway}",
            AnyCredential,
            forward_auth::forward_auth,
        ),
        Route::new(
            Post,
            "/api/v1/forward-auth/{gateway}",
            AnyCredential,
            forward_auth::forward_auth,
        ),
        Route::new(
            Put,
            "/api/v1/forward-auth/{gateway}",
            AnyCredential,
            forward_auth::forward_auth,
        ),
        Route::new(
            Delete,
            "/api/v1/forward-auth/{gateway}",
            AnyCredential,
            forward_auth::forward_auth,
        ),
        Route::new(
            Post,
            "/api/v1/policy/explain",
            read,
            permissions::explain_policy,
        ),
        Route::new(Get, "/api/v1/rules", read, rules::list_rules),
        Route::new(Post, "/api/v1/rules", admin, rules::add_rule),
        Route::new(Delete, "/api/v1/rules/{id}", admin, rules::delete_rule),
        Route::new(Get, "/api/v1/events", read, events::events),
        Route::new(Get, "/api/v1/audit", read, events::list_audit),
        Route::new(Get, "/api/v1/audit/head", read, events::audit_head),
        Route::new(Get, "/api/v1/audit/verify", read, events::verify_audit),
        // Pairing links for a second device (web inbox).
        Route::new(Post, "/api/v1/pairings", admin, pairings::create_pairing),
        Route::new(Get, "/api/v1/pairings", admin, pairings::list_pairings),
        Route::new(
            Delete,
            "/api/v1/pairings/{id}",
            admin,
            pairings::revoke_pairing,
        ),
        // The web inbox. Pages take the session cookie (or a bearer token) through the same
        // access check; sign-in and pairing are public, with the Origin check of `guard`.
        Route::page(Get, "/", read, web::inbox),
        Route::page(Get, "/history", read, web::history),
        Route::page(Get, "/rules", read, web::rules),
        Route::page(Get, "/tokens", admin, web::tokens),
        Route::page(Get, "/audit", read, web::audit),
        Route::new(Get, "/ui/cards/{id}", read, web::card),
        Route::page(Get, "/login", Public, web::sign_in_page),
        Route::page(Post, "/login", Public, web::sign_in),
        Route::new(Post, "/logout", AnyCredential, web::sign_out),
        Route::page(Get, "/pair/{code}", Public, web::pair_page),
        Route::page(Post, "/pair/{code}", Public, web::pair),
        Route::page(Get, "/static/{file}", Public, web::asset),
        // OAuth 2.1 authorization server for MCP clients (RFC 8414, 9728, 7591, 6749, 7009).
        Route::new(
            Get,
            "/.well-known/oauth-authorization-server",
            Public,
            oauth_endpoints::metadata,
        )
        .with_surface(Surface::OAuth),
        Route::new(
            Get,
            "/.well-known/oauth-protected-resource",
            Public,
            oauth_endpoints::resource_metadata,
        )
        .with_surface(Surface::OAuth),
        Route::new(
            Get,
            "/.well-known/oauth-protected-resource/mcp",
            Public,
            oauth_endpoints::resource_metadata,
        )
        .with_surface(Surface::OAuth),
        Route::new(
            Get,
            "/.well-known/oauth-protected-resource/mcp/{server}",
            Public,
            oauth_endpoints::upstream_resource_metadata,
        )
        .with_surface(Surface::OAuth),
        Route::new(Post, "/register", Public, oauth_endpoints::register)
            .with_surface(Surface::OAuth),
        Route::new(Get, "/authorize", Public, oauth_endpoints::authorize)
            .with_surface(Surface::OAuth),
        Route::new(Post, "/authorize", Public, oauth_endpoints::consent)
            .with_surface(Surface::OAuth),
        Route::new(Post, "/token", Public, oauth_endpoints::token).with_surface(Surface::OAuth),
        Route::new(Post, "/revoke", Public, oauth_endpoints::revoke).with_surface(Surface::OAuth),
        // The owner manages clients and remembered consent.
        Route::new(
            Get,
            "/api/v1/oauth/clients",
            admin,
            oauth_endpoints::list_clients,
        ),
        Route::new(
            Delete,
            "/api/v1/oauth/clients/{id}",
            admin,
            oauth_endpoints::delete_client,
        ),
        Route::new(
            Get,
            "/api/v1/oauth/grants",
            admin,
            oauth_endpoints::list_grants,
        ),
        Route::new(
            Delete,
            "/api/v1/oauth/grants/{id}",
            admin,
            oauth_endpoints::revoke_grant,
        ),
        // The MCP endpoint (streamable HTTP): agents ask, approvers answer.
        Route::new(Post, MCP_PATH, MCP, mcp_endpoint::handle).with_surface(Surface::Mcp),
        Route::new(Get, MCP_PATH, MCP, mcp_endpoint::handle).with_surface(Surface::Mcp),
        Route::new(Delete, MCP_PATH, MCP, mcp_endpoint::handle).with_surface(Surface::Mcp),
        // Upstream MCP servers behind agentgate: their tool calls are requests to the broker.
        Route::new(Post, "/mcp/{server}", MCP_UPSTREAM, mcp_endpoint::upstream)
            .with_surface(Surface::Mcp),
        Route::new(Get, "/mcp/{server}", MCP_UPSTREAM, mcp_endpoint::upstream)
            .with_surface(Surface::Mcp),
        Route::new(
            Delete,
            "/mcp/{server}",
            MCP_UPSTREAM,
            mcp_endpoint::upstream,
        )
        .with_surface(Surface::Mcp),
        // Drop-in for the OpenWork Permission API.
        Route::new(
            Post,
            "/permission",
            request,
            permissions::openwork_permission,
        ),
    ]
}
