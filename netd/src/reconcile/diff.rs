//! Reconcile's second step, pure: the desired state against what was observed, into the list
//! of repairs that would make the kernel match again ([`diff`]). No I/O here, so every case
//! is golden-tested without root below (repairs compared as their report text).

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::desired::{self, Desired};
use crate::firewall::{self, Fingerprint, Ruleset, Ruleset6};
use crate::links::Link;
use crate::state::{Endpoint, NetworkSpec, State};

use super::observe::{Inside, Namespace, Observed};

/// How a bridge differs from its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BridgeDrift {
    /// No such interface.
    Missing,
    /// Present but down.
    Down,
    /// Up, without its gateway address (IPv4 or IPv6).
    LostAddress,
}

/// How a veth's host end differs from its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VethDrift {
    /// On its bridge but down.
    Down,
    /// Not on its bridge (pulled off, or the bridge was recreated).
    OffBridge,
    /// On its bridge and up, but not isolated on a network with `enable_icc=false`.
    NotIsolated,
}

/// How one of berth's nftables tables differs from its ruleset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableDrift {
    /// As wanted (or absent and not wanted).
    Intact,
    /// Wanted but absent.
    Missing,
    /// Present with other chains or rules: (chains, rules) seen and wanted.
    Differs {
        /// Chains and rules found.
        seen: (usize, usize),
        /// Chains and rules wanted (0/0 when the table should not exist).
        want: (usize, usize),
    },
}

impl TableDrift {
    fn of(seen: Option<&Fingerprint>, want: Option<&Fingerprint>) -> Self {
        let size = |f: &Fingerprint| (f.chains.len(), f.rules.len());
        match (seen, want) {
            (a, b) if a == b => TableDrift::Intact,
            (None, Some(_)) => TableDrift::Missing,
            (Some(s), w) => TableDrift::Differs {
                seen: size(s),
                want: w.map(size).unwrap_or((0, 0)),
            },
            (None, None) => TableDrift::Intact,
        }
    }
}

/// A switch under `/proc/sys` forwarding needs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Switch {
    /// `net.ipv4.ip_forward`.
    Ipv4Forward,
    /// `net.ipv6.conf.all.forwarding`.
    Ipv6Forwarding,
}

impl Switch {
    /// Its path under `/proc/sys`.
    pub fn path(self) -> &'static str {
        match self {
            Switch::Ipv4Forward => "net/ipv4/ip_forward",
            Switch::Ipv6Forwarding => "net/ipv6/conf/all/forwarding",
        }
    }
}

/// One repair the diff asks for; the apply step carries it out. Its text (`Display`) is what
/// the report says when it worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOp {
    /// Make the bridge present, up and addressed.
    Bridge {
        network: NetworkSpec,
        drift: BridgeDrift,
    },
    /// Put the veth's host end (`index`) on its bridge, up.
    Veth {
        endpoint: Endpoint,
        network: NetworkSpec,
        index: u32,
        drift: VethDrift,
    },
    /// The veth pair is gone while the namespace lives: make it again.
    RecreateVeth {
        endpoint: Endpoint,
        network: NetworkSpec,
    },
    /// The container's end is gone from its namespace (renamed or moved away) while the host
    /// end lives: delete the host end and make the pair again.
    RecreateInside {
        endpoint: Endpoint,
        network: NetworkSpec,
    },
    /// Bring the container's interface up with its address and default route (and `lo` up).
    RestoreInside {
        endpoint: Endpoint,
        network: NetworkSpec,
        wrong: Vec<&'static str>,
        fix_lo: bool,
    },
    /// Restore the container's IPv6 address or default route alone.
    RestoreInside6 {
        endpoint: Endpoint,
        network: NetworkSpec,
    },
    /// Make the MTU of the bridge and its endpoints follow the uplink.
    Mtu {
        network: NetworkSpec,
        from: u32,
        to: u32,
        endpoints: Vec<Endpoint>,
    },
    /// Set the IPv4 GSO limit of these endpoints to match the uplinks.
    Gso {
        network: NetworkSpec,
        endpoints: Vec<Endpoint>,
        to: u32,
    },
    /// The endpoint's namespace is gone: forget it.
    Forget { endpoint: Endpoint },
    /// Rewrite berth's tables (the `ip6` one with the `ip` one when it drifted).
    Firewall {
        table: String,
        ip: TableDrift,
        ip6: TableDrift,
        rules: Ruleset,
        rules6: Ruleset6,
    },
    /// Turn a forwarding switch on.
    Sysctl(Switch),
    /// Restore berth's accepts in Docker's DOCKER-USER chain of `family` (for `berth-*` and
    /// the bridges in `named`, which the user named).
    DockerUser {
        family: &'static str,
        named: Vec<String>,
    },
    /// Drop masqueraded flows through an egress address the host no longer has.
    FlushConntrack { addr: Ipv4Addr },
}

