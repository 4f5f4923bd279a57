//! The Compose model and its loader.
//!
//! A pipeline of small passes, each in its own module and tested alone:
//! [`source`] (find files, read with a size limit, parse, alias-bomb defence, `<<` merge keys) ->
//! [`interpolate`] (`${VAR:-default}` …) -> [`canon`] (short syntax to long, paths absolute) ->
//! include / extends ([`loader`]) -> [`merge`] (several files, Compose merge rules, `!reset`,
//! `!override`) -> profiles -> typed [`model`] (converted exactly once) -> [`defaults`] ->
//! [`validate`]. [`span`] maps key paths back to file:line:column for error messages.
//!
//! For the engine: [`load`] gives a [`Project`] whose services are in long form (ports, mounts,
//! depends_on, healthcheck durations, sizes in bytes, absolute paths, resolved environment,
//! real network/volume names); [`crate::graph::ServiceGraph::from_project`] gives start/stop
//! levels and selections; [`service_hash`] decides recreation; [`Project::unsupported`] lists
//! what the file asks for that berth does not do, by key path.
//!
//! ```no_run
//! use berth::compose::{load, service_hash, LoadOptions};
//! use berth::graph::ServiceGraph;
//!
//! let project = load(&LoadOptions { files: vec!["compose.yaml".into()], ..Default::default() })?;
//! let graph = ServiceGraph::from_project(&project)?;
//! for level in graph.start_levels(None) {
//!     for name in level {
//!         let svc = &project.services[&name];
//!         println!("{name} {} x{}", service_hash(svc), svc.replicas());
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod canon;
pub mod defaults;
pub mod dotenv;
pub mod error;
pub mod fields;
pub mod hash;
pub mod interpolate;
pub mod loader;
pub mod merge;
pub mod model;
pub mod render;
pub mod source;
pub mod span;
pub mod units;
pub mod validate;

pub use error::{Issue, LoadError, Place};
pub use hash::service_hash;
pub use loader::{LoadOptions, load};
pub use model::*;
pub use units::{Bytes, Duration};
