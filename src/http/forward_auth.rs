//! `/api/v1/forward-auth/{gateway}`: forward-auth for a reverse proxy the person already runs.
//! The proxy forwards the client's credential and the original method and URI; the answer comes
//! from the gateway's table, as agentgate's own routes do: 200 with identity headers, 401 with
//! `WWW-Authenticate` (the access layer), 403 naming the missing scope. Never a redirect: nginx
//! turns anything but 2xx, 401 and 403 into a 500.
//!
//! - nginx `auth_request` (as Authelia's config sends them): `X-Original-Method`,
//!   `X-Original-URI` or `X-Original-URL`;
//! - Caddy `forward_auth`, Traefik `forwardAuth`: `X-Forwarded-Method`, `X-Forwarded-Uri`.

use std::borrow::Cow;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::error::ApiError;
use super::extract::{Authed, path};
use crate::gateway::Refused;

/// The token's name, for the upstream.
pub const TOKEN_NAME: HeaderName = HeaderName::from_static("x-agentgate-token-name");
/// The token's scopes (space-separated, as granted), for the upstream.
pub const SCOPES: HeaderName = HeaderName::from_static("x-agentgate-scopes");

const X_ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
const X_ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
const X_ORIGINAL_URL: HeaderName = HeaderName::from_static("x-original-url");
const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");

/// The first of `names` the request carries, if its value is text and not empty.
fn header(headers: &HeaderMap, names: [HeaderName; 2]) -> Option<&str> {
    names
        .iter()
        .find_map(|n| headers.get(n))
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty())
}

/// The original request's method and path, from whichever proxy sent it.
fn original(headers: &HeaderMap) -> Result<(Cow<'_, str>, Cow<'_, str>), ApiError> {
    let method = header(headers, [X_ORIGINAL_METHOD, X_FORWARDED_METHOD]).map(|m| {
        if m.bytes().any(|b| b.is_ascii_lowercase()) {
            Cow::Owned(m.to_ascii_uppercase())
        } else {
            Cow::Borrowed(m)
        }
    });
    let uri = header(headers, [X_ORIGINAL_URI, X_FORWARDED_URI])
        .map(Cow::Borrowed)
        .or_else(|| {
            headers
                .get(X_ORIGINAL_URL)
                .and_then(|v| v.to_str().ok())
                .and_then(|u| url::Url::parse(u).ok())
                .map(|u| Cow::Owned(u.path().to_owned()))
        });
    match (method, uri) {
        (Some(m), Some(u)) if u.starts_with('/') => Ok((m, u)),
        _ => Err(ApiError::bad_request(
            "forward_auth_misconfigured",
            "forward-auth needs the original method and URI: X-Original-Method and \
             X-Original-URI (nginx auth_request) or X-Forwarded-Method and X-Forwarded-Uri \
             (Caddy, Traefik); see the README's forward-auth snippets",
        )),
    }
}

/// Answers for the request the proxy is about to forward.
pub async fn forward_auth(
    State(state): State<AppState>,
    Authed(who): Authed,
    gateway: Result<Path<String>, PathRejection>,
    request: Request,
) -> Result<Response, ApiError> {
    let headers = request.headers();
    let name = path(gateway)?;
    let Some(gateway) = state.gateways.get(&name) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_gateway",
            format!(
                "no [[gateway]] is named `{}`",
                crate::display::visible(&name, 64)
            ),
        ));
    };
    let (method, uri) = original(headers)?;
    let required = gateway
        .table
        .scope_for(&method, &uri)
        .map_err(|refused| match refused {
            Refused::Method(m) => ApiError::new(
                StatusCode::FORBIDDEN,
                "method_not_allowed",
                format!(
                    "gateway `{name}` admits no {} request",
                    crate::display::visible(&m, 16)
                ),
            ),
            Refused::Path(_) => ApiError::new(
                StatusCode::FORBIDDEN,
                "ambiguous_path",
                "the path has a `.` or `..` segment or an encoded `/`, `\\` or `%`, which the \
             upstream might read differently",
            ),
        })?;
    if !who.scopes.allows(required) {
        return Err(ApiError::insufficient_scope(required));
    }
    let mut scopes = String::with_capacity(64);
    for scope in who.scopes.iter() {
        if !scopes.is_empty() {
            scopes.push(' ');
        }
        scopes.push_str(scope.as_str());
    }
    let mut response = StatusCode::OK.into_response();
    let out = response.headers_mut();
    for (name, value) in [(TOKEN_NAME, who.name.as_str()), (SCOPES, scopes.as_str())] {
        if let Ok(v) = HeaderValue::from_str(value) {
            out.insert(name, v);
        }
    }
    Ok(response)
}