impl RepairOp {
    /// The network whose bridge an endpoint repair needs (skipped when that bridge could not
    /// be repaired).
    pub fn needs_bridge(&self) -> Option<&NetworkSpec> {
        match self {
            RepairOp::Veth { network, .. }
            | RepairOp::RecreateVeth { network, .. }
            | RepairOp::RecreateInside { network, .. }
            | RepairOp::RestoreInside { network, .. }
            | RepairOp::RestoreInside6 { network, .. } => Some(network),
            _ => None,
        }
    }

    /// The container namespace a repair works inside, if it is one of those run per
    /// namespace.
    pub fn inside(&self) -> Option<PathBuf> {
        match self {
            RepairOp::RecreateInside { endpoint, .. }
            | RepairOp::RestoreInside { endpoint, .. }
            | RepairOp::RestoreInside6 { endpoint, .. } => Some(endpoint.netns.path()),
            _ => None,
        }
    }
}

impl fmt::Display for RepairOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RepairOp::Bridge { network: n, drift } => match drift {
                BridgeDrift::Missing => write!(
                    f,
                    "bridge {} of network {} was missing: recreated",
                    n.bridge, n.name
                ),
                BridgeDrift::Down => {
                    write!(
                        f,
                        "bridge {} of network {} was down: set up",
                        n.bridge, n.name
                    )
                }
                BridgeDrift::LostAddress => write!(
                    f,
                    "bridge {} of network {} lost its address: re-added",
                    n.bridge, n.name
                ),
            },
            RepairOp::Veth {
                endpoint: e,
                network: n,
                drift,
                ..
            } => match drift {
                VethDrift::Down => write!(
                    f,
                    "veth {} of container {} on bridge {} was down: set up",
                    e.host_ifname, e.container, n.bridge
                ),
                VethDrift::OffBridge => write!(
                    f,
                    "veth {} of container {} was off bridge {}: re-attached",
                    e.host_ifname, e.container, n.bridge
                ),
                VethDrift::NotIsolated => write!(
                    f,
                    "veth {} of container {} on bridge {} was not isolated (enable_icc=false): isolated",
                    e.host_ifname, e.container, n.bridge
                ),
            },
            RepairOp::RecreateVeth {
                endpoint: e,
                network: n,
            } => write!(
                f,
                "veth {} of container {} on network {} was missing: recreated",
                e.host_ifname, e.container, n.name
            ),
            RepairOp::RecreateInside { endpoint: e, .. } => write!(
                f,
                "{} of container {} was gone from its namespace: veth {} recreated",
                e.ifname, e.container, e.host_ifname
            ),
            RepairOp::RestoreInside {
                endpoint: e, wrong, ..
            } => write!(
                f,
                "{} ({}) of container {} {}: restored",
                e.ifname,
                e.address,
                e.container,
                wrong.join(", ")
            ),
            RepairOp::RestoreInside6 { endpoint: e, .. } => write!(
                f,
                "{} ({:?}) of container {} had lost its IPv6 address or route: restored",
                e.ifname, e.address6, e.container
            ),
            RepairOp::Mtu {
                network, from, to, ..
            } => write!(
                f,
                "network {} MTU {from} did not follow the egress interface: set to {to}",
                network.name
            ),
            RepairOp::Gso {
                network,
                endpoints,
                to,
            } => write!(
                f,
                "network {}: IPv4 GSO limit of {} endpoint(s) set to {to} to match the uplinks",
                network.name,
                endpoints.len()
            ),
            RepairOp::Forget { endpoint: e } => write!(
                f,
                "namespace {} of container {} is gone: endpoint {} forgotten",
                e.netns.path().display(),
                e.container,
                e.host_ifname
            ),
            RepairOp::Firewall { table, ip, ip6, .. } => {
                let mut what = Vec::new();
                match ip {
                    TableDrift::Intact => {}
                    TableDrift::Missing => {
                        what.push(format!("nft table ip {table} was missing: restored"))
                    }
                    TableDrift::Differs { seen, want } => what.push(format!(
                        "nft table ip {table} differed ({} chains/{} rules, want {}/{}): rewritten",
                        seen.0, seen.1, want.0, want.1
                    )),
                }
                match ip6 {
                    TableDrift::Intact => {}
                    TableDrift::Missing => {
                        what.push(format!("nft table ip6 {table} was missing: restored"))
                    }
                    TableDrift::Differs { .. } => {
                        what.push(format!("nft table ip6 {table} differed: rewritten"))
                    }
                }
                f.write_str(&what.join("; "))
            }
            RepairOp::Sysctl(Switch::Ipv4Forward) => {
                f.write_str("net.ipv4.ip_forward was 0: set to 1")
            }
            RepairOp::Sysctl(Switch::Ipv6Forwarding) => {
                f.write_str("net.ipv6.conf.all.forwarding was 0: set to 1")
            }
            RepairOp::DockerUser { family: "ip", .. } => {
                f.write_str("DOCKER-USER accept for berth bridges: restored")
            }
            RepairOp::DockerUser { family, .. } => {
                write!(f, "{family} DOCKER-USER accept for berth bridges: restored")
            }
            RepairOp::FlushConntrack { addr } => {
                write!(f, "egress address {addr} went away: flush conntrack")
            }
        }
    }
}

