//! A gateway's own listener with streams: how much an SSE event is delayed through the gateway
//! (goal: ≤ 1 ms p99 above the upstream directly), how long a streamed LLM answer
//! (`POST /v1/chat/completions` with `stream: true`, the `openai` preset) takes to its first chunk
//! through the gateway and directly, and the daemon's RSS while it holds idle proxied SSE streams
//! (goal: 10,000 in ≤ 150 MB).
//!
//! Run: `cargo bench --bench gateway`. Each stream costs the daemon two descriptors (client and
//! upstream side): with this machine's limit of 20,000 it holds as many as fit, and says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_methods)] // common::start polls for the ready file

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::{get, post};
use tokio::sync::broadcast;

const ROUNDS: usize = 5;
const EVENTS: usize = 200;
const STREAMS: usize = 10_000;

#[derive(Clone)]
struct Upstream {
    events: broadcast::Sender<u64>,
}

async fn events(State(up): State<Upstream>) -> axum::http::Response<Body> {
    let rx = up.events.subscribe();
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        match rx.recv().await {
            Ok(n) => Some((Ok::<_, std::io::Error>(format!("data: {n}\n\n")), rx)),
            Err(_) => None,
        }
    });
    axum::http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// A scripted LLM's streamed answer: the first chunk at once, then nine more 2 ms apart.
async fn completions() -> axum::http::Response<Body> {
    let stream = futures_util::stream::unfold(0u32, |n| async move {
        if n >= 10 {
            return None;
        }
        if n > 0 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let chunk = format!(
            "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"w{n} \"}}}}]}}\n\n"
        );
        Some((Ok::<_, std::io::Error>(chunk), n + 1))
    });
    axum::http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

/// Milliseconds from sending a streamed completion request to its first chunk, `n` times.
async fn first_chunks(
    http: &reqwest::Client,
    url: &str,
    token: Option<&str>,
    n: usize,
) -> Vec<f64> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let mut req = http.post(url).json(&serde_json::json!({
            "model": "scripted", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]
        }));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let started = Instant::now();
        let mut response = req.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let first = response.chunk().await.unwrap().unwrap();
        out.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(first.starts_with(b"data: "));
        while response.chunk().await.unwrap().is_some() {}
    }
    out
}

fn rss_mb(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.3} ms ({:.3}–{:.3})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

