//! Broker benchmarks against the real daemon (the release binary, its own process, a temp SQLite
//! file, `synchronous=FULL`), each with a baseline from the same run:
//! - durable request creation rate (goal ≥ 2,000/s on 2 cores) vs `/healthz` rate;
//! - approval round trip: request → SSE event seen by the approver → reply → the agent's
//!   long-poll returns (goal p99 ≤ 5 ms) vs a plain `/healthz` round trip;
//! - 10,000 concurrent pending long-polls held, with the daemon's RSS (goal ≤ 100 MB) vs its RSS
//!   when idle.
//!
//! - with `AGENTGATE_BENCH_PG=postgres://…` (a server; a database is created per phase), the
//!   same on PostgreSQL, and two instances on one database: the approval round trip asked on
//!   one and answered on the other (goal p99 ≤ 20 ms), each instance's RSS, and how long a token
//!   revoked on one is still accepted by the other (`cross`, `revoke`).
//!
//! Each phase runs against its own daemon on a fresh database, so one phase's backlog (thousands
//! of pending requests from the creation run) does not weigh on the next.
//!
//! Run: `cargo bench --bench broker` (raise `ulimit -n` above 20,000 first); name phases to run
//! only those: `cargo bench --bench broker -- create trip polls`;
//! `AGENTGATE_BENCH_PG=postgres://postgres@127.0.0.1:5432 cargo bench --bench broker -- create trip cross revoke`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;
use common::{PgDb, send, start_on, token};

