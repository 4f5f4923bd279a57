//! The attach plan without root: names, addresses, default route and refusals.

use std::net::Ipv4Addr;

use super::*;

fn net(id: &str, last: u8, internal: bool) -> NetworkSpec {
    NetworkSpec {
        id: id.into(),
        name: format!("net-{id}"),
        bridge: format!("berth-{id}"),
        subnet: format!("10.201.{last}.0/24").parse().unwrap(),
        gateway: Ipv4Addr::new(10, 201, last, 1),
        ip_range: None,
        internal,
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

fn state() -> State {
    let mut s = State::default();
    s.networks.insert("aaa111".into(), net("aaa111", 0, true));
    s.networks.insert("bbb222".into(), net("bbb222", 1, false));
    s
}

fn req(network: &str) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        ..EndpointRequest::default()
    }
}

fn ns() -> NetnsRef {
    NetnsRef::Path("/run/netns/c1".into())
}

/// One line per planned endpoint: ifname, network, address, default route.
fn lines(plan: &[(Endpoint, NetworkSpec)]) -> Vec<String> {
    plan.iter()
        .map(|(e, n)| {
            format!(
                "{} {} {}{}",
                e.ifname,
                n.name,
                e.address,
                if e.default_route { " default" } else { "" }
            )
        })
        .collect()
}

#[test]
fn names_addresses_and_the_default_route_via_the_first_network_with_egress() {
    let plan = plan_attach(
        &state(),
        "c1",
        &ns(),
        &[req("net-aaa111"), req("net-bbb222")],
    )
    .unwrap();
    assert_eq!(
        lines(&plan),
        [
            "eth0 net-aaa111 10.201.0.2",
            "eth1 net-bbb222 10.201.1.2 default"
        ]
    );
    assert_eq!(plan[0].0.host_ifname, names::veth_name("c1", "aaa111"));
}

#[test]
fn a_second_attach_continues_names_and_keeps_the_default_route() {
    let mut s = state();
    let first = plan_attach(&s, "c1", &ns(), &[req("net-bbb222")]).unwrap();
    s.endpoints.extend(first.into_iter().map(|(e, _)| e));
    let plan = plan_attach(&s, "c1", &ns(), &[req("net-aaa111")]).unwrap();
    assert_eq!(lines(&plan), ["eth1 net-aaa111 10.201.0.2"]);
    // Another container takes the next address.
    let other = plan_attach(&s, "c2", &ns(), &[req("net-bbb222")]).unwrap();
    assert_eq!(lines(&other), ["eth0 net-bbb222 10.201.1.3 default"]);
}

#[test]
fn the_default_route_goes_via_the_highest_gw_priority_then_dual_stack_then_by_name() {
    let mut s = state();
    s.networks.insert("ccc333".into(), net("ccc333", 2, false));
    let gw = |n: &str, p: i32| EndpointRequest {
        gw_priority: p,
        ..req(n)
    };
    let plan = plan_attach(&s, "c1", &ns(), &[gw("net-bbb222", 0), gw("net-ccc333", 7)]).unwrap();
    assert_eq!(
        lines(&plan),
        [
            "eth0 net-bbb222 10.201.1.2",
            "eth1 net-ccc333 10.201.2.2 default"
        ]
    );
    let tie = plan_attach(&s, "c2", &ns(), &[gw("net-bbb222", 3), gw("net-ccc333", 3)]).unwrap();
    assert_eq!(
        lines(&tie),
        [
            "eth0 net-bbb222 10.201.1.2 default",
            "eth1 net-ccc333 10.201.2.2"
        ]
    );
    // Docker 28 breaks ties by network name, not by join order.
    let by_name =
        plan_attach(&s, "c4", &ns(), &[gw("net-ccc333", 3), gw("net-bbb222", 3)]).unwrap();
    assert_eq!(
        lines(&by_name),
        [
            "eth0 net-ccc333 10.201.2.2",
            "eth1 net-bbb222 10.201.1.2 default"
        ]
    );
    // ... after preferring a dual-stack network to an IPv4-only one.
    let mut dual = s.clone();
    if let Some(n) = dual.networks.get_mut("ccc333") {
        n.subnet6 = Some("fd00:201::/64".parse().unwrap());
        n.gateway6 = Some("fd00:201::1".parse().unwrap());
    }
    let v6 = plan_attach(
        &dual,
        "c5",
        &ns(),
        &[gw("net-bbb222", 3), gw("net-ccc333", 3)],
    )
    .unwrap();
    assert_eq!(
        lines(&v6),
        [
            "eth0 net-bbb222 10.201.1.2",
            "eth1 net-ccc333 10.201.2.2 default"
        ]
    );
    // An internal network never carries it, whatever its gw_priority.
    let internal =
        plan_attach(&s, "c3", &ns(), &[gw("net-aaa111", 9), gw("net-ccc333", 0)]).unwrap();
    assert_eq!(
        lines(&internal),
        [
            "eth0 net-aaa111 10.201.0.2",
            "eth1 net-ccc333 10.201.2.2 default"
        ]
    );
}

