//! Published ports: what a container publishes and the checks that keep two publications from
//! claiming the same host port.
//!
//! The kernel path (DNAT in berth's nft table) serves every case: other hosts through the host's
//! addresses, the host itself at 127.0.0.1 (output-chain DNAT + `route_localnet` on the bridge +
//! masquerade of 127.0.0.0/8 towards the bridge), and hairpin from a container (masquerade of
//! DNAT'd traffic that stays inside its subnet). A publication on a loopback address gets the
//! output-chain DNAT only, so it serves the host and nothing else; from other machines only
//! publications on other addresses answer, never a container address directly (the firewall's
//! `raw` guards). No userland proxy is run, so no socket is bound for a publication: a port a
//! host process listens on would be shadowed silently, and netd refuses it instead (see
//! [`crate::listeners`]).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// TCP
    Tcp,
    /// UDP
    Udp,
}

impl Protocol {
    /// The nft keyword.
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// One publication: `host_ip:host_port[-end] -> container_port[-end]/proto`, ranges 1:1.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PortMapping {
    /// tcp or udp.
    pub protocol: Protocol,
    /// Only this host address, or every host address (and 127.0.0.1) when `None`. An IPv6
    /// one publishes on IPv6 only (`::`: every IPv6 address of the host), an IPv4 one on
    /// IPv4 only (`0.0.0.0`: every IPv4 address). `::1` cannot be served by the kernel path
    /// (IPv6 never routes loopback addresses off `lo`), so netd refuses it.
    pub host_ip: Option<IpAddr>,
    /// First host port.
    pub host_port: u16,
    /// First container port.
    pub container_port: u16,
    /// Number of consecutive ports (1 for a single port).
    pub count: u16,
}

/// Why a port publication was refused.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("invalid port mapping {value:?}: {why}")]
    Parse { value: String, why: &'static str },
    #[error("port range {first}-{last} runs past 65535 or is empty")]
    Range { first: u16, last: u32 },
    #[error("host port {proto}/{port} is already published by container {owner}")]
    Conflict {
        proto: &'static str,
        port: u16,
        owner: String,
    },
    /// A host socket holds the port: berth's DNAT would take its traffic away silently.
    #[error(
        "host port {proto}/{port} on {addr} is already in use by {holder} (listening on {listen}); stop it or publish another port"
    )]
    HostListener {
        proto: &'static str,
        port: u16,
        /// The publication's address (`0.0.0.0` when unset).
        addr: String,
        /// Where the host socket is bound.
        listen: std::net::SocketAddr,
        /// "process PID (COMMAND)" or "a process".
        holder: String,
    },
    /// The host's sockets could not be read (netd cannot tell whether the port is free).
    #[error("cannot check the host's listening sockets: {0}")]
    HostCheck(#[source] std::io::Error),
}

impl PortMapping {
    /// A single port with the same number on both sides.
    pub fn tcp(host_port: u16, container_port: u16) -> Self {
        Self {
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port,
            container_port,
            count: 1,
        }
    }

    /// Checks the ranges fit in u16 and are not empty.
    pub fn validate(&self) -> Result<(), PortError> {
        for first in [self.host_port, self.container_port] {
            let last = first as u32 + self.count as u32 - 1;
            if self.count == 0 || first == 0 || last > 65535 {
                return Err(PortError::Range { first, last });
            }
        }
        Ok(())
    }

    /// Every (host port, container port) pair of the mapping.
    pub fn pairs(&self) -> impl Iterator<Item = (u16, u16)> + '_ {
        (0..self.count).map(move |i| (self.host_port + i, self.container_port + i))
    }

    /// Whether two mappings would claim a common host port on a common address (addresses
    /// of different families never meet; an unspecified one covers its whole family).
    pub fn clashes(&self, other: &PortMapping) -> Option<u16> {
        if self.protocol != other.protocol {
            return None;
        }
        if let (Some(a), Some(b)) = (self.host_ip, other.host_ip)
            && (a.is_ipv4() != b.is_ipv4()
                || (a != b && !a.is_unspecified() && !b.is_unspecified()))
        {
            return None;
        }
        let (a0, a1) = (
            self.host_port as u32,
            self.host_port as u32 + self.count as u32,
        );
        let (b0, b1) = (
            other.host_port as u32,
            other.host_port as u32 + other.count as u32,
        );
        let lo = a0.max(b0);
        (lo < a1.min(b1)).then_some(lo as u16)
    }
}

impl fmt::Display for PortMapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(ip) => write!(f, "{ip}:")?,
            None => {}
        }
        write!(f, "{}", self.host_port)?;
        if self.count > 1 {
            write!(f, "-{}", self.host_port as u32 + self.count as u32 - 1)?;
        }
        write!(f, "->{}", self.container_port)?;
        if self.count > 1 {
            write!(f, "-{}", self.container_port as u32 + self.count as u32 - 1)?;
        }
        write!(f, "/{}", self.protocol.as_str())
    }
}

