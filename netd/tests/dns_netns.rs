//! The embedded DNS on a real bridge: a "host" network namespace with a bridge and the DNS
//! server on its gateway address, port 53, and a "container" namespace on a veth asking it.
//! Root only (skipped otherwise); everything lives in the two throwaway namespaces, removed
//! by a Drop guard. The test shells out to `ip` for the scaffolding; the product never does.

mod dns_util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use berth_netd::dns::{
    AnswerConfig, DnsRecords, DnsService, Endpoint, ForwardConfig, HostResolvPaths, NetworkScope,
    ResolvWatcher, StubPolicy, Upstreams,
};
use dns_util::{FakeUpstream, Mode};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};
use nix::sched::{CloneFlags, setns};

struct Netns {
    host: String,
    ctr: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.ctr, &self.host] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn enter(ns: &str) {
    let f = std::fs::File::open(format!("/run/netns/{ns}")).expect("open netns");
    setns(f, CloneFlags::CLONE_NEWNET).expect("setns");
}

/// Runs `f` on a fresh thread inside namespace `ns`.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter(&ns);
        f()
    })
    .join()
    .expect("netns thread")
}

/// Blocking query from inside the container namespace.
fn ask(server: SocketAddr, name: &str, t: RecordType) -> Option<Message> {
    let sock = UdpSocket::bind("0.0.0.0:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    sock.send_to(&dns_util::query(name, t), server).ok()?;
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).ok()?;
    Message::from_vec(&buf[..n]).ok()
}

fn v4s(m: &Message) -> Vec<Ipv4Addr> {
    dns_util::v4s(m)
}

