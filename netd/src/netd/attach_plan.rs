//! The deciding half of `attach`, pure: which networks, interface names, addresses (IPv4
//! and IPv6), MACs, default route and ports a container's new endpoints get, or why the
//! request is refused, from the state alone. The kernel is touched only after this said yes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{EndpointRequest, NetdError};
use crate::ipam;
use crate::ipam6;
use crate::names;
use crate::ports::PortError;
use crate::state::{Endpoint, NetnsRef, NetworkSpec, State};

/// Whether `name` can name a network interface: 1-15 bytes, none of them `/`, `:`, blank or
/// a control character, and not `.` or `..` (the kernel's rules, plus `:` for old tools).
pub(crate) fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name != "."
        && name != ".."
        && !name
            .bytes()
            .any(|b| b == b'/' || b == b':' || b <= b' ' || b == 0x7f)
}

/// The endpoints `container` (in `netns`) would get on the networks of `reqs` (sorted by
/// priority, highest first), each with its network; all requests valid or an error. Clashes
/// with host sockets are the caller's to check.
pub(crate) fn plan_attach(
    state: &State,
    container: &str,
    netns: &NetnsRef,
    reqs: &[EndpointRequest],
) -> Result<Vec<(Endpoint, NetworkSpec)>, NetdError> {
    let existing: Vec<&Endpoint> = state
        .endpoints
        .iter()
        .filter(|e| e.container == container)
        .collect();
    let mut used_if: BTreeSet<String> = existing.iter().map(|e| e.ifname.clone()).collect();
    // Names asked for are taken before any `ethN` is handed out.
    for name in reqs.iter().filter_map(|r| r.interface_name.as_ref()) {
        if !valid_ifname(name) {
            return Err(NetdError::BadInterfaceName {
                value: name.clone(),
            });
        }
        if !used_if.insert(name.clone()) {
            return Err(NetdError::InterfaceNameInUse {
                value: name.clone(),
            });
        }
    }
    let has_default = existing.iter().any(|e| e.default_route);
    // The default route's endpoint, as Docker 28 picks it: the highest gw_priority among the
    // non-internal networks; on ties a dual-stack network before an IPv4-only one, then the
    // network whose name sorts first.
    let gateway: Option<usize> = reqs
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            let n = state.find_network(&r.network).filter(|n| !n.internal)?;
            Some((i, r.gw_priority, n.subnet6.is_some(), n.name.as_str()))
        })
        .min_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.3.cmp(b.3)))
        .map(|(i, ..)| i);
    // Published ports go with the default route, as Docker publishes them through the
    // endpoint that gives the container its gateway: the first request's ports move there.
    let ports_to = gateway.filter(|g| !has_default && *g != 0);
    let mut planned: Vec<(Endpoint, NetworkSpec)> = Vec::new();
    let mut taken_by_net: BTreeMap<String, BTreeSet<Ipv4Addr>> = BTreeMap::new();
    let mut taken6_by_net: BTreeMap<String, BTreeMap<Ipv6Addr, String>> = BTreeMap::new();
    for (i, r) in reqs.iter().enumerate() {
        let requested: Vec<crate::ports::PortMapping> = match ports_to {
            Some(_) if i == 0 => Vec::new(),
            Some(g) if i == g => reqs[0].ports.iter().chain(&r.ports).cloned().collect(),
            _ => r.ports.clone(),
        };
        let n = state
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
        let taken = taken_by_net.entry(n.id.clone()).or_insert_with(|| {
            let aux = n.aux_addresses.values().filter_map(|a| match a {
                IpAddr::V4(a) => Some(*a),
                IpAddr::V6(_) => None,
            });
            state
                .endpoints_of(&n.id)
                .map(|e| e.address)
                .chain(aux)
                .collect()
        });
        let ipam_err = |source| NetdError::Ipam {
            name: n.name.clone(),
            source,
        };
        let address = match r.ipv4_address {
            Some(a) => {
                ipam::check_address(a, &n.subnet, n.gateway, taken, &n.name).map_err(ipam_err)?;
                a
            }
            None => {
                // An address whose derived MAC another endpoint already has (its
                // `mac_address`) is not handed out: the two would share a MAC.
                let mut avoid = taken.clone();
                avoid.extend(state.endpoints_of(&n.id).filter_map(|e| {
                    let m = names::parse_mac(&e.mac)?;
                    (m[..2] == [0x02, 0xb7]).then(|| Ipv4Addr::new(m[2], m[3], m[4], m[5]))
                }));
                ipam::allocate_address(&n.subnet, n.ip_range.as_ref(), n.gateway, &avoid, &n.name)
                    .map_err(ipam_err)?
            }
        };
        taken.insert(address);
        if n.internal && !requested.is_empty() {
            return Err(NetdError::InternalPorts { name: n.name });
        }
        let mac = match &r.mac_address {
            Some(m) => names::parse_mac(m).ok_or_else(|| NetdError::BadMac { value: m.clone() })?,
            None => names::endpoint_mac(address),
        };
        let mac_text = names::mac_string(&mac);
        if mac == names::endpoint_mac(n.gateway) {
            return Err(NetdError::GatewayMac {
                value: mac_text,
                network: n.name.clone(),
            });
        }
        if let Some(owner) = state.endpoints_of(&n.id).find(|e| {
            names::parse_mac(&e.mac).unwrap_or_else(|| names::endpoint_mac(e.address)) == mac
        }) {
            return Err(NetdError::MacInUse {
                value: mac_text,
                container: container.to_string(),
                network: n.name.clone(),
                owner: owner.container.clone(),
            });
        }
        // Ports that name no host address take the network's `host_binding_ipv4`.
        let ports: Vec<crate::ports::PortMapping> = requested
            .iter()
            .map(|p| {
                let mut p = p.clone();
                if p.host_ip.is_none()
                    && let Some(b) = n.options.host_binding_ipv4.filter(|b| !b.is_unspecified())
                {
                    p.host_ip = Some(IpAddr::V4(b));
                }
                p
            })
            .collect();
        for p in &ports {
            p.validate()?;
            for e in state.endpoints.iter().chain(planned.iter().map(|(e, _)| e)) {
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
        for a in &r.link_local_ips {
            let ok = match a {
                IpAddr::V4(v4) => v4.is_link_local(),
                IpAddr::V6(v6) => v6.is_unicast_link_local(),
            };
            if !ok {
                return Err(NetdError::NotLinkLocal {
                    network: n.name.clone(),
                    addr: *a,
                });
            }
        }
        for (k, v) in &r.sysctls {
            super::check_sysctl(k, v).map_err(|why| NetdError::BadEndpointSysctl {
                network: n.name.clone(),
                why,
            })?;
        }
        let prefix = n.options.iface_prefix.as_deref().unwrap_or("eth");
        let ifname = match &r.interface_name {
            Some(name) => name.clone(),
            None => (0..)
                .map(|i| format!("{prefix}{i}"))
                .find(|c| !used_if.contains(c))
                .unwrap_or_else(|| format!("{prefix}0")),
        };
        used_if.insert(ifname.clone());
        let default_route = !has_default && gateway == Some(i);
        for p in &ports {
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
                    state
                        .endpoints_of(&n.id)
                        .filter_map(|e| e.address6.map(|a| (a, e.container.clone())))
                        .chain(n.aux_addresses.iter().filter_map(|(h, a)| match a {
                            IpAddr::V6(a) => Some((*a, format!("(aux_addresses {h})"))),
                            IpAddr::V4(_) => None,
                        }))
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
                    what:
                        "an ipv6_address was given but the network has no IPv6 (enable_ipv6 is off)"
                            .into(),
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
                mac: mac_text,
                default_route,
                ports,
                aliases: r.aliases.clone(),
                address6,
                link_local_ips: r.link_local_ips.clone(),
                sysctls: r.sysctls.clone(),
            },
            n,
        ));
    }
    Ok(planned)
}

#[cfg(test)]
mod tests;
