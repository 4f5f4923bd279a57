//! Network routes, in the shapes and field names of Docker's Engine API where it has the same
//! route: `GET /v1/networks`, `GET /v1/networks/{name}`, `POST /v1/networks/create`,
//! `DELETE /v1/networks/{name}`, `POST /v1/networks/{name}/connect`,
//! `POST /v1/networks/{name}/disconnect`, `POST /v1/networks/prune`; and berth's own
//! `POST /v1/networks/reconcile`. Fields Docker does not have are berth's additions, named so
//! a Docker client ignores them.
//!
//! Own serde types rather than `bollard-stubs` (Docker's generated models): berth answers a
//! handful of these shapes, and the crate's 9.7k-line model file would be compiled on every
//! build for them.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The build network's name (what `berth network ls` shows while a build runs): the CLI's
/// builds ask the daemon for it by this name.
pub const BUILD_NETWORK: &str = "berth-build";

/// Label marking the build network as the builder's own.
pub const BUILD_NETWORK_LABEL: &str = "berth.build";

/// Docker's bridge driver option for the MTU (compose `driver_opts`, `--opt`).
pub const OPT_MTU: &str = "com.docker.network.driver.mtu";

/// Docker's bridge driver option naming the kernel bridge.
pub const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";

/// One address pool of a network (Docker's `IPAM.Config[]` entry).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IpamConfig {
    /// The pool's prefix in CIDR form, IPv4 or IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// The sub-range automatic addresses come from.
    #[serde(default, rename = "IPRange", skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// The bridge's address in the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Addresses of the pool reserved by host name: never given to a container (docker-py
    /// sends `null` for none).
    #[serde(
        default,
        deserialize_with = "super::container::nullable",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// A network's address management (Docker's `IPAM`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Ipam {
    /// Always `default`: berth's own IPAM.
    #[serde(default = "default_ipam_driver")]
    pub driver: String,
    /// The pools, at most one per address family.
    #[serde(default)]
    pub config: Vec<IpamConfig>,
    /// IPAM driver options (none are supported).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

impl Default for Ipam {
    fn default() -> Self {
        Ipam {
            driver: default_ipam_driver(),
            config: Vec::new(),
            options: BTreeMap::new(),
        }
    }
}

fn default_ipam_driver() -> String {
    "default".into()
}

fn default_driver() -> String {
    "bridge".into()
}

/// Body of `POST /v1/networks/create` (Docker's `NetworkCreateRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateRequest {
    /// Unique name.
    pub name: String,
    /// Only `bridge`.
    #[serde(default = "default_driver")]
    pub driver: String,
    /// No egress from the network.
    #[serde(default)]
    pub internal: bool,
    /// Dual stack: an IPv6 subnet next to the IPv4 one (implied by an IPv6 pool).
    #[serde(default, rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    /// Fixed pools; empty takes the next free ones.
    #[serde(default, rename = "IPAM")]
    pub ipam: Ipam,
    /// Driver options: those of [`super::bridge_options::APPLIED`]; others are refused by
    /// name.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Answer of `POST /v1/networks/create` (Docker's `NetworkCreateResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkCreateResponse {
    /// The new network's id.
    pub id: String,
    /// Docker's warning field; empty.
    #[serde(default)]
    pub warning: String,
}

/// One container's endpoint on a network (Docker's `Containers` value of a network).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointResource {
    /// The container's name (filled in where container records are at hand: Docker's
    /// routes).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// The host end of the veth pair, which names the endpoint.
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    /// MAC of the container end.
    pub mac_address: String,
    /// Address with the subnet's prefix length.
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    /// IPv6 address with its prefix length, empty on an IPv4-only network.
    #[serde(default, rename = "IPv6Address")]
    pub ipv6_address: String,
}

/// A network as `GET /v1/networks[/{name}]` answers it (Docker's `Network`), with berth's
/// `Endpoints` and `Conflicts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Network {
    pub name: String,
    pub id: String,
    /// RFC 3339 creation time.
    pub created: String,
    /// Always `local`.
    pub scope: String,
    /// Always `bridge`.
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    /// Endpoints by container id.
    pub containers: BTreeMap<String, EndpointResource>,
    /// [`OPT_BRIDGE_NAME`] and the driver options that differ from the default
    /// ([`super::bridge_options::shown`]).
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// berth: the endpoints as netd records them (namespace, interface names, ports).
    #[serde(default)]
    pub endpoints: Vec<berth_netd::state::Endpoint>,
    /// berth: host routes or addresses overlapping the subnet, as of netd's latest reconcile.
    #[serde(default)]
    pub conflicts: Vec<String>,
    /// berth: seconds since the epoch, as netd records the creation.
    #[serde(default)]
    pub created_unix: u64,
}

