//! Root tests of published ports on a simulated host (network namespaces only): a port a host
//! process holds is refused naming the process, and remote clients' source addresses reach
//! the container unchanged.

mod common;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, UdpSocket};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{EndpointRequest, NetworkCreate};
use common::*;

fn ports(specs: &[&str]) -> Vec<PortMapping> {
    specs
        .iter()
        .map(|s| s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
        .collect()
}

fn ep(network: &str, specs: &[&str]) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        ports: ports(specs),
        ..Default::default()
    }
}

async fn blocking<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// An IPv6 TCP listener on `[::]:port` with IPV6_V6ONLY as given.
fn listen6(port: u16, v6only: bool) -> OwnedFd {
    use nix::sys::socket::{
        self, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn6, sockopt,
    };
    let fd = socket::socket(
        AddressFamily::Inet6,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    socket::setsockopt(&fd, sockopt::Ipv6V6Only, &v6only).expect("IPV6_V6ONLY");
    let addr = SockaddrIn6::from(std::net::SocketAddrV6::new(
        std::net::Ipv6Addr::UNSPECIFIED,
        port,
        0,
        0,
    ));
    socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &addr).expect("bind [::]");
    socket::listen(&fd, Backlog::new(8).expect("backlog")).expect("listen");
    fd
}

/// A server in `ns` answering each TCP connection on `port` and each UDP datagram on
/// `udp_port` with the client's address as it sees it; stopped on drop.
struct PeerEcho {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl PeerEcho {
    fn start(ns: &Path, port: u16, udp_port: u16) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (tcp, udp) = in_ns(ns, || {
            let t = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).expect("tcp");
            let u =
                UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, udp_port)).expect("udp");
            (t, u)
        });
        tcp.set_nonblocking(true).expect("nonblocking");
        u_timeout(&udp);
        let st = stop.clone();
        let t1 = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                match tcp.accept() {
                    Ok((mut c, peer)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                        let mut buf = [0u8; 256];
                        let _ = c.read(&mut buf);
                        let _ = write!(c, "HTTP/1.0 200 OK\r\n\r\n{}", peer.ip());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        let st = stop.clone();
        let t2 = std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            while !st.load(Ordering::Relaxed) {
                if let Ok((_, peer)) = udp.recv_from(&mut buf) {
                    let _ = udp.send_to(peer.ip().to_string().as_bytes(), peer);
                }
            }
        });
        Self {
            stop,
            threads: vec![t1, t2],
        }
    }
}

fn u_timeout(u: &UdpSocket) {
    u.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
}

impl Drop for PeerEcho {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// Retries `udp_ask` (the DNAT rule may land a moment after attach returns).
fn udp_ask_retry(ns: &Path, src: u16, to: SocketAddrV4) -> std::io::Result<String> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match udp_ask(ns, src, to, Duration::from_millis(300)) {
            Ok(s) => return Ok(s),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => {}
        }
    }
}

#[test_with::root()]
#[test]
fn ports_held_by_host_processes_are_refused_naming_the_holder() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let (c1, c2) = (NetnsGuard::new("c"), NetnsGuard::new("c"));
    let _root = sim.root.path().to_path_buf();
    let host = sim.host.path();
    // Host sockets in the simulated host namespace, held by this test process.
    let (tcp_any, tcp_lo, udp_any, dual6, only6) = in_ns(&host, || {
        (
            TcpListener::bind("0.0.0.0:18080").expect("bind tcp"),
            TcpListener::bind("127.0.0.1:18081").expect("bind tcp lo"),
            UdpSocket::bind("0.0.0.0:18053").expect("bind udp"),
            listen6(18090, false),
            listen6(18091, true),
        )
    });
    let me = format!("process {} (", std::process::id());
    fx.with_netd(async |n| {
        n.create_network(NetworkCreate {
            name: "pub".into(),
            ..Default::default()
        })
        .await
        .expect("create");
        let refused = |specs: &'static [&'static str]| {
            let n = n.clone();
            let path = c1.path();
            let name = c1.name.clone();
            async move {
                n.attach(&name, NetnsRef::Path(path), vec![ep("pub", specs)])
                    .await
                    .err()
                    .map(|e| e.to_string())
            }
        };
        let e = refused(&["18080:80"]).await.expect("wildcard listener");
        assert!(
            e.contains("tcp/18080") && e.contains("0.0.0.0:18080") && e.contains(&me),
            "{e}"
        );
        // One port of a 1000-port range.
        let e = refused(&["17500-18499:17500-18499"])
            .await
            .expect("range over a listener");
        assert!(e.contains("tcp/1808") && e.contains(&me), "{e}");
        // A specific-address listener meets a wildcard publication and its own address,
        // not another one.
        let e = refused(&["18081:80"]).await.expect("127.0.0.1 listener");
        assert!(e.contains("127.0.0.1:18081") && e.contains(&me), "{e}");
        let e = refused(&["127.0.0.1:18081:80"])
            .await
            .expect("same address");
        assert!(e.contains("on 127.0.0.1"), "{e}");
        // UDP, and protocols apart.
        let e = refused(&["18053:53/udp"]).await.expect("udp listener");
        assert!(
            e.contains("udp/18053") && e.contains("0.0.0.0:18053") && e.contains(&me),
            "{e}"
        );
        // A dual-stack [::] listener takes IPv4 too; a v6only one does not.
        let e = refused(&["18090:80"]).await.expect("dual-stack listener");
        assert!(e.contains("[::]:18090") && e.contains(&me), "{e}");
        assert!(
            n.state().await.endpoints.is_empty(),
            "refused attaches left endpoints"
        );
        assert_eq!(
            refused(&["172.30.1.2:18081:80", "18053:53", "18091:80", "18082:80"]).await,
            None,
            "other address, other protocol, v6only listener, free port"
        );
        // The preflight check answers the same without attaching, and `except` leaves
        // out publications of containers about to be replaced.
        let none = BTreeSet::new();
        let (i, e) = n
            .check_ports(&ports(&["18083:80", "18080:80"]), &none)
            .await
            .expect("check")
            .expect("refused");
        assert_eq!(i, 1);
        assert!(e.to_string().contains(&me), "{e}");
        let (i, e) = n
            .check_ports(&ports(&["18082:81"]), &none)
            .await
            .expect("check")
            .expect("berth's own publication");
        assert_eq!(i, 0);
        assert!(e.to_string().contains(&c1.name), "{e}");
        let except: BTreeSet<String> = [c1.name.clone()].into();
        assert!(
            n.check_ports(&ports(&["18082:81"]), &except)
                .await
                .expect("check")
                .is_none()
        );
        // publish() checks too.
        n.attach(&c2.name, NetnsRef::Path(c2.path()), vec![ep("pub", &[])])
            .await
            .expect("attach c2");
        let e = n
            .publish(&c2.name, "pub", ports(&["18080:80"]))
            .await
            .expect_err("publish over a listener");
        assert!(e.to_string().contains(&me), "{e}");
        // Once the host process lets go, the port can be published. A command another test
        // of this process spawns at that moment holds a copy of the listener until its exec
        // closes it (close-on-exec), so the port may stay held for a moment: retry briefly.
        drop(tcp_any);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match n.publish(&c2.name, "pub", ports(&["18080:80"])).await {
                Ok(_) => break,
                Err(e) if std::time::Instant::now() < deadline => {
                    eprintln!("publish after the listener closed, retrying: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("publish after the listener closed: {e}"),
            }
        }
        for c in [&c1, &c2] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("pub").await.expect("rm");
    });
    drop((tcp_lo, udp_any, dual6, only6));
}

