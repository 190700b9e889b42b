//! The command line. `serve` runs the daemon; every other verb is an HTTP client of a running
//! daemon, using the wire types of [`crate::api`]. Errors are printed once, with their causes,
//! and turned into a non-zero exit code.

mod client;
mod commands;
mod serve;

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
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on
    #[arg(long, env = "AGENTGATE_LISTEN", value_name = "ADDR")]
    listen: Option<String>,
    /// Database URL [default: sqlite://<data-dir>/agentgate.db]
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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.global.json;
    let outcome = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(&cli.global, args).await,
            command => commands::run(&cli.global, command).await,
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if json {
                let body = match err.downcast_ref::<client::DaemonError>() {
                    Some(daemon) => serde_json::to_value(&daemon.body).unwrap_or_default(),
                    None => {
                        serde_json::json!({"error": "cli_error", "message": format!("{err:#}")})
                    }
                };
                eprintln!("{body}");
            } else {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}
