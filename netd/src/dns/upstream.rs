//! Forwarding to the host's upstream resolvers, with an upstream list that can be swapped
//! while queries are in flight (the resolv.conf watcher and the reconcile loop do that).
//!
//! Each query goes out from a fresh UDP socket (random source port, random id, connected so
//! the kernel drops answers from anyone else), is retried over TCP when the answer is
//! truncated, fails over to the next upstream on timeout, SERVFAIL or REFUSED, and ends in a
//! SERVFAIL of our own when every upstream failed. An upstream that just failed is tried last
//! for a while, so one dead server does not cost every query a timeout.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::wire;

/// Why one upstream attempt failed (logged; the client only ever sees SERVFAIL).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Socket trouble talking to the upstream.
    #[error("dns upstream {server}: {op}")]
    Io {
        /// The upstream.
        server: SocketAddr,
        /// What we were doing.
        op: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// No (matching) answer within the per-upstream timeout.
    #[error("dns upstream {server}: no answer within {timeout:?}")]
    Timeout {
        /// The upstream.
        server: SocketAddr,
        /// The per-upstream timeout.
        timeout: Duration,
    },
    /// The upstream answered with something that is not an answer to our question.
    #[error("dns upstream {server}: malformed answer over TCP")]
    Malformed {
        /// The upstream.
        server: SocketAddr,
    },
}

/// Timeouts of forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardConfig {
    /// How long one upstream gets (UDP, or the TCP retry) before the next one is tried.
    pub attempt_timeout: Duration,
    /// The whole forward, over all upstreams: stays below glibc's 5 s client timeout.
    pub total_budget: Duration,
    /// How long an upstream that failed is moved to the end of the list.
    pub penalty: Duration,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        Self {
            attempt_timeout: Duration::from_millis(1500),
            total_budget: Duration::from_millis(4000),
            penalty: Duration::from_secs(30),
        }
    }
}

/// One generation of the upstream list (what the host's resolv.conf says right now).
#[derive(Debug)]
pub struct UpstreamSet {
    servers: Vec<SocketAddr>,
    search: Vec<String>,
    /// Per server: milliseconds since `epoch` until which it is tried last.
    failed_until: Vec<AtomicU64>,
}

impl UpstreamSet {
    fn new(servers: Vec<SocketAddr>, search: Vec<String>) -> Self {
        let failed_until = servers.iter().map(|_| AtomicU64::new(0)).collect();
        Self {
            servers,
            search,
            failed_until,
        }
    }

    /// The upstream servers, in the host's order.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// The host's search domains (names of ours with these suffixes answer locally).
    pub fn search(&self) -> &[String] {
        &self.search
    }
}

/// The shared, swappable upstream list plus the forwarding logic.
#[derive(Debug)]
pub struct Upstreams {
    current: RwLock<Arc<UpstreamSet>>,
    config: ForwardConfig,
    epoch: Instant,
    pool: SocketPool,
    /// berth's own listeners: never forwarded to (a host resolv.conf pointing at a berth
    /// gateway would otherwise loop queries through us until the budget runs out).
    own: RwLock<Vec<SocketAddr>>,
}

impl Upstreams {
    /// Starts with `servers` and `search` (usually from `load_host`).
    pub fn new(servers: Vec<SocketAddr>, search: Vec<String>, config: ForwardConfig) -> Self {
        Self {
            current: RwLock::new(Arc::new(UpstreamSet::new(servers, search))),
            config,
            epoch: Instant::now(),
            pool: SocketPool::default(),
            own: RwLock::new(Vec::new()),
        }
    }

    /// The list in effect.
    pub fn current(&self) -> Arc<UpstreamSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// Replaces the list if it differs; returns whether it changed. Queries already in flight
    /// finish against the old list; the next one uses the new.
    pub fn set(&self, servers: Vec<SocketAddr>, search: Vec<String>) -> bool {
        let mut cur = self.current.write().unwrap_or_else(PoisonError::into_inner);
        if cur.servers == servers && cur.search == search {
            return false;
        }
        tracing::info!(old = ?cur.servers, new = ?servers, search = ?search, "dns upstreams changed");
        *cur = Arc::new(UpstreamSet::new(servers, search));
        self.pool.clear();
        true
    }

