//! The network of RUN steps, as a seam: the runtime makes and pins the container's network
//! namespace, whoever owns the instance's networks (the orchestrator, through netd) wires it.
//!
//! runtime and netd never import each other (DESIGN.md), so the builder does not create
//! bridges itself: the caller hands it a [`RunNetwork`]. berth's implementation attaches each
//! RUN container to the instance's build network (a bridge with NAT egress owned by the
//! daemon's netd) before the container starts and detaches it when the step ends, pass or
//! fail. Without one, RUN steps on the default network get loopback only.

use std::path::Path;

/// Why the build network could not be set up or taken down for a RUN container.
#[derive(Debug, thiserror::Error)]
#[error("build network: {op} container {container}")]
pub struct RunNetworkError {
    /// What was being done (`attaching`, `detaching`).
    pub op: &'static str,
    /// The RUN container's id.
    pub container: String,
    /// The owner's error (netd's, or the daemon's answer).
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Attaches RUN containers of the default network mode to a network with egress.
pub trait RunNetwork: Send + Sync {
    /// The `/etc/resolv.conf` RUN containers get: resolvers reachable from their namespace
    /// (never a 127.0.0.x stub, which only the host's namespace answers).
    fn resolv_conf(&self) -> String;

    /// Gives the pinned namespace `netns` of container `container` an interface on the build
    /// network, a default route and NAT egress; called before the container starts.
    fn attach(&self, container: &str, netns: &Path) -> Result<(), RunNetworkError>;

    /// Removes the container's interface; called when the step ends, even on failure.
    fn detach(&self, container: &str) -> Result<(), RunNetworkError>;

    /// Called once when a build that attached anything ends: the owner may remove the build
    /// network if no other build uses it.
    fn release(&self) {}
}
