//! End-to-end tests with the real agents (installed from tests/agents/package-lock.json by
//! scripts/test): Claude Code and Codex through `agentgate hook`, opencode through a bridge, each
//! driven by a scripted model server, against the real `agentgate serve` binary.
//!
//! Where the agents are not installed the tests say so and pass, so a developer without them can
//! run the rest; CI sets `AGENTGATE_AGENT_TESTS=required` and then a missing agent fails.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod claude;
mod codex;
mod daemon;
mod models;
mod opencode;

use std::path::PathBuf;

/// The agents run one at a time: each brings a large native binary, a model server and a daemon,
/// and on two cores several at once starve each other past their timeouts.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn agent(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/agents/node_modules/.bin")
        .join(name);
    if path.exists() {
        return Some(path);
    }
    let message = format!(
        "agent tests NOT RUN: {} is missing; run `npm ci --prefix tests/agents` (scripts/test does)",
        path.display()
    );
    if std::env::var("AGENTGATE_AGENT_TESTS").is_ok_and(|v| v == "required") {
        panic!("{message} (AGENTGATE_AGENT_TESTS=required)");
    }
    eprintln!("{message}");
    None
}

/// tests/browser with its playwright-core and Debian's chromium, for the one click in the inbox
/// (required where the browser tests are).
fn browser() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("AGENTGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if chromium.exists() && dir.join("node_modules/playwright-core").exists() {
        return Some(dir);
    }
    let message = "the inbox click on a real opencode prompt NOT RUN: chromium or tests/browser/node_modules missing";
    if std::env::var("AGENTGATE_BROWSER_TESTS").is_ok_and(|v| v == "required") {
        panic!("{message} (AGENTGATE_BROWSER_TESTS=required)");
    }
    eprintln!("{message}");
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claude_code_asks_agentgate_before_every_command() {
    let _one = ONE_AT_A_TIME.lock().await;
    if let Some(bin) = agent("claude") {
        claude::run(&bin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codex_hook_denies_and_its_trust_is_recorded_and_checked() {
    let _one = ONE_AT_A_TIME.lock().await;
    if let Some(bin) = agent("codex") {
        codex::run(&bin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_prompts_are_answered_through_the_bridge() {
    let _one = ONE_AT_A_TIME.lock().await;
    if let Some(bin) = agent("opencode") {
        opencode::run(&bin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_behind_a_gateway_gets_each_token_what_its_scopes_allow() {
    let _one = ONE_AT_A_TIME.lock().await;
    if let Some(bin) = agent("opencode") {
        opencode::behind_a_gateway(&bin).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opencode_web_ui_through_a_gateway_with_the_inbox_session() {
    let _one = ONE_AT_A_TIME.lock().await;
    if let (Some(bin), Some(browser)) = (agent("opencode"), browser()) {
        opencode::ui_through_a_gateway(&bin, &browser).await;
    }
}
