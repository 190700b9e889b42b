//! A gateway's own listener: every request is checked against the gateway's table with the
//! credential it carries (a bearer token, or the inbox's session), then forwarded to the upstream
//! with the upstream's own credentials, streaming both ways (SSE, chunked bodies, large uploads).
//! Its connections start in the fast lane (`super::lane`), which checks with [`admit`] as this
//! module's hyper path does; what the lane does not take comes here.
//!
//! What never reaches the upstream: the client's `Authorization`, our session cookie (browsers
//! send cookies for 127.0.0.1 to every port), headers claiming scopes or identity
//! (`X-Agentgate-*`, `X-OpenClaw-Scopes`, the configured list), a client's own `X-Forwarded-*`
//! and `Forwarded`, and hop-by-hop headers. `X-Forwarded-For/Proto/Host` are set by us.
//! A stream without a length ends when its credential is revoked or expires, and so does a
//! protocol upgrade (opencode's `/pty` WebSocket), which is checked against the table like any
//! request and then carried byte for byte.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::uri::PathAndQuery;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use smallvec::SmallVec;

use super::access::{self, Caller};
use super::cookie::SESSION_COOKIE;
use super::error::ApiError;
use super::upstream::{Failed, Pool, Reused};
use super::upstream_events;
use super::{Answered, AppState, HostPolicy, Routes, Site};
use crate::auth::Principal;
use crate::gateway::{Gateway, Proxy, Refused};

/// One gateway's proxy, shared by its listener's connections.
pub(super) struct Gate {
    pub(super) app: AppState,
    gateway: Gateway,
    pub(super) proxy: Proxy,
    pub(super) pool: Arc<Pool>,
    /// Worked out once rather than per request: the path the upstream is under (no trailing
    /// `/`; empty at `/`), its `Host`, and its credential header.
    prefix: String,
    host: Option<HeaderValue>,
    credential: Option<(HeaderName, HeaderValue)>,
}

impl Gate {
    /// Whether `path` is one of the gateway's preset's known event streams.
    pub(super) fn stream_route(&self, path: &str) -> bool {
        self.gateway.preset.is_event_stream(path)
    }

    /// The upstream's answer did not begin within the gateway's timeout.
    pub(super) fn timed_out(&self) -> ApiError {
        ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!(
                "gateway `{}`: the upstream {} did not answer within {} s",
                self.gateway.name,
                self.proxy.upstream.as_str(),
                self.proxy.timeout.as_secs()
            ),
        )
    }

    /// The upstream gave no answer.
    pub(super) fn failed(&self, failed: &Failed) -> ApiError {
        upstream_error(
            &self.gateway.name,
            self.proxy.upstream.as_str(),
            self.proxy.head_limit,
            failed,
        )
    }
}

/// The origin-form URI a request's path and query is forwarded as, under the upstream's
/// `prefix`.
fn upstream_uri(prefix: &str, path: Option<&PathAndQuery>) -> Option<Uri> {
    let path = path
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    if !path.as_str().starts_with('/') {
        return None;
    }
    if prefix.is_empty() {
        return Some(Uri::from(path));
    }
    format!("{prefix}{path}").parse().ok()
}

/// The site of a gateway with `listen`: the guard with the gateway's own port and body limit,
/// then the proxy.
pub fn site(app: AppState, gateway: Gateway, proxy: Proxy, hosts: HostPolicy) -> Site {
    let max_body = proxy.body_limit;
    let credential = proxy.credential.as_ref().and_then(|c| {
        Some((
            HeaderName::from_bytes(c.name.as_bytes()).ok()?,
            HeaderValue::from_str(&c.value).ok()?,
        ))
    });
    let gate = Gate {
        app,
        pool: Arc::new(Pool::new(&proxy.upstream, proxy.head_limit)),
        prefix: proxy.upstream.path().trim_end_matches('/').to_owned(),
        host: HeaderValue::from_str(proxy.upstream.authority()).ok(),
        credential,
        gateway,
        proxy,
    };
    Site {
        routes: Routes::Proxy(Arc::new(gate)),
        hosts: Arc::new(hosts),
        max_body,
    }
}

