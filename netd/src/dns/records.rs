//! The name table of the embedded DNS, scoped by network.
//!
//! Every network holds its endpoints (one per container attached to it) with their addresses and
//! names. Readers take an `Arc` snapshot under a brief read lock, so a query never sees half an
//! update and an `add_endpoint` is visible to the very next query; writers change the table in
//! place under the write lock, touching only the names and addresses of the endpoint they add
//! or remove (a snapshot still held by a query is copied first). Every change is also logged,
//! when asked, for a publisher that sends changes rather than the table.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError, RwLock};

use super::net_table::NetState;

/// Errors of the records table: what the engine handed in does not fit.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    /// Endpoints can only join a network the DNS knows about, so scoping stays well defined.
    #[error("dns: network {network:?} is not registered (add_network first)")]
    UnknownNetwork {
        /// The network id asked for.
        network: String,
    },
    /// A name that cannot be a DNS name would never match a query; reject it early.
    #[error("dns: invalid name {name:?} for endpoint {endpoint:?}: {reason}")]
    InvalidName {
        /// The offending name.
        name: String,
        /// The endpoint that carried it.
        endpoint: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Subnets come from configuration; a typo must name itself.
    #[error("dns: invalid subnet {value:?}: {reason}")]
    InvalidSubnet {
        /// The text that failed to parse.
        value: String,
        /// What is wrong with it.
        reason: &'static str,
    },
}

/// An address prefix: the DNS scopes clients by the subnets of their network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Subnet {
    addr: IpAddr,
    prefix_len: u8,
}

impl Subnet {
    /// A prefix; `None` if `prefix_len` is longer than the address family allows.
    pub fn new(addr: IpAddr, prefix_len: u8) -> Option<Self> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix_len <= max).then_some(Self { addr, prefix_len })
    }

    /// The network address as given.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// Whether `ip` falls inside the prefix (same family only).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix_len))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix_len)
    }
}

impl From<Subnet> for String {
    fn from(s: Subnet) -> String {
        s.to_string()
    }
}

impl TryFrom<String> for Subnet {
    type Error = RecordsError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl FromStr for Subnet {
    type Err = RecordsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| RecordsError::InvalidSubnet {
            value: s.to_string(),
            reason,
        };
        let (addr, len) = s
            .split_once('/')
            .ok_or_else(|| err("expected ADDRESS/PREFIX"))?;
        let addr: IpAddr = addr.parse().map_err(|_| err("bad address"))?;
        let len: u8 = len.parse().map_err(|_| err("bad prefix length"))?;
        Subnet::new(addr, len).ok_or_else(|| err("prefix length too long for the address family"))
    }
}

/// What the DNS needs to know about one network: which clients belong to it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NetworkScope {
    /// The network id the engine uses (any unique string).
    pub id: String,
    /// Source addresses inside these prefixes are this network's clients.
    pub subnets: Vec<Subnet>,
    /// `internal: true`: no egress, so names of the network answer but nothing is forwarded
    /// for clients that are on internal networks only.
    pub internal: bool,
}

/// A per-container name that resolves only for that container (compose `links: [svc:alias]`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LinkAlias {
    /// The name the linking container uses.
    pub alias: String,
    /// The name (service or container) it stands for in the same network.
    pub target: String,
}

/// One container's presence on one network: what the DNS answers for it.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Endpoint {
    /// Unique within the network (e.g. the container id); `remove_endpoint` uses it.
    pub id: String,
    /// Groups the endpoints of one container across networks, so a container on several
    /// networks resolves the names of all of them (as compose does).
    pub container: String,
    /// The container's addresses on this network (v4 and/or v6).
    pub addresses: Vec<IpAddr>,
    /// Names that resolve to `addresses` for every client of the network: container name
    /// first (PTR answers it first), then service name, hostname, network aliases.
    pub names: Vec<String>,
    /// Names that resolve only for this container itself (compose `links` aliases).
    pub links: Vec<LinkAlias>,
    /// Upstream servers for this container's forwarded queries (compose `dns:`); empty means
    /// the host's upstreams.
    pub dns_servers: Vec<std::net::SocketAddr>,
}

