//! berth-runtime: images and containers, with no knowledge of stacks.
//!
//! The image side keeps a content-addressed OCI store and unpacks layers once for overlayfs;
//! the container side turns an OCI runtime-spec config into a running process in its own
//! namespaces and cgroups. See ARCHITECTURE.md.
pub mod image;

pub mod build;
pub mod container;
/// Paths resolved inside a root directory: every write into a layer, rootfs, volume or `cp`
/// destination goes through it, so a symlink there never leads outside.
pub mod inroot;
pub mod modes;
/// Collects the exit status of the detached children [`spawn`] starts.
pub mod reaper;
/// Starts a process in its own session without copying the caller's address space.
pub mod spawn;
