//! Golden tests of the pure diff: hand-built desired and observed states, the repair list
//! compared as the text the report would show.

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use super::*;
use crate::firewall::DockerUserSeen;
use crate::links::{Addr, Addr6, Route};
use crate::ports::PortMapping;
use crate::reconcile::observe::FirewallSeen;
use crate::state::NetnsRef;

const NS1: &str = "/run/netns/c1";
const NS2: &str = "/run/netns/c2";

fn net() -> NetworkSpec {
    NetworkSpec {
        id: "n1".into(),
        name: "web".into(),
        bridge: "berth-n1".into(),
        subnet: "10.201.0.0/24".parse().unwrap(),
        gateway: Ipv4Addr::new(10, 201, 0, 1),
        ip_range: None,
        internal: false,
        mtu: None,
        labels: Default::default(),
        created: 0,
        subnet6: None,
        gateway6: None,
        ip_range6: None,
        aux_addresses: Default::default(),
        options: Default::default(),
    }
}

fn ep(container: &str, ns: &str, host: &str, last: u8) -> Endpoint {
    Endpoint {
        container: container.into(),
        network: "n1".into(),
        netns: NetnsRef::Path(ns.into()),
        ifname: "eth0".into(),
        host_ifname: host.into(),
        address: Ipv4Addr::new(10, 201, 0, last),
        mac: String::new(),
        default_route: true,
        ports: Vec::new(),
        aliases: Vec::new(),
        address6: None,
        link_local_ips: Vec::new(),
        sysctls: Vec::new(),
    }
}

fn link(index: u32, name: &str, controller: Option<u32>) -> Link {
    Link {
        index,
        name: name.into(),
        up: true,
        controller,
        mtu: 1500,
        kind: None,
        gso_ipv4_max: Some(links_default_gso()),
        alias: None,
        isolated: None,
    }
}

fn links_default_gso() -> u32 {
    crate::links::DEFAULT_GSO_SIZE
}

fn route(dst: &str, gateway: Option<Ipv4Addr>, oif: u32) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        gateway,
        oif: Some(oif),
        prefsrc: None,
        priority: 0,
    }
}

/// The container side of an endpoint as it should be: eth0 up with its address, the default
/// route via the gateway, lo up.
fn inside_of(e: &Endpoint) -> Inside {
    Inside {
        links: vec![link(1, "lo", None), link(2, &e.ifname, None)],
        addrs: vec![Addr {
            index: 2,
            ip: e.address,
            prefix: 24,
        }],
        routes: vec![route("0.0.0.0/0", Some(Ipv4Addr::new(10, 201, 0, 1)), 2)],
        ..Inside::default()
    }
}

/// A host with uplink eth0 (index 2, 192.168.1.10, default route) and the network's bridge
/// (index 10) with two endpoints' veths on it, all as the state wants them.
fn healthy() -> (State, Observed) {
    let n = net();
    let e1 = ep("c1", NS1, "vh1", 2);
    let e2 = ep("c2", NS2, "vh2", 3);
    let mut state = State::default();
    state.networks.insert(n.id.clone(), n);
    state.endpoints = vec![e1.clone(), e2.clone()];
    let mut seen = Observed {
        links: vec![
            link(1, "lo", None),
            link(2, "eth0", None),
            link(10, "berth-n1", None),
            link(11, "vh1", Some(10)),
            link(12, "vh2", Some(10)),
        ],
        addrs: vec![
            Addr {
                index: 2,
                ip: Ipv4Addr::new(192, 168, 1, 10),
                prefix: 24,
            },
            Addr {
                index: 10,
                ip: Ipv4Addr::new(10, 201, 0, 1),
                prefix: 24,
            },
        ],
        routes: vec![route("0.0.0.0/0", Some(Ipv4Addr::new(192, 168, 1, 1)), 2)],
        uplink_mtu: Some(1500),
        veth_gso: Some(links_default_gso()),
        egress: BTreeSet::from([Ipv4Addr::new(192, 168, 1, 10)]),
        ..Observed::default()
    };
    seen.namespaces
        .insert(NS1.into(), Namespace::Seen(inside_of(&e1)));
    seen.namespaces
        .insert(NS2.into(), Namespace::Seen(inside_of(&e2)));
    seen.firewall = Some(intact_firewall(&state));
    (state, seen)
}

