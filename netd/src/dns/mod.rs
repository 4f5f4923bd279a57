//! The embedded DNS: per-network servers on the gateway addresses that answer container names
//! to the network's own clients and forward everything else to the host's current upstreams.
//!
//! Pieces: [`records`] (the name table, scoped by network), [`answer`] (what to do with one
//! query), [`server`] (the UDP/TCP loops), [`upstream`] (forwarding with failover and a
//! swappable upstream list), [`resolvconf`] (host resolver files, container resolv.conf),
//! [`watch`] (following resolv.conf) and [`wire`] (byte-level helpers of the forwarding path).
//! [`DnsService`] ties them together for the engine. The daemon runs the servers in a
//! process of their own, the keeper ([`keeper`], fed through [`handoff`] files and watched by
//! [`supervise`]), so names keep answering while the daemon is down; see
//! [`DnsService::with_keeper`].
//!
//! # Wiring (what the engine does)
//!
//! ```no_run
//! # async fn wire() -> Result<(), Box<dyn std::error::Error>> {
//! use std::{sync::Arc, time::Duration};
//! use berth_netd::dns::*;
//! let upstreams = Arc::new(Upstreams::new(vec![], vec![], ForwardConfig::default()));
//! let watcher = ResolvWatcher::spawn(HostResolvPaths::default(), upstreams.clone(), Duration::from_millis(50))?;
//! let dns = DnsService::new(Arc::new(DnsRecords::new()), upstreams, AnswerConfig::default(), ServerLimits::default());
//! // per network, once its gateway is known (the bridge need not have the address yet):
//! let scope = NetworkScope { id: "proj_default".into(), subnets: vec!["10.201.3.0/24".parse()?], internal: false };
//! dns.start_network(scope, "10.201.3.1:53".parse()?)?;
//! // per container endpoint, before the attach call returns:
//! dns.records().add_endpoint("proj_default", Endpoint {
//!     id: "c0ffee".into(), container: "c0ffee".into(),
//!     addresses: vec!["10.201.3.2".parse()?],
//!     names: vec!["proj-db-1".into(), "db".into(), "database".into()],
//!     ..Default::default()
//! })?;
//! // the container's /etc/resolv.conf:
//! let host = watcher.host().map(|h| h.conf).unwrap_or_default();
//! let text = container_resolv_conf(&["10.201.3.1".parse()?], &host, &ContainerResolvOverrides::default());
//! // on an rtnetlink link/address/route change, and every 30 s as the backstop:
//! watcher.refresh()?;
//! dns.upstreams().reset_health();
//! # let _ = text; Ok(()) }
//! ```
//!
//! # Answering rules
//!
//! - A client is identified by its source address. The server of network N answers only
//!   sources inside N's subnets (others get REFUSED; their TCP connections are closed). The
//!   client sees N's names and, if its address is a container's, the names of every other
//!   network that container is on (as compose does), plus that container's `links` aliases.
//! - Names match case-insensitively, with or without the trailing dot, and also with one of
//!   the host's search domains (or [`AnswerConfig::domains`]) appended: a container's stub
//!   resolver tries `db.corp.example` first when `corp.example` is searched, and that must not
//!   go upstream.
//! - A known name answers all its addresses of the asked family, rotated by one per answer
//!   (round robin over replicas), authoritative, TTL [`AnswerConfig::ttl`] (5 s: containers
//!   come and go). A known name without addresses of the asked type (AAAA of a v4-only
//!   container, MX, TXT, HTTPS) is an empty NOERROR, never NXDOMAIN and never a timeout.
//! - PTR of a container address answers its names, container name first. PTR of an unused
//!   address inside the client's subnets is NXDOMAIN (not forwarded: the upstream cannot know).
//! - Unknown names, single-label ones included, are forwarded, as compose does: home routers
//!   and corporate resolvers answer bare host names, and the host itself would ask them. A
//!   name of the project that is known is never forwarded.
//! - Clients whose container is only on `internal: true` networks get names answered but
//!   nothing forwarded (REFUSED at once rather than a timeout): an internal network has no
//!   egress, and DNS must not become one.

