//! A gateway's own listener: every request is checked against the gateway's table with the
//! credential it carries (a bearer token, or the inbox's session), then forwarded to the upstream
//! with the upstream's own credentials, streaming both ways (SSE, chunked bodies, large uploads).
//!
//! What never reaches the upstream: the client's `Authorization`, our session cookie (browsers
//! send cookies for 127.0.0.1 to every port), headers claiming scopes or identity
//! (`X-Agentgate-*`, `X-OpenClaw-Scopes`, the configured list), a client's own `X-Forwarded-*`
//! and `Forwarded`, and hop-by-hop headers. `X-Forwarded-For/Proto/Host` are set by us.
//! A stream without a length ends when its credential is revoked or expires, and so does a
//! protocol upgrade (opencode's `/pty` WebSocket), which is checked against the table like any
//! request and then carried byte for byte.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::access::{self, Caller};
use super::cookie::SESSION_COOKIE;
use super::error::ApiError;
use super::{AppState, HostPolicy, Site};
use crate::gateway::{Gateway, Proxy, Refused};

/// Marks a response that came from the upstream (it keeps its own headers).
#[derive(Debug, Clone, Copy)]
pub struct Upstream;

#[derive(Clone)]
struct Gate {
    app: AppState,
    gateway: Arc<Gateway>,
    proxy: Arc<Proxy>,
    client: Client<HttpConnector, Body>,
    /// Worked out once rather than per request: the upstream's base (no trailing `/`), its
    /// `Host`, and its credential header.
    base: Arc<str>,
    authority: Option<HeaderValue>,
    credential: Option<(HeaderName, HeaderValue)>,
}

/// The site of a gateway with `listen`: the guard with the gateway's own port and body limit,
/// then the proxy.
pub fn site(app: AppState, gateway: Gateway, proxy: Proxy, hosts: HostPolicy) -> Site {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    connector.set_connect_timeout(Some(std::time::Duration::from_secs(5)));
    let client = Client::builder(TokioExecutor::new())
        .pool_idle_timeout(std::time::Duration::from_secs(90))
        .http1_read_buf_exact_size(4096)
        .build(connector);
    let max_body = proxy.body_limit;
    let credential = proxy.credential.as_ref().and_then(|c| {
        Some((
            HeaderName::from_bytes(c.name.as_bytes()).ok()?,
            HeaderValue::from_str(&c.value).ok()?,
        ))
    });
    let gate = Gate {
        app,
        base: proxy.upstream.as_str().trim_end_matches('/').into(),
        authority: HeaderValue::from_str(proxy.upstream.authority()).ok(),
        credential,
        gateway: Arc::new(gateway),
        proxy: Arc::new(proxy),
        client,
    };
    Site {
        router: Router::new().fallback(handle).with_state(gate),
        hosts: Arc::new(hosts),
        max_body,
        proxied: true,
    }
}

async fn handle(
    State(gate): State<Gate>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    match forward(&gate, peer, req).await {
        Ok(response) => response,
        Err((error, caller)) => {
            let mut response = error.into_response();
            if let Some(caller) = caller {
                response.extensions_mut().insert(caller);
            }
            response
        }
    }
}

type Refusal = (ApiError, Option<Caller>);

