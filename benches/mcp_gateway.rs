//! What the MCP gateway adds to a tool call, against a baseline measured in the same run:
//!
//! - an allowed `tools/call` round trip (a tiny echo tool of `tests/mcp/upstream.py`, the Python
//!   SDK) through `/mcp/{name}` (HTTP, token, broker decision, relay) next to the same call made
//!   directly with rmcp's client: to a streamable-HTTP upstream (direct: rmcp's HTTP client to the
//!   same server) and to a stdio upstream (direct: the client runs the server itself); p50/p99
//!   added, per round and the median of rounds;
//! - 100 concurrent client sessions on the stdio upstream (each its own child): the daemon's RSS
//!   (children excluded) against its RSS idle.
//!
//! Needs the interop venv (`scripts/test` makes it). `cargo bench --bench mcp_gateway`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_methods)] // common::start polls for the ready file

mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use rmcp::ServiceExt;
use rmcp::model::CallToolRequestParams;
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};

const ROUNDS: usize = 5;
const CALLS: usize = 400;
const SESSIONS: usize = 100;

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

fn pct(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

struct Gateway {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Gateway {
    async fn post(&self, session: Option<&str>, body: Value) -> (Option<String>, String) {
        let mut req = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        let r = req.send().await.unwrap();
        assert!(r.status().is_success(), "{}", r.status());
        let session = r
            .headers()
            .get("mcp-session-id")
            .map(|v| v.to_str().unwrap().to_owned());
        (session, r.text().await.unwrap())
    }

    async fn open(&self) -> String {
        let (session, _) = self
            .post(
                None,
                json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                    "protocolVersion": "2025-06-18", "capabilities": {},
                    "clientInfo": {"name": "bench", "version": "0"}}}),
            )
            .await;
        let session = session.unwrap();
        self.post(
            Some(&session),
            json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        )
        .await;
        session
    }
}

