//! The build network of `berth image build`, whose builds run in the CLI process: the daemon
//! holds the instance's netd, so each RUN step's network is asked of it through the network
//! routes (creating the `berth-build` network on first use, attaching and detaching the step's
//! namespace, removing the network when the build ends). The daemon's own builds use the
//! engine's `EngineBuildNetwork` on the same netd; both produce the same network.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_runtime::build::network::{RunNetwork, RunNetworkError};

use crate::api::ErrorKind;
use crate::api::client::{Client, ClientError};
use crate::api::network::{
    BUILD_NETWORK, BUILD_NETWORK_LABEL, NetworkConnectRequest, NetworkCreateRequest,
    NetworkDisconnectRequest,
};
use crate::engine::build_net::{host_run_resolv_conf, net_err};

/// The build network through the daemon (builds run by the CLI, `berth image build`).
pub struct DaemonBuildNetwork {
    root: PathBuf,
    run: PathBuf,
    rt: tokio::runtime::Runtime,
    resolv: String,
}

impl DaemonBuildNetwork {
    /// For the instance of `root`/`run`; the daemon is started on the first RUN if needed.
    pub fn new(root: &Path, run: &Path) -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(DaemonBuildNetwork {
            root: root.to_path_buf(),
            run: run.to_path_buf(),
            rt,
            resolv: host_run_resolv_conf(),
        })
    }

    /// Runs one call on the daemon, starting it if none answers.
    fn call<T>(
        &self,
        f: impl AsyncFnOnce(&Client) -> Result<T, ClientError>,
    ) -> Result<T, ClientError> {
        self.rt.block_on(async {
            let client = Client::connect_or_start(&self.root, &self.run).await?;
            f(&client).await
        })
    }
}

impl RunNetwork for DaemonBuildNetwork {
    fn resolv_conf(&self) -> String {
        self.resolv.clone()
    }

    fn attach(&self, container: &str, netns: &Path) -> Result<(), RunNetworkError> {
        let create = NetworkCreateRequest {
            name: BUILD_NETWORK.into(),
            driver: "bridge".into(),
            internal: false,
            enable_ipv6: false,
            ipam: Default::default(),
            options: BTreeMap::new(),
            labels: [(BUILD_NETWORK_LABEL.to_string(), "true".to_string())].into(),
        };
        let connect = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Default::default(),
            netns: Some(netns.to_path_buf()),
            pid: None,
            ports: Vec::new(),
        };
        // A build ending elsewhere may remove the network between create and connect.
        for attempt in 0.. {
            match self.call(async |c| c.network_create(&create).await) {
                Ok(_) => {}
                Err(e) if e.kind() == Some(ErrorKind::Conflict) => {}
                Err(e) => return Err(net_err("creating the build network for", container, e)),
            }
            match self.call(async |c| c.network_connect(BUILD_NETWORK, &connect).await) {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == Some(ErrorKind::NotFound) && attempt < 3 => {}
                Err(e) => return Err(net_err("attaching", container, e)),
            }
        }
        Ok(())
    }

    fn detach(&self, container: &str) -> Result<(), RunNetworkError> {
        let req = NetworkDisconnectRequest {
            container: container.to_string(),
            force: false,
        };
        match self.call(async |c| c.network_disconnect(BUILD_NETWORK, &req).await) {
            Ok(()) => Ok(()),
            // Not attached (or the network already gone): nothing to detach.
            Err(e) if e.kind() == Some(ErrorKind::NotFound) => Ok(()),
            Err(e) => Err(net_err("detaching", container, e)),
        }
    }

    fn release(&self) {
        match self.call(async |c| c.network_remove(BUILD_NETWORK).await) {
            Ok(_) => {}
            // Another build still holds an endpoint on it, or it is gone already.
            Err(e) if matches!(e.kind(), Some(ErrorKind::Forbidden | ErrorKind::NotFound)) => {}
            Err(err) => tracing::warn!(%err, "removing the build network"),
        }
    }
}
