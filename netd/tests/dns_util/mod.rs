//! Helpers of the DNS integration tests: a DNS client bound to a chosen source address and
//! fake upstream servers on loopback. Only loopback traffic.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

/// Builds a query message.
pub fn query(name: &str, t: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("test name"), t));
    m.to_vec().expect("encode")
}

/// Asks `server` over UDP from source address `from`.
pub async fn ask(server: SocketAddr, from: IpAddr, name: &str, t: RecordType) -> Message {
    try_ask(server, from, name, t, Duration::from_secs(5))
        .await
        .unwrap_or_else(|| panic!("no answer from {server} for {name} {t}"))
}

/// Like `ask`, `None` on timeout.
pub async fn try_ask(
    server: SocketAddr,
    from: IpAddr,
    name: &str,
    t: RecordType,
    timeout: Duration,
) -> Option<Message> {
    let sock = UdpSocket::bind((from, 0)).await.expect("bind client");
    let q = query(name, t);
    sock.send_to(&q, server).await.expect("send");
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(timeout, sock.recv(&mut buf))
        .await
        .ok()?
        .expect("recv");
    let m = Message::from_vec(&buf[..n]).expect("parse answer");
    assert_eq!(m.metadata.id, u16::from_be_bytes([q[0], q[1]]), "answer id");
    Some(m)
}

/// Asks over TCP from `from`.
pub async fn ask_tcp(
    server: SocketAddr,
    from: IpAddr,
    name: &str,
    t: RecordType,
) -> std::io::Result<Message> {
    let sock = tokio::net::TcpSocket::new_v4()?;
    sock.bind((from, 0).into())?;
    let mut s = tokio::time::timeout(Duration::from_secs(5), sock.connect(server)).await??;
    let q = query(name, t);
    let mut frame = (q.len() as u16).to_be_bytes().to_vec();
    frame.extend_from_slice(&q);
    s.write_all(&frame).await?;
    let mut len = [0u8; 2];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut len)).await??;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(len))];
    s.read_exact(&mut body).await?;
    Message::from_vec(&body).map_err(std::io::Error::other)
}

/// The A addresses of an answer, in order.
pub fn v4s(m: &Message) -> Vec<Ipv4Addr> {
    m.answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// How a fake upstream behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answers `example.test` with its address, NXDOMAIN for the rest.
    Normal,
    /// Over UDP only an empty answer with TC set; the real answer over TCP.
    TruncateUdp,
    /// Receives and never answers (a black hole).
    Silent,
    /// Answers SERVFAIL to everything.
    ServFail,
}

/// A fake upstream DNS server on 127.0.0.1 (UDP and TCP on the same port).
pub struct FakeUpstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn respond(q: &[u8], answer: Ipv4Addr, mode: Mode, udp: bool) -> Option<Vec<u8>> {
    let m = Message::from_vec(q).ok()?;
    let mut r = Message::response(m.metadata.id, OpCode::Query);
    r.metadata.message_type = MessageType::Response;
    r.metadata.recursion_desired = m.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.add_queries(m.queries.iter().cloned());
    match mode {
        Mode::Silent => return None,
        Mode::ServFail => r.metadata.response_code = ResponseCode::ServFail,
        Mode::TruncateUdp if udp => r.metadata.truncation = true,
        Mode::Normal | Mode::TruncateUdp => {
            let q = m.queries.first()?;
            if q.name().to_ascii().eq_ignore_ascii_case("example.test.") {
                if q.query_type() == RecordType::A {
                    r.add_answer(Record::from_rdata(
                        q.name().clone(),
                        30,
                        RData::A(A(answer)),
                    ));
                }
            } else {
                r.metadata.response_code = ResponseCode::NXDomain;
            }
        }
    }
    r.to_vec().ok()
}