fn intact_firewall(state: &State) -> FirewallSeen {
    FirewallSeen {
        ip: Some(firewall::expected(&desired::ruleset(state))),
        ip6: firewall::expected6(&desired::ruleset6(state)),
        ip_forward: true,
        ipv6_forwarding: state.networks.values().any(|n| n.subnet6.is_some()),
        docker_user: None,
        docker_user6: None,
    }
}

fn egress() -> BTreeSet<Ipv4Addr> {
    BTreeSet::from([Ipv4Addr::new(192, 168, 1, 10)])
}

/// The report lines of the diff of `state` against `seen`.
fn repairs(state: &State, seen: &Observed) -> Vec<String> {
    repairs_with(state, seen, &egress(), None)
}

fn repairs_with(
    state: &State,
    seen: &Observed,
    last_egress: &BTreeSet<Ipv4Addr>,
    default_mtu: Option<u32>,
) -> Vec<String> {
    let want = Desired {
        state,
        last_egress,
        default_mtu,
        table: "berth",
    };
    diff(&want, seen).iter().map(|op| op.to_string()).collect()
}

fn inside_mut<'a>(seen: &'a mut Observed, ns: &str) -> &'a mut Inside {
    match seen.namespaces.get_mut(&PathBuf::from(ns)) {
        Some(Namespace::Seen(i)) => i,
        _ => panic!("no namespace {ns}"),
    }
}

