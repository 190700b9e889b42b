//! Runs the browser tests (`tests/browser/*.test.mjs`: Playwright driving Debian's chromium
//! against the real daemon binary) as part of `cargo test --workspace`.
//!
//! Needs `node`, `npm ci --prefix tests/browser` and `/usr/bin/chromium` (or
//! `AGENTGATE_CHROMIUM`). Where one is missing the test says what to install and passes, so a
//! developer without a browser can still run the rest; CI sets `AGENTGATE_BROWSER_TESTS=required`
//! and then a missing piece fails the run.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn missing(what: &str) {
    let required = std::env::var("AGENTGATE_BROWSER_TESTS").is_ok_and(|v| v == "required");
    let message = format!(
        "browser tests NOT RUN: {what}. Install chromium (`apt-get install chromium`) and the \
         test packages (`npm ci --prefix tests/browser`) to run them."
    );
    if required {
        panic!("{message} (AGENTGATE_BROWSER_TESTS=required)");
    }
    eprintln!("{message}");
}

#[test]
fn web_inbox_in_real_chromium() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let chromium = std::env::var_os("AGENTGATE_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if !chromium.exists() {
        return missing(&format!("no chromium at {}", chromium.display()));
    }
    if Command::new("node").arg("--version").output().is_err() {
        return missing("no `node` on PATH");
    }
    if !dir.join("node_modules/playwright-core").exists() {
        return missing("playwright-core is not installed in tests/browser/node_modules");
    }
    let status = Command::new("node")
        .args(["--test", "--test-concurrency=1", "--test-reporter=spec"])
        .arg("inbox.test.mjs")
        .current_dir(&dir)
        .env("AGENTGATE_BIN", env!("CARGO_BIN_EXE_agentgate"))
        .env("AGENTGATE_CHROMIUM", &chromium)
        .status()
        .expect("running node");
    assert!(status.success(), "browser tests failed: {status}");
}
