//! A gateway's connections to its upstream: HTTP/1.1 keep-alive connections made with hyper's
//! connection API, the idle ones kept on a stack; and a second stack of plain sockets for the
//! fast lane (`super::lane`), which reads its answers itself (`upstream_events::exchange`).
//!
//! A gateway has one upstream, so this is lighter than hyper-util's general client, which keys its
//! pool by origin, boxes every request's future and spawns a task per request to notice when the
//! connection can be used again. Here a connection goes back on the stack when the response body
//! that came over it is dropped having been read to its end ([`Reused`]); one whose answer was cut
//! short, failed, or switched protocols is closed instead. The most recently used connection is
//! taken first; one idle for [`IDLE_TIMEOUT`] is closed rather than used.
//!
//! An upstream may close an idle connection just as a request goes out on it (its keep-alive
//! time ran out: Node's and Bun's servers close after 5–10 s). A request never sent is sent again
//! on another connection; one that was sent is sent again only if that cannot change anything
//! (a `GET`, `HEAD`, `OPTIONS` or `TRACE` without a body, as Go's client does) and the connection
//! had been idle for [`REPLAY_AFTER_IDLE`], since a busy connection is not closed by a timer.

use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use futures_util::FutureExt;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// How long a connection attempt may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// An idle connection older than this is closed rather than used.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(90);
/// Most idle connections kept; more are closed.
pub const MAX_IDLE: usize = 256;
/// A request that can be sent again is kept, in case the upstream closes the connection under
/// it, when the connection has been idle this long.
pub const REPLAY_AFTER_IDLE: Duration = Duration::from_millis(250);

/// Where the upstream listens.
#[derive(Debug, Clone)]
enum Address {
    Ip(SocketAddr),
    /// A name, resolved on each new connection.
    Name(String, u16),
}

/// The connections to one upstream.
pub struct Pool {
    address: Address,
    builder: http1::Builder,
    idle: Mutex<Vec<Idle>>,
    /// The gateway's fast lane's idle connections (`super::lane`), plain sockets between
    /// answers.
    idle_tcp: Mutex<Vec<(TcpStream, Instant)>>,
}

struct Idle {
    sender: SendRequest<Body>,
    since: Instant,
}

/// Why a request did not get an answer from the upstream.
#[derive(Debug)]
pub enum Failed {
    /// No connection could be made.
    Connect(std::io::Error),
    /// The connection failed while the request was sent or the answer read (a body over the
    /// limit is one: its error is among the sources).
    Exchange(hyper::Error),
    /// An answer head read by us (an event stream's, the fast lane's:
    /// [`super::upstream_events`]) was longer than the head limit.
    HeadTooLarge,
    /// An answer read by us was not HTTP/1.1, or its connection failed before the head was
    /// read.
    BadAnswer(std::io::Error),
}

impl Pool {
    /// The connections to `upstream` (an `http` URL with a host), reading answers `head_limit`
    /// bytes at a time: hyper's exact read size is also the longest head it takes.
    pub fn new(upstream: &url::Url, head_limit: usize) -> Pool {
        let port = upstream.port_or_known_default().unwrap_or(80);
        let address = match upstream.host() {
            Some(url::Host::Ipv4(ip)) => Address::Ip(SocketAddr::new(IpAddr::V4(ip), port)),
            Some(url::Host::Ipv6(ip)) => Address::Ip(SocketAddr::new(IpAddr::V6(ip), port)),
            Some(url::Host::Domain(name)) => Address::Name(name.to_owned(), port),
            None => Address::Name(String::new(), port),
        };
        let mut builder = http1::Builder::new();
        builder.read_buf_exact_size(Some(head_limit));
        Pool {
            address,
            builder,
            idle: Mutex::new(Vec::new()),
            idle_tcp: Mutex::new(Vec::new()),
        }
    }