const LONG_POLLS: usize = 10_000;
/// Pending requests already waiting when the round trip is measured again.
const BACKLOG: usize = 10_000;

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Requests per second of `make()` over `secs` with `workers` concurrent clients.
async fn rate<F, Fut>(workers: usize, secs: u64, make: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let make = Arc::new(make);
    let done = Arc::new(AtomicU64::new(0));
    let until = Instant::now() + Duration::from_secs(secs);
    let mut tasks = Vec::new();
    for w in 0..workers {
        let make = make.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = w as u64 * 1_000_000;
            while Instant::now() < until {
                make(i).await;
                i += 1;
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let start = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// The machine's CPU time so far, as (stolen by the hypervisor, all), from `/proc/stat`.
fn cpu_ticks() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|t| t.parse().ok())
        .collect();
    (ticks.get(7).copied().unwrap_or(0), ticks.iter().sum())
}

/// The share of CPU time the hypervisor took since `before`: a tail latency measured on a
/// virtual machine is only as good as this is low.
fn steal_since(before: (u64, u64)) -> f64 {
    let now = cpu_ticks();
    let all = now.1.saturating_sub(before.1).max(1);
    100.0 * now.0.saturating_sub(before.0) as f64 / all as f64
}

fn pct(samples: &mut [Duration], q: f64) -> f64 {
    samples.sort();
    samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0
}

/// A daemon on a fresh database, a client, and an agent's and an approver's token.
struct Setup {
    d: common::Daemon,
    http: reqwest::Client,
    agent: String,
    approver: String,
    /// The PostgreSQL database, when the bench runs on one (dropped after the daemon).
    db: Option<PgDb>,
}

/// One agent token holds the whole backlog: lift the per-credential pending cap.
const CONFIG: &str = "max_pending_per_requester = 1000000\n";

async fn setup() -> Setup {
    let db = PgDb::create();
    let d = start_on(CONFIG, db.as_ref().map(PgDb::url).as_deref(), None);
    let http = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let agent = token(&http, &d, "agent", "request").await;
    let approver = token(&http, &d, "approver", "approve").await;
    Setup {
        d,
        http,
        agent,
        approver,
        db,
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let named: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let run = |phase: &str| named.is_empty() || named.iter().any(|n| n == phase);
    if run("create") {
        create(setup().await).await;
    }
    if run("trip") {
        trip(setup().await, 0).await;
    }
    if run("trip-backlog") {
        trip(setup().await, BACKLOG).await;
    }
    if run("polls") {
        polls(setup().await).await;
    }
    if std::env::var("AGENTGATE_BENCH_PG").is_ok() {
        if run("cross") {
            cross(setup().await).await;
        }
        if run("revoke") {
            revoke(setup().await).await;
        }
    }
}

/// Durable creation rate vs /healthz.
async fn create(s: Setup) {
    let Setup { d, http, agent, .. } = s;
    println!("{}:", backend());
    let (h, b) = (http.clone(), d.base.clone());
    let healthz = rate(32, 3, move |_| {
        let (h, b) = (h.clone(), b.clone());
        async move {
            assert!(
                h.get(format!("{b}/healthz"))
                    .send()
                    .await
                    .unwrap()
                    .status()
                    .is_success()
            );
        }
    })
    .await;
    let (h, b, t) = (http.clone(), d.base.clone(), agent.clone());
    let created = rate(32, 3, move |i| {
        let (h, b, t) = (h.clone(), b.clone(), t.clone());
        async move {
            let r = h
                .post(format!("{b}/api/v1/permissions"))
                .bearer_auth(&t)
                .json(&json!({"kind": "shell", "command": format!("make target{i}"), "agent": "bench", "timeout": 3600}))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 202);
        }
    })
    .await;
    println!("healthz (baseline):                  {healthz:8.0} req/s");
    println!(
        "durable permission creation:         {created:8.0} req/s  (ratio {:.2} of healthz)",
        created / healthz
    );
    println!(
        "goal >= 2000 creations/s: {}",
        if created >= 2000.0 { "met" } else { "MISSED" }
    );
}

/// Approval round trip, seen through the event stream as a person's UI would, with `backlog`
/// other requests pending (each with a deadline the expirer must keep track of).
async fn trip(s: Setup, backlog: usize) {
    let Setup {
        d,
        http,
        agent,
        approver,
        ..
    } = s;
    let next = Arc::new(AtomicU64::new(0));
    let (h, b, t) = (http.clone(), d.base.clone(), agent.clone());
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (h, b, t, next) = (h.clone(), b.clone(), t.clone(), next.clone());
            tokio::spawn(async move {
                while next.fetch_add(1, Ordering::Relaxed) < backlog as u64 {
                    let r = h
                        .post(format!("{b}/api/v1/permissions"))
                        .bearer_auth(&t)
                        .json(&json!({"kind": "shell", "command": "make backlog", "timeout": 3600}))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 202);
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    println!(
        "with {backlog} other requests pending, one instance ({}):",
        backend()
    );
    round_trips(&http, &agent, &approver, &d, &d).await;
}

fn backend() -> &'static str {
    if std::env::var("AGENTGATE_BENCH_PG").is_ok() {
        "PostgreSQL"
    } else {
        "SQLite"
    }
}

/// 300 approval round trips: the agent asks `ask` and long-polls it; the approver watches the
/// event stream of `answer` and replies there.
async fn round_trips(
    http: &reqwest::Client,
    agent: &str,
    approver: &str,
    ask: &common::Daemon,
    answer: &common::Daemon,
) {
    let mut events = http
        .get(format!("{}/api/v1/events", answer.base))
        .bearer_auth(&answer.admin)
        .send()
        .await
        .unwrap();
    let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<(String, String)>();
    tokio::spawn(async move {
        let mut buf = String::new();
        while let Ok(Some(chunk)) = events.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                if block.contains("event: permission.created")
                    && let Some(data) = block.lines().find_map(|l| l.strip_prefix("data: "))
                {
                    let v: Value = serde_json::from_str(data).unwrap();
                    let summary = v["data"]["summary"].as_str().unwrap_or("").to_owned();
                    let _ = seen_tx.send((summary, v["subject"].as_str().unwrap().to_owned()));
                }
            }
        }
    });
    let ticks = cpu_ticks();
    let mut trips = Vec::new();
    let mut plain = Vec::new();
    let (mut leg_event, mut leg_reply, mut leg_release) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..300 {
        let start = Instant::now();
        http.get(format!("{}/healthz", ask.base))
            .send()
            .await
            .unwrap();
        plain.push(start.elapsed());

        let (h, b, t) = (http.clone(), ask.base.clone(), agent.to_owned());
        let start = Instant::now();
        let waiter = tokio::spawn(async move {
            let r: Value = send(
                h.post(format!("{b}/api/v1/permissions?wait=30"))
                    .bearer_auth(&t)
                    .json(&json!({"kind": "shell", "command": format!("deploy {i}")})),
            )
            .await;
            assert_eq!(r["status"], "allowed");
            Instant::now()
        });
        let want = format!("deploy {i}");
        let id = loop {
            let (summary, id) = seen_rx.recv().await.unwrap();
            if summary == want {
                break id;
            }
        };
        let seen = Instant::now();
        let r = http
            .post(format!("{}/api/v1/permissions/{id}/reply", answer.base))
            .bearer_auth(approver)
            .json(&json!({"decision": "allow"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let replied = Instant::now();
        let unblocked = waiter.await.unwrap();
        if i >= 20 {
            trips.push(unblocked - start);
            leg_event.push(seen - start);
            leg_reply.push(replied - seen);
            leg_release.push(unblocked.saturating_duration_since(replied));
        }
    }
    let (t50, t99) = (pct(&mut trips, 0.5), pct(&mut trips, 0.99));
    let (p50, p99) = (pct(&mut plain, 0.5), pct(&mut plain, 0.99));
    let goal = if std::ptr::eq(ask, answer) { 5.0 } else { 20.0 };
    println!(
        "(CPU stolen by the hypervisor meanwhile: {:.1}%)",
        steal_since(ticks)
    );
    println!("healthz round trip (baseline):       p50 {p50:6.2} ms  p99 {p99:6.2} ms");
    println!("approval round trip (4 HTTP legs):   p50 {t50:6.2} ms  p99 {t99:6.2} ms");
    println!(
        "goal approval p99 <= {goal} ms: {}",
        if t99 <= goal { "met" } else { "MISSED" }
    );
    for (name, q) in [("p50", 0.5), ("p99", 0.99)] {
        println!(
            "  legs {name}: create→event seen {:.2} ms, reply {:.2} ms, reply→agent released {:.2} ms",
            pct(&mut leg_event, q),
            pct(&mut leg_reply, q),
            pct(&mut leg_release, q)
        );
    }
}

/// Two instances on one PostgreSQL database: asked on one, answered on the other.
async fn cross(s: Setup) {
    let url = s.db.as_ref().unwrap().url();
    let b = start_on(CONFIG, Some(&url), Some(&s.d.admin));
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!(
        "instance RSS idle: A {:.1} MB, B {:.1} MB",
        rss_kib(s.d.child.id()) as f64 / 1024.0,
        rss_kib(b.child.id()) as f64 / 1024.0
    );
    println!("two instances on one PostgreSQL database, asked on A, answered on B:");
    round_trips(&s.http, &s.agent, &s.approver, &s.d, &b).await;
}

/// How long a token revoked on one instance is still accepted by another that had it cached.
async fn revoke(s: Setup) {
    let url = s.db.as_ref().unwrap().url();
    let b = start_on(CONFIG, Some(&url), Some(&s.d.admin));
    let mut visible = Vec::new();
    for i in 0..30 {
        let v: Value = send(
            s.http
                .post(format!("{}/api/v1/tokens", s.d.base))
                .bearer_auth(&s.d.admin)
                .json(&json!({"name": format!("r{i}"), "scopes": ["read"]})),
        )
        .await;
        let (secret, id) = (v["token"].as_str().unwrap(), v["id"].as_str().unwrap());
        let on_b = |secret: &str| {
            s.http
                .get(format!("{}/api/v1/whoami", b.base))
                .bearer_auth(secret)
                .send()
        };
        assert_eq!(on_b(secret).await.unwrap().status(), 200, "cached on B");
        let r = s
            .http
            .delete(format!("{}/api/v1/tokens/{id}", s.d.base))
            .bearer_auth(&s.d.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let revoked = Instant::now();
        while on_b(secret).await.unwrap().status() != 401 {
            assert!(revoked.elapsed() < Duration::from_secs(5));
        }
        visible.push(revoked.elapsed());
    }
    let (p50, max) = (pct(&mut visible, 0.5), pct(&mut visible, 1.0));
    println!(
        "revoked on A, refused by B after:    p50 {p50:6.2} ms  max {max:6.2} ms  (goal <= 1000 ms: {})",
        if max <= 1000.0 { "met" } else { "MISSED" }
    );
}

/// 10,000 concurrent long-polls on one pending request.
async fn polls(s: Setup) {
    let Setup {
        d,
        http,
        agent,
        approver,
        ..
    } = s;
    let idle_rss = rss_kib(d.child.id());
    let pending: Value = send(
        http.post(format!("{}/api/v1/permissions", d.base))
            .bearer_auth(&agent)
            .json(&json!({"kind": "shell", "command": "deploy", "timeout": 3600})),
    )
    .await;
    let id = pending["id"].as_str().unwrap().to_owned();
    let polling = Arc::new(AtomicU64::new(0));
    let mut polls = Vec::with_capacity(LONG_POLLS);
    for _ in 0..LONG_POLLS {
        // One connection each, as 10,000 separate agents would have.
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let url = format!("{}/api/v1/permissions/{id}?wait=120", d.base);
        let t = agent.clone();
        let polling = polling.clone();
        polls.push(tokio::spawn(async move {
            polling.fetch_add(1, Ordering::Relaxed);
            let r = client.get(url).bearer_auth(&t).send().await;
            r.map(|r| r.status().as_u16()).unwrap_or(0)
        }));
    }
    // Let every poll reach the daemon and park.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let held_rss = rss_kib(d.child.id());
    // Every poll is a connection the daemon accepted and still holds.
    let open = std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
        .unwrap()
        .count();
    assert!(open >= LONG_POLLS, "only {open} descriptors open");
    println!(
        "daemon RSS idle (baseline):          {:8.1} MB",
        idle_rss as f64 / 1024.0
    );
    println!(
        "daemon RSS with {LONG_POLLS} long-polls held: {:8.1} MB  (+{:.1} KB per poll; {open} fds open)",
        held_rss as f64 / 1024.0,
        (held_rss.saturating_sub(idle_rss)) as f64 / LONG_POLLS as f64
    );
    println!(
        "goal RSS <= 100 MB: {}",
        if held_rss <= 100 * 1024 {
            "met"
        } else {
            "MISSED"
        }
    );
    // Release them all with one decision.
    let r = http
        .post(format!("{}/api/v1/permissions/{id}/reply", d.base))
        .bearer_auth(&approver)
        .json(&json!({"decision": "deny"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let mut ok = 0;
    for p in polls {
        if p.await.unwrap() == 200 {
            ok += 1;
        }
    }
    println!("long-polls released by one decision: {ok}/{LONG_POLLS} answered 200");
}
