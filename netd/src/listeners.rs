//! Host sockets a publication would shadow: berth publishes by DNAT only, so a host process
//! listening on the same port would silently stop receiving (external and 127.0.0.1 traffic
//! would go to the container). Before publishing, netd reads the listening sockets of its host
//! namespace and refuses a port that one of them holds, naming the process.
//!
//! Read on a thread inside the host namespace (netd's worker), once per check whatever the
//! number of ports: TCP listeners over sock_diag (LISTEN only; /proc/thread-self/net/tcp* as
//! the fallback), UDP sockets from /proc/thread-self/net/udp*. TCP sockets count in LISTEN,
//! UDP ones when bound and not connected. berth's own sockets (its DNS servers on the gateways)
//! are registered as [`OwnSocket`] and never count.

use std::collections::BTreeSet;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::sync::{Mutex, PoisonError};

use crate::ports::{PortError, PortMapping, Protocol};

/// Socket inodes berth itself holds; see [`OwnSocket`].
static OWN: Mutex<BTreeSet<u64>> = Mutex::new(BTreeSet::new());

/// A socket of berth's own process (a DNS server's), exempt from the host-listener check
/// while this value lives: publishing a port must not be refused because of berth itself.
#[derive(Debug)]
pub struct OwnSocket(u64);

impl OwnSocket {
    /// Registers the socket `fd` (by its inode, as /proc/net lists it); `None` when it cannot
    /// be stat'ed (the socket then simply is not exempt).
    pub fn register(fd: BorrowedFd<'_>) -> Option<Self> {
        let st = nix::sys::stat::fstat(fd).ok()?;
        let ino = st.st_ino;
        OWN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(ino);
        Some(Self(ino))
    }

    /// Registers any socket-like value ([`OwnSocket::register`] on its descriptor).
    pub fn of(sock: &impl AsFd) -> Option<Self> {
        Self::register(sock.as_fd())
    }

    /// Exempts a socket that another berth process holds (the DNS keeper's), known by the
    /// inode that process reported. Keep one value per inode: dropping it ends the exemption.
    pub fn adopt(inode: u64) -> Self {
        OWN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(inode);
        Self(inode)
    }

    /// The socket's inode (as /proc/net lists it).
    pub fn inode(&self) -> u64 {
        self.0
    }
}

impl Drop for OwnSocket {
    fn drop(&mut self) {
        OWN.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.0);
    }
}

fn is_own(inode: u64) -> bool {
    OWN.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .contains(&inode)
}

/// A socket that takes connections or datagrams on a host port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// TCP (listening) or UDP (bound, not connected).
    pub protocol: Protocol,
    /// Its local address; an IPv4-mapped IPv6 address is reported as the IPv4 one.
    pub addr: SocketAddr,
    /// Socket inode (finds the holder in /proc/*/fd).
    pub inode: u64,
}

/// Who holds a socket: a process, or "a process" when none was found (another PID
/// namespace, or it exited).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id, when found.
    pub pid: Option<u32>,
    /// Its command name (`/proc/PID/comm`).
    pub command: Option<String>,
}

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.pid, &self.command) {
            (Some(pid), Some(cmd)) => write!(f, "process {pid} ({cmd})"),
            (Some(pid), None) => write!(f, "process {pid}"),
            _ => f.write_str("a process"),
        }
    }
}

/// Parses one /proc/net/{tcp,udp}[6] file's text into its listeners. `v6` says which
/// address format the file uses; `udp` selects the UDP rule (bound and unconnected, state
/// 07) instead of TCP's LISTEN (0A).
pub fn parse_proc_net(text: &str, protocol: Protocol, v6: bool) -> Vec<Listener> {
    let wanted = match protocol {
        Protocol::Tcp => "0A",
        Protocol::Udp => "07",
    };
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[3] != wanted {
            continue;
        }
        let Some(addr) = parse_addr(f[1], v6) else {
            continue;
        };
        // An unconnected UDP socket has no remote; a TCP listener never has one either.
        if protocol == Protocol::Udp && parse_addr(f[2], v6).is_some_and(|r| r.port() != 0) {
            continue;
        }
        let Ok(inode) = f[9].parse::<u64>() else {
            continue;
        };
        if addr.port() == 0 {
            continue;
        }
        out.push(Listener {
            protocol,
            addr,
            inode,
        });
    }
    out
}