fn parse_range(s: &str, value: &str) -> Result<(u16, u16), PortError> {
    let bad = |why| PortError::Parse {
        value: value.to_string(),
        why,
    };
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a, b),
        None => (s, s),
    };
    let a: u16 = a.parse().map_err(|_| bad("port is not a number 1-65535"))?;
    let b: u16 = b.parse().map_err(|_| bad("port is not a number 1-65535"))?;
    if b < a {
        return Err(bad("range end below its start"));
    }
    Ok((a, b - a + 1))
}

impl FromStr for PortMapping {
    type Err = PortError;
    /// Docker's short syntax: `[HOST_IP:]HOST_PORT[-END]:CONTAINER_PORT[-END][/PROTO]`, an
    /// IPv6 `HOST_IP` in brackets (`[::]:8080:80`).
    fn from_str(value: &str) -> Result<Self, Self::Err> {
        let bad = |why| PortError::Parse {
            value: value.to_string(),
            why,
        };
        let (body, proto) = match value.rsplit_once('/') {
            Some((b, "tcp")) => (b, Protocol::Tcp),
            Some((b, "udp")) => (b, Protocol::Udp),
            Some(_) => return Err(bad("protocol must be tcp or udp")),
            None => (value, Protocol::Tcp),
        };
        let (ip6, body) = match body.strip_prefix('[') {
            Some(rest) => {
                let (a, rest) = rest
                    .split_once("]:")
                    .ok_or_else(|| bad("expected [IPV6]:HOST_PORT:CONTAINER_PORT"))?;
                let a: std::net::Ipv6Addr = a
                    .parse()
                    .map_err(|_| bad("bracketed host address is not IPv6"))?;
                (Some(IpAddr::V6(a)), rest)
            }
            None => (None, body),
        };
        let parts: Vec<&str> = body.split(':').collect();
        let (ip, host, cont) = match (ip6, parts.as_slice()) {
            (Some(ip), [h, c]) => (Some(ip), *h, *c),
            (None, [h, c]) => (None, *h, *c),
            (None, [ip, h, c]) => (
                Some(IpAddr::V4(ip.parse().map_err(|_| {
                    bad("host address is not IPv4 (an IPv6 one goes in brackets)")
                })?)),
                *h,
                *c,
            ),
            _ => return Err(bad("expected [HOST_IP:]HOST_PORT:CONTAINER_PORT")),
        };
        let (h0, hn) = parse_range(host, value)?;
        let (c0, cn) = parse_range(cont, value)?;
        if hn != cn {
            return Err(bad("host and container ranges differ in length"));
        }
        let m = PortMapping {
            protocol: proto,
            host_ip: ip,
            host_port: h0,
            container_port: c0,
            count: hn,
        };
        m.validate()?;
        Ok(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_short_syntax() {
        let m: PortMapping = "127.0.0.1:8080-8081:80-81/udp".parse().unwrap();
        assert_eq!(m.protocol, Protocol::Udp);
        assert_eq!(m.host_ip, Some(IpAddr::from([127, 0, 0, 1])));
        assert_eq!(m.pairs().collect::<Vec<_>>(), vec![(8080, 80), (8081, 81)]);
        assert_eq!(m.to_string(), "127.0.0.1:8080-8081->80-81/udp");
        assert!("80:81:82:83".parse::<PortMapping>().is_err());
        assert!("8080-8081:80".parse::<PortMapping>().is_err());
        assert!("0:80".parse::<PortMapping>().is_err());
        assert!("80:80/sctp".parse::<PortMapping>().is_err());
        let v6: PortMapping = "[::]:8080:80".parse().unwrap();
        assert_eq!(
            v6.host_ip,
            Some(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED))
        );
        assert_eq!(v6.to_string(), "[::]:8080->80/tcp");
        assert!("[::1:8080:80".parse::<PortMapping>().is_err());
        assert!("[10.0.0.1]:8080:80".parse::<PortMapping>().is_err());
        assert!("::1:8080:80".parse::<PortMapping>().is_err());
    }

    #[test]
    fn clash_detection() {
        let a: PortMapping = "8080-8090:80-90".parse().unwrap();
        let b: PortMapping = "8085:80".parse().unwrap();
        let c: PortMapping = "8085:80/udp".parse().unwrap();
        let d: PortMapping = "10.0.0.1:8085:80".parse().unwrap();
        let e: PortMapping = "10.0.0.2:8085:80".parse().unwrap();
        assert_eq!(a.clashes(&b), Some(8085));
        assert_eq!(a.clashes(&c), None);
        assert_eq!(d.clashes(&b), Some(8085));
        assert_eq!(d.clashes(&e), None);
        let any4: PortMapping = "0.0.0.0:8085:80".parse().unwrap();
        let any6: PortMapping = "[::]:8085:80".parse().unwrap();
        let one6: PortMapping = "[fd00::1]:8085:80".parse().unwrap();
        assert_eq!(any4.clashes(&d), Some(8085));
        assert_eq!(any4.clashes(&any6), None);
        assert_eq!(any6.clashes(&one6), Some(8085));
        assert_eq!(any6.clashes(&b), Some(8085));
    }
}
