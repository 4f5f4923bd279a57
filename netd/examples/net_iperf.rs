//! TCP throughput with iperf3 on a simulated host (network namespaces only; run as root,
//! iperf3 installed; `bench/net-iperf.sh` does both):
//!
//! ```text
//! cargo run --release -p berth-netd --example net_iperf
//! ```
//!
//! Prints Gbit/s for: a bare veth pair between two namespaces (the baseline), a bridge made
//! by hand with `ip` (two veth pairs, no nft: what the topology alone costs), container to
//! container through a netd bridge and through an internal netd network (BIG TCP veths),
//! and a published port (kernel DNAT) next to the same server reached directly: from the
//! host at 127.0.0.1:PORT vs the container address, and from isp-a at the host's uplink
//! address (isp-a routing the container subnet through the host is refused, as from any LAN
//! neighbour: the bench checks that instead of measuring it). IPERF_ROUNDS rounds (default 5) run every
//! figure once, back to back, for IPERF_SECS seconds (default 3); the figures are medians,
//! the ratios medians of each round's ratio (both sides under the same moment's load).
//! BRIDGE_NF_CALL=0 turns br_netfilter's IPv4 hook off in the simulated hosts;
//! NFT_TABLE=absent deletes berth's nft tables before measuring (container-to-container
//! figures only); FIGURES=c2c measures only those. Each figure also shows the CPU time per
//! GB of sender and receiver (iperf3's accounting), steadier than Gbit/s on a busy machine.
//! The last figure is egress: a container sending to isp-a through NAT and the uplink.
//! UPLINK_GSO=196608 raises the simulated uplinks' IPv4 GSO limit (a NIC with BIG TCP), so
//! that netd gives the network with egress BIG TCP too; EGRESS_GSO=N forces the berth
//! network's veths to N whatever the uplinks take (what netd avoids); PERF_DIR=DIR records
//! `perf record -a -g` of each figure's first round into DIR/NN.data.

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use berth_netd::ports::PortMapping;
use berth_netd::state::NetnsRef;
use berth_netd::{Config, EndpointRequest, Netd, NetworkCreate};
use common::*;

/// An `iperf3 -s` inside a namespace, killed on drop.
struct IperfServer(Child);

impl IperfServer {
    fn start(ns: &str, port: u16) -> Self {
        let c = Command::new("ip")
            .args(["netns", "exec", ns, "iperf3", "-s", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start iperf3 -s");
        std::thread::sleep(Duration::from_millis(300));
        Self(c)
    }
}

impl Drop for IperfServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `iperf3 -c` run from `ns`: received Gbit/s, and the CPU time the sender and the
/// receiver used per GB moved (ms; iperf3's own accounting of both processes, which includes
/// the softirq work done in their context): under load, throughput follows this cost.
fn iperf_once(ns: &str, to: &str, port: u16, secs: u32, perf: Option<&str>) -> (f64, f64) {
    // PERF_DIR: the run is wrapped in `perf record -a -g` (the whole machine, so both ends and
    // the softirq work between them are in the profile).
    let mut cmd = match perf {
        Some(out) => {
            let mut c = Command::new("perf");
            c.args(["record", "-q", "-a", "-g", "-o", out, "--", "ip"]);
            c
        }
        None => Command::new("ip"),
    };
    let out = cmd
        .args([
            "netns",
            "exec",
            ns,
            "iperf3",
            "-c",
            to,
            "-p",
            &port.to_string(),
            "-t",
            &secs.to_string(),
            "-J",
        ])
        .output()
        .expect("run iperf3 -c");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iperf3 -c {to}:{port} from {ns}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let e = &v["end"];
    let bps = e["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 -c {to}:{port} from {ns}: {}", v["error"]));
    let cpu = &e["cpu_utilization_percent"];
    let (secs, bytes) = (
        e["sum_received"]["seconds"].as_f64().unwrap_or(0.0),
        e["sum_received"]["bytes"].as_f64().unwrap_or(0.0),
    );
    let busy =
        cpu["host_total"].as_f64().unwrap_or(0.0) + cpu["remote_total"].as_f64().unwrap_or(0.0);
    let ms_per_gb = if bytes > 0.0 {
        busy / 100.0 * secs * 1000.0 / (bytes / 1e9)
    } else {
        0.0
    };
    (bps / 1e9, ms_per_gb)
}

/// A bridge made by hand with `ip` (no berth, no nft): a "host" namespace with bridge `br0`
/// and two namespaces on it through veth pairs, addresses 10.251.0.2 and .3. It is what
/// the topology alone costs, next to the bare veth pair: two veth hops and a bridge.
struct HandBridge {
    host: NetnsGuard,
    a: NetnsGuard,
    b: NetnsGuard,
}

impl HandBridge {
    fn new() -> Self {
        let (host, a, b) = (
            NetnsGuard::new("m"),
            NetnsGuard::new("m"),
            NetnsGuard::new("m"),
        );
        ip(&host.name, &["link", "add", "br0", "type", "bridge"]);
        ip(&host.name, &["link", "set", "br0", "up"]);
        for (ns, port, addr) in [(&a, "va", "10.251.0.2/24"), (&b, "vb", "10.251.0.3/24")] {
            run(
                "ip",
                &[
                    "link", "add", "eth0", "netns", &ns.name, "type", "veth", "peer", "name", port,
                    "netns", &host.name,
                ],
            );
            ip(&host.name, &["link", "set", port, "master", "br0", "up"]);
            ip(&ns.name, &["addr", "add", addr, "dev", "eth0"]);
            ip(&ns.name, &["link", "set", "eth0", "up"]);
        }
        Self { host, a, b }
    }
}

/// The IPv4 GSO limit of `eth0` in the namespace at `ns`, for display.
fn gso4(ns: &std::path::Path) -> String {
    gso_ipv4_max_size(ns, "eth0").map_or_else(|| "?".into(), |v| v.to_string())
}

/// The median of a non-empty list.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn env_u32(name: &str, default: u32) -> u32 {
    env_opt_u32(name).unwrap_or(default)
}

