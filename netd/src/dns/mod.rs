//! The embedded DNS: per-network servers on the gateway addresses that answer container names
//! to the network's own clients and forward everything else to the host's current upstreams.
//!
//! Pieces: [`records`] (the name table, scoped by network), [`answer`] (what to do with one
//! query), [`server`] (the UDP/TCP loops), [`upstream`] (forwarding with failover and a
//! swappable upstream list), [`resolvconf`] (host resolver files, container resolv.conf) and
//! [`watch`] (following resolv.conf). [`DnsService`] ties them together for the engine.

pub mod answer;
pub mod records;
pub mod resolvconf;
pub mod server;
pub mod upstream;
pub mod watch;
pub mod wire;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub use answer::AnswerConfig;
pub use records::{DnsRecords, Endpoint, LinkAlias, NetworkScope, RecordsError, Subnet};
pub use resolvconf::{
    ContainerResolvOverrides, HostResolv, HostResolvPaths, ResolvConf, StubPolicy,
    container_resolv_conf,
};
pub use server::{NetworkServer, ServerError};
pub use upstream::{ForwardConfig, Upstreams};
pub use watch::{ResolvWatcher, WatchError};

/// Limits of the servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Forwarded queries in flight, over all networks.
    pub forwards_in_flight: usize,
    /// Open TCP client connections, over all networks.
    pub tcp_clients: usize,
    /// Idle time before a client's TCP connection is closed.
    pub tcp_idle: Duration,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            forwards_in_flight: 1024,
            tcp_clients: 256,
            tcp_idle: Duration::from_secs(3),
        }
    }
}

/// The engine's handle on the embedded DNS: the records, the upstreams, and one server per
/// network.
#[derive(Debug)]
pub struct DnsService {
    shared: Arc<server::Shared>,
    servers: Mutex<HashMap<String, Vec<NetworkServer>>>,
}

impl DnsService {
    /// A service over `records` and `upstreams` (share `upstreams` with a [`ResolvWatcher`]).
    pub fn new(
        records: Arc<DnsRecords>,
        upstreams: Arc<Upstreams>,
        answer: AnswerConfig,
        limits: ServerLimits,
    ) -> Self {
        let shared = server::Shared {
            records,
            upstreams,
            answer,
            forward_slots: Arc::new(tokio::sync::Semaphore::new(limits.forwards_in_flight)),
            tcp_slots: Arc::new(tokio::sync::Semaphore::new(limits.tcp_clients)),
            tcp_idle: limits.tcp_idle,
        };
        Self {
            shared: Arc::new(shared),
            servers: Mutex::new(HashMap::new()),
        }
    }

    /// The name table (add and remove endpoints here).
    pub fn records(&self) -> &Arc<DnsRecords> {
        &self.shared.records
    }

    /// The upstream list in use.
    pub fn upstreams(&self) -> &Arc<Upstreams> {
        &self.shared.upstreams
    }

    /// Registers `scope` and starts a server for it on `listen` (the gateway address, port 53;
    /// port 0 picks one, for tests). Call once per gateway address (a dual-stack network has
    /// two); an address already served only updates the scope. Returns the bound address.
    pub fn start_network(
        &self,
        scope: NetworkScope,
        listen: SocketAddr,
    ) -> Result<SocketAddr, ServerError> {
        let id = scope.id.clone();
        self.shared.records.add_network(scope);
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let running = servers.entry(id.clone()).or_default();
        if let Some(s) = running.iter().find(|s| {
            s.local_addr() == listen || listen.port() == 0 && s.local_addr().ip() == listen.ip()
        }) {
            return Ok(s.local_addr());
        }
        let server = server::spawn(Arc::clone(&self.shared), &id, listen)?;
        let addr = server.local_addr();
        running.push(server);
        Ok(addr)
    }

    /// Stops the network's servers and forgets its records; returns whether any was running.
    pub fn stop_network(&self, network: &str) -> bool {
        let stopped = self
            .servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(network)
            .is_some_and(|s| !s.is_empty());
        self.shared.records.remove_network(network);
        stopped
    }

    /// Where the network's servers listen.
    pub fn listen_addrs(&self, network: &str) -> Vec<SocketAddr> {
        self.servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(network)
            .map(|s| s.iter().map(NetworkServer::local_addr).collect())
            .unwrap_or_default()
    }
}
