//! A gateway's own listener in front of an upstream: the verified token's scopes against the
//! table, the upstream's own credentials, streaming, header hygiene, and what bad upstreams and
//! bad requests get.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::Notify;

use crate::harness::{TestApp, config_for, spawn_app_with};

#[derive(Default)]
struct Upstream {
    hits: AtomicUsize,
    /// Lets the stream's second chunk go.
    go_on: Notify,
    /// The `Connection` header the event stream's request came with.
    events_connection: std::sync::Mutex<Option<String>>,
}

async fn echo(State(up): State<Arc<Upstream>>, req: Request) -> axum::Json<Value> {
    up.hits.fetch_add(1, Ordering::SeqCst);
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        let list = headers
            .entry(k.as_str().to_owned())
            .or_insert_with(|| json!([]));
        list.as_array_mut()
            .unwrap()
            .push(json!(v.to_str().unwrap_or("?")));
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let version = format!("{:?}", req.version());
    // A body cut short (the gateway stopped one over its limit) is read as far as it came.
    let body = axum::body::to_bytes(req.into_body(), usize::MAX)
        .await
        .unwrap_or_default();
    axum::Json(
        json!({"method": method, "uri": uri, "version": version, "headers": headers, "body_len": body.len()}),
    )
}

/// An event stream's answer: `first`, then `second` once the test lets it go; then it ends, or
/// with `held`, stays open until the client goes.
fn event_stream(
    up: Arc<Upstream>,
    first: &'static str,
    second: &'static str,
    held: bool,
) -> Response<Body> {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<&'static str, std::io::Error>>(4);
    tokio::spawn(async move {
        let _ = tx.send(Ok(first)).await;
        up.go_on.notified().await;
        let _ = tx.send(Ok(second)).await;
        if held {
            tx.closed().await;
        }
    });
    let body =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|i| (i, rx)) });
    Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(body))
        .unwrap()
}

async fn stream(State(up): State<Arc<Upstream>>) -> Response<Body> {
    up.hits.fetch_add(1, Ordering::SeqCst);
    event_stream(
        up,
        "data: {\"chunk\":1}\n\n",
        "data: {\"chunk\":2}\n\ndata: [DONE]\n\n",
        false,
    )
}

/// An event stream held open, noting the `Connection` header it was asked with.
async fn events(State(up): State<Arc<Upstream>>, req: Request) -> Response<Body> {
    *up.events_connection.lock().unwrap() = req
        .headers()
        .get("connection")
        .map(|v| v.to_str().unwrap().to_owned());
    event_stream(up, "data: 1\n\n", "data: 2\n\n", true)
}

async fn upstream() -> (String, Arc<Upstream>) {
    let up = Arc::new(Upstream::default());
    let app = Router::new()
        .route("/v1/chat/completions", post(stream))
        .route("/events", get(events))
        .route("/global/event", get(events))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(30)).await;
                "late"
            }),
        )
        .route(
            "/big-head",
            get(|| async { ([("x-big", "b".repeat(5000))], "too long to take") }),
        )
        .fallback(echo)
        .with_state(up.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr.to_string(), up)
}

/// Switches every request to its own protocol (`Upgrade: echo`), then echoes bytes.
async fn upgrading() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    if s.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n")
                    .await;
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    addr.to_string()
}

/// Starts a chunked answer and breaks it off mid-chunk.
async fn broken_chunks() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(
                    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n9\r\nbro",
                )
                .await;
        }
    });
    addr.to_string()
}

/// Answers every connection with bytes that are not HTTP.
async fn garbage() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"SSH-2.0-OpenSSH_9.2\r\n\r\nnot http at all")
                .await;
        }
    });
    addr.to_string()
}

const SECRET: &str = "upstream-secret-7f3a";

