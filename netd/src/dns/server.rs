//! The per-network DNS server: one UDP socket and one TCP listener on the network's gateway
//! address, answering only the network's clients.
//!
//! An own loop on hickory-proto rather than hickory-server's `Server` + `Catalog`: the answer
//! depends on who asks (the source address picks the network and the container), upstreams
//! change at run time, and local answers are served inline in the receive loop without a task
//! per packet; only forwarded queries get a task, bounded by a semaphore.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::socket::{
    self, AddressFamily, Backlog, SockFlag, SockType, SockaddrStorage, sockopt,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use super::answer::{self, Action, AnswerConfig};
use super::records::DnsRecords;
use super::upstream::Upstreams;
use super::wire;

/// Errors of starting a network's DNS server.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The listen address could not be bound (port 53 held by another DNS server on the host,
    /// or no permission).
    #[error("dns server of network {network:?}: cannot {op} {addr}")]
    Bind {
        /// The network.
        network: String,
        /// The address.
        addr: SocketAddr,
        /// socket/bind/listen.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Servers are tokio tasks; starting one needs a runtime.
    #[error("dns server of network {network:?}: not called inside a tokio runtime")]
    NoRuntime {
        /// The network.
        network: String,
    },
}

/// What every network's server shares.
#[derive(Debug)]
pub struct Shared {
    /// The names.
    pub records: Arc<DnsRecords>,
    /// Where forwarded queries go.
    pub upstreams: Arc<Upstreams>,
    /// TTL and extra domains.
    pub answer: AnswerConfig,
    /// Bounds forwarded queries in flight (beyond it queries are dropped; clients retry).
    pub forward_slots: Arc<Semaphore>,
    /// Bounds open TCP connections.
    pub tcp_slots: Arc<Semaphore>,
    /// Idle time after which a client's TCP connection is closed.
    pub tcp_idle: Duration,
}

/// A running server for one network; dropping it stops it.
#[derive(Debug)]
pub struct NetworkServer {
    addr: SocketAddr,
    /// Descriptor numbers of its sockets in this process (UDP first).
    fds: Vec<i32>,
    tasks: Vec<JoinHandle<()>>,
    /// Its sockets, exempt from netd's host-port check while it runs.
    _own: Vec<crate::listeners::OwnSocket>,
}

impl NetworkServer {
    /// The address it listens on (UDP and TCP).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The inodes of its sockets (another berth process exempts them from its port check).
    pub fn inodes(&self) -> Vec<u64> {
        self._own
            .iter()
            .map(crate::listeners::OwnSocket::inode)
            .collect()
    }

    /// The descriptor numbers of its sockets in this process, UDP first (the daemon copies
    /// them with pidfd_getfd so they outlive this process).
    pub fn fds(&self) -> Vec<i32> {
        self.fds.clone()
    }
}

impl Drop for NetworkServer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn family(addr: &SocketAddr) -> AddressFamily {
    if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

/// Binds with IP_FREEBIND so the server can start before the bridge has its address and
/// survives the bridge being deleted and re-created by reconcile.
fn bind_socket(network: &str, addr: SocketAddr, ty: SockType) -> Result<OwnedFd, ServerError> {
    let err = |op| {
        move |e: nix::Error| ServerError::Bind {
            network: network.to_string(),
            addr,
            op,
            source: std::io::Error::from(e),
        }
    };
    let fd = socket::socket(
        family(&addr),
        ty,
        SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        None,
    )
    .map_err(err("create a socket for"))?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true).map_err(err("set SO_REUSEADDR on"))?;
    if let Err(e) = socket::setsockopt(&fd, sockopt::IpFreebind, &true) {
        tracing::debug!(error = %e, %addr, "IP_FREEBIND not available");
    }
    socket::bind(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        &SockaddrStorage::from(addr),
    )
    .map_err(err("bind"))?;
    if ty == SockType::Stream {
        socket::listen(&fd, Backlog::new(128).unwrap_or(Backlog::MAXCONN))
            .map_err(err("listen on"))?;
    }
    Ok(fd)
}

