//! The `Netd` facade: networks, endpoints and published ports, backed by state on disk.
//!
//! Every mutation takes one async lock, so an event-driven reconcile never sees half an
//! attach. Setup validates first and rolls back what it made on failure; teardown keeps going
//! and reports every error it met.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtnetlink::Handle;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::firewall::{self, FirewallError};
use crate::ipam::{self, InUse, IpamError, Ipv4Net, Pool};
use crate::ipam6::{self, Ipam6Error, Ipv6Net};
use crate::links::{self, LinkError, VethSpec};
use crate::names;
use crate::netns::{Netns, NetnsError, NetnsWorker};
use crate::ports::{PortError, PortMapping};
use crate::report::ReconcileReport;
use crate::state::{Endpoint, NetnsRef, NetworkSpec, State, StateError, StateLock, StateStore};

/// How a netd instance is set up (the daemon config's network part).
#[derive(Debug, Clone)]
pub struct Config {
    /// Instance state root (`--root`); netd keeps `<root>/netd/`.
    pub root: PathBuf,
    /// Where automatic subnets come from.
    pub pool: Pool,
    /// MTU for networks that do not set one; `None` follows the host's egress interface.
    pub default_mtu: Option<u32>,
    /// nftables table name (family `ip`); `None` is `berth`. Separate instances sharing a
    /// network namespace need separate tables.
    pub table: Option<String>,
    /// Runtime directory where netd declares its links unmanaged for udev/NetworkManager/
    /// systemd-networkd when it opens (see [`crate::unmanaged`]); `None` declares nothing.
    /// [`Config::new`] sets `/run` when called in the initial network namespace, else `None`.
    pub managers_dir: Option<PathBuf>,
}

impl Config {
    /// Defaults for a root directory.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            pool: Pool::default(),
            default_mtu: None,
            table: None,
            managers_dir: crate::unmanaged::default_dir(),
        }
    }
}

/// A request to create a network (compose `networks.X`).
#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    /// Unique name.
    pub name: String,
    /// Fixed subnet (`ipam.config[0].subnet`), else from the pool.
    pub subnet: Option<Ipv4Net>,
    /// Fixed gateway, else the first address.
    pub gateway: Option<Ipv4Addr>,
    /// Range for automatic addresses.
    pub ip_range: Option<Ipv4Net>,
    /// `internal: true`: no egress.
    pub internal: bool,
    /// `enable_ipv6: true`: dual stack, an IPv6 /64 from fd00:b5e7::/48 next to the IPv4
    /// subnet (a given IPv6 subnet goes through [`Netd::create_network_with_ipv6`]).
    pub enable_ipv6: bool,
    /// MTU (`driver_opts` com.docker.network.driver.mtu).
    pub mtu: Option<u32>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
}

/// IPv6 settings of a new network that [`NetworkCreate`] has no field for (kept apart so that
/// existing `NetworkCreate { .. }` literals still compile). Used with
/// [`Netd::create_network_with_ipv6`]; a subnet given here turns IPv6 on.
#[derive(Debug, Clone, Default)]
pub struct Ipv6Create {
    /// Fixed IPv6 subnet (compose `ipam.config[].subnet` of the IPv6 family), else the next
    /// free /64 of fd00:b5e7::/48.
    pub subnet: Option<Ipv6Net>,
    /// Fixed IPv6 gateway, else the IPv4 gateway's counterpart (same host index).
    pub gateway: Option<Ipv6Addr>,
    /// Sub-range automatic IPv6 addresses come from (compose `ip_range` of the IPv6 pool).
    pub ip_range: Option<Ipv6Net>,
}

/// One network a container joins.
#[derive(Debug, Clone, Default)]
pub struct EndpointRequest {
    /// Network name or id.
    pub network: String,
    /// Static address (`ipv4_address`), else automatic.
    pub ipv4_address: Option<Ipv4Addr>,
    /// Static IPv6 address (`ipv6_address`) on an IPv6 network, else automatic: the IPv4
    /// address's counterpart (same host index) when that is free and inside the IPv6
    /// `ip_range`, the first free address of the range (or subnet) otherwise.
    pub ipv6_address: Option<Ipv6Addr>,
    /// Static MAC (`mac_address`), else derived from the address.
    pub mac_address: Option<String>,
    /// Higher first: decides eth0, eth1 ... and which network carries the default route.
    pub priority: i32,
    /// DNS aliases.
    pub aliases: Vec<String>,
    /// Ports to publish through this endpoint.
    pub ports: Vec<PortMapping>,
}

/// A host change seen by reconcile: the DNS part refreshes its upstreams on each new value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostChange {
    /// Increments on every reconcile.
    pub generation: u64,
    /// The host's egress addresses (preferred sources of default routes) after it.
    pub egress: Vec<Ipv4Addr>,
}

