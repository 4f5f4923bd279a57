//! The DNS keeper over real sockets on loopback, run on a thread of the test (it is
//! `berth dns DIR` in production): it serves the records the daemon publishes, follows every
//! new generation, reports what it serves, serves on sockets handed over from a previous
//! keeper (with what queued up meanwhile), and stops when no network is left. No root needed;
//! no traffic leaves the machine.

mod dns_util;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use berth_netd::dns::handoff::{self, KeeperStatus, PublishedNetwork, RECORDS, RecordsFile};
use berth_netd::dns::{Endpoint, NetworkScope};
use dns_util::{ask, query, v4s};
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

fn network(listen: SocketAddr, endpoints: &[(&str, &str)]) -> PublishedNetwork {
    PublishedNetwork {
        scope: NetworkScope {
            id: "k_default".into(),
            subnets: vec!["127.0.0.0/8".parse().expect("subnet")],
            internal: false,
        },
        listen: vec![listen],
        endpoints: endpoints
            .iter()
            .map(|(name, addr)| Endpoint {
                id: name.to_string(),
                container: name.to_string(),
                addresses: vec![addr.parse().expect("addr")],
                names: vec![name.to_string()],
                ..Default::default()
            })
            .collect(),
    }
}

fn publish(dir: &Path, generation: u64, networks: Vec<PublishedNetwork>) {
    let file = RecordsFile {
        generation,
        journal: 0,
        host_epoch: 0,
        networks,
    };
    handoff::write_json(dir, RECORDS, &file).expect("write records");
}

fn served(dir: &Path, generation: u64) -> KeeperStatus {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Ok(Some(st)) = handoff::read_json::<KeeperStatus>(dir, handoff::STATUS)
            && st.generation >= generation
        {
            return st;
        }
        assert!(
            Instant::now() < deadline,
            "generation {generation} not served"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn keeper_thread(dir: &Path) -> std::thread::JoinHandle<()> {
    let dir = dir.to_path_buf();
    std::thread::spawn(move || berth_netd::dns::keeper::run(&dir).expect("keeper"))
}

fn stopped(t: std::thread::JoinHandle<()>) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !t.is_finished() {
        assert!(Instant::now() < deadline, "the keeper did not stop");
        std::thread::sleep(Duration::from_millis(5));
    }
    t.join().expect("keeper thread");
}

/// One test: the keeper reads its handed-over sockets from the process environment, which
/// two keepers on parallel test threads would share.
#[tokio::test]
async fn keeper_serves_generations_and_handed_over_sockets() {
    serves_each_generation_and_stops_with_the_last_network().await;
    a_new_keeper_serves_on_handed_over_sockets_and_answers_what_queued().await;
}

async fn serves_each_generation_and_stops_with_the_last_network() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("dns");
    handoff::prepare_dir(&dir).expect("dir");
    let listen: SocketAddr = "127.0.0.1:0".parse().expect("addr");
    publish(&dir, 1, vec![network(listen, &[("db", "127.0.0.9")])]);
    let keeper = keeper_thread(&dir);
    let st = served(&dir, 1);
    assert_eq!(st.pid, std::process::id());
    assert_eq!(st.listening.len(), 1, "{st:?}");
    let addr = st.listening[0].addr;
    assert_eq!(st.listening[0].inodes.len(), st.listening[0].fds.len());
    let m = ask(addr, CLIENT, "db", RecordType::A).await;
    assert_eq!(v4s(&m), vec![Ipv4Addr::new(127, 0, 0, 9)]);

    // A new generation: a name added, one gone; same socket.
    publish(&dir, 2, vec![network(listen, &[("web", "127.0.0.10")])]);
    let st2 = served(&dir, 2);
    assert_eq!(st2.listening[0].inodes, st.listening[0].inodes);
    let m = ask(addr, CLIENT, "web", RecordType::A).await;
    assert_eq!(v4s(&m), vec![Ipv4Addr::new(127, 0, 0, 10)]);

    // No network left: the keeper stops and withdraws its report.
    publish(&dir, 3, vec![]);
    stopped(keeper);
    assert!(!dir.join(handoff::STATUS).exists());
}

async fn a_new_keeper_serves_on_handed_over_sockets_and_answers_what_queued() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("dns");
    handoff::prepare_dir(&dir).expect("dir");
    // The sockets a previous keeper left (the daemon's copies): bound, nobody reading.
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").expect("udp");
    let addr = udp.local_addr().expect("addr");
    // A query sent while no keeper runs waits in the buffer.
    let client = std::net::UdpSocket::bind((CLIENT, 0)).expect("client");
    client
        .send_to(&query("db", RecordType::A), addr)
        .expect("send");
    let fd = OwnedFd::from(udp);
    // SAFETY: no other thread of this test binary reads or writes the environment now (one
    // test, and its first keeper has stopped).
    unsafe { std::env::set_var(handoff::FDS_ENV, fd.as_raw_fd().to_string()) };
    // The keeper takes the descriptor over (it closes it when it stops).
    let raw = fd.as_raw_fd();
    std::mem::forget(fd);
    publish(&dir, 1, vec![network(addr, &[("db", "127.0.0.9")])]);
    let keeper = keeper_thread(&dir);
    let st = served(&dir, 1);
    assert_eq!(st.listening[0].addr, addr);
    assert!(st.listening[0].fds.contains(&raw), "{st:?}");
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 512];
    let n = client
        .recv(&mut buf)
        .expect("the queued query was answered");
    let m = Message::from_vec(&buf[..n]).expect("answer");
    assert_eq!(v4s(&m), vec![Ipv4Addr::new(127, 0, 0, 9)]);
    publish(&dir, 2, vec![]);
    stopped(keeper);
}