impl Network {
    /// The pool of the IPv4 family, if any.
    pub fn ipv4_config(&self) -> Option<&IpamConfig> {
        self.ipam.config.iter().find(|c| !is_v6(c))
    }

    /// The pool of the IPv6 family, if any.
    pub fn ipv6_config(&self) -> Option<&IpamConfig> {
        self.ipam.config.iter().find(|c| is_v6(c))
    }

    /// The MTU given at creation.
    pub fn mtu(&self) -> Option<u32> {
        self.options.get(OPT_MTU).and_then(|m| m.parse().ok())
    }
}

fn is_v6(c: &IpamConfig) -> bool {
    c.subnet.as_deref().unwrap_or_default().contains(':')
}

/// Answer of `DELETE /v1/networks/{name}`: which network went (the name may have been an id).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDeleted {
    pub id: String,
    pub name: String,
}

/// Answer of `POST /v1/networks/prune` (Docker's `NetworkPruneResponse`): the networks without
/// endpoints that went, by name. Prune stops at the first failure; berth's `Error` names it
/// after the networks already deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkPruneResponse {
    pub networks_deleted: Vec<String>,
    /// berth: why the prune stopped early.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Docker's `EndpointIPAMConfig`: the addresses asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointIpamConfig {
    /// Static IPv4 address.
    #[serde(
        default,
        rename = "IPv4Address",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    /// Extra link-local addresses on the interface (169.254.0.0/16, fe80::/10).
    #[serde(
        default,
        rename = "LinkLocalIPs",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub link_local_ips: Vec<std::net::IpAddr>,
}

/// Docker's `EndpointSettings`, the part berth reads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EndpointConfig {
    #[serde(
        default,
        rename = "IPAMConfig",
        skip_serializing_if = "Option::is_none"
    )]
    pub ipam_config: Option<EndpointIpamConfig>,
    /// MAC of the container end (default: derived from its IPv4 address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// DNS aliases.
    #[serde(default)]
    pub aliases: Vec<String>,
}

/// Body of `POST /v1/networks/{name}/connect` (Docker's `NetworkConnectRequest`), with where
/// the container's network namespace is (berth's `Netns` or `Pid`: netd joins namespaces, not
/// container ids) and the ports to publish on this endpoint (berth's `Ports`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectRequest {
    /// Container id.
    pub container: String,
    #[serde(default)]
    pub endpoint_config: EndpointConfig,
    /// berth: the container's network namespace file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub netns: Option<PathBuf>,
    /// berth: a process in the container (its /proc/PID/ns/net is used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// berth: ports published on this endpoint.
    #[serde(default)]
    pub ports: Vec<berth_netd::ports::PortMapping>,
}

/// Answer of `POST /v1/networks/{name}/connect`: the endpoints made (berth's; Docker answers
/// nothing).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkConnectResponse {
    pub endpoints: Vec<berth_netd::state::Endpoint>,
}

/// Body of `POST /v1/networks/{name}/disconnect` (Docker's `NetworkDisconnectRequest`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NetworkDisconnectRequest {
    /// Container id.
    pub container: String,
    /// Accepted for Docker's shape; a disconnect is always complete.
    #[serde(default)]
    pub force: bool,
}

/// One repair of `POST /v1/networks/reconcile`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Repair {
    /// What was wrong and what was done.
    pub what: String,
    /// How long the repair took.
    pub duration: Duration,
}

/// Answer of `POST /v1/networks/reconcile`: kernel state repaired from the recorded networks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReconcileResponse {
    pub repairs: Vec<Repair>,
    /// Repairs that failed.
    pub errors: Vec<String>,
    /// Host routes or addresses overlapping a network's subnet: the user's to resolve.
    pub conflicts: Vec<String>,
    /// How long the whole pass took.
    pub duration: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pool_takes_null_auxiliary_addresses_as_none() {
        let c: IpamConfig = serde_json::from_str(
            r#"{"Subnet": "10.9.0.0/24", "IPRange": null, "Gateway": null, "AuxiliaryAddresses": null}"#,
        )
        .expect("docker-py's pool");
        assert!(c.auxiliary_addresses.is_empty());
        let c: IpamConfig = serde_json::from_str(
            r#"{"Subnet": "10.9.0.0/24", "AuxiliaryAddresses": {"h": "10.9.0.5"}}"#,
        )
        .expect("a pool with one");
        assert_eq!(
            c.auxiliary_addresses.get("h").map(String::as_str),
            Some("10.9.0.5")
        );
    }
}