/// Answers one request from `peer` that passed the guard: forwarded, or refused in our JSON
/// error shape.
pub(super) async fn handle(gate: &Gate, req: Request, peer: SocketAddr) -> Answered {
    match forward(gate, peer, req).await {
        Ok((response, caller)) => Answered {
            response,
            caller: Some(caller),
            from_upstream: true,
        },
        Err((error, caller)) => Answered::ours(error.into_response(), caller),
    }
}

/// A request answered by us rather than the upstream, and who asked, once known.
pub(super) type Refusal = (ApiError, Option<Caller>);

/// Checks a request against the gateway's table and its credential, and makes its head ready for
/// the upstream: cleaned ([`clean_request`]), `X-Forwarded-*` and the upstream's credential and
/// `Host` set, the URI under the upstream's path, HTTP/1.1. Returns who asked.
pub(super) async fn admit(
    gate: &Gate,
    peer: SocketAddr,
    parts: &mut Parts,
) -> Result<Arc<Principal>, Refusal> {
    let name = &gate.gateway.name;
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
        (X_FORWARDED_FOR, Some(forwarded_for(peer.ip()))),
        (X_FORWARDED_PROTO, Some(HeaderValue::from_static("http"))),
        (X_FORWARDED_HOST, host),
    ];
    for (k, v) in forwarded {
        if let Some(v) = v {
            parts.headers.insert(k, v);
        }
    }
    if let Some((k, v)) = &gate.credential {
        parts.headers.insert(k.clone(), v.clone());
    }
    parts.uri = upstream_uri(&gate.prefix, parts.uri.path_and_query()).ok_or_else(|| {
        (
            ApiError::bad_request("invalid_request", "the request URI cannot be forwarded"),
            Some(caller.clone()),
        )
    })?;
    if let Some(host) = &gate.host {
        parts.headers.insert(header::HOST, host.clone());
    }
    // Each hop speaks its own version: ours to the upstream is HTTP/1.1 (kept alive).
    parts.version = axum::http::Version::HTTP_11;
    Ok(who)
}

async fn forward(
    gate: &Gate,
    peer: SocketAddr,
    mut req: Request,
) -> Result<(Response, Caller), Refusal> {
    let name = &gate.gateway.name;
    // Taken before anything else, while the request still owns it.
    let upgrade = req
        .headers()
        .contains_key(header::UPGRADE)
        .then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    let own = upstream_events::takes_own_connection(
        &parts,
        hyper::body::Body::is_end_stream(&body),
        gate.stream_route(parts.uri.path()),
    );
    // Framing is hyper's: a request with both Content-Length and Transfer-Encoding is read as
    // chunked and its connection closed after the answer (RFC 9112 §6.1), two lengths are a 400,
    // and the forwarded request is framed anew by the client below.
    let who = admit(gate, peer, &mut parts).await?;
    let caller = Caller(who.clone());
    let limited = Body::new(http_body_util::Limited::new(
        body,
        gate.proxy.body_limit as usize,
    ));
    let exchange = async {
        if own {
            // Boxed: the rare path's future is not carried by every request's.
            let open = upstream_events::open(&gate.pool, &parts, gate.proxy.head_limit);
            Ok(Answer::Own(Box::pin(open).await?))
        } else {
            let sent = gate.pool.send(Request::from_parts(parts, limited)).await?;
            Ok::<_, Failed>(Answer::Pooled(sent))
        }
    };
    let answer = match tokio::time::timeout(gate.proxy.timeout, exchange).await {
        Err(_) => return Err((gate.timed_out(), Some(caller))),
        Ok(Err(e)) => return Err((gate.failed(&e), Some(caller))),
        Ok(Ok(answer)) => answer,
    };
    let (mut parts, body) = match answer {
        Answer::Pooled(mut response) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
            response.body_mut().keep_out();
            let Some(client) = upgrade else {
                return Err((upstream_error_switch(name), Some(caller)));
            };
            return Ok((switch(gate, who, client, response), caller));
        }
        Answer::Pooled(response) => {
            let (parts, body) = response.into_parts();
            (parts, Body::new(body))
        }
        Answer::Own(response) => {
            let (parts, body) = response.into_parts();
            (parts, Body::new(body))
        }
    };
    clean_hop_by_hop(&mut parts.headers);
    let body = if parts.headers.contains_key(header::CONTENT_LENGTH) {
        body
    } else {
        // A stream: it ends with its credential.
        let ended = access::credential_ended(&gate.app, &who);
        Body::from_stream(body.into_data_stream().take_until(ended))
    };
    Ok((Response::from_parts(parts, body), caller))
}

