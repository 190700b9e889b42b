//! The passphrase under attack: 24 concurrent guessers, each from its own loopback address
//! (every one of 127.0.0.0/8 reaches the daemon), for a fixed time against the real release
//! daemon. Prints how many guesses were actually checked (hashed) per minute, how many were
//! refused without hashing, and the daemon's peak RSS against its idle RSS measured in the same
//! run (each Argon2id verification costs 64 MiB, so unbounded concurrency shows up here).
//!
//! Run: `cargo bench --bench passphrase` (AGENTGATE_BENCH_SECS sets the attack's length, default 30).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const GUESSERS: u8 = 24;
const PASSPHRASE: &str = "violet tractor 42 sundial";

/// `VmRSS` or `VmHWM` of a process, in MiB.
fn mem(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let secs: u64 = std::env::var("AGENTGATE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let d = common::start("");
    let pid = d.child.id();
    let http = common::form_client();
    common::set_passphrase(&http, &d, PASSPHRASE).await;

    // Baseline, same run: idle memory and one right sign-in (one Argon2id verification).
    let idle = mem(pid, "VmRSS:");
    let start = Instant::now();
    let ok = http
        .post(format!("{}/login", d.base))
        .header("origin", &d.base)
        .form(&[("passphrase", PASSPHRASE), ("next", "/")])
        .send()
        .await
        .unwrap();
    let one = start.elapsed();
    assert_eq!(ok.status().as_u16(), 303);

    let checked = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let tasks: Vec<_> = (0..GUESSERS)
        .map(|i| {
            let (base, checked, refused) = (d.base.clone(), checked.clone(), refused.clone());
            tokio::spawn(async move {
                let mut n: u32 = 0;
                while Instant::now() < deadline {
                    // A fresh loopback source for every guess.
                    n += 1;
                    let source = Ipv4Addr::new(127, i + 1, (n >> 8) as u8, (n & 0xff) as u8 | 1);
                    let client = reqwest::Client::builder()
                        .no_proxy()
                        .local_address(IpAddr::V4(source))
                        .build()
                        .unwrap();
                    let r = client
                        .post(format!("{base}/login"))
                        .header("origin", &base)
                        .form(&[
                            ("passphrase", format!("guess {i} {n}")),
                            ("next", "/".into()),
                        ])
                        .send()
                        .await
                        .unwrap();
                    match r.status().as_u16() {
                        401 => checked.fetch_add(1, Ordering::Relaxed),
                        429 => refused.fetch_add(1, Ordering::Relaxed),
                        other => panic!("unexpected {other}"),
                    };
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let peak = mem(pid, "VmHWM:");
    let checked = checked.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    let per_minute = checked as f64 * 60.0 / secs as f64;
    println!("{GUESSERS} concurrent guessers, each guess from a fresh 127.x.y.z, for {secs} s");
    println!(
        "one right sign-in (baseline, one Argon2id verification): {:.0} ms",
        one.as_secs_f64() * 1000.0
    );
    println!(
        "guesses checked: {checked} ({per_minute:.1}/min); refused without hashing: {refused}"
    );
    println!(
        "daemon RSS: idle {idle:.1} MiB, peak during the attack {peak:.1} MiB (ratio {:.2})",
        peak / idle
    );
}
