//! Simulated hosts for netd's root tests: network namespaces only, never the real host's
//! network. A "host" namespace with two uplinks (veths to "isp-a" and "isp-b" namespaces), each
//! ISP serving TCP and UDP on 203.0.113.1 (the same "internet" address behind both, so a
//! default-route switch changes which ISP answers), and "containers" as plain namespaces.
#![allow(dead_code)]

pub mod sim;

use std::fs::File;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};

/// The address both ISPs serve ("the internet").
pub const INTERNET: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// Host uplink addresses.
pub const HOST_A: Ipv4Addr = Ipv4Addr::new(172, 30, 1, 2);
pub const HOST_B: Ipv4Addr = Ipv4Addr::new(172, 30, 2, 2);
pub const ISP_A: Ipv4Addr = Ipv4Addr::new(172, 30, 1, 1);
pub const ISP_B: Ipv4Addr = Ipv4Addr::new(172, 30, 2, 1);

/// Panics naming the missing tool (`scripts/deps.sh` installs them); root itself is checked by
/// the `#[test_with::root()]` mark on each test, which shows it as ignored without root.
pub fn require_tools() {
    for t in ["ip", "nft", "conntrack"] {
        let found = Command::new(t)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
            || Command::new(t).arg("-V").output().is_ok();
        assert!(found, "missing {t}: run scripts/deps.sh");
    }
}

/// Runs a command, panicking with its output when it fails.
pub fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `ip -n NS ...`
pub fn ip(ns: &str, args: &[&str]) -> String {
    let mut a = vec!["-n", ns];
    a.extend_from_slice(args);
    run("ip", &a)
}

/// A named network namespace deleted on drop.
pub struct NetnsGuard {
    pub name: String,
}

impl NetnsGuard {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "bt{}{}{}",
            tag,
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        run("ip", &["netns", "add", &name]);
        ip(&name, &["link", "set", "lo", "up"]);
        Self { name }
    }

    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }
}