async fn app_with_gateways() -> (TestApp, Arc<Upstream>, tempfile::TempDir) {
    let (addr, up) = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("upstream.token");
    std::fs::write(&secret, SECRET).unwrap();
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let config = format!(
        r#"
[[gateway]]
name = "llm"
preset = "openai"
listen = "127.0.0.1:0"
upstream = "http://{addr}"
upstream_auth = {{ bearer_file = "{}" }}
timeout = 2
body_limit = 4096
strip_headers = ["X-Custom-Scopes"]

[[gateway]]
name = "down"
listen = "127.0.0.1:0"
upstream = "http://{dead}"

[[gateway]]
name = "roomy"
listen = "127.0.0.1:0"
upstream = "http://{addr}"
head_limit = 8192

[[gateway]]
name = "oc"
preset = "opencode"
listen = "127.0.0.1:0"
upstream = "http://{addr}"

[[gateway]]
name = "garbage"
listen = "127.0.0.1:0"
upstream = "http://{}"

[[gateway]]
name = "broken"
listen = "127.0.0.1:0"
upstream = "http://{}"

[[gateway]]
name = "ws"
listen = "127.0.0.1:0"
upstream = "http://{}"

[[gateway.routes]]
method = "GET"
path = "/pty/**"
scope = "execute"
"#,
        secret.display(),
        garbage().await,
        broken_chunks().await,
        upgrading().await
    );
    (spawn_app_with(&config).await, up, dir)
}

fn gateway(app: &TestApp, name: &str) -> String {
    let addr = app.gateways.iter().find(|(n, _)| n == name).unwrap().1;
    format!("http://{addr}")
}

