//! What a container and a LAN neighbour can reach on a simulated host (network namespaces
//! only). The attacks: a container (NET_RAW, as by default) sending frames for 127.0.0.1 to
//! its gateway's MAC; isp-a acting as a LAN neighbour whose route to the container subnets
//! points at the host, reaching unpublished container ports directly, a port published on
//! 127.0.0.1 with a frame for 127.0.0.1 sent to the host's MAC, and an internal network. What
//! must keep working next to them: published ports from outside and from the host (127.0.0.1
//! included), the host reaching its containers and its own gateway addresses, container to
//! container, egress, hairpin, and reconcile restoring the protection when it is deleted.

mod common;
mod raw_util;

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use berth_netd::names::endpoint_mac;
use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, Netd, NetworkCreate};
use common::*;
use raw_util::*;

const HOST_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 2);
const ISP_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 1);
/// How many probes the LAN neighbour's attack makes (the security suite prints it).
const ATTACKS: usize = 9;

/// How long a negative check waits for something that must not arrive.
const NEVER: Duration = Duration::from_millis(700);

fn ep(network: &str, ports: &[&str]) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        ports: ports
            .iter()
            .map(|p| {
                p.parse::<PortMapping>()
                    .unwrap_or_else(|e| panic!("{p}: {e}"))
            })
            .collect(),
        ..Default::default()
    }
}

