//! The host's resolver configuration: where forwarded queries go, and what a container's
//! `/etc/resolv.conf` says.
//!
//! The effective upstreams are the `nameserver` lines of the host's resolv.conf, except when
//! that file only points at systemd-resolved's stub (127.0.0.53 / 127.0.0.54): then they come
//! from systemd-resolved's own upstream file (`/run/systemd/resolve/resolv.conf`). Loopback
//! upstreams are fine because netd forwards from the host's network namespace.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};

/// systemd-resolved's stub listeners: never useful as upstreams inside a container, and they
/// hide the real servers from us when a better file exists.
pub const SYSTEMD_STUBS: [Ipv4Addr; 2] =
    [Ipv4Addr::new(127, 0, 0, 53), Ipv4Addr::new(127, 0, 0, 54)];

/// Errors of reading the host's resolver files.
#[derive(Debug, thiserror::Error)]
pub enum ResolvConfError {
    /// The host's resolv.conf could not be read (missing, permissions).
    #[error("dns: cannot read resolver config {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// A parsed resolv.conf (only what berth uses).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvConf {
    /// `nameserver` lines, port 53, in file order (IPv6 zone ids resolved to scope ids).
    pub nameservers: Vec<SocketAddr>,
    /// The last `search` (or `domain`) line's domains, without trailing dots.
    pub search: Vec<String>,
    /// `options` words in file order (`ndots:2`, `timeout:1`, `edns0` ...).
    pub options: Vec<String>,
}

impl ResolvConf {
    /// Parses resolv.conf text as glibc does: comments with `#` or `;`, last `search`/`domain`
    /// wins, options accumulate, unparseable nameservers are skipped (and logged).
    pub fn parse(text: &str) -> Self {
        let mut conf = ResolvConf::default();
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    if let Some(addr) = words.next() {
                        match parse_nameserver(addr) {
                            Some(sa) => conf.nameservers.push(sa),
                            None => tracing::warn!(
                                value = addr,
                                "resolv.conf: unparseable nameserver skipped"
                            ),
                        }
                    }
                }
                Some("search") | Some("domain") => {
                    conf.search = words
                        .map(|w| w.trim_end_matches('.').to_string())
                        .filter(|w| !w.is_empty())
                        .collect();
                }
                Some("options") => conf.options.extend(words.map(str::to_string)),
                _ => {}
            }
        }
        conf
    }

    /// Whether every nameserver is a systemd-resolved stub (and there is at least one).
    pub fn only_systemd_stub(&self) -> bool {
        !self.nameservers.is_empty()
            && self
                .nameservers
                .iter()
                .all(|s| matches!(s.ip(), IpAddr::V4(v4) if SYSTEMD_STUBS.contains(&v4)))
    }
}

fn parse_nameserver(text: &str) -> Option<SocketAddr> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some(SocketAddr::new(ip, 53));
    }
    // fe80::1%eth0: a link-local server needs its interface as scope id.
    let (ip, zone) = text.split_once('%')?;
    let ip: std::net::Ipv6Addr = ip.parse().ok()?;
    let scope = zone
        .parse::<u32>()
        .ok()
        .or_else(|| nix::net::if_::if_nametoindex(zone).ok())?;
    Some(SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, scope)))
}

/// How to treat a resolv.conf that lists only systemd-resolved's stub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StubPolicy {
    /// Use systemd-resolved's upstream file (as Docker does); fall back to the
    /// stub itself if that file is missing or empty.
    #[default]
    Bypass,
    /// Forward to the stub (works from the host namespace and keeps resolved's split DNS
    /// for VPN domains).
    Keep,
}

/// Where the host's resolver files are: configurable so tests use temp files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostResolvPaths {
    /// Normally `/etc/resolv.conf`.
    pub resolv_conf: PathBuf,
    /// Normally `/run/systemd/resolve/resolv.conf`.
    pub systemd_resolv_conf: PathBuf,
    /// What to do with the stub.
    pub stub_policy: StubPolicy,
    /// The port of the upstream servers: resolv.conf has no port syntax, so it is 53 except
    /// in tests, whose fake upstreams run on a free port.
    pub upstream_port: u16,
}

impl Default for HostResolvPaths {
    fn default() -> Self {
        Self {
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            systemd_resolv_conf: PathBuf::from("/run/systemd/resolve/resolv.conf"),
            stub_policy: StubPolicy::Bypass,
            upstream_port: 53,
        }
    }
}

/// The effective host resolver configuration and the files it came from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostResolv {
    /// Upstreams, search domains and options in effect.
    pub conf: ResolvConf,
    /// The file the nameservers were taken from.
    pub source: PathBuf,
}

