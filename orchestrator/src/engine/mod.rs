//! The engine: converges a project's desired state with what runs.
//!
//! It works as observe -> plan -> execute (DESIGN.md): [`observed`] is a snapshot of the
//! project's containers, networks and volumes; [`reconcile`] is a pure function from desired x
//! observed to a [`plan::Plan`], printable and golden-tested without root; the executor
//! ([`execute`]) runs a plan in parallel along its edges and carries no decisions of its own.

pub mod build_net;
pub mod build_options;
pub mod connect_links;
pub mod container_create;
pub mod container_spec;
pub mod execute;
pub mod health;
pub mod health_probe;
pub mod hooks;
pub mod labels;
pub mod memory;
pub mod networks;
pub mod observed;
pub mod plan;
pub mod preflight;
pub mod project_members;
pub mod reconcile;
pub mod record_cache;
pub mod resolv;
pub mod restart;
pub mod stack;
pub mod status_text;
pub mod translate;
pub mod watch;
