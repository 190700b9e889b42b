//! The command line. `serve` runs the daemon; every other verb is an HTTP client of a running
//! daemon, using the wire types of [`crate::api`]. Errors are printed once, with their causes,
//! and turned into a non-zero exit code.

mod client;
mod commands;
mod hook;
mod hook_install;
mod oauth_admin;
mod pair;
mod requests;
mod serve;
mod terminal;

use terminal::esay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The gate between AI agents and your machine.
#[derive(Debug, Parser)]
#[command(name = "agentgate", version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    global: Global,
    #[command(subcommand)]
    command: Command,
}

/// Options accepted before or after any verb.
#[derive(Debug, Args)]
struct Global {
    /// URL of the daemon [default: from the listen address, http://127.0.0.1:7700]
    #[arg(long, global = true, env = "AGENTGATE_URL", value_name = "URL")]
    url: Option<String>,
    /// Bearer token [default: the data dir's admin.token]
    #[arg(
        long,
        global = true,
        env = "AGENTGATE_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    json: bool,
    /// Config file [default: $XDG_CONFIG_HOME/agentgate/config.toml if it exists]
    #[arg(long, global = true, env = "AGENTGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory [default: $XDG_DATA_HOME/agentgate]
    #[arg(long, global = true, env = "AGENTGATE_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the daemon
    Serve(ServeArgs),
    /// Create, list and revoke API tokens
    #[command(subcommand)]
    Token(TokenCommand),
    /// Show who the token is: id, name, scopes, expiry
    Whoami,
    /// Manage the owner passphrase (web inbox sign-in, OAuth consent)
    #[command(subcommand)]
    Passphrase(PassphraseCommand),
    /// Ask for permission, for scripts and hooks. Exit status: 0 allowed, 1 denied, 2 timed out,
    /// 3 error, 4 still pending (without --wait)
    Request(RequestArgs),
    /// List pending permission requests
    Pending {
        /// Keep watching: print requests as they arrive and are decided
        #[arg(long)]
        watch: bool,
    },
    /// Allow a pending request
    Approve {
        /// Request id (req_…)
        id: String,
        /// Also allow matching requests for the rest of this session
        #[arg(long, conflicts_with = "always")]
        session: bool,
        /// Also save a narrow rule that allows matching requests from now on
        #[arg(long)]
        always: bool,
        /// How long a remembered rule lasts (1h, 7d, never)
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
        /// The pattern to remember instead of the suggested one
        #[arg(long)]
        pattern: Option<String>,
        /// A note
        #[arg(long)]
        message: Option<String>,
    },
    /// Deny a pending request
    Deny {
        /// Request id (req_…)
        id: String,
        /// Feedback handed back to the agent
        #[arg(long)]
        message: Option<String>,
        /// Also save a narrow rule that denies matching requests from now on
        #[arg(long)]
        always: bool,
    },
    /// List, add and remove policy rules
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Show the audit log (hash-chained); `audit verify` checks it
    Audit {
        #[command(subcommand)]
        command: Option<AuditCommand>,
        /// Keep following new entries
        #[arg(long)]
        follow: bool,
        /// Start after this entry
        #[arg(long, default_value_t = 0)]
        after: i64,
    },
    /// Ask the policy what it would decide, and why
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Sign a phone (or another browser) into the web inbox: prints a one-time link and a QR
    /// code; `pair list` and `pair revoke ID` manage pairings
    Pair(PairArgs),
    /// MCP clients signed in through OAuth: `oauth clients`, `oauth clients rm ID`,
    /// `oauth grants` (remembered consent), `oauth grants revoke ID`
    #[command(subcommand)]
    Oauth(OauthCommand),
    /// The agents' own permission prompts: `hook claude-code|codex` answers one hook event
    /// (stdin → stdout); `hook install|uninstall|status claude-code|codex` manage the hook
    #[command(subcommand)]
    Hook(HookCommand),
    /// Agent servers the daemon follows (`[[bridge]]` in config.toml): `bridge list`
    #[command(subcommand)]
    Bridge(BridgeCommand),
    /// Gateways (`[[gateway]]` in config.toml): `gateway routes NAME` prints the route table
    #[command(subcommand)]
    Gateway(GatewayCommand),
}

