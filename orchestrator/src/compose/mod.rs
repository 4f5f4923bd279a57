//! The Compose model and its loader.
//!
//! A pipeline of small passes, each in its own module and tested alone:
//! [`source`] (find files, read with a size limit, parse, alias-bomb defence, `<<` merge keys) ->
//! [`interpolate`] (`${VAR:-default}` …) -> [`canon`] (short syntax to long, paths absolute) ->
//! include / extends ([`loader`]) -> [`merge`] (several files, Compose merge rules, `!reset`,
//! `!override`) -> profiles -> typed [`model`] (converted exactly once) -> [`defaults`] ->
//! [`validate`]. [`span`] maps key paths back to file:line:column for error messages.

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
pub mod source;
pub mod span;
pub mod units;
pub mod validate;

pub use error::{Issue, LoadError, Place};
pub use hash::service_hash;
pub use loader::{LoadOptions, load};
pub use model::*;
pub use units::{Bytes, Duration};
