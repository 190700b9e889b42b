//! `agentgate serve`: resolve the configuration, set up logging, build and run the daemon.

use std::io::IsTerminal;

use anyhow::Context;
use tracing_subscriber::EnvFilter;

use super::{Global, LogFormat, ServeArgs};
use crate::app::{self, App};
use crate::clock::Clock;
use crate::config::{Config, FileConfig, Overrides};

pub(super) async fn run(global: &Global, args: ServeArgs) -> anyhow::Result<()> {
    let (file, source) = FileConfig::load(global.config.as_deref())?;
    let config = Config::resolve(
        file,
        source,
        Overrides {
            listen: args.listen,
            allow_remote: args.allow_remote,
            data_dir: global.data_dir.clone(),
            database_url: args.database_url,
            allowed_hosts: args.allowed_hosts,
        },
    )?;
    init_logging(args.log_format);
    if config.allow_remote && !config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "listening on a non-loopback address: tokens travel in clear text unless TLS is terminated in front of agentgate"
        );
    }
    let app = App::build(&config, Clock::System).await?;
    let addr = app.local_addr();
    if !app.admin_token_file().exists() {
        tracing::warn!(
            file = %app.admin_token_file().display(),
            "the owner token file is missing; the CLI needs --token (create a new admin token with any admin token)"
        );
    }
    if app.admin_token_created() {
        tracing::info!(file = %app.admin_token_file().display(), "created the owner token (scope admin); the CLI reads it from this file");
    }
    tracing::info!(
        url = %format!("http://{addr}"),
        admin_token_file = %app.admin_token_file().display(),
        data_dir = %config.data_dir.display(),
        "agentgate is serving"
    );
    if let Some(addr) = app.openwork_addr() {
        tracing::warn!(
            url = %format!("http://{addr}/permission"),
            "[compat.openwork] listener: any local process can ask for permission there without a token (it can never answer)"
        );
    }
    if let Some(path) = &args.ready_file {
        crate::auth::write_private(path, &addr.to_string())
            .with_context(|| format!("cannot write the ready file {}", path.display()))?;
    }
    app.run_until_stopped(app::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("AGENTGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