#[derive(Debug, Subcommand)]
enum GatewayCommand {
    /// Each gateway: preset, listener, upstream and whether it accepts a connection now
    List,
    /// The gateway's route table (from the config file): method, path, scope, origin
    Routes {
        /// The gateway's name
        name: String,
    },
}

#[derive(Debug, Subcommand)]
enum HookCommand {
    /// Claude Code's command hook: answers one PreToolUse or PermissionRequest event
    ClaudeCode(hook::HookRun),
    /// Codex's command hook: answers one PreToolUse or PermissionRequest event
    Codex(hook::HookRun),
    /// Mint the hook's token and merge the hook into the agent's settings (idempotent)
    Install(hook_install::HookInstall),
    /// Remove exactly what `hook install` added, and revoke its token
    Uninstall(hook_install::HookInstall),
    /// Whether the hook is installed, its token accepted and (Codex) the hook trusted
    Status(hook_install::HookInstall),
}

#[derive(Debug, Subcommand)]
enum BridgeCommand {
    /// Each bridge: connected or not, last event, pending prompts, last error
    List,
}

#[derive(Debug, Subcommand)]
enum OauthCommand {
    /// List registered clients, or delete one (`clients rm ID`): its tokens stop working and
    /// it gets `invalid_client` until it registers again
    Clients {
        #[command(subcommand)]
        command: Option<OauthClientsCommand>,
    },
    /// List remembered consent, or revoke one (`grants revoke ID`): the client sees the consent
    /// page again next time
    Grants {
        #[command(subcommand)]
        command: Option<OauthGrantsCommand>,
    },
}

