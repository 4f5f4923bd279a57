//! A berth network's subnet against the host's routes and addresses, re-checked on every
//! reconcile: IPAM keeps a new network off what the host has at creation, but the host moves
//! (a laptop joins a Wi-Fi whose LAN is 10.201.3.0/24, a VPN pushes 10.0.0.0/8). The bridge
//! then shadows that LAN, or the LAN shadows the bridge, and nothing says so (docker/for-linux
//! #1110). netd cannot fix this alone (renumbering would cut every container's connections),
//! so it reports each overlap for the user to decide.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv6Addr;

use futures::TryStreamExt;
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteType};

use serde::{Deserialize, Serialize};

use crate::ipam::Ipv4Net;
use crate::ipam6::Ipv6Net;
use crate::links::{Addr, Addr6, Link, Route};
use crate::state::State;

/// Whether the overlapping thing is an address of the host or a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ConflictKind {
    /// The host has an address inside (or around) the subnet on another interface: the LAN
    /// it is on overlaps the network.
    Address,
    /// A host route (LAN, VPN) to a destination overlapping the subnet.
    Route,
}

/// One berth network whose subnet overlaps a host route or address that is not berth's.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct SubnetConflict {
    /// The network's name.
    pub network: String,
    /// Its subnet (IPv4 or IPv6), as text.
    pub subnet: String,
    /// Address or route.
    pub kind: ConflictKind,
    /// The host's address (`ADDR/LEN`) or route destination, as text.
    pub host: String,
    /// The host interface it is on (`ifindex N` when the name is unknown; empty for a route
    /// without an output interface).
    pub interface: String,
}

impl fmt::Display for SubnetConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            ConflictKind::Address => "host address",
            ConflictKind::Route => "host route",
        };
        let on = if self.interface.is_empty() {
            String::new()
        } else {
            format!(" on {}", self.interface)
        };
        write!(
            f,
            "network {} ({}) overlaps {what} {}{on}: containers on {} cannot reach that part of the host's network (and the host may send it to berth's bridge); recreate network {} with another subnet (berth network rm, then berth network create --subnet ..., or change the compose file's ipam subnet)",
            self.network, self.subnet, self.host, self.network, self.network
        )
    }
}

/// An IPv6 route of the main table, as far as the conflict check needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route6 {
    /// Destination prefix.
    pub dst: Ipv6Net,
    /// Next hop.
    pub gateway: Option<Ipv6Addr>,
    /// Output interface.
    pub oif: Option<u32>,
}

/// Unicast IPv6 routes of the main table (an error ends the list early: the check reports,
/// it never repairs, so a partial list only misses a conflict until the next reconcile).
pub async fn list_routes6(h: &rtnetlink::Handle) -> Vec<Route6> {
    let msg = rtnetlink::RouteMessageBuilder::<Ipv6Addr>::new().build();
    let mut s = h.route().get(msg).execute();
    let mut out = Vec::new();
    while let Ok(Some(m)) = s.try_next().await {
        if m.header.kind != RouteType::Unicast {
            continue;
        }
        let mut table = m.header.table as u32;
        let (mut dst, mut gateway, mut oif) = (Ipv6Addr::UNSPECIFIED, None, None);
        for a in &m.attributes {
            match a {
                RouteAttribute::Destination(RouteAddress::Inet6(d)) => dst = *d,
                RouteAttribute::Gateway(RouteAddress::Inet6(g)) => gateway = Some(*g),
                RouteAttribute::Oif(i) => oif = Some(*i),
                RouteAttribute::Table(t) => table = *t,
                _ => {}
            }
        }
        if table != 254 {
            continue;
        }
        if let Ok(dst) = Ipv6Net::new(dst, m.header.destination_prefix_length) {
            out.push(Route6 { dst, gateway, oif });
        }
    }
    out
}

