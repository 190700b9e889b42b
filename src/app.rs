//! Start-up and shutdown: builds every part from a [`Config`], binds the listener, creates the
//! owner token on first start, and serves until told to stop.

use std::future::Future;
use std::net::SocketAddr;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use tokio::net::TcpListener;

use std::sync::Arc;

use crate::auth::Authenticator;
use crate::auth::passphrase::Passphrases;
use crate::auth::session::Sessions;
use crate::broker::{self, Broker};
use crate::clock::Clock;
use crate::config::Config;
use crate::http::{self, AppState, HostPolicy, Shared};
use crate::oauth::OAuth;
use crate::store::Store;
use agentgate_policy::Scope;

/// A built daemon, bound and ready to serve.
pub struct App {
    listener: TcpListener,
    site: http::Site,
    local_addr: SocketAddr,
    admin_token_file: PathBuf,
    admin_token_created: bool,
    store: Store,
    broker: std::sync::Arc<Broker>,
    openwork: Option<(TcpListener, http::Site)>,
    /// Each gateway's own listener: its name, listener and site.
    gateways: Vec<(String, TcpListener, http::Site)>,
    /// The upstream MCP servers, whose children are stopped when the daemon stops.
    mcp_servers: crate::mcp_gateway::McpServers,
}

impl App {
    /// Creates the data dir (0700), opens and migrates the store, binds the listen address and,
    /// on first start, creates the owner token.
    pub async fn build(config: &Config, clock: Clock) -> anyhow::Result<App> {
        create_private_dir(&config.data_dir)?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;
        let local_addr = listener.local_addr().context("reading the bound address")?;
        let store = Store::open(&config.database_url)
            .await
            .with_context(|| format!("opening the database {}", config.database_url))?;
        if let Some(path) = &config.audit_key_file {
            let key = audit_key(path)
                .with_context(|| format!("reading the audit key {}", path.display()))?;
            store
                .use_audit_key(key)
                .await
                .context("turning keyed audit mode on")?;
        }
        let auth = Arc::new(Authenticator::new(store.clone(), clock.clone()));
        let (admin_token_file, admin_token_created) = auth
            .bootstrap_owner(&config.data_dir)
            .await
            .context("creating the owner token")?;
        let broker = Broker::new(
            store.clone(),
            clock.clone(),
            broker::Settings {
                default_timeout: config.default_timeout,
                max_pending: config.max_pending_per_requester,
                home: std::env::var_os("HOME").map(PathBuf::from),
            },
            config.rules.clone(),
        )
        .await
        .context("loading the permission broker")?;
        broker.spawn_expirer();
        crate::cluster::spawn(&store, broker.clone(), auth.clone());
        let openwork = match config.openwork_listen {
            None => None,
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} for [compat.openwork]"))?;
                let bound = listener.local_addr().context("reading the bound address")?;
                let principal = auth
                    .service_principal("openwork-compat", [Scope::Request].into_iter().collect())
                    .await
                    .context("creating the openwork-compat service token")?;
                Some((listener, bound, principal))
            }
        };
        let bridges = crate::bridge::Bridges::new(config.bridges.clone());
        let mut bridge_principals = Vec::new();
        for name in bridges.names() {
            let principal = auth
                .service_principal(
                    &format!("bridge-{name}"),
                    [Scope::Request].into_iter().collect(),
                )
                .await
                .with_context(|| format!("creating the service token of bridge `{name}`"))?;
            bridge_principals.push(principal);
        }
        bridges.start(
            broker.clone(),
            store.clone(),
            clock.clone(),
            bridge_principals,
        );
        // Links point at the port actually bound (the configured one may be 0).
        let inbox = if config.public_url == format!("http://{}", config.listen) {
            format!("http://{local_addr}")
        } else {
            config.public_url.clone()
        };
        crate::notify::spawn(
            config.notify.clone(),
            store.subscribe_own(),
            inbox,
            broker.until_stopped(),
        );
        let mut gateway_listeners = Vec::new();
        for gateway in config.gateways.iter() {
            if let Some(proxy) = &gateway.proxy {
                let listener = TcpListener::bind(proxy.listen).await.with_context(|| {
                    format!(
                        "cannot listen on {} for [[gateway]] `{}`",
                        proxy.listen, gateway.name
                    )
                })?;
                gateway_listeners.push((gateway.clone(), proxy.clone(), listener));
            }
        }
        let oauth = OAuth::new(
            store.clone(),
            clock.clone(),
            auth.clone(),
            config.oauth.clone(),
        );
        let state = AppState::new(Shared {
            mcp: crate::mcp::service(broker.clone()),
            mcp_servers: crate::mcp_gateway::McpServers::new(&config.mcp_servers, &broker),
            mcp_sessions: Default::default(),
            oauth,
            auth,
            broker: broker.clone(),
            passphrases: Passphrases::new(store.clone(), clock.clone()),
            sessions: Sessions::new(store.clone(), clock.clone(), config.sessions),
            clock,
            hosts: HostPolicy::new(local_addr.port(), &config.allowed_hosts),
            bridges,
            gateways: config.gateways.clone(),
        });
        let gateways = gateway_listeners
            .into_iter()
            .map(|(gateway, proxy, listener)| {
                let port = listener.local_addr().map_or(0, |a| a.port());
                let hosts = HostPolicy::new(port, &config.allowed_hosts);
                let name = gateway.name.clone();
                (
                    name,
                    listener,
                    http::gateway::site(state.clone(), gateway, proxy, hosts),
                )
            })
            .collect();
        Ok(App {
            mcp_servers: state.mcp_servers.clone(),
            gateways,
            listener,
            site: http::site(state.clone()),
            openwork: openwork.map(|(listener, bound, principal)| {
                let hosts = HostPolicy::new(bound.port(), &config.allowed_hosts);
                (listener, http::openwork_site(state, principal, hosts))
            }),
            broker,
            local_addr,
            admin_token_file,
            admin_token_created,
            store,
        })
    }

    /// The address actually bound (the port is chosen by the OS when asked for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where the owner token is written.
    pub fn admin_token_file(&self) -> &Path {
        &self.admin_token_file
    }

    /// Whether this start created the owner token.
    pub fn admin_token_created(&self) -> bool {
        self.admin_token_created
    }

    /// The store, for tests that inspect what was written.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Each gateway's own listener: its name and bound address.
    pub fn gateway_addrs(&self) -> Vec<(String, SocketAddr)> {
        self.gateways
            .iter()
            .filter_map(|(n, l, _)| Some((n.clone(), l.local_addr().ok()?)))
            .collect()
    }

    /// The address of the `[compat.openwork]` listener, if configured.
    pub fn openwork_addr(&self) -> Option<SocketAddr> {
        self.openwork
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
    }

    /// The broker, for tests that drive expiry with a manual clock.
    pub fn broker(&self) -> std::sync::Arc<Broker> {
        self.broker.clone()
    }

    /// Serves until `shutdown` completes, then finishes in-flight requests and returns.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        // Long-polls and event streams end when shutdown begins, so in-flight requests finish.
        let broker = self.broker.clone();
        let shutdown = async move {
            shutdown.await;
            broker.begin_shutdown();
        };
        for (name, listener, site) in self.gateways {
            let stopped = self.broker.until_stopped();
            tokio::spawn(async move {
                if let Err(e) = http::serve::serve(listener, site, stopped).await {
                    tracing::error!(gateway = name, error = %e, "a gateway's listener failed");
                }
            });
        }
        if let Some((listener, site)) = self.openwork {
            let stopped = self.broker.until_stopped();
            tokio::spawn(async move {
                if let Err(e) = http::serve::serve(listener, site, stopped).await {
                    tracing::error!(error = %e, "the [compat.openwork] listener failed");
                }
            });
        }
        let served = http::serve::serve(self.listener, self.site, shutdown)
            .await
            .context("serving HTTP");
        self.mcp_servers.stop_all();
        served
    }
}

/// Resolves when the process receives SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let term = async {
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down: finishing requests in flight");
}

/// Creates `dir` (and parents) and makes it private to its owner (0700).
fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("cannot restrict the data directory {}", dir.display()))
}

/// Keyed audit mode's key: 32 bytes, hex in a 0600 file, created from the OS CSPRNG if missing.
fn audit_key(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    if !path.exists() {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("the OS random generator: {e}"))?;
        let text: String = key.iter().map(|b| format!("{b:02x}")).collect();
        crate::auth::write_private(path, &text)?;
        return Ok(key);
    }
    let text = std::fs::read_to_string(path)?;
    let text = text.trim();
    let bytes: Option<Vec<u8>> = (0..text.len())
        .step_by(2)
        .map(|i| {
            text.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect();
    bytes
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .ok_or_else(|| anyhow::anyhow!("the file must hold 64 hex digits (32 bytes)"))
}
