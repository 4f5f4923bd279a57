//! TCP throughput with iperf3 on a simulated host (network namespaces only; run as root,
//! iperf3 installed; `bench/net-iperf.sh` does both):
//!
//! ```text
//! cargo run --release -p berth-netd --example net_iperf
//! ```
//!
//! Prints Gbit/s for: a bare veth pair between two namespaces (the baseline), container to
//! container through a netd bridge, and a published port (kernel DNAT) next to the same
//! server reached directly: from the host at 127.0.0.1:PORT vs the container address, and
//! from isp-a at the host's uplink address vs the container address routed. Each figure is
//! the best of IPERF_RUNS runs (default 3) of IPERF_SECS seconds (default 3).

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

/// The best of `IPERF_RUNS` (default 3) `iperf3 -c` runs from `ns`, in received Gbit/s: on
/// a shared machine the best run is the one least disturbed by other load.
fn iperf(ns: &str, to: &str, port: u16, secs: u32) -> f64 {
    let runs: u32 = std::env::var("IPERF_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    (0..runs.max(1))
        .map(|_| iperf_once(ns, to, port, secs))
        .fold(0.0, f64::max)
}

/// One `iperf3 -c` run from `ns`; received Gbit/s.
fn iperf_once(ns: &str, to: &str, port: u16, secs: u32) -> f64 {
    let out = Command::new("ip")
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
    let bps = v["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 -c {to}:{port} from {ns}: {}", v["error"]));
    bps / 1e9
}

fn main() {
    if !can_run() {
        std::process::exit(2);
    }
    if Command::new("iperf3").arg("--version").output().is_err() {
        eprintln!("net_iperf: iperf3 is missing (apt-get install iperf3)");
        std::process::exit(2);
    }
    let secs: u32 = std::env::var("IPERF_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "load average at start: {} ({} CPUs); best of IPERF_RUNS (3) runs of {secs} s",
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
    let veth = {
        let _s = IperfServer::start(&p2.name, 5201);
        iperf(&p1.name, "192.168.250.2", 5201, secs)
    };

    let sim = Sim::new();
    // BRIDGE_NF_CALL=0 turns br_netfilter's hook for bridged IPv4 off in the simulated host
    // only (the sysctl is per namespace): shows what br_netfilter, loaded on hosts that run
    // Docker, costs traffic between containers of one bridge.
    if let Ok(v) = std::env::var("BRIDGE_NF_CALL") {
        let set = format!("net.bridge.bridge-nf-call-iptables={v}");
        run(
            "ip",
            &["netns", "exec", &sim.host.name, "sysctl", "-qw", &set],
        );
        println!("simulated host: {set}");
    }
    let c1 = NetnsGuard::new("c");
    let c2 = NetnsGuard::new("c");
    let root = sim.root.path().to_path_buf();
    let (e1, subnet) = sim.on_host(|| {
        rt().block_on(async {
            let n = Netd::open(Config::new(&root)).await.expect("open");
            let spec = n
                .create_network(NetworkCreate {
                    name: "perf".into(),
                    ..Default::default()
                })
                .await
                .expect("create");
            let mut r = EndpointRequest {
                network: "perf".into(),
                ..Default::default()
            };
            r.ports = vec!["5201:5201".parse::<PortMapping>().expect("port")];
            let e1 = n
                .attach(&c1.name, NetnsRef::Path(c1.path()), vec![r])
                .await
                .expect("attach c1");
            n.attach(
                &c2.name,
                NetnsRef::Path(c2.path()),
                vec![EndpointRequest {
                    network: "perf".into(),
                    ..Default::default()
                }],
            )
            .await
            .expect("attach c2");
            (e1[0].address, spec.subnet)
        })
    });
    // isp-a routes the container subnet to the host, for the "direct from outside" figure.
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
    let host_a = HOST_A.to_string();
    let figures = {
        let _s = IperfServer::start(&c1.name, 5201);
        [
            ("bare veth pair (baseline)", veth),
            (
                "container -> container via bridge",
                iperf(&c2.name, &c1_addr, 5201, secs),
            ),
            (
                "host -> container address (direct)",
                iperf(&sim.host.name, &c1_addr, 5201, secs),
            ),
            (
                "host -> 127.0.0.1:5201 (published)",
                iperf(&sim.host.name, "127.0.0.1", 5201, secs),
            ),
            (
                "isp-a -> container address (routed)",
                iperf(&sim.isp_a.name, &c1_addr, 5201, secs),
            ),
            (
                "isp-a -> uplink:5201 (published)",
                iperf(&sim.isp_a.name, &host_a, 5201, secs),
            ),
        ]
    };
    // The baseline once more at the end: on a shared machine the spread between the two
    // says how much of a difference is noise.
    let veth_again = {
        let _s = IperfServer::start(&p2.name, 5201);
        iperf(&p1.name, "192.168.250.2", 5201, secs)
    };
    for (what, g) in &figures {
        println!("{what:<40} {g:6.2} Gbit/s");
    }
    println!(
        "{:<40} {veth_again:6.2} Gbit/s",
        "bare veth pair again (baseline)"
    );
    let base = veth.max(veth_again);
    let r = |a: usize, b: usize| figures[a].1 / figures[b].1;
    println!(
        "bridge / best bare veth: {:.2} (goal >= 0.95); published / direct: from the host {:.2}, from isp-a {:.2} (goal >= 0.9)",
        figures[1].1 / base,
        r(3, 2),
        r(5, 4)
    );

    sim.on_host(|| {
        rt().block_on(async {
            let n = Netd::open(Config::new(&root)).await.expect("reopen");
            for c in [&c1, &c2] {
                n.detach(&c.name, None).await.expect("detach");
            }
            n.remove_network("perf").await.expect("rm");
        })
    });
    let left = sim.leftovers();
    assert!(left.is_empty(), "left behind: {left:?}");
}
