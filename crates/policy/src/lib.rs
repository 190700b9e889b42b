//! Pure policy logic for agentgate.
//!
//! This crate owns the decisions that must not depend on IO, a clock or a database: today the scope
//! hierarchy that every route is checked against; later the permission rules and their evaluation.
//! Its `Cargo.toml` admits only `serde` and `thiserror`, so purity is enforced by the build.
#![deny(missing_docs)]

pub mod scope;

pub use scope::{Scope, ScopeSet, UnknownScope};
