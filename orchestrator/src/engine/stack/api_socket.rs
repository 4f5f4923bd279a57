//! A service's `use_api_socket: true`: berth's Docker API socket bound at
//! /var/run/docker.sock inside the container, as Compose binds Docker's, so that a docker
//! client in the container drives this instance.

use super::*;
use berth_runtime::container::MountSpec;

/// Where a docker client looks for the daemon by default.
const TARGET: &str = "/var/run/docker.sock";

impl Engine {
    /// Adds the socket's bind to `cfg` when `service` asks for it; the socket must exist (the
    /// daemon serves it), else the create fails naming the key.
    pub(super) fn bind_api_socket(
        &self,
        service: &str,
        svc: &crate::compose::Service,
        cfg: &mut berth_runtime::container::ContainerConfig,
    ) -> Result<(), String> {
        if svc.use_api_socket != Some(true) {
            return Ok(());
        }
        let socket = self.runtime.run_dir().join("docker.sock");
        if !socket.exists() {
            return Err(format!(
                "service {service}: use_api_socket: berth's Docker API socket {} is not there (the daemon serves it)",
                socket.display()
            ));
        }
        cfg.mounts.push(MountSpec::Bind {
            recursive: Default::default(),
            source: socket,
            target: TARGET.into(),
            read_only: false,
            owned_copy: None,
            propagation: None,
        });
        Ok(())
    }
}