/// An upstream's answer: over a pooled connection, or over an event stream's own.
enum Answer {
    Pooled(hyper::Response<Reused>),
    Own(hyper::Response<upstream_events::Events>),
}

/// Gives a request's header values and URI their own memory, rather than slices of the
/// connection's read buffer, unless the request is for an event stream (it asks for one, or
/// `stream_route`: it is one of the preset's known streams).
///
/// hyper parses a request head into its connection's 8 KiB read buffer, and the head's values
/// point into it. While the request is in flight hyper reads again (to notice the client hanging
/// up), and with the buffer still shared it takes a new one; the old one is freed when the
/// forwarded head has been written upstream, and the allocator returns its pages to the system
/// (which is what keeps parked connections cheap: `src/main.rs`). That is one fresh buffer, one
/// `madvise` and its page faults per proxied request. With the head copied out here, before hyper
/// reads again, the buffer is the connection's only user and is used again for the next request.
///
/// An event stream is left as hyper made it: such a connection then idles for hours, and the
/// new buffer it reads into is never written, so it holds no page, where the reused one would.
pub(super) fn own_head<B>(req: &mut hyper::Request<B>, stream_route: bool) {
    if upstream_events::is_event_stream(req.method(), req.headers(), stream_route) {
        return;
    }
    let shared = std::mem::take(req.headers_mut());
    // Room for what the proxy adds: `X-Forwarded-*` and the upstream's credential.
    let mut owned = HeaderMap::with_capacity(shared.len() + 4);
    let mut name: Option<HeaderName> = None;
    for (next, value) in shared {
        if next.is_some() {
            name = next;
        }
        let Some(name) = &name else { continue };
        // A value the copy would refuse (none that hyper parses) is kept as it is, never lost.
        let copy = match HeaderValue::from_bytes(value.as_bytes()) {
            Ok(mut copy) => {
                copy.set_sensitive(value.is_sensitive());
                copy
            }
            Err(_) => value,
        };
        owned.append(name.clone(), copy);
    }
    *req.headers_mut() = owned;
    let text = match req.uri().path_and_query() {
        // Origin form, as clients send: the whole URI is its path and query.
        Some(pq) if req.uri().scheme().is_none() => Bytes::copy_from_slice(pq.as_str().as_bytes()),
        _ => Bytes::from(req.uri().to_string()),
    };
    if let Ok(uri) = Uri::from_maybe_shared(text) {
        *req.uri_mut() = uri;
    }
}

/// The upstream switched protocols: answer the client's upgrade alike, then carry bytes both
/// ways until either side closes or the credential ends.
fn switch(
    gate: &Gate,
    who: Arc<crate::auth::Principal>,
    client: hyper::upgrade::OnUpgrade,
    mut response: hyper::Response<Reused>,
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
    Response::from_parts(parts, Body::empty())
}

fn upstream_error_switch(name: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        format!("gateway `{name}`: the upstream switched protocols without being asked to"),
    )
}

fn upstream_error(name: &str, upstream: &str, head_limit: usize, failed: &Failed) -> ApiError {
    let e = match failed {
        Failed::Connect(e) => {
            return ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unreachable",
                format!("gateway `{name}`: cannot connect to the upstream {upstream} ({e})"),
            );
        }
        Failed::Exchange(e) => e,
        Failed::HeadTooLarge => return head_too_large(name, upstream, head_limit),
        Failed::BadAnswer(e) => {
            tracing::debug!(gateway = name, error = %e, "the upstream gave no valid answer");
            return no_valid_answer(name, upstream);
        }
    };
    if e.is_parse_too_large() {
        return head_too_large(name, upstream, head_limit);
    }
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
    no_valid_answer(name, upstream)
}

fn head_too_large(name: &str, upstream: &str, head_limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_head_too_large",
        format!(
            "gateway `{name}`: the upstream {upstream} answered with a head (status line and \
             headers) over {head_limit} bytes, the gateway's head_limit"
        ),
    )
}

