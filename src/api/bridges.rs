//! `GET /api/v1/bridges` and `GET /api/v1/gateways`: the agent servers the daemon follows or
//! stands in front of, and how each stands.

use serde::{Deserialize, Serialize};

use crate::clock::Timestamp;

/// One bridge's state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BridgeInfo {
    /// Its name (`[[bridge]] name`).
    pub name: String,
    /// `opencode`.
    pub kind: String,
    /// The agent server's URL (never with credentials).
    pub url: String,
    /// Following the event stream now.
    pub connected: bool,
    /// When the stream last connected.
    pub connected_at: Option<Timestamp>,
    /// When the last event arrived.
    pub last_event_at: Option<Timestamp>,
    /// Prompts raised by the agent and not yet answered back to it.
    pub pending: usize,
    /// Prompts taken into the broker since the daemon started.
    pub asked: u64,
    /// The last connection or reply error (never a password).
    pub last_error: Option<String>,
    /// When the next connection attempt is due, while disconnected.
    pub retry_at: Option<Timestamp>,
}

/// `GET /api/v1/bridges`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BridgeList {
    /// Every configured bridge, in config order.
    pub bridges: Vec<BridgeInfo>,
}

/// One gateway, for `GET /api/v1/gateways`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayInfo {
    /// Its name.
    pub name: String,
    /// `generic`, `opencode` or `openai`.
    pub preset: String,
    /// agentgate's own listener for it, if any.
    pub listen: Option<String>,
    /// The upstream (never with credentials).
    pub upstream: Option<String>,
    /// Whether a TCP connection to the upstream opened just now (`None`: no upstream set).
    pub reachable: Option<bool>,
    /// Why it did not.
    pub error: Option<String>,
}

/// `GET /api/v1/gateways`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct GatewayList {
    /// Every configured gateway, in config order.
    pub gateways: Vec<GatewayInfo>,
}
