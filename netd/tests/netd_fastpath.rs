//! Root tests of the container-to-container fast path (a tc program on each host veth that
//! hands a frame for another container of the same network straight to it): data arrives
//! intact and skips the bridge, nothing crosses networks, `enable_icc=false` still isolates,
//! a removed container's MAC stops forwarding, static FDB entries live and go with their
//! endpoints, and a restarted netd finds the programs and maps again and repairs them.

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_netd::fastpath::sys;
use berth_netd::state::{BridgeOptions, Endpoint};
use berth_netd::{Config, EndpointRequest, Netd, NetworkCreate};
use common::sim::*;
use common::*;

const PORT: u16 = 7300;
const BYTES: usize = 8 << 20;

/// A server in `ns` that answers each connection with the length and a checksum of all it
/// read (until the client shuts its side).
fn sink_server(ns: &Path) -> Server {
    let ns = ns.to_path_buf();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let st = stop.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        in_ns(&ns, || {
            let l =
                TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, PORT)).expect("bind");
            l.set_nonblocking(true).expect("nonblocking");
            tx.send(()).ok();
            while !st.load(std::sync::atomic::Ordering::Relaxed) {
                match l.accept() {
                    Ok((mut c, _)) => {
                        let _ = c.set_nonblocking(false);
                        let _ = c.set_read_timeout(Some(Duration::from_secs(10)));
                        let mut buf = vec![0u8; 64 * 1024];
                        let (mut n, mut sum) = (0usize, 0u64);
                        while let Ok(k) = c.read(&mut buf) {
                            if k == 0 {
                                break;
                            }
                            for b in &buf[..k] {
                                sum = sum.wrapping_mul(31).wrapping_add(*b as u64);
                            }
                            n += k;
                        }
                        let _ = write!(c, "{n}:{sum}");
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        })
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server up");
    Server::from_parts(stop, t)
}

fn pattern() -> Vec<u8> {
    (0..BYTES).map(|i| (i * 7 + i / 4093) as u8).collect()
}

fn expected() -> String {
    let mut sum = 0u64;
    for b in pattern() {
        sum = sum.wrapping_mul(31).wrapping_add(b as u64);
    }
    format!("{BYTES}:{sum}")
}

/// Sends the pattern from `ns` to `to` and returns the server's answer.
fn send(ns: &Path, to: Ipv4Addr, timeout: Duration) -> std::io::Result<String> {
    in_ns(ns, || {
        let mut c =
            TcpStream::connect_timeout(&SocketAddr::V4(SocketAddrV4::new(to, PORT)), timeout)?;
        c.set_write_timeout(Some(Duration::from_secs(10)))?;
        c.set_read_timeout(Some(Duration::from_secs(10)))?;
        c.write_all(&pattern())?;
        c.shutdown(Shutdown::Write)?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s)
    })
}

async fn send_async(ns: PathBuf, to: Ipv4Addr) -> std::io::Result<String> {
    blocking(move || send(&ns, to, Duration::from_secs(2))).await
}

/// Whether a UDP datagram sent from `from` to `to`:7301 arrives in `dest` (one way: a
/// frame that reaches the victim counts even when no reply could come back).
async fn udp_arrives(from: PathBuf, dest: PathBuf, to: Ipv4Addr) -> bool {
    blocking(move || {
        let (tx, rx) = std::sync::mpsc::channel();
        let listener = std::thread::spawn(move || {
            in_ns(&dest, || {
                let s = std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 7301))
                    .expect("bind");
                s.set_read_timeout(Some(Duration::from_millis(1500)))
                    .expect("timeout");
                tx.send(()).ok();
                let mut buf = [0u8; 64];
                s.recv_from(&mut buf).is_ok()
            })
        });
        rx.recv_timeout(Duration::from_secs(5))
            .expect("listener up");
        in_ns(&from, || {
            let s = std::net::UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))
                .expect("bind");
            for _ in 0..5 {
                let _ = s.send_to(b"knock", SocketAddrV4::new(to, 7301));
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        listener.join().expect("listener")
    })
    .await
}

/// Bytes the host namespace's `ifname` sent (to its container).
fn tx_bytes(host: &str, ifname: &str) -> u64 {
    let out = ip(host, &["-s", "-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["stats64"]["tx"]["bytes"].as_u64().expect("tx bytes")
}

/// The static FDB entries of bridge `br` in `host`, as "MAC dev".
fn static_fdb(host: &str, br: &str) -> Vec<String> {
    run("bridge", &["-n", host, "fdb", "show", "br", br])
        .lines()
        .filter(|l| l.ends_with(" static") || l.contains(" static "))
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() > 2).then(|| format!("{} {}", w[0], w[2]))
        })
        .collect()
}