#[test_with::root()]
#[test]
fn berth_dns_servers_do_not_block_publishing() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let c = NetnsGuard::new("c");
    let _root = sim.root.path().to_path_buf();
    fx.with_netd(async |n| {
        let net = n
            .create_network(NetworkCreate {
                name: "dns".into(),
                ..Default::default()
            })
            .await
            .expect("create");
        let dns = berth_netd::dns::DnsService::new(
            Arc::new(berth_netd::dns::DnsRecords::new()),
            Arc::new(berth_netd::dns::Upstreams::new(
                Vec::new(),
                Vec::new(),
                Default::default(),
            )),
            Default::default(),
            Default::default(),
        );
        dns.start_network(
            berth_netd::dns::NetworkScope {
                id: "dns".into(),
                subnets: vec![net.subnet.to_string().parse().expect("subnet")],
                internal: false,
            },
            std::net::SocketAddr::new(net.gateway.into(), 53),
        )
        .expect("dns server");
        n.attach(
            &c.name,
            NetnsRef::Path(c.path()),
            vec![ep("dns", &["53:53/udp", "53:53"])],
        )
        .await
        .expect("berth's own DNS sockets are exempt");
        n.detach(&c.name, None).await.expect("detach");
        dns.stop_network("dns");
        n.remove_network("dns").await.expect("rm");
    });
}

#[test_with::root()]
#[test]
fn remote_clients_source_address_reaches_the_container() {
    let fx = Fx::<0>::new();
    let sim = &fx.sim;
    let web = NetnsGuard::new("c");
    let _root = sim.root.path().to_path_buf();
    let isp_a = sim.isp_a.path();
    fx.with_netd_multi(async |n| {
        let net = n
            .create_network(NetworkCreate {
                name: "src".into(),
                ..Default::default()
            })
            .await
            .expect("create");
        n.attach(
            &web.name,
            NetnsRef::Path(web.path()),
            vec![ep("src", &["18080:80", "18053:5353/udp"])],
        )
        .await
        .expect("attach");
        let _echo = PeerEcho::start(&web.path(), 80, 5353);
        let ia = isp_a.clone();
        let tcp = blocking(move || {
            http_get_retry(
                &ia,
                SocketAddrV4::new(HOST_A, 18080),
                Duration::from_secs(5),
            )
        })
        .await
        .expect("tcp from isp-a");
        assert_eq!(
            tcp,
            ISP_A.to_string(),
            "TCP: the container sees the remote client, not the gateway {}",
            net.gateway
        );
        let ia = isp_a.clone();
        let udp = blocking(move || udp_ask_retry(&ia, 41001, SocketAddrV4::new(HOST_A, 18053)))
            .await
            .expect("udp from isp-a");
        assert_eq!(
            udp,
            ISP_A.to_string(),
            "UDP: the container sees the remote client, not the gateway {}",
            net.gateway
        );
        n.detach(&web.name, None).await.expect("detach");
        n.remove_network("src").await.expect("rm");
    });
}
