//! What an agent pays per tool call for asking agentgate, for a request the policy allows at once:
//!
//! - `agentgate hook claude-code` as a command hook (a process per tool call), next to spawning
//!   `true` and to `curl` of `/healthz` (goal: p99 ≤ 5 ms above `true`);
//! - the HTTP hook endpoint over a kept-alive connection, next to `/healthz` (goal: p99 ≤ 1 ms
//!   above it);
//! - the opencode bridge: from `permission.asked` on an opencode-shaped event stream to our reply
//!   reaching that server (goal: p99 ≤ 20 ms);
//! - a decision (ask, then a person's reply) on a daemon whose notification targets hang or are
//!   dead, next to one without targets (goal: no difference).
//!
//! Run: `cargo bench --bench hooks`. Rounds are interleaved; medians of per-round percentiles
//! are printed with their spread.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::disallowed_methods)] // common::start polls for the ready file

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

const BIN: &str = env!("CARGO_BIN_EXE_agentgate");
const ROUNDS: usize = 5;
const SPAWNS: usize = 50; // per round: 250 runs each
const CALLS: usize = 2_000;
const PROMPTS: usize = 60;

const EVENT: &str = r#"{"session_id":"s","transcript_path":"/t","cwd":"/tmp","permission_mode":"default","hook_event_name":"PreToolUse","tool_name":"Bash","tool_input":{"command":"git status","description":"look"},"tool_use_id":"toolu_1"}"#;

fn pct(samples: &mut [f64], p: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!(
        "{:.2} ms ({:.2}–{:.2})",
        v[v.len() / 2],
        v[0],
        v[v.len() - 1]
    )
}

fn spawn_ms(mut command: Command, stdin: Option<&str>) -> f64 {
    let t = Instant::now();
    let mut child = command
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let ms = t.elapsed().as_secs_f64() * 1e3;
    assert!(out.status.success());
    ms
}

struct Upstream {
    events: Mutex<Option<mpsc::Sender<String>>>,
    replied: Mutex<Vec<(String, oneshot::Sender<Instant>)>>,
}

async fn events(State(up): State<Arc<Upstream>>) -> axum::http::Response<Body> {
    let (tx, rx) = mpsc::channel::<String>(64);
    *up.events.lock().unwrap() = Some(tx);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|s| (Ok::<_, std::io::Error>(s), rx))
    });
    axum::http::Response::builder()
        .header("content-type", "text/event-stream")
        .body(Body::from_stream(stream))
        .unwrap()
}