/// `HEXADDR:HEXPORT` as the kernel prints it: the address as 32-bit words in host byte order.
fn parse_addr(s: &str, v6: bool) -> Option<SocketAddr> {
    let (a, p) = s.split_once(':')?;
    let port = u16::from_str_radix(p, 16).ok()?;
    let ip = if v6 {
        if a.len() != 32 {
            return None;
        }
        let mut bytes = [0u8; 16];
        for (i, chunk) in bytes.chunks_mut(4).enumerate() {
            let w = u32::from_str_radix(a.get(i * 8..i * 8 + 8)?, 16).ok()?;
            chunk.copy_from_slice(&w.to_ne_bytes());
        }
        let ip6 = Ipv6Addr::from(bytes);
        match ip6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(ip6),
        }
    } else {
        let w = u32::from_str_radix(a, 16).ok()?;
        IpAddr::V4(Ipv4Addr::from(w.to_ne_bytes()))
    };
    Some(SocketAddr::new(ip, port))
}

/// The listeners of the calling thread's network namespace (run it on netd's worker), less
/// berth's own sockets. TCP listeners come from sock_diag when the kernel has it (the
/// /proc/net/tcp* files walk the whole established-connection hash, 5-10 ms each even in an
/// empty namespace, while a LISTEN-only dump walks the listening hash only), else from /proc;
/// UDP from /proc (cheap). A missing file (IPv6 disabled) counts as empty.
pub fn read_listeners() -> io::Result<Vec<Listener>> {
    let mut out = Vec::new();
    let mut files = vec![("udp", Protocol::Udp, false), ("udp6", Protocol::Udp, true)];
    match (
        tcp_listeners_diag(libc::AF_INET as u8),
        tcp_listeners_diag(libc::AF_INET6 as u8),
    ) {
        (Ok(v4), Ok(v6)) => {
            out.extend(v4);
            out.extend(v6);
        }
        (v4, v6) => {
            let err = v4.err().or(v6.err());
            tracing::debug!(?err, "sock_diag unavailable; reading /proc/net/tcp*");
            files.extend([("tcp", Protocol::Tcp, false), ("tcp6", Protocol::Tcp, true)]);
        }
    }
    for (file, proto, v6) in files {
        out.extend(read_proc_file(file, proto, v6)?);
    }
    out.retain(|l| !is_own(l.inode));
    Ok(out)
}