/// The repairs that make the kernel (`seen`) match `want`, in the order they must run:
/// bridges, host veth ends, the insides of the containers (grouped by namespace), MTU and
/// GSO limits, stale endpoints, berth's tables and forwarding, stale NAT flows.
pub fn diff(want: &Desired<'_>, seen: &Observed) -> Vec<RepairOp> {
    let state = want.state;
    let by_name: BTreeMap<&str, &Link> = seen.links.iter().map(|l| (l.name.as_str(), l)).collect();
    let mut ops = Vec::new();

    // Bridges, and the index each one has now (none when it is missing).
    let mut bridge_idx: BTreeMap<&str, Option<u32>> = BTreeMap::new();
    for n in state.networks.values() {
        let cur = by_name.get(n.bridge.as_str());
        bridge_idx.insert(&n.bridge, cur.map(|l| l.index));
        let drift = match cur {
            None => BridgeDrift::Missing,
            Some(l) if !l.up => BridgeDrift::Down,
            Some(l) => {
                let v4 = seen
                    .addrs
                    .iter()
                    .any(|a| a.index == l.index && a.ip == n.gateway);
                let v6 = n
                    .gateway6
                    .is_none_or(|g6| seen.addrs6.iter().any(|a| a.index == l.index && a.ip == g6));
                if v4 && v6 {
                    continue;
                }
                BridgeDrift::LostAddress
            }
        };
        ops.push(RepairOp::Bridge {
            network: n.clone(),
            drift,
        });
    }

    // Host ends. An endpoint whose namespace is gone (its container died without a detach)
    // took its veth with it: it is forgotten, not recreated.
    let mut stale: Vec<&Endpoint> = Vec::new();
    let mut inside: BTreeMap<PathBuf, Vec<(&Endpoint, &NetworkSpec)>> = BTreeMap::new();
    for e in &state.endpoints {
        let Some(n) = state.networks.get(&e.network) else {
            continue;
        };
        let path = e.netns.path();
        if seen.namespaces.get(&path) == Some(&Namespace::Gone) {
            stale.push(e);
            continue;
        }
        let br = bridge_idx.get(n.bridge.as_str()).copied().flatten();
        match by_name.get(e.host_ifname.as_str()) {
            Some(l)
                if br.is_some()
                    && l.controller == br
                    && l.up
                    && (!n.options.no_icc || l.isolated == Some(true)) =>
            {
                inside.entry(path).or_default().push((e, n));
            }
            Some(l) => {
                let drift = if br.is_some() && l.controller == br && l.up {
                    VethDrift::NotIsolated
                } else if br.is_some() && l.controller == br {
                    VethDrift::Down
                } else {
                    VethDrift::OffBridge
                };
                ops.push(RepairOp::Veth {
                    endpoint: e.clone(),
                    network: n.clone(),
                    index: l.index,
                    drift,
                });
                inside.entry(path).or_default().push((e, n));
            }
            None => ops.push(RepairOp::RecreateVeth {
                endpoint: e.clone(),
                network: n.clone(),
            }),
        }
    }

    // Inside the containers: the endpoint up with its address, the default route, lo up.
    for (path, eps) in &inside {
        if let Some(Namespace::Seen(ins)) = seen.namespaces.get(path) {
            diff_inside(ins, eps, &mut ops);
        }
    }

    // MTU follows the uplink for networks that did not set one (a VPN or a different uplink
    // can change it).
    let mtu = want.default_mtu.or(seen.uplink_mtu).unwrap_or(0);
    for n in state.networks.values().filter(|n| n.mtu.is_none()) {
        let Some(br) = by_name.get(n.bridge.as_str()) else {
            continue;
        };
        if mtu == 0 || br.mtu == mtu {
            continue;
        }
        ops.push(RepairOp::Mtu {
            network: n.clone(),
            from: br.mtu,
            to: mtu,
            endpoints: state
                .endpoints_of(&n.id)
                .filter(|e| !stale.contains(e))
                .cloned()
                .collect(),
        });
    }

    // IPv4 GSO limit of egress networks' veths: BIG TCP only while every uplink takes it.
    if let Some(gso) = seen.veth_gso {
        for n in state.networks.values().filter(|n| !n.internal) {
            let off: Vec<Endpoint> = state
                .endpoints_of(&n.id)
                .filter(|e| !stale.contains(e))
                .filter(|e| {
                    by_name
                        .get(e.host_ifname.as_str())
                        .is_some_and(|l| l.gso_ipv4_max.is_some_and(|g| g != gso))
                })
                .cloned()
                .collect();
            if !off.is_empty() {
                ops.push(RepairOp::Gso {
                    network: n.clone(),
                    endpoints: off,
                    to: gso,
                });
            }
        }
    }

    for e in &stale {
        ops.push(RepairOp::Forget {
            endpoint: (*e).clone(),
        });
    }

    // berth's tables (for the state without the stale endpoints) and forwarding.
    if let Some(fw) = seen
        .firewall
        .as_ref()
        .filter(|_| !state.networks.is_empty())
    {
        let kept = State {
            networks: state.networks.clone(),
            endpoints: state
                .endpoints
                .iter()
                .filter(|e| !stale.contains(e))
                .cloned()
                .collect(),
        };
        let rules = desired::ruleset(&kept);
        let rules6 = desired::ruleset6(&kept);
        let want4 = firewall::expected(&rules);
        let want6 = firewall::expected6(&rules6);
        let ip = TableDrift::of(fw.ip.as_ref(), Some(&want4));
        let ip6 = TableDrift::of(fw.ip6.as_ref(), want6.as_ref());
        if ip != TableDrift::Intact || ip6 != TableDrift::Intact {
            ops.push(RepairOp::Firewall {
                table: want.table.to_string(),
                ip,
                ip6,
                rules,
                rules6,
            });
        }
        if want6.is_some() && !fw.ipv6_forwarding {
            ops.push(RepairOp::Sysctl(Switch::Ipv6Forwarding));
        }
        let named = desired::named_bridges(want.state, false);
        if fw
            .docker_user
            .as_ref()
            .is_some_and(|d| d.needs_change(true, &named))
        {
            ops.push(RepairOp::DockerUser {
                family: "ip",
                named,
            });
        }
        let named6 = desired::named_bridges(want.state, true);
        if want6.is_some()
            && fw
                .docker_user6
                .as_ref()
                .is_some_and(|d| d.needs_change(true, &named6))
        {
            ops.push(RepairOp::DockerUser {
                family: "ip6",
                named: named6,
            });
        }
        if !fw.ip_forward {
            ops.push(RepairOp::Sysctl(Switch::Ipv4Forward));
        }
    }

    // Masqueraded flows through an egress address that went away.
    if state.networks.values().any(|n| !n.internal) {
        for addr in want.last_egress.difference(&seen.egress) {
            ops.push(RepairOp::FlushConntrack { addr: *addr });
        }
    }
    ops
}