#[derive(Debug, Subcommand)]
enum OauthClientsCommand {
    /// Delete a client (cli_…)
    Rm {
        /// Client id
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum OauthGrantsCommand {
    /// Revoke a remembered consent (grt_…)
    Revoke {
        /// Grant id
        id: String,
    },
}

/// `agentgate pair [--scope approve] [--expires 10m] [--name phone]`, `pair list`, `pair revoke`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PairArgs {
    #[command(subcommand)]
    command: Option<PairCommand>,
    /// Scopes the paired device gets, comma-separated
    #[arg(long = "scope", value_delimiter = ',', default_value = "approve")]
    scopes: Vec<String>,
    /// How long the link works (1m to 24h)
    #[arg(long, default_value = "10m")]
    expires: String,
    /// A name for the device (shown as the approver in the audit log)
    #[arg(long, default_value = "phone")]
    name: String,
    /// Do not print the QR code
    #[arg(long)]
    no_qr: bool,
}

#[derive(Debug, Subcommand)]
enum PairCommand {
    /// List pairings (unused links and paired devices)
    List,
    /// Revoke a pairing: an unused link stops working, a paired device is signed out
    Revoke {
        /// Pairing id (pair_…)
        id: String,
    },
}

/// What an agent asks about (shared by `request` and `policy explain`).
#[derive(Debug, Args, Clone)]
struct RequestArgs {
    /// file, shell, tool, network or directory
    #[arg(long)]
    kind: String,
    /// shell: the command line
    #[arg(long)]
    command: Option<String>,
    /// shell: the working directory
    #[arg(long)]
    cwd: Option<String>,
    /// file: read, create, modify, overwrite, delete, rename or move
    #[arg(long)]
    operation: Option<String>,
    /// file, directory: a path (repeat for several)
    #[arg(long = "path")]
    paths: Vec<String>,
    /// file: destination of a rename or move
    #[arg(long)]
    target_path: Option<String>,
    /// tool: its name
    #[arg(long)]
    name: Option<String>,
    /// tool: its input, as JSON
    #[arg(long)]
    input: Option<String>,
    /// network: the URL asked for (`--url` is the daemon's)
    #[arg(long = "network-url", value_name = "URL")]
    network_url: Option<String>,
    /// network: the HTTP method
    #[arg(long)]
    method: Option<String>,
    /// The asking agent's name
    #[arg(long)]
    agent: Option<String>,
    /// The agent's session id
    #[arg(long)]
    session: Option<String>,
    /// The agent's workspace
    #[arg(long)]
    workspace: Option<String>,
    /// Why the agent wants it
    #[arg(long)]
    reason: Option<String>,
    /// Seconds to wait for a person (0 waits indefinitely)
    #[arg(long)]
    timeout: Option<u64>,
    /// Wait for the decision
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Subcommand)]
enum RulesCommand {
    /// List configured and stored rules
    List,
    /// Add a rule
    Add {
        /// allow, ask or deny
        #[arg(long)]
        action: String,
        /// file, shell, tool, network or directory
        #[arg(long)]
        kind: String,
        /// Glob over the normalised target
        #[arg(long)]
        pattern: String,
        /// Only for this agent (glob)
        #[arg(long)]
        agent: Option<String>,
        /// Only for this workspace (path glob)
        #[arg(long)]
        workspace: Option<String>,
        /// file rules: only these operations (repeatable: read, create, modify, …)
        #[arg(long = "operation", value_name = "OPERATION")]
        operations: Vec<String>,
        /// For ask: seconds to wait
        #[arg(long)]
        timeout: Option<u64>,
        /// For ask: distinct approvals needed
        #[arg(long)]
        approvals: Option<u32>,
        /// Lifetime (1h, 30d, never)
        #[arg(long)]
        expires: Option<String>,
    },
    /// Remove a stored rule
    Rm {
        /// Rule id
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum AuditCommand {
    /// Verify the hash chain; names the first altered, inserted or deleted entry
    Verify,
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Print the decision, every rule that matched, and why the winner won
    Explain(RequestArgs),
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "AGENTGATE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DATABASE [default:
    /// sqlite://<data-dir>/agentgate.db]
    #[arg(
        long = "database",
        env = "AGENTGATE_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    database_url: Option<String>,
    /// Permit a non-loopback listen address (terminate TLS in front of agentgate)
    #[arg(long)]
    allow_remote: bool,
    /// Also accept this Host header (repeatable), e.g. a name a TLS proxy forwards
    #[arg(long = "allowed-host", value_name = "HOST")]
    allowed_hosts: Vec<String>,
    /// Write the bound address to this file once ready to serve
    #[arg(long, value_name = "FILE")]
    ready_file: Option<PathBuf>,
    /// Log format
    #[arg(long, value_enum, default_value_t = LogFormat::Text, env = "AGENTGATE_LOG_FORMAT")]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Create a token; its secret is printed once
    Create {
        /// A unique name: letters, digits, '.', '_', '-'
        #[arg(long)]
        name: String,
        /// Scopes, comma-separated: admin, write, read, approve, execute, request
        #[arg(long = "scope", value_delimiter = ',', required = true)]
        scopes: Vec<String>,
        /// Lifetime: 90d, 12h, 30m, a number of seconds, or never
        #[arg(long, default_value = "90d")]
        expires: String,
        /// The person the token acts for, when not the owner (N-of-M approvals count people)
        #[arg(long)]
        person: Option<String>,
    },
    /// List live tokens (never their secrets)
    List,
    /// Revoke a token by id or name
    Revoke {
        /// Token id (tok_…) or name
        #[arg(value_name = "ID|NAME")]
        which: String,
    },
}

#[derive(Debug, Subcommand)]
enum PassphraseCommand {
    /// Set the owner passphrase (asked twice on the terminal)
    Set {
        /// Read the passphrase from standard input instead of the terminal
        #[arg(long)]
        stdin: bool,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // A command hook runs once per tool call: one thread starts fastest.
    let mut builder = match cli.command {
        Command::Hook(HookCommand::ClaudeCode(_) | HookCommand::Codex(_)) => {
            tokio::runtime::Builder::new_current_thread()
        }
        _ => tokio::runtime::Builder::new_multi_thread(),
    };
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            esay!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.global.json;
    // `request` reserves 1, 2 and 5 for denied, timed out and withdrawn; its errors exit 3.
    let error_code = if matches!(cli.command, Command::Request(_)) {
        3
    } else {
        1
    };
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(&cli.global, args).await.map(|()| 0),
            Command::Pair(args) => pair::run(&cli.global, args).await.map(|()| 0),
            Command::Oauth(command) => oauth_admin::run(&cli.global, command).await.map(|()| 0),
            Command::Hook(HookCommand::ClaudeCode(args)) => {
                Ok(hook::run(&cli.global, crate::agents::hook::Agent::ClaudeCode, &args).await)
            }
            Command::Hook(HookCommand::Codex(args)) => {
                Ok(hook::run(&cli.global, crate::agents::hook::Agent::Codex, &args).await)
            }
            Command::Hook(HookCommand::Install(args)) => {
                hook_install::install(&cli.global, args).await.map(|()| 0)
            }
            Command::Hook(HookCommand::Uninstall(args)) => {
                hook_install::uninstall(&cli.global, args).await.map(|()| 0)
            }
            Command::Hook(HookCommand::Status(args)) => {
                hook_install::status(&cli.global, args).await
            }
            Command::Bridge(BridgeCommand::List) => bridges(&cli.global).await.map(|()| 0),
            Command::Gateway(GatewayCommand::List) => gateways(&cli.global).await.map(|()| 0),
            Command::Gateway(GatewayCommand::Routes { name }) => {
                gateway_routes(&cli.global, &name).map(|()| 0)
            }
            command => commands::run(&cli.global, command).await,
        }
    });
    match outcome {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if json {
                let body = match err.downcast_ref::<client::DaemonError>() {
                    Some(daemon) => serde_json::to_value(&daemon.body).unwrap_or_default(),
                    None => {
                        serde_json::json!({"error": "cli_error", "message": format!("{err:#}")})
                    }
                };
                esay!("{body}");
            } else {
                esay!("error: {err:#}");
            }
            ExitCode::from(error_code)
        }
    }
}