#[test]
fn refusals() {
    let mut s = state();
    let err =
        |s: &State, r: EndpointRequest| plan_attach(s, "c1", &ns(), &[r]).unwrap_err().to_string();
    assert_eq!(err(&s, req("nope")), "no such network: nope");
    let mut r = req("net-aaa111");
    r.ports = vec!["8080:80".parse().unwrap()];
    assert_eq!(
        err(&s, r),
        "network net-aaa111 is internal: it cannot publish ports"
    );
    let mut r = req("net-bbb222");
    r.ipv4_address = Some(Ipv4Addr::new(10, 201, 1, 1));
    assert!(err(&s, r).starts_with("network net-bbb222"));
    let mut r = req("net-bbb222");
    r.ipv6_address = Some("fd00::5".parse().unwrap());
    assert!(err(&s, r).contains("no IPv6"));
    let mut r = req("net-bbb222");
    r.mac_address = Some("zz".into());
    assert!(err(&s, r).contains("MAC address"));
    let first = plan_attach(&s, "c1", &ns(), &[req("net-bbb222")]).unwrap();
    s.endpoints.extend(first.into_iter().map(|(e, _)| e));
    assert_eq!(
        err(&s, req("net-bbb222")),
        "container c1 is already attached to network net-bbb222"
    );
    let mut p = req("net-bbb222");
    p.ports = vec!["8080:80".parse().unwrap()];
    s.endpoints[0].ports = vec!["8080:80".parse().unwrap()];
    let e = plan_attach(&s, "c2", &ns(), &[p]).unwrap_err().to_string();
    assert!(e.contains("c1"), "{e}");
}

#[test]
fn bridge_options_shape_the_endpoint() {
    let mut s = state();
    if let Some(n) = s.networks.get_mut("bbb222") {
        n.options.host_binding_ipv4 = Some(Ipv4Addr::new(127, 0, 0, 1));
        n.options.iface_prefix = Some("app".into());
    }
    let port: crate::ports::PortMapping = "8080:80".parse().unwrap();
    let pinned: crate::ports::PortMapping = "10.0.0.9:8081:81".parse().unwrap();
    let plan = plan_attach(
        &s,
        "c1",
        &ns(),
        &[
            req("net-aaa111"),
            EndpointRequest {
                ports: vec![port, pinned],
                sysctls: vec![("net.ipv4.conf.IFNAME.log_martians".into(), "1".into())],
                ..req("net-bbb222")
            },
        ],
    )
    .unwrap();
    assert_eq!(
        lines(&plan),
        [
            "eth0 net-aaa111 10.201.0.2",
            "app0 net-bbb222 10.201.1.2 default"
        ]
    );
    let ports = &plan[1].0.ports;
    // A port without a host address takes the network's binding; a given one stays.
    assert_eq!(ports[0].host_ip, Some("127.0.0.1".parse().unwrap()));
    assert_eq!(ports[1].host_ip, Some("10.0.0.9".parse().unwrap()));
    assert_eq!(plan[1].0.sysctls.len(), 1);
    let bad = plan_attach(
        &s,
        "c2",
        &ns(),
        &[EndpointRequest {
            sysctls: vec![("net.ipv4.ip_forward".into(), "1".into())],
            ..req("net-bbb222")
        }],
    )
    .unwrap_err();
    assert!(bad.to_string().contains("not an interface sysctl"), "{bad}");
}

#[test]
fn published_ports_go_with_the_default_route() {
    let mut s = state();
    s.networks.insert("ccc333".into(), net("ccc333", 2, false));
    let port: crate::ports::PortMapping = "8080:80".parse().unwrap();
    let plan = plan_attach(
        &s,
        "c1",
        &ns(),
        &[
            EndpointRequest {
                ports: vec![port],
                ..req("net-ccc333")
            },
            req("net-bbb222"),
        ],
    )
    .unwrap();
    assert_eq!(
        lines(&plan),
        [
            "eth0 net-ccc333 10.201.2.2",
            "eth1 net-bbb222 10.201.1.2 default"
        ]
    );
    assert!(plan[0].0.ports.is_empty());
    assert_eq!(plan[1].0.ports.len(), 1);
    // An internal first network no longer refuses them when another has the route.
    let plan = plan_attach(
        &s,
        "c2",
        &ns(),
        &[
            EndpointRequest {
                ports: vec!["8081:80".parse().unwrap()],
                ..req("net-aaa111")
            },
            req("net-bbb222"),
        ],
    )
    .unwrap();
    assert_eq!(plan[1].0.ports.len(), 1);
}

#[test]
fn a_mac_of_the_gateway_or_of_another_endpoint_is_refused() {
    let mut s = state();
    let err = |s: &State, c: &str, r: EndpointRequest| {
        plan_attach(s, c, &ns(), &[r]).unwrap_err().to_string()
    };
    let mut r = req("net-bbb222");
    r.mac_address = Some("02:B7:0A:C9:01:01".into());
    assert_eq!(
        err(&s, "c1", r),
        "MAC address 02:b7:0a:c9:01:01 is the MAC of network net-bbb222's gateway (its bridge): a container cannot have it"
    );
    // c1 takes the MAC derived from 10.201.1.2, which is then not handed out.
    let mut r = req("net-bbb222");
    r.mac_address = Some("02:b7:0a:c9:01:02".into());
    r.ipv4_address = Some(Ipv4Addr::new(10, 201, 1, 9));
    let first = plan_attach(&s, "c1", &ns(), &[r]).unwrap();
    s.endpoints.extend(first.into_iter().map(|(e, _)| e));
    let mut r = req("net-bbb222");
    r.mac_address = Some("02:b7:0a:c9:01:02".into());
    assert_eq!(
        err(&s, "c2", r),
        "MAC address 02:b7:0a:c9:01:02 of container c2 on network net-bbb222 is already the MAC of container c1 there"
    );
    let mut r = req("net-bbb222");
    r.ipv4_address = Some(Ipv4Addr::new(10, 201, 1, 2));
    assert!(err(&s, "c2", r).contains("container c1"));
    let plan = plan_attach(&s, "c2", &ns(), &[req("net-bbb222")]).unwrap();
    assert_eq!(plan[0].0.address, Ipv4Addr::new(10, 201, 1, 3));
}
