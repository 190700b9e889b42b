//! `GET /api/v1/bridges`: the agent servers the daemon follows, and how each connection stands.

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
