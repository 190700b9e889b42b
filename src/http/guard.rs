//! Browser-facing safety, on every route before routing:
//! - `Host` must be one of our loopback names with our port, or a configured host (else 421), which
//!   defeats DNS rebinding;
//! - a state-changing request whose `Origin` is not our own is refused (403), as is one a browser
//!   marks `Sec-Fetch-Site: cross-site`; on `/mcp` every method is checked; the open-CORS paths
//!   (OAuth metadata, `/token`, `/register`, `/revoke`) take any origin and answer preflights;
//! - credentials in the URL (`?access_token=`) are refused (400): URLs end up in logs and history;
//! - a declared body over the listener's limit (1 MiB; a gateway's own) is refused (413) before
//!   it is read;
//! - every response says `Cache-Control: no-store`, `X-Content-Type-Options: nosniff`, a
//!   `Content-Security-Policy` without inline script that forbids framing, `X-Frame-Options: DENY`
//!   and `Referrer-Policy: no-referrer`.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::extract::too_large;
use super::surface::{CORS_PATHS, MCP_PATH};

/// Scripts, styles and connections from our own origin only; no inline script or style; never
/// framed; forms post only to us.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; \
     frame-ancestors 'none'";

/// The `Host` header values this daemon answers to.
#[derive(Debug, Clone)]
pub struct HostPolicy {
    accepted: Vec<String>,
}

impl HostPolicy {
    /// Our loopback names on `port`, plus `extra` hosts from the configuration (an extra host
    /// without a port is accepted bare and with our port).
    pub fn new(port: u16, extra: &[String]) -> HostPolicy {
        let mut accepted = Vec::new();
        for name in ["127.0.0.1", "localhost", "[::1]"] {
            accepted.push(format!("{name}:{port}"));
            if port == 80 {
                accepted.push(name.to_owned());
            }
        }
        for host in extra {
            let host = host.to_ascii_lowercase();
            if !host.contains(':') || host.ends_with(']') {
                accepted.push(format!("{host}:{port}"));
            }
            accepted.push(host);
        }
        HostPolicy { accepted }
    }

    /// Whether `host` (a `Host` header value) is ours. Case-insensitive.
    pub fn allows(&self, host: &str) -> bool {
        self.accepted.iter().any(|h| h.eq_ignore_ascii_case(host))
    }
}

/// What the guard makes of a request before routing.
pub(super) enum Screen {
    /// Route it; `cors`: an open-CORS path (its answer says `Access-Control-Allow-Origin: *`).
    Pass { cors: bool },
    /// Answer it at once: a refusal, or a CORS preflight's answer.
    Answer { response: Response, cors: bool },
}

/// Checks a request before routing; `max_body` is the listener's body limit.
pub(super) fn screen(hosts: &HostPolicy, req: &Request, max_body: u64) -> Screen {
    let path = req.uri().path();
    // An upstream MCP server's resource metadata is as open as our own.
    let cors = CORS_PATHS.contains(&path)
        || path.starts_with("/.well-known/oauth-protected-resource/mcp/");
    match check(hosts, req, cors, max_body) {
        Ok(()) if cors && req.method() == Method::OPTIONS => Screen::Answer {
            response: preflight(),
            cors,
        },
        Ok(()) => Screen::Pass { cors },
        Err(err) => Screen::Answer {
            response: err.into_response(),
            cors,
        },
    }
}

/// The headers every answer carries.
pub(super) fn secure(response: &mut Response, cors: bool) {
    let headers = response.headers_mut();
    if cors {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // A page may set a narrower or wider policy of its own (the consent page lets its form
    // redirect to the client).
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

/// The answer to a CORS preflight on an open path.
fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("authorization, content-type, mcp-protocol-version"),
    );
    headers.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    response
}