/// Milliseconds from each event's send to its arrival on `response`.
async fn latencies(
    up: &Upstream,
    sent: &Mutex<Vec<Instant>>,
    response: &mut reqwest::Response,
) -> Vec<f64> {
    let mut out = Vec::new();
    let mut buf = String::new();
    for n in 0..EVENTS as u64 {
        sent.lock().unwrap().push(Instant::now());
        up.events.send(n).unwrap();
        while !buf.contains(&format!("data: {n}\n\n")) {
            let chunk = response.chunk().await.unwrap().unwrap();
            buf.push_str(&String::from_utf8_lossy(&chunk));
        }
        out.push(sent.lock().unwrap().last().unwrap().elapsed().as_secs_f64() * 1e3);
        buf.clear();
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    out
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let (tx, _) = broadcast::channel(1024);
    let up = Upstream { events: tx };
    let upstream = rt.block_on(async {
        let app = Router::new()
            .route("/events", get(events))
            .route("/v1/chat/completions", post(completions))
            .with_state(up.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    });
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let llm_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let d = common::start(&format!(
        "[[gateway]]\nname = \"sse\"\nlisten = \"127.0.0.1:{port}\"\nupstream = \"{upstream}\"\n\n\
         [[gateway]]\nname = \"llm\"\npreset = \"openai\"\nlisten = \"127.0.0.1:{llm_port}\"\nupstream = \"{upstream}\"\n"
    ));
    let gw = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = rt.block_on(common::token(&http, &d, "bench-reader", "read"));
    let writer = rt.block_on(common::token(&http, &d, "bench-writer", "write"));
    let sent = Mutex::new(Vec::new());

    // 1. Event latency, direct and through the gateway, interleaved by round.
    let (mut d50, mut d99, mut g50, mut g99, mut over) = (vec![], vec![], vec![], vec![], vec![]);
    rt.block_on(async {
        for _ in 0..ROUNDS {
            // One stream at a time, opened just before it is measured (every open stream gets
            // every event).
            let mut direct = http
                .get(format!("{upstream}/events"))
                .header("accept", "text/event-stream")
                .send()
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut a = latencies(&up, &sent, &mut direct).await;
            drop(direct);
            let mut through = http
                .get(format!("{gw}/events"))
                .header("accept", "text/event-stream")
                .bearer_auth(&token)
                .send()
                .await
                .unwrap();
            assert_eq!(through.status(), 200);
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut b = latencies(&up, &sent, &mut through).await;
            drop(through);
            d50.push(pct(&mut a, 0.5));
            d99.push(pct(&mut a, 0.99));
            g50.push(pct(&mut b, 0.5));
            g99.push(pct(&mut b, 0.99));
            over.push(pct(&mut b, 0.99) - pct(&mut a, 0.99));
        }
    });
    println!(
        "SSE event latency, {} events each ({ROUNDS} rounds), medians of round p50 / p99 (spread):",
        ROUNDS * EVENTS
    );
    println!(
        "  {:24} p50 {}  p99 {}",
        "upstream directly",
        spread(d50),
        spread(d99)
    );
    println!(
        "  {:24} p50 {}  p99 {}",
        "through the gateway",
        spread(g50),
        spread(g99)
    );
    println!(
        "  gateway p99 above direct p99: {}   (goal ≤ 1 ms)",
        spread(over)
    );

    // 1b. A streamed LLM answer: time to its first chunk, direct and through the gateway.
    let (mut t_direct, mut t_gateway, mut t_over) = (vec![], vec![], vec![]);
    rt.block_on(async {
        let direct_url = format!("{upstream}/v1/chat/completions");
        let gateway_url = format!("http://127.0.0.1:{llm_port}/v1/chat/completions");
        first_chunks(&http, &direct_url, None, 20).await;
        first_chunks(&http, &gateway_url, Some(&writer), 20).await;
        for _ in 0..ROUNDS {
            let mut a = first_chunks(&http, &direct_url, None, 200).await;
            let mut b = first_chunks(&http, &gateway_url, Some(&writer), 200).await;
            t_direct.push(pct(&mut a, 0.5));
            t_gateway.push(pct(&mut b, 0.5));
            t_over.push(pct(&mut b, 0.99) - pct(&mut a, 0.99));
        }
    });
    println!("Streamed completion, time to first chunk, 200 requests each ({ROUNDS} rounds):");
    println!("  {:24} p50 {}", "upstream directly", spread(t_direct));
    println!("  {:24} p50 {}", "through the gateway", spread(t_gateway));
    println!("  gateway p99 above direct p99: {}", spread(t_over));

    // 2. Idle proxied streams: each is two descriptors in the daemon.
    let limit = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|l| {
            l.lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| {
                    l.split_whitespace()
                        .nth(3)
                        .and_then(|v| v.parse::<usize>().ok())
                })
        })
        .unwrap_or(1024);
    let streams = STREAMS.min(limit.saturating_sub(300) / 2);
    let pid = d.child.id();
    let idle = rss_mb(pid);
    let held = Arc::new(Mutex::new(Vec::new()));
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let client = reqwest::Client::builder().no_proxy().build().unwrap();
            let (url, t, held) = (format!("{gw}/events"), token.clone(), held.clone());
            tasks.push(tokio::spawn(async move {
                // As an EventSource (and opencode's own client) asks for a stream.
                let r = client
                    .get(url)
                    .header("accept", "text/event-stream")
                    .bearer_auth(t)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                held.lock().unwrap().push((client, r));
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
    });
    let with = rss_mb(pid);
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count();
    println!(
        "idle proxied SSE streams (descriptor limit {limit}: {streams} of the goal's {STREAMS} fit):"
    );
    println!(
        "  daemon RSS idle {idle:.1} MB; with {streams} streams held {with:.1} MB (+{:.1} KB each; {fds} fds)",
        (with - idle) * 1024.0 / streams as f64
    );
    let projected = idle + (with - idle) * STREAMS as f64 / streams as f64;
    println!("  projected for {STREAMS}: {projected:.1} MB   (goal ≤ 150 MB)");
    drop(held);
}
