//! The embedded DNS over real sockets on loopback: network A's clients ask from 127.0.0.2,
//! network B's from 127.0.0.3 (the client socket is bound to that source), fake upstreams
//! answer `example.test` on 127.0.0.1. No traffic leaves the machine.

mod dns_util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_netd::dns::{
    AnswerConfig, DnsRecords, DnsService, Endpoint, ForwardConfig, HostResolvPaths, LinkAlias,
    NetworkScope, ResolvWatcher, StubPolicy, Upstreams, container_resolv_conf,
};
use dns_util::{FakeUpstream, Mode, ask, ask_tcp, closed_port, try_ask, v4s};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, RecordType};

const A_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const B_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));
const I_CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 4));
const UP1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const UP2: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 20);

fn ip(s: &str) -> IpAddr {
    s.parse().expect("test ip")
}

fn fast_forwarding() -> ForwardConfig {
    ForwardConfig {
        attempt_timeout: Duration::from_millis(300),
        total_budget: Duration::from_millis(1500),
        penalty: Duration::from_secs(30),
    }
}

struct Fixture {
    svc: DnsService,
    a: SocketAddr,
    b: SocketAddr,
    i: SocketAddr,
}

fn ep(id: &str, addr: &str, names: &[&str]) -> Endpoint {
    Endpoint {
        id: id.into(),
        container: id.into(),
        addresses: vec![ip(addr)],
        names: names.iter().map(|s| s.to_string()).collect(),
        ..Default::default()
    }
}