/// The result of a forward lookup among the names a client may see.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameAnswer {
    /// The name is ours: these addresses (maybe none of the asked family), already rotated.
    Known(Vec<IpAddr>),
    /// Not a name of the client's networks.
    Unknown,
}

/// The result of a reverse lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PtrAnswer {
    /// A container address: its names, primary first (without trailing dot).
    Names(Vec<String>),
    /// Inside one of the client's subnets but no container has it: NXDOMAIN, never forwarded.
    NoSuchAddress,
    /// Not ours: forward it.
    Unknown,
}

/// Who asks: resolved from the source address once per query.
#[derive(Debug, Clone)]
pub struct Asker {
    /// The networks whose names this client sees, the queried network first.
    networks: Vec<Arc<NetState>>,
    /// The asking endpoint, if the source address is a known container address.
    endpoint: Option<Arc<Endpoint>>,
    /// Whether forwarding upstream is allowed (not only on internal networks).
    pub may_forward: bool,
}

impl Asker {
    /// Per-container upstreams (compose `dns:`), empty for the host's.
    pub fn dns_servers(&self) -> &[std::net::SocketAddr] {
        self.endpoint
            .as_deref()
            .map(|e| e.dns_servers.as_slice())
            .unwrap_or(&[])
    }
}

#[derive(Debug, Default, Clone)]
struct Snapshot {
    networks: HashMap<String, Arc<NetState>>,
    /// container -> networks it has an endpoint on.
    containers: HashMap<String, Vec<String>>,
}

/// The records of every network, shared by all per-network servers and the engine.
#[derive(Debug, Default)]
pub struct DnsRecords {
    current: RwLock<Arc<Snapshot>>,
    /// Serialises writers so two updates never lose each other.
    writer: Mutex<()>,
    rotation: AtomicUsize,
    /// Called after every change (the DNS keeper's publisher), outside the writer lock.
    on_change: OnceLock<ChangeHook>,
    /// The changes not yet taken, in the order made (`None`: not logged).
    log: Mutex<Option<Vec<Change>>>,
}

/// One change of the table, as [`DnsRecords::take_changes`] hands it out. Each sets a state
/// (applying one twice gives the same table), so a publisher may send one again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A network registered or its scope changed (its endpoints kept).
    Network(NetworkScope),
    /// A network removed with its endpoints.
    NetworkGone(String),
    /// An endpoint added or replaced (same id).
    Endpoint {
        /// Its network.
        network: String,
        /// The record.
        endpoint: Arc<Endpoint>,
    },
    /// An endpoint removed.
    EndpointGone {
        /// Its network.
        network: String,
        /// Its id.
        id: String,
    },
    /// The whole table was replaced: only the table itself says what it holds now.
    Whole,
}

/// A function run after each change of the table.
struct ChangeHook(Box<dyn Fn() + Send + Sync>);

impl fmt::Debug for ChangeHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangeHook")
    }
}

/// One network with its endpoints: the unit [`DnsRecords::export`] and
/// [`DnsRecords::replace_all`] exchange.
pub type NetworkRecords = (NetworkScope, Vec<Endpoint>);