fn mac(e: &Endpoint) -> String {
    e.mac.to_lowercase()
}

fn ifindex(host: &str, ifname: &str) -> u32 {
    let out = ip(host, &["-j", "link", "show", "dev", ifname]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("ip -j");
    v[0]["ifindex"].as_u64().expect("ifindex") as u32
}

fn net_with(name: &str, no_icc: bool) -> NetworkCreate {
    NetworkCreate {
        name: name.into(),
        options: BridgeOptions {
            no_icc,
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test_with::root()]
#[test]
fn frames_skip_the_bridge_arrive_intact_and_survive_a_restart() {
    let fx = Fx::<2>::new();
    let [c0, c1] = &fx.c;
    let host = fx.sim.host.name.clone();
    let root = fx.root();
    let _srv = sink_server(&c1.path());
    let mut prog_id = 0;
    let mut map_ids = Vec::new();
    fx.with_netd(async |n| {
        let net = n.create_network(net("fp")).await.expect("create");
        let e0 = attach(&n, c0, vec![ep("fp")]).await.remove(0);
        let e1 = attach(&n, c1, vec![ep("fp")]).await.remove(0);
        assert_eq!(n.fast_path_off_reason(), None);
        prog_id = n
            .fast_path_program("fp")
            .await
            .expect("a program for the network");
        let fd = sys::prog_fd_by_id(prog_id).expect("program by id");
        map_ids = sys::prog_info(std::os::fd::AsFd::as_fd(&fd))
            .expect("info")
            .map_ids;
        assert_eq!(map_ids.len(), 1, "one map");
        drop(fd);
        let stats = sys::enable_stats().expect("BPF_ENABLE_STATS");
        let runs = |id| {
            let fd = sys::prog_fd_by_id(id).expect("program by id");
            sys::prog_info(std::os::fd::AsFd::as_fd(&fd))
                .expect("info")
                .run_cnt
        };
        let (runs0, tx0) = (runs(prog_id), tx_bytes(&host, &e1.host_ifname));
        let got = send_async(c0.path(), e1.address).await.expect("c0 -> c1");
        assert_eq!(got, expected(), "the data arrives intact");
        let (runs1, tx1) = (runs(prog_id), tx_bytes(&host, &e1.host_ifname));
        assert!(
            runs1 > runs0 + 100,
            "the program ran for the flow: {runs0} -> {runs1}"
        );
        assert!(
            tx1 - tx0 < (BYTES as u64) / 8,
            "the bridge did not carry the data to c1's veth: {} bytes",
            tx1 - tx0
        );
        drop(stats);
        // Map and static FDB entries, one per endpoint.
        let entries = n.fast_path_entries("fp").await.expect("map");
        let want = vec![
            (mac(&e0), ifindex(&host, &e0.host_ifname)),
            (mac(&e1), ifindex(&host, &e1.host_ifname)),
        ];
        let mut want_sorted = want.clone();
        want_sorted.sort();
        assert_eq!(entries, want_sorted);
        let fdb = static_fdb(&host, &net.bridge);
        for e in [&e0, &e1] {
            assert!(
                fdb.contains(&format!("{} {}", mac(e), e.host_ifname)),
                "{fdb:?}"
            );
        }

        // A restarted netd finds the program and map again through the veths.
        drop(n);
        let n = Netd::open(Config::new(&root)).await.expect("reopen");
        let rep = n.reconcile().await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert!(
            !rep.repairs.iter().any(|r| r.what.contains("fast path")),
            "nothing to repair: {:?}",
            rep.repairs
        );
        assert_eq!(
            n.fast_path_program("fp").await,
            Some(prog_id),
            "found again"
        );

        // c1's veth pair vanishes (a restarted container gets a new one): reconcile makes a
        // new pair and points c1's MAC at its new index.
        let old = ifindex(&host, &e1.host_ifname);
        ip(&host, &["link", "del", &e1.host_ifname]);
        let rep = n.reconcile().await;
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        let new = ifindex(&host, &e1.host_ifname);
        assert_ne!(old, new);
        let entries = n.fast_path_entries("fp").await.expect("map");
        assert!(entries.contains(&(mac(&e1), new)), "{entries:?}");
        // A map entry damaged behind netd's back is repaired too.
        let got = send_async(c0.path(), e1.address)
            .await
            .expect("c0 -> c1 after repair");
        assert_eq!(got, expected());
        assert!(static_fdb(&host, &net.bridge).contains(&format!(
            "{} {}",
            mac(&e1),
            e1.host_ifname
        )));

        n.detach(&c0.name, None).await.expect("detach");
        n.detach(&c1.name, None).await.expect("detach");
        assert!(
            static_fdb(&host, &net.bridge).is_empty(),
            "FDB entries go with the endpoints"
        );
        assert_eq!(
            n.fast_path_entries("fp").await,
            Some(vec![]),
            "map emptied at detach"
        );
        n.remove_network("fp").await.expect("remove");
    });
    // The program (and its map) went with the last device and netd's handle.
    let gone = sys::prog_fd_by_id(prog_id).map(drop);
    assert_eq!(
        gone.map_err(|e| e.raw_os_error()),
        Err(Some(libc::ENOENT)),
        "program {prog_id} left behind"
    );
    for id in map_ids {
        let gone = sys::map_fd_by_id(id).map(drop);
        assert_eq!(
            gone.map_err(|e| e.raw_os_error()),
            Err(Some(libc::ENOENT)),
            "map {id} left behind"
        );
    }
}

#[test_with::root()]
#[test]
fn nothing_crosses_networks_and_icc_off_still_isolates() {
    let fx = Fx::<4>::new();
    let [c0, c1, c2, c3] = &fx.c;
    let _s1 = sink_server(&c1.path());
    let _s3 = sink_server(&c3.path());
    fx.with_netd(async |n| {
        n.create_network(net("fpa")).await.expect("create");
        let b = n.create_network(net("fpb")).await.expect("create");
        n.create_network(net_with("fpiso", true))
            .await
            .expect("create");
        let _e0 = attach(&n, c0, vec![ep("fpa")]).await.remove(0);
        let e1 = attach(&n, c1, vec![ep("fpb")]).await.remove(0);
        let e2 = attach(&n, c2, vec![ep("fpiso")]).await.remove(0);
        let e3 = attach(&n, c3, vec![ep("fpiso")]).await.remove(0);
        assert!(n.fast_path_program("fpa").await.is_some());
        assert!(n.fast_path_program("fpb").await.is_some());

        // c0 (network A) addresses a frame straight to c1's MAC (network B), as if on link.
        ip(
            &c0.name,
            &["route", "add", &b.subnet.to_string(), "dev", "eth0"],
        );
        ip(
            &c0.name,
            &[
                "neigh",
                "add",
                &e1.address.to_string(),
                "lladdr",
                &e1.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        assert!(
            !udp_arrives(c0.path(), c1.path(), e1.address).await,
            "a frame for network B's MAC crossed from A"
        );

        // On the ICC-off network neither plain traffic nor a frame aimed at the peer's MAC passes.
        let r = send_async(c2.path(), e3.address).await;
        assert!(r.is_err(), "ICC off: c2 reached c3: {r:?}");
        ip(
            &c2.name,
            &[
                "neigh",
                "replace",
                &e3.address.to_string(),
                "lladdr",
                &e3.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        assert!(
            !udp_arrives(c2.path(), c3.path(), e3.address).await,
            "ICC off: c2 reached c3 by its MAC"
        );
        let _ = e2;
        assert_eq!(
            n.fast_path_program("fpiso").await,
            None,
            "no fast path without ICC"
        );

        for c in [c0, c1, c2, c3] {
            n.detach(&c.name, None).await.expect("detach");
        }
        for k in ["fpa", "fpb", "fpiso"] {
            n.remove_network(k).await.expect("remove");
        }
    });
}

#[test_with::root()]
#[test]
fn a_removed_containers_mac_stops_forwarding() {
    let fx = Fx::<3>::new();
    let [c0, c1, c2] = &fx.c;
    let host = fx.sim.host.name.clone();
    let _s1 = sink_server(&c1.path());
    let _s2 = sink_server(&c2.path());
    fx.with_netd(async |n| {
        let net = n.create_network(net("fpr")).await.expect("create");
        attach(&n, c0, vec![ep("fpr")]).await;
        let e1 = attach(&n, c1, vec![ep("fpr")]).await.remove(0);
        assert_eq!(
            send_async(c0.path(), e1.address).await.expect("c0 -> c1"),
            expected()
        );
        assert!(
            udp_arrives(c0.path(), c1.path(), e1.address).await,
            "the probe works"
        );
        n.detach(&c1.name, None).await.expect("detach");
        let entries = n.fast_path_entries("fpr").await.expect("map");
        assert!(
            !entries.iter().any(|(m, _)| *m == mac(&e1)),
            "the removed container's MAC still forwards: {entries:?}"
        );
        assert!(
            !static_fdb(&host, &net.bridge)
                .iter()
                .any(|l| l.starts_with(&mac(&e1)))
        );

        // A new container takes the address with another MAC; c0 still has the old MAC cached.
        let e2 = attach(
            &n,
            c2,
            vec![EndpointRequest {
                ipv4_address: Some(e1.address),
                mac_address: Some("02:42:0a:0b:0c:0d".into()),
                ..ep("fpr")
            }],
        )
        .await
        .remove(0);
        assert_ne!(mac(&e2), mac(&e1));
        ip(
            &c0.name,
            &[
                "neigh",
                "replace",
                &e1.address.to_string(),
                "lladdr",
                &e1.mac,
                "dev",
                "eth0",
                "nud",
                "permanent",
            ],
        );
        assert!(
            !udp_arrives(c0.path(), c2.path(), e1.address).await,
            "a frame for the old MAC reached the new container"
        );
        ip(
            &c0.name,
            &["neigh", "del", &e1.address.to_string(), "dev", "eth0"],
        );
        assert_eq!(
            send_async(c0.path(), e2.address)
                .await
                .expect("c0 -> c2 after ARP"),
            expected()
        );
        for c in [c0, c2] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("fpr").await.expect("remove");
    });
}

#[test_with::root()]
#[test]
fn switched_off_it_attaches_nothing_and_reconcile_takes_it_off() {
    let fx = Fx::<2>::new();
    let [c0, c1] = &fx.c;
    let host = fx.sim.host.name.clone();
    let root = fx.root();
    let _s1 = sink_server(&c1.path());
    fx.with_netd(async |n| {
        let net = n.create_network(net("fpo")).await.expect("create");
        let e0 = attach(&n, c0, vec![ep("fpo")]).await.remove(0);
        let e1 = attach(&n, c1, vec![ep("fpo")]).await.remove(0);
        assert!(n.fast_path_program("fpo").await.is_some());
        drop(n);
        let mut cfg = Config::new(&root);
        cfg.fast_path = false;
        let n: Arc<Netd> = Netd::open(cfg).await.expect("reopen without the fast path");
        let rep = n.reconcile().await;
        let off = |what: &str| {
            rep.repairs
                .iter()
                .filter(|r| r.what.contains("fast path off") && r.what.contains(what))
                .count()
        };
        assert_eq!(off("program detached"), 2, "{:?}", rep.repairs);
        assert_eq!(off("static FDB entry"), 2, "{:?}", rep.repairs);
        assert!(rep.errors.is_empty(), "{:?}", rep.errors);
        assert_eq!(n.fast_path_program("fpo").await, None);
        assert!(
            static_fdb(&host, &net.bridge).is_empty(),
            "static entries left with the fast path off"
        );
        for e in [&e0, &e1] {
            let q = run("tc", &["-n", &host, "qdisc", "show", "dev", &e.host_ifname]);
            assert!(!q.contains("ingress"), "the empty ingress qdisc left: {q}");
        }
        let tx0 = tx_bytes(&host, &e1.host_ifname);
        assert_eq!(
            send_async(c0.path(), e1.address)
                .await
                .expect("through the bridge"),
            expected()
        );
        assert!(
            tx_bytes(&host, &e1.host_ifname) - tx0 >= BYTES as u64,
            "the bridge carried it"
        );
        let _ = (e0, net);
        for c in [c0, c1] {
            n.detach(&c.name, None).await.expect("detach");
        }
        n.remove_network("fpo").await.expect("remove");
    });
}

#[test_with::root()]
#[test]
fn a_refused_program_comes_back_with_the_verifiers_log() {
    // Returns without setting r0: the verifier refuses it.
    let insns = [berth_netd::fastpath::insn::exit()];
    let err = sys::prog_load(
        sys::PROG_TYPE_SCHED_CLS,
        &insns,
        c"Apache-2.0",
        "berth_refused",
        0,
    )
    .expect_err("the verifier refuses it");
    assert_eq!(err.err.raw_os_error(), Some(libc::EACCES), "{}", err.log);
    assert!(err.log.contains("R0"), "the log says why: {}", err.log);
    let shown = berth_netd::fastpath::FastPathError::Load {
        source: err.err,
        log: err.log,
    }
    .to_string();
    assert!(
        shown.contains("verifier log:") && shown.contains("R0"),
        "{shown}"
    );
}
