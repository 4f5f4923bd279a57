//! IPv6 (`enable_ipv6`) on a simulated host: dual-stack bridge and endpoints, IPv6 between
//! containers, IPv6 egress through masquerade to an "internet" address inside isp-a, an IPv6
//! published port reached from isp-a, AAAA answers from the embedded DNS on the IPv6 gateway,
//! isolation, and reconcile of the ip6 table and of a container's IPv6 address. Network
//! namespaces only.

mod common;
mod dns_util;
mod nic_util;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_netd::dns::{Endpoint as DnsEndpoint, NetworkScope};
use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, Ipv6Create, NetworkCreate};
use common::*;
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use nic_util::StackDns;

const HOST_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 2);
const ISP_A6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0xa, 0, 0, 0, 0, 0, 1);
const INTERNET6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// A TCP server on `[::]:port` in `ns` answering `body` (stopped when the flag is set).
fn tcp6_server(ns: &Path, port: u16, body: &'static str, stop: Arc<AtomicBool>) {
    let ns = ns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        in_ns(&ns, || {
            let l = TcpListener::bind(SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)))
                .expect("bind [::]");
            l.set_nonblocking(true).expect("nonblocking");
            tx.send(()).ok();
            while !stop.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 512];
                        let _ = c.read(&mut buf);
                        let _ = c.write_all(body.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server up");
}

/// One request to `to` from inside `ns`, retried until `within`; the answer.
fn get6(ns: &Path, to: SocketAddr, within: Duration) -> std::io::Result<String> {
    let end = Instant::now() + within;
    loop {
        let r = in_ns(ns, || {
            let mut c = TcpStream::connect_timeout(&to, Duration::from_millis(500))?;
            c.set_read_timeout(Some(Duration::from_millis(500)))?;
            c.write_all(b"hi")?;
            let mut s = String::new();
            c.read_to_string(&mut s)?;
            Ok(s)
        });
        match r {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(30)),
        }
    }
}

/// An error with its sources.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out = format!("{out}: {s}");
        cur = s.source();
    }
    out
}

fn aaaa(ns: &Path, server: SocketAddr, name: &str) -> Vec<Ipv6Addr> {
    in_ns(ns, || {
        let s = std::net::UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0)).expect("bind");
        s.set_read_timeout(Some(Duration::from_secs(2))).ok();
        s.send_to(&dns_util::query(name, RecordType::AAAA), server)
            .expect("send");
        let mut buf = [0u8; 2048];
        let n = s.recv(&mut buf).expect("AAAA answer");
        let m = Message::from_vec(&buf[..n]).expect("parse");
        m.answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::AAAA(a) => Some(a.0),
                _ => None,
            })
            .collect()
    })
}

/// Gives `dev` in namespace `ns` the IPv6 address `cidr`, usable at once (no DAD).
fn add_v6(ns: &str, cidr: &str, dev: &str) {
    ip(ns, &["-6", "addr", "add", cidr, "dev", dev, "nodad"]);
}