#[test_with::root()]
#[test]
fn dns_on_a_bridge_gateway_in_a_netns() {
    let pid = std::process::id();
    let ns = Netns {
        host: format!("bdt-h-{pid}"),
        ctr: format!("bdt-c-{pid}"),
    };
    let br = format!("bdtbr{}", pid % 100_000);
    let veth = format!("bdtv{}", pid % 100_000);
    let sub = format!("10.213.{}", pid % 200 + 20);
    let gw: IpAddr = format!("{sub}.1").parse().expect("gw");
    ip(&["netns", "add", &ns.host]);
    ip(&["netns", "add", &ns.ctr]);
    ip(&["-n", &ns.host, "link", "set", "lo", "up"]);
    ip(&["-n", &ns.host, "link", "add", &br, "type", "bridge"]);
    ip(&["-n", &ns.host, "link", "set", &br, "up"]);
    ip(&[
        "-n", &ns.host, "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns",
        &ns.ctr,
    ]);
    ip(&["-n", &ns.host, "link", "set", &veth, "master", &br, "up"]);
    ip(&[
        "-n",
        &ns.ctr,
        "addr",
        "add",
        &format!("{sub}.2/24"),
        "dev",
        "eth0",
    ]);
    ip(&["-n", &ns.ctr, "link", "set", "eth0", "up"]);

    let dir = tempfile::tempdir().expect("tempdir");
    let resolv = dir.path().join("resolv.conf");
    std::fs::write(&resolv, "nameserver 127.0.0.1\nsearch corp.example\n")
        .expect("write resolv.conf");

    // The "daemon": a runtime on a thread inside the host namespace, kept until the end.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<SocketAddr>();
    let host_ns = ns.host.clone();
    let subnet = format!("{sub}.0/24");
    let prefix = sub.clone();
    let daemon = std::thread::spawn(move || {
        enter(&host_ns);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        rt.block_on(async move {
            let upstream = FakeUpstream::start(Ipv4Addr::new(192, 0, 2, 10), Mode::Normal).await;
            let paths = HostResolvPaths {
                resolv_conf: resolv,
                systemd_resolv_conf: dir.path().join("none"),
                stub_policy: StubPolicy::Bypass,
                upstream_port: upstream.addr.port(),
            };
            let ups = Arc::new(Upstreams::new(
                Vec::new(),
                Vec::new(),
                ForwardConfig::default(),
            ));
            let _watch = ResolvWatcher::spawn(paths, Arc::clone(&ups), Duration::from_millis(20))
                .expect("watch");
            let svc = DnsService::new(
                Arc::new(DnsRecords::new()),
                ups,
                AnswerConfig::default(),
                Default::default(),
            );
            // Started before the bridge has its address (IP_FREEBIND).
            let addr = svc
                .start_network(
                    NetworkScope {
                        id: "net".into(),
                        subnets: vec![subnet.parse().expect("subnet")],
                        internal: false,
                    },
                    SocketAddr::new(gw, 53),
                )
                .expect("start on the gateway, port 53");
            for (i, host) in [5u8, 6, 7].iter().enumerate() {
                let a: IpAddr = format!("{prefix}.{host}").parse().expect("ip");
                svc.records()
                    .add_endpoint(
                        "net",
                        Endpoint {
                            id: format!("web{i}"),
                            container: format!("web{i}"),
                            addresses: vec![a],
                            names: vec![format!("proj-web-{}", i + 1), "web".into()],
                            ..Default::default()
                        },
                    )
                    .expect("add");
            }
            ready_tx.send(addr).expect("ready");
            tokio::task::spawn_blocking(move || stop_rx.recv())
                .await
                .ok();
            drop(upstream);
        });
    });
    let server = ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server started");
    ip(&[
        "-n",
        &ns.host,
        "addr",
        "add",
        &format!("{gw}/24"),
        "dev",
        &br,
    ]);

    let check = move || {
        let web = ask(server, "web", RecordType::A).expect("answer for web");
        assert_eq!(v4s(&web).len(), 3, "{web:?}");
        let short = ask(server, "web.corp.example", RecordType::A).expect("answer");
        assert_eq!(v4s(&short).len(), 3);
        let fwd = ask(server, "example.test", RecordType::A).expect("forwarded answer");
        assert_eq!(v4s(&fwd), vec![Ipv4Addr::new(192, 0, 2, 10)]);
        let ptr_name = format!("5.{}.in-addr.arpa.", {
            let IpAddr::V4(g) = server.ip() else {
                unreachable!()
            };
            let o = g.octets();
            format!("{}.{}.{}", o[2], o[1], o[0])
        });
        let ptr = ask(server, &ptr_name, RecordType::PTR).expect("ptr");
        assert!(
            ptr.answers
                .iter()
                .any(|r| matches!(&r.data, RData::PTR(p) if p.0.to_ascii() == "proj-web-1.")),
            "{ptr:?}"
        );
        let aaaa = ask(server, "web", RecordType::AAAA).expect("aaaa");
        assert_eq!(aaaa.metadata.response_code, ResponseCode::NoError);
        assert!(aaaa.answers.is_empty());
    };
    in_netns(&ns.ctr, check);

    // Reconcile re-creates a deleted bridge: the server keeps answering on the same address.
    ip(&["-n", &ns.host, "link", "del", &br]);
    ip(&["-n", &ns.host, "link", "add", &br, "type", "bridge"]);
    ip(&[
        "-n",
        &ns.host,
        "addr",
        "add",
        &format!("{gw}/24"),
        "dev",
        &br,
    ]);
    ip(&["-n", &ns.host, "link", "set", &br, "up"]);
    ip(&["-n", &ns.host, "link", "set", &veth, "master", &br, "up"]);
    let again = in_netns(&ns.ctr, move || {
        (0..50).find_map(|_| {
            let m = ask(server, "web", RecordType::A);
            if m.is_none() {
                std::thread::sleep(Duration::from_millis(100));
            }
            m
        })
    });
    assert_eq!(
        again.map(|m| v4s(&m).len()),
        Some(3),
        "answers after the bridge was re-created"
    );

    stop_tx.send(()).expect("stop");
    daemon.join().expect("daemon thread");
}
