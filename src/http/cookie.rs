//! The web session's cookie and CSRF header, and what a session-authenticated request carries:
//! named here, at the bottom of `http`, for the access check, the pages and the consent page.

use axum::http::{HeaderMap, header};

/// Name of the web session cookie.
pub const SESSION_COOKIE: &str = "agentgate_session";
/// The header carrying a session's CSRF token.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Attached to a request authenticated by a web session: its CSRF token, for the pages to embed.
#[derive(Debug, Clone)]
pub struct WebSession {
    /// The session's CSRF token.
    pub csrf: String,
}

/// The value of the session cookie, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
}
