//! berth: a Compose-style multi-container orchestrator for Linux.
//!
//! This crate holds what knows about stacks: the Compose model and its loader, the dependency
//! graph, the engine and the CLI. Images and containers live in `berth-runtime`, networks in
//! `berth-netd`; see ARCHITECTURE.md for how they fit.

pub mod api;
pub mod cli;
#[warn(missing_docs)]
pub mod compose;
#[warn(missing_docs)]
pub mod convert;
pub mod daemon;
pub mod engine;
#[warn(missing_docs)]
pub mod graph;