#[test_with::root()]
#[test]
fn ipv6_network_addresses_egress_ports_dns_and_reconcile() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let host = sim.host.name.clone();
    add_v6(&host, &format!("{HOST_A6}/64"), "upa");
    let isp = sim.isp_a.name.clone();
    add_v6(&isp, &format!("{ISP_A6}/64"), "eth0");
    ip(
        &isp,
        &[
            "-6",
            "addr",
            "add",
            &format!("{INTERNET6}/128"),
            "dev",
            "lo",
        ],
    );
    ip(
        &host,
        &["-6", "route", "add", "default", "via", &ISP_A6.to_string()],
    );
    // Docker with ip6tables: its ip6 filter FORWARD policy is drop too.
    let script = "table ip6 filter {\n chain DOCKER-USER {\n counter return\n }\n chain FORWARD {\n type filter hook forward priority 0; policy drop;\n jump DOCKER-USER\n }\n}\n";
    let mut child = std::process::Command::new("ip")
        .args(["netns", "exec", &host, "nft", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("write");
    assert!(child.wait().expect("nft").success());
    let ours6 = |h: &str| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                h,
                "nft",
                "list",
                "chain",
                "ip6",
                "filter",
                "DOCKER-USER",
            ],
        )
        .matches("comment \"berth\"")
        .count()
    };
    let stop = Arc::new(AtomicBool::new(false));
    tcp6_server(&sim.isp_a.path(), 8086, "isp-a-v6", stop.clone());
    let (c1, c2, other) = (
        NetnsGuard::new("c"),
        NetnsGuard::new("c"),
        NetnsGuard::new("c"),
    );
    let root = sim.root.path().to_path_buf();
    let isp_path = sim.isp_a.path();
    fx.with_netd_multi(async |n| {
        let spec = n
            .create_network(NetworkCreate {
                name: "six".into(),
                enable_ipv6: true,
                ..Default::default()
            })
            .await
            .expect("create an IPv6 network");
        assert_eq!(ours6(&host), 3, "accepts in Docker's ip6 DOCKER-USER");
        let s6 = spec.subnet6.expect("an IPv6 subnet");
        assert_eq!(
            s6.to_string(),
            "fd00:b5e7::/64",
            "first /64 of the ULA pool"
        );
        let g6 = spec.gateway6.expect("an IPv6 gateway");
        assert_eq!(g6, "fd00:b5e7::1".parse::<Ipv6Addr>().expect("v6"));
        assert!(
            ip(&host, &["-6", "addr", "show", "dev", &spec.bridge]).contains("fd00:b5e7::1/64")
        );
        let mut r1 = EndpointRequest {
            network: "six".into(),
            ..Default::default()
        };
        r1.ports = vec!["8080:8000".parse::<PortMapping>().expect("port")];
        let e1 = n
            .attach(&c1.name, NetnsRef::Path(c1.path()), vec![r1])
            .await
            .expect("attach c1");
        let e2 = n
            .attach(
                &c2.name,
                NetnsRef::Path(c2.path()),
                vec![EndpointRequest {
                    network: "six".into(),
                    ..Default::default()
                }],
            )
            .await
            .expect("attach c2");
        let a1 = e1[0].address6.expect("c1 has an IPv6 address");
        let a2 = e2[0].address6.expect("c2 has an IPv6 address");
        assert!(s6.contains(a1) && s6.contains(a2) && a1 != a2);
        let shown = ip(&c2.name, &["-6", "addr", "show", "dev", "eth0"]);
        assert!(shown.contains(&format!("{a2}/64")), "{shown}");
        let route = ip(&c2.name, &["-6", "route", "show", "default"]);
        assert!(route.contains(&format!("via {g6}")), "{route}");
        tcp6_server(&c1.path(), 8000, "c1", stop.clone());

        let p2 = c2.path();
        let r =
            blocking(move || get6(&p2, SocketAddr::from((a1, 8000)), Duration::from_secs(5))).await;
        assert_eq!(r.expect("c2 -> c1 over IPv6"), "c1");
        let p2 = c2.path();
        let r = blocking(move || {
            get6(
                &p2,
                SocketAddr::from((INTERNET6, 8086)),
                Duration::from_secs(5),
            )
        })
        .await;
        assert_eq!(r.expect("IPv6 egress through masquerade"), "isp-a-v6");
        let ip_ = isp_path.clone();
        let r = blocking(move || {
            get6(
                &ip_,
                SocketAddr::from((HOST_A6, 8080)),
                Duration::from_secs(5),
            )
        })
        .await;
        assert_eq!(r.expect("IPv6 published port from isp-a"), "c1");

        // AAAA from the embedded DNS on the IPv6 gateway.
        let dns = StackDns::wire(&n, &root.join("resolv.conf"));
        let scope = NetworkScope {
            id: "six".into(),
            subnets: vec![
                spec.subnet.to_string().parse().expect("subnet"),
                s6.to_string().parse().expect("subnet6"),
            ],
            internal: false,
        };
        dns.dns
            .start_network(scope.clone(), SocketAddr::from((spec.gateway, 53)))
            .expect("v4 server");
        let server6 = dns
            .dns
            .start_network(scope, SocketAddr::from((g6, 53)))
            .expect("v6 server");
        dns.dns
            .records()
            .add_endpoint(
                "six",
                DnsEndpoint {
                    id: c1.name.clone(),
                    container: c1.name.clone(),
                    addresses: vec![IpAddr::V4(e1[0].address), IpAddr::V6(a1)],
                    names: vec!["web".into()],
                    ..Default::default()
                },
            )
            .expect("records");
        let p2 = c2.path();
        let got = blocking(move || aaaa(&p2, server6, "web")).await;
        assert_eq!(got, vec![a1], "AAAA of web over the IPv6 gateway");

        // Another IPv6 network is isolated from this one.
        n.create_network(NetworkCreate {
            name: "six-b".into(),
            enable_ipv6: true,
            ..Default::default()
        })
        .await
        .expect("second network");
        n.attach(
            &other.name,
            NetnsRef::Path(other.path()),
            vec![EndpointRequest {
                network: "six-b".into(),
                ..Default::default()
            }],
        )
        .await
        .expect("attach other");
        let po = other.path();
        let r = blocking(move || {
            get6(
                &po,
                SocketAddr::from((a1, 8000)),
                Duration::from_millis(600),
            )
        })
        .await;
        assert!(r.is_err(), "six-b reached six over IPv6: {r:?}");

        // Reconcile: the ip6 table deleted, a container's IPv6 address flushed.
        let r = n.reconcile().await;
        assert!(r.repairs.is_empty() && r.errors.is_empty(), "{r:?}");
        run(
            "ip",
            &[
                "netns", "exec", &host, "nft", "delete", "table", "ip6", "berth",
            ],
        );
        ip(
            &c2.name,
            &["-6", "addr", "flush", "dev", "eth0", "scope", "global"],
        );
        let r = n.reconcile().await;
        assert!(r.errors.is_empty(), "{:?}", r.errors);
        assert!(
            r.repairs.iter().any(|x| x.what.contains("ip6")),
            "{:?}",
            r.repairs
        );
        assert!(
            r.repairs.iter().any(|x| x.what.contains("IPv6 address")),
            "{:?}",
            r.repairs
        );
        let p2 = c2.path();
        let r = blocking(move || {
            get6(
                &p2,
                SocketAddr::from((INTERNET6, 8086)),
                Duration::from_secs(5),
            )
        })
        .await;
        assert_eq!(r.expect("IPv6 egress after reconcile"), "isp-a-v6");

        for c in [&c1, &c2, &other] {
            n.detach(&c.name, None).await.expect("detach");
        }
        dns.dns.stop_network("six");
        n.remove_network("six").await.expect("rm");
        n.remove_network("six-b").await.expect("rm");
        assert_eq!(
            ours6(&host),
            0,
            "ip6 accepts removed with the last IPv6 network"
        );
    });
    stop.store(true, Ordering::Relaxed);
}

