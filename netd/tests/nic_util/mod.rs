//! The host NIC change as a laptop sees it, on top of `common::Sim`: "ethernet" (isp-a) and
//! "wifi" (isp-b) each with their own resolver and web server, reachable only through the
//! default route, and the simulated host's resolv.conf naming the current one. Also the DNS
//! wiring the daemon does around netd (service, resolv.conf watch, refresh on host changes).
//! Needs `mod common; mod dns_util;` next to it.
#![allow(dead_code)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_netd::Netd;
use berth_netd::dns::{
    AnswerConfig, DnsRecords, DnsService, ForwardConfig, HostResolvPaths, NetworkScope,
    ResolvWatcher, ServerLimits, StubPolicy, Upstreams,
};
use berth_netd::state::NetworkSpec;

use crate::common::*;
use crate::dns_util::NetnsUpstream;

/// isp-a's resolver (on its loopback: reachable only through a default route via isp-a).
pub const A_DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// isp-b's resolver.
pub const B_DNS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 2);
/// What isp-a's resolver answers for `example.test` (a web server in isp-a).
pub const A_WEB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// What isp-b's resolver answers for `example.test`.
pub const B_WEB: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 20);

/// The resolvers of both ISPs and the simulated host's resolv.conf.
pub struct Uplinks {
    pub resolv_conf: PathBuf,
    pub a: NetnsUpstream,
    pub b: NetnsUpstream,
}

/// Writes `text` to `path` as NetworkManager does: a new file renamed over the old one.
pub fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("new");
    std::fs::write(&tmp, text).expect("write resolv.conf");
    std::fs::rename(&tmp, path).expect("rename resolv.conf");
}

impl Uplinks {
    /// Resolvers and web addresses in both ISPs; the host on "ethernet" (isp-a).
    pub fn new(sim: &Sim) -> Self {
        for (isp, dns, web) in [(&sim.isp_a, A_DNS, A_WEB), (&sim.isp_b, B_DNS, B_WEB)] {
            for a in [dns, web] {
                ip(&isp.name, &["addr", "add", &format!("{a}/32"), "dev", "lo"]);
            }
        }
        let a = NetnsUpstream::spawn(&sim.isp_a.path(), SocketAddr::from((A_DNS, 53)), A_WEB);
        let b = NetnsUpstream::spawn(&sim.isp_b.path(), SocketAddr::from((B_DNS, 53)), B_WEB);
        let resolv_conf = sim.root.path().join("resolv.conf");
        replace_file(
            &resolv_conf,
            &format!("nameserver {A_DNS}\nsearch lan-a.test\n"),
        );
        Self { resolv_conf, a, b }
    }

    /// Ethernet unplugged, Wi-Fi takes over: the default route moves to isp-b, isp-a's link
    /// goes down, and resolv.conf is replaced to name isp-b's resolver, all at once.
    pub fn switch_to_b(&self, sim: &Sim) {
        replace_file(
            &self.resolv_conf,
            &format!("nameserver {B_DNS}\nsearch lan-b.test\n"),
        );
        ip(
            &sim.host.name,
            &["route", "replace", "default", "via", &ISP_B.to_string()],
        );
        ip(&sim.host.name, &["link", "set", "upa", "down"]);
    }

    /// Back to ethernet: isp-a's link up, the default route via isp-a, its resolver named.
    pub fn switch_to_a(&self, sim: &Sim) {
        replace_file(
            &self.resolv_conf,
            &format!("nameserver {A_DNS}\nsearch lan-a.test\n"),
        );
        ip(&sim.host.name, &["link", "set", "upa", "up"]);
        ip(
            &sim.host.name,
            &["route", "replace", "default", "via", &ISP_A.to_string()],
        );
    }
}

/// The daemon's DNS around netd: one embedded server per network, upstreams from the
/// simulated host's resolv.conf, refreshed on every netd reconcile (as the engine wires it).
pub struct StackDns {
    pub dns: DnsService,
    pub watcher: Arc<ResolvWatcher>,
    follow: tokio::task::JoinHandle<()>,
}

impl Drop for StackDns {
    fn drop(&mut self) {
        self.follow.abort();
    }
}

impl StackDns {
    /// Call inside the host namespace's runtime.
    pub fn wire(netd: &Arc<Netd>, resolv_conf: &Path) -> Self {
        let upstreams = Arc::new(Upstreams::new(vec![], vec![], ForwardConfig::default()));
        let paths = HostResolvPaths {
            resolv_conf: resolv_conf.to_path_buf(),
            systemd_resolv_conf: resolv_conf.with_extension("none"),
            stub_policy: StubPolicy::Bypass,
            upstream_port: 53,
        };
        let watcher = Arc::new(
            ResolvWatcher::spawn(paths, upstreams.clone(), Duration::from_millis(50))
                .expect("resolv.conf watch"),
        );
        let dns = DnsService::new(
            Arc::new(DnsRecords::new()),
            upstreams.clone(),
            AnswerConfig::default(),
            ServerLimits::default(),
        );
        let mut rx = netd.host_changes();
        let w = watcher.clone();
        let follow = tokio::spawn(async move {
            while rx.changed().await.is_ok() {
                let _ = w.refresh();
                upstreams.reset_health();
            }
        });
        Self {
            dns,
            watcher,
            follow,
        }
    }

    /// Starts the network's server on its gateway, port 53; returns where it listens.
    pub fn start(&self, n: &NetworkSpec) -> SocketAddr {
        self.dns
            .start_network(
                NetworkScope {
                    id: n.name.clone(),
                    subnets: vec![n.subnet.to_string().parse().expect("subnet")],
                    internal: n.internal,
                },
                SocketAddr::from((n.gateway, 53)),
            )
            .expect("DNS server on the gateway")
    }
}