fn fixture(upstreams: Vec<SocketAddr>) -> Fixture {
    let ups = Arc::new(Upstreams::new(
        upstreams,
        vec!["corp.example".into()],
        fast_forwarding(),
    ));
    let svc = DnsService::new(
        Arc::new(DnsRecords::new()),
        ups,
        AnswerConfig::default(),
        Default::default(),
    );
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    let a = svc
        .start_network(
            NetworkScope {
                id: "a".into(),
                subnets: vec![
                    "127.0.0.2/32".parse().unwrap(),
                    "10.77.0.0/24".parse().unwrap(),
                ],
                internal: false,
            },
            listen,
        )
        .expect("start a");
    let b = svc
        .start_network(
            NetworkScope {
                id: "b".into(),
                subnets: vec![
                    "127.0.0.3/32".parse().unwrap(),
                    "10.78.0.0/24".parse().unwrap(),
                ],
                internal: false,
            },
            listen,
        )
        .expect("start b");
    let i = svc
        .start_network(
            NetworkScope {
                id: "i".into(),
                subnets: vec![
                    "127.0.0.4/32".parse().unwrap(),
                    "10.79.0.0/24".parse().unwrap(),
                ],
                internal: true,
            },
            listen,
        )
        .expect("start i");
    let r = svc.records();
    for n in 1..=3 {
        r.add_endpoint(
            "a",
            ep(
                &format!("web{n}"),
                &format!("10.77.0.{}", n + 1),
                &[&format!("proj-web-{n}"), "web"],
            ),
        )
        .expect("add web");
    }
    r.add_endpoint(
        "a",
        ep("db", "10.77.0.9", &["proj-db-1", "db", "database", "mysql"]),
    )
    .expect("add db");
    r.add_endpoint(
        "a",
        Endpoint {
            links: vec![LinkAlias {
                alias: "sql".into(),
                target: "db".into(),
            }],
            ..ep("client-a", "127.0.0.2", &["proj-client-1", "client"])
        },
    )
    .expect("add client");
    r.add_endpoint("b", ep("cache", "10.78.0.2", &["proj-cache-1", "cache"]))
        .expect("add cache");
    r.add_endpoint("i", ep("vault", "10.79.0.2", &["proj-vault-1", "vault"]))
        .expect("add vault");
    Fixture { svc, a, b, i }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_names_answer_over_udp_and_tcp() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    let db = vec![Ipv4Addr::new(10, 77, 0, 9)];
    for name in [
        "db",
        "database.",
        "proj-db-1",
        "MySQL.",
        "Db.Corp.Example.",
        "sql",
    ] {
        let m = ask(f.a, A_CLIENT, name, RecordType::A).await;
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{name}");
        assert!(m.metadata.authoritative, "{name}");
        assert_eq!(v4s(&m), db, "{name}");
    }
    let web = ask(f.a, A_CLIENT, "web", RecordType::A).await;
    assert_eq!(v4s(&web).len(), 3, "all replicas");

    let aaaa = ask(f.a, A_CLIENT, "db", RecordType::AAAA).await;
    assert_eq!(
        aaaa.metadata.response_code,
        ResponseCode::NoError,
        "AAAA of a v4-only name is NOERROR"
    );
    assert!(aaaa.answers.is_empty());

    let ptr = ask(f.a, A_CLIENT, "9.0.77.10.in-addr.arpa.", RecordType::PTR).await;
    let names: Vec<String> = ptr
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(
        names.first().map(String::as_str),
        Some("proj-db-1."),
        "{names:?}"
    );
    let nx = ask(f.a, A_CLIENT, "99.0.77.10.in-addr.arpa.", RecordType::PTR).await;
    assert_eq!(nx.metadata.response_code, ResponseCode::NXDomain);

    let tcp = ask_tcp(f.a, A_CLIENT, "db", RecordType::A)
        .await
        .expect("tcp answer");
    assert_eq!(v4s(&tcp), db);
    assert_eq!(
        up.queries.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no local name was forwarded"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_are_rotated_per_answer() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    let mut firsts = Vec::new();
    for _ in 0..3 {
        let m = ask(f.a, A_CLIENT, "web", RecordType::A).await;
        let v = v4s(&m);
        assert_eq!(v.len(), 3);
        firsts.push(v[0]);
    }
    firsts.sort();
    firsts.dedup();
    assert_eq!(firsts.len(), 3, "each replica came first once: {firsts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_are_scoped_by_network() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    // B's client on B's server: B's names, not A's (A's name is forwarded; upstream: NXDOMAIN).
    assert_eq!(
        v4s(&ask(f.b, B_CLIENT, "cache", RecordType::A).await),
        vec![Ipv4Addr::new(10, 78, 0, 2)]
    );
    let web = ask(f.b, B_CLIENT, "web", RecordType::A).await;
    assert_eq!(web.metadata.response_code, ResponseCode::NXDomain);
    assert!(web.answers.is_empty());
    // A's link alias is A's client's own.
    assert_eq!(
        ask(f.b, B_CLIENT, "sql", RecordType::A)
            .await
            .metadata
            .response_code,
        ResponseCode::NXDomain
    );
    // B's client on A's server: refused, over UDP and TCP.
    let r = ask(f.a, B_CLIENT, "web", RecordType::A).await;
    assert_eq!(r.metadata.response_code, ResponseCode::Refused);
    assert!(r.answers.is_empty());
    assert!(
        ask_tcp(f.a, B_CLIENT, "web", RecordType::A).await.is_err(),
        "tcp from another network is closed"
    );
    // The same for PTR of A's addresses.
    let p = ask(f.b, B_CLIENT, "9.0.77.10.in-addr.arpa.", RecordType::PTR).await;
    assert!(p.answers.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_change_at_once() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    let r = f.svc.records();
    r.add_endpoint("a", ep("late", "10.77.0.50", &["proj-late-1", "late"]))
        .expect("add");
    assert_eq!(
        v4s(&ask(f.a, A_CLIENT, "late", RecordType::A).await),
        vec![Ipv4Addr::new(10, 77, 0, 50)]
    );
    assert!(r.remove_endpoint("a", "late"));
    let m = ask(f.a, A_CLIENT, "late", RecordType::A).await;
    assert!(m.answers.is_empty(), "removed name no longer answers");
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(r.remove_endpoint("a", "web2"));
    assert_eq!(
        v4s(&ask(f.a, A_CLIENT, "web", RecordType::A).await).len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwards_unknown_names_and_truncates_big_udp_answers() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    let m = ask(f.a, A_CLIENT, "example.test", RecordType::A).await;
    assert_eq!(v4s(&m), vec![UP1]);
    assert!(!m.metadata.authoritative);
    let tcp = ask_tcp(f.a, A_CLIENT, "example.test", RecordType::A)
        .await
        .expect("tcp forward");
    assert_eq!(v4s(&tcp), vec![UP1], "forwarded for a TCP client too");
    // A big local answer: TC over UDP, in full over TCP.
    let r = f.svc.records();
    for n in 0..100u8 {
        r.add_endpoint(
            "a",
            ep(
                &format!("big{n}"),
                &format!("10.77.0.{}", 100 + n),
                &[&format!("big-{n}"), "big"],
            ),
        )
        .expect("add");
    }
    let udp = ask(f.a, A_CLIENT, "big", RecordType::A).await;
    assert!(
        udp.metadata.truncation,
        "100 A records do not fit 512 bytes"
    );
    let tcp = ask_tcp(f.a, A_CLIENT, "big", RecordType::A)
        .await
        .expect("tcp");
    assert_eq!(v4s(&tcp).len(), 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_network_answers_names_but_does_not_forward() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    assert_eq!(
        v4s(&ask(f.i, I_CLIENT, "vault", RecordType::A).await),
        vec![Ipv4Addr::new(10, 79, 0, 2)]
    );
    let m = ask(f.i, I_CLIENT, "example.test", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(up.queries.load(std::sync::atomic::Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_upstream_answer_is_retried_over_tcp() {
    let up = FakeUpstream::start(UP2, Mode::TruncateUdp).await;
    let f = fixture(vec![up.addr]);
    let m = ask(f.a, A_CLIENT, "example.test", RecordType::A).await;
    assert!(!m.metadata.truncation);
    assert_eq!(v4s(&m), vec![UP2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fails_over_from_dead_upstreams_then_remembers() {
    let silent = FakeUpstream::start(UP1, Mode::Silent).await;
    let good = FakeUpstream::start(UP2, Mode::Normal).await;
    let f = fixture(vec![silent.addr, closed_port().await, good.addr]);
    let start = Instant::now();
    let m = ask(f.a, A_CLIENT, "example.test", RecordType::A).await;
    let first = start.elapsed();
    assert_eq!(v4s(&m), vec![UP2]);
    let start = Instant::now();
    let m = ask(f.a, A_CLIENT, "example.test", RecordType::A).await;
    let second = start.elapsed();
    assert_eq!(v4s(&m), vec![UP2]);
    println!(
        "failover: first answer after {first:?} (dead upstreams tried), next {second:?} (dead ones tried last)"
    );
    assert!(
        first >= Duration::from_millis(250),
        "the silent upstream was waited for: {first:?}"
    );
    let silent_queries = || silent.queries.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(
        silent_queries(),
        1,
        "tried last the second time, so not at all"
    );
    // After a host network change the reconcile loop forgets the failures: tried first again.
    f.svc.upstreams().reset_health();
    let m = ask(f.a, A_CLIENT, "example.test", RecordType::A).await;
    assert_eq!(v4s(&m), vec![UP2]);
    assert_eq!(silent_queries(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servfail_when_every_upstream_fails() {
    let silent = FakeUpstream::start(UP1, Mode::Silent).await;
    let failing = FakeUpstream::start(UP1, Mode::ServFail).await;
    let f = fixture(vec![silent.addr, failing.addr, closed_port().await]);
    let m = ask(f.a, A_CLIENT, "example.test", RecordType::A).await;
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    let none = fixture(vec![]);
    let m = ask(none.a, A_CLIENT, "example.test", RecordType::A).await;
    assert_eq!(
        m.metadata.response_code,
        ResponseCode::ServFail,
        "no upstream at all"
    );
}

fn write_by_rename(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp-berth-test");
    std::fs::write(&tmp, text).expect("write tmp");
    std::fs::rename(&tmp, path).expect("rename");
}

async fn wait_for_answer(server: SocketAddr, want: Ipv4Addr) -> Duration {
    let start = Instant::now();
    loop {
        if let Some(m) = try_ask(
            server,
            A_CLIENT,
            "example.test",
            RecordType::A,
            Duration::from_millis(500),
        )
        .await
            && v4s(&m) == vec![want]
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "upstream switch to {want} not seen in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn paths(dir: &std::path::Path, port: u16) -> HostResolvPaths {
    HostResolvPaths {
        resolv_conf: dir.join("resolv.conf"),
        systemd_resolv_conf: dir.join("systemd").join("resolv.conf"),
        stub_policy: StubPolicy::Bypass,
        upstream_port: port,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_follow_resolv_conf_replaced_by_rename() {
    let (up1, _up2) = FakeUpstream::pair(
        [Ipv4Addr::new(127, 0, 1, 1), Ipv4Addr::new(127, 0, 1, 2)],
        [UP1, UP2],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path(), up1.addr.port());
    std::fs::write(
        &p.resolv_conf,
        "nameserver 127.0.1.1\nsearch corp.example\noptions ndots:2\n",
    )
    .expect("write");
    let f = fixture(vec![]);
    let watcher = ResolvWatcher::spawn(
        p.clone(),
        Arc::clone(f.svc.upstreams()),
        Duration::from_millis(20),
    )
    .expect("watch");
    let host = watcher.host().expect("read once");
    let text = container_resolv_conf(&[f.a.ip()], &host.conf, &Default::default());
    assert!(
        text.contains("nameserver 127.0.0.1\nsearch corp.example\noptions ndots:2\n"),
        "{text}"
    );
    wait_for_answer(f.a, UP1).await;

    write_by_rename(
        &p.resolv_conf,
        "nameserver 127.0.1.2\nsearch other.example\n",
    );
    let took = wait_for_answer(f.a, UP2).await;
    println!("resolv.conf replaced by rename -> first answer from the new upstream after {took:?}");
    assert_eq!(
        watcher.host().expect("host").conf.search,
        vec!["other.example"]
    );

    // In-place rewrite (no rename) is noticed too.
    std::fs::write(&p.resolv_conf, "nameserver 127.0.1.1\n").expect("rewrite");
    let took = wait_for_answer(f.a, UP1).await;
    println!("resolv.conf rewritten in place -> first answer from the new upstream after {took:?}");
    assert!(
        !watcher.refresh().expect("refresh"),
        "refresh with no change reports no change"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstreams_follow_symlinks_and_systemd_resolved() {
    let (up1, _up2) = FakeUpstream::pair(
        [Ipv4Addr::new(127, 0, 2, 1), Ipv4Addr::new(127, 0, 2, 2)],
        [UP1, UP2],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path(), up1.addr.port());
    let sd_dir = dir.path().join("systemd");
    std::fs::create_dir(&sd_dir).expect("mkdir");
    // resolv.conf -> systemd/stub-resolv.conf, which lists only the stub.
    std::fs::write(
        sd_dir.join("stub-resolv.conf"),
        "nameserver 127.0.0.53\nsearch lan\n",
    )
    .expect("write stub");
    std::os::unix::fs::symlink("systemd/stub-resolv.conf", &p.resolv_conf).expect("symlink");
    std::fs::write(&p.systemd_resolv_conf, "nameserver 127.0.2.1\nsearch lan\n").expect("write sd");
    let f = fixture(vec![]);
    let _watcher = ResolvWatcher::spawn(
        p.clone(),
        Arc::clone(f.svc.upstreams()),
        Duration::from_millis(20),
    )
    .expect("watch");
    wait_for_answer(f.a, UP1).await;
    // systemd-resolved rewrites its upstream file (by rename, in its own directory).
    write_by_rename(&p.systemd_resolv_conf, "nameserver 127.0.2.2\nsearch lan\n");
    let took = wait_for_answer(f.a, UP2).await;
    println!("systemd-resolved upstream file renamed -> new upstream answers after {took:?}");
    // The symlink target itself now lists a real server (resolved stopped): followed too.
    write_by_rename(&sd_dir.join("stub-resolv.conf"), "nameserver 127.0.2.1\n");
    let took = wait_for_answer(f.a, UP1).await;
    println!("symlink target replaced -> new upstream answers after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dual_stack_network_answers_on_both_listeners() {
    let v6_ok = std::net::UdpSocket::bind("[::1]:0").is_ok();
    assert!(v6_ok, "this test needs IPv6 on the loopback (::1)");
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let ups = Arc::new(Upstreams::new(vec![up.addr], Vec::new(), fast_forwarding()));
    let svc = DnsService::new(
        Arc::new(DnsRecords::new()),
        ups,
        AnswerConfig::default(),
        Default::default(),
    );
    let scope = NetworkScope {
        id: "d".into(),
        subnets: vec!["127.0.0.2/32".parse().unwrap(), "::1/128".parse().unwrap()],
        internal: false,
    };
    let v4 = svc
        .start_network(scope.clone(), "127.0.0.1:0".parse().unwrap())
        .expect("v4 listener");
    let v6 = svc
        .start_network(scope, "[::1]:0".parse().unwrap())
        .expect("v6 listener");
    assert_eq!(svc.listen_addrs("d").len(), 2);
    svc.records()
        .add_endpoint(
            "d",
            Endpoint {
                addresses: vec![ip("10.80.0.2"), ip("fd00:80::2")],
                ..ep("dual", "10.80.0.2", &["proj-dual-1", "dual"])
            },
        )
        .expect("add");
    let m = ask(v6, ip("::1"), "dual", RecordType::AAAA).await;
    let v6s: Vec<_> = m
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect();
    assert_eq!(
        v6s,
        vec!["fd00:80::2".parse::<std::net::Ipv6Addr>().unwrap()]
    );
    assert_eq!(
        v4s(&ask(v4, A_CLIENT, "dual", RecordType::A).await),
        vec![Ipv4Addr::new(10, 80, 0, 2)]
    );
    let ptr = ask(
        v4,
        A_CLIENT,
        &hickory_proto::rr::Name::from(ip("fd00:80::2")).to_ascii(),
        RecordType::PTR,
    )
    .await;
    assert_eq!(ptr.answers.len(), 2, "{ptr:?}");
    assert!(svc.stop_network("d"));
    assert!(svc.listen_addrs("d").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_systemd_directory_is_watched_after_a_refresh() {
    let (up1, _up2) = FakeUpstream::pair(
        [Ipv4Addr::new(127, 0, 3, 1), Ipv4Addr::new(127, 0, 3, 2)],
        [UP1, UP2],
    )
    .await;
    let dir = tempfile::tempdir().expect("tempdir");
    let p = paths(dir.path(), up1.addr.port());
    std::fs::write(&p.resolv_conf, "nameserver 127.0.0.53\n").expect("write");
    let f = fixture(vec![]);
    let watcher = ResolvWatcher::spawn(
        p.clone(),
        Arc::clone(f.svc.upstreams()),
        Duration::from_millis(20),
    )
    .expect("watch");
    // systemd-resolved starts after berth: its directory did not exist when the watch began.
    std::fs::create_dir(p.systemd_resolv_conf.parent().expect("dir")).expect("mkdir");
    std::fs::write(&p.systemd_resolv_conf, "nameserver 127.0.3.1\n").expect("write sd");
    assert!(
        watcher.refresh().expect("refresh"),
        "the reconcile backstop picks it up"
    );
    wait_for_answer(f.a, UP1).await;
    // ... and from then on the directory is watched (the watch loop re-registers at once;
    // the pause only covers a loaded machine).
    tokio::time::sleep(Duration::from_millis(200)).await;
    write_by_rename(&p.systemd_resolv_conf, "nameserver 127.0.3.2\n");
    let took = wait_for_answer(f.a, UP2).await;
    println!("late systemd directory: rename noticed after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_dns_servers_override_the_host_upstreams() {
    let host_up = FakeUpstream::start(UP1, Mode::Normal).await;
    let own_up = FakeUpstream::start(UP2, Mode::Normal).await;
    let f = fixture(vec![host_up.addr]);
    f.svc
        .records()
        .add_endpoint(
            "b",
            Endpoint {
                dns_servers: vec![own_up.addr],
                ..ep("custom", "127.0.0.3", &["proj-custom-1", "custom"])
            },
        )
        .expect("add");
    assert_eq!(
        v4s(&ask(f.b, B_CLIENT, "example.test", RecordType::A).await),
        vec![UP2],
        "compose dns: of the container"
    );
    assert_eq!(
        v4s(&ask(f.a, A_CLIENT, "example.test", RecordType::A).await),
        vec![UP1],
        "others use the host's"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stay_whole_while_records_churn() {
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let f = fixture(vec![up.addr]);
    let records = Arc::clone(f.svc.records());
    // A writer flips a 4th replica in and out while queries run: every answer must be
    // either the 3 or the 4 replicas, never a partial set.
    let writer = tokio::task::spawn_blocking(move || {
        for _ in 0..300 {
            records
                .add_endpoint("a", ep("web4", "10.77.0.5", &["proj-web-4", "web"]))
                .expect("add");
            records.remove_endpoint("a", "web4");
        }
    });
    let mut seen = std::collections::BTreeSet::new();
    while !writer.is_finished() {
        let n = v4s(&ask(f.a, A_CLIENT, "web", RecordType::A).await).len();
        assert!(n == 3 || n == 4, "partial answer with {n} replicas");
        seen.insert(n);
    }
    writer.await.expect("writer");
    assert_eq!(
        v4s(&ask(f.a, A_CLIENT, "web", RecordType::A).await).len(),
        3
    );
    println!("replica counts seen during churn: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_listener_in_the_upstream_list_is_skipped() {
    let good = FakeUpstream::start(UP1, Mode::Normal).await;
    let ups = Arc::new(Upstreams::new(Vec::new(), Vec::new(), fast_forwarding()));
    let svc = DnsService::new(
        Arc::new(DnsRecords::new()),
        Arc::clone(&ups),
        AnswerConfig::default(),
        Default::default(),
    );
    // The forwarder's own queries come from 127.0.0.1, a client of this network: forwarding to
    // ourselves would loop.
    let scope = NetworkScope {
        id: "lo".into(),
        subnets: vec!["127.0.0.0/8".parse().unwrap()],
        internal: false,
    };
    let me = svc
        .start_network(scope, "127.0.0.1:0".parse().unwrap())
        .expect("start");
    ups.set(vec![me, good.addr], Vec::new());
    let m = ask(me, A_CLIENT, "example.test", RecordType::A).await;
    assert_eq!(v4s(&m), vec![UP1]);
    assert_eq!(
        good.queries.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one query, no loop through ourselves"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coexists_with_a_wildcard_dns_server_on_the_same_port() {
    // A host DNS server on the wildcard address (SO_REUSEADDR, as dnsmasq and BIND set it)
    // holding UDP and TCP on the port berth wants for its gateway address.
    let (wild_udp, wild_tcp, port) = loop {
        let udp = wildcard_udp_with_reuseaddr();
        let port = udp.local_addr().expect("addr").port();
        if let Ok(tcp) = std::net::TcpListener::bind(("0.0.0.0", port)) {
            break (udp, tcp, port);
        }
    };
    let up = FakeUpstream::start(UP1, Mode::Normal).await;
    let ups = Arc::new(Upstreams::new(vec![up.addr], Vec::new(), fast_forwarding()));
    let svc = DnsService::new(
        Arc::new(DnsRecords::new()),
        ups,
        AnswerConfig::default(),
        Default::default(),
    );
    let scope = NetworkScope {
        id: "w".into(),
        subnets: vec!["127.0.0.2/32".parse().unwrap()],
        internal: false,
    };
    let addr = svc
        .start_network(scope, SocketAddr::new(ip("127.0.0.1"), port))
        .expect("UDP coexists; TCP taken is not fatal");
    svc.records()
        .add_endpoint("w", ep("x", "10.81.0.2", &["x"]))
        .expect("add");
    assert_eq!(
        v4s(&ask(addr, A_CLIENT, "x", RecordType::A).await),
        vec![Ipv4Addr::new(10, 81, 0, 2)],
        "the specific bind wins"
    );
    drop((wild_udp, wild_tcp));
}

fn wildcard_udp_with_reuseaddr() -> std::net::UdpSocket {
    use nix::sys::socket::{
        AddressFamily, SockFlag, SockType, SockaddrIn, bind, setsockopt, socket, sockopt,
    };
    let fd = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .expect("socket");
    setsockopt(&fd, sockopt::ReuseAddr, &true).expect("reuseaddr");
    bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrIn::new(0, 0, 0, 0, 0),
    )
    .expect("bind");
    std::net::UdpSocket::from(fd)
}