fn check(hosts: &HostPolicy, req: &Request, cors: bool, max_body: u64) -> Result<(), ApiError> {
    let headers = req.headers();
    let host = host_of(req).ok_or_else(|| {
        ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            "the request has no Host header",
        )
    })?;
    if !hosts.allows(host) {
        return Err(ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "misdirected_request",
            format!(
                "this daemon does not serve the host `{host}`; add it to allowed_hosts to accept it"
            ),
        ));
    }
    if let Some(query) = req.uri().query()
        && form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "access_token")
    {
        return Err(ApiError::bad_request(
            "token_in_url",
            "credentials are accepted only in the Authorization header, never in the URL",
        ));
    }
    // Open-CORS paths take any origin (they hold no cookie-borne authority). `/mcp` and
    // `/mcp/{server}` check the Origin on every method, as the MCP transport requires against DNS
    // rebinding.
    let mcp = req.uri().path() == MCP_PATH || req.uri().path().starts_with("/mcp/");
    if !cors && (!is_safe(req.method()) || mcp) {
        check_origin(headers, host)?;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > max_body) {
        return Err(too_large());
    }
    Ok(())
}

fn host_of(req: &Request) -> Option<&str> {
    match req.headers().get(header::HOST) {
        Some(value) => value.to_str().ok(),
        None => req.uri().authority().map(|a| a.as_str()),
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// A state-changing request from a browser must come from our own origin. Requests without an
/// `Origin` (the CLI, curl, agents) are not browser-driven and pass.
///
/// Our pages say `Referrer-Policy: no-referrer`, under which browsers send `Origin: null` even
/// for our own forms and fetches; such a request passes only when the browser itself also marks
/// it `Sec-Fetch-Site: same-origin` (a header pages cannot set).
fn check_origin(headers: &HeaderMap, host: &str) -> Result<(), ApiError> {
    let refuse = |why: String| Err(ApiError::new(StatusCode::FORBIDDEN, "cross_origin", why));
    let site = headers.get("sec-fetch-site").map(HeaderValue::as_bytes);
    if site.is_some_and(|s| s.eq_ignore_ascii_case(b"cross-site")) {
        return refuse("cross-site requests may not change state".into());
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    if origin == "null" && site.is_some_and(|s| s.eq_ignore_ascii_case(b"same-origin")) {
        return Ok(());
    }
    let ours = ["http://", "https://"].iter().any(|scheme| {
        origin
            .strip_prefix(scheme)
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    });
    if ours {
        Ok(())
    } else {
        refuse(format!(
            "requests from origin `{origin}` may not change state here"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_names_with_our_port_and_configured_hosts_only() {
        let p = HostPolicy::new(7700, &["Gate.Example.com".into(), "other:8443".into()]);
        for ok in [
            "127.0.0.1:7700",
            "localhost:7700",
            "LOCALHOST:7700",
            "[::1]:7700",
            "gate.example.com",
            "gate.example.com:7700",
            "other:8443",
        ] {
            assert!(p.allows(ok), "{ok}");
        }
        for bad in [
            "127.0.0.1:7701",
            "localhost",
            "evil.com:7700",
            "127.0.0.1.evil.com:7700",
            "other",
            "",
            "localhost:7700.evil",
        ] {
            assert!(!p.allows(bad), "{bad}");
        }
        assert!(HostPolicy::new(80, &[]).allows("localhost"));
    }

    #[test]
    fn origins_must_match_the_host() {
        let mut h = HeaderMap::new();
        assert!(check_origin(&h, "127.0.0.1:7700").is_ok());
        h.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:7700"),
        );
        assert!(check_origin(&h, "127.0.0.1:7700").is_ok());
        for bad in [
            "http://evil.com",
            "null",
            "http://localhost:7700",
            "http://127.0.0.1:7700.evil.com",
        ] {
            h.insert(header::ORIGIN, HeaderValue::from_static(bad));
            assert!(check_origin(&h, "127.0.0.1:7700").is_err(), "{bad}");
        }
        let mut h = HeaderMap::new();
        h.insert("sec-fetch-site", HeaderValue::from_static("cross-site"));
        assert!(check_origin(&h, "127.0.0.1:7700").is_err());
        // `Origin: null` (our no-referrer pages) only with the browser's own same-origin mark.
        for (site, ok) in [("same-origin", true), ("same-site", false), ("none", false)] {
            let mut h = HeaderMap::new();
            h.insert(header::ORIGIN, HeaderValue::from_static("null"));
            h.insert("sec-fetch-site", HeaderValue::from_static(site));
            assert_eq!(check_origin(&h, "127.0.0.1:7700").is_ok(), ok, "{site}");
        }
    }
}