/// One /proc/thread-self/net file's listeners (all of them, berth's own included).
pub fn read_proc_file(file: &str, proto: Protocol, v6: bool) -> io::Result<Vec<Listener>> {
    let path = format!("/proc/thread-self/net/{file}");
    match std::fs::read_to_string(&path) {
        Ok(text) => Ok(parse_proc_net(&text, proto, v6)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(io::Error::new(e.kind(), format!("reading {path}: {e}"))),
    }
}

/// TCP sockets in LISTEN of one family, dumped over NETLINK_SOCK_DIAG (what `ss -lt` uses),
/// in the calling thread's namespace.
pub fn tcp_listeners_diag(family: u8) -> io::Result<Vec<Listener>> {
    use std::os::fd::{FromRawFd, OwnedFd};
    const SOCK_DIAG_BY_FAMILY: u16 = 20;
    const TCPF_LISTEN: u32 = 1 << 10;
    // SAFETY: plain socket(2); the descriptor is owned right away.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    // nlmsghdr (16) + inet_diag_req_v2 (56): family, protocol, ext, pad, states, sockid (48).
    let mut req = [0u8; 72];
    req[0..4].copy_from_slice(&72u32.to_ne_bytes());
    req[4..6].copy_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    let flags = (libc::NLM_F_REQUEST | libc::NLM_F_DUMP) as u16;
    req[6..8].copy_from_slice(&flags.to_ne_bytes());
    req[8..12].copy_from_slice(&1u32.to_ne_bytes());
    req[16] = family;
    req[17] = libc::IPPROTO_TCP as u8;
    req[20..24].copy_from_slice(&TCPF_LISTEN.to_ne_bytes());
    // SAFETY: sends `req`'s bytes on our socket (the kernel is the default destination).
    let n = unsafe { libc::send(fd.as_raw_fd(), req.as_ptr().cast(), req.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        // SAFETY: receives into `buf`, at most its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut msgs = &buf[..n as usize];
        if msgs.is_empty() {
            return Ok(out);
        }
        while msgs.len() >= 16 {
            let len = u32::from_ne_bytes([msgs[0], msgs[1], msgs[2], msgs[3]]) as usize;
            let ty = u16::from_ne_bytes([msgs[4], msgs[5]]);
            if len < 16 || len > msgs.len() {
                return Err(io::Error::other("sock_diag: truncated message"));
            }
            match ty as i32 {
                libc::NLMSG_DONE => return Ok(out),
                libc::NLMSG_ERROR => {
                    let code = msgs
                        .get(16..20)
                        .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                        .unwrap_or(-libc::EIO);
                    return Err(io::Error::from_raw_os_error(-code));
                }
                _ if ty == SOCK_DIAG_BY_FAMILY => {
                    if let Some(l) = parse_diag_msg(&msgs[16..len]) {
                        out.push(l);
                    }
                }
                _ => {}
            }
            let step = (len + 3) & !3;
            msgs = msgs.get(step..).unwrap_or(&[]);
        }
    }
}

/// One inet_diag_msg: family, state, timer, retrans, sockid (sport, dport big-endian, src,
/// dst, if, cookie), expires, rqueue, wqueue, uid, inode.
fn parse_diag_msg(m: &[u8]) -> Option<Listener> {
    if m.len() < 72 {
        return None;
    }
    let port = u16::from_be_bytes([m[4], m[5]]);
    let ip = match m[0] as i32 {
        libc::AF_INET => IpAddr::V4(Ipv4Addr::new(m[8], m[9], m[10], m[11])),
        libc::AF_INET6 => {
            let b: [u8; 16] = m[8..24].try_into().ok()?;
            let a = Ipv6Addr::from(b);
            match a.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(a),
            }
        }
        _ => return None,
    };
    let inode = u32::from_ne_bytes(m[68..72].try_into().ok()?) as u64;
    (port != 0).then_some(Listener {
        protocol: Protocol::Tcp,
        addr: SocketAddr::new(ip, port),
        inode,
    })
}

/// Whether a listener on `l` would be shadowed by publication `p` (same protocol, a host
/// port in `p`'s range, an overlapping address). IPv4 publications (`host_ip` unset or IPv4)
/// take every local IPv4 address when unset (DNAT to `fib daddr type local`), so they meet
/// every IPv4 listener; a specific address meets the wildcard and itself. An IPv6 `::`
/// listener meets IPv4 publications only if it is dual-stack, which `dual_stack` decides.
pub fn shadows(
    p: &PortMapping,
    l: &Listener,
    dual_stack: &mut impl FnMut(&Listener) -> bool,
) -> bool {
    if p.protocol != l.protocol {
        return false;
    }
    let port = l.addr.port() as u32;
    if port < p.host_port as u32 || port >= p.host_port as u32 + p.count as u32 {
        return false;
    }
    match (p.host_ip, l.addr.ip()) {
        (None | Some(IpAddr::V4(_)), IpAddr::V6(a)) if a.is_unspecified() => dual_stack(l),
        (None, IpAddr::V4(_)) => true,
        (None, IpAddr::V6(_)) => false,
        (Some(IpAddr::V4(want)), IpAddr::V4(have)) => {
            want.is_unspecified() || have.is_unspecified() || want == have
        }
        (Some(IpAddr::V4(_)), IpAddr::V6(_)) => false,
        (Some(IpAddr::V6(_)), IpAddr::V4(_)) => false,
        (Some(IpAddr::V6(want)), IpAddr::V6(have)) => {
            want.is_unspecified() || have.is_unspecified() || want == have
        }
    }
}

/// Whether the IPv6 wildcard listener `l` also takes IPv4 (IPV6_V6ONLY off): /proc does not
/// say, so try to bind the IPv4 wildcard on its port (never listening, closed at once).
/// `EADDRINUSE` means the IPv4 side is taken.
fn takes_ipv4(l: &Listener) -> bool {
    use nix::sys::socket::{self, AddressFamily, SockFlag, SockType, SockaddrIn, sockopt};
    let ty = match l.protocol {
        Protocol::Tcp => SockType::Stream,
        Protocol::Udp => SockType::Datagram,
    };
    let Ok(fd) = socket::socket(AddressFamily::Inet, ty, SockFlag::SOCK_CLOEXEC, None) else {
        return true;
    };
    // TCP: SO_REUSEADDR so TIME_WAIT leftovers do not count; a listener still does.
    if l.protocol == Protocol::Tcp {
        let _ = socket::setsockopt(&fd, sockopt::ReuseAddr, &true);
    }
    let addr = SockaddrIn::new(0, 0, 0, 0, l.addr.port());
    !matches!(socket::bind(fd.as_raw_fd(), &addr), Ok(()))
}

/// Finds the process holding socket `inode` by its /proc/*/fd links.
pub fn holder_of(inode: u64) -> Holder {
    let want = format!("socket:[{inode}]");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return Holder {
            pid: None,
            command: None,
        };
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|t| t.as_os_str() == want.as_str()) {
                let command = std::fs::read_to_string(p.path().join("comm"))
                    .ok()
                    .map(|c| c.trim_end().to_string());
                return Holder {
                    pid: Some(pid),
                    command,
                };
            }
        }
    }
    Holder {
        pid: None,
        command: None,
    }
}

