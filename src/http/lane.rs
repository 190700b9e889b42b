//! A gateway's fast lane: the requests clients send most (a `GET` or `HEAD` without a body, an
//! upgrade or an event stream) are read, checked and forwarded in the client connection's own
//! task, without hyper's server and client between, over plain kept-alive upstream connections.
//!
//! The checks are the same functions as on hyper's path, on the same types: the head is parsed
//! with `httparse` (hyper's own parser) into `http`'s request, then screened by the guard
//! ([`super::guard::screen`]: `Host`, `Origin`, credentials in the URL) and admitted by the table
//! and the credential ([`super::gateway::admit`], which also cleans the head for the upstream).
//! The answer's head is read with `httparse` too, its hop-by-hop headers dropped as on hyper's
//! path, and its body carried as its framing says (RFC 9112 §6.3): a length as it is, chunks or a
//! body that ends with the connection as chunks, ending with the credential.
//!
//! Everything else stays hyper's: at the first request on a connection that the lane does not
//! take (a body, an upgrade, an event stream, `Expect`, HTTP/1.0, a head over [`MAX_HEAD`], or one
//! that does not parse), the connection is handed to hyper's server with the bytes read so far
//! ([`Left::Hyper`]) and stays there. The lane exists because hyper's server and client, joined
//! with nothing between, already reach only 0.80–0.90 × nginx's plain proxy on one core
//! (docs/PERFORMANCE.md), and a gateway goal is 0.95 ×.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version, header,
};
use axum::response::IntoResponse;
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Sleep;

use super::access::{self, Caller};
use super::error::ErrorCause;
use super::gateway::{self, Gate};
use super::limits::{HEADER_READ_TIMEOUT, MAX_HEADERS};
use super::upstream_events::{self as h1, Framing, Step};
use super::{Site, guard, log};

/// Longest request head the lane reads; a longer one is hyper's (which refuses it past its own,
/// larger bound with 431).
const MAX_HEAD: usize = 8192;
/// Most answer bytes gathered before they are written to the client.
const WRITE_AT: usize = 64 * 1024;

/// How a connection left the lane.
pub(super) enum Left {
    /// It is closed: the client went or asked to, it idled too long, the daemon is stopping, or
    /// an answer failed midway.
    Closed,
    /// Its next request is not the lane's: hyper serves the connection from here on, starting
    /// with these bytes.
    Hyper(Prefixed),
}

/// Serves requests on a gateway's connection while they are the lane's.
pub(super) async fn serve(
    site: &Site,
    gate: &Gate,
    mut tcp: TcpStream,
    peer: SocketAddr,
    stopping: &mut watch::Receiver<bool>,
) -> Left {
    let mut buf = BytesMut::new();
    // The connection's two timers, a head's (and an idle connection's) and the upstream's: made
    // once and moved later per request, which costs no trip to the runtime's timer wheel, where
    // a timer made per request costs two.
    let timer = tokio::time::sleep(HEADER_READ_TIMEOUT);
    let upstream_timer = tokio::time::sleep(gate.proxy.timeout);
    tokio::pin!(timer, upstream_timer);
    loop {
        timer
            .as_mut()
            .reset(tokio::time::Instant::now() + HEADER_READ_TIMEOUT);
        let (req, used, close) = loop {
            if !buf.is_empty() {
                match parse(&buf, gate) {
                    Parsed::Lane { req, used, close } => break (req, used, close),
                    Parsed::Hyper => return Left::Hyper(Prefixed::new(buf.freeze(), tcp)),
                    Parsed::Partial if buf.len() >= MAX_HEAD => {
                        return Left::Hyper(Prefixed::new(buf.freeze(), tcp));
                    }
                    Parsed::Partial => {}
                }
            }
            // The next bytes, within the head's time; between requests, until the daemon stops.
            let idle = buf.is_empty();
            tokio::select! {
                biased;
                ready = tcp.readable() => if ready.is_err() { return Left::Closed },
                () = &mut timer => return Left::Closed,
                _ = stopping.wait_for(|stop| *stop), if idle => return Left::Closed,
            }
            buf.reserve(h1::READ);
            match tcp.try_read_buf(&mut buf) {
                Ok(0) => return Left::Closed,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(_) => return Left::Closed,
            }
        };
        buf.advance(used);
        if buf.is_empty() {
            // An idle connection holds no buffer.
            buf = BytesMut::new();
        }
        if !answer(
            site,
            gate,
            &mut tcp,
            peer,
            (req, close),
            upstream_timer.as_mut(),
        )
        .await
            || close
        {
            return Left::Closed;
        }
    }
}

/// What the bytes at hand hold.
// Made and taken apart at once, once per request: a box would cost an allocation each time.
#[allow(clippy::large_enum_variant)]
enum Parsed {
    /// A whole head the lane takes: its request, its length, and whether it asks to close.
    Lane {
        req: Request<Body>,
        used: usize,
        close: bool,
    },
    /// Not all of a head yet.
    Partial,
    /// A head that is hyper's.
    Hyper,
}