/// Lower-case, without trailing dot: the key form of every name.
pub fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn validate_name(name: &str, endpoint: &str) -> Result<(), RecordsError> {
    let err = |reason| RecordsError::InvalidName {
        name: name.to_string(),
        endpoint: endpoint.to_string(),
        reason,
    };
    let n = name.trim_end_matches('.');
    if n.is_empty() {
        return Err(err("empty"));
    }
    if n.len() > 253 {
        return Err(err("longer than 253 bytes"));
    }
    for label in n.split('.') {
        if label.is_empty() {
            return Err(err("empty label"));
        }
        if label.len() > 63 {
            return Err(err("label longer than 63 bytes"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(err("only letters, digits, '-' and '_' are allowed"));
        }
    }
    Ok(())
}

impl DnsRecords {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Runs `f` on the table in place under the write lock (a query sees the table before or
    /// after, never a mix; `f` must fail before it changes anything), logs its changes and
    /// then calls the change hook.
    fn update<R>(
        &self,
        f: impl FnOnce(&mut Snapshot, &mut Vec<Change>) -> Result<R, RecordsError>,
    ) -> Result<R, RecordsError> {
        let out = {
            let _w = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let mut changes = Vec::new();
            let out = {
                let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
                f(Arc::make_mut(&mut current), &mut changes)?
            };
            if let Some(log) = self
                .log
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .as_mut()
            {
                log.extend(changes);
            }
            out
        };
        self.changed();
        Ok(out)
    }

    /// Starts logging changes for [`DnsRecords::take_changes`] (the publisher calls it once).
    pub fn log_changes(&self) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.is_none() {
            *log = Some(Vec::new());
        }
    }

    /// The changes made since the last call, oldest first (empty when not logging).
    pub fn take_changes(&self) -> Vec<Change> {
        self.log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    /// How many networks are registered.
    pub fn network_count(&self) -> usize {
        self.snapshot().networks.len()
    }

    fn changed(&self) {
        if let Some(hook) = self.on_change.get() {
            (hook.0)();
        }
    }

    /// Runs `hook` after every later change, once the new table is in place (the daemon
    /// publishes the table to its DNS keeper this way). Set once; `false` if one was set.
    pub fn set_on_change(&self, hook: impl Fn() + Send + Sync + 'static) -> bool {
        self.on_change.set(ChangeHook(Box::new(hook))).is_ok()
    }

    /// Every registered network with its endpoints, in id order: what a DNS keeper needs to
    /// answer as this table does.
    pub fn export(&self) -> Vec<NetworkRecords> {
        let snap = self.snapshot();
        let mut out: Vec<NetworkRecords> = snap
            .networks
            .values()
            .filter_map(|n| {
                let scope = n.scope.clone()?;
                Some((scope, n.endpoints.values().map(|e| (**e).clone()).collect()))
            })
            .collect();
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        out
    }

    /// Replaces the whole table at once (a query sees the old table or the new one, never a
    /// mix). Endpoints with an invalid name are left out and returned as errors.
    pub fn replace_all(&self, networks: Vec<NetworkRecords>) -> Vec<RecordsError> {
        let mut errors = Vec::new();
        let mut next = Snapshot::default();
        for (scope, endpoints) in networks {
            let id = scope.id.clone();
            let mut kept = Vec::new();
            for ep in endpoints {
                let bad = ep
                    .names
                    .iter()
                    .chain(ep.links.iter().map(|l| &l.alias))
                    .find_map(|n| validate_name(n, &ep.id).err());
                if let Some(err) = bad {
                    errors.push(err);
                    continue;
                }
                let list = next.containers.entry(ep.container.clone()).or_default();
                if !list.contains(&id) {
                    list.push(id.clone());
                }
                kept.push(Arc::new(ep));
            }
            next.networks
                .insert(id, Arc::new(NetState::new(scope, kept)));
        }
        let _ = self.update(|s, changes| {
            *s = next;
            changes.push(Change::Whole);
            Ok(())
        });
        errors
    }

    /// Registers (or updates the scope of) a network; its endpoints are kept.
    pub fn add_network(&self, scope: NetworkScope) {
        let id = scope.id.clone();
        let _ = self.update(|s, changes| {
            changes.push(Change::Network(scope.clone()));
            match s.networks.get_mut(&id) {
                Some(net) => Arc::make_mut(net).scope = Some(scope),
                None => {
                    s.networks
                        .insert(id.clone(), Arc::new(NetState::new(scope, [])));
                }
            }
            Ok(())
        });
        tracing::debug!(network = %id, "dns network registered");
    }

    /// Forgets a network and all its endpoints.
    pub fn remove_network(&self, network: &str) {
        let _ = self.update(|s, changes| {
            if let Some(net) = s.networks.remove(network) {
                for ep in net.endpoints.values() {
                    detach_container(&mut s.containers, &ep.container, network);
                }
                changes.push(Change::NetworkGone(network.to_string()));
            }
            Ok(())
        });
        tracing::debug!(network, "dns network removed");
    }

    /// Adds or replaces (same `id`) an endpoint; the next query sees it.
    pub fn add_endpoint(&self, network: &str, endpoint: Endpoint) -> Result<(), RecordsError> {
        for n in endpoint
            .names
            .iter()
            .chain(endpoint.links.iter().map(|l| &l.alias))
        {
            validate_name(n, &endpoint.id)?;
        }
        let ep_id = endpoint.id.clone();
        self.update(|s, changes| {
            let net = s
                .networks
                .get_mut(network)
                .ok_or_else(|| RecordsError::UnknownNetwork {
                    network: network.to_string(),
                })?;
            let net = Arc::make_mut(net);
            // An address has one owner: the network just handed it to this endpoint, so any
            // other record holding it belongs to a container that is gone (its removal not
            // seen yet). Left in place, it would answer the dead container's names with the
            // new one's address and could be taken for the asker.
            for stale in net.holders_of(&endpoint.addresses, &endpoint.id) {
                tracing::debug!(network, endpoint = %stale, "dns endpoint dropped: its address was given to another");
                if let Some(old) = net.remove(&stale) {
                    detach_container(&mut s.containers, &old.container, network);
                    changes.push(Change::EndpointGone {
                        network: network.to_string(),
                        id: stale,
                    });
                }
            }
            let endpoint = Arc::new(endpoint);
            if let Some(old) = net.insert(Arc::clone(&endpoint)) {
                detach_container(&mut s.containers, &old.container, network);
            }
            let list = s.containers.entry(endpoint.container.clone()).or_default();
            if !list.iter().any(|n| n == network) {
                list.push(network.to_string());
            }
            changes.push(Change::Endpoint {
                network: network.to_string(),
                endpoint,
            });
            Ok(())
        })?;
        tracing::debug!(network, endpoint = %ep_id, "dns endpoint added");
        Ok(())
    }

    /// Removes an endpoint; returns whether it existed. Its names stop resolving at once.
    pub fn remove_endpoint(&self, network: &str, endpoint_id: &str) -> bool {
        // A look first: removing what is not there must not copy a snapshot a query holds.
        let present = self
            .snapshot()
            .networks
            .get(network)
            .is_some_and(|n| n.endpoints.contains_key(endpoint_id));
        let found = present
            && self
                .update(|s, changes| {
                    let Some(net) = s.networks.get_mut(network) else {
                        return Ok(false);
                    };
                    let Some(old) = Arc::make_mut(net).remove(endpoint_id) else {
                        return Ok(false);
                    };
                    detach_container(&mut s.containers, &old.container, network);
                    changes.push(Change::EndpointGone {
                        network: network.to_string(),
                        id: endpoint_id.to_string(),
                    });
                    Ok(true)
                })
                .unwrap_or(false);
        tracing::debug!(
            network,
            endpoint = endpoint_id,
            found,
            "dns endpoint removed"
        );
        found
    }

    /// The network's scope, if registered.
    pub fn network(&self, network: &str) -> Option<NetworkScope> {
        self.snapshot()
            .networks
            .get(network)
            .and_then(|n| n.scope.clone())
    }

    /// Classifies a client of `network`'s server by its source address. `None`: the address is
    /// not inside the network's subnets, so the server must not answer it.
    pub fn asker(&self, network: &str, src: IpAddr) -> Option<Asker> {
        let snap = self.snapshot();
        let net = snap.networks.get(network)?;
        if !net.covers(src) {
            return None;
        }
        let endpoint = net.by_addr.get(&src).cloned();
        let mut networks = vec![Arc::clone(net)];
        if let Some(ep) = &endpoint
            && let Some(others) = snap.containers.get(&ep.container)
        {
            for other in others {
                if other != network
                    && let Some(n) = snap.networks.get(other)
                {
                    networks.push(Arc::clone(n));
                }
            }
        }
        let may_forward = networks.iter().any(|n| !n.internal());
        Some(Asker {
            networks,
            endpoint,
            may_forward,
        })
    }

    /// Looks `name` up for `asker`: exact name first, then with each of `suffixes` (search
    /// domains) stripped. Addresses are rotated per call (round robin over replicas).
    pub fn resolve(&self, asker: &Asker, name: &str, suffixes: &[String]) -> NameAnswer {
        let name = normalize(name);
        let mut candidates = vec![name.as_str()];
        for suffix in suffixes {
            let suffix = suffix.trim_end_matches('.');
            if suffix.is_empty() || name.len() <= suffix.len() + 1 {
                continue;
            }
            let (head, tail) = name.split_at(name.len() - suffix.len());
            if tail.eq_ignore_ascii_case(suffix) && head.ends_with('.') {
                candidates.push(&head[..head.len() - 1]);
            }
        }
        for cand in candidates {
            if let Some(addrs) = self.find(asker, cand) {
                let mut addrs = addrs.clone();
                if addrs.len() > 1 {
                    let n = self.rotation.fetch_add(1, Ordering::Relaxed) % addrs.len();
                    addrs.rotate_left(n);
                }
                return NameAnswer::Known(addrs);
            }
        }
        NameAnswer::Unknown
    }

    fn find<'a>(&self, asker: &'a Asker, name: &str) -> Option<&'a Vec<IpAddr>> {
        if let Some(ep) = &asker.endpoint {
            for link in &ep.links {
                if normalize(&link.alias) == name {
                    let target = normalize(&link.target);
                    if let Some(a) = asker.networks.iter().find_map(|n| n.names.get(&target)) {
                        return Some(a);
                    }
                }
            }
        }
        asker.networks.iter().find_map(|n| n.names.get(name))
    }

    /// Reverse lookup of `ip` for `asker`.
    pub fn reverse(&self, asker: &Asker, ip: IpAddr) -> PtrAnswer {
        for net in &asker.networks {
            if let Some(ep) = net.by_addr.get(&ip) {
                let mut names: Vec<String> = Vec::new();
                for n in &ep.names {
                    let n = normalize(n);
                    if !names.contains(&n) {
                        names.push(n);
                    }
                }
                return PtrAnswer::Names(names);
            }
        }
        if asker.networks.iter().any(|n| n.covers(ip)) {
            PtrAnswer::NoSuchAddress
        } else {
            PtrAnswer::Unknown
        }
    }

    /// The endpoints of a network, in id order (for `network inspect` and state checks).
    pub fn endpoints(&self, network: &str) -> Vec<Endpoint> {
        self.snapshot()
            .networks
            .get(network)
            .map(|n| n.endpoints.values().map(|e| (**e).clone()).collect())
            .unwrap_or_default()
    }

    /// Ids of the registered networks (for logs and tests).
    pub fn network_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .snapshot()
            .networks
            .values()
            .map(|n| n.id().to_string())
            .collect();
        ids.sort();
        ids
    }
}