    /// Forgets which upstreams failed recently: after a host network change (new default
    /// route, link up again) a server that timed out a moment ago may be the best one again.
    pub fn reset_health(&self) {
        for f in &self.current().failed_until {
            f.store(0, Ordering::Relaxed);
        }
        self.pool.clear();
    }

    /// Tells the forwarder which addresses are berth's own DNS listeners.
    pub fn set_own_listeners(&self, addrs: Vec<SocketAddr>) {
        *self.own.write().unwrap_or_else(PoisonError::into_inner) = addrs;
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Forwards `query` (a client's query, as received) and returns the response bytes to send
    /// back: the upstream's answer with the client's id, or a SERVFAIL of ours. `servers`
    /// overrides the host's list (a container's own `dns:`); empty means the host's list.
    pub async fn forward(&self, query: &[u8], servers: &[SocketAddr]) -> Vec<u8> {
        let Some(qend) = wire::question_end(query) else {
            return wire::error_response(query, wire::RCODE_FORMERR);
        };
        let set = self.current();
        let now = self.now_ms();
        let order: Vec<(SocketAddr, Option<usize>)> = if servers.is_empty() {
            let (good, bad): (Vec<_>, Vec<_>) = (0..set.servers.len())
                .partition(|&i| set.failed_until[i].load(Ordering::Relaxed) <= now);
            good.into_iter()
                .chain(bad)
                .map(|i| (set.servers[i], Some(i)))
                .collect()
        } else {
            servers.iter().map(|s| (*s, None)).collect()
        };
        let own = self
            .own
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let deadline = Instant::now() + self.config.total_budget;
        for (server, idx) in order {
            if own.contains(&server) {
                tracing::debug!(%server, "dns: upstream is one of berth's own listeners; skipped");
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let timeout = left.min(self.config.attempt_timeout);
            match exchange(&self.pool, server, query, qend, timeout).await {
                Ok(resp) => {
                    let rcode = wire::rcode(&resp);
                    if rcode != wire::RCODE_SERVFAIL && rcode != wire::RCODE_REFUSED {
                        if let Some(i) = idx {
                            set.failed_until[i].store(0, Ordering::Relaxed);
                        }
                        return resp;
                    }
                    tracing::debug!(%server, rcode, "dns upstream refused or failed; trying the next");
                }
                Err(e) => tracing::debug!(error = %e, "dns upstream attempt failed"),
            }
            if let Some(i) = idx {
                let until = self.now_ms().saturating_add(
                    u64::try_from(self.config.penalty.as_millis()).unwrap_or(u64::MAX),
                );
                set.failed_until[i].store(until, Ordering::Relaxed);
            }
        }
        tracing::debug!(upstreams = ?set.servers, "dns: every upstream failed; SERVFAIL");
        wire::error_response(query, wire::RCODE_SERVFAIL)
    }
}

/// One query to one upstream: UDP, then TCP if the UDP answer was truncated.
async fn exchange(
    pool: &SocketPool,
    server: SocketAddr,
    query: &[u8],
    qend: usize,
    timeout: Duration,
) -> Result<Vec<u8>, UpstreamError> {
    let start = Instant::now();
    let id: u16 = rand::random();
    let mut out = query.to_vec();
    out[..2].copy_from_slice(&id.to_be_bytes());
    let resp = tokio::time::timeout(timeout, udp_exchange(pool, server, &out, qend, id))
        .await
        .map_err(|_| UpstreamError::Timeout { server, timeout })??;
    let mut resp = if wire::truncated(&resp) {
        tracing::debug!(%server, "dns upstream answer truncated; retrying over TCP");
        let left = timeout
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(200));
        tokio::time::timeout(left, tcp_exchange(server, &out, qend, id))
            .await
            .map_err(|_| UpstreamError::Timeout { server, timeout })??
    } else {
        resp
    };
    resp[..2].copy_from_slice(&query[..2]);
    Ok(resp)
}

/// Idle connected UDP sockets to upstreams, each reused by later queries one at a time: saves
/// socket/bind/connect/epoll/close per forwarded query. Every socket has its own random
/// ephemeral port, every query a fresh random id, and a socket retires after `MAX_USES`.
#[derive(Debug, Default)]
struct SocketPool {
    idle: Mutex<HashMap<SocketAddr, Vec<PooledSocket>>>,
}

#[derive(Debug)]
struct PooledSocket {
    sock: UdpSocket,
    uses: u32,
}

const POOL_PER_SERVER: usize = 64;
const MAX_USES: u32 = 256;

impl SocketPool {
    fn take(&self, server: SocketAddr) -> Option<PooledSocket> {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(&server)
            .and_then(Vec::pop)
    }

    fn put(&self, server: SocketAddr, sock: PooledSocket) {
        if sock.uses >= MAX_USES {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(server).or_default();
        if list.len() < POOL_PER_SERVER {
            list.push(sock);
        }
    }

    fn clear(&self) {
        self.idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

async fn connected_socket(server: SocketAddr) -> Result<UdpSocket, UpstreamError> {
    let io = |op| move |source| UpstreamError::Io { server, op, source };
    let local: SocketAddr = match server {
        SocketAddr::V4(_) => (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0).into(),
        SocketAddr::V6(_) => (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0).into(),
    };
    let sock = UdpSocket::bind(local).await.map_err(io("bind"))?;
    sock.connect(server).await.map_err(io("connect"))?;
    Ok(sock)
}

async fn udp_exchange(
    pool: &SocketPool,
    server: SocketAddr,
    out: &[u8],
    qend: usize,
    id: u16,
) -> Result<Vec<u8>, UpstreamError> {
    let io = |op| move |source| UpstreamError::Io { server, op, source };
    let mut ps = match pool.take(server) {
        Some(ps) => ps,
        None => PooledSocket {
            sock: connected_socket(server).await?,
            uses: 0,
        },
    };
    if let Err(e) = ps.sock.send(out).await {
        if ps.uses == 0 {
            return Err(io("send")(e));
        }
        // A reused socket may carry a stale ICMP error of an earlier exchange: start afresh.
        ps = PooledSocket {
            sock: connected_socket(server).await?,
            uses: 0,
        };
        ps.sock.send(out).await.map_err(io("send"))?;
    }
    // recv_buf fills spare capacity: no 64 KiB memset per forwarded query.
    let mut buf = Vec::with_capacity(65535);
    loop {
        buf.clear();
        let n = ps.sock.recv_buf(&mut buf).await.map_err(io("receive"))?;
        if wire::answers(&buf[..n], out, qend, id) {
            buf.truncate(n);
            ps.uses += 1;
            pool.put(server, ps);
            return Ok(buf);
        }
        tracing::debug!(%server, len = n, "dns upstream: ignoring a datagram that does not answer our query");
    }
}

async fn tcp_exchange(
    server: SocketAddr,
    out: &[u8],
    qend: usize,
    id: u16,
) -> Result<Vec<u8>, UpstreamError> {
    let io = |op| move |source| UpstreamError::Io { server, op, source };
    let mut stream = TcpStream::connect(server)
        .await
        .map_err(io("tcp connect"))?;
    stream.set_nodelay(true).map_err(io("tcp nodelay"))?;
    let len = u16::try_from(out.len()).map_err(|_| UpstreamError::Malformed { server })?;
    let mut frame = Vec::with_capacity(out.len() + 2);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(out);
    stream.write_all(&frame).await.map_err(io("tcp send"))?;
    let mut lenbuf = [0u8; 2];
    stream
        .read_exact(&mut lenbuf)
        .await
        .map_err(io("tcp receive"))?;
    let mut resp = vec![0u8; usize::from(u16::from_be_bytes(lenbuf))];
    stream
        .read_exact(&mut resp)
        .await
        .map_err(io("tcp receive"))?;
    if !wire::answers(&resp, out, qend, id) {
        return Err(UpstreamError::Malformed { server });
    }
    Ok(resp)
}