/// Round trips of an allowed echo call: `direct` (rmcp's client to the upstream itself) and
/// through the gateway, interleaved per round.
async fn compare(
    what: &str,
    direct: &rmcp::service::RunningService<rmcp::RoleClient, ()>,
    gateway: &Gateway,
) {
    let session = gateway.open().await;
    let args: rmcp::model::JsonObject = serde_json::from_value(json!({"text": "ping"})).unwrap();
    let call = |i: usize| {
        json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
               "params": {"name": "echo", "arguments": {"text": "ping"}}})
    };
    for i in 0..50 {
        direct
            .call_tool(CallToolRequestParams::new("echo").with_arguments(args.clone()))
            .await
            .unwrap();
        gateway.post(Some(&session), call(100 + i)).await;
    }
    let (mut added50, mut added99) = (Vec::new(), Vec::new());
    println!("{what}: tools/call round trip, {CALLS} calls per path per round (ms):");
    for round in 1..=ROUNDS {
        let mut direct_samples = Vec::with_capacity(CALLS);
        let mut gateway_samples = Vec::with_capacity(CALLS);
        for i in 0..CALLS {
            let t = Instant::now();
            direct
                .call_tool(CallToolRequestParams::new("echo").with_arguments(args.clone()))
                .await
                .unwrap();
            direct_samples.push(t.elapsed());
            let t = Instant::now();
            let (_, body) = gateway.post(Some(&session), call(1000 + i)).await;
            gateway_samples.push(t.elapsed());
            assert!(body.contains("ping"), "{body}");
        }
        let (d50, d99) = (
            pct(&mut direct_samples, 0.5),
            pct(&mut direct_samples, 0.99),
        );
        let (g50, g99) = (
            pct(&mut gateway_samples, 0.5),
            pct(&mut gateway_samples, 0.99),
        );
        println!(
            "  round {round}: direct p50 {d50:.3} p99 {d99:.3} | gateway p50 {g50:.3} p99 {g99:.3} | added p50 {:.3} p99 {:.3}",
            g50 - d50,
            g99 - d99
        );
        added50.push(g50 - d50);
        added99.push(g99 - d99);
    }
    let spread = |v: &[f64]| {
        let lo = v.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.3}–{hi:.3}")
    };
    println!(
        "  {what}: added by the gateway (median of rounds): p50 {:.3} ms ({}), p99 {:.3} ms ({}); goal ≤ 1 ms p50 and ≤ 2 ms p99",
        median(added50.clone()),
        spread(&added50),
        median(added99.clone()),
        spread(&added99)
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 1)]
async fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join("tests/interop/python/.venv/bin/python");
    let script = root.join("tests/mcp/upstream.py");
    if !python.exists() {
        eprintln!(
            "mcp_gateway bench NOT RUN: no tests/interop/python/.venv (scripts/test makes it)"
        );
        return;
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average before: {}", load.trim());
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut http_upstream = tokio::process::Command::new(&python)
        .arg(&script)
        .args(["--http", &http_port.to_string()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    while tokio::net::TcpStream::connect(("127.0.0.1", http_port))
        .await
        .is_err()
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let d = common::start(&format!(
        "[[mcp_server]]\nname = \"up\"\ncommand = {python:?}\nargs = [{script:?}]\nmax_sessions = 200\n\n\
         [[mcp_server]]\nname = \"web\"\nurl = \"http://127.0.0.1:{http_port}/mcp\"\n\n\
         [[rules]]\naction = \"allow\"\nkind = \"tool\"\npattern = \"*__echo\"\n"
    ));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let gateway = Gateway {
        token: common::token(&http, &d, "bench", "request").await,
        url: format!("{}/mcp/up", d.base),
        http,
    };

    // Direct: the client runs the stdio upstream itself; or talks to the HTTP upstream itself.
    let mut command = tokio::process::Command::new(&python);
    command.arg(&script);
    let direct_stdio = ().serve(TokioChildProcess::new(command).unwrap()).await.unwrap();
    compare("stdio upstream", &direct_stdio, &gateway).await;
    drop(direct_stdio);
    let http_transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        reqwest::Client::builder().no_proxy().build().unwrap(),
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
            format!("http://127.0.0.1:{http_port}/mcp"),
        ),
    );
    let direct_http = ().serve(http_transport).await.unwrap();
    let web = Gateway {
        http: gateway.http.clone(),
        url: format!("{}/mcp/web", d.base),
        token: gateway.token.clone(),
    };
    compare("streamable-HTTP upstream", &direct_http, &web).await;
    drop(direct_http);

    // 100 concurrent sessions, each with its own child.
    let idle = rss_kib(d.child.id());
    let gateway = std::sync::Arc::new(gateway);
    let opened: Vec<String> = futures_util::future::join_all((0..SESSIONS).map(|_| {
        let g = gateway.clone();
        async move { g.open().await }
    }))
    .await;
    let calls = opened.iter().enumerate().map(|(i, s)| {
        let g = gateway.clone();
        let s = s.clone();
        async move {
            g.post(
                Some(&s),
                json!({"jsonrpc": "2.0", "id": 5000 + i, "method": "tools/call",
                       "params": {"name": "echo", "arguments": {"text": "ping"}}}),
            )
            .await
        }
    });
    let answered = futures_util::future::join_all(calls)
        .await
        .iter()
        .filter(|(_, b)| b.contains("ping"))
        .count();
    let held = rss_kib(d.child.id());
    println!(
        "{SESSIONS} concurrent sessions on a stdio upstream ({answered} answered a call): daemon RSS {:.1} MB (idle {:.1} MB, +{:.1} KB per session; children excluded)",
        held as f64 / 1024.0,
        idle as f64 / 1024.0,
        (held.saturating_sub(idle)) as f64 / SESSIONS as f64
    );
    http_upstream.kill().await.unwrap();
}