/// `agentgate bridge list`.
async fn bridges(global: &Global) -> anyhow::Result<()> {
    let client = client::Client::from_global(global)?;
    let list: crate::api::BridgeList = client.get("/api/v1/bridges").await?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.bridges.is_empty() {
        println!("no bridges: add [[bridge]] entries to config.toml");
    }
    for b in list.bridges {
        let state = if b.connected {
            "connected"
        } else {
            "disconnected"
        };
        terminal::say!(
            "{}\t{}\t{}\t{state}\tlast event {}\tpending {}\tasked {}{}",
            b.name,
            b.kind,
            b.url,
            b.last_event_at
                .map_or("never".to_owned(), |t| t.to_string()),
            b.pending,
            b.asked,
            b.last_error
                .map(|e| format!("\tlast error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

/// `agentgate gateway routes NAME`: read from the config file, as the daemon builds it.
fn gateway_routes(global: &Global, name: &str) -> anyhow::Result<()> {
    let (file, _) = crate::config::FileConfig::load(global.config.as_deref())?;
    let gateways = file.gateway.unwrap_or_default();
    let Some(config) = gateways.iter().find(|g| g.name == name) else {
        anyhow::bail!(
            "no [[gateway]] is named `{name}` in the config file (gateways: {})",
            gateways
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    };
    let gateway = config.gateway().map_err(|e| anyhow::anyhow!(e))?;
    let rows = gateway.table.rows();
    if global.json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(m, p, s, o)| serde_json::json!({"method": m, "path": p, "scope": s, "from": o}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    terminal::say!(
        "gateway {name} (preset {:?}); the first row that matches wins",
        gateway.preset
    );
    for (method, path, scope, from) in rows {
        terminal::say!("{method:26} {path:40} {scope:8} {from}");
    }
    Ok(())
}

/// `agentgate gateway list`.
async fn gateways(global: &Global) -> anyhow::Result<()> {
    let client = client::Client::from_global(global)?;
    let list: crate::api::GatewayList = client.get("/api/v1/gateways").await?;
    if global.json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if list.gateways.is_empty() {
        println!("no gateways: add [[gateway]] entries to config.toml");
    }
    for g in list.gateways {
        let state = match (g.reachable, &g.error) {
            (None, _) => "no upstream".to_owned(),
            (Some(true), _) => "upstream reachable".to_owned(),
            (Some(false), e) => format!("upstream UNREACHABLE: {}", e.as_deref().unwrap_or("?")),
        };
        terminal::say!(
            "{}\t{}\tlisten {}\t{}\t{state}",
            g.name,
            g.preset,
            g.listen.as_deref().unwrap_or("-"),
            g.upstream.as_deref().unwrap_or("-")
        );
    }
    Ok(())
}