fn env_opt_u32(name: &str) -> Option<u32> {
    std::env::var(name).ok().and_then(|s| s.parse().ok())
}

/// netd's config for the bench: FAST_PATH=0 turns the container-to-container fast path off
/// (the bridge alone, as `berth daemon --no-fast-path`).
fn netd_config(root: &std::path::Path) -> Config {
    let mut c = Config::new(root);
    c.fast_path = std::env::var("FAST_PATH").map_or(true, |v| v != "0");
    c
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("needs root");
        std::process::exit(2);
    }
    require_tools();
    if Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!("net_iperf: iperf3 is missing (apt-get install iperf3)");
        std::process::exit(2);
    }
    let secs = env_u32("IPERF_SECS", 3);
    let rounds = env_u32("IPERF_ROUNDS", 5).max(1);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {} ({} CPUs); medians of IPERF_ROUNDS ({rounds}) rounds, each \
         round one {secs} s run of every figure back to back",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // Baseline: a bare veth pair between two namespaces.
    let p1 = NetnsGuard::new("p");
    let p2 = NetnsGuard::new("p");
    run(
        "ip",
        &[
            "link", "add", "eth0", "netns", &p1.name, "type", "veth", "peer", "name", "eth0",
            "netns", &p2.name,
        ],
    );
    for (ns, a) in [(&p1, "192.168.250.1/30"), (&p2, "192.168.250.2/30")] {
        ip(&ns.name, &["addr", "add", a, "dev", "eth0"]);
        ip(&ns.name, &["link", "set", "eth0", "up"]);
    }
    let hand = HandBridge::new();
    println!(
        "netd fast path: {}",
        if netd_config(std::path::Path::new("/")).fast_path {
            "on"
        } else {
            "off (FAST_PATH=0)"
        }
    );

    let sim = Sim::new();
    // BRIDGE_NF_CALL=0 turns br_netfilter's hook for bridged IPv4 off in the simulated host
    // only (the sysctl is per namespace): shows what br_netfilter, loaded on hosts that run
    // Docker, costs traffic between containers of one bridge.
    if let Ok(v) = std::env::var("BRIDGE_NF_CALL") {
        let set = format!("net.bridge.bridge-nf-call-iptables={v}");
        for ns in [&sim.host.name, &hand.host.name] {
            run("ip", &["netns", "exec", ns, "sysctl", "-qw", &set]);
        }
        println!("simulated hosts: {set}");
    }
    // UPLINK_GSO=196608 raises the simulated uplinks' IPv4 GSO limit (as on a host whose NIC
    // takes BIG TCP packets and whose admin raised it): netd then gives the network with
    // egress BIG TCP as well.
    if let Some(g) = env_opt_u32("UPLINK_GSO") {
        for up in ["upa", "upb"] {
            set_gso_ipv4_max_size(&sim.host.path(), up, g);
        }
        println!("simulated host: uplinks' IPv4 GSO limit set to {g}");
    }
    let c1 = NetnsGuard::new("c");
    let c2 = NetnsGuard::new("c");
    let i1 = NetnsGuard::new("i");
    let i2 = NetnsGuard::new("i");
    let root = sim.root.path().to_path_buf();
    let (e1, subnet, i1_addr, hosts) = sim.on_host(|| {
        rt().block_on(async {
            let n = Netd::open(netd_config(&root)).await.expect("open");
            let spec = n
                .create_network(NetworkCreate {
                    name: "perf".into(),
                    ..Default::default()
                })
                .await
                .expect("create");
            n.create_network(NetworkCreate {
                name: "perfi".into(),
                internal: true,
                ..Default::default()
            })
            .await
            .expect("create internal");
            let mut r = EndpointRequest {
                network: "perf".into(),
                ..Default::default()
            };
            r.ports = vec!["5201:5201".parse::<PortMapping>().expect("port")];
            let e1 = n
                .attach(&c1.name, NetnsRef::Path(c1.path()), vec![r])
                .await
                .expect("attach c1");
            let mut i1_addr = None;
            let mut hosts = vec![e1[0].host_ifname.clone()];
            for (c, net) in [(&c2, "perf"), (&i1, "perfi"), (&i2, "perfi")] {
                let e = n
                    .attach(
                        &c.name,
                        NetnsRef::Path(c.path()),
                        vec![EndpointRequest {
                            network: net.into(),
                            ..Default::default()
                        }],
                    )
                    .await
                    .expect("attach");
                if c.name == i1.name {
                    i1_addr = Some(e[0].address);
                }
                if c.name == c2.name {
                    hosts.push(e[0].host_ifname.clone());
                }
            }
            (
                e1[0].address,
                spec.subnet,
                i1_addr.expect("i1 address"),
                hosts,
            )
        })
    });
    // EGRESS_GSO=N forces the IPv4 GSO limit of both ends of the berth network's veths to N
    // whatever the uplinks take: EGRESS_GSO=196608 with the default 64 KiB uplinks shows what
    // BIG TCP costs traffic that leaves through a device with a smaller limit (the egress
    // figure), which is why netd does not do it.
    if let Some(g) = env_opt_u32("EGRESS_GSO") {
        for c in [&c1, &c2] {
            set_gso_ipv4_max_size(&c.path(), "eth0", g);
        }
        for h in &hosts {
            set_gso_ipv4_max_size(&sim.host.path(), h, g);
        }
        println!("berth network's veths: IPv4 GSO limit forced to {g}");
    }
    // NFT_TABLE=absent deletes berth's tables from the simulated host once the networks are
    // made: the bridge figure without berth's nft hooks and conntrack (br_netfilter hands
    // bridged IPv4 to the ip family's hooks), to compare with a run that keeps them.
    let nft_absent = std::env::var("NFT_TABLE").as_deref() == Ok("absent");
    if nft_absent {
        let tables = run(
            "ip",
            &["netns", "exec", &sim.host.name, "nft", "list", "tables"],
        );
        for t in tables.lines() {
            let w: Vec<&str> = t.split_whitespace().collect();
            if let ["table", family, name] = w[..]
                && name.starts_with("berth")
            {
                run(
                    "ip",
                    &[
                        "netns",
                        "exec",
                        &sim.host.name,
                        "nft",
                        "delete",
                        "table",
                        family,
                        name,
                    ],
                );
                println!("simulated host: nft table {family} {name} deleted");
            }
        }
    }
    println!(
        "IPv4 GSO limit: uplink upa {}, eth0 of bare veth {}, hand-made bridge {}, berth network {}, berth internal network {}",
        gso_ipv4_max_size(&sim.host.path(), "upa").map_or_else(|| "?".into(), |v| v.to_string()),
        gso4(&p1.path()),
        gso4(&hand.a.path()),
        gso4(&c2.path()),
        gso4(&i2.path())
    );
    // isp-a routes the container subnet to the host: a LAN neighbour trying the container
    // address directly, which berth's raw guard refuses (checked below, not measured).
    ip(
        &sim.isp_a.name,
        &[
            "route",
            "add",
            &subnet.to_string(),
            "via",
            &HOST_A.to_string(),
        ],
    );
    let c1_addr = e1.to_string();
    let i1_addr = i1_addr.to_string();
    let host_a = HOST_A.to_string();
    let internet = INTERNET.to_string();
    // (label, client namespace, server address); every server listens on 5201. The first six
    // are container to container; the published-port ones need berth's nft table.
    let mut figures: Vec<(&str, &str, &str)> = vec![
        ("bare veth pair (baseline)", &p1.name, "192.168.250.2"),
        (
            "hand-made bridge (ip link, no nft)",
            &hand.b.name,
            "10.251.0.2",
        ),
        ("container -> container via bridge", &c2.name, &c1_addr),
        ("same, internal network (BIG TCP)", &i2.name, &i1_addr),
        ("bare veth pair again (baseline)", &p1.name, "192.168.250.2"),
        ("hand-made bridge again", &hand.b.name, "10.251.0.2"),
    ];
    let c2c_only = nft_absent || std::env::var("FIGURES").as_deref() == Ok("c2c");
    if !c2c_only {
        figures.extend([
            (
                "host -> container address (direct)",
                sim.host.name.as_str(),
                c1_addr.as_str(),
            ),
            (
                "host -> 127.0.0.1:5201 (published)",
                &sim.host.name,
                "127.0.0.1",
            ),
            ("isp-a -> uplink:5201 (published)", &sim.isp_a.name, &host_a),
            (
                "container -> isp-a (egress, NAT)",
                &c2.name,
                internet.as_str(),
            ),
        ]);
    }
    let mut got: Vec<Vec<(f64, f64)>> = vec![Vec::new(); figures.len()];
    {
        let _servers: Vec<IperfServer> =
            [&p2.name, &hand.a.name, &c1.name, &i1.name, &sim.isp_a.name]
                .into_iter()
                .map(|ns| IperfServer::start(ns, 5201))
                .collect();
        if !c2c_only {
            // c1's iperf3 server listens: without the guard this connect succeeds.
            let to = std::net::SocketAddrV4::new(e1, 5201);
            let refused = in_ns(&sim.isp_a.path(), || {
                std::net::TcpStream::connect_timeout(&to.into(), Duration::from_secs(1)).is_err()
            });
            println!(
                "isp-a -> container address (routed): {}",
                if refused {
                    "refused"
                } else {
                    "REACHABLE (berth's raw guard is missing)"
                }
            );
        }
        let perf_dir = std::env::var("PERF_DIR").ok();
        for round in 1..=rounds {
            for (i, (_, ns, to)) in figures.iter().enumerate() {
                // PERF_DIR=DIR profiles each figure's first round into DIR/NN.data.
                let perf = perf_dir
                    .as_ref()
                    .filter(|_| round == 1)
                    .map(|d| format!("{d}/{i:02}.data"));
                got[i].push(iperf_once(ns, to, 5201, secs, perf.as_deref()));
            }
            println!(
                "round {round}: {}",
                got.iter()
                    .map(|v| format!("{:.1}", v[v.len() - 1].0))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
    }
    for ((what, _, _), g) in figures.iter().zip(&got) {
        println!(
            "{what:<40} {:6.2} Gbit/s  {:5.0} CPU ms/GB (sender + receiver)",
            median(g.iter().map(|x| x.0).collect()),
            median(g.iter().map(|x| x.1).collect())
        );
    }
    // Ratios within each round (the same moment's load on both sides), then their median.
    let ratio = |a: usize, b: &[usize]| {
        median(
            (0..rounds as usize)
                .map(|r| {
                    got[a][r].0 / (b.iter().map(|&i| got[i][r].0).sum::<f64>() / b.len() as f64)
                })
                .collect(),
        )
    };
    println!(
        "median per-round ratios: berth bridge / bare veth {:.2} (goal >= 0.95); hand-made \
         bridge / bare veth {:.2}; berth bridge / hand-made bridge {:.2}; internal network \
         (BIG TCP) / bare veth {:.2}",
        ratio(2, &[0, 4]),
        ratio(1, &[0, 4]),
        ratio(2, &[1, 5]),
        ratio(3, &[0, 4]),
    );
    if !c2c_only {
        println!(
            "published / direct: from the host {:.2} (goal >= 0.9)",
            ratio(7, &[6]),
        );
    }

    sim.on_host(|| {
        rt().block_on(async {
            let n = Netd::open(netd_config(&root)).await.expect("reopen");
            for c in [&c1, &c2, &i1, &i2] {
                n.detach(&c.name, None).await.expect("detach");
            }
            n.remove_network("perf").await.expect("rm");
            n.remove_network("perfi").await.expect("rm internal");
        })
    });
    let left = sim.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
