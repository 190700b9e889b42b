//! `agentgate hook claude-code|codex`: the command hook. Reads the agent's hook event on stdin,
//! hands it to the daemon (`POST /api/v1/hooks/{agent}`), and prints the answer the agent
//! expects. Every failure — daemon down, token refused, bad input — is a block with the reason
//! (exit 2, the reason on stderr: both agents block on it and show it to the model), unless the
//! person chose `--on-error ask`.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use serde_json::Value;

use super::Global;
use super::client::Client;
use crate::agents::hook::{self, Agent, Verdict};
use crate::agents::{DEFAULT_PATIENCE, MAX_PATIENCE};

/// What a hook does when agentgate cannot decide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(super) enum OnError {
    /// Block the tool call (fail closed).
    Deny,
    /// Leave it to the agent's own prompt.
    Ask,
}

impl OnError {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            OnError::Deny => "deny",
            OnError::Ask => "ask",
        }
    }
}

/// `agentgate hook claude-code|codex`.
#[derive(Debug, Args)]
pub(super) struct HookRun {
    /// Seconds to wait for a person; then the request times out (recorded as `timeout`) and the
    /// call is denied
    #[arg(long, default_value_t = DEFAULT_PATIENCE.as_secs(), value_parser = clap::value_parser!(u64).range(1..=MAX_PATIENCE.as_secs()))]
    pub timeout: u64,
    /// When agentgate cannot decide (daemon down, token refused, bad event): deny, or leave it to
    /// the agent's own prompt
    #[arg(long, value_enum, default_value_t = OnError::Deny)]
    pub on_error: OnError,
    /// File holding the hook's `request` token (written by `hook install`)
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

/// Runs the command hook; returns the exit code.
pub(super) async fn run(global: &Global, agent: Agent, args: &HookRun) -> u8 {
    let mut event = Vec::new();
    let read = std::io::stdin()
        .lock()
        .take(hook::MAX_EVENT as u64 + 1)
        .read_to_end(&mut event);
    let outcome = match read {
        Err(e) => Err(format!("cannot read the hook event: {e}")),
        // Checked here too, so a bad event is refused even when the daemon is down.
        Ok(_) => match hook::parse(agent, &event) {
            Err(reason) => Err(reason),
            Ok(_) => ask(global, agent, args, event.clone()).await,
        },
    };
    match outcome {
        Ok(answer) => {
            if answer.as_object().is_none_or(|o| !o.is_empty()) {
                println!("{answer}");
            }
            0
        }
        Err(reason) => fail(agent, args.on_error, &event, &reason),
    }
}

async fn ask(
    global: &Global,
    agent: Agent,
    args: &HookRun,
    event: Vec<u8>,
) -> Result<Value, String> {
    let token = match &args.token_file {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the token file {}: {e}", path.display()))?,
        ),
        None => None,
    };
    let client = Client::with_token(global, token).map_err(|e| format!("{e:#}"))?;
    let path = format!("/api/v1/hooks/{}?timeout={}", agent.as_str(), args.timeout);
    // The daemon answers by the request's deadline; the margin covers the round trip.
    let wait = Duration::from_secs(args.timeout + 10);
    let (status, body) = client
        .post_raw(&path, event, wait)
        .await
        .map_err(|e| format!("{e:#}"))?;
    if !status.is_success() {
        let message = serde_json::from_slice::<crate::api::ErrorBody>(&body)
            .map(|b| b.message)
            .unwrap_or_else(|_| format!("HTTP {status}"));
        return Err(format!("the daemon refused the hook ({status}): {message}"));
    }
    serde_json::from_slice(&body)
        .map_err(|_| format!("{} did not answer JSON: is it agentgate?", client.base()))
}

/// The safe outcome: a block with the reason, or with `--on-error ask` the agent's own prompt.
fn fail(agent: Agent, on_error: OnError, event: &[u8], reason: &str) -> u8 {
    let reason = format!("agentgate: {reason}");
    if on_error == OnError::Ask
        && let Ok(call) = hook::parse(agent, event)
    {
        if let Some(answer) = hook::answer(agent, call.event, &Verdict::Ask(reason.clone())) {
            println!("{answer}");
        }
        super::terminal::esay!("{reason} (left to {}'s own prompt)", agent.as_str());
        return 0;
    }
    super::terminal::esay!("{reason}");
    2
}