/// Checks `ports` against the calling thread's namespace's listeners (run it on netd's
/// worker): the index of the first publication a host socket holds, with the error naming
/// port, protocol, address and holder; `Ok(None)` when all are free.
pub fn check(ports: &[PortMapping]) -> io::Result<Option<(usize, PortError)>> {
    if ports.is_empty() {
        return Ok(None);
    }
    let listeners = read_listeners()?;
    let mut probed: std::collections::BTreeMap<(Protocol, u16), bool> = Default::default();
    let mut dual = |l: &Listener| {
        *probed
            .entry((l.protocol, l.addr.port()))
            .or_insert_with(|| takes_ipv4(l))
    };
    let mut by_port: std::collections::HashMap<(Protocol, u16), Vec<&Listener>> =
        Default::default();
    for l in &listeners {
        by_port
            .entry((l.protocol, l.addr.port()))
            .or_default()
            .push(l);
    }
    for (i, p) in ports.iter().enumerate() {
        let hit = p.pairs().find_map(|(host_port, _)| {
            by_port
                .get(&(p.protocol, host_port))?
                .iter()
                .copied()
                .find(|l| shadows(p, l, &mut dual))
        });
        if let Some(l) = hit {
            let addr = match p.host_ip {
                Some(IpAddr::V6(a)) => format!("[{a}]"),
                Some(a) => a.to_string(),
                None => "0.0.0.0".into(),
            };
            return Ok(Some((
                i,
                PortError::HostListener {
                    proto: p.protocol.as_str(),
                    port: l.addr.port(),
                    addr,
                    listen: l.addr,
                    holder: holder_of(l.inode).to_string(),
                },
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1151 1 0 100 0 0 10 0
   1: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1152 1 0 100 0 0 10 0
   2: 0100007F:1F92 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 1153 1 0 100 0 0 10 0
";
    const UDP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  0: 00000000000000000000000000000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2001 2 0 0
  1: 0000000000000000FFFF00000100007F:0036 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 2002 2 0 0
  2: 000080FE00000000FF005452000000FE:0037 000080FE00000000FF005452000000FE:0035 01 00000000:00000000 00:00000000 00000000     0        0 2003 2 0 0
";

    #[test]
    fn parses_listening_and_bound_sockets_only() {
        let t = parse_proc_net(TCP, Protocol::Tcp, false);
        assert_eq!(
            t.iter().map(|l| (l.addr, l.inode)).collect::<Vec<_>>(),
            vec![
                ("0.0.0.0:8080".parse().unwrap(), 1151),
                ("127.0.0.1:8081".parse().unwrap(), 1152)
            ],
            "the established socket does not count"
        );
        let u = parse_proc_net(UDP6, Protocol::Udp, true);
        assert_eq!(
            u.iter().map(|l| l.addr).collect::<Vec<_>>(),
            vec!["[::]:53".parse().unwrap(), "127.0.0.1:54".parse().unwrap()],
            "IPv4-mapped reads as IPv4; a connected socket does not count"
        );
    }

    #[test]
    fn overlap_rules() {
        let l = |a: &str, proto| Listener {
            protocol: proto,
            addr: a.parse().unwrap(),
            inode: 1,
        };
        let p = |s: &str| s.parse::<PortMapping>().unwrap();
        let mut yes = |_: &Listener| true;
        let mut no = |_: &Listener| false;
        let lo = l("127.0.0.1:8080", Protocol::Tcp);
        let any = l("0.0.0.0:8080", Protocol::Tcp);
        assert!(
            shadows(&p("8080:80"), &lo, &mut yes),
            "wildcard meets every address"
        );
        assert!(shadows(&p("8000-9000:8000-9000"), &lo, &mut yes), "ranges");
        assert!(!shadows(&p("8081:80"), &lo, &mut yes));
        assert!(
            !shadows(&p("8080:80/udp"), &lo, &mut yes),
            "protocols apart"
        );
        assert!(shadows(&p("127.0.0.1:8080:80"), &lo, &mut yes));
        assert!(
            shadows(&p("10.1.2.3:8080:80"), &any, &mut yes),
            "specific meets wildcard"
        );
        assert!(
            !shadows(&p("10.1.2.3:8080:80"), &lo, &mut yes),
            "two specific ones apart"
        );
        assert!(
            shadows(&p("0.0.0.0:8080:80"), &lo, &mut yes),
            "0.0.0.0 is the wildcard"
        );
        let any6 = l("[::]:8080", Protocol::Tcp);
        assert!(
            shadows(&p("8080:80"), &any6, &mut yes),
            "dual-stack :: takes IPv4"
        );
        assert!(
            !shadows(&p("8080:80"), &any6, &mut no),
            "v6only :: does not"
        );
        assert!(shadows(&p("[::]:8080:80"), &any6, &mut no));
        assert!(
            !shadows(&p("[::]:8080:80"), &lo, &mut yes),
            "families apart"
        );
        let one6 = l("[fd00::1]:8080", Protocol::Tcp);
        assert!(shadows(&p("[::]:8080:80"), &one6, &mut yes));
        assert!(!shadows(&p("[fd00::2]:8080:80"), &one6, &mut yes));
        assert!(!shadows(&p("8080:80"), &one6, &mut yes));
    }

    #[test]
    fn sock_diag_and_proc_agree() {
        let l4 = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let l6 = std::net::TcpListener::bind("[::1]:0").ok();
        let ino = |fd: &std::net::TcpListener| nix::sys::stat::fstat(fd).expect("fstat").st_ino;
        let diag: Vec<Listener> = [libc::AF_INET as u8, libc::AF_INET6 as u8]
            .into_iter()
            .flat_map(|f| tcp_listeners_diag(f).expect("sock_diag"))
            .collect();
        let proc: Vec<Listener> = [("tcp", false), ("tcp6", true)]
            .into_iter()
            .flat_map(|(f, v6)| read_proc_file(f, Protocol::Tcp, v6).expect("proc"))
            .collect();
        let want = Listener {
            protocol: Protocol::Tcp,
            addr: l4.local_addr().expect("addr"),
            inode: ino(&l4),
        };
        assert!(diag.contains(&want), "{want:?} not in {diag:?}");
        assert!(proc.contains(&want), "{want:?} not in {proc:?}");
        if let Some(l6) = &l6 {
            let want6 = Listener {
                protocol: Protocol::Tcp,
                addr: l6.local_addr().expect("addr"),
                inode: ino(l6),
            };
            assert!(diag.contains(&want6), "{want6:?} not in {diag:?}");
            assert!(proc.contains(&want6), "{want6:?} not in {proc:?}");
        }
    }

    #[test]
    fn holder_is_found_by_inode() {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let ino = nix::sys::stat::fstat(&s).expect("fstat").st_ino;
        let h = holder_of(ino);
        assert_eq!(h.pid, Some(std::process::id()));
        assert!(
            h.to_string()
                .starts_with(&format!("process {} (", std::process::id()))
        );
        assert_eq!(holder_of(u64::MAX).to_string(), "a process");
    }
}
