//! agentgate: the gate between AI agents and a person's machine.
//!
//! One daemon (`agentgate serve`) on loopback with an embedded store. See docs/ARCHITECTURE.md for
//! the map of modules and the invariants they keep.

pub mod agents;
pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod bridge;
pub mod broker;
pub mod cli;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod display;
pub mod gateway;
pub mod http;
pub mod mcp;
pub mod mcp_gateway;
pub mod notify;
pub mod oauth;
pub mod store;

pub use agentgate_policy as policy;