/// Everything a netd call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NetdError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Netns(#[from] NetnsError),
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error(transparent)]
    Firewall(#[from] FirewallError),
    #[error("network {name}")]
    Ipam {
        name: String,
        #[source]
        source: IpamError,
    },
    #[error("network {name}: IPv6")]
    Ipam6 {
        name: String,
        #[source]
        source: Ipam6Error,
    },
    #[error(
        "network {network}: endpoint IPv6 address {addr} would be the network's IPv6 gateway; choose another ipv4_address or gateway"
    )]
    Ipv6GatewayClash { addr: Ipv6Addr, network: String },
    #[error(transparent)]
    Port(#[from] PortError),
    #[error("network {name:?} already exists")]
    NetworkExists { name: String },
    #[error("network name {name:?} is invalid: use letters, digits, '.', '_' and '-'")]
    BadName { name: String },
    /// No longer returned (IPv6 is supported); kept so matches on it still compile.
    #[error("network {name}: enable_ipv6 is not supported yet (IPv4 only)")]
    Ipv6Unsupported { name: String },
    #[error("network {name} is internal: it cannot publish ports")]
    InternalPorts { name: String },
    #[error(
        "port {port}: publishing on IPv6 loopback [::1] is not supported (the kernel never routes ::1 off the host, so berth's DNAT cannot reach a container from it); publish on [::] or the host's IPv6 address, or on 127.0.0.1"
    )]
    Ipv6LoopbackPort { port: String },
    #[error(
        "port {port}: an IPv6 host address needs an IPv6 network, and network {network} has no IPv6 (enable_ipv6 is off)"
    )]
    Ipv6PortWithoutIpv6 { port: String, network: String },
    #[error("network {network}: {what}")]
    Ipv6Address { network: String, what: String },
    #[error("no such network: {key}")]
    NoNetwork { key: String },
    #[error("network {name} is in use by container(s) {containers}")]
    NetworkInUse { name: String, containers: String },
    #[error("container {container} is already attached to network {network}")]
    AlreadyAttached { container: String, network: String },
    #[error("container {container} is not attached to network {network}")]
    NotAttached { container: String, network: String },
    #[error("MAC address {value:?} is invalid: expected six hex pairs, unicast")]
    BadMac { value: String },
    #[error("gateway {gateway} is not a usable address of subnet {subnet}")]
    BadGateway { gateway: Ipv4Addr, subnet: Ipv4Net },
    #[error("cannot write sysctl {path}")]
    Sysctl {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("conntrack -D for egress address {addr}: {detail}")]
    Conntrack {
        addr: Ipv4Addr,
        detail: String,
        #[source]
        source: Option<std::io::Error>,
    },
    #[error("{first}; cleanup also failed: {cleanup}")]
    WithCleanup {
        #[source]
        first: Box<NetdError>,
        cleanup: Box<NetdError>,
    },
    #[error("teardown met {} error(s): {}", .0.len(), .0.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; "))]
    Teardown(Vec<NetdError>),
}

impl From<crate::sysctl::SysctlError> for NetdError {
    fn from(e: crate::sysctl::SysctlError) -> Self {
        NetdError::Sysctl {
            path: e.path,
            source: e.source,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) state: State,
    pub(crate) last_egress: BTreeSet<Ipv4Addr>,
    pub(crate) generation: u64,
    pub(crate) last_report: Option<ReconcileReport>,
    pub(crate) recent_repairs: std::collections::VecDeque<crate::report::Repair>,
    /// Subnet conflicts of the latest reconcile (warned about only when they change).
    pub(crate) conflicts: Vec<crate::conflicts::SubnetConflict>,
}

/// berth's network daemon core; share it as `Arc<Netd>`.
pub struct Netd {
    pub(crate) cfg: Config,
    pub(crate) worker: NetnsWorker,
    pub(crate) host: Handle,
    pub(crate) store: StateStore,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) changes: watch::Sender<HostChange>,
    pub(crate) hooks: std::sync::Mutex<Vec<ReconcileHook>>,
    pub(crate) table: String,
    _lock: StateLock,
}

/// A function run after every reconcile, outside netd's lock (the DNS part re-reads its
/// upstreams here: `netd.on_reconcile(move |_| { let _ = resolv_watcher.refresh(); })`).
pub type ReconcileHook = Arc<dyn Fn(&ReconcileReport) + Send + Sync>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

impl Netd {
    /// Opens the instance in the calling thread's network namespace (the "host"), loading the
    /// state on disk. It takes the instance lock for its lifetime. Kernel state is not touched
    /// until `reconcile()` or a mutation.
    pub async fn open(cfg: Config) -> Result<Arc<Self>, NetdError> {
        // Each instance names its own table (several may share a process and a namespace);
        // the process-wide name stays set for callers of the table-less firewall functions.
        let table = cfg
            .table
            .clone()
            .unwrap_or_else(|| firewall::TABLE.to_string());
        let _ = firewall::set_table(&table);
        let host_ns = Netns::current()?;
        let worker = NetnsWorker::start(host_ns)?;
        let host = worker.connect(None).await?;
        let store = StateStore::open(&cfg.root)?;
        let lock = store.lock()?;
        let state = store.load()?;
        let last_egress = store.load_egress().into_iter().collect();
        let (changes, _) = watch::channel(HostChange::default());
        if let Some(dir) = cfg.managers_dir.clone() {
            declare_unmanaged(dir).await;
        }
        Ok(Arc::new(Self {
            cfg,
            worker,
            host,
            store,
            inner: Mutex::new(Inner {
                state,
                last_egress,
                generation: 0,
                last_report: None,
                recent_repairs: std::collections::VecDeque::new(),
                conflicts: Vec::new(),
            }),
            changes,
            hooks: std::sync::Mutex::new(Vec::new()),
            table,
            _lock: lock,
        }))
    }

    /// A receiver that sees a new value after every reconcile (host NIC change or backstop);
    /// the DNS part re-reads its upstreams on each.
    pub fn host_changes(&self) -> watch::Receiver<HostChange> {
        self.changes.subscribe()
    }