fn no_valid_answer(name: &str, upstream: &str) -> ApiError {
    ApiError::new(
        StatusCode::BAD_GATEWAY,
        "upstream_failed",
        format!("gateway `{name}`: the upstream {upstream} gave no valid HTTP answer"),
    )
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// The headers that are hop-by-hop by name (RFC 9110 §7.6.1, and the old `Keep-Alive` and
/// `Proxy-Connection`), whatever `Connection` says.
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

/// Whether `name` is one of [`HOP_BY_HOP`]. The standard names compare as `http`'s enum does
/// (no text), which is what most names a request or an answer carries are.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
        || *name == header::PROXY_AUTHENTICATE
        || matches!(name.as_str(), "keep-alive" | "proxy-connection")
}

pub(super) fn clean_hop_by_hop(headers: &mut HeaderMap) {
    clean(headers, |_| false);
}

/// Removes every header that is hop-by-hop ([`HOP_BY_HOP`], or named by `Connection`) or that
/// `also` picks. One pass over the names present (a handful), rather than a lookup for every name
/// that might be; the names found are held on the stack (a few at most, as a rule).
fn clean(headers: &mut HeaderMap, also: impl Fn(&HeaderName) -> bool) {
    let mut doomed: SmallVec<[HeaderName; 4]> = SmallVec::new();
    {
        // What `Connection` names beyond the hop-by-hop names (`keep-alive` most often):
        // usually nothing.
        let listed: SmallVec<[&[u8]; 2]> = items(headers, header::CONNECTION, b',')
            .filter(|t| {
                !HOP_BY_HOP
                    .iter()
                    .any(|h| h.as_bytes().eq_ignore_ascii_case(t))
            })
            .collect();
        for name in headers.keys() {
            if is_hop_by_hop(name)
                || also(name)
                || listed
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(name.as_str().as_bytes()))
            {
                doomed.push(name.clone());
            }
        }
    }
    for name in doomed {
        headers.remove(name);
    }
}

/// What a client sent that must not reach the upstream.
fn clean_request(headers: &mut HeaderMap, strip: &[String]) {
    // Our session cookie, among the client's others.
    let cookies = cookies_for_upstream(headers);
    clean(headers, |name| {
        name == header::AUTHORIZATION || name == header::FORWARDED || name == header::COOKIE || {
            let k = name.as_str();
            k == "proxy-authorization"
                || k.starts_with("x-agentgate-")
                || k.starts_with("x-forwarded-")
                || k == "x-real-ip"
                || strip.iter().any(|s| s == k)
        }
    });
    if let Some(cookies) = cookies {
        headers.insert(header::COOKIE, cookies);
    }
}

/// The items of every `name` header, split at `separator`, trimmed of ASCII white space, empty
/// ones left out. Bytes, not text: a value with bytes beyond ASCII is read as well (and costs
/// no pass to check it is text).
fn items(headers: &HeaderMap, name: HeaderName, separator: u8) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(name)
        .into_iter()
        .flat_map(move |v| v.as_bytes().split(move |b| *b == separator))
        .map(<[u8]>::trim_ascii)
        .filter(|item| !item.is_empty())
}

/// The client's cookies without our session's, as one `Cookie` value; `None` if none is left.
fn cookies_for_upstream(headers: &HeaderMap) -> Option<HeaderValue> {
    let cookies: Vec<&[u8]> = items(headers, header::COOKIE, b';')
        .filter(|c| {
            c.split(|b| *b == b'=').next().map(<[u8]>::trim_ascii)
                != Some(SESSION_COOKIE.as_bytes())
        })
        .collect();
    if cookies.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&cookies.join(&b"; "[..])).ok()
}

