//! `agentgate hook install|uninstall|status claude-code|codex`: mints the hook's own `request`
//! token (kept in a 0600 file in the data dir), merges the hook into the agent's settings
//! (keeping what is there; installing twice changes nothing), and for Codex records the trust
//! entry Codex requires before it runs a user hook — or says exactly how to give it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::Global;
use super::client::Client;
use super::hook::OnError;
use super::terminal::say;
use crate::agents::hook::Agent;
use crate::agents::install::{self, Transport};
use crate::agents::{DEFAULT_PATIENCE, MAX_PATIENCE};
use crate::api::{CreateToken, CreatedToken, Expiry, TokenList, WhoAmI};
use agentgate_policy::Scope;

/// The agents hooks can be installed for.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum AgentArg {
    /// Claude Code (`.claude/settings.json`)
    ClaudeCode,
    /// Codex (`$CODEX_HOME/hooks.json`)
    Codex,
}

impl AgentArg {
    fn agent(self) -> Agent {
        match self {
            AgentArg::ClaudeCode => Agent::ClaudeCode,
            AgentArg::Codex => Agent::Codex,
        }
    }
}

/// Where and how to install.
#[derive(Debug, Args)]
pub(super) struct HookInstall {
    /// The agent
    #[arg(value_enum)]
    agent: AgentArg,
    /// Claude Code: this project's `.claude/settings.json` [default: the current directory]
    #[arg(long, value_name = "DIR", conflicts_with = "user")]
    project: Option<PathBuf>,
    /// Claude Code: the user's `~/.claude/settings.json` (every project)
    #[arg(long)]
    user: bool,
    /// Claude Code: an http hook (no process per tool call) instead of a command hook; the
    /// token then sits in the settings file, so a project install goes to the git-ignored
    /// `.claude/settings.local.json`
    #[arg(long)]
    http: bool,
    /// Seconds a tool call waits for a person before it is denied as timed out
    #[arg(long, default_value_t = DEFAULT_PATIENCE.as_secs(), value_parser = clap::value_parser!(u64).range(1..=MAX_PATIENCE.as_secs()))]
    timeout: u64,
    /// Tools asked about before they run (a regular expression over tool names)
    #[arg(long)]
    matcher: Option<String>,
    /// When agentgate cannot decide: deny (fail closed), or leave it to the agent's own prompt
    #[arg(long, value_enum, default_value_t = OnError::Deny)]
    on_error: OnError,
    /// Codex: the codex binary, to record (install) or check (status) the hook's trust
    /// [default: `codex` on PATH]
    #[arg(long, value_name = "PATH")]
    codex: Option<PathBuf>,
    /// Lifetime of the hook's token (never, 90d, …)
    #[arg(long, default_value = "never")]
    expires: String,
}

/// Where one installation lives.
struct Place {
    agent: Agent,
    settings: PathBuf,
    token_name: String,
    token_file: PathBuf,
}