pub mod answer;
pub mod handoff;
pub mod journal;
pub mod keeper;
mod net_table;
pub mod records;
pub mod resolvconf;
pub mod server;
pub mod supervise;
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
pub use supervise::{KeeperConfig, LinkError};
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
/// network, run in this process ([`DnsService::new`]) or by the DNS keeper
/// ([`DnsService::with_keeper`]).
#[derive(Debug)]
pub struct DnsService {
    shared: Arc<server::Shared>,
    servers: Mutex<HashMap<String, Vec<NetworkServer>>>,
    /// Sockets handed over by an earlier process, used by the server of their address.
    handed: Mutex<HashMap<SocketAddr, server::BoundPair>>,
    keeper: Option<Arc<supervise::Link>>,
    supervisor: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for DnsService {
    fn drop(&mut self) {
        // The keeper itself runs on: containers keep their names while the daemon is away.
        if let Some(t) = &self.supervisor {
            t.abort();
        }
    }
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
            handed: Mutex::new(HashMap::new()),
            keeper: None,
            supervisor: None,
        }
    }

    /// A service whose servers run in the DNS keeper (`cfg`), a process that outlives this
    /// one: every change of `records` and of the networks is published to it at once, and
    /// the keeper is started, adopted after a restart of this process, and replaced when it
    /// dies. Nothing is published until [`DnsService::restored`]: until then the keeper keeps
    /// serving what an earlier daemon published. Call inside a tokio runtime.
    pub fn with_keeper(
        records: Arc<DnsRecords>,
        upstreams: Arc<Upstreams>,
        answer: AnswerConfig,
        limits: ServerLimits,
        cfg: KeeperConfig,
    ) -> Result<Self, LinkError> {
        let mut dns = Self::new(Arc::clone(&records), upstreams, answer, limits);
        let link = supervise::Link::open(cfg, records)?;
        dns.supervisor = Some(supervise::spawn_supervisor(&link)?);
        dns.keeper = Some(link);
        Ok(dns)
    }

    /// The table is complete (a restarted daemon rebuilt it from netd): publish it to the
    /// keeper, replacing what it served, and keep it running. No-op for in-process servers.
    pub fn restored(&self) {
        if let Some(link) = &self.keeper {
            link.go_live();
        }
    }

    /// The host's network changed: re-read resolv.conf and forget which upstreams failed
    /// (in the keeper too).
    pub fn host_changed(&self) {
        self.shared.upstreams.reset_health();
        if let Some(link) = &self.keeper {
            link.host_changed();
        }
    }

    /// Takes sockets bound by an earlier process (UDP and listening TCP, sorted out by their
    /// type and address): a later [`DnsService::start_network`] on such an address serves on
    /// them, answering what queued up meanwhile. Other descriptors are closed.
    pub fn take_over(&self, fds: Vec<std::os::fd::OwnedFd>) {
        use nix::sys::socket::{SockType, SockaddrStorage, getsockname, getsockopt, sockopt};
        let mut handed = self.handed.lock().unwrap_or_else(PoisonError::into_inner);
        for fd in fds {
            let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
            let Ok(addr) = getsockname::<SockaddrStorage>(raw) else {
                continue;
            };
            let addr = match (addr.as_sockaddr_in(), addr.as_sockaddr_in6()) {
                (Some(v4), _) => SocketAddr::from(std::net::SocketAddrV4::from(*v4)),
                (_, Some(v6)) => SocketAddr::from(std::net::SocketAddrV6::from(*v6)),
                _ => continue,
            };
            match getsockopt(&fd, sockopt::SockType) {
                Ok(SockType::Datagram) => {
                    let tcp = handed.remove(&addr).and_then(|p| p.tcp);
                    handed.insert(addr, server::BoundPair { udp: fd, tcp });
                }
                Ok(SockType::Stream) => {
                    if let Some(p) = handed.get_mut(&addr) {
                        p.tcp = Some(fd);
                    } else {
                        tracing::debug!(%addr, "dns: a handed-over TCP socket without its UDP one");
                    }
                }
                _ => {}
            }
        }
    }

    /// Closes handed-over sockets no server took (their network went meanwhile).
    pub fn release_unused_sockets(&self) {
        self.handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// The servers running in this process: network, address, socket inodes.
    pub fn listeners(&self) -> Vec<handoff::Listening> {
        let servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out: Vec<handoff::Listening> = servers
            .iter()
            .flat_map(|(id, list)| {
                list.iter().map(move |s| handoff::Listening {
                    network: id.clone(),
                    addr: s.local_addr(),
                    inodes: s.inodes(),
                    fds: s.fds(),
                })
            })
            .collect();
        out.sort_by(|a, b| (&a.network, a.addr).cmp(&(&b.network, b.addr)));
        out
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
        if let Some(link) = &self.keeper {
            link.add_listen(&id, listen);
            self.shared.records.add_network(scope);
            let Some(status) = link.sync() else {
                return Ok(listen);
            };
            return match status.failed.iter().find(|f| f.addr == listen) {
                Some(f) => Err(ServerError::Bind {
                    network: id,
                    addr: listen,
                    op: "bind (DNS keeper)",
                    source: std::io::Error::other(f.error.clone()),
                }),
                None => Ok(listen),
            };
        }
        self.shared.records.add_network(scope);
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let running = servers.entry(id.clone()).or_default();
        if let Some(s) = running.iter().find(|s| {
            s.local_addr() == listen || listen.port() == 0 && s.local_addr().ip() == listen.ip()
        }) {
            return Ok(s.local_addr());
        }
        let bound = self
            .handed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&listen);
        let server = server::spawn_on(Arc::clone(&self.shared), &id, listen, bound)?;
        let addr = server.local_addr();
        running.push(server);
        self.publish_listeners(&servers);
        Ok(addr)
    }

    /// Stops the network's servers and forgets its records; returns whether any was running.
    pub fn stop_network(&self, network: &str) -> bool {
        if let Some(link) = &self.keeper {
            let stopped = link.remove_listen(network);
            self.shared.records.remove_network(network);
            return stopped;
        }
        let mut servers = self.servers.lock().unwrap_or_else(PoisonError::into_inner);
        let stopped = servers.remove(network).is_some_and(|s| !s.is_empty());
        self.publish_listeners(&servers);
        drop(servers);
        self.shared.records.remove_network(network);
        stopped
    }

    fn publish_listeners(&self, servers: &HashMap<String, Vec<NetworkServer>>) {
        let addrs = servers
            .values()
            .flatten()
            .map(NetworkServer::local_addr)
            .collect();
        self.shared.upstreams.set_own_listeners(addrs);
    }

    /// Where the network's servers listen.
    pub fn listen_addrs(&self, network: &str) -> Vec<SocketAddr> {
        if let Some(link) = &self.keeper {
            return link.listen(network);
        }
        self.servers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(network)
            .map(|s| s.iter().map(NetworkServer::local_addr).collect())
            .unwrap_or_default()
    }
}
