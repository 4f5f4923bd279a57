//! Cost of netd's host-port check (run as root; a network namespace of its own only):
//!
//! ```text
//! cargo run --release -p berth-netd --example port_check_bench
//! ```
//!
//! In a fresh namespace (the "host"), first empty, then with 2000 TCP listeners and 1000 UDP
//! sockets, prints the median and p90 of `Netd::check_ports` for one port, for a 1000-port
//! TCP range and a 1000-port UDP range that are free, and (with the sockets) for a refused
//! one, which also finds the holder by scanning /proc/*/fd.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::net::{TcpListener, UdpSocket};
use std::time::{Duration, Instant};

use berth_netd::ports::PortMapping;
use berth_netd::{Config, Netd};
use common::*;

fn pct(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

async fn measure(n: &Netd, label: &str, with_refusal: bool) {
    println!("{label}:");
    let none = BTreeSet::new();
    for (what, spec, refused) in [
        ("1 port, free", "30000:80", false),
        (
            "1000-port TCP range, free",
            "30000-30999:30000-30999",
            false,
        ),
        (
            "1000-port UDP range, free",
            "30000-30999:30000-30999/udp",
            false,
        ),
        ("1 port, refused (holder found)", "21999:80", true),
    ] {
        if refused && !with_refusal {
            continue;
        }
        let ports = vec![spec.parse::<PortMapping>().expect("port")];
        let mut times = Vec::new();
        for _ in 0..50 {
            let t0 = Instant::now();
            let r = n.check_ports(&ports, &none).await.expect("check");
            times.push(t0.elapsed());
            assert_eq!(r.is_some(), refused, "{what}: {r:?}");
        }
        println!(
            "  check_ports {what}: median {:?}, p90 {:?}",
            pct(&mut times, 0.5),
            pct(&mut times, 0.9)
        );
    }
}

fn main() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("run as root");
        std::process::exit(2);
    }
    let host = NetnsGuard::new("pc");
    let dir = tempfile::tempdir().expect("tempdir");
    // This thread (and so netd's worker and the sockets) lives in the namespace.
    in_ns(&host.path(), || {
        rt().block_on(async {
            let n = Netd::open(Config::new(dir.path())).await.expect("open");
            measure(&n, "empty namespace", false).await;
            let tcp: Vec<TcpListener> = (0..2000u16)
                .map(|i| TcpListener::bind(("0.0.0.0", 20000 + i)).expect("tcp"))
                .collect();
            let udp: Vec<UdpSocket> = (0..1000u16)
                .map(|i| UdpSocket::bind(("0.0.0.0", 20000 + i)).expect("udp"))
                .collect();
            measure(&n, "2000 TCP listeners, 1000 UDP sockets", true).await;
            drop((tcp, udp));
        })
    });
}