fn place(global: &Global, args: &HookInstall) -> anyhow::Result<Place> {
    let agent = args.agent.agent();
    let home = || {
        std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .context("HOME is not set")
    };
    let settings = match agent {
        Agent::ClaudeCode => {
            let dir = if args.user {
                home()?.join(".claude")
            } else {
                let project = match &args.project {
                    Some(p) => p.clone(),
                    None => std::env::current_dir().context("reading the current directory")?,
                };
                std::path::absolute(&project)?.join(".claude")
            };
            let file = if args.http && !args.user {
                "settings.local.json"
            } else {
                "settings.json"
            };
            dir.join(file)
        }
        Agent::Codex => {
            if args.project.is_some() || args.http {
                bail!(
                    "Codex reads hooks from $CODEX_HOME/hooks.json (project hooks only in trusted projects) and has no http hooks: drop --project/--http"
                );
            }
            match std::env::var_os("CODEX_HOME").filter(|h| !h.is_empty()) {
                Some(h) => std::path::absolute(PathBuf::from(h))?.join("hooks.json"),
                None => home()?.join(".codex").join("hooks.json"),
            }
        }
    };
    let digest = Sha256::digest(settings.display().to_string().as_bytes());
    let short: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
    let token_name = format!("hook-{}-{short}", agent.as_str());
    let (file, _) = crate::config::FileConfig::load(global.config.as_deref())?;
    let data_dir = crate::config::resolve_data_dir(global.data_dir.clone().or(file.data_dir))?;
    let token_file = data_dir.join("hooks").join(format!("{token_name}.token"));
    Ok(Place {
        agent,
        settings,
        token_name,
        token_file,
    })
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) if text.trim().is_empty() => Ok(json!({})),
        Ok(text) => serde_json::from_str(&text).with_context(|| {
            format!(
                "{} is not valid JSON; fix it first (nothing was changed)",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes through a temporary file and a rename, so the agent never reads half a file.
fn write_atomically(path: &Path, text: &str, private: bool) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    if private {
        return crate::auth::write_private(path, text.trim_end())
            .with_context(|| format!("cannot write {}", path.display()));
    }
    let tmp = path.with_extension("agentgate-tmp");
    std::fs::write(&tmp, text).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// The hook's token: the one in its file while the daemon still accepts it, else a new one.
async fn ensure_token(
    admin: &Client,
    global: &Global,
    place: &Place,
    expires: &str,
) -> anyhow::Result<String> {
    if let Ok(existing) = std::fs::read_to_string(&place.token_file) {
        let existing = existing.trim().to_owned();
        if let Ok(client) = Client::with_token(global, Some(existing.clone()))
            && client.get::<WhoAmI>("/api/v1/whoami").await.is_ok()
        {
            return Ok(existing);
        }
    }
    revoke_named(admin, &place.token_name).await?;
    let expires_in = Expiry::parse(expires).map_err(|e| anyhow::anyhow!("--expires: {e}"))?;
    let created: CreatedToken = admin
        .send(
            Method::POST,
            "/api/v1/tokens",
            Some(&CreateToken {
                name: place.token_name.clone(),
                scopes: vec![Scope::Request],
                expires_in: Some(expires_in),
                person: None,
            }),
        )
        .await
        .context("minting the hook's token (needs the owner's admin token)")?;
    if let Some(dir) = place.token_file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    crate::auth::write_private(&place.token_file, &created.token)
        .with_context(|| format!("cannot write {}", place.token_file.display()))?;
    Ok(created.token)
}

async fn revoke_named(admin: &Client, name: &str) -> anyhow::Result<bool> {
    let list: TokenList = admin.get("/api/v1/tokens").await?;
    let Some(token) = list.tokens.into_iter().find(|t| t.name == name) else {
        return Ok(false);
    };
    admin
        .send::<(), Value>(
            Method::DELETE,
            &format!("/api/v1/tokens/{}", token.id),
            None,
        )
        .await?;
    Ok(true)
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

pub(super) async fn install(global: &Global, args: HookInstall) -> anyhow::Result<()> {
    let place = place(global, &args)?;
    let mut settings = read_json(&place.settings)?;
    let admin = Client::from_global(global)?;
    let token = ensure_token(&admin, global, &place, &args.expires).await?;
    let agent = place.agent;
    let transport = if args.http {
        Transport::Http {
            url: format!(
                "{}/api/v1/hooks/{}?timeout={}",
                admin.base(),
                agent.as_str(),
                args.timeout
            ),
            token,
        }
    } else {
        let exe = std::env::current_exe().context("finding the agentgate binary")?;
        Transport::Command(format!(
            "{} --url {} hook {} --token-file {} --timeout {} --on-error {}",
            quote(&exe.display().to_string()),
            quote(admin.base()),
            agent.as_str(),
            quote(&place.token_file.display().to_string()),
            args.timeout,
            args.on_error.as_str(),
        ))
    };
    let handler = install::entry(agent, &transport, args.timeout);
    let (matcher, everything) = match agent {
        Agent::ClaudeCode => (install::CLAUDE_MATCHER, "*"),
        Agent::Codex => (install::CODEX_MATCHER, install::CODEX_MATCHER),
    };
    let matcher = args.matcher.as_deref().unwrap_or(matcher);
    let mut changed = install::add(&mut settings, agent, "PreToolUse", matcher, handler.clone())
        .map_err(|e| anyhow::anyhow!("{}: {e}", place.settings.display()))?;
    changed |= install::add(
        &mut settings,
        agent,
        "PermissionRequest",
        everything,
        handler,
    )
    .map_err(|e| anyhow::anyhow!("{}: {e}", place.settings.display()))?;
    if changed {
        write_atomically(
            &place.settings,
            &format!("{}\n", serde_json::to_string_pretty(&settings)?),
            args.http,
        )?;
        say!(
            "installed the agentgate hook in {}",
            place.settings.display()
        );
    } else {
        say!(
            "the agentgate hook is already installed in {}",
            place.settings.display()
        );
    }
    say!(
        "token: {} (scope request), in {}",
        place.token_name,
        place.token_file.display()
    );
    if agent == Agent::Codex {
        trust_codex(&args, &place).await?;
    }
    Ok(())
}

pub(super) async fn uninstall(global: &Global, args: HookInstall) -> anyhow::Result<()> {
    let place = place(global, &args)?;
    let mut settings = read_json(&place.settings)?;
    let removed = install::remove(&mut settings, place.agent)
        .map_err(|e| anyhow::anyhow!("{}: {e}", place.settings.display()))?;
    if removed > 0 {
        write_atomically(
            &place.settings,
            &format!("{}\n", serde_json::to_string_pretty(&settings)?),
            false,
        )?;
    }
    say!(
        "removed {removed} agentgate hook entries from {}",
        place.settings.display()
    );
    if place.agent == Agent::Codex {
        let config = place.settings.with_file_name("config.toml");
        if let Ok(text) = std::fs::read_to_string(&config) {
            let prefix = format!("{}:", place.settings.display());
            let kept = install::codex_untrust(&text, &prefix);
            if kept != text {
                write_atomically(&config, &kept, false)?;
                say!(
                    "removed the trust entries agentgate wrote in {}",
                    config.display()
                );
            }
        }
    }
    let admin = Client::from_global(global)?;
    if revoke_named(&admin, &place.token_name).await? {
        say!("revoked the hook's token {}", place.token_name);
    }
    let _ = std::fs::remove_file(&place.token_file);
    Ok(())
}

/// Prints where the hook stands; fails when it would not protect.
pub(super) async fn status(global: &Global, args: HookInstall) -> anyhow::Result<u8> {
    let place = place(global, &args)?;
    let settings = read_json(&place.settings)?;
    let mut ok = true;
    let installed = settings
        .get("hooks")
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|h| h.iter())
        .filter(|(_, groups)| {
            groups.as_array().into_iter().flatten().any(|g| {
                g.get("hooks")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .any(|h| install::is_ours(place.agent, h))
            })
        })
        .map(|(event, _)| event.clone())
        .collect::<Vec<_>>();
    if installed.is_empty() {
        say!(
            "not installed: {} has no agentgate hook",
            place.settings.display()
        );
        return Ok(1);
    }
    say!(
        "installed in {} for {}",
        place.settings.display(),
        installed.join(", ")
    );
    match std::fs::read_to_string(&place.token_file) {
        Ok(token) => match Client::with_token(global, Some(token)) {
            Ok(client) => match client.get::<WhoAmI>("/api/v1/whoami").await {
                Ok(who) => say!(
                    "token: {} accepted by the daemon at {}",
                    who.name,
                    client.base()
                ),
                Err(e) => {
                    ok = false;
                    say!(
                        "token: refused or daemon unreachable: {e:#} (every tool call is blocked until this is fixed)"
                    );
                }
            },
            Err(e) => {
                ok = false;
                say!("token: {e:#}");
            }
        },
        Err(_) if args.http => {}
        Err(e) => {
            ok = false;
            say!("token: cannot read {}: {e}", place.token_file.display());
        }
    }
    if place.agent == Agent::Codex {
        match codex_hooks(&args, &place).await {
            Ok(ours) if !ours.is_empty() => {
                for hook in &ours {
                    let trusted = hook.trust == "trusted";
                    ok &= trusted;
                    say!(
                        "codex: {} is {}{}",
                        hook.key,
                        hook.trust,
                        if trusted {
                            ""
                        } else {
                            " — Codex skips it silently: run `agentgate hook install codex` again, or trust it in codex's /hooks"
                        }
                    );
                }
            }
            Ok(_) => {
                ok = false;
                say!(
                    "codex: does not list the agentgate hook (is CODEX_HOME the same as codex's?)"
                );
            }
            Err(e) => {
                ok = false;
                say!("codex: cannot tell whether Codex trusts the hook: {e:#}");
            }
        }
    }
    Ok(if ok { 0 } else { 1 })
}

/// A hook as `codex app-server` lists it.
struct CodexHook {
    key: String,
    hash: String,
    trust: String,
}

fn codex_binary(args: &HookInstall) -> anyhow::Result<PathBuf> {
    if let Some(path) = &args.codex {
        return Ok(path.clone());
    }
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("codex"))
        .find(|p| p.is_file())
        .context("`codex` is not on PATH (pass --codex /path/to/codex)")
}

/// Asks Codex itself which hooks it sees and whether it trusts them (`hooks/list` of
/// `codex app-server`), keeping those agentgate installed.
async fn codex_hooks(args: &HookInstall, place: &Place) -> anyhow::Result<Vec<CodexHook>> {
    let binary = codex_binary(args)?;
    let codex_home = place.settings.parent().context("no CODEX_HOME")?;
    let cwd = std::env::current_dir()?;
    let mut child = tokio::process::Command::new(&binary)
        .arg("app-server")
        .env("CODEX_HOME", codex_home)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot run {}", binary.display()))?;
    let mut stdin = child.stdin.take().context("codex's stdin")?;
    let stdout = child.stdout.take().context("codex's stdout")?;
    let messages = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"clientInfo": {"name": "agentgate", "version": env!("CARGO_PKG_VERSION")}}}),
        json!({"jsonrpc": "2.0", "method": "initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "hooks/list", "params": {"cwds": [cwd]}}),
    ];
    for message in messages {
        stdin.write_all(format!("{message}\n").as_bytes()).await?;
    }
    stdin.flush().await?;
    let mut lines = BufReader::new(stdout).lines();
    let answer = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Ok(v) = serde_json::from_str::<Value>(&line)
                && v.get("id") == Some(&json!(2))
            {
                return Ok(v);
            }
        }
        anyhow::bail!("codex app-server ended without listing its hooks")
    })
    .await
    .context("codex app-server did not list its hooks within 30 s")??;
    drop(stdin);
    let _ = child.kill().await;
    if let Some(error) = answer.get("error") {
        bail!("codex app-server refused hooks/list: {error}");
    }
    let source = place.settings.display().to_string();
    Ok(answer["result"]["data"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|d| d["hooks"].as_array().cloned().unwrap_or_default())
        .filter(|h| {
            h["sourcePath"].as_str() == Some(source.as_str()) && install::is_ours(place.agent, h)
        })
        .map(|h| CodexHook {
            key: h["key"].as_str().unwrap_or_default().to_owned(),
            hash: h["currentHash"].as_str().unwrap_or_default().to_owned(),
            trust: h["trustStatus"].as_str().unwrap_or("unknown").to_owned(),
        })
        .collect())
}