/// The client's address as `X-Forwarded-For` says it, written without `fmt` for IPv4.
fn forwarded_for(ip: IpAddr) -> HeaderValue {
    let IpAddr::V4(v4) = ip else {
        return HeaderValue::from_str(&ip.to_string())
            .unwrap_or(HeaderValue::from_static("unknown"));
    };
    // At most 15 bytes: four octets of up to three digits, three dots.
    let mut text = [0u8; 15];
    let mut len = 0;
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text[len] = b'.';
            len += 1;
        }
        if octet >= 100 {
            text[len] = b'0' + octet / 100;
            len += 1;
        }
        if octet >= 10 {
            text[len] = b'0' + octet / 10 % 10;
            len += 1;
        }
        text[len] = b'0' + octet % 10;
        len += 1;
    }
    HeaderValue::from_bytes(&text[..len]).unwrap_or(HeaderValue::from_static("unknown"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hop_by_hop_names_are_one_list_as_names_and_as_text() {
        for text in HOP_BY_HOP {
            assert!(is_hop_by_hop(&HeaderName::from_static(text)), "{text}");
        }
        for other in ["host", "content-length", "x-te", "keep-alive-x", "accept"] {
            assert!(!is_hop_by_hop(&HeaderName::from_static(other)), "{other}");
        }
    }

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
            ("connection", "Close , X-Other"),
            ("x-hop", "1"),
            ("x-other", "1"),
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

    #[test]
    fn the_forwarded_for_address_is_written_as_the_address_reads() {
        for ip in [
            "127.0.0.1",
            "0.0.0.0",
            "10.200.9.255",
            "192.168.100.1",
            "::1",
            "fe80::1:2",
        ] {
            let parsed: IpAddr = ip.parse().unwrap();
            assert_eq!(forwarded_for(parsed), ip);
        }
    }

    /// A value whose bytes are a slice of `buffer`, as hyper's parser makes them.
    fn shared(buffer: &axum::body::Bytes, text: &str) -> HeaderValue {
        let start = buffer
            .windows(text.len())
            .position(|w| w == text.as_bytes())
            .unwrap();
        HeaderValue::from_maybe_shared(buffer.slice(start..start + text.len())).unwrap()
    }

    #[test]
    fn a_forwarded_head_owns_its_memory_unless_it_asks_for_a_stream() {
        let buffer = axum::body::Bytes::from_static(
            b"GET /a?b=1 HTTP/1.1\r\nx-a: one\r\nx-a: two\r\nauthorization: Bearer s\r\n\
              accept: TEXT/Event-Stream\r\n\r\n",
        );
        let head = |accept: bool| {
            let mut req = hyper::Request::builder().uri("/a?b=1").body(()).unwrap();
            let h = req.headers_mut();
            h.append("x-a", shared(&buffer, "one"));
            h.append("x-a", shared(&buffer, "two"));
            let mut secret = shared(&buffer, "Bearer s");
            secret.set_sensitive(true);
            h.append(header::AUTHORIZATION, secret);
            if accept {
                h.append(header::ACCEPT, shared(&buffer, "TEXT/Event-Stream"));
            }
            req
        };
        let inside = |v: &HeaderValue| buffer.as_ptr_range().contains(&v.as_bytes().as_ptr());

        let mut req = head(false);
        own_head(&mut req, false);
        let values: Vec<_> = req.headers().get_all("x-a").iter().collect();
        assert_eq!(values, ["one", "two"], "every value, in order");
        assert!(req.headers().values().all(|v| !inside(v)), "copied out");
        assert!(req.headers()[header::AUTHORIZATION].is_sensitive());
        assert_eq!(req.uri(), "/a?b=1");

        let mut req = head(true);
        own_head(&mut req, false);
        assert!(
            req.headers().values().all(inside),
            "a stream's head is left alone"
        );
        let mut req = head(false);
        own_head(&mut req, true);
        assert!(
            req.headers().values().all(inside),
            "so is a preset's known stream's"
        );
    }

    #[test]
    fn the_upstream_uri_keeps_the_path_and_query_under_the_upstreams_prefix() {
        let at = |prefix: &str, path: &str| {
            let path: Uri = path.parse().unwrap();
            let uri = upstream_uri(prefix, path.path_and_query());
            uri.map(|u| u.to_string()).unwrap_or_default()
        };
        assert_eq!(at("", "/session?x=1"), "/session?x=1");
        assert_eq!(at("", "http://other:1/session?x=1"), "/session?x=1");
        assert_eq!(at("/v1", "/models"), "/v1/models");
        assert_eq!(at("", "*"), "", "only a path is forwarded");
    }
}