#[test]
fn nothing_to_repair_when_the_kernel_matches() {
    let (state, seen) = healthy();
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn missing_bridge_is_recreated_and_its_veths_reattached() {
    let (state, mut seen) = healthy();
    seen.links.retain(|l| l.name != "berth-n1");
    for l in &mut seen.links {
        l.controller = None;
    }
    seen.addrs.retain(|a| a.index != 10);
    assert_eq!(
        repairs(&state, &seen),
        [
            "bridge berth-n1 of network web was missing: recreated",
            "veth vh1 of container c1 was off bridge berth-n1: re-attached",
            "veth vh2 of container c2 was off bridge berth-n1: re-attached",
        ]
    );
}

#[test]
fn bridge_down_or_without_its_address() {
    let (state, mut seen) = healthy();
    seen.links.iter_mut().find(|l| l.index == 10).unwrap().up = false;
    assert_eq!(
        repairs(&state, &seen),
        ["bridge berth-n1 of network web was down: set up"]
    );
    let (state, mut seen) = healthy();
    seen.addrs[1].ip = Ipv4Addr::new(10, 201, 0, 99);
    assert_eq!(
        repairs(&state, &seen),
        ["bridge berth-n1 of network web lost its address: re-added"]
    );
}

#[test]
fn bridge_without_its_ipv6_gateway_address() {
    let (mut state, mut seen) = healthy();
    let n = state.networks.get_mut("n1").unwrap();
    n.subnet6 = Some("fd00:b5e7::/64".parse().unwrap());
    n.gateway6 = Some("fd00:b5e7::1".parse().unwrap());
    seen.firewall = Some(intact_firewall(&state));
    assert_eq!(
        repairs(&state, &seen),
        ["bridge berth-n1 of network web lost its address: re-added"]
    );
    seen.addrs6.push(Addr6 {
        index: 10,
        ip: "fd00:b5e7::1".parse().unwrap(),
        prefix: 64,
    });
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn veth_missing_down_or_off_its_bridge() {
    let (state, mut seen) = healthy();
    seen.links.retain(|l| l.name != "vh1");
    seen.links.iter_mut().find(|l| l.name == "vh2").unwrap().up = false;
    assert_eq!(
        repairs(&state, &seen),
        [
            "veth vh1 of container c1 on network web was missing: recreated",
            "veth vh2 of container c2 on bridge berth-n1 was down: set up",
        ]
    );
    let (state, mut seen) = healthy();
    seen.links
        .iter_mut()
        .find(|l| l.name == "vh2")
        .unwrap()
        .controller = None;
    assert_eq!(
        repairs(&state, &seen),
        ["veth vh2 of container c2 was off bridge berth-n1: re-attached"]
    );
}

#[test]
fn endpoint_of_a_gone_namespace_is_forgotten_and_its_ports_withdrawn() {
    let (mut state, mut seen) = healthy();
    state.endpoints[1].ports = vec!["8080:80".parse::<PortMapping>().unwrap()];
    // The kernel still has the table with c2's port.
    seen.firewall = Some(intact_firewall(&state));
    seen.namespaces.insert(NS2.into(), Namespace::Gone);
    seen.links.retain(|l| l.name != "vh2");
    let rules = firewall::expected(&desired::ruleset(&state)).rules.len();
    assert_eq!(
        repairs(&state, &seen),
        [
            "namespace /run/netns/c2 of container c2 is gone: endpoint vh2 forgotten".to_string(),
            format!(
                "nft table ip berth differed (5 chains/{rules} rules, want 5/{}): rewritten",
                rules - 2
            ),
        ]
    );
}

#[test]
fn missing_table_chain_or_rule() {
    let (state, mut seen) = healthy();
    seen.firewall.as_mut().unwrap().ip = None;
    assert_eq!(
        repairs(&state, &seen),
        ["nft table ip berth was missing: restored"]
    );
    let (state, mut seen) = healthy();
    let fp = seen.firewall.as_mut().unwrap().ip.as_mut().unwrap();
    let rules = fp.rules.len();
    fp.rules.pop();
    assert_eq!(
        repairs(&state, &seen),
        [format!(
            "nft table ip berth differed (5 chains/{} rules, want 5/{rules}): rewritten",
            rules - 1
        )]
    );
    let (state, mut seen) = healthy();
    let fp = seen.firewall.as_mut().unwrap().ip.as_mut().unwrap();
    fp.chains.retain(|c| c != "forward");
    fp.rules.retain(|(c, _)| c != "forward");
    let text = repairs(&state, &seen);
    assert_eq!(text.len(), 1);
    assert!(
        text[0].starts_with("nft table ip berth differed (4 chains/"),
        "{text:?}"
    );
}

#[test]
fn forwarding_switches_and_docker_user_accepts() {
    let (state, mut seen) = healthy();
    let fw = seen.firewall.as_mut().unwrap();
    fw.ip_forward = false;
    fw.docker_user = Some(DockerUserSeen {
        ours: vec!["7".into()],
        drop_policy: true,
    });
    assert_eq!(
        repairs(&state, &seen),
        [
            "DOCKER-USER accept for berth bridges: restored",
            "net.ipv4.ip_forward was 0: set to 1",
        ]
    );
    // Docker's FORWARD accepts by default: no accepts needed, none there.
    seen.firewall.as_mut().unwrap().docker_user = Some(DockerUserSeen {
        ours: Vec::new(),
        drop_policy: false,
    });
    seen.firewall.as_mut().unwrap().ip_forward = true;
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn container_side_drift() {
    let (state, mut seen) = healthy();
    let i = inside_mut(&mut seen, NS1);
    i.addrs.clear();
    i.routes.clear();
    i.links[0].up = false;
    let i = inside_mut(&mut seen, NS2);
    i.links.retain(|l| l.name != "eth0");
    assert_eq!(
        repairs(&state, &seen),
        [
            "eth0 (10.201.0.2) of container c1 had lost its address, had lost the default route, had loopback down: restored",
            "eth0 of container c2 was gone from its namespace: veth vh2 recreated",
        ]
    );
    let (state, mut seen) = healthy();
    inside_mut(&mut seen, NS2).links[1].up = false;
    assert_eq!(
        repairs(&state, &seen),
        ["eth0 (10.201.0.3) of container c2 was down: restored"]
    );
}

#[test]
fn container_side_link_local_ips() {
    let (mut state, mut seen) = healthy();
    state.endpoints[0].link_local_ips =
        vec!["169.254.8.8".parse().unwrap(), "fe80::8:8".parse().unwrap()];
    assert_eq!(
        repairs(&state, &seen),
        ["eth0 (10.201.0.2) of container c1 had lost a link_local_ips address: restored"]
    );
    let i = inside_mut(&mut seen, NS1);
    let index = i.addrs[0].index;
    i.addrs.push(Addr {
        index,
        ip: "169.254.8.8".parse().unwrap(),
        prefix: 16,
    });
    i.addrs6.push(Addr6 {
        index,
        ip: "fe80::8:8".parse().unwrap(),
        prefix: 64,
    });
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn container_side_ipv6_alone() {
    let (mut state, mut seen) = healthy();
    let n = state.networks.get_mut("n1").unwrap();
    n.subnet6 = Some("fd00:b5e7::/64".parse().unwrap());
    n.gateway6 = Some("fd00:b5e7::1".parse().unwrap());
    let a6: Ipv6Addr = "fd00:b5e7::2".parse().unwrap();
    state.endpoints[0].address6 = Some(a6);
    seen.addrs6.push(Addr6 {
        index: 10,
        ip: "fd00:b5e7::1".parse().unwrap(),
        prefix: 64,
    });
    seen.firewall = Some(intact_firewall(&state));
    assert_eq!(
        repairs(&state, &seen),
        ["eth0 (Some(fd00:b5e7::2)) of container c1 had lost its IPv6 address or route: restored"]
    );
    let i = inside_mut(&mut seen, NS1);
    i.addrs6.push(Addr6 {
        index: 2,
        ip: a6,
        prefix: 64,
    });
    i.default_gateways6.push("fd00:b5e7::1".parse().unwrap());
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn endpoints_of_a_namespace_that_could_not_be_read_are_left_alone() {
    let (state, mut seen) = healthy();
    seen.namespaces.insert(NS1.into(), Namespace::Unreadable);
    seen.namespaces.insert(NS2.into(), Namespace::Vanished);
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn host_nic_change_mtu_gso_and_egress() {
    // A new uplink: smaller MTU, no BIG TCP, another address.
    let (state, mut seen) = healthy();
    seen.uplink_mtu = Some(1400);
    seen.links[3].gso_ipv4_max = Some(crate::links::BIG_TCP_GSO_SIZE);
    seen.egress = BTreeSet::from([Ipv4Addr::new(10, 8, 0, 2)]);
    assert_eq!(
        repairs(&state, &seen),
        [
            "network web MTU 1500 did not follow the egress interface: set to 1400",
            "network web: IPv4 GSO limit of 1 endpoint(s) set to 65536 to match the uplinks",
            "egress address 192.168.1.10 went away: flush conntrack",
        ]
    );
    // A configured MTU wins over the uplink's; an unknown uplink MTU changes nothing.
    assert!(
        repairs_with(&state, &seen, &seen.egress, Some(1500))
            .iter()
            .all(|r| !r.contains("MTU"))
    );
    seen.uplink_mtu = None;
    assert!(
        repairs_with(&state, &seen, &seen.egress, None)
            .iter()
            .all(|r| !r.contains("MTU"))
    );
}

#[test]
fn internal_networks_keep_their_mtu_flows_and_gso() {
    let (mut state, mut seen) = healthy();
    let n = state.networks.get_mut("n1").unwrap();
    n.internal = true;
    n.mtu = Some(1500);
    seen.firewall = Some(intact_firewall(&state));
    seen.uplink_mtu = Some(1400);
    seen.veth_gso = None;
    seen.egress.clear();
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}

#[test]
fn isolation_and_interface_sysctls_are_restored() {
    let (mut state, mut seen) = healthy();
    for n in state.networks.values_mut() {
        n.options.no_icc = true;
    }
    let ifs: Vec<String> = state
        .endpoints
        .iter()
        .map(|e| e.host_ifname.clone())
        .collect();
    let got = repairs(&state, &seen);
    assert_eq!(got.len(), ifs.len(), "{got:?}");
    assert!(
        got.iter()
            .all(|r| r.contains("was not isolated (enable_icc=false): isolated")),
        "{got:?}"
    );
    for l in seen.links.iter_mut().filter(|l| ifs.contains(&l.name)) {
        l.isolated = Some(true);
    }
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
    state.endpoints[0].sysctls = vec![("net.ipv4.conf.IFNAME.log_martians".into(), "1".into())];
    assert_eq!(
        repairs(&state, &seen),
        ["eth0 (10.201.0.2) of container c1 had an interface sysctl changed: restored"]
    );
    inside_mut(&mut seen, NS1)
        .sysctls
        .insert("net/ipv4/conf/eth0/log_martians".into(), "1".into());
    assert_eq!(repairs(&state, &seen), Vec::<String>::new());
}