async fn attach(n: &Netd, c: &NetnsGuard, reqs: Vec<EndpointRequest>) -> Ipv4Addr {
    n.attach(&c.name, NetnsRef::Path(c.path()), reqs)
        .await
        .expect("attach")[0]
        .address
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// A UDP socket bound to `addr` inside `ns` (the witness of what reaches that address).
fn udp_in(ns: &Path, addr: SocketAddrV4) -> UdpSocket {
    let s = in_ns(ns, || UdpSocket::bind(addr)).expect("bind witness");
    s.set_read_timeout(Some(NEVER)).expect("timeout");
    s
}

/// Whether `s` receives a datagram within [`NEVER`].
fn got_datagram(s: &UdpSocket) -> bool {
    let mut buf = [0u8; 256];
    s.recv_from(&mut buf).is_ok()
}

/// Lets `isp` (a LAN neighbour of the host) route `subnet` through the host's uplink.
fn neighbour_route(isp: &str, subnet: &str) {
    ip(isp, &["route", "add", subnet, "via", &HOST_A.to_string()]);
}

/// Handles (`nft -a`) of the rules of berth's `family` table in the host namespace whose text
/// contains every one of `needles`.
fn rule_handles(host: &str, family: &str, needles: &[&str]) -> Vec<String> {
    run(
        "ip",
        &[
            "netns", "exec", host, "nft", "-a", "list", "table", family, "berth",
        ],
    )
    .lines()
    .filter(|l| needles.iter().all(|n| l.contains(n)))
    .filter_map(|l| {
        l.rsplit_once("# handle ")
            .map(|(_, h)| h.trim().to_string())
    })
    .collect()
}

#[test_with::root()]
#[test]
fn container_frames_for_127_0_0_1_never_reach_the_hosts_loopback() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let web = NetnsGuard::new("c");
    let evil = NetnsGuard::new("c");
    let host_path = sim.host.path();
    // Services of the host bound to its loopback only.
    let lo_udp = udp_in(&host_path, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18053));
    let _lo_tcp = in_ns(&host_path, || {
        std::net::TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18022))
    })
    .expect("bind 127.0.0.1:18022");
    fx.with_netd_multi(async |n| {
            let net = n
                .create_network(NetworkCreate {
                    name: "lo".into(),
                    ..Default::default()
                })
                .await
                .expect("create");
            attach(&n, &web, vec![ep("lo", &["127.0.0.1:18081:80"])]).await;
            let me = attach(&n, &evil, vec![ep("lo", &[])]).await;
            let _srv = tcp_server(&web.path(), 80, "web");
            let gw_mac = endpoint_mac(net.gateway);
            let my_mac = mac_of(&evil.name, "eth0");
            let sock = PacketSocket::open(&evil.path(), "eth0");

            // UDP for 127.0.0.1 to the gateway's MAC.
            let frame = ipv4_frame(
                gw_mac,
                my_mac,
                me,
                Ipv4Addr::LOCALHOST,
                UDP,
                &udp(40000, 18053, b"from a container"),
            );
            sock.send(&frame);
            let mut breaches = Vec::new();
            if blocking(move || got_datagram(&lo_udp)).await {
                breaches.push(
                    "a container's UDP frame for 127.0.0.1 reached a service bound to the host's 127.0.0.1:18053"
                        .to_string(),
                );
            }
            // Ordinary traffic to the gateway first, so that the host knows the container's
            // MAC (it could not resolve it for an answer from 127.0.0.1 itself: the
            // container ignores ARP requests from a loopback address).
            let gw = SocketAddrV4::new(net.gateway, 9);
            in_ns(&evil.path(), || {
                UdpSocket::bind("0.0.0.0:0").and_then(|u| u.send_to(b"hello", gw))
            })
            .expect("datagram to the gateway");
            // A TCP SYN for 127.0.0.1: any answer (SYN-ACK from the listener, RST from a
            // closed port) means it reached the host's stack.
            for port in [18022u16, 18023] {
                sock.send(&ipv4_frame(
                    gw_mac,
                    my_mac,
                    me,
                    Ipv4Addr::LOCALHOST,
                    TCP,
                    &tcp_syn(me, 40001, Ipv4Addr::LOCALHOST, port),
                ));
                if sock.saw(NEVER, |p| {
                    p.proto == TCP && p.dport == 40001 && p.sport == port
                }) {
                    breaches.push(format!(
                        "the host's TCP stack answered a container's SYN for 127.0.0.1:{port}"
                    ));
                }
            }
            assert!(breaches.is_empty(), "{breaches:#?}");
            // A port published on 127.0.0.1 still answers the host itself (output DNAT,
            // route_localnet on the bridge, masquerade of 127.0.0.0/8 towards it).
            let hp = host_path.clone();
            let r = blocking(move || {
                http_get_retry(
                    &hp,
                    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18081),
                    Duration::from_secs(5),
                )
            })
            .await;
            assert_eq!(r.expect("127.0.0.1:18081 from the host"), "web");
            // The container itself cannot reach it (127.0.0.1 is its own loopback).
            let ep_ = evil.path();
            let r = blocking(move || {
                http_get(
                    &ep_,
                    SocketAddrV4::new(Ipv4Addr::LOCALHOST, 18081),
                    Duration::from_millis(300),
                )
            })
            .await;
            assert!(r.is_err(), "{r:?}");
            for c in [&web, &evil] {
                n.detach(&c.name, None).await.expect("detach");
            }
            n.remove_network("lo").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn lan_neighbour_reaches_only_ports_published_on_non_loopback_addresses() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let web = NetnsGuard::new("c");
    let peer = NetnsGuard::new("c");
    let secret = NetnsGuard::new("c");
    let host = sim.host.name.clone();
    let host_path = sim.host.path();
    let isp = sim.isp_a.name.clone();
    let isp_path = sim.isp_a.path();
    let upa_mac = mac_of(&host, "upa");
    let isp_mac = mac_of(&isp, "eth0");
    fx.with_netd_multi(async |n| {
            let net = n
                .create_network(NetworkCreate {
                    name: "app".into(),
                    ..Default::default()
                })
                .await
                .expect("create");
            let internal = n
                .create_network(NetworkCreate {
                    name: "back".into(),
                    internal: true,
                    ..Default::default()
                })
                .await
                .expect("create internal");
            neighbour_route(&isp, &net.subnet.to_string());
            neighbour_route(&isp, &internal.subnet.to_string());
            let w = attach(
                &n,
                &web,
                vec![ep(
                    "app",
                    &[
                        "8080:80",
                        "127.0.0.1:8081:81",
                        "127.0.0.1:5301:5301/udp",
                        "5302:5302/udp",
                    ],
                )],
            )
            .await;
            attach(&n, &peer, vec![ep("app", &[])]).await;
            let s = attach(&n, &secret, vec![ep("back", &[])]).await;
            let _servers = [
                tcp_server(&web.path(), 80, "web"),
                tcp_server(&web.path(), 81, "web-lo"),
                tcp_server(&web.path(), 8000, "web-unpublished"),
                tcp_server(&secret.path(), 8000, "internal"),
                udp_server(&web.path(), w, 5300, "web-udp-unpublished"),
                udp_server(&web.path(), w, 5302, "web-udp"),
            ];
            // The host's own service on the network's gateway address (as the embedded DNS).
            let gw_svc = udp_server(&host_path, net.gateway, 5399, "host-gw");

            // Published ports: from the neighbour via the host's address, from the host (on
            // 127.0.0.1 too), hairpin from the network's containers.
            let get = |ns: &Path, to: SocketAddrV4| {
                let ns = ns.to_path_buf();
                blocking(move || http_get_retry(&ns, to, Duration::from_secs(5)))
            };
            let published = SocketAddrV4::new(HOST_A, 8080);
            assert_eq!(get(&isp_path, published).await.expect("isp-a"), "web");
            let ia = isp_path.clone();
            let u =
                blocking(move || udp_ask(&ia, 41002, SocketAddrV4::new(HOST_A, 5302), NEVER)).await;
            assert_eq!(u.expect("udp published port from isp-a"), "web-udp");
            let lo = |port| SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
            assert_eq!(get(&host_path, lo(8080)).await.expect("host"), "web");
            assert_eq!(get(&host_path, lo(8081)).await.expect("host"), "web-lo");
            assert_eq!(get(&peer.path(), published).await.expect("hairpin"), "web");
            assert_eq!(get(&web.path(), published).await.expect("own"), "web");
            // The host reaches its containers directly, container to container works, and
            // the network has egress.
            let direct = SocketAddrV4::new(w, 8000);
            let hp = host_path.clone();
            assert_eq!(
                get(&hp, direct).await.expect("host -> container"),
                "web-unpublished"
            );
            assert_eq!(
                get(&peer.path(), direct)
                    .await
                    .expect("container -> container"),
                "web-unpublished"
            );
            assert_eq!(
                get(&peer.path(), SocketAddrV4::new(INTERNET, 80))
                    .await
                    .expect("egress"),
                "isp-a"
            );
            // The gateway address answers the containers and the host (through lo).
            for (who, ns) in [("container", peer.path()), ("host", host_path.clone())] {
                let to = SocketAddrV4::new(net.gateway, 5399);
                let r = blocking(move || udp_ask(&ns, 41003, to, NEVER)).await;
                assert_eq!(r.expect(who), "host-gw", "{who} -> gateway");
            }

            // Attacks from the neighbour; each breach is listed.
            let attacks = || {
                let ia = isp_path.clone();
                let web_path = web.path();
                let gw = net.gateway;
                blocking(move || {
                    let mut breaches = Vec::new();
                    for (what, port) in [("unpublished", 8000), ("published", 80)] {
                        if let Ok(b) = http_get(&ia, SocketAddrV4::new(w, port), NEVER) {
                            breaches.push(format!(
                                "the container's {what} TCP port {port} answered directly: {b}"
                            ));
                        }
                    }
                    if let Ok(b) = udp_ask(&ia, 41004, SocketAddrV4::new(w, 5300), NEVER) {
                        breaches.push(format!("an unpublished UDP port answered directly: {b}"));
                    }
                    if let Ok(b) = udp_ask(&ia, 41005, SocketAddrV4::new(gw, 5399), NEVER) {
                        breaches.push(format!(
                            "a host service on the gateway address answered: {b}"
                        ));
                    }
                    if let Ok(b) = http_get(&ia, SocketAddrV4::new(HOST_A, 8081), NEVER) {
                        breaches.push(format!(
                            "the 127.0.0.1-only port answered on the uplink: {b}"
                        ));
                    }
                    if let Ok(b) = http_get(&ia, SocketAddrV4::new(s, 8000), NEVER) {
                        breaches.push(format!("the internal network answered: {b}"));
                    }
                    // Frames for 127.0.0.1 to the host's MAC; a witness on the container's
                    // eth0 sees whether they were forwarded to it.
                    let witness = PacketSocket::open(&web_path, "eth0");
                    let out = PacketSocket::open(&ia, "eth0");
                    let lo = Ipv4Addr::LOCALHOST;
                    for (what, proto, port, sport) in [
                        ("TCP published on 127.0.0.1", TCP, 8081u16, 42001u16),
                        ("TCP published on every address", TCP, 8080, 42002),
                        ("UDP published on 127.0.0.1", UDP, 5301, 42003),
                    ] {
                        let l4 = if proto == TCP {
                            tcp_syn(ISP_A, sport, lo, port)
                        } else {
                            udp(sport, port, b"x")
                        };
                        out.send(&ipv4_frame(upa_mac, isp_mac, ISP_A, lo, proto, &l4));
                        if witness.saw(NEVER, |p| p.src == ISP_A && p.sport == sport) {
                            breaches.push(format!(
                                "a frame for 127.0.0.1:{port} ({what}) reached the container"
                            ));
                        }
                    }
                    breaches
                })
            };
            let b = attacks().await;
            // Two direct TCP ports, direct UDP, the gateway's service, the loopback-only port
            // on the uplink, the internal network, three frames for 127.0.0.1.
            eprintln!(
                "FIGURES: exposure: {ATTACKS} probes from a LAN neighbour at unpublished, loopback-only and internal ports: {} answered (published ports on the uplink answered, as they must)",
                b.len()
            );
            assert!(b.is_empty(), "fresh: {b:#?}");

            // Deleting the protection is drift that reconcile repairs.
            let subnet = net.subnet.to_string();
            let handles = rule_handles(&host, "ip", &["daddr", "drop"]);
            assert!(!handles.is_empty(), "no drop rule in berth's raw chain");
            for h in &handles {
                run(
                    "ip",
                    &[
                        "netns", "exec", &host, "nft", "delete", "rule", "ip", "berth", "raw",
                        "handle", h,
                    ],
                );
            }
            let ia = isp_path.clone();
            let r = blocking(move || http_get(&ia, SocketAddrV4::new(w, 8000), NEVER)).await;
            assert!(
                r.is_ok(),
                "without the rules the subnet {subnet} is routed: {r:?}"
            );
            let rep = n.reconcile().await;
            assert!(rep.errors.is_empty(), "{:?}", rep.errors);
            assert!(
                rep.repairs.iter().any(|r| r.what.contains("nft table ip ")),
                "{:?}",
                rep.repairs
            );
            let b = attacks().await;
            assert!(b.is_empty(), "after reconcile: {b:#?}");
            assert_eq!(get(&isp_path, published).await.expect("isp-a"), "web");

            drop(gw_svc);
            for c in [&web, &peer, &secret] {
                n.detach(&c.name, None).await.expect("detach");
            }
            n.remove_network("app").await.expect("rm");
            n.remove_network("back").await.expect("rm");
    });
}

