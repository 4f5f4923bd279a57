//! The network routes' work on netd: typed requests in, typed answers or a kinded error out
//! (`/v1/networks...`, see [`crate::api::network`]). The daemon calls these with its netd and
//! keeps the DNS listeners in step; the CLI renders what they answer.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, UNIX_EPOCH};

use berth_netd::ipam::Ipv4Net;
use berth_netd::ipam6::Ipv6Net;
use berth_netd::state::{Endpoint, NetnsRef, NetworkSpec};
use berth_netd::{EndpointRequest, Ipv6Create, Netd, NetdError, NetworkCreate};

use crate::api::error::{ApiError, ErrorKind, error_chain};
use crate::api::network::{
    EndpointResource, Ipam, IpamConfig, Network, NetworkConnectRequest, NetworkConnectResponse,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDeleted, NetworkDisconnectRequest,
    NetworkPruneResponse, ReconcileResponse, Repair,
};

/// The kind of a netd failure, as Docker answers the same case.
pub fn netd_error_kind(e: &NetdError) -> ErrorKind {
    match e {
        NetdError::NoNetwork { .. } | NetdError::NotAttached { .. } => ErrorKind::NotFound,
        NetdError::NetworkExists { .. }
        | NetdError::AlreadyAttached { .. }
        | NetdError::MacInUse { .. } => ErrorKind::Conflict,
        NetdError::NetworkInUse { .. } => ErrorKind::Forbidden,
        NetdError::Port(berth_netd::ports::PortError::Conflict { .. }) => ErrorKind::Conflict,
        NetdError::BadName { .. }
        | NetdError::BadMac { .. }
        | NetdError::GatewayMac { .. }
        | NetdError::BadGateway { .. }
        | NetdError::Ipam { .. }
        | NetdError::Ipam6 { .. }
        | NetdError::Ipv6GatewayClash { .. }
        | NetdError::Ipv6Unsupported { .. }
        | NetdError::InternalPorts { .. }
        | NetdError::Ipv6LoopbackPort { .. }
        | NetdError::Ipv6PortWithoutIpv6 { .. }
        | NetdError::Ipv6Address { .. }
        | NetdError::AuxAddressOutside { .. }
        | NetdError::BadBridgeName { .. }
        | NetdError::BadIfacePrefix { .. }
        | NetdError::BadEndpointSysctl { .. }
        | NetdError::NotLinkLocal { .. }
        | NetdError::BadInterfaceName { .. }
        | NetdError::InterfaceNameInUse { .. } => ErrorKind::InvalidArgument,
        NetdError::WithCleanup { first, .. } => netd_error_kind(first),
        _ => ErrorKind::Internal,
    }
}

/// A netd failure as the API sends it: its kind, and its message with its sources.
pub fn netd_error(e: &NetdError) -> ApiError {
    ApiError::new(netd_error_kind(e), error_chain(e))
}

/// The pools of a create request, split by family: at most one of each.
#[derive(Debug, Default, PartialEq, Eq)]
struct Addressing {
    subnet: Option<Ipv4Net>,
    subnet6: Option<Ipv6Net>,
    gateway: Option<Ipv4Addr>,
    gateway6: Option<Ipv6Addr>,
    ip_range: Option<Ipv4Net>,
    ip_range6: Option<Ipv6Net>,
    aux_addresses: BTreeMap<String, IpAddr>,
}

/// A prefix of either family, as an `IPAM.Config[]` field holds it.
enum Prefix {
    V4(Ipv4Net),
    V6(Ipv6Net),
}

fn prefix(field: &str, s: &str) -> Result<Prefix, ApiError> {
    let bad = |e: &dyn std::fmt::Display| ApiError::invalid(format!("invalid {field} {s:?}: {e}"));
    if s.contains(':') {
        s.parse().map(Prefix::V6).map_err(|e| bad(&e))
    } else {
        s.parse().map(Prefix::V4).map_err(|e| bad(&e))
    }
}

/// Prefixes by family.
fn split(prefixes: Vec<Prefix>) -> (Vec<Ipv4Net>, Vec<Ipv6Net>) {
    let (mut v4, mut v6) = (Vec::new(), Vec::new());
    for p in prefixes {
        match p {
            Prefix::V4(n) => v4.push(n),
            Prefix::V6(n) => v6.push(n),
        }
    }
    (v4, v6)
}

