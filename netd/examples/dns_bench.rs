//! DNS benchmarks (not tests):
//!
//! ```text
//! dns_bench serve     the server half of bench/dns.sh: berth's embedded DNS for one network
//!                     until killed or for BERTH_DNS_BENCH_SECS, reading upstreams from the
//!                     (netns-private) /etc/resolv.conf
//! dns_bench records   the cost of adding endpoints to a network's records, and of a lookup:
//!                     cargo run --release -p berth-netd --example dns_bench -- records
//! ```
//!
//! Environment: `BERTH_DNS_BENCH_LISTEN` (gateway:port), `BERTH_DNS_BENCH_SUBNET`
//! (e.g. 10.213.250.0/24), `BERTH_DNS_BENCH_RECORDS` (`name=ip,name=ip`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use berth_netd::dns::{
    AnswerConfig, DnsRecords, DnsService, Endpoint, ForwardConfig, HostResolvPaths, NetworkScope,
    ResolvWatcher, Upstreams,
};

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("serve") => serve_for_bench(),
        Some("records") => records_update_cost(),
        _ => {
            eprintln!("usage: dns_bench serve|records");
            std::process::exit(2);
        }
    }
}

fn serve_for_bench() {
    let Ok(listen) = std::env::var("BERTH_DNS_BENCH_LISTEN") else {
        eprintln!("BERTH_DNS_BENCH_LISTEN not set: nothing to serve");
        std::process::exit(2);
    };
    let listen: SocketAddr = listen.parse().expect("BERTH_DNS_BENCH_LISTEN is ip:port");
    let subnet = std::env::var("BERTH_DNS_BENCH_SUBNET")
        .expect("BERTH_DNS_BENCH_SUBNET")
        .parse()
        .expect("subnet");
    let records = std::env::var("BERTH_DNS_BENCH_RECORDS").unwrap_or_default();
    let secs: u64 = std::env::var("BERTH_DNS_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3600);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let ups = Arc::new(Upstreams::new(
            Vec::new(),
            Vec::new(),
            ForwardConfig::default(),
        ));
        let watcher = ResolvWatcher::spawn(
            HostResolvPaths::default(),
            Arc::clone(&ups),
            Duration::from_millis(50),
        )
        .expect("watch");
        eprintln!(
            "upstreams: {:?}",
            watcher.host().map(|h| h.conf.nameservers)
        );
        let svc = DnsService::new(
            Arc::new(DnsRecords::new()),
            ups,
            AnswerConfig::default(),
            Default::default(),
        );
        let addr = svc
            .start_network(
                NetworkScope {
                    id: "bench".into(),
                    subnets: vec![subnet],
                    internal: false,
                },
                listen,
            )
            .expect("start");
        for (i, pair) in records.split(',').filter(|s| !s.is_empty()).enumerate() {
            let (name, ip) = pair.split_once('=').expect("name=ip");
            let ip: IpAddr = ip.parse().expect("ip");
            svc.records()
                .add_endpoint(
                    "bench",
                    Endpoint {
                        id: format!("c{i}"),
                        container: format!("c{i}"),
                        addresses: vec![ip],
                        names: vec![name.to_string()],
                        ..Default::default()
                    },
                )
                .expect("record");
        }
        eprintln!("berth dns listening on {addr}");
        tokio::time::sleep(Duration::from_secs(secs)).await;
    });
}

/// The DNS share of "time to attach an endpoint": adding 100 and then 1000 endpoints to one
/// network, one `add_endpoint` at a time (each rebuilds the network's index), and the time
/// of one lookup afterwards. Prints figures.
fn records_update_cost() {
    for n in [100u32, 1000] {
        let r = DnsRecords::new();
        r.add_network(NetworkScope {
            id: "n".into(),
            subnets: vec!["10.0.0.0/8".parse().expect("subnet")],
            internal: false,
        });
        let start = std::time::Instant::now();
        for i in 0..n {
            let ip = IpAddr::from([10, (i >> 16) as u8, (i >> 8) as u8, i as u8]);
            r.add_endpoint(
                "n",
                Endpoint {
                    id: format!("c{i}"),
                    container: format!("c{i}"),
                    addresses: vec![ip],
                    names: vec![format!("proj-svc-{i}"), format!("svc{}", i % 10)],
                    ..Default::default()
                },
            )
            .expect("add");
        }
        let total = start.elapsed();
        let asker = r.asker("n", IpAddr::from([10, 0, 0, 1])).expect("asker");
        let start = std::time::Instant::now();
        for _ in 0..10_000 {
            std::hint::black_box(r.resolve(&asker, "svc3", &[]));
        }
        let lookup = start.elapsed() / 10_000;
        println!(
            "records: {n} endpoints added in {total:?} ({:?} per add, last adds rebuild {n} entries); lookup {lookup:?}",
            total / n
        );
    }
}
