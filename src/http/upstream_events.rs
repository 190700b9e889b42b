//! An event stream's own connection to a gateway's upstream, read only when bytes arrive.
//!
//! An event stream (opencode's `/event`, an MCP server's `GET` stream, a browser's
//! `EventSource`) is held open for hours and is idle nearly all of that time. Through the pool it
//! would hold a hyper client connection for its whole life: a read buffer and a header buffer of a
//! page each, and the connection's task. Here a `GET` without a body that asks for
//! `text/event-stream` (or is one of the preset's known streams) gets a TCP connection of its own: the request head is written at once, the
//! answer's head is read with `httparse` into a buffer freed as soon as it is parsed, and the body
//! is read into a fresh buffer only when the socket is readable, each read handed on as it is
//! (chunked framing is taken off without copying). An idle stream holds its socket and its
//! framing state, and no buffer. The connection serves that one request and is closed with it.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::body::Bytes;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use bytes::{Buf, BufMut, BytesMut};
use hyper::Response;
use hyper::body::{Frame, SizeHint};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::upstream::{Failed, Pool};

/// Most headers an answer may carry (hyper's own bound).
const MAX_HEADERS: usize = 100;
/// Most bytes a chunk-size line (with its extensions) or a trailer line may take.
const MAX_LINE: usize = 4096;
/// Bytes read at a time from an answer's body: a page, taken from the allocator's thread cache
/// and given back when the chunk has been written to the client.
pub(super) const READ: usize = 4096;

/// Whether a request is for an event stream: its `Accept` names `text/event-stream`, or it is a
/// `GET` of one of the preset's known streams (`stream_route`), for clients that do not say so.
pub(super) fn is_event_stream(method: &Method, headers: &HeaderMap, stream_route: bool) -> bool {
    const EVENT_STREAM: &[u8] = b"text/event-stream";
    (stream_route && method == Method::GET)
        || headers.get_all(header::ACCEPT).iter().any(|v| {
            v.as_bytes()
                .windows(EVENT_STREAM.len())
                .any(|w| w.eq_ignore_ascii_case(EVENT_STREAM))
        })
}

/// Whether a request goes on a connection of its own: a `GET` for an event stream
/// ([`is_event_stream`]), with no body and no upgrade.
pub(super) fn takes_own_connection(parts: &Parts, no_body: bool, stream_route: bool) -> bool {
    parts.method == Method::GET
        && no_body
        && !parts.headers.contains_key(header::UPGRADE)
        && is_event_stream(&parts.method, &parts.headers, stream_route)
}

/// Sends the head in `parts` (cleaned, origin-form URI, its own `Host`) on a new connection and
/// reads the answer's head; its body is read from that connection as bytes arrive.
pub(super) async fn open(
    pool: &Pool,
    parts: &Parts,
    head_limit: usize,
) -> Result<Response<Events>, Failed> {
    let mut tcp = pool.connect_tcp().await?;
    tcp.write_all(&request_head(parts, true))
        .await
        .map_err(Failed::BadAnswer)?;
    let (mut head, rest) = read_head(&mut tcp, head_limit).await?;
    let framing = framing(head.status(), head.headers_mut()).map_err(invalid)?;
    Ok(head.map(|()| Events {
        tcp,
        buf: rest,
        framing,
    }))
}

pub(super) fn invalid(what: &'static str) -> Failed {
    Failed::BadAnswer(std::io::Error::new(std::io::ErrorKind::InvalidData, what))
}