/// The repairs inside one container namespace, for its endpoints whose host end is (or is
/// about to be) on its bridge.
fn diff_inside(ins: &Inside, eps: &[(&Endpoint, &NetworkSpec)], ops: &mut Vec<RepairOp>) {
    let lo_down = ins.links.iter().any(|l| l.index == 1 && !l.up);
    for (i, (e, n)) in eps.iter().enumerate() {
        let (endpoint, network) = ((*e).clone(), (*n).clone());
        let Some(l) = ins.links.iter().find(|l| l.name == e.ifname) else {
            ops.push(RepairOp::RecreateInside { endpoint, network });
            continue;
        };
        let mut wrong = Vec::new();
        if !l.up {
            wrong.push("was down");
        }
        if !ins
            .addrs
            .iter()
            .any(|a| a.index == l.index && a.ip == e.address)
        {
            wrong.push("had lost its address");
        }
        let has = |a: &std::net::IpAddr| match a {
            std::net::IpAddr::V4(v4) => ins.addrs.iter().any(|x| x.index == l.index && x.ip == *v4),
            std::net::IpAddr::V6(v6) => {
                ins.addrs6.iter().any(|x| x.index == l.index && x.ip == *v6)
            }
        };
        if !e.link_local_ips.iter().all(has) {
            wrong.push("had lost a link_local_ips address");
        }
        if !e.sysctls.iter().all(|(k, v)| {
            ins.sysctls
                .get(&crate::sysctl::interface_path(k, &e.ifname))
                == Some(v)
        }) {
            wrong.push("had an interface sysctl changed");
        }
        if e.default_route
            && !ins
                .routes
                .iter()
                .any(|r| r.dst.prefix() == 0 && r.gateway == Some(n.gateway))
        {
            wrong.push("had lost the default route");
        }
        let fix_lo = lo_down && i == 0;
        if fix_lo {
            wrong.push("had loopback down");
        }
        if !wrong.is_empty() {
            ops.push(RepairOp::RestoreInside {
                endpoint,
                network,
                wrong,
                fix_lo,
            });
            continue;
        }
        // IPv6 alone (its address or default route went).
        if let (Some(a6), Some(_)) = (e.address6, n.subnet6) {
            let has_addr = ins.addrs6.iter().any(|x| x.index == l.index && x.ip == a6);
            let has_route = !e.default_route
                || n.gateway6
                    .is_none_or(|g6| ins.default_gateways6.contains(&g6));
            if !has_addr || !has_route {
                ops.push(RepairOp::RestoreInside6 { endpoint, network });
            }
        }
    }
}

#[cfg(test)]
mod tests;