async fn forward(gate: &Gate, peer: SocketAddr, mut req: Request) -> Result<Response, Refusal> {
    let name = &gate.gateway.name;
    // Taken before anything else, while the request still owns it.
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    // Framing is hyper's: a request with both Content-Length and Transfer-Encoding is read as
    // chunked and its connection closed after the answer (RFC 9112 §6.1), two lengths are a 400,
    // and the forwarded request is framed anew by the client below.
    let required = gate
        .gateway
        .table
        .scope_for(parts.method.as_str(), parts.uri.path())
        .map_err(|refused| {
            let error = match refused {
                Refused::Method(m) => ApiError::new(
                    StatusCode::METHOD_NOT_ALLOWED,
                    "method_not_allowed",
                    format!(
                        "gateway `{name}` admits no {} request",
                        crate::display::visible(&m, 16)
                    ),
                ),
                Refused::Path(_) => ApiError::bad_request(
                    "ambiguous_path",
                    "the path has a `.` or `..` segment or an encoded `/`, `\\` or `%`, which the \
                     upstream might read differently",
                ),
            };
            (error, None)
        })?;
    let who = access::credential(&gate.app, &parts.headers, &parts.method)
        .await
        .map_err(|e| (e, None))?;
    let caller = Caller(who.clone());
    if !who.scopes.allows(required) {
        return Err((ApiError::insufficient_scope(required), Some(caller)));
    }
    let host = parts.headers.get(header::HOST).cloned();
    let upgrade_to = parts.headers.get(header::UPGRADE).cloned();
    clean_request(&mut parts.headers, &gate.proxy.strip);
    if let Some(protocol) = &upgrade_to {
        parts.headers.insert(header::UPGRADE, protocol.clone());
        parts
            .headers
            .insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let forwarded = [
        (
            "x-forwarded-for",
            HeaderValue::from_str(&peer.ip().to_string()).ok(),
        ),
        ("x-forwarded-proto", Some(HeaderValue::from_static("http"))),
        ("x-forwarded-host", host),
    ];
    for (k, v) in forwarded {
        if let Some(v) = v {
            parts.headers.insert(HeaderName::from_static(k), v);
        }
    }
    if let Some((k, v)) = &gate.credential {
        parts.headers.insert(k.clone(), v.clone());
    }
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    parts.uri = format!("{}{path}", gate.base).parse::<Uri>().map_err(|_| {
        (
            ApiError::bad_request("invalid_request", "the request URI cannot be forwarded"),
            Some(caller.clone()),
        )
    })?;
    if let Some(authority) = &gate.authority {
        parts.headers.insert(header::HOST, authority.clone());
    }
    let limited = Body::new(http_body_util::Limited::new(
        body,
        gate.proxy.body_limit as usize,
    ));
    let sent = tokio::time::timeout(
        gate.proxy.timeout,
        gate.client.request(Request::from_parts(parts, limited)),
    )
    .await;
    let upstream_text = gate.proxy.upstream.as_str();
    let response = match sent {
        Err(_) => {
            return Err((
                ApiError::new(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream_timeout",
                    format!(
                        "gateway `{name}`: the upstream {upstream_text} did not answer within {} s",
                        gate.proxy.timeout.as_secs()
                    ),
                ),
                Some(caller),
            ));
        }
        Ok(Err(e)) => return Err((upstream_error(name, upstream_text, &e), Some(caller))),
        Ok(Ok(r)) => r,
    };
    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        let Some(client) = upgrade else {
            return Err((upstream_error_switch(name), Some(caller)));
        };
        return Ok(switch(gate, who, caller, client, response));
    }
    let (mut parts, incoming) = response.into_parts();
    clean_hop_by_hop(&mut parts.headers);
    parts.extensions.insert(Upstream);
    parts.extensions.insert(caller);
    let body = if parts.headers.contains_key(header::CONTENT_LENGTH) {
        Body::new(incoming)
    } else {
        // A stream: it ends with its credential.
        let ended = access::credential_ended(&gate.app, &who);
        Body::from_stream(Body::new(incoming).into_data_stream().take_until(ended))
    };
    Ok(Response::from_parts(parts, body))
}

