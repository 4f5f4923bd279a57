//! IPv6 address management for `enable_ipv6` networks.
//!
//! A network's IPv6 subnet is given (`ipam.config` / `--subnet`) or the next free /64 of the
//! pool `fd00:b5e7::/48` (a ULA prefix, as Docker's and podman's defaults are). By default an
//! endpoint's IPv6 address is the IPv6 subnet plus the host index of its IPv4 address
//! (10.201.3.5 in 10.201.3.0/24 -> fd00:b5e7:0:3::5 in fd00:b5e7:0:3::/64), and the gateway
//! likewise: the two families line up and the address is stable across restarts. A given
//! `ipv6_address` is taken as it is (if free), and when the counterpart is taken or outside
//! the network's IPv6 `ip_range`, the first free address of the range (or subnet) is used;
//! the endpoints' addresses in the state are the "in use" list.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::ipam::Ipv4Net;
use crate::ipnet::{Address, IpNet};

/// An IPv6 prefix (`fd00:b5e7:0:3::/64`), serialised as a plain string.
pub type Ipv6Net = IpNet<Ipv6Addr>;

/// Why an IPv6 subnet or address was refused.
#[derive(Debug, thiserror::Error)]
pub enum Ipam6Error {
    #[error("invalid IPv6 prefix {value:?}: expected ADDRESS/LENGTH with LENGTH 0..=128")]
    BadPrefix { value: String },
    #[error("IPv6 subnet {subnet} is too small: it needs /120 or larger")]
    TooSmall { subnet: Ipv6Net },
    #[error("IPv6 subnet {subnet} overlaps {other}, which is {what}")]
    Overlap {
        subnet: Ipv6Net,
        other: Ipv6Net,
        what: &'static str,
    },
    #[error("no free /64 left in the IPv6 pool {pool}")]
    PoolExhausted { pool: Ipv6Net },
    #[error("IPv6 address {addr} is outside the network's IPv6 subnet {subnet}")]
    OutOfSubnet { addr: Ipv6Addr, subnet: Ipv6Net },
    #[error("IPv6 address {addr} is {what}")]
    Reserved { addr: Ipv6Addr, what: &'static str },
    #[error("no free IPv6 address left in {range}")]
    Exhausted { range: Ipv6Net },
    #[error(
        "IPv4 address {v4} (host index {index} of {subnet}) has no IPv6 counterpart in {subnet6}: the IPv6 subnet is smaller than the IPv4 one"
    )]
    NoCounterpart {
        v4: Ipv4Addr,
        index: u64,
        subnet: Ipv4Net,
        subnet6: Ipv6Net,
    },
}

impl Address for Ipv6Addr {
    const BITS: u32 = 128;
    type Error = Ipam6Error;
    fn to_bits(self) -> u128 {
        u128::from(self)
    }
    fn from_bits(bits: u128) -> Self {
        Ipv6Addr::from(bits)
    }
    fn bad_prefix(value: String) -> Ipam6Error {
        Ipam6Error::BadPrefix { value }
    }
    fn is_loopback_addr(&self) -> bool {
        self.is_loopback()
    }
    fn is_unspecified_addr(&self) -> bool {
        self.is_unspecified()
    }
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V6(a) => Some(a),
            _ => None,
        }
    }
}

/// The default IPv6 pool, cut in /64s.
pub fn default_pool() -> Ipv6Net {
    Ipv6Net {
        addr: Ipv6Addr::new(0xfd00, 0xb5e7, 0, 0, 0, 0, 0, 0),
        prefix: 48,
    }
}

/// Checks a user-given IPv6 subnet against what is in use (berth networks, host routes and
/// addresses).
pub fn check_subnet(
    subnet: &Ipv6Net,
    networks: &[Ipv6Net],
    host: &[Ipv6Net],
) -> Result<(), Ipam6Error> {
    if subnet.prefix > 120 {
        return Err(Ipam6Error::TooSmall { subnet: *subnet });
    }
    for (list, what) in [
        (networks, "another berth network"),
        (host, "a host route or address"),
    ] {
        if let Some(o) = list.iter().find(|o| o.prefix > 0 && o.overlaps(subnet)) {
            return Err(Ipam6Error::Overlap {
                subnet: *subnet,
                other: *o,
                what,
            });
        }
    }
    Ok(())
}

/// The first /64 of `pool` that overlaps nothing in use.
pub fn allocate_subnet(
    pool: &Ipv6Net,
    networks: &[Ipv6Net],
    host: &[Ipv6Net],
) -> Result<Ipv6Net, Ipam6Error> {
    let count: u128 = if pool.prefix >= 64 {
        1
    } else {
        1u128 << (64 - pool.prefix as u32).min(16)
    };
    (0..count)
        .filter_map(|i| Ipv6Net::new(Ipv6Addr::from(u128::from(pool.addr) | (i << 64)), 64).ok())
        .find(|c| check_subnet(c, networks, host).is_ok())
        .ok_or(Ipam6Error::PoolExhausted { pool: *pool })
}

/// The IPv6 counterpart of an IPv4 address of the network: same host index.
pub fn counterpart(
    v4: Ipv4Addr,
    subnet: &Ipv4Net,
    subnet6: &Ipv6Net,
) -> Result<Ipv6Addr, Ipam6Error> {
    let index = u64::from(u32::from(v4).wrapping_sub(u32::from(subnet.addr())));
    subnet6
        .nth(u128::from(index))
        .ok_or(Ipam6Error::NoCounterpart {
            v4,
            index,
            subnet: *subnet,
            subnet6: *subnet6,
        })
}