    /// Registers a hook run after every reconcile (event-driven, backstop or explicit), for
    /// callers that prefer a callback to `host_changes()`. Keep it short: it runs on the
    /// reconcile task.
    pub fn on_reconcile(&self, hook: impl Fn(&ReconcileReport) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(hook));
    }

    /// The report of the latest reconcile (event-driven, backstop or explicit).
    pub async fn last_report(&self) -> Option<ReconcileReport> {
        self.inner.lock().await.last_report.clone()
    }

    /// The latest repairs of all reconciles, oldest first (at most 256): the event log a
    /// `berth events` stream can show.
    pub async fn recent_repairs(&self) -> Vec<crate::report::Repair> {
        self.inner
            .lock()
            .await
            .recent_repairs
            .iter()
            .cloned()
            .collect()
    }

    /// A snapshot of the desired state.
    pub async fn state(&self) -> State {
        self.inner.lock().await.state.clone()
    }

    /// The host-namespace netlink handle (for inspection in tools and tests).
    pub fn host_handle(&self) -> &Handle {
        &self.host
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().await
    }

    pub(crate) async fn egress_mtu(&self) -> Result<u32, NetdError> {
        if let Some(m) = self.cfg.default_mtu {
            return Ok(m);
        }
        let routes = links::list_routes(&self.host).await?;
        let links = links::list_links(&self.host).await?;
        Ok(links::uplink_mtu(&routes, &links))
    }

    /// The IPv4 GSO size for new veths of networks with egress: BIG TCP while every device an
    /// IPv4 route leaves through (berth's bridges aside) takes packets that large, else the
    /// kernel default (`None`); see [`links::egress_gso_size`].
    pub(crate) async fn egress_gso(&self) -> Result<Option<u32>, NetdError> {
        let Some(devs) = links::route_devices(&self.host).await? else {
            return Ok(None);
        };
        let all = links::list_links(&self.host).await?;
        let uplinks: Vec<&links::Link> = all
            .iter()
            .filter(|l| devs.contains(&l.index) && !l.name.starts_with(names::BRIDGE_PREFIX))
            .collect();
        Ok(links::egress_gso_size(&uplinks))
    }

    async fn in_use(&self, state: &State) -> Result<InUse, NetdError> {
        let ours: BTreeSet<String> = state.networks.values().map(|n| n.bridge.clone()).collect();
        let links = links::list_links(&self.host).await?;
        let our_idx: BTreeSet<u32> = links
            .iter()
            .filter(|l| ours.contains(&l.name))
            .map(|l| l.index)
            .collect();
        let routes = links::list_routes(&self.host).await?;
        let addrs = links::list_addrs(&self.host).await?;
        Ok(InUse {
            host_routes: routes
                .iter()
                .filter(|r| r.dst.prefix() > 0 && !r.oif.is_some_and(|i| our_idx.contains(&i)))
                .map(|r| r.dst)
                .collect(),
            host_addrs: addrs
                .iter()
                .filter(|a| !our_idx.contains(&a.index) && !a.ip.is_loopback())
                .filter_map(|a| Ipv4Net::new(a.ip, a.prefix).ok())
                .collect(),
            networks: state.networks.values().map(|n| n.subnet).collect(),
        })
    }

    /// IPv6 subnets in use: berth's networks', and the host's routes and addresses (not on
    /// berth's bridges, link-local and the default route left out).
    async fn in_use6(&self, state: &State) -> Result<(Vec<Ipv6Net>, Vec<Ipv6Net>), NetdError> {
        let ours: Vec<Ipv6Net> = state.networks.values().filter_map(|n| n.subnet6).collect();
        let bridges: BTreeSet<String> = state.networks.values().map(|n| n.bridge.clone()).collect();
        let links = links::list_links(&self.host).await?;
        let our_idx: BTreeSet<u32> = links
            .iter()
            .filter(|l| bridges.contains(&l.name))
            .map(|l| l.index)
            .collect();
        let host = links::list_addrs6(&self.host)
            .await?
            .into_iter()
            .filter(|a| !our_idx.contains(&a.index) && !a.ip.is_loopback())
            .filter_map(|a| Ipv6Net::new(a.ip, a.prefix).ok())
            .collect();
        Ok((ours, host))
    }

    /// Creates a network: validates and allocates, records it, makes the bridge (up, gateway
    /// address) and updates the firewall.
    pub async fn create_network(&self, req: NetworkCreate) -> Result<NetworkSpec, NetdError> {
        self.create_network_with_ipv6(req, Ipv6Create::default())
            .await
    }

    /// [`Netd::create_network`] with IPv6 settings: with `req.enable_ipv6` (or a subnet in
    /// `v6`) the network is dual-stack: an IPv6 subnet (given, or the next /64 of
    /// fd00:b5e7::/48), the gateway's IPv6 address on the bridge, and for every endpoint the
    /// counterpart of its IPv4 address, an IPv6 default route, masquerade and published ports
    /// in berth's `ip6` table.
    pub async fn create_network_with_ipv6(
        &self,
        req: NetworkCreate,
        v6: Ipv6Create,
    ) -> Result<NetworkSpec, NetdError> {
        if !valid_name(&req.name) {
            return Err(NetdError::BadName { name: req.name });
        }
        let want_v6 = req.enable_ipv6 || v6.subnet.is_some();
        let mut inner = self.lock().await;
        if inner.state.networks.values().any(|n| n.name == req.name) {
            return Err(NetdError::NetworkExists { name: req.name });
        }
        let used = self.in_use(&inner.state).await?;
        let ipam_err = |source| NetdError::Ipam {
            name: req.name.clone(),
            source,
        };
        let subnet = match req.subnet {
            Some(s) => {
                ipam::check_subnet(&s, &used).map_err(ipam_err)?;
                s
            }
            None => ipam::allocate_subnet(&self.cfg.pool, &used).map_err(ipam_err)?,
        };
        let gateway = match req.gateway {
            Some(g) => {
                if !subnet.contains(g) || g == subnet.addr() || g == subnet.last() {
                    return Err(NetdError::BadGateway { gateway: g, subnet });
                }
                g
            }
            None => ipam::default_gateway(&subnet).map_err(ipam_err)?,
        };
        if let Some(r) = &req.ip_range
            && !subnet.covers(r)
        {
            return Err(ipam_err(IpamError::Overlap {
                subnet,
                other: *r,
                what: "an ip_range outside the subnet",
            }));
        }
        let (subnet6, gateway6) = if want_v6 {
            let ipam6_err = |source| NetdError::Ipam6 {
                name: req.name.clone(),
                source,
            };
            let (ours, host) = self.in_use6(&inner.state).await?;
            let s6 = match v6.subnet {
                Some(s6) => {
                    ipam6::check_subnet(&s6, &ours, &host).map_err(ipam6_err)?;
                    s6
                }
                None => ipam6::allocate_subnet(&ipam6::default_pool(), &ours, &host)
                    .map_err(ipam6_err)?,
            };
            let g6 = match v6.gateway {
                Some(g) if s6.contains(g) && g != s6.addr() => g,
                Some(g) => {
                    return Err(ipam6_err(Ipam6Error::Overlap {
                        subnet: s6,
                        other: Ipv6Net::new(g, 128).map_err(ipam6_err)?,
                        what: "a gateway outside the IPv6 subnet",
                    }));
                }
                None => ipam6::counterpart(gateway, &subnet, &s6).map_err(ipam6_err)?,
            };
            if let Some(r) = v6.ip_range
                && !s6.covers(&r)
            {
                return Err(ipam6_err(Ipam6Error::Overlap {
                    subnet: s6,
                    other: r,
                    what: "an ip_range outside the IPv6 subnet",
                }));
            }
            (Some(s6), Some(g6))
        } else {
            (None, None)
        };
        let id = names::new_network_id(&req.name);
        let spec = NetworkSpec {
            ip_range6: v6.ip_range.filter(|_| subnet6.is_some()),
            subnet6,
            gateway6,
            bridge: names::bridge_name(&id),
            id: id.clone(),
            name: req.name.clone(),
            subnet,
            gateway,
            ip_range: req.ip_range,
            internal: req.internal,
            mtu: req.mtu,
            labels: req.labels.clone(),
            created: now(),
        };
        inner.state.networks.insert(id.clone(), spec.clone());
        let res = async {
            self.store.save(&inner.state)?;
            self.ensure_bridge(&spec).await?;
            self.apply_firewall(&inner.state).await
        }
        .await;
        if let Err(first) = res {
            inner.state.networks.remove(&id);
            let cleanup = async {
                links::delete_link(&self.host, &spec.bridge).await?;
                self.store.save(&inner.state)?;
                Ok::<_, NetdError>(())
            }
            .await;
            return Err(match cleanup {
                Ok(()) => first,
                Err(c) => NetdError::WithCleanup {
                    first: Box::new(first),
                    cleanup: Box::new(c),
                },
            });
        }
        tracing::info!(network = %spec.name, bridge = %spec.bridge, subnet = %spec.subnet, subnet6 = ?spec.subnet6, "network created");
        Ok(spec)
    }

    /// Makes a network's bridge present, up and addressed; returns its index and whether
    /// anything had to change.
    pub(crate) async fn ensure_bridge(&self, n: &NetworkSpec) -> Result<(u32, bool), NetdError> {
        let existed = links::link_by_name(&self.host, &n.bridge).await?;
        let mtu = match n.mtu {
            Some(m) => m,
            None => self.egress_mtu().await?,
        };
        let l = links::ensure_bridge(&self.host, &n.bridge, mtu, names::endpoint_mac(n.gateway))
            .await?;
        let addrs = links::list_addrs(&self.host).await?;
        let has = addrs
            .iter()
            .any(|a| a.index == l.index && a.ip == n.gateway && a.prefix == n.subnet.prefix());
        if !has {
            links::ensure_address(&self.host, l.index, n.gateway, n.subnet.prefix(), &n.bridge)
                .await?;
        }
        let br = n.bridge.clone();
        let v6 = n.subnet6.is_some();
        // route_localnet lets the host's own clients of a published port (127.0.0.1:PORT,
        // translated in `output`) leave through the bridge with their loopback source and
        // lets the container's replies, which conntrack readdresses to 127.0.0.1, in: the
        // kernel would take both for martians. Only networks that can publish ports need
        // it (internal ones cannot); what it would also let in (a container's frames for
        // 127.0.0.0/8) is dropped by the firewall's loopback guard.
        let localnet = if n.internal { "0" } else { "1" };
        let changed_sysctl = self
            .worker
            .run(None, move || -> Result<bool, NetdError> {
                let a = crate::sysctl::write("net/ipv4/ip_forward", "1")?;
                let b = crate::sysctl::write(&format!("net/ipv4/conf/{br}/route_localnet"), localnet)?;
                let c = if v6 {
                    // The bridge may have been born with IPv6 off (a host that disables it
                    // by default); forwarding is what lets containers' IPv6 out.
                    let c = crate::sysctl::write(&format!("net/ipv6/conf/{br}/disable_ipv6"), "0")?;
                    let d = crate::sysctl::write("net/ipv6/conf/all/forwarding", "1")?;
                    if d {
                        tracing::warn!(
                            "IPv6 forwarding turned on for berth's IPv6 networks: interfaces with accept_ra=1 stop taking router advertisements (set accept_ra=2 on the uplink to keep SLAAC)"
                        );
                    }
                    c || d
                } else {
                    false
                };
                Ok(a || b || c)
            })
            .await??;
        let mut has6 = true;
        if let (Some(s6), Some(g6)) = (n.subnet6, n.gateway6) {
            has6 = links::list_addrs6(&self.host)
                .await?
                .iter()
                .any(|a| a.index == l.index && a.ip == g6);
            if !has6 {
                links::ensure_address6(&self.host, l.index, g6, s6.prefix(), &n.bridge).await?;
            }
        }
        let changed = existed.as_ref().is_none_or(|e| !e.up) || !has || !has6 || changed_sysctl;
        Ok((l.index, changed))
    }

    /// Writes berth's table (or removes it when there is no network) and syncs DOCKER-USER.
    pub(crate) async fn apply_firewall(&self, state: &State) -> Result<(), NetdError> {
        let rs = crate::desired::ruleset(state);
        let rs6 = crate::desired::ruleset6(state);
        let any = !state.networks.is_empty();
        let table = self.table.clone();
        self.worker
            .run(None, move || -> Result<(), FirewallError> {
                if any {
                    crate::firewall6::apply_with6_in(&table, &rs, &rs6)?;
                } else {
                    firewall::remove_in(&table)?;
                    crate::firewall6::apply6_in(&table, &rs6)?;
                }
                firewall::sync_docker_user_in(&table, any)?;
                firewall::sync_docker_user_family_in("ip6", &table, !rs6.networks.is_empty())?;
                Ok(())
            })
            .await??;
        Ok(())
    }

    /// Removes a network that has no endpoints: bridge, rules, state.
    pub async fn remove_network(&self, key: &str) -> Result<NetworkSpec, NetdError> {
        let mut inner = self.lock().await;
        let n = inner
            .state
            .find_network(key)
            .cloned()
            .ok_or_else(|| NetdError::NoNetwork {
                key: key.to_string(),
            })?;
        // Endpoints of containers whose namespace is gone do not hold the network.
        let id = n.id.clone();
        inner
            .state
            .endpoints
            .retain(|e| e.network != id || e.netns.path().exists());
        let users: Vec<String> = inner
            .state
            .endpoints_of(&n.id)
            .map(|e| e.container.clone())
            .collect();
        if !users.is_empty() {
            return Err(NetdError::NetworkInUse {
                name: n.name,
                containers: users.join(", "),
            });
        }
        inner.state.networks.remove(&n.id);
        self.store.save(&inner.state)?;
        let mut errs = Vec::new();
        if let Err(e) = links::delete_link(&self.host, &n.bridge).await {
            errs.push(e.into());
        }
        if let Err(e) = self.apply_firewall(&inner.state).await {
            errs.push(e);
        }
        if !errs.is_empty() {
            return Err(NetdError::Teardown(errs));
        }
        tracing::info!(network = %n.name, "network removed");
        Ok(n)
    }

    /// Networks, by name.
    pub async fn networks(&self) -> Vec<NetworkSpec> {
        let inner = self.lock().await;
        let mut v: Vec<_> = inner.state.networks.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Attaches a container (its namespace) to networks: one veth each, named eth0, eth1 ...
    /// in priority order after any it already has, default route via the first non-internal
    /// network when the container has none yet. All or nothing.
    pub async fn attach(
        &self,
        container: &str,
        netns: NetnsRef,
        mut reqs: Vec<EndpointRequest>,
    ) -> Result<Vec<Endpoint>, NetdError> {
        reqs.sort_by_key(|r| std::cmp::Reverse(r.priority));
        let mut inner = self.lock().await;
        // Validate everything first.
        let existing: Vec<&Endpoint> = inner
            .state
            .endpoints
            .iter()
            .filter(|e| e.container == container)
            .collect();
        let existing_count = existing.len();
        let mut used_if: BTreeSet<String> = existing.iter().map(|e| e.ifname.clone()).collect();
        let mut has_default = existing.iter().any(|e| e.default_route);
        let mut planned: Vec<(Endpoint, NetworkSpec)> = Vec::new();
        let mut taken_by_net: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
        let mut taken6_by_net: BTreeMap<String, BTreeMap<Ipv6Addr, String>> = BTreeMap::new();
        for r in &reqs {
            let n = inner
                .state
                .find_network(&r.network)
                .cloned()
                .ok_or_else(|| NetdError::NoNetwork {
                    key: r.network.clone(),
                })?;
            if existing.iter().any(|e| e.network == n.id)
                || planned.iter().any(|(e, _)| e.network == n.id)
            {
                return Err(NetdError::AlreadyAttached {
                    container: container.to_string(),
                    network: n.name,
                });
            }
            let taken = taken_by_net
                .entry(n.id.clone())
                .or_insert_with(|| inner.state.endpoints_of(&n.id).map(|e| e.address).collect());
            let ipam_err = |source| NetdError::Ipam {
                name: n.name.clone(),
                source,
            };
            let address = match r.ipv4_address {
                Some(a) => {
                    ipam::check_address(a, &n.subnet, n.gateway, taken, &n.name)
                        .map_err(ipam_err)?;
                    a
                }
                None => ipam::allocate_address(
                    &n.subnet,
                    n.ip_range.as_ref(),
                    n.gateway,
                    taken,
                    &n.name,
                )
                .map_err(ipam_err)?,
            };
            taken.insert(address);
            if n.internal && !r.ports.is_empty() {
                return Err(NetdError::InternalPorts { name: n.name });
            }
            let mac = match &r.mac_address {
                Some(m) => {
                    names::parse_mac(m).ok_or_else(|| NetdError::BadMac { value: m.clone() })?
                }
                None => names::endpoint_mac(address),
            };
            for p in &r.ports {
                p.validate()?;
                for e in inner
                    .state
                    .endpoints
                    .iter()
                    .chain(planned.iter().map(|(e, _)| e))
                {
                    for q in &e.ports {
                        if let Some(port) = p.clashes(q) {
                            return Err(PortError::Conflict {
                                proto: p.protocol.as_str(),
                                port,
                                owner: e.container.clone(),
                            }
                            .into());
                        }
                    }
                }
            }
            let ifname = (0..)
                .map(|i| format!("eth{i}"))
                .find(|c| !used_if.contains(c))
                .unwrap_or_else(|| "eth0".into());
            used_if.insert(ifname.clone());
            let default_route = !has_default && !n.internal;
            has_default |= default_route;
            for p in &r.ports {
                match p.host_ip {
                    Some(IpAddr::V6(a)) if a.is_loopback() => {
                        return Err(NetdError::Ipv6LoopbackPort {
                            port: p.to_string(),
                        });
                    }
                    Some(IpAddr::V6(_)) if n.subnet6.is_none() => {
                        return Err(NetdError::Ipv6PortWithoutIpv6 {
                            port: p.to_string(),
                            network: n.name.clone(),
                        });
                    }
                    _ => {}
                }
            }
            let address6 = match n.subnet6 {
                Some(s6) => {
                    let taken6 = taken6_by_net.entry(n.id.clone()).or_insert_with(|| {
                        inner
                            .state
                            .endpoints_of(&n.id)
                            .filter_map(|e| e.address6.map(|a| (a, e.container.clone())))
                            .collect()
                    });
                    let a6_err = |what: String| NetdError::Ipv6Address {
                        network: n.name.clone(),
                        what,
                    };
                    let a6 = match r.ipv6_address {
                        Some(a6) => {
                            ipam6::check_address(a6, &s6, n.gateway6)
                                .map_err(|e| a6_err(e.to_string()))?;
                            if let Some(owner) = taken6.get(&a6) {
                                return Err(a6_err(format!(
                                    "IPv6 address {a6} is already in use by container {owner}"
                                )));
                            }
                            a6
                        }
                        None => ipam6::allocate_address(
                            ipam6::counterpart(address, &n.subnet, &s6).ok(),
                            &s6,
                            n.ip_range6.as_ref(),
                            n.gateway6,
                            |a| taken6.contains_key(&a),
                        )
                        .map_err(|e| a6_err(e.to_string()))?,
                    };
                    taken6.insert(a6, container.to_string());
                    Some(a6)
                }
                None if r.ipv6_address.is_some() => {
                    return Err(NetdError::Ipv6Address {
                        network: n.name.clone(),
                        what: "an ipv6_address was given but the network has no IPv6 (enable_ipv6 is off)".into(),
                    });
                }
                None => None,
            };
            planned.push((
                Endpoint {
                    container: container.to_string(),
                    network: n.id.clone(),
                    netns: netns.clone(),
                    ifname,
                    host_ifname: names::veth_name(container, &n.id),
                    address,
                    mac: names::mac_string(&mac),
                    default_route,
                    ports: r.ports.clone(),
                    aliases: r.aliases.clone(),
                    address6,
                },
                n,
            ));
        }
        let wanted: Vec<PortMapping> = planned
            .iter()
            .flat_map(|(e, _)| e.ports.iter().cloned())
            .collect();
        if let Some((_, err)) = self.host_listeners(wanted).await? {
            return Err(err.into());
        }
        let ns = Netns::open(&netns.path())?;
        let mut made: Vec<String> = Vec::new();
        let res = async {
            let cont = self.worker.connect(Some(&ns)).await?;
            let first = existing_count == 0;
            for (i, (e, n)) in planned.iter().enumerate() {
                self.create_endpoint(&cont, &ns, e, n, first && i == 0)
                    .await?;
                made.push(e.host_ifname.clone());
            }
            Ok::<_, NetdError>(())
        }
        .await;
        let res = match res {
            Ok(()) => {
                inner
                    .state
                    .endpoints
                    .extend(planned.iter().map(|(e, _)| e.clone()));
                let r = self.store.save(&inner.state).map_err(NetdError::from);
                match r {
                    Ok(()) if planned.iter().any(|(e, _)| !e.ports.is_empty()) => {
                        self.apply_firewall(&inner.state).await
                    }
                    other => other,
                }
            }
            Err(e) => Err(e),
        };
        if let Err(first) = res {
            inner
                .state
                .endpoints
                .retain(|e| !(e.container == container && made.contains(&e.host_ifname)));
            let mut cleanup = Ok(());
            for h in &made {
                if let Err(e) = links::delete_link(&self.host, h).await {
                    cleanup = Err(NetdError::from(e));
                }
            }
            if let Err(e) = self.store.save(&inner.state) {
                cleanup = Err(e.into());
            }
            return Err(match cleanup {
                Ok(()) => first,
                Err(c) => NetdError::WithCleanup {
                    first: Box::new(first),
                    cleanup: Box::new(c),
                },
            });
        }
        for (e, n) in &planned {
            tracing::info!(container, network = %n.name, ifname = %e.ifname, address = %e.address, "endpoint attached");
        }
        Ok(planned.into_iter().map(|(e, _)| e).collect())
    }

    /// Creates one endpoint in the kernel (host veth on the bridge, peer configured inside).
    pub(crate) async fn create_endpoint(
        &self,
        cont: &Handle,
        ns: &Netns,
        e: &Endpoint,
        n: &NetworkSpec,
        lo_up: bool,
    ) -> Result<(), NetdError> {
        use std::os::fd::AsRawFd;
        let br = match links::link_by_name(&self.host, &n.bridge).await? {
            Some(l) => l,
            None => {
                self.ensure_bridge(n).await?;
                links::link_by_name(&self.host, &n.bridge)
                    .await?
                    .ok_or(LinkError::Missing {
                        name: n.bridge.clone(),
                    })?
            }
        };
        let spec = VethSpec {
            host: &e.host_ifname,
            peer: &e.ifname,
            peer_ns_fd: ns.fd().as_raw_fd(),
            peer_mac: names::parse_mac(&e.mac).unwrap_or_else(|| names::endpoint_mac(e.address)),
            mtu: if br.mtu > 0 { br.mtu } else { 1500 },
            bridge: br.index,
            gso_max_size: if n.internal {
                Some(links::BIG_TCP_GSO_SIZE)
            } else {
                self.egress_gso().await?
            },
        };
        links::create_veth(&self.host, &spec).await?;
        if !e.ports.is_empty()
            && let Err(err) = links::set_hairpin(&self.host, &e.host_ifname).await
        {
            let _ = links::delete_link(&self.host, &e.host_ifname).await;
            return Err(err.into());
        }
        let via = e.default_route.then_some(n.gateway);
        if let Err(err) = links::configure_container_side(
            cont,
            &e.ifname,
            e.address,
            n.subnet.prefix(),
            via,
            lo_up,
        )
        .await
        {
            let _ = links::delete_link(&self.host, &e.host_ifname).await;
            return Err(err.into());
        }
        if let Err(err) = self.configure_inside6(cont, e, n).await {
            let _ = links::delete_link(&self.host, &e.host_ifname).await;
            return Err(err);
        }
        Ok(())
    }

    /// The IPv6 side of an endpoint inside its container: address (no DAD) and, on the
    /// endpoint carrying the default route, the IPv6 default route via the gateway. Returns
    /// whether anything had to change.
    pub(crate) async fn configure_inside6(
        &self,
        cont: &Handle,
        e: &Endpoint,
        n: &NetworkSpec,
    ) -> Result<bool, NetdError> {
        let (Some(a6), Some(s6)) = (e.address6, n.subnet6) else {
            return Ok(false);
        };
        let l = links::link_by_name(cont, &e.ifname)
            .await?
            .ok_or(LinkError::Missing {
                name: e.ifname.clone(),
            })?;
        let mut changed = false;
        if !links::list_addrs6(cont)
            .await?
            .iter()
            .any(|x| x.index == l.index && x.ip == a6)
        {
            links::ensure_address6(cont, l.index, a6, s6.prefix(), &e.ifname).await?;
            changed = true;
        }
        if e.default_route
            && let Some(g6) = n.gateway6
            && !links::has_default_route6(cont, g6).await?
        {
            links::set_default_route6(cont, g6).await?;
            changed = true;
        }
        Ok(changed)
    }

    /// Detaches a container from one network (or all when `network` is `None`). Best effort:
    /// keeps going and reports every error.
    pub async fn detach(&self, container: &str, network: Option<&str>) -> Result<(), NetdError> {
        let mut inner = self.lock().await;
        let net_id = match network {
            Some(k) => Some(
                inner
                    .state
                    .find_network(k)
                    .map(|n| n.id.clone())
                    .ok_or_else(|| NetdError::NoNetwork { key: k.to_string() })?,
            ),
            None => None,
        };
        let (gone, keep): (Vec<Endpoint>, Vec<Endpoint>) =
            inner.state.endpoints.drain(..).partition(|e| {
                e.container == container && net_id.as_ref().is_none_or(|id| &e.network == id)
            });
        inner.state.endpoints = keep;
        if gone.is_empty() {
            if let (Some(k), Some(_)) = (network, net_id) {
                return Err(NetdError::NotAttached {
                    container: container.to_string(),
                    network: k.to_string(),
                });
            }
            return Ok(());
        }
        let mut errs = Vec::new();
        if let Err(e) = self.store.save(&inner.state) {
            errs.push(e.into());
        }
        for e in &gone {
            if let Err(err) = links::delete_link(&self.host, &e.host_ifname).await {
                errs.push(err.into());
            }
        }
        if gone.iter().any(|e| !e.ports.is_empty())
            && let Err(e) = self.apply_firewall(&inner.state).await
        {
            errs.push(e);
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(NetdError::Teardown(errs))
        }
    }

    /// Publishes more ports of an attached container through its endpoint on `network`.
    pub async fn publish(
        &self,
        container: &str,
        network: &str,
        ports: Vec<PortMapping>,
    ) -> Result<(), NetdError> {
        let mut inner = self.lock().await;
        let n = inner
            .state
            .find_network(network)
            .cloned()
            .ok_or_else(|| NetdError::NoNetwork {
                key: network.to_string(),
            })?;
        if n.internal && !ports.is_empty() {
            return Err(NetdError::InternalPorts { name: n.name });
        }
        for p in &ports {
            p.validate()?;
            for e in &inner.state.endpoints {
                for q in &e.ports {
                    if let Some(port) = p.clashes(q) {
                        return Err(PortError::Conflict {
                            proto: p.protocol.as_str(),
                            port,
                            owner: e.container.clone(),
                        }
                        .into());
                    }
                }
            }
        }
        if !inner
            .state
            .endpoints
            .iter()
            .any(|e| e.container == container && e.network == n.id)
        {
            return Err(NetdError::NotAttached {
                container: container.to_string(),
                network: n.name.clone(),
            });
        }
        if let Some((_, err)) = self.host_listeners(ports.clone()).await? {
            return Err(err.into());
        }
        let ep = inner
            .state
            .endpoints
            .iter_mut()
            .find(|e| e.container == container && e.network == n.id)
            .ok_or_else(|| NetdError::NotAttached {
                container: container.to_string(),
                network: n.name.clone(),
            })?;
        ep.ports.extend(ports);
        let host_if = ep.host_ifname.clone();
        links::set_hairpin(&self.host, &host_if).await?;
        self.store.save(&inner.state)?;
        self.apply_firewall(&inner.state).await
    }

    /// Checks publications before anything is made (`up`'s preflight): against the ports
    /// other containers publish (those in `except`, about to be replaced, do not count) and
    /// against the host's listening sockets. Answers the index of the first refused one
    /// with the reason, `None` when all are free; an error only when the check itself
    /// failed. Clashes among `ports` themselves are the caller's to find.
    pub async fn check_ports(
        &self,
        ports: &[PortMapping],
        except: &BTreeSet<String>,
    ) -> Result<Option<(usize, PortError)>, NetdError> {
        {
            let inner = self.inner.lock().await;
            for (i, p) in ports.iter().enumerate() {
                if let Err(err) = p.validate() {
                    return Ok(Some((i, err)));
                }
                for e in inner
                    .state
                    .endpoints
                    .iter()
                    .filter(|e| !except.contains(&e.container))
                {
                    for q in &e.ports {
                        if let Some(port) = p.clashes(q) {
                            return Ok(Some((
                                i,
                                PortError::Conflict {
                                    proto: p.protocol.as_str(),
                                    port,
                                    owner: e.container.clone(),
                                },
                            )));
                        }
                    }
                }
            }
        }
        self.host_listeners(ports.to_vec()).await
    }

    /// The first of `ports` a host socket holds (read on the worker, in the host namespace).
    async fn host_listeners(
        &self,
        ports: Vec<PortMapping>,
    ) -> Result<Option<(usize, PortError)>, NetdError> {
        if ports.is_empty() {
            return Ok(None);
        }
        self.worker
            .run(None, move || crate::listeners::check(&ports))
            .await?
            .map_err(|e| PortError::HostCheck(e).into())
    }

    /// Withdraws every published port of a container.
    pub async fn unpublish(&self, container: &str) -> Result<(), NetdError> {
        let mut inner = self.lock().await;
        let mut changed = false;
        for e in inner
            .state
            .endpoints
            .iter_mut()
            .filter(|e| e.container == container)
        {
            changed |= !e.ports.is_empty();
            e.ports.clear();
        }
        if changed {
            self.store.save(&inner.state)?;
            self.apply_firewall(&inner.state).await?;
        }
        Ok(())
    }

    /// Runs the watch loop (until the task is dropped or a new subscription cannot be made):
    /// reconcile after each debounced burst of host link/address/route events, and every
    /// `backstop` regardless.
    pub async fn run(self: Arc<Self>, backstop: Duration) -> Result<(), NetdError> {
        let mut w = crate::watch::Watcher::start(&self.worker).await?;
        let mut tick = tokio::time::interval(backstop);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                c = w.next_change(Duration::from_millis(15), Duration::from_millis(150)) => {
                    match c {
                        Some(kinds) => {
                            tracing::debug!(?kinds, "host network changed");
                            // Only netd's own links: an attach burst announces every new
                            // veth before it joins its bridge; reconciling once per burst
                            // would hold netd's lock through the whole burst.
                            if kinds.iter().all(|k| *k == crate::watch::ChangeKind::OwnLink) {
                                tokio::time::sleep_until(last + crate::watch::OWN_LINK_INTERVAL)
                                    .await;
                            }
                        }
                        None => {
                            // The subscription ended (socket error, overrun): subscribe again
                            // and reconcile, since events may have been lost.
                            tracing::warn!("rtnetlink event subscription ended; subscribing again");
                            w = crate::watch::Watcher::start(&self.worker).await?;
                        }
                    }
                }
                _ = tick.tick() => {}
            }
            // The first tick fires at once: a (re)started netd reconciles before anything else.
            // reconcile() logs each repair as an event.
            let _ = self.reconcile().await;
            last = tokio::time::Instant::now();
        }
    }
}

/// Declares berth's links unmanaged under `dir` (off the async threads: it may run reload
/// commands). A failure is logged, not returned: networking works without it, only a host
/// network manager may then grab berth's links.
async fn declare_unmanaged(dir: PathBuf) {
    let d = dir.clone();
    match tokio::task::spawn_blocking(move || crate::unmanaged::declare(&d)).await {
        Ok(Ok(changed)) if !changed.is_empty() => {
            tracing::info!(dir = %dir.display(), files = ?changed, "declared berth's links unmanaged for the host's network managers");
        }
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!(err = %crate::report::chain(&err), "cannot declare berth's links unmanaged: a host network manager may take them over");
        }
        Err(err) => tracing::warn!(%err, "declaring berth's links unmanaged"),
    }
}
