//! The one integration test binary: real servers on ephemeral loopback ports, real SQLite files
//! in temporary directories (or, with `AGENTGATE_TEST_BACKEND=postgres`, a real PostgreSQL
//! database per daemon: see `pg`), and the real `agentgate` binary for the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod api_tokens;
mod bridge;
mod broker;
mod cli;
mod cluster;
mod forward_auth;
mod gateway;
mod harness;
mod hooks;
mod mcp_gateway;
mod notify;
mod oauth;
mod pg;
mod pg_faults;
mod safety;
mod scope_table;
mod store;
mod web;