/// The request line and headers as HTTP/1.1 writes them; `close`: asking the upstream to close
/// the connection after its answer (an event stream's own connection).
pub(super) fn request_head(parts: &Parts, close: bool) -> Vec<u8> {
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(parts.method.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(target.as_bytes());
    head.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    if close {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

/// Writes a request `head` (one without a body, that can be sent twice: the fast lane's) on
/// an idle plain connection or a new one, and reads its answer's head, at most `head_limit`
/// bytes. Returns the connection, the head and the bytes read beyond it. A kept connection
/// the upstream closed while it was idle, found closed before a byte of the answer came, is
/// replaced by a new one and the head sent again, as Go's client does for such requests.
pub(super) async fn exchange(
    pool: &Pool,
    head: &[u8],
    head_limit: usize,
) -> Result<(TcpStream, Response<()>, BytesMut), Failed> {
    loop {
        let (mut tcp, kept) = match pool.take_tcp() {
            Some(tcp) => (tcp, true),
            None => (Box::pin(pool.connect_tcp()).await?, false),
        };
        let answered = match tcp.write_all(head).await {
            Ok(()) => read_head(&mut tcp, head_limit).await,
            Err(e) => Err(Failed::BadAnswer(e)),
        };
        match answered {
            Ok((answer, rest)) => return Ok((tcp, answer, rest)),
            Err(Failed::BadAnswer(e)) if kept && closed_before_answering(&e) => {
                tracing::debug!(error = %e, "a kept upstream connection was closed; sending again on a new one");
            }
            Err(e) => return Err(e),
        }
    }
}

/// Whether a plain connection failed by being closed or reset before an answer began.
fn closed_before_answering(e: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        e.kind(),
        ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::BrokenPipe
            | ErrorKind::ConnectionAborted
    )
}

/// Reads the answer's head, at most `limit` bytes, past any interim (1xx) answers. Returns it
/// with the bytes read beyond it. A connection that ends before a byte of the answer arrived is
/// `UnexpectedEof`, one that ends within it `InvalidData`.
pub(super) async fn read_head(
    tcp: &mut TcpStream,
    limit: usize,
) -> Result<(Response<()>, BytesMut), Failed> {
    let mut buf = BytesMut::new();
    loop {
        if !buf.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut headers);
            match parsed.parse(&buf) {
                Ok(httparse::Status::Complete(used)) => {
                    let code = parsed.code.unwrap_or_default();
                    if code == 101 {
                        return Err(invalid("the upstream switched protocols unasked"));
                    }
                    if (100..200).contains(&code) {
                        // `100 Continue`, `103 Early Hints`: the answer follows.
                        buf.advance(used);
                        continue;
                    }
                    let status = StatusCode::from_u16(code)
                        .map_err(|_| invalid("an answer with an invalid status"))?;
                    let mut answer = Response::new(());
                    *answer.status_mut() = status;
                    if parsed.version == Some(0) {
                        *answer.version_mut() = axum::http::Version::HTTP_10;
                    }
                    let map = answer.headers_mut();
                    map.reserve(parsed.headers.len());
                    for h in parsed.headers.iter() {
                        let name = HeaderName::from_bytes(h.name.as_bytes())
                            .map_err(|_| invalid("an answer header with an invalid name"))?;
                        let value = HeaderValue::from_bytes(h.value)
                            .map_err(|_| invalid("an answer header with an invalid value"))?;
                        map.append(name, value);
                    }
                    buf.advance(used);
                    // The head's buffer is dropped here; what came after it is kept alone.
                    let rest = if buf.is_empty() {
                        BytesMut::new()
                    } else {
                        BytesMut::from(&buf[..])
                    };
                    return Ok((answer, rest));
                }
                Ok(httparse::Status::Partial) => {}
                Err(_) => return Err(invalid("the upstream's answer is not HTTP/1.1")),
            }
        }
        if buf.len() >= limit {
            return Err(Failed::HeadTooLarge);
        }
        let room = limit - buf.len();
        buf.reserve(room.min(READ));
        let read = tcp
            .read_buf(&mut (&mut buf).limit(room))
            .await
            .map_err(Failed::BadAnswer)?;
        if read == 0 && buf.is_empty() {
            return Err(Failed::BadAnswer(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the upstream closed the connection before answering",
            )));
        }
        if read == 0 {
            return Err(invalid(
                "the upstream closed the connection within its answer's head",
            ));
        }
    }
}

/// How an answer's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Framing {
    /// It has none, or it has all been read.
    Done,
    /// After this many more bytes.
    Length(u64),
    /// With its last chunk.
    Chunked(Chunk),
    /// When the upstream closes the connection.
    Close,
}

/// Where a chunked body's reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Chunk {
    /// At a chunk-size line.
    Size,
    /// In a chunk's data, this many bytes from its end.
    Data(u64),
    /// At the line end after a chunk's data.
    DataEnd,
    /// In the trailer section, after the last chunk.
    Trailers,
}

