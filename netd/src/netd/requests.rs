//! What callers hand netd: its configuration and the requests of its calls (networks,
//! endpoints), and the host change it announces after each reconcile.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use crate::ipam::{Ipv4Net, Pool};
use crate::ipam6::Ipv6Net;
use crate::ports::PortMapping;
use crate::state::BridgeOptions;

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
    /// Whether containers of a network that lets them talk hand each other their frames past
    /// the bridge (a tc program on each host veth, see [`crate::fastpath`]); on by default,
    /// off with the daemon's `--no-fast-path`. Where the kernel cannot, netd warns once and
    /// uses the bridge.
    pub fast_path: bool,
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
            fast_path: true,
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
    /// Addresses reserved by host name (compose `ipam.config[].aux_addresses`, Docker's
    /// `AuxiliaryAddresses`): inside the network's subnets, never given to an endpoint.
    pub aux_addresses: BTreeMap<String, std::net::IpAddr>,
    /// The bridge's name (`com.docker.network.bridge.name`), else `berth-` and a hash of the
    /// network's id. Refused when another interface has it.
    pub bridge_name: Option<String>,
    /// The other bridge driver options (ICC, masquerade, default host address of published
    /// ports, interface prefix).
    pub options: BridgeOptions,
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
    /// Higher first: decides eth0, eth1 ... (and the default route among equal `gw_priority`).
    pub priority: i32,
    /// Which network carries the default route (Docker's `GwPriority`): the highest among
    /// the non-internal ones; ties to a dual-stack network, then the network whose name
    /// sorts first (Docker 28's order).
    pub gw_priority: i32,
    /// DNS aliases.
    pub aliases: Vec<String>,
    /// Ports to publish through this endpoint.
    pub ports: Vec<PortMapping>,
    /// The interface's name inside the container (compose `interface_name`), else the
    /// first free `ethN`.
    pub interface_name: Option<String>,
    /// Extra link-local addresses on the interface (compose `link_local_ips`, Docker's
    /// `LinkLocalIPs`): 169.254.0.0/16 or fe80::/10, besides the network's own address.
    pub link_local_ips: Vec<std::net::IpAddr>,
    /// Sysctls of the interface inside the container (Docker's
    /// `com.docker.network.endpoint.sysctls`): `net.<family>.<conf|neigh>.IFNAME.<key>` names,
    /// `IFNAME` standing for the interface, with their values; checked by [`check_sysctl`].
    pub sysctls: Vec<(String, String)>,
}

/// Checks one endpoint sysctl: its name is `net.<ipv4|ipv6|mpls>.<conf|neigh>.IFNAME.<key>`
/// (a setting of the endpoint's own interface, nothing namespace-wide) and its value a short
/// printable word; the error says what is wrong.
pub fn check_sysctl(name: &str, value: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('.').collect();
    let family_ok = matches!(
        parts.as_slice(),
        ["net", "ipv4" | "ipv6", "conf" | "neigh", "IFNAME", _]
            | ["net", "mpls", "conf", "IFNAME", _]
    );
    if !family_ok {
        return Err(format!(
            "{name:?} is not an interface sysctl: expected net.ipv4.conf.IFNAME.<key> (or ipv6, neigh, mpls.conf), IFNAME standing for the interface"
        ));
    }
    let key = parts[4];
    if key.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(format!("{name:?}: {key:?} is not a sysctl key"));
    }
    if value.is_empty()
        || value.len() > 256
        || !value
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b',')
    {
        return Err(format!(
            "{name}={value:?}: the value must be a non-empty printable word"
        ));
    }
    Ok(())
}

/// A host change seen by reconcile: the DNS part refreshes its upstreams on each new value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostChange {
    /// Increments on every reconcile.
    pub generation: u64,
    /// The host's egress addresses (preferred sources of default routes) after it.
    pub egress: Vec<Ipv4Addr>,
}