/// The upstream switched protocols: answer the client's upgrade alike, then carry bytes both
/// ways until either side closes or the credential ends.
fn switch(
    gate: &Gate,
    who: Arc<crate::auth::Principal>,
    caller: Caller,
    client: hyper::upgrade::OnUpgrade,
    mut response: hyper::Response<hyper::body::Incoming>,
) -> Response {
    let upstream = hyper::upgrade::on(&mut response);
    let ended = access::credential_ended(&gate.app, &who);
    let name = gate.gateway.name.clone();
    tokio::spawn(async move {
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(both) => both,
            Err(e) => {
                tracing::debug!(gateway = name, error = %e, "an upgrade did not complete");
                return;
            }
        };
        let mut client = hyper_util::rt::TokioIo::new(client);
        let mut upstream = hyper_util::rt::TokioIo::new(upstream);
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
            () = ended => tracing::debug!(gateway = name, "an upgraded connection ended with its credential"),
        }
    });
    let (mut parts, _) = response.into_parts();
    let keep: Vec<(HeaderName, HeaderValue)> = [header::UPGRADE, header::CONNECTION]
        .into_iter()
        .filter_map(|h| parts.headers.get(&h).cloned().map(|v| (h, v)))
        .collect();
    clean_hop_by_hop(&mut parts.headers);
    parts.headers.extend(keep);
    parts.extensions.insert(Upstream);
    parts.extensions.insert(caller);
    Response::from_parts(parts, Body::empty())
}

fn upstream_error_switch(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        format!("gateway `{name}`: the upstream switched protocols without being asked to"),
    )
}

fn upstream_error(name: &str, upstream: &str, e: &hyper_util::client::legacy::Error) -> ApiError {
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("gateway `{name}`: the request body is over the gateway's body_limit"),
            );
        }
        source = s.source();
    }
    if e.is_connect() {
        return ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_unreachable",
            format!("gateway `{name}`: cannot connect to the upstream {upstream}"),
        );
    }
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        format!("gateway `{name}`: the upstream {upstream} gave no valid HTTP answer"),
    )
}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
];

fn clean_hop_by_hop(headers: &mut HeaderMap) {
    let listed: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_ascii_lowercase())
        .filter(|v| !v.is_empty())
        .collect();
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    for name in listed {
        headers.remove(name.as_str());
    }
}

/// What a client sent that must not reach the upstream.
fn clean_request(headers: &mut HeaderMap, strip: &[String]) {
    clean_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove("proxy-authorization");
    headers.remove(header::FORWARDED);
    let claimed: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            let k = k.as_str();
            k.starts_with("x-agentgate-")
                || k.starts_with("x-forwarded-")
                || k == "x-real-ip"
                || strip.iter().any(|s| s == k)
        })
        .cloned()
        .collect();
    for k in claimed {
        headers.remove(k);
    }
    // Our session cookie, among the client's others.
    let cookies: Vec<String> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| !c.is_empty() && c.split('=').next().map(str::trim) != Some(SESSION_COOKIE))
        .map(str::to_owned)
        .collect();
    headers.remove(header::COOKIE);
    if !cookies.is_empty()
        && let Ok(v) = HeaderValue::from_str(&cookies.join("; "))
    {
        headers.insert(header::COOKIE, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_claiming_identity_or_our_session_reaches_the_upstream() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("authorization", "Bearer agt_client"),
            ("x-agentgate-scopes", "admin"),
            ("X-Agentgate-Token-Name", "owner"),
            ("x-openclaw-scopes", "operator.write"),
            ("x-custom-scopes", "all"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-host", "evil"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
            ("connection", "keep-alive, x-hop"),
            ("x-hop", "1"),
            ("te", "trailers"),
            ("cookie", "theme=dark; agentgate_session=ags_secret"),
            ("cookie", "agentgate_session=x"),
            ("accept", "text/event-stream"),
        ] {
            h.append(k, HeaderValue::from_static(v));
        }
        clean_request(
            &mut h,
            &["x-openclaw-scopes".into(), "x-custom-scopes".into()],
        );
        let mut left: Vec<_> = h.keys().map(|k| k.as_str().to_owned()).collect();
        left.sort();
        assert_eq!(left, vec!["accept", "cookie"], "{h:?}");
        assert_eq!(h["cookie"], "theme=dark");
    }
}