/// The body's framing from the answer's status and headers. A `Content-Length` is dropped when a
/// `Transfer-Encoding` is present, which overrides it; lengths that disagree or do not parse are
/// refused, as the request side refuses them.
pub(super) fn framing(
    status: StatusCode,
    headers: &mut HeaderMap,
) -> Result<Framing, &'static str> {
    if status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Ok(Framing::Done);
    }
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
        let last = headers
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .map(<[u8]>::trim_ascii)
            .rfind(|c| !c.is_empty());
        return Ok(match last {
            Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => {
                Framing::Chunked(Chunk::Size)
            }
            _ => Framing::Close,
        });
    }
    let mut length = None;
    for value in headers.get_all(header::CONTENT_LENGTH) {
        for item in value
            .as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
        {
            let n = std::str::from_utf8(item)
                .ok()
                .filter(|t| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|t| t.parse::<u64>().ok())
                .ok_or("an answer with a Content-Length that does not parse")?;
            if length.is_some_and(|l| l != n) {
                return Err("an answer with two different Content-Lengths");
            }
            length = Some(n);
        }
    }
    Ok(match length {
        Some(0) => Framing::Done,
        Some(n) => Framing::Length(n),
        None => Framing::Close,
    })
}

/// What [`Framing::next`] found in the bytes at hand.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Step {
    Data(Bytes),
    End,
    More,
    Bad(&'static str),
}

impl Framing {
    /// Takes the next piece of the body from `buf`: data (without copying), its end, or a need
    /// for more bytes.
    pub(super) fn next(&mut self, buf: &mut BytesMut) -> Step {
        loop {
            match self {
                Framing::Done => return Step::End,
                Framing::Close if buf.is_empty() => return Step::More,
                Framing::Close => return Step::Data(buf.split().freeze()),
                Framing::Length(_) | Framing::Chunked(Chunk::Data(_)) if buf.is_empty() => {
                    return Step::More;
                }
                Framing::Length(left) => {
                    let data = take(buf, left);
                    if *left == 0 {
                        *self = Framing::Done;
                    }
                    return Step::Data(data);
                }
                Framing::Chunked(Chunk::Data(left)) => {
                    let data = take(buf, left);
                    if *left == 0 {
                        *self = Framing::Chunked(Chunk::DataEnd);
                    }
                    return Step::Data(data);
                }
                Framing::Chunked(Chunk::Size) => match httparse::parse_chunk_size(buf) {
                    Ok(httparse::Status::Complete((used, size))) => {
                        buf.advance(used);
                        *self = Framing::Chunked(if size == 0 {
                            Chunk::Trailers
                        } else {
                            Chunk::Data(size)
                        });
                    }
                    Ok(httparse::Status::Partial) if buf.len() > MAX_LINE => {
                        return Step::Bad("a chunk-size line too long");
                    }
                    Ok(httparse::Status::Partial) => return Step::More,
                    Err(_) => return Step::Bad("a chunk size that does not parse"),
                },
                Framing::Chunked(Chunk::DataEnd) => {
                    if buf.len() < 2 {
                        return Step::More;
                    }
                    if &buf[..2] != b"\r\n" {
                        return Step::Bad("a chunk longer than its size");
                    }
                    buf.advance(2);
                    *self = Framing::Chunked(Chunk::Size);
                }
                Framing::Chunked(Chunk::Trailers) => {
                    match buf.windows(2).position(|w| w == b"\r\n") {
                        // The empty line ends the body; trailers are not passed on.
                        Some(0) => {
                            buf.advance(2);
                            *self = Framing::Done;
                            return Step::End;
                        }
                        Some(end) => buf.advance(end + 2),
                        None if buf.len() > MAX_LINE => {
                            return Step::Bad("a trailer line too long");
                        }
                        None => return Step::More,
                    }
                }
            }
        }
    }
}

/// Up to `left` bytes from the front of `buf` (which is not empty), counted off `left`.
fn take(buf: &mut BytesMut, left: &mut u64) -> Bytes {
    let n = usize::try_from(*left).map_or(buf.len(), |l| l.min(buf.len()));
    *left -= n as u64;
    buf.split_to(n).freeze()
}

/// An event stream's body, read from its own connection as bytes arrive.
pub struct Events {
    tcp: TcpStream,
    /// Bytes read and not yet handed on: empty, and holding no memory, while the stream idles.
    buf: BytesMut,
    framing: Framing,
}

