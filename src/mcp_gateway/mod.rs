//! The MCP gateway: upstream MCP servers (`[[mcp_server]]`) behind `/mcp/{name}`, every tool call
//! decided by the broker on its arguments — at once by the policy, or by a person in the inbox.
//!
//! - [`config`]: the `[[mcp_server]]` entries, checked at start-up.
//! - [`relay`]: one client session ↔ one upstream session (a child process per session).
//! - [`decide`]: a `tools/call` as a broker request; which tools `tools/list` leaves out.

pub mod config;
pub mod decide;
pub mod relay;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};

pub use config::{McpServer, McpServerConfig};

use crate::broker::Broker;

/// One upstream's streamable-HTTP service (a [`relay::Relay`] per client session).
pub type Service = StreamableHttpService<relay::Relay, LocalSessionManager>;

/// The configured upstreams, by name.
#[derive(Clone, Default)]
pub struct McpServers(Arc<HashMap<String, Service>>);

impl McpServers {
    /// Builds each upstream's service.
    pub fn new(servers: &[McpServer], broker: &Arc<Broker>) -> McpServers {
        let mut by_name = HashMap::new();
        for server in servers {
            let server = Arc::new(server.clone());
            let live = Arc::new(AtomicUsize::new(0));
            let mut sessions = LocalSessionManager::default();
            sessions.session_config.keep_alive = Some(server.idle_timeout);
            let broker = broker.clone();
            let name = server.name.clone();
            let service = StreamableHttpService::new(
                move || {
                    Ok(relay::Relay::new(
                        server.clone(),
                        broker.clone(),
                        live.clone(),
                    ))
                },
                Arc::new(sessions),
                StreamableHttpServerConfig::default().disable_allowed_hosts(),
            );
            by_name.insert(name, service);
        }
        McpServers(Arc::new(by_name))
    }

    /// The service of `name`.
    pub fn get(&self, name: &str) -> Option<&Service> {
        self.0.get(name)
    }

    /// Whether `name` is configured.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.0.keys().cloned().collect();
        names.sort();
        names
    }
}