/// Splits the `IPAM.Config` entries by family (an entry may carry only a gateway or a range:
/// the CLI's `--gateway` without `--subnet` keeps the pool's next subnet).
fn by_family(ipam: &Ipam) -> Result<Addressing, ApiError> {
    let (mut subnets, mut ranges, mut g4, mut g6) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut aux_addresses = BTreeMap::new();
    for c in &ipam.config {
        for (host, a) in &c.auxiliary_addresses {
            let addr = a.parse::<IpAddr>().map_err(|e| {
                ApiError::invalid(format!("invalid auxiliary address {host}={a:?}: {e}"))
            })?;
            if aux_addresses.insert(host.clone(), addr).is_some() {
                return Err(ApiError::invalid(format!(
                    "auxiliary address {host} is given twice"
                )));
            }
        }
        if let Some(s) = &c.subnet {
            subnets.push(prefix("subnet", s)?);
        }
        if let Some(r) = &c.ip_range {
            ranges.push(prefix("ip range", r)?);
        }
        if let Some(g) = &c.gateway {
            match g.parse::<IpAddr>() {
                Ok(IpAddr::V4(a)) => g4.push(a),
                Ok(IpAddr::V6(a)) => g6.push(a),
                Err(e) => return Err(ApiError::invalid(format!("invalid gateway {g:?}: {e}"))),
            }
        }
    }
    let (v4, v6) = split(subnets);
    let (r4, r6) = split(ranges);
    if v4.len() > 1 || v6.len() > 1 || g4.len() > 1 || g6.len() > 1 {
        return Err(ApiError::invalid(
            "at most one --subnet and one --gateway per address family",
        ));
    }
    if r4.len() > 1 || r6.len() > 1 {
        return Err(ApiError::invalid(
            "at most one --ip-range per address family",
        ));
    }
    Ok(Addressing {
        subnet: v4.first().copied(),
        subnet6: v6.first().copied(),
        gateway: g4.first().copied(),
        gateway6: g6.first().copied(),
        ip_range: r4.first().copied(),
        ip_range6: r6.first().copied(),
        aux_addresses,
    })
}

/// `POST /v1/networks/create`.
pub async fn create(
    n: &Netd,
    req: NetworkCreateRequest,
) -> Result<NetworkCreateResponse, ApiError> {
    if req.driver != "bridge" {
        return Err(ApiError::invalid(format!(
            "network driver {:?} is not supported (only \"bridge\")",
            req.driver
        )));
    }
    if req.ipam.driver != "default" {
        return Err(ApiError::invalid(format!(
            "IPAM driver {:?} is not supported (only \"default\")",
            req.ipam.driver
        )));
    }
    let driver = crate::api::bridge_options::parse(&req.options)
        .map_err(|e| ApiError::invalid(format!("network option {e}")))?;
    let a = by_family(&req.ipam)?;
    if !req.enable_ipv6 && a.subnet6.is_none() && a.gateway6.is_some() {
        return Err(ApiError::invalid(
            "an IPv6 --gateway needs --ipv6 or an IPv6 --subnet",
        ));
    }
    let spec = n
        .create_network_with_ipv6(
            NetworkCreate {
                name: req.name.clone(),
                subnet: a.subnet,
                gateway: a.gateway,
                ip_range: a.ip_range,
                internal: req.internal,
                enable_ipv6: req.enable_ipv6 || a.subnet6.is_some(),
                mtu: driver.mtu,
                labels: req.labels,
                aux_addresses: a.aux_addresses,
                bridge_name: driver.bridge_name,
                options: driver.options,
            },
            Ipv6Create {
                subnet: a.subnet6,
                gateway: a.gateway6,
                ip_range: a.ip_range6,
            },
        )
        .await
        .map_err(|e| netd_error(&e).context(format!("cannot create network {}", req.name)))?;
    Ok(NetworkCreateResponse {
        id: spec.id,
        warning: String::new(),
    })
}

/// The conflicts of netd's latest reconcile, by network name.
async fn conflicts(n: &Netd) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for c in n
        .last_report()
        .await
        .map(|r| r.conflicts)
        .unwrap_or_default()
    {
        out.entry(c.network.clone())
            .or_default()
            .push(c.to_string());
    }
    out
}

/// A network record as the API shows it.
fn network_of(x: &NetworkSpec, endpoints: Vec<Endpoint>, conflicts: Vec<String>) -> Network {
    let aux = |v6: bool| {
        x.aux_addresses
            .iter()
            .filter(|(_, a)| a.is_ipv6() == v6)
            .map(|(h, a)| (h.clone(), a.to_string()))
            .collect()
    };
    let mut config = vec![IpamConfig {
        subnet: Some(x.subnet.to_string()),
        ip_range: x.ip_range.map(|r| r.to_string()),
        gateway: Some(x.gateway.to_string()),
        auxiliary_addresses: aux(false),
    }];
    if let Some(s6) = x.subnet6 {
        config.push(IpamConfig {
            subnet: Some(s6.to_string()),
            ip_range: x.ip_range6.map(|r| r.to_string()),
            gateway: x.gateway6.map(|g| g.to_string()),
            auxiliary_addresses: aux(true),
        });
    }
    let options = crate::api::bridge_options::shown(x);
    let containers = endpoints
        .iter()
        .map(|e| {
            let res = EndpointResource {
                name: String::new(),
                endpoint_id: e.host_ifname.clone(),
                mac_address: e.mac.clone(),
                ipv4_address: format!("{}/{}", e.address, x.subnet.prefix()),
                ipv6_address: match (e.address6, x.subnet6) {
                    (Some(a), Some(s)) => format!("{a}/{}", s.prefix()),
                    _ => String::new(),
                },
            };
            (e.container.clone(), res)
        })
        .collect();
    Network {
        name: x.name.clone(),
        id: x.id.clone(),
        created: humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(x.created))
            .to_string(),
        scope: "local".into(),
        driver: "bridge".into(),
        enable_ipv4: true,
        enable_ipv6: x.subnet6.is_some(),
        ipam: Ipam {
            config,
            ..Ipam::default()
        },
        internal: x.internal,
        attachable: false,
        ingress: false,
        containers,
        options,
        labels: x.labels.clone(),
        endpoints,
        conflicts,
        created_unix: x.created,
    }
}