/// Records Codex's trust in the installed hooks (the `trusted_hash` Codex itself reports for
/// them), then checks with Codex that it took.
async fn trust_codex(args: &HookInstall, place: &Place) -> anyhow::Result<()> {
    let hooks = match codex_hooks(args, place).await {
        Ok(h) => h,
        Err(e) => {
            say!(
                "NOT TRUSTED YET: {e:#}. Codex runs a user hook only once it is trusted, and skips an untrusted one silently. Trust it in codex's /hooks review, or run `agentgate hook install codex --codex /path/to/codex`; `agentgate hook status codex` checks."
            );
            return Ok(());
        }
    };
    let config = place.settings.with_file_name("config.toml");
    let mut text = match std::fs::read_to_string(&config) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", config.display())),
    };
    for hook in hooks.iter().filter(|h| h.trust != "trusted") {
        text = install::codex_trust(&text, &hook.key, &hook.hash);
    }
    write_atomically(&config, &text, false)?;
    let after = codex_hooks(args, place).await?;
    let untrusted: Vec<&str> = after
        .iter()
        .filter(|h| h.trust != "trusted")
        .map(|h| h.key.as_str())
        .collect();
    if after.is_empty() || !untrusted.is_empty() {
        bail!(
            "Codex still does not trust {}: trust it in codex's /hooks review",
            untrusted.join(", ")
        );
    }
    say!(
        "trusted by Codex ({} entries in {})",
        after.len(),
        config.display()
    );
    Ok(())
}