    /// Sends `request` (origin-form URI, its own `Host`) and returns the answer's head; its body
    /// gives the connection back when read to the end. A request that an idle connection closed
    /// under is sent again on another: always if it was never sent, and if it was, when it can be
    /// sent again ([`replayable`]) and the connection had been idle a while.
    pub async fn send(
        self: &Arc<Self>,
        mut request: Request<Body>,
    ) -> Result<Response<Reused>, Failed> {
        loop {
            let (mut sender, idle_for) = match self.take() {
                Some((sender, idle_for)) => (sender, Some(idle_for)),
                // Boxed: the rare path's future is not carried by every request's.
                None => (Box::pin(self.connect()).await?, None),
            };
            if sender.ready().await.is_err() {
                if idle_for.is_none() {
                    return Err(Failed::Connect(std::io::Error::other(
                        "the new connection closed at once",
                    )));
                }
                continue;
            }
            let again = match idle_for {
                Some(idle) if idle >= REPLAY_AFTER_IDLE => replayable(&request),
                _ => None,
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    return Ok(response.map(|body| Reused {
                        body,
                        ended: false,
                        back: Some((sender, self.clone())),
                    }));
                }
                Err(mut e) => match (e.take_message(), again) {
                    (Some(unsent), _) if idle_for.is_some() => request = unsent,
                    (None, Some(again)) if closed_under(e.error()) => {
                        tracing::debug!(error = %e.error(), "an idle upstream connection closed under a request; sending it again");
                        request = again;
                    }
                    _ => return Err(Failed::Exchange(e.into_error())),
                },
            }
        }
    }

    /// The most recently used idle connection and how long it was idle, unless it is closed or
    /// too old.
    fn take(&self) -> Option<(SendRequest<Body>, Duration)> {
        let mut idle = self.idle.lock().ok()?;
        while let Some(top) = idle.pop() {
            let idle_for = top.since.elapsed();
            if idle_for >= IDLE_TIMEOUT {
                // Every connection below is older still.
                idle.clear();
                return None;
            }
            if !top.sender.is_closed() {
                return Some((top.sender, idle_for));
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<Body>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            if idle.len() >= MAX_IDLE {
                idle.remove(0);
            }
            idle.push(Idle {
                sender,
                since: Instant::now(),
            });
        }
    }

    /// The most recently used idle plain connection, unless it is too old.
    pub(super) fn take_tcp(&self) -> Option<TcpStream> {
        let mut idle = self.idle_tcp.lock().ok()?;
        let (tcp, since) = idle.pop()?;
        if since.elapsed() >= IDLE_TIMEOUT {
            // Every connection below is older still.
            idle.clear();
            return None;
        }
        Some(tcp)
    }

    /// Keeps a plain connection whose answer was read to its end, for the next request.
    pub(super) fn put_tcp(&self, tcp: TcpStream) {
        if let Ok(mut idle) = self.idle_tcp.lock() {
            if idle.len() >= MAX_IDLE {
                idle.remove(0);
            }
            idle.push((tcp, Instant::now()));
        }
    }

    /// A new TCP connection to the upstream, within [`CONNECT_TIMEOUT`].
    pub(super) async fn connect_tcp(&self) -> Result<TcpStream, Failed> {
        let connecting = async {
            match &self.address {
                Address::Ip(addr) => TcpStream::connect(addr).await,
                Address::Name(name, port) => TcpStream::connect((name.as_str(), *port)).await,
            }
        };
        let tcp = match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return Err(Failed::Connect(e)),
            Err(_) => {
                return Err(Failed::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connecting timed out",
                )));
            }
        };
        let _ = tcp.set_nodelay(true);
        Ok(tcp)
    }

    async fn connect(&self) -> Result<SendRequest<Body>, Failed> {
        let tcp = self.connect_tcp().await?;
        let (sender, connection) = self
            .builder
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(Failed::Exchange)?;
        // Upgrades: opencode's `/pty` WebSocket is carried over the same connection. `map`, not
        // an async block around `.await`, which would hold the connection twice.
        tokio::spawn(connection.with_upgrades().map(|ended| {
            if let Err(e) = ended {
                tracing::debug!(error = %e, "an upstream connection ended with an error");
            }
        }));
        Ok(sender)
    }
}

/// A copy of `request` to send again, if sending it twice is the same as sending it once: a
/// method that changes nothing (RFC 9110 §9.2.1) and no body.
fn replayable(request: &Request<Body>) -> Option<Request<Body>> {
    use hyper::Method;
    let safe = [Method::GET, Method::HEAD, Method::OPTIONS, Method::TRACE];
    if !safe.contains(request.method()) || !hyper::body::Body::is_end_stream(request.body()) {
        return None;
    }
    let mut again = Request::new(Body::empty());
    *again.method_mut() = request.method().clone();
    *again.uri_mut() = request.uri().clone();
    *again.version_mut() = request.version();
    *again.headers_mut() = request.headers().clone();
    Some(again)
}

/// Whether the exchange failed because the connection ended (closed or reset) rather than
/// because of what the upstream said.
fn closed_under(error: &hyper::Error) -> bool {
    use std::error::Error as _;
    use std::io::ErrorKind;
    if error.is_incomplete_message() || error.is_canceled() {
        return true;
    }
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
            );
        }
        source = e.source();
    }
    false
}

/// An answer's body from the upstream; dropped having been read to its end, it gives its
/// connection back to the pool.
pub struct Reused {
    body: Incoming,
    ended: bool,
    back: Option<(SendRequest<Body>, Arc<Pool>)>,
}

impl Reused {
    /// Keeps the connection out of the pool: it switched protocols.
    pub fn keep_out(&mut self) {
        self.back = None;
    }
}