/// `GET /v1/networks`: every network, by name.
pub async fn list(n: &Netd) -> Vec<Network> {
    let st = n.state().await;
    let mut conflicts = conflicts(n).await;
    n.networks()
        .await
        .iter()
        .map(|x| {
            let eps = st.endpoints_of(&x.id).cloned().collect();
            network_of(x, eps, conflicts.remove(&x.name).unwrap_or_default())
        })
        .collect()
}

/// `GET /v1/networks/{key}`: one network by name, id or id prefix.
pub async fn inspect(n: &Netd, key: &str) -> Result<Network, ApiError> {
    let st = n.state().await;
    let Some(x) = st.find_network(key) else {
        return Err(netd_error(&NetdError::NoNetwork { key: key.into() }));
    };
    let eps = st.endpoints_of(&x.id).cloned().collect();
    let mut conflicts = conflicts(n).await;
    Ok(network_of(
        x,
        eps,
        conflicts.remove(&x.name).unwrap_or_default(),
    ))
}

/// `DELETE /v1/networks/{key}`.
pub async fn remove(n: &Netd, key: &str) -> Result<NetworkDeleted, ApiError> {
    let x = n.remove_network(key).await.map_err(|e| netd_error(&e))?;
    Ok(NetworkDeleted {
        id: x.id,
        name: x.name,
    })
}

/// `POST /v1/networks/prune`: every network without endpoints goes; stops at the first
/// failure other than "in use".
pub async fn prune(n: &Netd) -> NetworkPruneResponse {
    prune_matching(n, |_| true).await
}

/// [`prune`] of the networks `picked` picks (Docker's prune filters, its predefined
/// `bridge` spared).
pub async fn prune_matching(
    n: &Netd,
    picked: impl Fn(&NetworkSpec) -> bool,
) -> NetworkPruneResponse {
    let mut out = NetworkPruneResponse::default();
    for x in n.networks().await.into_iter().filter(|x| picked(x)) {
        match n.remove_network(&x.id).await {
            Ok(_) => out.networks_deleted.push(x.name),
            Err(NetdError::NetworkInUse { .. }) => {}
            Err(e) => {
                out.error = Some(format!(
                    "cannot remove network {}: {}",
                    x.name,
                    error_chain(&e)
                ));
                break;
            }
        }
    }
    out
}

/// `POST /v1/networks/{network}/connect`: joins the namespace the request names.
pub async fn connect(
    n: &Netd,
    network: &str,
    req: NetworkConnectRequest,
) -> Result<NetworkConnectResponse, ApiError> {
    let netns = match (req.netns, req.pid) {
        (Some(p), _) => NetnsRef::Path(p),
        (None, Some(pid)) => NetnsRef::Pid(pid),
        (None, None) => return Err(ApiError::invalid("give --netns PATH or --pid PID")),
    };
    let cfg = req.endpoint_config;
    let link_local_ips = cfg
        .ipam_config
        .as_ref()
        .map(|c| c.link_local_ips.clone())
        .unwrap_or_default();
    let endpoints = n
        .attach(
            &req.container,
            netns,
            vec![EndpointRequest {
                network: network.to_string(),
                ipv4_address: cfg.ipam_config.and_then(|c| c.ipv4_address),
                ipv6_address: None,
                mac_address: cfg.mac_address,
                priority: 0,
                aliases: cfg.aliases,
                ports: req.ports,
                interface_name: None,
                link_local_ips,
                gw_priority: 0,
                sysctls: Vec::new(),
            }],
        )
        .await
        .map_err(|e| {
            netd_error(&e).context(format!(
                "cannot connect {} to network {network}",
                req.container
            ))
        })?;
    Ok(NetworkConnectResponse { endpoints })
}

/// `POST /v1/networks/{network}/disconnect`.
pub async fn disconnect(
    n: &Netd,
    network: &str,
    req: NetworkDisconnectRequest,
) -> Result<(), ApiError> {
    n.detach(&req.container, Some(network)).await.map_err(|e| {
        netd_error(&e).context(format!(
            "cannot disconnect {} from network {network}",
            req.container
        ))
    })
}

/// `POST /v1/networks/reconcile`: repairs kernel state from the recorded networks.
pub async fn reconcile(n: &Netd) -> ReconcileResponse {
    let r = n.reconcile().await;
    ReconcileResponse {
        repairs: r
            .repairs
            .iter()
            .map(|x| Repair {
                what: x.what.clone(),
                duration: x.duration,
            })
            .collect(),
        errors: r.errors.clone(),
        conflicts: r.conflicts.iter().map(|c| c.to_string()).collect(),
        duration: r.duration,
    }
}

#[cfg(test)]
mod tests;