/// A TCP server on `[::]:port` in `ns` answering `body`, until `stop` is set.
fn tcp6_server(ns: &Path, port: u16, body: &'static str, stop: Arc<AtomicBool>) {
    let l = in_ns(ns, || {
        std::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
    })
    .expect("bind [::]");
    l.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            match l.accept() {
                Ok((mut c, _)) => {
                    let _ = c.set_nonblocking(false);
                    let _ = c.write_all(body.as_bytes());
                }
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
}

/// One connection to `to` from `ns`; what it read.
fn get6(ns: &Path, to: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    use std::io::Read;
    in_ns(ns, || {
        let mut c = std::net::TcpStream::connect_timeout(&to, timeout)?;
        c.set_read_timeout(Some(timeout))?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    })
}

#[test_with::root()]
#[test]
fn ipv6_lan_neighbour_reaches_only_published_ports() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let host = sim.host.name.clone();
    let isp = sim.isp_a.name.clone();
    ip(
        &host,
        &[
            "-6",
            "addr",
            "add",
            &format!("{HOST_A6}/64"),
            "dev",
            "upa",
            "nodad",
        ],
    );
    ip(
        &isp,
        &[
            "-6",
            "addr",
            "add",
            &format!("{ISP_A6}/64"),
            "dev",
            "eth0",
            "nodad",
        ],
    );
    ip(
        &host,
        &["-6", "route", "add", "default", "via", &ISP_A6.to_string()],
    );
    let (web, peer) = (NetnsGuard::new("c"), NetnsGuard::new("c"));
    let isp_path = sim.isp_a.path();
    let stop = Arc::new(AtomicBool::new(false));
    fx.with_netd_multi(async |n| {
        let net = n
            .create_network(NetworkCreate {
                name: "six".into(),
                enable_ipv6: true,
                ..Default::default()
            })
            .await
            .expect("create");
        let s6 = net.subnet6.expect("IPv6 subnet");
        ip(
            &isp,
            &[
                "-6",
                "route",
                "add",
                &s6.to_string(),
                "via",
                &HOST_A6.to_string(),
            ],
        );
        let e = n
            .attach(
                &web.name,
                NetnsRef::Path(web.path()),
                vec![ep("six", &["8080:80"])],
            )
            .await
            .expect("attach");
        let w6 = e[0].address6.expect("IPv6 address");
        n.attach(
            &peer.name,
            NetnsRef::Path(peer.path()),
            vec![ep("six", &[])],
        )
        .await
        .expect("attach peer");
        tcp6_server(&web.path(), 80, "web", stop.clone());
        tcp6_server(&web.path(), 8000, "web-unpublished", stop.clone());
        let retry = |ns: &Path, to: SocketAddr| {
            let ns = ns.to_path_buf();
            blocking(move || {
                let end = std::time::Instant::now() + Duration::from_secs(5);
                loop {
                    match get6(&ns, to, Duration::from_millis(500)) {
                        Ok(s) => return Ok(s),
                        Err(e) if std::time::Instant::now() >= end => return Err(e),
                        Err(_) => std::thread::sleep(Duration::from_millis(30)),
                    }
                }
            })
        };
        let v6 = |a: Ipv6Addr, p| SocketAddr::new(IpAddr::V6(a), p);
        assert_eq!(
            retry(&isp_path, v6(HOST_A6, 8080))
                .await
                .expect("published over IPv6 from the neighbour"),
            "web"
        );
        assert_eq!(
            retry(&peer.path(), v6(w6, 8000))
                .await
                .expect("container -> container over IPv6"),
            "web-unpublished"
        );
        assert_eq!(
            retry(&sim.host.path(), v6(w6, 8000))
                .await
                .expect("host -> container over IPv6"),
            "web-unpublished"
        );
        for port in [8000, 80] {
            let ia = isp_path.clone();
            let r = blocking(move || get6(&ia, v6(w6, port), NEVER)).await;
            assert!(
                r.is_err(),
                "the neighbour reached the container's IPv6 port {port} directly: {r:?}"
            );
        }
        for c in [&web, &peer] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("six").await.expect("rm");
    });
    stop.store(true, Ordering::Relaxed);
}