async fn reply(State(up): State<Arc<Upstream>>, Path(id): Path<String>) -> &'static str {
    let now = Instant::now();
    let mut waiting = up.replied.lock().unwrap();
    if let Some(i) = waiting.iter().position(|(w, _)| *w == id) {
        let (_, tx) = waiting.remove(i);
        let _ = tx.send(now);
    }
    "true"
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The stand-in opencode for the bridge.
    let up = Arc::new(Upstream {
        events: Mutex::new(None),
        replied: Mutex::new(Vec::new()),
    });
    let upstream = rt.block_on(async {
        let app = Router::new()
            .route("/global/event", get(events))
            .route("/permission", get(|| async { axum::Json(json!([])) }))
            .route("/permission/{id}/reply", post(reply))
            .with_state(up.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}")
    });
    let d = common::start(&format!(
        "[[rules]]\naction = \"allow\"\nkind = \"shell\"\npattern = \"git status\"\n\n\
         [[bridge]]\nkind = \"opencode\"\nname = \"oc\"\nurl = \"{upstream}\"\n"
    ));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let token = rt.block_on(common::token(&http, &d, "bench-hook", "request"));
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("hook.token");
    std::fs::write(&token_file, &token).unwrap();

    // 1. Per tool call, as a command hook.
    let (mut t_true, mut t_curl, mut t_hook) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p50s, mut p99s) = (
        [Vec::new(), Vec::new(), Vec::new()],
        [Vec::new(), Vec::new(), Vec::new()],
    );
    let mut over = Vec::new();
    for _ in 0..ROUNDS {
        let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..SPAWNS {
            a.push(spawn_ms(Command::new("true"), None));
            let mut curl = Command::new("curl");
            curl.args(["-sf", "--noproxy", "*", &format!("{}/healthz", d.base)]);
            b.push(spawn_ms(curl, None));
            let mut hook = Command::new(BIN);
            hook.args(["hook", "claude-code", "--url", &d.base, "--token-file"])
                .arg(&token_file);
            c.push(spawn_ms(hook, Some(EVENT)));
        }
        for (i, s) in [&mut a, &mut b, &mut c].into_iter().enumerate() {
            p50s[i].push(pct(s, 0.5));
            p99s[i].push(pct(s, 0.99));
        }
        over.push(pct(&mut c, 0.99) - pct(&mut a, 0.99));
        t_true.extend(a);
        t_curl.extend(b);
        t_hook.extend(c);
    }
    println!(
        "command hook, {} runs each ({ROUNDS} rounds of {SPAWNS}), medians of round p50 / p99 (spread):",
        ROUNDS * SPAWNS
    );
    for (i, name) in [
        "spawn `true`",
        "curl /healthz",
        "agentgate hook claude-code",
    ]
    .iter()
    .enumerate()
    {
        println!(
            "  {name:28} p50 {}  p99 {}",
            spread(p50s[i].clone()),
            spread(p99s[i].clone())
        );
    }
    println!(
        "  hook p99 above `true` p99: {}   (goal ≤ 5 ms)",
        spread(over)
    );

    // 2. The HTTP hook endpoint on a kept-alive connection.
    let (mut h50, mut h99, mut k50, mut k99, mut over) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut a50, mut a99) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..ROUNDS {
            let (mut health, mut hook, mut ask) = (Vec::new(), Vec::new(), Vec::new());
            for _ in 0..CALLS {
                // The same request through the plain API: what the store's durable write costs.
                let t = Instant::now();
                let r = http
                    .post(format!("{}/api/v1/permissions", d.base))
                    .bearer_auth(&token)
                    .json(&json!({"kind": "shell", "command": "git status", "cwd": "/tmp"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                r.bytes().await.unwrap();
                ask.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                let r = http
                    .get(format!("{}/healthz", d.base))
                    .send()
                    .await
                    .unwrap();
                r.bytes().await.unwrap();
                health.push(t.elapsed().as_secs_f64() * 1e3);
                let t = Instant::now();
                let r = http
                    .post(format!("{}/api/v1/hooks/claude-code", d.base))
                    .bearer_auth(&token)
                    .header("content-type", "application/json")
                    .body(EVENT)
                    .send()
                    .await
                    .unwrap();
                let v: Value = r.json().await.unwrap();
                hook.push(t.elapsed().as_secs_f64() * 1e3);
                assert_eq!(v["hookSpecificOutput"]["permissionDecision"], "allow");
            }
            h50.push(pct(&mut health, 0.5));
            h99.push(pct(&mut health, 0.99));
            a50.push(pct(&mut ask, 0.5));
            a99.push(pct(&mut ask, 0.99));
            k50.push(pct(&mut hook, 0.5));
            k99.push(pct(&mut hook, 0.99));
            over.push(pct(&mut hook, 0.99) - pct(&mut health, 0.99));
        }
    });
    println!(
        "http hook endpoint, {} calls each ({ROUNDS} rounds), medians of round p50 / p99 (spread):",
        ROUNDS * CALLS
    );
    println!(
        "  {:28} p50 {}  p99 {}",
        "GET /healthz",
        spread(h50),
        spread(h99)
    );
    println!(
        "  {:28} p50 {}  p99 {}",
        "POST /api/v1/permissions",
        spread(a50),
        spread(a99)
    );
    println!(
        "  {:28} p50 {}  p99 {}",
        "POST /api/v1/hooks/…",
        spread(k50),
        spread(k99)
    );
    println!(
        "  endpoint p99 above /healthz p99: {}   (goal ≤ 1 ms)",
        spread(over)
    );

    // 3. The bridge: permission.asked → our reply at opencode, for a policy allow.
    let (mut b50, mut b99) = (Vec::new(), Vec::new());
    rt.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(20);
        while up.events.lock().unwrap().is_none() {
            assert!(Instant::now() < deadline, "the bridge never connected");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tx = up.events.lock().unwrap().clone().unwrap();
        let mut n = 0;
        for _ in 0..ROUNDS {
            let mut lat = Vec::new();
            for _ in 0..PROMPTS {
                n += 1;
                let id = format!("per_{n}");
                let (done_tx, done_rx) = oneshot::channel();
                up.replied.lock().unwrap().push((id.clone(), done_tx));
                let event = json!({"directory": "/tmp", "payload": {"type": "permission.asked", "properties": {
                    "id": id, "sessionID": "ses_b", "permission": "bash", "patterns": ["git status"],
                    "metadata": {"command": "git status"}, "always": ["git *"]}}});
                let t = Instant::now();
                tx.send(format!("data: {event}\n\n")).await.unwrap();
                let at = tokio::time::timeout(Duration::from_secs(10), done_rx).await.unwrap().unwrap();
                lat.push(at.duration_since(t).as_secs_f64() * 1e3);
            }
            b50.push(pct(&mut lat, 0.5));
            b99.push(pct(&mut lat, 0.99));
        }
    });
    println!(
        "opencode bridge, {} prompts ({ROUNDS} rounds), permission.asked → reply at opencode:",
        ROUNDS * PROMPTS
    );
    println!(
        "  p50 {}  p99 {}   (goal p99 ≤ 20 ms)",
        spread(b50),
        spread(b99)
    );

    // 4. Notification targets that hang (accept, never answer) or are dead slow no decision.
    let (hang_addr, dead_addr) = rt.block_on(async {
        let hang = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = hang.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = hang.accept().await {
                held.push(socket);
            }
        });
        let dead = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        (addr, dead)
    });
    let noisy = common::start(&format!(
        "[[notify]]\nkind = \"webhook\"\nurl = \"http://{hang_addr}/x\"\ntimeout = 120\n\n\
         [[notify]]\nkind = \"ntfy\"\nurl = \"http://{dead_addr}/topic\"\n"
    ));
    let quiet = common::start("");
    let decide = |d: &common::Daemon, agent: String| {
        let http = http.clone();
        let base = d.base.clone();
        let admin = d.admin.clone();
        async move {
            let t = Instant::now();
            let asked: Value = http
                .post(format!("{base}/api/v1/permissions"))
                .bearer_auth(&agent)
                .json(&json!({"kind": "shell", "command": "make deploy", "timeout": 600}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let id = asked["id"].as_str().unwrap();
            let r = http
                .post(format!("{base}/api/v1/permissions/{id}/reply"))
                .bearer_auth(&admin)
                .json(&json!({"decision": "allow"}))
                .send()
                .await
                .unwrap();
            assert!(r.status().is_success());
            t.elapsed().as_secs_f64() * 1e3
        }
    };
    let (mut q50, mut q99, mut n50, mut n99) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        let qa = common::token(&http, &quiet, "bench-agent", "request").await;
        let na = common::token(&http, &noisy, "bench-agent", "request").await;
        for _ in 0..ROUNDS {
            let (mut q, mut n) = (Vec::new(), Vec::new());
            for _ in 0..PROMPTS {
                q.push(decide(&quiet, qa.clone()).await);
                n.push(decide(&noisy, na.clone()).await);
            }
            q50.push(pct(&mut q, 0.5));
            q99.push(pct(&mut q, 0.99));
            n50.push(pct(&mut n, 0.5));
            n99.push(pct(&mut n, 0.99));
        }
    });
    println!(
        "a decision (ask + a person's reply), {} each ({ROUNDS} rounds):",
        ROUNDS * PROMPTS
    );
    println!(
        "  {:40} p50 {}  p99 {}",
        "no notification targets",
        spread(q50),
        spread(q99)
    );
    println!(
        "  {:40} p50 {}  p99 {}",
        "a hanging and a dead target",
        spread(n50),
        spread(n99)
    );
}