impl Drop for NetnsGuard {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Runs `f` on a fresh thread inside the namespace at `path`.
pub fn in_ns<R: Send>(path: &Path, f: impl FnOnce() -> R + Send) -> R {
    thread::scope(|s| {
        s.spawn(|| {
            let f0 = File::open(path).expect("open netns");
            setns(f0.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
        .join()
        .expect("thread in netns panicked")
    })
}

/// A server thread in a namespace, stopped on drop.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Server {
    /// A server from its stop flag and thread (for tests with a server loop of their own).
    pub fn from_parts(stop: Arc<AtomicBool>, thread: thread::JoinHandle<()>) -> Self {
        Self {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// TCP server answering every connection with an HTTP response whose body is `body`.
pub fn tcp_server(ns: &Path, port: u16, body: &str) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let body = body.to_string();
    let ns = ns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = thread::spawn(move || {
        let f0 = File::open(&ns).expect("open netns");
        setns(f0.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)).expect("bind");
        // accept() honours SO_RCVTIMEO: wake up every 50 ms to check for stop.
        nix::sys::socket::setsockopt(
            &l,
            nix::sys::socket::sockopt::ReceiveTimeout,
            &nix::sys::time::TimeVal::new(0, 50_000),
        )
        .expect("SO_RCVTIMEO");
        tx.send(()).ok();
        while !st.load(Ordering::Relaxed) {
            if let Ok((mut c, _)) = l.accept() {
                let _ = c.set_read_timeout(Some(Duration::from_secs(2)));
                let mut buf = [0u8; 1024];
                let _ = c.read(&mut buf);
                let _ = write!(
                    c,
                    "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{}",
                    body.len(),
                    body
                );
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server up");
    Server {
        stop,
        thread: Some(thread),
    }
}

/// UDP server answering `body` to every datagram (bound to one address so replies come
/// from the address that was asked).
pub fn udp_server(ns: &Path, bind: Ipv4Addr, port: u16, body: &str) -> Server {
    let stop = Arc::new(AtomicBool::new(false));
    let st = stop.clone();
    let body = body.to_string();
    let ns = ns.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = thread::spawn(move || {
        let f0 = File::open(&ns).expect("open netns");
        setns(f0.as_fd(), CloneFlags::CLONE_NEWNET).expect("setns");
        let s = UdpSocket::bind(SocketAddrV4::new(bind, port)).expect("bind");
        s.set_read_timeout(Some(Duration::from_millis(20))).ok();
        tx.send(()).ok();
        let mut buf = [0u8; 512];
        while !st.load(Ordering::Relaxed) {
            if let Ok((_, from)) = s.recv_from(&mut buf) {
                let _ = s.send_to(body.as_bytes(), from);
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(5)).expect("server up");
    Server {
        stop,
        thread: Some(thread),
    }
}

/// One HTTP GET from inside `ns`; the body, or the error.
pub fn http_get(ns: &Path, to: SocketAddrV4, timeout: Duration) -> std::io::Result<String> {
    in_ns(ns, || {
        let mut c = TcpStream::connect_timeout(&SocketAddr::V4(to), timeout)?;
        c.set_read_timeout(Some(timeout))?;
        c.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
        let mut s = String::new();
        c.read_to_string(&mut s)?;
        Ok(s.split("\r\n\r\n").nth(1).unwrap_or("").to_string())
    })
}

/// Retries `http_get` until `deadline`; the first body.
pub fn http_get_retry(ns: &Path, to: SocketAddrV4, within: Duration) -> std::io::Result<String> {
    let end = Instant::now() + within;
    loop {
        match http_get(ns, to, Duration::from_millis(500)) {
            Ok(b) => return Ok(b),
            Err(e) if Instant::now() >= end => return Err(e),
            Err(_) => thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A UDP client socket bound in `ns` to a fixed source port (so conntrack sees one flow).
pub fn udp_ask(
    ns: &Path,
    src_port: u16,
    to: SocketAddrV4,
    timeout: Duration,
) -> std::io::Result<String> {
    in_ns(ns, || {
        let s = UdpSocket::bind(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, src_port))?;
        s.set_read_timeout(Some(timeout))?;
        s.send_to(b"q", to)?;
        let mut buf = [0u8; 512];
        let (n, _) = s.recv_from(&mut buf)?;
        Ok(String::from_utf8_lossy(&buf[..n]).into_owned())
    })
}

/// The simulated host: host + two ISPs, each ISP serving TCP 80 and UDP 5300 on INTERNET.
pub struct Sim {
    pub host: NetnsGuard,
    pub isp_a: NetnsGuard,
    pub isp_b: NetnsGuard,
    pub root: tempfile::TempDir,
    _servers: Vec<Server>,
}

impl Sim {
    pub fn new() -> Self {
        let host = NetnsGuard::new("h");
        let isp_a = NetnsGuard::new("a");
        let isp_b = NetnsGuard::new("b");
        for (isp, up, hip, iip) in [
            (&isp_a, "upa", HOST_A, ISP_A),
            (&isp_b, "upb", HOST_B, ISP_B),
        ] {
            run(
                "ip",
                &[
                    "link", "add", up, "netns", &host.name, "type", "veth", "peer", "name", "eth0",
                    "netns", &isp.name,
                ],
            );
            ip(
                &host.name,
                &["addr", "add", &format!("{hip}/24"), "dev", up],
            );
            ip(&host.name, &["link", "set", up, "up"]);
            ip(
                &isp.name,
                &["addr", "add", &format!("{iip}/24"), "dev", "eth0"],
            );
            ip(&isp.name, &["link", "set", "eth0", "up"]);
            ip(
                &isp.name,
                &["addr", "add", &format!("{INTERNET}/32"), "dev", "lo"],
            );
        }
        ip(
            &host.name,
            &["route", "add", "default", "via", &ISP_A.to_string()],
        );
        // isp-b's uplink has a smaller MTU (as a VPN or a tethered phone might).
        ip(&host.name, &["link", "set", "upb", "mtu", "1400"]);
        let servers = vec![
            tcp_server(&isp_a.path(), 80, "isp-a"),
            tcp_server(&isp_b.path(), 80, "isp-b"),
            udp_server(&isp_a.path(), INTERNET, 5300, "isp-a"),
            udp_server(&isp_b.path(), INTERNET, 5300, "isp-b"),
        ];
        Self {
            host,
            isp_a,
            isp_b,
            root: tempfile::tempdir().expect("tempdir"),
            _servers: servers,
        }
    }

    /// Runs `f` with a current-thread tokio runtime on a thread inside the host namespace
    /// (where netd runs).
    pub fn on_host<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        in_ns(&self.host.path(), f)
    }

    /// Links and nft tables of berth left in the host namespace.
    pub fn leftovers(&self) -> Vec<String> {
        let mut left: Vec<String> = ip(&self.host.name, &["-o", "link", "show"])
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n).to_string())
            .filter(|n| n.starts_with("berth-") || n.starts_with("vb"))
            .collect();
        let tables = run(
            "ip",
            &["netns", "exec", &self.host.name, "nft", "list", "tables"],
        );
        left.extend(
            tables
                .lines()
                .filter(|l| l.contains("berth"))
                .map(String::from),
        );
        left
    }
}

/// A multi-thread runtime (as the daemon uses); its workers are spawned from the calling
/// thread and so start in its network namespace.
pub fn rt_multi() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// A current-thread runtime for the host thread.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

/// The IPv4 GSO limit of `ifname` in the namespace at `ns`, read over rtnetlink (iproute2
/// before 6.3 does not show it).
pub fn gso_ipv4_max_size(ns: &Path, ifname: &str) -> Option<u32> {
    use futures::TryStreamExt;
    use netlink_packet_route::link::LinkAttribute;
    in_ns(ns, || {
        rt().block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().ok()?;
            tokio::spawn(conn);
            let mut s = h.link().get().match_name(ifname).execute();
            let m = s.try_next().await.ok()??;
            m.attributes.iter().find_map(|a| match a {
                LinkAttribute::GsoIpv4MaxSize(v) => Some(*v),
                _ => None,
            })
        })
    })
}

/// Sets the IPv4 GSO limit of `ifname` in the namespace at `ns` over rtnetlink (iproute2
/// before 6.3 cannot), as an admin does on a NIC that supports BIG TCP.
pub fn set_gso_ipv4_max_size(ns: &Path, ifname: &str, size: u32) {
    in_ns(ns, || {
        rt().block_on(async {
            let (conn, h, _) = rtnetlink::new_connection().expect("netlink");
            tokio::spawn(conn);
            berth_netd::links::set_gso_ipv4_max_size(&h, ifname, size)
                .await
                .unwrap_or_else(|e| panic!("set gso_ipv4_max_size of {ifname}: {e}"));
        })
    })
}

/// What netd's root tests start from: the tools checked, a simulated host and `N` container
/// namespaces (`c`), and [`Fx::with_netd`] to run a test body against a netd on that host.
pub struct Fx<const N: usize> {
    pub sim: Sim,
    pub c: [NetnsGuard; N],
}

impl<const N: usize> Fx<N> {
    pub fn new() -> Self {
        require_tools();
        Self {
            sim: Sim::new(),
            c: std::array::from_fn(|_| NetnsGuard::new("c")),
        }
    }

    /// The netd state root of the simulated host.
    pub fn root(&self) -> std::path::PathBuf {
        self.sim.root.path().to_path_buf()
    }

    /// Runs `body` on the simulated host (single-threaded runtime) with a netd opened on the
    /// fixture's root, then checks that nothing of berth is left there.
    pub fn with_netd(&self, body: impl AsyncFnOnce(Arc<berth_netd::Netd>) + Send) {
        self.on_host_with_netd(rt, body)
    }

    /// [`Fx::with_netd`] on a multi-threaded runtime.
    pub fn with_netd_multi(&self, body: impl AsyncFnOnce(Arc<berth_netd::Netd>) + Send) {
        self.on_host_with_netd(rt_multi, body)
    }

    fn on_host_with_netd(
        &self,
        runtime: fn() -> tokio::runtime::Runtime,
        body: impl AsyncFnOnce(Arc<berth_netd::Netd>) + Send,
    ) {
        let root = self.root();
        self.sim.on_host(|| {
            runtime().block_on(async {
                let n = berth_netd::Netd::open(berth_netd::Config::new(&root))
                    .await
                    .expect("open");
                body(n).await
            })
        });
        assert!(
            self.sim.leftovers().is_empty(),
            "{:?}",
            self.sim.leftovers()
        );
    }
}
