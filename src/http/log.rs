//! One structured line per request: method, path (never the query string), status, latency and
//! the token's name. Never a secret: the `Authorization` header and cookies are not read here, and
//! the one path that carries a secret (a pairing link's code) is logged without it.

use std::time::Instant;

use axum::http::Method;
use axum::response::Response;

use super::access::Caller;
use super::error::ErrorCause;

/// The request's log line, once its answer is known; `caller` made the request, if known.
pub(super) fn record(
    method: &Method,
    path: &str,
    started: Instant,
    response: &Response,
    caller: Option<&Caller>,
) {
    let cause = response.extensions().get::<ErrorCause>();
    line(
        method,
        path,
        started,
        response.status().as_u16(),
        cause.map(|c| c.0.as_str()),
        caller,
    );
}

/// The log line of a request answered `status`; `cause`: why it failed, if it did.
pub(super) fn line(
    method: &Method,
    path: &str,
    started: Instant,
    status: u16,
    cause: Option<&str>,
    caller: Option<&Caller>,
) {
    let latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
    let token = caller.map_or("-", |c| c.0.name.as_str());
    match cause {
        Some(cause) => tracing::error!(
            target: "agentgate::request",
            %method, path, status, latency_us, token, cause,
            "request failed"
        ),
        None => tracing::info!(
            target: "agentgate::request",
            %method, path, status, latency_us, token,
            "request"
        ),
    }
}

/// The path as logged: a pairing link's code is replaced.
pub(super) fn redacted(path: &str) -> &str {
    match path.strip_prefix("/pair/") {
        Some(rest) if !rest.is_empty() => "/pair/[code]",
        _ => path,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn pairing_codes_never_reach_the_log() {
        assert_eq!(super::redacted("/pair/agp_0123"), "/pair/[code]");
        assert_eq!(super::redacted("/pair/"), "/pair/");
        assert_eq!(super::redacted("/api/v1/tokens"), "/api/v1/tokens");
    }
}
