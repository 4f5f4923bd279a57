//! netd benchmark on a simulated host (network namespaces only; run as root):
//!
//! ```text
//! cargo run --release -p berth-netd --example netd_bench
//! ```
//! (`FAST_PATH=0` runs netd without its container-to-container fast path.)
//!
//! Prints: time to attach one endpoint (median and p90 of 30), time to attach 100 endpoints,
//! reconcile time when nothing is wrong and after `nft flush ruleset`, the default-route
//! NIC switch ethernet <-> wifi (default route, link and resolv.conf at once; until reconcile
//! is done, until a container's embedded-DNS answer for an outside name comes from the new
//! ISP's resolver, and until it reaches that ISP's web server through NAT), and published-port request latency through 127.0.0.1 (kernel DNAT)
//! against the container's own address.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/dns_util/mod.rs"]
mod dns_util;
#[path = "../tests/nic_util/mod.rs"]
mod nic_util;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{Config, EndpointRequest, Netd, NetworkCreate};
use common::*;
use dns_util::resolve_a;
use nic_util::*;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

fn ep(network: &str) -> EndpointRequest {
    EndpointRequest {
        network: network.into(),
        ..Default::default()
    }
}

/// A sink in `ns`: reads each connection to EOF, then answers "ok".
fn sink_server(ns: &Path, port: u16) {
    let ns = ns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        in_ns(&ns, || {
            let l =
                TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).expect("bind");
            tx.send(()).ok();
            for c in l.incoming() {
                let Ok(mut c) = c else { break };
                let mut buf = vec![0u8; 1 << 16];
                while matches!(c.read(&mut buf), Ok(n) if n > 0) {}
                let _ = c.write_all(b"ok");
            }
        })
    });
    rx.recv().expect("sink up");
}

/// A userland TCP proxy in `ns` (what docker-proxy does), for comparison with DNAT.
fn userland_proxy(ns: &Path, listen: SocketAddrV4, to: SocketAddrV4) {
    let ns = ns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        in_ns(&ns, || {
            let l = TcpListener::bind(listen).expect("bind proxy");
            tx.send(()).ok();
            for c in l.incoming() {
                let Ok(a) = c else { break };
                let Ok(b) = TcpStream::connect(to) else {
                    continue;
                };
                let (mut a2, mut b2) =
                    (a.try_clone().expect("clone"), b.try_clone().expect("clone"));
                let (mut a, mut b) = (a, b);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut a2, &mut b2);
                    let _ = b2.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut b, &mut a);
                    let _ = a.shutdown(std::net::Shutdown::Write);
                });
            }
        })
    });
    rx.recv().expect("proxy up");
}