/// Binds UDP and TCP on the same address. With port 0 (tests) the TCP socket claims the port
/// the UDP socket got (retried a few times). On a fixed port a TCP conflict is not fatal: a
/// host DNS server listening on the TCP wildcard blocks a specific TCP bind even with
/// SO_REUSEADDR, while UDP coexists; UDP answers are what containers need, TCP only serves
/// truncated answers, so the server runs UDP-only and says so.
fn bind_pair(
    network: &str,
    addr: SocketAddr,
) -> Result<(UdpSocket, Option<TcpListener>, SocketAddr), ServerError> {
    let io = |op, addr| {
        move |source| ServerError::Bind {
            network: network.to_string(),
            addr,
            op,
            source,
        }
    };
    let mut last = None;
    for _ in 0..8 {
        let udp = std::net::UdpSocket::from(bind_socket(network, addr, SockType::Datagram)?);
        let local = udp.local_addr().map_err(io("read the address of", addr))?;
        let tcp = match bind_socket(network, local, SockType::Stream) {
            Ok(tcp) => Some(tcp),
            Err(e) if addr.port() == 0 => {
                last = Some(e);
                continue;
            }
            Err(e) => {
                tracing::warn!(network, addr = %local, error = %e, "dns: serving UDP only (TCP port taken)");
                None
            }
        };
        let udp = UdpSocket::from_std(udp).map_err(io("register", local))?;
        let tcp = match tcp {
            Some(t) => Some(
                TcpListener::from_std(std::net::TcpListener::from(t))
                    .map_err(io("register", local))?,
            ),
            None => None,
        };
        return Ok((udp, tcp, local));
    }
    Err(last.unwrap_or(ServerError::Bind {
        network: network.to_string(),
        addr,
        op: "bind",
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    }))
}

/// Sockets bound by an earlier process and handed over: a UDP socket and maybe a listening
/// TCP one on the same address. Queries that arrived meanwhile wait in their buffers.
#[derive(Debug)]
pub struct BoundPair {
    /// The UDP socket.
    pub udp: OwnedFd,
    /// The TCP listener, if the address had one.
    pub tcp: Option<OwnedFd>,
}

fn adopt_pair(
    network: &str,
    addr: SocketAddr,
    pair: BoundPair,
) -> Result<(UdpSocket, Option<TcpListener>, SocketAddr), ServerError> {
    let io = |op| {
        move |source| ServerError::Bind {
            network: network.to_string(),
            addr,
            op,
            source,
        }
    };
    let udp = std::net::UdpSocket::from(pair.udp);
    udp.set_nonblocking(true)
        .map_err(io("set non-blocking the handed-over socket of"))?;
    let local = udp.local_addr().map_err(io("read the address of"))?;
    let udp = UdpSocket::from_std(udp).map_err(io("register"))?;
    let tcp = match pair.tcp {
        Some(fd) => {
            let l = std::net::TcpListener::from(fd);
            l.set_nonblocking(true)
                .map_err(io("set non-blocking the handed-over socket of"))?;
            Some(TcpListener::from_std(l).map_err(io("register"))?)
        }
        None => None,
    };
    Ok((udp, tcp, local))
}

/// Starts the server of `network` on `addr` (port 0 picks a free port, for tests).
pub fn spawn(
    shared: Arc<Shared>,
    network: &str,
    addr: SocketAddr,
) -> Result<NetworkServer, ServerError> {
    spawn_on(shared, network, addr, None)
}

/// [`spawn`], on sockets handed over (`bound`) instead of new ones when given.
pub fn spawn_on(
    shared: Arc<Shared>,
    network: &str,
    addr: SocketAddr,
    bound: Option<BoundPair>,
) -> Result<NetworkServer, ServerError> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| ServerError::NoRuntime {
        network: network.to_string(),
    })?;
    let (udp, tcp, local) = {
        let _guard = rt.enter();
        match bound {
            Some(pair) => adopt_pair(network, addr, pair)?,
            None => bind_pair(network, addr)?,
        }
    };
    let mut fds = vec![std::os::fd::AsRawFd::as_raw_fd(&udp)];
    fds.extend(tcp.as_ref().map(std::os::fd::AsRawFd::as_raw_fd));
    let mut own: Vec<_> = crate::listeners::OwnSocket::of(&udp).into_iter().collect();
    own.extend(tcp.as_ref().and_then(crate::listeners::OwnSocket::of));
    let mut tasks = vec![rt.spawn(udp_loop(
        Arc::clone(&shared),
        network.to_string(),
        Arc::new(udp),
    ))];
    let has_tcp = tcp.is_some();
    if let Some(tcp) = tcp {
        tasks.push(rt.spawn(tcp_loop(shared, network.to_string(), tcp)));
    }
    tracing::info!(network, addr = %local, tcp = has_tcp, "dns server listening");
    Ok(NetworkServer {
        addr: local,
        fds,
        tasks,
        _own: own,
    })
}