fn read(path: &Path) -> Result<String, ResolvConfError> {
    std::fs::read_to_string(path).map_err(|source| ResolvConfError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads the host's effective resolver configuration. A resolv.conf without nameservers means
/// 127.0.0.1, as in glibc.
pub fn load_host(paths: &HostResolvPaths) -> Result<HostResolv, ResolvConfError> {
    let main = ResolvConf::parse(&read(&paths.resolv_conf)?);
    let mut out = HostResolv {
        conf: main,
        source: paths.resolv_conf.clone(),
    };
    if out.conf.only_systemd_stub() && paths.stub_policy == StubPolicy::Bypass {
        match read(&paths.systemd_resolv_conf) {
            Ok(text) => {
                let sd = ResolvConf::parse(&text);
                if !sd.nameservers.is_empty() {
                    out = HostResolv {
                        conf: sd,
                        source: paths.systemd_resolv_conf.clone(),
                    };
                } else {
                    tracing::warn!(path = %paths.systemd_resolv_conf.display(), "systemd-resolved lists no upstream; forwarding to its stub");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "systemd-resolved upstream file unreadable; forwarding to its stub")
            }
        }
    }
    if out.conf.nameservers.is_empty() {
        out.conf
            .nameservers
            .push(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 53));
    }
    for ns in &mut out.conf.nameservers {
        ns.set_port(paths.upstream_port);
    }
    Ok(out)
}

/// What a container may override in its resolv.conf (compose `dns_search`, `dns_opt`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerResolvOverrides {
    /// Replaces the host's search domains when set.
    pub search: Option<Vec<String>>,
    /// Replaces the host's options when set.
    pub options: Option<Vec<String>>,
}

/// The content of a container's `/etc/resolv.conf`: its network's DNS server (the gateway of
/// each network the container is on, first network first) plus the host's search domains and
/// options, so short host names behave as on the host.
pub fn container_resolv_conf(
    gateways: &[IpAddr],
    host: &ResolvConf,
    overrides: &ContainerResolvOverrides,
) -> String {
    let mut out =
        String::from("# Generated by berth: the embedded DNS of the container's network.\n");
    // glibc reads at most three nameserver lines.
    for gw in gateways.iter().take(3) {
        out.push_str(&format!("nameserver {gw}\n"));
    }
    let search = overrides.search.as_ref().unwrap_or(&host.search);
    if !search.is_empty() {
        out.push_str(&format!("search {}\n", search.join(" ")));
    }
    let options = overrides.options.as_ref().unwrap_or(&host.options);
    if !options.is_empty() {
        out.push_str(&format!("options {}\n", options.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_glibc() {
        let c = ResolvConf::parse(
            "# c\nnameserver 192.0.2.1\nnameserver ::1 # comment\nnameserver bogus\ndomain old.example\nsearch a.example b.example.\noptions ndots:2\noptions edns0 ; x\n",
        );
        assert_eq!(
            c.nameservers,
            vec!["192.0.2.1:53".parse().unwrap(), "[::1]:53".parse().unwrap()]
        );
        assert_eq!(c.search, vec!["a.example", "b.example"]);
        assert_eq!(c.options, vec!["ndots:2", "edns0"]);
        assert!(!c.only_systemd_stub());
        assert!(ResolvConf::parse("nameserver 127.0.0.53\n").only_systemd_stub());
        let z = ResolvConf::parse("nameserver fe80::1%1\n");
        assert!(matches!(z.nameservers[0], SocketAddr::V6(v6) if v6.scope_id() == 1));
    }

    #[test]
    fn systemd_stub_is_bypassed() {
        let dir = tempfile::tempdir().unwrap();
        let main = dir.path().join("resolv.conf");
        let sd = dir.path().join("sd.conf");
        std::fs::write(
            &main,
            "nameserver 127.0.0.53\nsearch lan\noptions edns0 trust-ad\n",
        )
        .unwrap();
        std::fs::write(&sd, "nameserver 192.0.2.7\nsearch lan\n").unwrap();
        let mut paths = HostResolvPaths {
            resolv_conf: main.clone(),
            systemd_resolv_conf: sd.clone(),
            stub_policy: StubPolicy::Bypass,
            upstream_port: 53,
        };
        let h = load_host(&paths).unwrap();
        assert_eq!(h.conf.nameservers, vec!["192.0.2.7:53".parse().unwrap()]);
        assert_eq!(h.source, sd);
        paths.stub_policy = StubPolicy::Keep;
        assert_eq!(
            load_host(&paths).unwrap().conf.nameservers,
            vec!["127.0.0.53:53".parse().unwrap()]
        );
        std::fs::remove_file(&sd).unwrap();
        paths.stub_policy = StubPolicy::Bypass;
        assert_eq!(
            load_host(&paths).unwrap().conf.nameservers,
            vec!["127.0.0.53:53".parse().unwrap()]
        );
        std::fs::write(&main, "search x\n").unwrap();
        assert_eq!(
            load_host(&paths).unwrap().conf.nameservers,
            vec!["127.0.0.1:53".parse().unwrap()]
        );
        std::fs::remove_file(&main).unwrap();
        assert!(matches!(
            load_host(&paths),
            Err(ResolvConfError::Read { .. })
        ));
    }

    #[test]
    fn container_file() {
        let host = ResolvConf::parse(
            "nameserver 192.0.2.1\nsearch corp.example\noptions ndots:2 timeout:1\n",
        );
        let text =
            container_resolv_conf(&["10.201.3.1".parse().unwrap()], &host, &Default::default());
        assert!(text.contains("nameserver 10.201.3.1\n"));
        assert!(!text.contains("192.0.2.1"));
        assert!(text.contains("search corp.example\n"));
        assert!(text.contains("options ndots:2 timeout:1\n"));
        let o = ContainerResolvOverrides {
            search: Some(vec![]),
            options: None,
        };
        assert!(
            !container_resolv_conf(&["10.0.0.1".parse().unwrap()], &host, &o).contains("search")
        );
    }
}
