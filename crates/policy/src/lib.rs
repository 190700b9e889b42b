//! Pure policy logic for agentgate.
//!
//! This crate owns the decisions that must not depend on IO, a clock or a database: the scope
//! hierarchy every route is checked against, and the permission rules with their evaluation.
//! Callers normalise requests (resolve paths, read the clock) and pass plain values in. Its
//! `Cargo.toml` admits no async runtime and no database, so purity is enforced by the build.
#![deny(missing_docs)]

pub mod eval;
pub mod input;
pub mod rule;
pub mod scope;
pub mod shell;

pub use eval::{
    Decision, PartDecision, RuleMatch, RuleSet, Subject, Target, narrow_rules, no_wider,
};
pub use input::Input;
pub use rule::{Effect, FileOp, Kind, Origin, Rule, RuleError, RuleSpec};
pub use scope::{Scope, ScopeSet, UnknownScope};