/// Sends `bytes` to `to` from `ns` and waits for the sink's answer; Gbit/s.
fn throughput(ns: &Path, to: SocketAddrV4, bytes: usize) -> f64 {
    in_ns(ns, || {
        let t = Instant::now();
        let mut c = TcpStream::connect(to).expect("connect");
        let buf = vec![7u8; 1 << 16];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len());
            c.write_all(&buf[..n]).expect("write");
            left -= n;
        }
        c.shutdown(std::net::Shutdown::Write).expect("shutdown");
        let mut ok = [0u8; 2];
        c.read_exact(&mut ok).expect("answer");
        bytes as f64 * 8.0 / t.elapsed().as_secs_f64() / 1e9
    })
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root");
        std::process::exit(2);
    }
    require_tools();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {} ({} CPUs)",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let sim = Sim::new();
    let uplinks = Uplinks::new(&sim);
    let root = sim.root.path().to_path_buf();
    let host = sim.host.name.clone();
    let singles: Vec<NetnsGuard> = (0..30).map(|_| NetnsGuard::new("s")).collect();
    let many: Vec<NetnsGuard> = (0..100).map(|_| NetnsGuard::new("m")).collect();
    let web = NetnsGuard::new("w");
    let host_path = sim.host.path();
    sim.on_host(|| {
        rt().block_on(async {
            // FAST_PATH=0: without the container-to-container fast path (its per-attach cost
            // is the difference).
            let mut cfg = Config::new(&root);
            cfg.fast_path = std::env::var("FAST_PATH").map_or(true, |v| v != "0");
            println!("netd fast path: {}", if cfg.fast_path { "on" } else { "off" });
            let n = Netd::open(cfg).await.expect("open");
            let t = Instant::now();
            n.create_network(NetworkCreate {
                name: "bench".into(),
                subnet: Some("10.201.0.0/16".parse().expect("subnet")),
                ..Default::default()
            })
            .await
            .expect("create");
            println!("create network (bridge + nft table):   {:?}", t.elapsed());

            // One at a time, 50 ms apart, detaching only afterwards: a veth deletion's deferred
            // kernel cleanup holds the RTNL lock and would be billed to the next attach.
            let mut one = Vec::new();
            for c in &singles {
                tokio::time::sleep(Duration::from_millis(50)).await;
                let t = Instant::now();
                n.attach(&c.name, NetnsRef::Path(c.path()), vec![ep("bench")])
                    .await
                    .expect("attach");
                one.push(t.elapsed());
            }
            for c in &singles {
                n.detach(&c.name, None).await.expect("detach");
            }
            let med = pct(&mut one, 0.5);
            let p90 = pct(&mut one, 0.9);
            println!("attach one endpoint (30 runs):          median {med:?}, p90 {p90:?} (goal < 5 ms)");
            tokio::time::sleep(Duration::from_millis(500)).await;

            let t = Instant::now();
            for c in &many {
                n.attach(&c.name, NetnsRef::Path(c.path()), vec![ep("bench")])
                    .await
                    .expect("attach");
            }
            let all = t.elapsed();
            println!("attach 100 endpoints (sequential):      {all:?} ({:?} each)", all / 100);

            let r = n.reconcile().await;
            println!("reconcile, nothing to repair (100 eps): {:?}", r.duration);
            run("ip", &["netns", "exec", &host, "nft", "flush", "ruleset"]);
            let r = n.reconcile().await;
            println!("reconcile after nft flush ruleset:      {:?} ({} repair)", r.duration, r.repairs.len());

            let t = Instant::now();
            for c in &many {
                n.detach(&c.name, None).await.expect("detach");
            }
            println!("detach 100 endpoints:                   {:?}", t.elapsed());

            // Published port: kernel DNAT at 127.0.0.1 vs the container address directly.
            let mut r = ep("bench");
            r.ports = vec![
                "8080:80".parse::<PortMapping>().expect("port"),
                "9000:9000".parse::<PortMapping>().expect("port"),
            ];
            let e = n
                .attach(&web.name, NetnsRef::Path(web.path()), vec![r])
                .await
                .expect("attach web");
            let _srv = tcp_server(&web.path(), 80, "web");
            let direct = SocketAddrV4::new(e[0].address, 80);
            let local = SocketAddrV4::new([127, 0, 0, 1].into(), 8080);
            let hp = host_path.clone();
            let (d, l) = tokio::task::spawn_blocking(move || {
                let time = |to| {
                    let mut v = Vec::new();
                    for _ in 0..200 {
                        let t = Instant::now();
                        http_get(&hp, to, Duration::from_secs(2)).expect("get");
                        v.push(t.elapsed());
                    }
                    v
                };
                let _ = http_get_retry(&hp, local, Duration::from_secs(5));
                (time(direct), time(local))
            })
            .await
            .expect("probe");
            let (mut d, mut l) = (d, l);
            println!(
                "HTTP request from the host, median/p90:  direct {:?}/{:?}, via 127.0.0.1:8080 DNAT {:?}/{:?}",
                pct(&mut d, 0.5),
                pct(&mut d, 0.9),
                pct(&mut l, 0.5),
                pct(&mut l, 0.9)
            );

            // Throughput from the host: direct, kernel DNAT at 127.0.0.1 and at the uplink
            // address, and a userland proxy at 127.0.0.1.
            sink_server(&web.path(), 9000);
            let sink = SocketAddrV4::new(e[0].address, 9000);
            userland_proxy(&host_path, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100), sink);
            let hp = host_path.clone();
            let figures = tokio::task::spawn_blocking(move || {
                let size = 512 << 20;
                let _ = throughput(&hp, sink, 1 << 20);
                [
                    ("direct to the container", sink),
                    ("DNAT 127.0.0.1:9000", SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9000)),
                    ("DNAT uplink address:9000", SocketAddrV4::new(HOST_A, 9000)),
                    ("userland proxy 127.0.0.1:9100", SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100)),
                ]
                .map(|(what, to)| {
                    let best = (0..3).map(|_| throughput(&hp, to, size)).fold(0.0, f64::max);
                    (what, best)
                })
            })
            .await
            .expect("throughput");
            for (what, g) in figures {
                println!("TCP throughput from the host, {what:<30} {g:.1} Gbit/s (best of 3 x 512 MiB)");
            }
            let hp = host_path.clone();
            let mut px = tokio::task::spawn_blocking(move || {
                let sink_http = SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100);
                let _ = sink_http;
                let mut v = Vec::new();
                for _ in 0..200 {
                    let t = Instant::now();
                    let _ = throughput(&hp, SocketAddrV4::new(Ipv4Addr::LOCALHOST, 9100), 1);
                    v.push(t.elapsed());
                }
                v
            })
            .await
            .expect("proxy latency");
            println!(
                "1-byte request via userland proxy, median/p90: {:?}/{:?}",
                pct(&mut px, 0.5),
                pct(&mut px, 0.9)
            );

            // The NIC change, repeated: ethernet (isp-a) -> wifi (isp-b) -> ethernet ...
            // Each switch moves the default route, downs or ups isp-a's link and replaces
            // resolv.conf at once; a container that is never touched must get the new ISP's
            // DNS answer for an outside name through the embedded DNS, and reach the web server
            // that answer names through NAT.
            let dns = StackDns::wire(&n, &uplinks.resolv_conf);
            let spec = n.networks().await.into_iter().find(|x| x.name == "bench").expect("bench");
            let server = dns.start(&spec);
            let watcher = tokio::spawn(n.clone().run(Duration::from_secs(30)));
            let mut changes = n.host_changes();
            tokio::time::sleep(Duration::from_millis(100)).await;
            let wp = web.path();
            let ok = tokio::task::spawn_blocking(move || {
                let end = Instant::now() + Duration::from_secs(5);
                while Instant::now() < end {
                    if in_ns(&wp, || resolve_a(server, "example.test", Duration::from_millis(200)))
                        .is_ok_and(|v| v == [A_WEB])
                    {
                        return true;
                    }
                }
                false
            })
            .await
            .expect("probe");
            assert!(ok, "no DNS answer from isp-a before the switches");
            let (mut rec, mut dns_t, mut web_t) = (Vec::new(), Vec::new(), Vec::new());
            for i in 0..10 {
                let to_b = i % 2 == 0;
                let (want_ip, want_body) = if to_b { (B_WEB, "isp-b") } else { (A_WEB, "isp-a") };
                tokio::time::sleep(Duration::from_millis(300)).await;
                changes.borrow_and_update();
                let t0 = Instant::now();
                if to_b {
                    uplinks.switch_to_b(&sim);
                } else {
                    uplinks.switch_to_a(&sim);
                }
                let _ = tokio::time::timeout(Duration::from_secs(5), changes.changed()).await;
                rec.push(t0.elapsed());
                let wp = web.path();
                let (d, w) = tokio::task::spawn_blocking(move || {
                    let mut d = None;
                    while t0.elapsed() < Duration::from_secs(10) {
                        if in_ns(&wp, || resolve_a(server, "example.test", Duration::from_millis(50)))
                            .is_ok_and(|v| v == [want_ip])
                        {
                            d = Some(t0.elapsed());
                            break;
                        }
                    }
                    let mut w = None;
                    while d.is_some() && t0.elapsed() < Duration::from_secs(10) {
                        if http_get(&wp, SocketAddrV4::new(want_ip, 80), Duration::from_millis(50))
                            .is_ok_and(|b| b == want_body)
                        {
                            w = Some(t0.elapsed());
                            break;
                        }
                    }
                    (d, w)
                })
                .await
                .expect("probe");
                dns_t.push(d.expect("DNS answer from the new ISP"));
                web_t.push(w.expect("web server of the new ISP"));
            }
            println!(
                "NIC switch ethernet<->wifi (10 switches: route + link + resolv.conf), median/max:"
            );
            for (what, v) in [
                ("reconcile done after the switch", &mut rec),
                ("outside name answered by the new ISP", &mut dns_t),
                ("its web server reached via NAT", &mut web_t),
            ] {
                let max = *v.iter().max().expect("runs");
                println!("  {what:<38} {:?} / {max:?} (goal < 200 ms)", pct(v, 0.5));
            }
            drop(dns);
            watcher.abort();
            n.detach(&web.name, None).await.expect("detach");
            n.remove_network("bench").await.expect("rm");
        })
    });
    let left = sim.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