fn detach_container(containers: &mut HashMap<String, Vec<String>>, container: &str, network: &str) {
    if let Some(list) = containers.get_mut(container) {
        list.retain(|n| n != network);
        if list.is_empty() {
            containers.remove(container);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn table() -> DnsRecords {
        let r = DnsRecords::new();
        r.add_network(NetworkScope {
            id: "a".into(),
            subnets: vec!["10.1.0.0/24".parse().unwrap()],
            internal: false,
        });
        r.add_network(NetworkScope {
            id: "b".into(),
            subnets: vec!["10.2.0.0/24".parse().unwrap()],
            internal: true,
        });
        for (i, n) in [2, 3, 4].iter().enumerate() {
            r.add_endpoint(
                "a",
                Endpoint {
                    id: format!("web{i}"),
                    container: format!("web{i}"),
                    addresses: vec![ip(&format!("10.1.0.{n}"))],
                    names: vec![format!("proj-web-{i}"), "web".into()],
                    ..Default::default()
                },
            )
            .unwrap();
        }
        r.add_endpoint(
            "b",
            Endpoint {
                id: "db".into(),
                container: "db".into(),
                addresses: vec![ip("10.2.0.2")],
                names: vec!["proj-db-1".into(), "db".into(), "Database".into()],
                ..Default::default()
            },
        )
        .unwrap();
        r
    }

    #[test]
    fn subnet_contains() {
        let s: Subnet = "10.1.0.0/24".parse().unwrap();
        assert!(s.contains(ip("10.1.0.200")));
        assert!(!s.contains(ip("10.1.1.1")));
        assert!(!s.contains(ip("::1")));
        let all: Subnet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("1.2.3.4")));
        assert!("10.0.0.0/33".parse::<Subnet>().is_err());
        assert!("x/3".parse::<Subnet>().is_err());
    }

    #[test]
    fn scoping_by_source() {
        let r = table();
        assert!(
            r.asker("a", ip("10.2.0.9")).is_none(),
            "b's client must not be a's client"
        );
        let a = r.asker("a", ip("10.1.0.77")).unwrap();
        assert!(matches!(r.resolve(&a, "web", &[]), NameAnswer::Known(v) if v.len() == 3));
        assert_eq!(r.resolve(&a, "db", &[]), NameAnswer::Unknown);
        let b = r.asker("b", ip("10.2.0.7")).unwrap();
        assert!(!b.may_forward, "internal-only client");
        assert_eq!(
            r.resolve(&b, "DATABASE.", &[]),
            NameAnswer::Known(vec![ip("10.2.0.2")])
        );
    }

    #[test]
    fn a_reused_address_belongs_to_the_newest_endpoint() {
        let r = table();
        // web2 (10.1.0.4) died unseen; its address went to a new container with its own
        // upstreams: the old names stop resolving and the asker is the new container.
        let up: std::net::SocketAddr = "127.0.0.54:53".parse().unwrap();
        r.add_endpoint(
            "a",
            Endpoint {
                id: "aaa-new".into(),
                container: "aaa-new".into(),
                addresses: vec![ip("10.1.0.4")],
                names: vec!["fresh".into()],
                dns_servers: vec![up],
                ..Default::default()
            },
        )
        .unwrap();
        let asker = r.asker("a", ip("10.1.0.4")).unwrap();
        assert_eq!(asker.dns_servers(), &[up]);
        assert_eq!(r.resolve(&asker, "proj-web-2", &[]), NameAnswer::Unknown);
        assert!(matches!(r.resolve(&asker, "web", &[]), NameAnswer::Known(v) if v.len() == 2));
        assert_eq!(
            r.resolve(&asker, "fresh", &[]),
            NameAnswer::Known(vec![ip("10.1.0.4")])
        );
    }

    #[test]
    fn round_robin_rotates() {
        let r = table();
        let a = r.asker("a", ip("10.1.0.2")).unwrap();
        let firsts: Vec<IpAddr> = (0..3)
            .map(|_| match r.resolve(&a, "web", &[]) {
                NameAnswer::Known(v) => v[0],
                NameAnswer::Unknown => panic!("unknown"),
            })
            .collect();
        let mut sorted = firsts.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 3, "{firsts:?}");
    }

    #[test]
    fn search_suffix_stripped() {
        let r = table();
        let a = r.asker("a", ip("10.1.0.2")).unwrap();
        let s = vec!["corp.example".to_string()];
        assert!(matches!(
            r.resolve(&a, "web.corp.example.", &s),
            NameAnswer::Known(_)
        ));
        assert_eq!(r.resolve(&a, "web.other.example", &s), NameAnswer::Unknown);
    }

    #[test]
    fn multi_network_container_sees_both() {
        let r = table();
        r.add_endpoint(
            "b",
            Endpoint {
                id: "web0".into(),
                container: "web0".into(),
                addresses: vec![ip("10.2.0.3")],
                names: vec!["proj-web-0".into(), "web".into()],
                links: vec![LinkAlias {
                    alias: "sql".into(),
                    target: "db".into(),
                }],
                ..Default::default()
            },
        )
        .unwrap();
        let a = r.asker("a", ip("10.1.0.2")).unwrap();
        assert!(a.may_forward);
        assert_eq!(
            r.resolve(&a, "db", &[]),
            NameAnswer::Known(vec![ip("10.2.0.2")])
        );
        // the link alias is the linking container's alone
        let b = r.asker("b", ip("10.2.0.3")).unwrap();
        assert_eq!(
            r.resolve(&b, "sql", &[]),
            NameAnswer::Known(vec![ip("10.2.0.2")])
        );
        let other = r.asker("b", ip("10.2.0.2")).unwrap();
        assert_eq!(r.resolve(&other, "sql", &[]), NameAnswer::Unknown);
        // removal detaches
        assert_eq!(r.endpoints("b").len(), 2);
        assert!(r.remove_endpoint("b", "web0"));
        assert_eq!(r.endpoints("b").len(), 1);
        let a = r.asker("a", ip("10.1.0.2")).unwrap();
        assert_eq!(r.resolve(&a, "db", &[]), NameAnswer::Unknown);
    }

    #[test]
    fn reverse_lookups() {
        let r = table();
        let b = r.asker("b", ip("10.2.0.9")).unwrap();
        assert_eq!(
            r.reverse(&b, ip("10.2.0.2")),
            PtrAnswer::Names(vec!["proj-db-1".into(), "db".into(), "database".into()])
        );
        assert_eq!(r.reverse(&b, ip("10.2.0.99")), PtrAnswer::NoSuchAddress);
        assert_eq!(
            r.reverse(&b, ip("10.1.0.2")),
            PtrAnswer::Unknown,
            "another network's address"
        );
    }

    #[test]
    fn export_and_replace_all_round_trip() {
        let r = table();
        let exported = r.export();
        assert_eq!(exported.len(), 2);
        let json = serde_json::to_string(&exported).unwrap();
        let back: Vec<NetworkRecords> = serde_json::from_str(&json).unwrap();
        let copy = DnsRecords::new();
        let mut bad = back.clone();
        bad[0].1.push(Endpoint {
            id: "evil".into(),
            names: vec!["a b".into()],
            ..Default::default()
        });
        let errors = copy.replace_all(bad);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(copy.export(), back);
        let b = copy.asker("b", ip("10.2.0.7")).unwrap();
        assert_eq!(
            copy.resolve(&b, "database", &[]),
            NameAnswer::Known(vec![ip("10.2.0.2")])
        );
        // Networks not in the new table are gone.
        copy.replace_all(vec![back[1].clone()]);
        assert_eq!(copy.network_ids(), vec!["b".to_string()]);
        let hits = Arc::new(AtomicUsize::new(0));
        let h = hits.clone();
        assert!(copy.set_on_change(move || {
            h.fetch_add(1, Ordering::Relaxed);
        }));
        copy.remove_network("b");
        assert_eq!(hits.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn rejects_bad_input() {
        let r = table();
        let bad = Endpoint {
            id: "x".into(),
            names: vec!["a b".into()],
            ..Default::default()
        };
        assert!(matches!(
            r.add_endpoint("a", bad),
            Err(RecordsError::InvalidName { .. })
        ));
        let ok = Endpoint {
            id: "x".into(),
            names: vec!["x".into()],
            ..Default::default()
        };
        assert!(matches!(
            r.add_endpoint("zz", ok),
            Err(RecordsError::UnknownNetwork { .. })
        ));
    }
}
