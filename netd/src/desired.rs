//! What the kernel should hold, derived from netd's state alone (pure): the nftables rulesets
//! of both families, and the [`Desired`] view that reconcile's diff compares with what it
//! observed.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use crate::firewall::{Family, FwNetwork, FwPort, Ruleset, Ruleset6};
use crate::ipnet::{Address, IpNet};
use crate::state::{Endpoint, NetworkSpec, State};

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

/// The bridges whose names the user gave (not `berth-*`), of every network (`v6`: of the
/// IPv6 ones), for the rules that must name each bridge.
pub fn named_bridges(state: &State, v6: bool) -> Vec<String> {
    state
        .networks
        .values()
        .filter(|n| !v6 || n.subnet6.is_some())
        .map(|n| n.bridge.clone())
        .filter(|b| !b.starts_with(crate::names::BRIDGE_PREFIX))
        .collect()
}

/// The `ip` ruleset the state asks for.
pub fn ruleset(state: &State) -> Ruleset {
    ruleset_of(
        state,
        |n| Some((n.subnet, Some(n.gateway))),
        |e| Some(e.address),
    )
}

/// The `ip6` ruleset the state asks for (empty without IPv6 networks).
pub fn ruleset6(state: &State) -> Ruleset6 {
    ruleset_of(state, |n| Some((n.subnet6?, n.gateway6)), |e| e.address6)
}

/// The ruleset of family `F`: the networks that have a side in it (`side`: subnet and
/// gateway), and the published ports of their endpoints that have an address in it (`addr`)
/// and a host address of the family or none. A port on a loopback address is kept only where
/// the family has host-local clients (IPv4's 127.0.0.1; IPv6's ::1 is refused at publish).
fn ruleset_of<F: Family>(
    state: &State,
    side: impl Fn(&NetworkSpec) -> Option<(IpNet<F::Addr>, Option<F::Addr>)>,
    addr: impl Fn(&Endpoint) -> Option<F::Addr>,
) -> Ruleset<F> {
    let mut rs = Ruleset {
        networks: state
            .networks
            .values()
            .filter_map(|n| {
                let (subnet, gateway) = side(n)?;
                Some(FwNetwork {
                    bridge: n.bridge.clone(),
                    subnet,
                    internal: n.internal,
                    gateway,
                    masquerade: !n.options.no_masquerade,
                })
            })
            .collect(),
        ports: Vec::new(),
    };
    for e in &state.endpoints {
        let (Some(n), Some(dest)) = (state.networks.get(&e.network), addr(e)) else {
            continue;
        };
        if n.internal || side(n).is_none() {
            continue;
        }
        for p in &e.ports {
            let host_ip = match p.host_ip.map(F::Addr::from_ip) {
                None => None,
                Some(Some(a)) if a.is_unspecified_addr() => None,
                Some(Some(a)) if F::LOOPBACK_CLIENTS || !a.is_loopback_addr() => Some(a),
                Some(_) => continue,
            };
            for (h, c) in p.pairs() {
                rs.ports.push(FwPort {
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