/// Checks that `addr` can be an endpoint's address: inside the subnet, neither the subnet's
/// own address nor the gateway.
pub fn check_address(
    addr: Ipv6Addr,
    subnet: &Ipv6Net,
    gateway: Option<Ipv6Addr>,
) -> Result<(), Ipam6Error> {
    if !subnet.contains(addr) {
        return Err(Ipam6Error::OutOfSubnet {
            addr,
            subnet: *subnet,
        });
    }
    if addr == subnet.addr() {
        return Err(Ipam6Error::Reserved {
            addr,
            what: "the IPv6 subnet's own address",
        });
    }
    if Some(addr) == gateway {
        return Err(Ipam6Error::Reserved {
            addr,
            what: "the network's IPv6 gateway",
        });
    }
    Ok(())
}

/// An automatic IPv6 address: `preferred` (the IPv4 address's counterpart) when it is usable,
/// inside `range` (the IPv6 `ip_range`, else the subnet) and not `taken`; otherwise the first
/// such address of the range. The scan stops after 2^20 candidates (a /64 is never full).
pub fn allocate_address(
    preferred: Option<Ipv6Addr>,
    subnet: &Ipv6Net,
    range: Option<&Ipv6Net>,
    gateway: Option<Ipv6Addr>,
    taken: impl Fn(Ipv6Addr) -> bool,
) -> Result<Ipv6Addr, Ipam6Error> {
    let pool = range.unwrap_or(subnet);
    let usable =
        |a: Ipv6Addr| pool.contains(a) && check_address(a, subnet, gateway).is_ok() && !taken(a);
    if let Some(a) = preferred.filter(|a| usable(*a)) {
        return Ok(a);
    }
    (0..1u128 << 20)
        .map_while(|i| pool.nth(i))
        .find(|a| usable(*a))
        .ok_or(Ipam6Error::Exhausted { range: *pool })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_mask_and_display() {
        let n: Ipv6Net = "fd00:b5e7:0:3::9/64".parse().unwrap();
        assert_eq!(n.to_string(), "fd00:b5e7:0:3::/64");
        assert!(n.contains("fd00:b5e7:0:3::5".parse().unwrap()));
        assert!(!n.contains("fd00:b5e7:0:4::5".parse().unwrap()));
        assert!("fd00::/129".parse::<Ipv6Net>().is_err());
        assert!("10.0.0.0/8".parse::<Ipv6Net>().is_err());
    }

    #[test]
    fn pool_skips_used_and_host() {
        let pool = default_pool();
        let first = allocate_subnet(&pool, &[], &[]).unwrap();
        assert_eq!(first.to_string(), "fd00:b5e7::/64");
        let host = ["fd00:b5e7:0:1::/64".parse().unwrap()];
        let next = allocate_subnet(&pool, &[first], &host).unwrap();
        assert_eq!(next.to_string(), "fd00:b5e7:0:2::/64");
        assert!(check_subnet(&"fd00:b5e7::/56".parse().unwrap(), &[first], &[]).is_err());
        assert!(check_subnet(&"fd00:1::/124".parse().unwrap(), &[], &[]).is_err());
    }

    #[test]
    fn counterpart_keeps_the_host_index() {
        let v4: Ipv4Net = "10.201.3.0/24".parse().unwrap();
        let v6: Ipv6Net = "fd00:b5e7:0:3::/64".parse().unwrap();
        assert_eq!(
            counterpart(Ipv4Addr::new(10, 201, 3, 5), &v4, &v6).unwrap(),
            "fd00:b5e7:0:3::5".parse::<Ipv6Addr>().unwrap()
        );
        let small: Ipv6Net = "fd00:1::/120".parse().unwrap();
        let big: Ipv4Net = "10.202.0.0/16".parse().unwrap();
        assert!(counterpart(Ipv4Addr::new(10, 202, 1, 5), &big, &small).is_err());
    }

    #[test]
    fn addresses_prefer_the_counterpart_then_the_range() {
        let s6: Ipv6Net = "fd00:b5e7:0:3::/64".parse().unwrap();
        let gw = Some("fd00:b5e7:0:3::1".parse().unwrap());
        let a = |s: &str| s.parse::<Ipv6Addr>().unwrap();
        let none = |_| false;
        assert_eq!(
            allocate_address(Some(a("fd00:b5e7:0:3::5")), &s6, None, gw, none).unwrap(),
            a("fd00:b5e7:0:3::5")
        );
        // Taken counterpart: the first free address after the gateway.
        let taken = |x: Ipv6Addr| x == a("fd00:b5e7:0:3::5") || x == a("fd00:b5e7:0:3::2");
        assert_eq!(
            allocate_address(Some(a("fd00:b5e7:0:3::5")), &s6, None, gw, taken).unwrap(),
            a("fd00:b5e7:0:3::3")
        );
        // A range: the counterpart outside it is not used.
        let r: Ipv6Net = "fd00:b5e7:0:3::100/120".parse().unwrap();
        assert!(s6.covers(&r) && !r.covers(&s6));
        assert_eq!(
            allocate_address(Some(a("fd00:b5e7:0:3::5")), &s6, Some(&r), gw, none).unwrap(),
            a("fd00:b5e7:0:3::100")
        );
        let full = |x: Ipv6Addr| r.contains(x);
        assert!(matches!(
            allocate_address(None, &s6, Some(&r), gw, full),
            Err(Ipam6Error::Exhausted { .. })
        ));
        assert!(check_address(a("fd00:b5e7:0:4::5"), &s6, gw).is_err());
        assert!(check_address(a("fd00:b5e7:0:3::1"), &s6, gw).is_err());
        assert!(check_address(a("fd00:b5e7:0:3::"), &s6, gw).is_err());
        assert!(check_address(a("fd00:b5e7:0:3::9"), &s6, gw).is_ok());
    }
}
