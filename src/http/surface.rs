//! The bottom of `http`: what a route requires (`Access`) and whom it answers (`Surface`), and
//! the paths other layers name. Everything above imports these; they import nothing of `http`.

use agentgate_policy::Scope;

/// What a route requires of the request's credential.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No credential at all (health checks).
    Public,
    /// Any valid, unexpired, unrevoked credential, whatever its scopes.
    AnyCredential,
    /// A credential holding this scope or one that implies it.
    Scope(Scope),
    /// A credential holding at least one of these scopes (or one that implies it).
    AnyOf(&'static [Scope]),
}

impl Access {
    /// Whether a credential with `scopes` passes (a credential is assumed).
    pub fn allows(self, scopes: &agentgate_policy::ScopeSet) -> bool {
        match self {
            Access::Public | Access::AnyCredential => true,
            Access::Scope(required) => scopes.allows(required),
            Access::AnyOf(any) => any.iter().any(|s| scopes.allows(*s)),
        }
    }

    /// The scopes the rule names (none for public or any-credential routes).
    pub fn scopes(&self) -> &[Scope] {
        match self {
            Access::Public | Access::AnyCredential => &[],
            Access::Scope(one) => std::slice::from_ref(one),
            Access::AnyOf(any) => any,
        }
    }
}

/// Who a route answers: programs (JSON errors) or a browser (a missing credential redirects to
/// the sign-in page, a missing scope is an HTML page). The access rule is the same for both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    /// JSON API.
    Api,
    /// A web page.
    Page,
    /// The OAuth authorization server's protocol endpoints: public, with errors in the RFC 6749
    /// shape and (for the metadata, `/token`, `/register` and `/revoke`) open CORS.
    OAuth,
    /// The MCP endpoint: a missing or insufficient credential gets an OAuth challenge pointing to
    /// the protected resource metadata; OAuth access tokens are accepted here only.
    Mcp,
}

pub use crate::mcp::MCP_PATH;

/// Paths open to cross-origin callers (`Access-Control-Allow-Origin: *`): the metadata and the
/// OAuth endpoints a browser-based MCP client calls. Never `/authorize` or anything with a cookie.
pub const CORS_PATHS: [&str; 6] = [
    "/.well-known/oauth-authorization-server",
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-protected-resource/mcp",
    "/token",
    "/register",
    "/revoke",
];