impl FakeUpstream {
    /// Starts one on 127.0.0.1 (free port) answering `example.test` with `answer`.
    pub async fn start(answer: Ipv4Addr, mode: Mode) -> Self {
        loop {
            if let Some(u) =
                Self::start_at(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), answer, mode).await
            {
                return u;
            }
        }
    }

    /// Starts one on `addr` (UDP and TCP); `None` if that address is taken.
    pub async fn start_at(addr: SocketAddr, answer: Ipv4Addr, mode: Mode) -> Option<Self> {
        let udp = UdpSocket::bind(addr).await.ok()?;
        let addr = udp.local_addr().expect("addr");
        let tcp = TcpListener::bind(addr).await.ok()?;
        let queries = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&queries);
        let udp_task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            while let Ok((n, from)) = udp.recv_from(&mut buf).await {
                count.fetch_add(1, Ordering::SeqCst);
                if let Some(r) = respond(&buf[..n], answer, mode, true) {
                    let _ = udp.send_to(&r, from).await;
                }
            }
        });
        let tcp_task = tokio::spawn(async move {
            while let Ok((mut s, _)) = tcp.accept().await {
                tokio::spawn(async move {
                    let mut len = [0u8; 2];
                    while s.read_exact(&mut len).await.is_ok() {
                        let mut q = vec![0u8; usize::from(u16::from_be_bytes(len))];
                        if s.read_exact(&mut q).await.is_err() {
                            return;
                        }
                        if let Some(r) = respond(&q, answer, mode, false) {
                            let mut f = (r.len() as u16).to_be_bytes().to_vec();
                            f.extend_from_slice(&r);
                            if s.write_all(&f).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        Some(Self {
            addr,
            queries,
            tasks: vec![udp_task, tcp_task],
        })
    }

    /// Two upstreams on two loopback addresses sharing one port (resolv.conf has no port
    /// syntax, so a test swaps addresses and keeps the port).
    pub async fn pair(ips: [Ipv4Addr; 2], answers: [Ipv4Addr; 2]) -> (Self, Self) {
        loop {
            let Some(a) =
                Self::start_at(SocketAddr::from((ips[0], 0)), answers[0], Mode::Normal).await
            else {
                continue;
            };
            let second = SocketAddr::from((ips[1], a.addr.port()));
            if let Some(b) = Self::start_at(second, answers[1], Mode::Normal).await {
                return (a, b);
            }
        }
    }
}

/// A loopback UDP port where nothing listens (queries get ICMP port unreachable).
pub async fn closed_port() -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    s.local_addr().expect("addr")
}

/// A fake upstream on its own thread inside a network namespace (an ISP's resolver in a
/// simulated world); stopped and joined on drop.
pub struct NetnsUpstream {
    pub addr: SocketAddr,
    pub queries: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl NetnsUpstream {
    /// Starts a `Mode::Normal` upstream on `addr` (UDP and TCP) inside the namespace at `ns`,
    /// answering `example.test` with `answer`.
    pub fn spawn(ns: &std::path::Path, addr: SocketAddr, answer: Ipv4Addr) -> Self {
        let ns = ns.to_path_buf();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let f = std::fs::File::open(&ns).expect("open netns");
            nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let u = FakeUpstream::start_at(addr, answer, Mode::Normal)
                    .await
                    .expect("bind the fake upstream");
                ready_tx.send(u.queries.clone()).expect("ready");
                let _ = stop_rx.await;
                drop(u);
            });
        });
        let queries = ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("upstream started");
        Self {
            addr,
            queries,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }
}

impl Drop for NetnsUpstream {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One blocking UDP query from the calling thread's namespace; the A addresses of the answer,
/// or an error on timeout or a bad answer.
pub fn resolve_a(
    server: SocketAddr,
    name: &str,
    timeout: Duration,
) -> std::io::Result<Vec<Ipv4Addr>> {
    let s = std::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    s.set_read_timeout(Some(timeout))?;
    let q = query(name, RecordType::A);
    s.send_to(&q, server)?;
    let mut buf = [0u8; 4096];
    loop {
        let n = s.recv(&mut buf)?;
        let m = Message::from_vec(&buf[..n]).map_err(std::io::Error::other)?;
        if m.metadata.id != u16::from_be_bytes([q[0], q[1]]) {
            continue;
        }
        if m.metadata.response_code != ResponseCode::NoError {
            return Err(std::io::Error::other(format!(
                "{name}: {}",
                m.metadata.response_code
            )));
        }
        return Ok(v4s(&m));
    }
}