fn parse(buf: &[u8], gate: &Gate) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    match parsed.parse(buf) {
        Ok(httparse::Status::Complete(used)) => match request(&parsed, gate) {
            Some((req, close)) => Parsed::Lane { req, used, close },
            None => Parsed::Hyper,
        },
        Ok(httparse::Status::Partial) => Parsed::Partial,
        // hyper answers it (400, or 431 for too many headers).
        Err(_) => Parsed::Hyper,
    }
}

/// The request in a parsed head if the lane takes it, and whether it asks to close the
/// connection after its answer.
fn request(parsed: &httparse::Request<'_, '_>, gate: &Gate) -> Option<(Request<Body>, bool)> {
    if parsed.version != Some(1) {
        return None;
    }
    let method = match parsed.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    let path = parsed.path?;
    if !path.starts_with('/') {
        return None;
    }
    let mut headers = HeaderMap::with_capacity(parsed.headers.len() + 4);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        // A body, or a change of protocol: hyper's.
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::UPGRADE
            || name == header::EXPECT
        {
            return None;
        }
        headers.append(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    let close = says_close(&headers);
    // The preset's streams are known by path; the query is not part of it.
    let route = path.split_once('?').map_or(path, |(route, _)| route);
    if h1::is_event_stream(&method, &headers, gate.stream_route(route)) {
        return None;
    }
    let uri = Uri::from_maybe_shared(Bytes::copy_from_slice(path.as_bytes())).ok()?;
    let mut req = Request::new(Body::empty());
    *req.method_mut() = method;
    *req.uri_mut() = uri;
    *req.version_mut() = Version::HTTP_11;
    *req.headers_mut() = headers;
    Some((req, close))
}

/// Answers one request: refused by the guard or the table, or forwarded. `close`: the client
/// asked to close the connection after it. Returns whether the connection can carry another.
async fn answer(
    site: &Site,
    gate: &Gate,
    tcp: &mut TcpStream,
    peer: SocketAddr,
    (req, close): (Request<Body>, bool),
    timer: Pin<&mut Sleep>,
) -> bool {
    let started = Instant::now();
    let method = req.method().clone();
    // The URI's bytes are shared, not copied: the log line borrows its path.
    let uri = req.uri().clone();
    let mut asked = Asked {
        method: &method,
        path: log::redacted(uri.path()),
        started,
        cors: false,
        close,
    };
    let (response, caller) = match guard::screen(&site.hosts, &req, site.max_body) {
        guard::Screen::Answer { response, cors } => {
            asked.cors = cors;
            (response, None)
        }
        guard::Screen::Pass { cors } => {
            asked.cors = cors;
            let (mut parts, _) = req.into_parts();
            match gateway::admit(gate, peer, &mut parts).await {
                Ok(who) => {
                    let head = h1::request_head(&parts, false);
                    drop(parts);
                    return forward(gate, tcp, &head, &asked, Caller(who), timer).await;
                }
                Err((error, caller)) => (error.into_response(), caller),
            }
        }
    };
    ours(tcp, response, &asked, caller.as_ref()).await
}

/// A request being answered, as its log line and its answer's head need it.
struct Asked<'a> {
    method: &'a Method,
    path: &'a str,
    started: Instant,
    /// An open-CORS path (the guard's).
    cors: bool,
    /// The client asked to close the connection after the answer: the answer says so too.
    close: bool,
}

/// Writes one of our own answers (its body is whole), with the headers every answer of ours
/// carries, and logs it with who asked, if known.
async fn ours(
    tcp: &mut TcpStream,
    mut response: Response<Body>,
    asked: &Asked<'_>,
    caller: Option<&Caller>,
) -> bool {
    guard::secure(&mut response, asked.cors);
    let cause = response.extensions_mut().remove::<ErrorCause>();
    let status = response.status();
    log::line(
        asked.method,
        asked.path,
        asked.started,
        status.as_u16(),
        cause.as_ref().map(|c| c.0.as_str()),
        caller,
    );
    let (parts, body) = response.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut out = Vec::with_capacity(512 + body.len());
    head(
        &mut out,
        status,
        &parts.headers,
        Some(body.len()),
        asked.close,
    );
    if *asked.method != Method::HEAD {
        out.extend_from_slice(&body);
    }
    tcp.write_all(&out).await.is_ok()
}

