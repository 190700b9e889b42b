//! The challenge `/mcp` and the OAuth endpoints answer with: this request's origin, its MCP
//! resource identifier, and the `WWW-Authenticate` header pointing to the resource metadata.

use agentgate_policy::Scope;
use axum::http::{HeaderMap, header};

use super::error::ApiError;
use crate::auth::Principal;
use crate::oauth;

/// Our origin as this request reached us: `http://` and the (already validated) `Host`.
pub fn origin(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!("http://{host}")
}

/// The challenge `/mcp` answers a missing or insufficient credential with (RFC 6750, RFC 9728):
/// where the protected resource metadata is, and which scopes to ask for.
pub struct Challenge {
    /// This request's MCP resource identifier.
    pub resource: String,
    metadata: String,
    presented: bool,
}

impl Challenge {
    /// The challenge for a request to `/mcp`.
    pub fn for_request(headers: &HeaderMap) -> Challenge {
        Challenge::for_path(headers, crate::mcp::MCP_PATH)
    }

    /// The challenge for a request to the MCP resource at `path` (`/mcp` or `/mcp/{server}`):
    /// each is its own resource, and a token bound to one is refused on the others.
    pub fn for_path(headers: &HeaderMap, path: &str) -> Challenge {
        let origin = origin(headers);
        let path = path.trim_end_matches('/');
        Challenge {
            resource: format!("{origin}{path}"),
            metadata: format!("{origin}/.well-known/oauth-protected-resource{path}"),
            presented: headers.contains_key(header::AUTHORIZATION),
        }
    }

    /// 401: no credential (no error code, RFC 6750 §3.1), or an invalid one.
    pub fn unauthorized(&self, error: ApiError) -> ApiError {
        let scope = oauth::DEFAULT_SCOPE;
        let challenge = if self.presented {
            format!(
                r#"Bearer error="invalid_token", resource_metadata="{}", scope="{scope}""#,
                self.metadata
            )
        } else {
            format!(
                r#"Bearer resource_metadata="{}", scope="{scope}""#,
                self.metadata
            )
        };
        error.with_challenge(challenge)
    }

    /// 403: the credential lacks `needed`; the challenge names every scope to ask for (what it
    /// holds that OAuth grants, plus what is needed), so a client can step up in one go.
    pub fn insufficient(&self, principal: &Principal, needed: &[Scope]) -> ApiError {
        let mut scopes: agentgate_policy::ScopeSet = principal
            .scopes
            .iter()
            .filter(|s| oauth::SCOPES.contains(s))
            .collect();
        for s in needed {
            scopes.insert(*s);
        }
        let first = needed.first().copied().unwrap_or(oauth::DEFAULT_SCOPE);
        ApiError::insufficient_scope(first).with_challenge(format!(
            r#"Bearer error="insufficient_scope", scope="{}", resource_metadata="{}""#,
            oauth::scope_string(&scopes),
            self.metadata
        ))
    }
}
