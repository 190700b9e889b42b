//! The MCP gateway: upstream MCP servers (`[[mcp_server]]`) behind `/mcp/{name}`, every tool call
//! decided by the broker on its arguments — at once by the policy, or by a person in the inbox.
//!
//! - [`config`]: the `[[mcp_server]]` entries, checked at start-up.
//! - [`relay`]: one client session ↔ one upstream session (a child process per session).
//! - [`decide`]: a `tools/call` as a broker request; which tools `tools/list` leaves out.

pub mod config;
pub mod decide;
mod handler;
pub mod health;
pub mod relay;
pub mod upstream;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub use config::{McpServer, McpServerConfig};

use crate::broker::Broker;

/// One upstream's streamable-HTTP service (a [`relay::Relay`] per client session).
pub type Service = StreamableHttpService<relay::Relay, LocalSessionManager>;

/// The configured upstreams, by name, and the process groups of their running children.
#[derive(Clone, Default)]
pub struct McpServers {
    by_name: Arc<HashMap<String, Service>>,
    children: Children,
}

/// The process groups of the upstream children alive now (each child leads its own group).
#[derive(Clone, Default)]
pub struct Children(Arc<std::sync::Mutex<std::collections::HashSet<u32>>>);

impl Children {
    /// Records `pid` until the returned guard is dropped (the session ended).
    pub fn track(&self, pid: u32) -> ChildGuard {
        if let Ok(mut set) = self.0.lock() {
            set.insert(pid);
        }
        ChildGuard {
            pid,
            children: self.clone(),
        }
    }

    /// Kills every process group still alive: children never outlive the daemon.
    pub fn kill_all(&self) {
        let pids: Vec<u32> = match self.0.lock() {
            Ok(mut set) => set.drain().collect(),
            Err(_) => return,
        };
        for pid in pids {
            let Ok(raw) = i32::try_from(pid) else {
                continue;
            };
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(raw),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

/// A child's entry in [`Children`], removed when its session ends (rmcp kills it then).
pub struct ChildGuard {
    pid: u32,
    children: Children,
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(mut set) = self.children.0.lock() {
            set.remove(&self.pid);
        }
    }
}

impl McpServers {
    /// Builds each upstream's service.
    pub fn new(servers: &[McpServer], broker: &Arc<Broker>) -> McpServers {
        let children = Children::default();
        let mut by_name = HashMap::new();
        for server in servers {
            let server = Arc::new(server.clone());
            let live = Arc::new(AtomicUsize::new(0));
            let mut sessions = LocalSessionManager::default();
            sessions.session_config.keep_alive = Some(server.idle_timeout);
            let broker = broker.clone();
            let name = server.name.clone();
            let tracked = children.clone();
            let health = health::Health::default();
            let service = StreamableHttpService::new(
                move || {
                    Ok(relay::Relay::new(
                        server.clone(),
                        broker.clone(),
                        live.clone(),
                        tracked.clone(),
                        health.clone(),
                    ))
                },
                Arc::new(sessions),
                StreamableHttpServerConfig::default().disable_allowed_hosts(),
            );
            by_name.insert(name, service);
        }
        McpServers {
            by_name: Arc::new(by_name),
            children,
        }
    }

    /// Stops every upstream child (on shutdown).
    pub fn stop_all(&self) {
        self.children.kill_all();
    }

    /// The service of `name`.
    pub fn get(&self, name: &str) -> Option<&Service> {
        self.by_name.get(name)
    }

    /// Whether `name` is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.by_name.keys().cloned().collect();
        names.sort();
        names
    }
}