impl hyper::body::Body for Reused {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let frame = ready!(Pin::new(&mut self.body).poll_frame(cx));
        match &frame {
            None => self.ended = true,
            // A connection that failed mid-answer is not used again.
            Some(Err(_)) => self.back = None,
            Some(Ok(_)) => {}
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.ended || self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Reused {
    fn drop(&mut self) {
        let done = hyper::body::Body::is_end_stream(self);
        if let (true, Some((sender, pool))) = (done, self.back.take()) {
            pool.put(sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;

    /// Listens on a loopback port, counts the connections it accepts and serves each with
    /// `serve`.
    async fn listen<F, Fut>(serve: F) -> (url::Url, Arc<AtomicUsize>)
    where
        F: Fn(TcpStream) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(serve(s));
            }
        });
        (url, accepted)
    }

    /// Reads one request's head; false if the connection ended first.
    async fn read_head(s: &mut TcpStream) -> bool {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 1024];
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        true
    }

    /// An upstream that answers every request with `body`; with `once`, it closes each
    /// connection 20 ms after one answer, without saying so (as a server whose keep-alive time
    /// ran out).
    async fn upstream(body: &'static [u8], once: bool) -> (url::Url, Arc<AtomicUsize>) {
        listen(move |mut s| async move {
            while read_head(&mut s).await {
                let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                if s.write_all(head.as_bytes()).await.is_err() || s.write_all(body).await.is_err() {
                    return;
                }
                if once {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    return;
                }
            }
        })
        .await
    }

    /// An upstream that answers each connection's first request with `ok` and takes the second
    /// one without answering: it closes the connection (with a reset if `reset`), as a server
    /// whose keep-alive timer fired as the request arrived.
    async fn closing_under_the_second(reset: bool) -> (url::Url, Arc<AtomicUsize>) {
        listen(move |mut s| async move {
            if !read_head(&mut s).await {
                return;
            }
            let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
            s.write_all(ok).await.unwrap();
            if read_head(&mut s).await && reset {
                s.set_zero_linger().unwrap();
            }
        })
        .await
    }

    /// A pool with the gateways' default head limit.
    fn pool(url: &url::Url) -> Arc<Pool> {
        Arc::new(Pool::new(url, crate::gateway::DEFAULT_HEAD_LIMIT))
    }

    fn get() -> Request<Body> {
        Request::builder()
            .uri("/")
            .header("host", "upstream")
            .body(Body::empty())
            .unwrap()
    }

    #[tokio::test]
    async fn a_connection_is_used_again_once_its_answer_is_read_to_the_end() {
        let (url, accepted) = upstream(b"ok", false).await;
        let pool = pool(&url);
        for _ in 0..5 {
            let answer = pool.send(get()).await.unwrap();
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "one kept-alive connection"
        );
    }

    #[tokio::test]
    async fn an_answer_cut_short_closes_its_connection() {
        static BIG: [u8; 1 << 20] = [b'x'; 1 << 20];
        let (url, accepted) = upstream(&BIG, false).await;
        let pool = pool(&url);
        let mut answer = pool.send(get()).await.unwrap();
        answer.body_mut().frame().await.unwrap().unwrap();
        drop(answer);
        let answer = pool.send(get()).await.unwrap();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body.len(), BIG.len());
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "the cut one was not reused"
        );
        assert_eq!(pool.idle.lock().unwrap().len(), 1, "the whole one was");
    }

    #[tokio::test]
    async fn a_connection_the_upstream_closed_while_idle_costs_no_request() {
        let (url, accepted) = upstream(b"ok", true).await;
        let pool = pool(&url);
        for _ in 0..5 {
            let answer = pool
                .send(get())
                .await
                .expect("answered, never a failed exchange");
            let body = answer.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            // The upstream closes it meanwhile.
            tokio::time::sleep(Duration::from_millis(60)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_get_an_idle_connection_closed_under_after_sending_is_sent_again() {
        for reset in [false, true] {
            let (url, accepted) = closing_under_the_second(reset).await;
            let pool = pool(&url);
            let first = pool.send(get()).await.unwrap();
            first.into_body().collect().await.unwrap();
            tokio::time::sleep(REPLAY_AFTER_IDLE + Duration::from_millis(50)).await;
            let again = pool
                .send(get())
                .await
                .unwrap_or_else(|e| panic!("reset {reset}: a failed exchange: {e:?}"));
            let body = again.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(&body[..], b"ok");
            assert_eq!(accepted.load(Ordering::SeqCst), 2, "reset {reset}");
        }
    }

    #[tokio::test]
    async fn a_post_a_connection_closed_under_after_sending_is_not_sent_again() {
        let (url, accepted) = closing_under_the_second(false).await;
        let pool = pool(&url);
        let first = pool.send(get()).await.unwrap();
        first.into_body().collect().await.unwrap();
        tokio::time::sleep(REPLAY_AFTER_IDLE + Duration::from_millis(50)).await;
        let post = Request::builder()
            .method("POST")
            .uri("/")
            .header("host", "upstream")
            .body(Body::from("run it once"))
            .unwrap();
        match pool.send(post).await {
            Err(Failed::Exchange(_)) => {}
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("answered"),
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "not sent on another");
    }

    #[tokio::test]
    async fn nothing_listening_is_a_connect_failure() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        drop(listener);
        let pool = pool(&url);
        assert!(matches!(pool.send(get()).await, Err(Failed::Connect(_))));
    }
}