#[tokio::test]
async fn the_verified_token_decides_and_streams_pass_through_unbuffered() {
    let (app, up, _dir) = app_with_gateways().await;
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (write, _) = app.create_token("writer", &["write"], json!("1d")).await;
    let llm = gateway(&app, "llm");
    let http = &app.http;

    // No token: 401, and the upstream never hears of it.
    let r = http
        .post(format!("{llm}/v1/chat/completions"))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().contains_key("www-authenticate"));
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    // A read token reads, and is refused a generation naming `write` — whatever it claims.
    let r = http
        .get(format!("{llm}/v1/models"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .post(format!("{llm}/v1/chat/completions"))
        .bearer_auth(&read)
        .header("x-openclaw-scopes", "operator.write")
        .header("x-agentgate-scopes", "write")
        .json(&json!({"stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.json::<Value>().await.unwrap()["required"], "write");
    assert_eq!(up.hits.load(Ordering::SeqCst), 1);
    // OpenClaw #57331: a write token works on every generation endpoint.
    for path in ["/v1/responses", "/v1/completions", "/v1/embeddings"] {
        let r = http
            .post(format!("{llm}{path}"))
            .bearer_auth(&write)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    // A stream arrives chunk by chunk: the first is read before the upstream sends the second.
    let mut r = http
        .post(format!("{llm}/v1/chat/completions"))
        .bearer_auth(&write)
        .json(&json!({"stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = r.chunk().await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&first).contains("\"chunk\":1"));
    up.go_on.notify_one();
    let mut rest = Vec::new();
    while let Some(c) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&c);
    }
    assert!(String::from_utf8_lossy(&rest).contains("[DONE]"));
}

#[tokio::test]
async fn an_event_stream_comes_live_on_its_own_connection_and_ends_with_its_credential() {
    let (app, up, _dir) = app_with_gateways().await;
    let (read, id) = app.create_token("reader", &["read"], json!("1d")).await;
    let roomy = gateway(&app, "roomy");
    let mut r = app
        .http
        .get(format!("{roomy}/events"))
        .header("accept", "text/event-stream")
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: 1\n\n");
    // Its own connection, closed with the stream (the pool's are kept alive).
    let connection = up.events_connection.lock().unwrap().clone();
    assert_eq!(connection.as_deref(), Some("close"));
    up.go_on.notify_one();
    let second = r.chunk().await.unwrap().unwrap();
    assert_eq!(&second[..], b"data: 2\n\n");
    app.request(
        reqwest::Method::DELETE,
        &format!("/api/v1/tokens/{id}"),
        Some(&app.admin),
        None,
    )
    .await;
    let end = tokio::time::timeout(std::time::Duration::from_secs(5), r.chunk())
        .await
        .expect("the stream ends with its credential");
    assert!(matches!(end, Ok(None) | Err(_)), "{end:?}");

    // opencode's own SDK asks for no event stream (and names its directory in the query): the
    // preset knows its streams.
    let (read, _) = app.create_token("reader2", &["read"], json!("1d")).await;
    *up.events_connection.lock().unwrap() = None;
    let mut r = app
        .http
        .get(format!(
            "{}/global/event?directory=%2Ftmp%2Fproject",
            gateway(&app, "oc")
        ))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"data: 1\n\n");
    let connection = up.events_connection.lock().unwrap().clone();
    assert_eq!(connection.as_deref(), Some("close"));
}

#[tokio::test]
async fn the_upstream_gets_its_own_credentials_and_nothing_the_client_claims() {
    let (app, _up, _dir) = app_with_gateways().await;
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let llm = gateway(&app, "llm");
    let r = app
        .http
        .get(format!("{llm}/echo?x=1"))
        .bearer_auth(&read)
        .header("x-agentgate-token-name", "owner")
        .header("x-openclaw-scopes", "operator.admin")
        .header("x-custom-scopes", "all")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-forwarded-host", "evil.example")
        .header("cookie", "theme=dark; agentgate_session=ags_stolen")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    assert!(
        !text.contains(&read),
        "the client's token reached the upstream"
    );
    let seen: Value = serde_json::from_str(&text).unwrap();
    let h = &seen["headers"];
    assert_eq!(seen["uri"], "/echo?x=1");
    assert_eq!(h["authorization"], json!([format!("Bearer {SECRET}")]));
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(
        h["x-forwarded-host"],
        json!([llm.trim_start_matches("http://")])
    );
    assert_eq!(h["cookie"], json!(["theme=dark"]));
    for gone in [
        "x-agentgate-token-name",
        "x-openclaw-scopes",
        "x-custom-scopes",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the upstream: {h}");
    }
    // The upstream's secret is in nothing the client receives, errors included.
    let down = gateway(&app, "down");
    let r = app
        .http
        .get(format!("{down}/x"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "upstream_unreachable");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("gateway `down`") && message.contains("http://127.0.0.1:"),
        "{message}"
    );
}

#[tokio::test]
async fn bad_upstreams_and_bad_requests_get_clear_errors() {
    let (app, up, _dir) = app_with_gateways().await;
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (write, _) = app.create_token("writer", &["write"], json!("1d")).await;
    let llm = gateway(&app, "llm");
    let http = &app.http;
    let error = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let code = body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{status}: {text}"));
        (status, code.to_owned())
    };
    // Slow past the timeout; not HTTP at all.
    let r = http
        .get(format!("{llm}/slow"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(error(r).await, (504, "upstream_timeout".into()));
    // A head over the gateway's head_limit (4 KiB by default, as nginx's) is named for what it
    // is; a gateway with a larger limit takes it.
    let r = http
        .get(format!("{llm}/big-head"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    let text = r.text().await.unwrap();
    assert!(
        text.contains("upstream_head_too_large")
            && text.contains("over 4096 bytes, the gateway's head_limit"),
        "{text}"
    );
    let r = http
        .get(format!("{}/big-head", gateway(&app, "roomy")))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-big"].len(), 5000);
    let garbage = gateway(&app, "garbage");
    let r = http
        .get(format!("{garbage}/"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(error(r).await, (502, "upstream_failed".into()));
    // An answer broken off mid-chunk reaches the client broken off (its head was already sent),
    // and the gateway goes on serving.
    let broken = gateway(&app, "broken");
    let r = http
        .get(format!("{broken}/"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.bytes().await.is_err(),
        "a broken body must not look whole"
    );
    let r = http
        .get(format!("{broken}/"))
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The same through an event stream's own connection (a GET asking for
    // `text/event-stream`), which reads the upstream's answer itself.
    let events = |url: String| {
        http.get(url)
            .header("accept", "text/event-stream")
            .bearer_auth(&read)
            .send()
    };
    let r = events(format!("{llm}/slow")).await.unwrap();
    assert_eq!(error(r).await, (504, "upstream_timeout".into()));
    let r = events(format!("{llm}/big-head")).await.unwrap();
    assert_eq!(error(r).await, (502, "upstream_head_too_large".into()));
    let r = events(format!("{}/big-head", gateway(&app, "roomy")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-big"].len(), 5000);
    let r = events(format!("{garbage}/")).await.unwrap();
    assert_eq!(error(r).await, (502, "upstream_failed".into()));
    let r = events(format!("{}/", gateway(&app, "down"))).await.unwrap();
    assert_eq!(error(r).await, (502, "upstream_unreachable".into()));
    // Broken off mid-chunk: cut off too, before or after its head (the head goes out with the
    // first data, and here the break comes in the same read).
    match events(format!("{broken}/")).await {
        Ok(r) => {
            assert_eq!(r.status(), 200);
            assert!(
                r.bytes().await.is_err(),
                "a broken event stream must not look whole"
            );
        }
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }
    // Bodies over the limit: declared, and streamed without a length.
    let r = http
        .post(format!("{llm}/v1/responses"))
        .bearer_auth(&write)
        .body(vec![b'x'; 5000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let port = llm.rsplit(':').next().unwrap().to_owned();
    let chunk = format!("3e8\r\n{}\r\n", "y".repeat(1000));
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {write}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{}0\r\n\r\n",
        chunk.repeat(10)
    );
    assert_eq!(raw_status(&port, &raw).await, 413);
    // Methods and paths the table does not admit; an upgrade.
    let r = http
        .request(
            reqwest::Method::from_bytes(b"TRACE").unwrap(),
            format!("{llm}/v1/models"),
        )
        .bearer_auth(&read)
        .send()
        .await
        .unwrap();
    assert_eq!(error(r).await, (405, "method_not_allowed".into()));
    // (Raw: a client library would resolve the dots itself.)
    let raw = format!(
        "GET /v1/%2e%2e/admin HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {read}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(raw_status(&port, &raw).await, 400);
    // An HTTP/1.0 client is answered in its version; our hop to the upstream is HTTP/1.1.
    let raw = format!(
        "GET /v1/models HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {read}\r\n\r\n"
    );
    let answer = raw_answers(&port, &raw).await;
    assert!(answer.starts_with("HTTP/1.0 200"), "{answer}");
    assert!(answer.contains(r#""version":"HTTP/1.1""#), "{answer}");
    let r = http
        .get(format!("{llm}/v1/models"))
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    // The Host of the daemon, or of another gateway, is not this gateway's.
    for host in [
        app.addr.to_string(),
        gateway(&app, "down")
            .trim_start_matches("http://")
            .to_owned(),
    ] {
        let raw = format!(
            "GET /v1/models HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {read}\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(raw_status(&port, &raw).await, 421, "{host}");
    }
    // Request smuggling: both Content-Length and Transfer-Encoding, with a second request behind
    // it that carries no token. hyper reads the chunked framing, answers the first and closes the
    // connection (RFC 9112 §6.1): the second is never read, and what we forward is framed by
    // us. Two lengths are refused outright.
    let host = format!("127.0.0.1:{port}");
    let before = up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {write}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /echo HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    );
    let answers = raw_answers(&port, &raw).await;
    assert_eq!(
        answers.matches("HTTP/1.1 ").count(),
        1,
        "a smuggled request was answered: {answers}"
    );
    assert!(answers.contains("connection: close"), "{answers}");
    let seen = up.hits.load(std::sync::atomic::Ordering::SeqCst) - before;
    assert_eq!(seen, 1, "only the authorized request reached the upstream");
    let raw = format!(
        "POST /v1/responses HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {write}\r\nContent-Length: 2\r\nContent-Length: 30\r\nConnection: close\r\n\r\n{{}}"
    );
    assert_eq!(raw_status(&port, &raw).await, 400);
}

async fn raw_answers(port: &str, request: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    s.write_all(request.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

async fn raw_status(port: &str, request: &str) -> u16 {
    let text = raw_answers(port, request).await;
    text.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status: {text:?}"))
}

#[tokio::test]
async fn a_taken_listen_address_stops_start_up_naming_the_gateway() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = config_for(
        dir.path(),
        &format!(
            "[[gateway]]\nname = \"oc\"\nlisten = \"{addr}\"\nupstream = \"http://127.0.0.1:9\"\n"
        ),
    );
    let clock = agentgate::clock::Clock::manual(agentgate::clock::Timestamp::from_millis(0));
    let err = match agentgate::app::App::build(&config, clock).await {
        Ok(_) => panic!("started on a taken address"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        err.contains(&format!("cannot listen on {addr} for [[gateway]] `oc`")),
        "{err}"
    );
}

#[tokio::test]
async fn an_upgrade_is_checked_like_any_request_then_carried_both_ways() {
    let (app, _up, _dir) = app_with_gateways().await;
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (exec, exec_id) = app.create_token("shell", &["execute"], json!("1d")).await;
    let ws = gateway(&app, "ws");
    let port = ws.rsplit(':').next().unwrap().to_owned();
    let upgrade = |token: &str| {
        format!(
            "GET /pty/p1/connect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n"
        )
    };
    // Without the route's scope, or without a token: refused before the upstream hears of it.
    let refused = upgrade(&read).replace("Connection: Upgrade", "Connection: Upgrade, close");
    assert_eq!(raw_status(&port, &refused).await, 403);
    let raw = format!(
        "GET /pty/p1/connect HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: echo\r\nConnection: Upgrade, close\r\n\r\n"
    );
    assert_eq!(raw_status(&port, &raw).await, 401);
    // With it: switched, then bytes both ways.
    let mut s = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
        .await
        .unwrap();
    s.write_all(upgrade(&exec).as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        assert_eq!(
            s.read(&mut byte).await.unwrap(),
            1,
            "closed: {}",
            String::from_utf8_lossy(&head)
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");
    s.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    s.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");
    // Revoking the token ends the upgraded connection.
    let r = app
        .request(
            reqwest::Method::DELETE,
            &format!("/api/v1/tokens/{exec_id}"),
            Some(&app.admin),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut rest = Vec::new();
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("the connection ends with its token")
        .unwrap_or(0);
    assert_eq!(n, 0);
}

#[tokio::test]
async fn the_inbox_session_works_on_the_gateway_for_its_own_pages_only() {
    let (app, _up, _dir) = app_with_gateways().await;
    crate::oauth::set_passphrase(&app).await;
    // Browsers send cookies for 127.0.0.1 to every port: the inbox's session reaches the gateway.
    let cookie = crate::oauth::owner_cookie(&app).await;
    let llm = gateway(&app, "llm");
    let own_origin = llm.clone();
    let post = |origin: Option<&str>, site: Option<&str>| {
        let mut r = app
            .http
            .post(format!("{llm}/v1/responses"))
            .header("cookie", &cookie)
            .json(&json!({}));
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        if let Some(s) = site {
            r = r.header("sec-fetch-site", s);
        }
        r.send()
    };
    // A page of the gateway's own origin (the upstream's web UI) may act with it.
    assert_eq!(post(Some(&own_origin), None).await.unwrap().status(), 200);
    assert_eq!(post(None, Some("same-origin")).await.unwrap().status(), 200);
    let r = app
        .http
        .get(format!("{llm}/v1/models"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Another origin — the inbox's own port included — may not; nor may a request without the
    // browser's marks (it needs the inbox's CSRF token, as on the daemon).
    for (origin, site) in [
        (Some(app.base.as_str()), None),
        (Some("http://evil.example"), None),
        (None, None),
    ] {
        let status = post(origin, site).await.unwrap().status();
        assert_eq!(status, 403, "{origin:?}");
    }
}

/// What [`framings`]' upstream saw: each connection's requests, in order.
type Seen = Arc<std::sync::Mutex<Vec<Vec<String>>>>;

/// A hand-written HTTP/1.1 upstream that answers by path, noting each connection's requests:
/// `/len` with a length (a `HEAD` without its body), `/chunked` in two chunks, `/close` without a
/// length (its body ends with the connection: closed for writing), `/drop` with a length and then the connection
/// closed unannounced (as an upstream's keep-alive timer does), `POST /post` with what it read.
async fn framings() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let noted = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let seen = noted.clone();
            let index = {
                let mut seen = seen.lock().unwrap();
                seen.push(Vec::new());
                seen.len() - 1
            };
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    let (method, path, used, length) = loop {
                        let mut headers = [httparse::EMPTY_HEADER; 32];
                        let mut req = httparse::Request::new(&mut headers);
                        if let Ok(httparse::Status::Complete(used)) = req.parse(&buf) {
                            let length = req
                                .headers
                                .iter()
                                .find(|h| h.name.eq_ignore_ascii_case("content-length"))
                                .map_or(0, |h| {
                                    std::str::from_utf8(h.value).unwrap().parse().unwrap()
                                });
                            break (
                                req.method.unwrap().to_owned(),
                                req.path.unwrap().to_owned(),
                                used,
                                length,
                            );
                        }
                        let mut more = [0u8; 4096];
                        match s.read(&mut more).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&more[..n]),
                        }
                    };
                    while buf.len() < used + length {
                        let mut more = [0u8; 4096];
                        match s.read(&mut more).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&more[..n]),
                        }
                    }
                    buf.drain(..used + length);
                    seen.lock().unwrap()[index].push(format!("{method} {path}"));
                    let answer: String = match (method.as_str(), path.as_str()) {
                        ("HEAD", "/len") => "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\n".into(),
                        (_, "/len") => "HTTP/1.1 200 OK\r\ncontent-length: 8\r\n\r\nlen-body".into(),
                        (_, "/chunked") => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n4;ext=1\r\ndefg\r\n0\r\nx-trailer: t\r\n\r\n".into(),
                        (_, "/close") => "HTTP/1.1 200 OK\r\n\r\nuntil-close".into(),
                        (_, "/drop") => "HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\ndrop".into(),
                        ("POST", "/post") => {
                            let body = format!("post:{length}");
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}", body.len())
                        }
                        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into(),
                    };
                    if s.write_all(answer.as_bytes()).await.is_err() || path == "/drop" {
                        return;
                    }
                    if path == "/close" {
                        // The body ends here; what else comes on this connection is noted (a
                        // gateway that sent more would be wrong) and never answered.
                        let _ = s.shutdown().await;
                    }
                }
            });
        }
    });
    (addr.to_string(), seen)
}

#[tokio::test]
async fn the_fast_lane_carries_every_framing_keeps_connections_and_hands_the_rest_to_hyper() {
    use http_body_util::BodyExt;
    let (addr, seen) = framings().await;
    let config = format!(
        "[[gateway]]\nname = \"lane\"\nlisten = \"127.0.0.1:0\"\nupstream = \"http://{addr}\"\n"
    );
    let app = spawn_app_with(&config).await;
    let (read, _) = app.create_token("reader", &["read"], json!("1d")).await;
    let (write, _) = app.create_token("writer", &["write"], json!("1d")).await;
    let lane = gateway(&app, "lane");
    let host = lane.trim_start_matches("http://").to_owned();

    // One client connection (hyper's client: it reads every framing as it should), request
    // after request.
    let tcp = tokio::net::TcpStream::connect(&host).await.unwrap();
    let (mut client, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(connection);
    let mut ask = async |method: &str, path: &str, token: &str, body: &'static str| {
        let req = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header("host", &host)
            .header("authorization", format!("Bearer {token}"))
            .body(http_body_util::Full::new(axum::body::Bytes::from(body)))
            .unwrap();
        let answer = client.send_request(req).await.unwrap();
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (parts, String::from_utf8(body.to_vec()).unwrap())
    };
    let (parts, body) = ask("GET", "/len", &read, "").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, "len-body"));
    assert_eq!(parts.headers["content-length"], "8");
    let (parts, body) = ask("HEAD", "/len", &read, "").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, ""));
    assert_eq!(parts.headers["content-length"], "8");
    // Chunks (with an extension and a trailer) and a body that ends with the upstream's
    // connection both reach the client as chunks.
    let (parts, body) = ask("GET", "/chunked", &read, "").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, "abcdefg"));
    assert_eq!(parts.headers["transfer-encoding"], "chunked");
    let (parts, body) = ask("GET", "/close", &read, "").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, "until-close"));
    assert_eq!(parts.headers["transfer-encoding"], "chunked");
    // The upstream closes a kept connection unannounced: the next request goes on a new one,
    // and the client never knows.
    let (_, body) = ask("GET", "/drop", &read, "").await;
    assert_eq!(body, "drop");
    let (parts, body) = ask("GET", "/len", &read, "").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, "len-body"));
    // Refusals on the lane are ours, and the connection goes on.
    let (parts, body) = ask("GET", "/len", "agt_not-a-token", "").await;
    assert_eq!(parts.status, 401, "{body}");
    assert!(body.contains("unauthorized"), "{body}");
    assert_eq!(parts.headers["x-content-type-options"], "nosniff");
    // A body: hyper's from here on, on the same connection, with the token's scopes.
    let (parts, body) = ask("POST", "/post", &read, "hello").await;
    assert_eq!(parts.status, 403, "{body}");
    let (parts, body) = ask("POST", "/post", &write, "hello").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, "post:5"));
    let (parts, body) = ask("GET", "/len", &read, "").await;
    assert_eq!((parts.status.as_u16(), body.as_str()), (200, "len-body"));
    drop(client);

    // What the upstream saw: the lane's kept connection carried requests until the body that
    // ended with it; `/drop`'s was closed under the next request, which went on a new one; the
    // POST and the GET after it came through hyper's pool.
    let seen = seen.lock().unwrap().clone();
    let seen: Vec<Vec<&str>> = seen
        .iter()
        .map(|c| c.iter().map(String::as_str).collect())
        .collect();
    assert_eq!(
        seen,
        vec![
            vec!["GET /len", "HEAD /len", "GET /chunked", "GET /close"],
            vec!["GET /drop"],
            vec!["GET /len"],
            vec!["POST /post", "GET /len"],
        ]
    );

    // Pipelined requests are answered in order, the last asking to close; then the
    // connection closes.
    let port = host.rsplit(':').next().unwrap().to_owned();
    let get = |path: &str, close: bool| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {read}\r\n{}\r\n",
            if close { "Connection: close\r\n" } else { "" }
        )
    };
    let answers = raw_answers(&port, &(get("/len", false) + &get("/chunked", true))).await;
    assert_eq!(answers.matches("HTTP/1.1 200 OK").count(), 2, "{answers}");
    let (first, second) = answers.split_at(answers.rfind("HTTP/1.1").unwrap());
    assert!(first.ends_with("len-body"), "{answers}");
    assert!(
        second.ends_with("3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"),
        "{answers}"
    );
    // The answer to the request that asked to close says so; the one before does not.
    assert!(!first.contains("connection:"), "{answers}");
    assert!(second.contains("connection: close\r\n"), "{answers}");

    // Heads the lane does not take are hyper's, answered as before: longer than the lane reads,
    // with too many headers, not HTTP.
    let long = format!(
        "GET /len HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {read}\r\nX-Long: {}\r\nConnection: close\r\n\r\n",
        "l".repeat(10_000)
    );
    let answer = raw_answers(&port, &long).await;
    assert!(
        answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("len-body"),
        "{answer}"
    );
    let many: String = (0..101).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let raw = format!("GET /len HTTP/1.1\r\nHost: {host}\r\n{many}Connection: close\r\n\r\n");
    assert_eq!(raw_status(&port, &raw).await, 431);
    assert_eq!(raw_status(&port, "GARBAGE\r\n\r\n").await, 400);
}