fn reply_for_udp(bytes: Vec<u8>, limit: usize) -> Vec<u8> {
    if bytes.len() > limit {
        wire::truncate_response(&bytes)
    } else {
        bytes
    }
}

async fn udp_loop(shared: Arc<Shared>, network: String, sock: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 4096];
    loop {
        let (n, src) = match sock.recv_from(&mut buf).await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(network, error = %e, "dns udp receive error");
                tokio::task::yield_now().await;
                continue;
            }
        };
        let search = shared.upstreams.current();
        let (action, msg) = answer::decide(
            &shared.records,
            &network,
            src.ip(),
            &buf[..n],
            search.search(),
            &shared.answer,
        );
        let limit = answer::client_udp_limit(msg.as_ref());
        match action {
            Action::Reply(bytes) => send_udp(&sock, &reply_for_udp(bytes, limit), src).await,
            Action::Forward { servers } => {
                let Ok(permit) = Arc::clone(&shared.forward_slots).try_acquire_owned() else {
                    tracing::debug!(network, %src, "dns: too many forwarded queries in flight; dropping one");
                    continue;
                };
                let query = buf[..n].to_vec();
                let shared = Arc::clone(&shared);
                let sock = Arc::clone(&sock);
                tokio::spawn(async move {
                    let resp = shared.upstreams.forward(&query, &servers).await;
                    drop(permit);
                    send_udp(&sock, &reply_for_udp(resp, limit), src).await;
                });
            }
            Action::Drop => {}
        }
    }
}

async fn send_udp(sock: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    if bytes.is_empty() {
        return;
    }
    let sent = match sock.try_send_to(bytes, to) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => sock.send_to(bytes, to).await,
        other => other,
    };
    if let Err(e) = sent {
        tracing::debug!(%to, error = %e, "dns udp send failed");
    }
}

async fn tcp_loop(shared: Arc<Shared>, network: String, listener: TcpListener) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(network, error = %e, "dns tcp accept error");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        if shared.records.asker(&network, peer.ip()).is_none() {
            tracing::debug!(network, %peer, "dns tcp client from outside the network; closing");
            continue;
        }
        let Ok(permit) = Arc::clone(&shared.tcp_slots).try_acquire_owned() else {
            tracing::debug!(network, %peer, "dns: too many tcp clients; closing one");
            continue;
        };
        let shared = Arc::clone(&shared);
        let network = network.clone();
        tokio::spawn(async move {
            if let Err(e) = serve_tcp(&shared, &network, stream, peer.ip()).await {
                tracing::debug!(network, %peer, error = %e, "dns tcp connection ended");
            }
            drop(permit);
        });
    }
}

async fn serve_tcp(
    shared: &Shared,
    network: &str,
    mut stream: TcpStream,
    peer: IpAddr,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    loop {
        let mut len = [0u8; 2];
        match tokio::time::timeout(shared.tcp_idle, stream.read_exact(&mut len)).await {
            Err(_) => return Ok(()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Ok(r) => r?,
        };
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(len))];
        tokio::time::timeout(shared.tcp_idle, stream.read_exact(&mut query))
            .await
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))??;
        let search = shared.upstreams.current();
        let (action, _) = answer::decide(
            &shared.records,
            network,
            peer,
            &query,
            search.search(),
            &shared.answer,
        );
        let resp = match action {
            Action::Reply(b) => b,
            Action::Forward { servers } => shared.upstreams.forward(&query, &servers).await,
            Action::Drop => continue,
        };
        let Ok(n) = u16::try_from(resp.len()) else {
            continue;
        };
        let mut frame = Vec::with_capacity(resp.len() + 2);
        frame.extend_from_slice(&n.to_be_bytes());
        frame.extend_from_slice(&resp);
        stream.write_all(&frame).await?;
    }
}
