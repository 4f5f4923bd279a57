//! What the kernel should hold, derived from netd's state alone (pure): the nftables rulesets
//! of both families, and the [`Desired`] view that reconcile's diff compares with what it
//! observed.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use crate::firewall::{FwNetwork, FwPort, Ruleset};
use crate::firewall6::{FwNetwork6, FwPort6, Ruleset6};
use crate::state::State;

/// Everything reconcile wants the kernel to match: the state, plus what netd remembers of the
/// host and its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Desired<'a> {
    /// Networks and endpoints.
    pub state: &'a State,
    /// The host's egress addresses at the previous reconcile (masqueraded flows through one
    /// that went away are stale).
    pub last_egress: &'a BTreeSet<Ipv4Addr>,
    /// The configured MTU of networks that set none; `None` follows the uplink.
    pub default_mtu: Option<u32>,
    /// berth's nftables table name (both families).
    pub table: &'a str,
}

/// The `ip` ruleset the state asks for.
pub fn ruleset(state: &State) -> Ruleset {
    let mut rs = Ruleset {
        networks: state
            .networks
            .values()
            .map(|n| FwNetwork {
                bridge: n.bridge.clone(),
                subnet: n.subnet,
                internal: n.internal,
                gateway: n.gateway,
            })
            .collect(),
        ports: Vec::new(),
    };
    for e in &state.endpoints {
        let Some(n) = state.networks.get(&e.network) else {
            continue;
        };
        if n.internal {
            continue;
        }
        for p in &e.ports {
            let host_ip = match p.host_ip {
                None => None,
                Some(IpAddr::V4(a)) if a.is_unspecified() => None,
                Some(IpAddr::V4(a)) => Some(a),
                Some(IpAddr::V6(_)) => continue,
            };
            for (h, c) in p.pairs() {
                rs.ports.push(FwPort {
                    proto: p.protocol,
                    host_ip,
                    host_port: h,
                    dest: e.address,
                    dest_port: c,
                });
            }
        }
    }
    rs
}

/// The `ip6` ruleset the state asks for (empty without IPv6 networks).
pub fn ruleset6(state: &State) -> Ruleset6 {
    let mut rs = Ruleset6 {
        networks: state
            .networks
            .values()
            .filter_map(|n| {
                Some(FwNetwork6 {
                    bridge: n.bridge.clone(),
                    subnet: n.subnet6?,
                    internal: n.internal,
                    gateway: n.gateway6,
                })
            })
            .collect(),
        ports: Vec::new(),
    };
    for e in &state.endpoints {
        let (Some(n), Some(dest)) = (state.networks.get(&e.network), e.address6) else {
            continue;
        };
        if n.internal {
            continue;
        }
        for p in &e.ports {
            let host_ip = match p.host_ip {
                None => None,
                Some(IpAddr::V6(a)) if a.is_unspecified() => None,
                Some(IpAddr::V6(a)) if !a.is_loopback() => Some(a),
                Some(_) => continue,
            };
            for (h, c) in p.pairs() {
                rs.ports.push(FwPort6 {
                    proto: p.protocol,
                    host_ip,
                    host_port: h,
                    dest,
                    dest_port: c,
                });
            }
        }
    }
    rs
}
