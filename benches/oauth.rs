//! How long an MCP client takes to sign in, against the real daemon (the release binary, its own
//! process, a temp SQLite file): dynamic registration → authorize (consent page) → consent POST
//! with the owner passphrase → token → MCP `initialize` → `notifications/initialized` → the first
//! `tools/call`. Measured in the same run:
//! - the Argon2id passphrase verification alone (m = 64 MiB, t = 3), the cost the consent step
//!   pays by design, reported separately;
//! - the baseline: the same MCP session (initialize, initialized, tools/call) with a static API
//!   token, i.e. what signing in adds on top of using the endpoint at all.
//!
//! Run: `cargo bench --bench oauth`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::disallowed_methods
)]

use std::time::{Duration, Instant};

use agentgate::auth::passphrase;
use serde_json::{Value, json};

mod common;
use common::{Daemon, send, start, token};

const PASSPHRASE: &str = "correct horse battery staple";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
const ROUNDS: usize = 21;

fn field(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html.find(&marker).unwrap() + marker.len();
    html[start..start + html[start..].find('"').unwrap()].to_owned()
}

/// initialize, initialized, one tools/call: what any MCP client does first.
async fn mcp_session(http: &reqwest::Client, d: &Daemon, token: &str) {
    let post = |body: Value, session: Option<String>| {
        let mut req = http
            .post(format!("{}/mcp", d.base))
            .bearer_auth(token)
            .header("accept", "application/json, text/event-stream")
            .json(&body);
        if let Some(s) = session {
            req = req.header("mcp-session-id", s);
        }
        req.send()
    };
    let init = post(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "bench", "version": "0"}}}),
        None,
    )
    .await
    .unwrap();
    assert_eq!(init.status(), 200);
    let session = init.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    init.text().await.unwrap();
    let r = post(
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        Some(session.clone()),
    )
    .await
    .unwrap();
    assert!(r.status().is_success());
    let call = post(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {
            "name": "request_permission", "arguments": {"kind": "shell", "command": "echo bench"}}}),
        Some(session),
    )
    .await
    .unwrap();
    assert_eq!(call.status(), 200);
    let text = call.text().await.unwrap();
    assert!(text.contains(r#"\"status\":\"allowed\""#), "{text}");
}

/// Registration through the first tool call; returns the time of the consent POST (the step
/// that verifies the passphrase) and of all the other steps together, each measured directly.
async fn sign_in(http: &reqwest::Client, d: &Daemon) -> (Duration, Duration) {
    let start = Instant::now();
    let reg: Value = send(
        http.post(format!("{}/register", d.base))
            .json(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
                          "client_name": "bench", "grant_types": ["authorization_code", "refresh_token"]})),
    )
    .await;
    let client = reg["client_id"].as_str().unwrap().to_owned();
    let page = http
        .get(format!(
            "{}/authorize?response_type=code&client_id={client}&redirect_uri={}&state=s\
             &code_challenge={CHALLENGE}&code_challenge_method=S256&scope=request",
            d.base,
            form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>()
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let before_consent = Instant::now();
    let answer = http
        .post(format!("{}/authorize", d.base))
        .header("origin", &d.base)
        .form(&[
            ("authz", field(&page, "authz")),
            ("csrf", field(&page, "csrf")),
            ("passphrase", PASSPHRASE.to_owned()),
            ("decision", "approve".to_owned()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let consent = before_consent.elapsed();
    let location = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let code = location
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let tokens: Value = send(http.post(format!("{}/token", d.base)).form(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
        ("client_id", &client),
    ]))
    .await;
    mcp_session(http, d, tokens["access_token"].as_str().unwrap()).await;
    (consent, start.elapsed() - consent)
}

fn median_ms(samples: &mut [Duration]) -> f64 {
    samples.sort();
    samples[samples.len() / 2].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() {
    let d = start("[[rules]]\naction = \"allow\"\nkind = \"shell\"\npattern = \"echo *\"\n");
    let http = common::form_client();
    common::set_passphrase(&http, &d, PASSPHRASE).await;
    let static_token = token(&http, &d, "agent", "request").await;
    // The passphrase check on its own, in this process (the daemon runs the same code).
    let phc = passphrase::hash(PASSPHRASE).unwrap();
    // Warm up connections and caches once.
    sign_in(&http, &d).await;
    mcp_session(&http, &d, &static_token).await;

    let (mut flow, mut baseline, mut argon) = (Vec::new(), Vec::new(), Vec::new());
    let (mut consents, mut others) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let (consent, other) = sign_in(&http, &d).await;
        flow.push(t.elapsed());
        consents.push(consent);
        others.push(other);
        let t = Instant::now();
        mcp_session(&http, &d, &static_token).await;
        baseline.push(t.elapsed());
        let t = Instant::now();
        assert!(passphrase::verify_phc(&phc, PASSPHRASE).unwrap());
        argon.push(t.elapsed());
    }
    let (flow, baseline, argon) = (
        median_ms(&mut flow),
        median_ms(&mut baseline),
        median_ms(&mut argon),
    );
    let (consent, other) = (median_ms(&mut consents), median_ms(&mut others));
    println!("oauth sign-in, medians of {ROUNDS} (release daemon, SQLite synchronous=FULL):");
    println!("  DCR + consent + token + first tool call  {flow:8.2} ms");
    println!("    consent POST (verifies the passphrase) {consent:8.2} ms");
    println!("    every other step together              {other:8.2} ms");
    println!("  Argon2id verification alone (m=64 MiB, t=3, in this process): {argon:.2} ms");
    println!("  baseline: static-token MCP session       {baseline:8.2} ms");
    println!(
        "  ratios to the baseline: sign-in {:.1}x; every step but the consent POST {:.1}x",
        flow / baseline,
        other / baseline
    );
}
