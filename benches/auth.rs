//! Micro-benchmark: token verification + scope check per request, against the SHA-256 of the
//! secret alone (the part no design can skip), measured in the same run.
//!
//! Run: `cargo bench --bench auth`. Goal: ≤ 2 µs per request. Hand-rolled timing loop rather than
//! criterion: one number and one ratio are all we report, and it keeps the dev-dependency tree small.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use agentgate::api::CreateToken;
use agentgate::auth::{Authenticator, TokenHash, passphrase};
use agentgate::clock::Clock;
use agentgate::policy::Scope;
use agentgate::store::Store;

const ROUNDS: usize = 7;
const ITERS: u32 = 200_000;

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = agentgate::store::DatabaseUrl::Sqlite(dir.path().join("bench.db"));
    let (auth, secret) = rt.block_on(async {
        let store = Store::open(&url).await.unwrap();
        let auth = Authenticator::new(store, Clock::System);
        let (path, _) = auth.bootstrap_owner(dir.path()).await.unwrap();
        let owner = std::fs::read_to_string(path).unwrap();
        let owner = auth.authenticate(owner.trim()).await.unwrap();
        let request = CreateToken {
            name: "agent".into(),
            scopes: vec![Scope::Request, Scope::Read],
            expires_in: None,
            person: None,
        };
        let (secret, _) = auth.create_token(&owner, request).await.unwrap();
        (auth, secret.expose().to_owned())
    });

    let mut baseline = Vec::new();
    let mut verify = Vec::new();
    for _ in 0..ROUNDS {
        baseline.push(time(|| {
            for _ in 0..ITERS {
                black_box(TokenHash::of(black_box(&secret)));
            }
        }));
        verify.push(time(|| {
            rt.block_on(async {
                for _ in 0..ITERS {
                    let who = auth.authenticate(black_box(&secret)).await.unwrap();
                    assert!(black_box(who.scopes.allows(Scope::Read)));
                }
            })
        }));
    }
    let base = median_ns(&mut baseline);
    let full = median_ns(&mut verify);
    println!("sha256 of the secret (baseline):        {base:>8.0} ns/op");
    println!("verify token + scope check (cache hit): {full:>8.0} ns/op");
    println!("ratio verify/baseline: {:.2}", full / base);
    println!(
        "goal <= 2000 ns per request: {}",
        if full <= 2000.0 { "met" } else { "MISSED" }
    );

    // The owner passphrase is slow to check on purpose: each guess costs the attacker this much.
    let phc = passphrase::hash("correct horse battery staple").unwrap();
    let mut checks: Vec<Duration> = (0..5)
        .map(|_| time(|| assert!(passphrase::verify_phc(&phc, "wrong guess").is_ok())))
        .collect();
    checks.sort();
    let ms = checks[checks.len() / 2].as_secs_f64() * 1000.0;
    println!("owner passphrase verification (Argon2id m=64MiB t=3): {ms:.1} ms per check");
    println!(
        "goal >= 50 ms per check: {}",
        if ms >= 50.0 { "met" } else { "MISSED" }
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median_ns(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_nanos() as f64 / f64::from(ITERS)
}