/// Every overlap of a network of `state` with the host's routes (main table) and addresses
/// that are not on berth's bridges (`ours`: their ifindexes). Routes of prefix 0 and 1 are
/// left out: a default route, or one split in two halves (OpenVPN's `def1`), covers
/// everything and is not a network to shadow. An address's own connected route is reported
/// once, as the address. Sorted, without duplicates.
pub fn find(
    state: &State,
    ours: &BTreeSet<u32>,
    links: &[Link],
    routes: &[Route],
    addrs: &[Addr],
    addrs6: &[Addr6],
    routes6: &[Route6],
) -> Vec<SubnetConflict> {
    let ifname = |i: u32| {
        links
            .iter()
            .find(|l| l.index == i)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("ifindex {i}"))
    };
    let mut out = BTreeSet::new();
    for n in state.networks.values() {
        let mut addr_ifs = BTreeSet::new();
        for a in addrs
            .iter()
            .filter(|a| !ours.contains(&a.index) && !a.ip.is_loopback())
        {
            let Ok(net) = Ipv4Net::new(a.ip, a.prefix) else {
                continue;
            };
            if net.overlaps(&n.subnet) {
                addr_ifs.insert(a.index);
                out.insert(SubnetConflict {
                    network: n.name.clone(),
                    subnet: n.subnet.to_string(),
                    kind: ConflictKind::Address,
                    host: format!("{}/{}", a.ip, a.prefix),
                    interface: ifname(a.index),
                });
            }
        }
        for r in routes.iter().filter(|r| r.dst.prefix() > 1) {
            if r.oif
                .is_some_and(|i| ours.contains(&i) || addr_ifs.contains(&i))
                || !r.dst.overlaps(&n.subnet)
            {
                continue;
            }
            out.insert(SubnetConflict {
                network: n.name.clone(),
                subnet: n.subnet.to_string(),
                kind: ConflictKind::Route,
                host: match r.gateway {
                    Some(g) => format!("{} via {g}", r.dst),
                    None => r.dst.to_string(),
                },
                interface: r.oif.map(ifname).unwrap_or_default(),
            });
        }
        let Some(s6) = n.subnet6 else {
            continue;
        };
        let mut addr6_ifs = BTreeSet::new();
        for a in addrs6
            .iter()
            .filter(|a| !ours.contains(&a.index) && !a.ip.is_loopback())
        {
            if Ipv6Net::new(a.ip, a.prefix).is_ok_and(|net| net.overlaps(&s6)) {
                addr6_ifs.insert(a.index);
                out.insert(SubnetConflict {
                    network: n.name.clone(),
                    subnet: s6.to_string(),
                    kind: ConflictKind::Address,
                    host: format!("{}/{}", a.ip, a.prefix),
                    interface: ifname(a.index),
                });
            }
        }
        for r in routes6.iter().filter(|r| r.dst.prefix() > 1) {
            if r.oif
                .is_some_and(|i| ours.contains(&i) || addr6_ifs.contains(&i))
                || !r.dst.overlaps(&s6)
            {
                continue;
            }
            out.insert(SubnetConflict {
                network: n.name.clone(),
                subnet: s6.to_string(),
                kind: ConflictKind::Route,
                host: match r.gateway {
                    Some(g) => format!("{} via {g}", r.dst),
                    None => r.dst.to_string(),
                },
                interface: r.oif.map(ifname).unwrap_or_default(),
            });
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::NetworkSpec;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn net4(s: &str) -> Ipv4Net {
        s.parse().expect("net")
    }

    fn state() -> State {
        let mut st = State::default();
        st.networks.insert(
            "id1".into(),
            NetworkSpec {
                id: "id1".into(),
                name: "app".into(),
                bridge: "berth-00000001".into(),
                subnet: net4("10.201.3.0/24"),
                gateway: Ipv4Addr::new(10, 201, 3, 1),
                ip_range: None,
                internal: false,
                mtu: None,
                labels: Default::default(),
                created: 0,
                subnet6: Some(
                    Ipv6Net::new("fd00:b5e7:0:3::".parse().expect("v6"), 64).expect("v6"),
                ),
                gateway6: None,
                ip_range6: None,
                aux_addresses: Default::default(),
                options: Default::default(),
            },
        );
        st
    }

    fn link(index: u32, name: &str) -> Link {
        Link {
            index,
            name: name.into(),
            up: true,
            controller: None,
            mtu: 1500,
            kind: None,
            gso_ipv4_max: None,
            alias: None,
            isolated: None,
        }
    }

    fn route(dst: &str, gw: Option<Ipv4Addr>, oif: u32) -> Route {
        Route {
            dst: net4(dst),
            gateway: gw,
            oif: Some(oif),
            prefsrc: None,
            priority: 0,
        }
    }

    #[test]
    fn lan_on_the_same_subnet_is_one_address_conflict_naming_everything() {
        let st = state();
        let ours = BTreeSet::from([7]);
        let links = [link(2, "wlan0"), link(7, "berth-00000001")];
        let addrs = [
            Addr {
                index: 7,
                ip: Ipv4Addr::new(10, 201, 3, 1),
                prefix: 24,
            },
            Addr {
                index: 2,
                ip: Ipv4Addr::new(10, 201, 3, 57),
                prefix: 24,
            },
        ];
        let routes = [
            route("10.201.3.0/24", None, 7),
            route("10.201.3.0/24", None, 2),
            route("0.0.0.0/0", Some(Ipv4Addr::new(10, 201, 3, 254)), 2),
        ];
        let c = find(&st, &ours, &links, &routes, &addrs, &[], &[]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].kind, ConflictKind::Address);
        assert_eq!(
            (c[0].network.as_str(), c[0].subnet.as_str()),
            ("app", "10.201.3.0/24")
        );
        assert_eq!(
            (c[0].host.as_str(), c[0].interface.as_str()),
            ("10.201.3.57/24", "wlan0")
        );
        let text = c[0].to_string();
        for part in [
            "network app",
            "10.201.3.0/24",
            "10.201.3.57/24",
            "wlan0",
            "recreate",
        ] {
            assert!(text.contains(part), "{text}");
        }
    }

    #[test]
    fn vpn_routes_count_but_default_halves_do_not() {
        let st = state();
        let ours = BTreeSet::from([7]);
        let links = [link(5, "tun0")];
        let routes = [
            route("0.0.0.0/1", None, 5),
            route("128.0.0.0/1", None, 5),
            route("10.0.0.0/8", Some(Ipv4Addr::new(172, 16, 0, 1)), 5),
            route("10.202.0.0/16", None, 5),
        ];
        let c = find(&st, &ours, &links, &routes, &[], &[], &[]);
        assert_eq!(c.len(), 1, "{c:?}");
        assert_eq!(c[0].kind, ConflictKind::Route);
        assert_eq!(c[0].host, "10.0.0.0/8 via 172.16.0.1");
        assert_eq!(c[0].interface, "tun0");
        assert!(find(&st, &ours, &links, &routes[..2], &[], &[], &[]).is_empty());
    }

    fn route6(dst: &str, oif: u32) -> Route6 {
        Route6 {
            dst: dst.parse().expect("v6 net"),
            gateway: None,
            oif: Some(oif),
        }
    }

    #[test]
    fn ipv6_addresses_and_routes_overlapping_the_ipv6_subnet() {
        let st = state();
        let a6 = |ip: &str, index| Addr6 {
            index,
            ip: ip.parse::<Ipv6Addr>().expect("v6"),
            prefix: 64,
        };
        let c = find(
            &st,
            &BTreeSet::from([7]),
            &[link(3, "eth1")],
            &[],
            &[],
            &[
                a6("fd00:b5e7:0:3::1", 7),
                a6("fd00:b5e7:0:3::99", 3),
                a6("fd00:1::1", 3),
            ],
            &[
                // The address's own connected route, and berth's: not reported again.
                route6("fd00:b5e7:0:3::/64", 3),
                route6("fd00:b5e7:0:3::/64", 7),
                // A VPN's ULA route covering it counts; the default route's halves do not.
                route6("fd00::/8", 9),
                route6("::/1", 9),
                route6("8000::/1", 9),
            ],
        );
        assert_eq!(c.len(), 2, "{c:?}");
        assert_eq!(
            (c[1].kind, c[1].host.as_str(), c[1].interface.as_str()),
            (ConflictKind::Route, "fd00::/8", "ifindex 9")
        );
        assert_eq!(
            (c[0].subnet.as_str(), c[0].interface.as_str()),
            ("fd00:b5e7:0:3::/64", "eth1")
        );
    }
}