#[test_with::root()]
#[test]
fn ipv6_static_addresses_ip_range_and_ipv6_host_ports() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let host = sim.host.name.clone();
    add_v6(&host, &format!("{HOST_A6}/64"), "upa");
    add_v6(&sim.isp_a.name, &format!("{ISP_A6}/64"), "eth0");
    let stop = Arc::new(AtomicBool::new(false));
    let (c1, c2, c3) = (
        NetnsGuard::new("c"),
        NetnsGuard::new("c"),
        NetnsGuard::new("c"),
    );
    let _root = sim.root.path().to_path_buf();
    let isp_path = sim.isp_a.path();
    let v6 = |s: &str| s.parse::<Ipv6Addr>().expect("v6");
    fx.with_netd_multi(async |n| {
        let six = |name: &str| NetworkCreate {
            name: name.into(),
            enable_ipv6: true,
            ..Default::default()
        };
        // An ip_range outside the IPv6 subnet is refused at creation.
        let err = n
            .create_network_with_ipv6(
                six("bad"),
                Ipv6Create {
                    subnet: Some("fd00:b5e7:99::/64".parse().expect("subnet")),
                    ip_range: Some("fd00:b5e7:98::/120".parse().expect("range")),
                    ..Default::default()
                },
            )
            .await
            .expect_err("ip_range outside the subnet");
        assert!(chain(&err).contains("ip_range"), "{err:#}");
        let spec = n
            .create_network_with_ipv6(
                six("r6"),
                Ipv6Create {
                    subnet: Some("fd00:b5e7:99::/64".parse().expect("subnet")),
                    ip_range: Some("fd00:b5e7:99::100/120".parse().expect("range")),
                    ..Default::default()
                },
            )
            .await
            .expect("create with an IPv6 ip_range");
        assert_eq!(spec.gateway6, Some(v6("fd00:b5e7:99::1")));

        // A free choice of static address (no IPv4 counterpart needed), published on every
        // IPv6 address of the host only.
        let mut r1 = EndpointRequest {
            network: "r6".into(),
            ipv6_address: Some(v6("fd00:b5e7:99::1:5")),
            ..Default::default()
        };
        r1.ports = vec!["[::]:18090:8000".parse::<PortMapping>().expect("port")];
        let e1 = n
            .attach(&c1.name, NetnsRef::Path(c1.path()), vec![r1])
            .await
            .expect("attach c1 with a static IPv6 address");
        assert_eq!(e1[0].address6, Some(v6("fd00:b5e7:99::1:5")));
        let shown = ip(&c1.name, &["-6", "addr", "show", "dev", "eth0"]);
        assert!(shown.contains("fd00:b5e7:99::1:5/64"), "{shown}");
        // Automatic: inside the ip_range (the IPv4 counterpart ::2 is outside it).
        let e2 = n
            .attach(
                &c2.name,
                NetnsRef::Path(c2.path()),
                vec![EndpointRequest {
                    network: "r6".into(),
                    ..Default::default()
                }],
            )
            .await
            .expect("attach c2");
        assert_eq!(e2[0].address6, Some(v6("fd00:b5e7:99::100")));

        // The same static address again: refused, naming the address and its owner.
        let err = n
            .attach(
                &c3.name,
                NetnsRef::Path(c3.path()),
                vec![EndpointRequest {
                    network: "r6".into(),
                    ipv6_address: Some(v6("fd00:b5e7:99::1:5")),
                    ..Default::default()
                }],
            )
            .await
            .expect_err("a taken IPv6 address");
        let msg = chain(&err);
        assert!(
            msg.contains("fd00:b5e7:99::1:5") && msg.contains(&c1.name),
            "{msg}"
        );
        for (bad, what) in [
            ("fd00:b5e7:99::1", "gateway"),
            ("fd00:b5e7:aa::5", "outside"),
        ] {
            let err = n
                .attach(
                    &c3.name,
                    NetnsRef::Path(c3.path()),
                    vec![EndpointRequest {
                        network: "r6".into(),
                        ipv6_address: Some(v6(bad)),
                        ..Default::default()
                    }],
                )
                .await
                .expect_err(bad);
            assert!(chain(&err).contains(what), "{err:#}");
        }
        // [::1] cannot be served; an IPv6 host address on an IPv4-only network neither.
        let mut lo = EndpointRequest {
            network: "r6".into(),
            ..Default::default()
        };
        lo.ports = vec!["[::1]:18091:80".parse::<PortMapping>().expect("port")];
        let err = n
            .attach(&c3.name, NetnsRef::Path(c3.path()), vec![lo])
            .await
            .expect_err("[::1] port");
        let msg = chain(&err);
        assert!(
            msg.contains("[::1]:18091") && msg.contains("not supported"),
            "{msg}"
        );
        n.create_network(NetworkCreate {
            name: "four".into(),
            ..Default::default()
        })
        .await
        .expect("IPv4-only network");
        let mut on4 = EndpointRequest {
            network: "four".into(),
            ..Default::default()
        };
        on4.ports = vec!["[::]:18092:80".parse::<PortMapping>().expect("port")];
        let err = n
            .attach(&c3.name, NetnsRef::Path(c3.path()), vec![on4])
            .await
            .expect_err("IPv6 port on an IPv4-only network");
        assert!(chain(&err).contains("no IPv6"), "{err:#}");
        assert!(
            n.state()
                .await
                .endpoints
                .iter()
                .all(|e| e.container != c3.name),
            "refused attaches leave no endpoint"
        );

        // The [::] port answers over IPv6 from isp-a, and is not published on IPv4.
        tcp6_server(&c1.path(), 8000, "c1-v6", stop.clone());
        let ip_ = isp_path.clone();
        let r = blocking(move || {
            get6(
                &ip_,
                SocketAddr::from((HOST_A6, 18090)),
                Duration::from_secs(5),
            )
        })
        .await;
        assert_eq!(r.expect("[::]:18090 from isp-a"), "c1-v6");
        let ip_ = isp_path.clone();
        let r = blocking(move || {
            get6(
                &ip_,
                SocketAddr::from((HOST_A, 18090)),
                Duration::from_millis(600),
            )
        })
        .await;
        assert!(r.is_err(), "an IPv6-only port answered on IPv4: {r:?}");

        for c in [&c1, &c2] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("r6").await.expect("rm");
        n.remove_network("four").await.expect("rm");
    });
    stop.store(true, Ordering::Relaxed);
}