impl Events {
    /// Ends the body with `e`: nothing more is read after a failure.
    fn fail(&mut self, e: std::io::Error) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.framing = Framing::Done;
        Poll::Ready(Some(Err(e)))
    }
}

impl hyper::body::Body for Events {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            match this.framing.next(&mut this.buf) {
                Step::Data(data) => return Poll::Ready(Some(Ok(Frame::data(data)))),
                Step::End => return Poll::Ready(None),
                Step::Bad(what) => {
                    return this.fail(std::io::Error::new(std::io::ErrorKind::InvalidData, what));
                }
                Step::More => {}
            }
            if this.buf.is_empty() {
                // Let go of the last read's memory (the data handed on shares it).
                this.buf = BytesMut::new();
            }
            if let Err(e) = ready!(this.tcp.poll_read_ready(cx)) {
                return this.fail(e);
            }
            this.buf.reserve(READ);
            match this.tcp.try_read_buf(&mut this.buf) {
                Ok(0) if this.framing == Framing::Close => {
                    this.framing = Framing::Done;
                    return Poll::Ready(None);
                }
                Ok(0) => {
                    return this.fail(std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the upstream closed the connection mid-answer",
                    ));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return this.fail(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.framing == Framing::Done && self.buf.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            Framing::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use http_body_util::BodyExt;
    use hyper::body::Body as _;
    use tokio::net::TcpListener;

    use super::*;

    /// Runs `next` over `input` fed `step` bytes at a time; returns the data and whether the
    /// body ended exactly at the input's end.
    fn decode(mut framing: Framing, input: &[u8], step: usize) -> Result<(Vec<u8>, bool), &str> {
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        for piece in input.chunks(step) {
            buf.extend_from_slice(piece);
            loop {
                match framing.next(&mut buf) {
                    Step::Data(d) => data.extend_from_slice(&d),
                    Step::End => return Ok((data, buf.is_empty())),
                    Step::More => break,
                    Step::Bad(what) => return Err(what),
                }
            }
        }
        Ok((data, false))
    }

    const CHUNKED: &[u8] = b"5\r\nhello\r\n1A;name=\"value\"\r\nabcdefghijklmnopqrstuvwxyz\r\n\
                             0\r\nx-checksum: 1\r\n\r\n";

    #[test]
    fn chunked_framing_is_taken_off_however_the_reads_split_it() {
        for step in [1, 2, 3, 7, CHUNKED.len()] {
            let (data, whole) = decode(Framing::Chunked(Chunk::Size), CHUNKED, step).unwrap();
            assert_eq!(data, b"helloabcdefghijklmnopqrstuvwxyz", "step {step}");
            assert!(whole, "step {step}: ends at the empty line");
        }
        let (data, _) = decode(Framing::Length(4), b"abcdef", 1).unwrap();
        assert_eq!(data, b"abcd");
    }

    #[test]
    fn chunks_that_lie_about_their_size_are_refused() {
        let long_line = [b"1;".as_slice(), &[b'x'; MAX_LINE]].concat();
        for (input, why) in [
            (b"zz\r\n".as_slice(), "a chunk size that does not parse"),
            (b"3\r\nabcd\r\n", "a chunk longer than its size"),
            (
                b"ffffffffffffffffff\r\n",
                "a chunk size that does not parse",
            ),
            (&long_line, "a chunk-size line too long"),
        ] {
            assert_eq!(
                decode(Framing::Chunked(Chunk::Size), input, 1),
                Err(why),
                "{}",
                String::from_utf8_lossy(&input[..input.len().min(20)])
            );
        }
    }

    #[test]
    fn framing_follows_rfc_9112() {
        let f = |status: u16, headers: &[(&str, &str)]| {
            let mut map = HeaderMap::new();
            for (k, v) in headers {
                map.append(
                    HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            let framing = framing(StatusCode::from_u16(status).unwrap(), &mut map);
            (framing, map.contains_key(header::CONTENT_LENGTH))
        };
        assert_eq!(f(204, &[]).0, Ok(Framing::Done));
        assert_eq!(f(304, &[("content-length", "9")]).0, Ok(Framing::Done));
        assert_eq!(
            f(
                200,
                &[("transfer-encoding", "chunked"), ("content-length", "9")]
            ),
            (Ok(Framing::Chunked(Chunk::Size)), false),
            "Transfer-Encoding overrides Content-Length, which is dropped"
        );
        assert_eq!(
            f(200, &[("transfer-encoding", "chunked, gzip")]).0,
            Ok(Framing::Close)
        );
        assert_eq!(
            f(200, &[("transfer-encoding", "gzip, Chunked")]).0,
            Ok(Framing::Chunked(Chunk::Size))
        );
        assert_eq!(f(200, &[]).0, Ok(Framing::Close));
        assert_eq!(f(200, &[("content-length", "0")]).0, Ok(Framing::Done));
        assert_eq!(
            f(200, &[("content-length", "5, 5"), ("content-length", "5")]).0,
            Ok(Framing::Length(5))
        );
        for bad in [
            vec!["5, 6"],
            vec!["5", "6"],
            vec!["+5"],
            vec!["0x5"],
            vec![""],
        ] {
            let headers: Vec<_> = bad.iter().map(|v| ("content-length", *v)).collect();
            assert!(f(200, &headers).0.is_err(), "{bad:?}");
        }
    }

    /// An upstream on a loopback port that reads one request head, hands it over, then writes
    /// `parts` one by one, waiting for a go before each after the first.
    async fn upstream(
        parts: Vec<&'static [u8]>,
    ) -> (
        Pool,
        tokio::sync::oneshot::Receiver<Vec<u8>>,
        tokio::sync::mpsc::Sender<()>,
    ) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = url::Url::parse(&format!("http://{}", listener.local_addr().unwrap())).unwrap();
        let (head_tx, head_rx) = tokio::sync::oneshot::channel();
        let (go_tx, mut go_rx) = tokio::sync::mpsc::channel(8);
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte).await.unwrap_or(0) == 0 {
                    return;
                }
                head.push(byte[0]);
            }
            let _ = head_tx.send(head);
            for (i, part) in parts.into_iter().enumerate() {
                if i > 0 && go_rx.recv().await.is_none() {
                    return;
                }
                if s.write_all(part).await.is_err() {
                    return;
                }
            }
            // Held open until the test lets go.
            let _ = go_rx.recv().await;
        });
        let pool = Pool::new(&url, crate::gateway::DEFAULT_HEAD_LIMIT);
        (pool, head_rx, go_tx)
    }

    fn events_request() -> Parts {
        hyper::Request::builder()
            .uri("/events?since=1")
            .header("host", "upstream.test")
            .header("accept", "text/event-stream")
            .body(())
            .unwrap()
            .into_parts()
            .0
    }

    #[tokio::test]
    async fn an_event_stream_comes_chunk_by_chunk_and_holds_no_buffer_while_idle() {
        let (pool, head, go) = upstream(vec![
            b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n\
              content-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
            b"9\r\ndata: 1\n\n\r\n",
            b"9\r\ndata: 2\n\n\r\n0\r\n\r\n",
        ])
        .await;
        let parts = events_request();
        assert!(takes_own_connection(&parts, true, false));
        let answer = open(&pool, &parts, 4096).await.unwrap();
        let head = String::from_utf8(head.await.unwrap()).unwrap();
        assert!(
            head.starts_with("GET /events?since=1 HTTP/1.1\r\n"),
            "{head}"
        );
        assert!(head.contains("host: upstream.test\r\n"), "{head}");
        assert!(head.ends_with("connection: close\r\n\r\n"), "{head}");
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["content-type"], "text/event-stream");
        let mut body = answer.into_body();
        go.send(()).await.unwrap();
        let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert_eq!(&first[..], b"data: 1\n\n");
        // Nothing more has come: the stream idles without a buffer.
        let waiting = tokio::time::timeout(Duration::from_millis(50), body.frame()).await;
        assert!(waiting.is_err(), "nothing was sent");
        assert_eq!(body.buf.capacity(), 0, "no memory held while idle");
        go.send(()).await.unwrap();
        let rest = body.collect().await.unwrap().to_bytes();
        assert_eq!(&rest[..], b"data: 2\n\n");
    }

    #[tokio::test]
    async fn bodies_end_as_their_framing_says_or_fail() {
        // Read to the connection's end.
        let (pool, _head, go) = upstream(vec![b"HTTP/1.1 200 OK\r\n\r\nuntil close"]).await;
        let body = open(&pool, &events_request(), 4096).await.unwrap();
        drop(go);
        let data = body.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&data[..], b"until close");
        // A length, and nothing read past it.
        let (pool, _head, _go) = upstream(vec![
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nfourmore",
        ])
        .await;
        let body = open(&pool, &events_request(), 4096).await.unwrap();
        assert_eq!(body.body().size_hint().exact(), Some(4));
        let data = body.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&data[..], b"four");
        // Cut short, by length or mid-chunk: an error, never a body that looks whole.
        for cut in [
            b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nfour".as_slice(),
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n9\r\nbro",
        ] {
            let (pool, _head, go) = upstream(vec![cut]).await;
            let body = open(&pool, &events_request(), 4096).await.unwrap();
            drop(go);
            assert!(body.into_body().collect().await.is_err());
        }
    }

    #[tokio::test]
    async fn answers_that_are_not_http_or_too_long_are_named() {
        let long = format!("HTTP/1.1 200 OK\r\nx-big: {}\r\n\r\n", "b".repeat(5000)).leak();
        let cases: Vec<(&'static [u8], &str)> = vec![
            (b"SSH-2.0-OpenSSH_9.2\r\n\r\n", "not HTTP/1.1"),
            (long.as_bytes(), "head too large"),
            (
                b"HTTP/1.1 101 Switching Protocols\r\nupgrade: x\r\n\r\n",
                "unasked",
            ),
            (
                b"HTTP/1.1 200 OK\r\ncontent-length: 1, 2\r\n\r\n",
                "two different",
            ),
            (b"HTTP/1.1 200 OK\r\ncontent-le", "within its answer's head"),
            (b"", "before answering"),
        ];
        for (answer, expected) in cases {
            let (pool, _head, go) = upstream(vec![answer]).await;
            let request = events_request();
            let opening = open(&pool, &request, 4096);
            let failed = if ["before answering", "within its answer's head"].contains(&expected) {
                // The upstream closes after what it sent.
                let (failed, ()) = tokio::join!(opening, async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    drop(go);
                });
                failed
            } else {
                opening.await
            };
            let text = match failed {
                Ok(_) => panic!("{expected}: answered"),
                Err(Failed::HeadTooLarge) => "head too large".to_owned(),
                Err(Failed::BadAnswer(e)) => e.to_string(),
                Err(other) => panic!("{expected}: {other:?}"),
            };
            assert!(text.contains(expected), "{expected}: {text}");
        }
        // The same long head within a larger limit is taken whole.
        let (pool, _head, _go) = upstream(vec![long.as_bytes()]).await;
        let answer = open(&pool, &events_request(), 8192).await.unwrap();
        assert_eq!(answer.headers()["x-big"].len(), 5000);
    }

    #[test]
    fn only_a_bodiless_get_for_events_takes_its_own_connection() {
        let parts = |method: &str, accept: &str, upgrade: bool| {
            let mut b = hyper::Request::builder()
                .method(method)
                .header("accept", accept);
            if upgrade {
                b = b.header("upgrade", "websocket");
            }
            b.body(()).unwrap().into_parts().0
        };
        let events = "application/json, Text/Event-Stream";
        assert!(takes_own_connection(
            &parts("GET", events, false),
            true,
            false
        ));
        assert!(!takes_own_connection(
            &parts("GET", events, false),
            false,
            false
        ));
        assert!(!takes_own_connection(
            &parts("POST", events, false),
            true,
            false
        ));
        assert!(!takes_own_connection(
            &parts("GET", events, true),
            true,
            false
        ));
        assert!(!takes_own_connection(
            &parts("GET", "*/*", false),
            true,
            false
        ));
        // A preset's known stream, whatever the client accepts; still only a plain GET.
        assert!(takes_own_connection(
            &parts("GET", "*/*", false),
            true,
            true
        ));
        assert!(!takes_own_connection(
            &parts("HEAD", "*/*", false),
            true,
            true
        ));
        assert!(!takes_own_connection(
            &parts("GET", "*/*", true),
            true,
            true
        ));
    }
}
