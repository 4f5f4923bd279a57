//! Everything a netd call can fail with.

use std::net::{Ipv4Addr, Ipv6Addr};

use crate::firewall::FirewallError;
use crate::ipam::{IpamError, Ipv4Net};
use crate::ipam6::Ipam6Error;
use crate::links::LinkError;
use crate::netns::NetnsError;
use crate::ports::PortError;
use crate::state::StateError;

/// Everything a netd call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum NetdError {
    #[error(
        "interface name {value:?} is invalid (1-15 characters, no '/', ':', blank or control character)"
    )]
    BadInterfaceName { value: String },
    #[error("interface name {value:?} is already used in the container")]
    InterfaceNameInUse { value: String },
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
    #[error("network {network}: aux_addresses {host}={addr} is not inside subnet {subnet}")]
    AuxAddressOutside {
        network: String,
        host: String,
        addr: std::net::IpAddr,
        subnet: String,
    },
    #[error(
        "network {network}: link_local_ips {addr} is not link-local (169.254.0.0/16 or fe80::/10)"
    )]
    NotLinkLocal {
        network: String,
        addr: std::net::IpAddr,
    },
    #[error("network {name:?} already exists")]
    NetworkExists { name: String },
    #[error("network {network}: com.docker.network.bridge.name {bridge:?} {why}")]
    BadBridgeName {
        network: String,
        bridge: String,
        why: String,
    },
    #[error("network {network}: com.docker.network.container_iface_prefix {prefix:?} {why}")]
    BadIfacePrefix {
        network: String,
        prefix: String,
        why: &'static str,
    },
    #[error("network {network}: com.docker.network.endpoint.sysctls: {why}")]
    BadEndpointSysctl { network: String, why: String },
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
    /// A `mac_address` that is the network's bridge MAC: the container would take the
    /// gateway's frames.
    #[error(
        "MAC address {value} is the MAC of network {network}'s gateway (its bridge): a container cannot have it"
    )]
    GatewayMac { value: String, network: String },
    /// A MAC another endpoint of the network already has: frames for it would go to one of
    /// the two (Docker accepts this; berth refuses it).
    #[error(
        "MAC address {value} of container {container} on network {network} is already the MAC of container {owner} there"
    )]
    MacInUse {
        value: String,
        container: String,
        network: String,
        owner: String,
    },
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