/// Sends `caller`'s request `head` upstream and carries the answer back; `timer`: the
/// connection's upstream timer, set here to the gateway's timeout. Returns whether the client's
/// connection can carry another request.
async fn forward(
    gate: &Gate,
    client: &mut TcpStream,
    request: &[u8],
    asked: &Asked<'_>,
    caller: Caller,
    mut timer: Pin<&mut Sleep>,
) -> bool {
    timer
        .as_mut()
        .reset(tokio::time::Instant::now() + gate.proxy.timeout);
    let exchanged = tokio::select! {
        biased;
        exchanged = h1::exchange(&gate.pool, request, gate.proxy.head_limit) => exchanged,
        () = timer => return ours(client, gate.timed_out().into_response(), asked, Some(&caller)).await,
    };
    let (mut up, mut answer, mut rest) = match exchanged {
        Ok(exchanged) => exchanged,
        Err(e) => {
            return ours(
                client,
                gate.failed(&e).into_response(),
                asked,
                Some(&caller),
            )
            .await;
        }
    };
    let status = answer.status();
    let mut reusable = answer.version() == Version::HTTP_11 && !says_close(answer.headers());
    let mut framing = if *asked.method == Method::HEAD {
        Framing::Done
    } else {
        match h1::framing(status, answer.headers_mut()) {
            Ok(framing) => framing,
            Err(what) => {
                let error = gate.failed(&h1::invalid(what));
                return ours(client, error.into_response(), asked, Some(&caller)).await;
            }
        }
    };
    gateway::clean_hop_by_hop(answer.headers_mut());
    log::line(
        asked.method,
        asked.path,
        asked.started,
        status.as_u16(),
        None,
        Some(&caller),
    );
    // A body that ends with the connection leaves nothing to use again.
    reusable &= framing != Framing::Close;
    let chunked = matches!(framing, Framing::Chunked(_) | Framing::Close);
    let mut out = Vec::with_capacity(512 + rest.len());
    head(&mut out, status, answer.headers(), None, asked.close);
    if chunked {
        // Chunks, or a body that ends with the upstream's connection, go on as chunks.
        out.truncate(out.len() - 2);
        out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
    }
    drop(answer);
    let carried = if chunked {
        // A stream: it ends with its credential.
        let ended = access::credential_ended(&gate.app, &caller.0);
        tokio::select! {
            carried = carry(&mut up, client, &mut framing, &mut rest, &mut out, true) => carried,
            () = ended => {
                tracing::debug!(path = asked.path, "a proxied stream ended with its credential");
                return false;
            }
        }
    } else {
        carry(&mut up, client, &mut framing, &mut rest, &mut out, false).await
    };
    match carried {
        Ok(()) => {
            if reusable && rest.is_empty() {
                gate.pool.put_tcp(up);
            }
            true
        }
        Err(e) => {
            tracing::debug!(path = asked.path, error = %e, "a proxied answer was cut short");
            false
        }
    }
}

/// Carries an answer's body from `up` to `client` as `framing` says, after the head in `out`;
/// `chunked`: as chunks. Bytes at hand are gathered and written together.
async fn carry(
    up: &mut TcpStream,
    client: &mut TcpStream,
    framing: &mut Framing,
    rest: &mut BytesMut,
    out: &mut Vec<u8>,
    chunked: bool,
) -> std::io::Result<()> {
    loop {
        match framing.next(rest) {
            Step::Data(data) => {
                if chunked {
                    let _ = write!(Text(out), "{:x}\r\n", data.len());
                }
                out.extend_from_slice(&data);
                if chunked {
                    out.extend_from_slice(b"\r\n");
                }
                if out.len() >= WRITE_AT {
                    client.write_all(out).await?;
                    out.clear();
                }
            }
            Step::End => {
                if chunked {
                    out.extend_from_slice(b"0\r\n\r\n");
                }
                return client.write_all(out).await;
            }
            Step::Bad(what) => {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, what));
            }
            Step::More => {
                if !out.is_empty() {
                    client.write_all(out).await?;
                    out.clear();
                }
                if rest.is_empty() {
                    *rest = BytesMut::new();
                }
                rest.reserve(h1::READ);
                if up.read_buf(rest).await? == 0 {
                    if *framing != Framing::Close {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "the upstream closed the connection mid-answer",
                        ));
                    }
                    *framing = Framing::Done;
                }
            }
        }
    }
}

/// `fmt::Write` into a byte vector.
struct Text<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for Text<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
    }
}

/// Whether a head's `Connection` says the connection closes after this exchange.
fn says_close(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
}

/// Writes an answer's status line and headers; `length`: its `Content-Length`, in place of any
/// framing headers it has (none for a status that has no body); `close`: it says the connection
/// closes after it.
fn head(
    out: &mut Vec<u8>,
    status: StatusCode,
    headers: &HeaderMap,
    length: Option<usize>,
    close: bool,
) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in headers {
        if length.is_some() && (name == header::CONTENT_LENGTH || name == header::TRANSFER_ENCODING)
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    match length {
        Some(_) if status.is_informational() || status == StatusCode::NO_CONTENT => {}
        Some(length) => {
            let _ = write!(Text(out), "content-length: {length}\r\n");
        }
        None => {}
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A connection handed to hyper, with the bytes the lane read and did not use first.
pub(super) struct Prefixed {
    read: Bytes,
    tcp: TcpStream,
}

impl Prefixed {
    fn new(read: Bytes, tcp: TcpStream) -> Prefixed {
        Prefixed { read, tcp }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.read.is_empty() {
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        let n = this.read.len().min(buf.remaining());
        buf.put_slice(&this.read[..n]);
        this.read.advance(n);
        if this.read.is_empty() {
            // Let go of the lane's buffer.
            this.read = Bytes::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}
