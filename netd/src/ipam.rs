//! IP address management: subnets cut from a pool, addresses inside a subnet.
//!
//! Pure functions over what is already in use (host routes and addresses, other berth networks,
//! other endpoints), so the rules are unit-tested without root and the caller decides where "in
//! use" comes from.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use serde::{Deserialize, Serialize};

use crate::ipnet::{Address, IpNet};

/// An IPv4 prefix (`10.201.3.0/24`), serialised as a plain string.
pub type Ipv4Net = IpNet<Ipv4Addr>;

/// Why an address, subnet or pool was refused.
#[derive(Debug, thiserror::Error)]
pub enum IpamError {
    #[error("invalid IPv4 prefix {value:?}: expected ADDRESS/LENGTH with LENGTH 0..=32")]
    BadPrefix { value: String },
    #[error("pool {pool} cannot be cut into /{size} subnets")]
    BadPool { pool: Ipv4Net, size: u8 },
    #[error(
        "no free /{size} subnet left in pool {pool}: every candidate overlaps a host route, a host address or another network"
    )]
    PoolExhausted { pool: Ipv4Net, size: u8 },
    #[error("subnet {subnet} overlaps {other}, which is {what}")]
    Overlap {
        subnet: Ipv4Net,
        other: Ipv4Net,
        what: &'static str,
    },
    #[error("address {addr} is not inside {subnet}")]
    OutsideSubnet { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is reserved in {subnet} (network, broadcast or gateway address)")]
    Reserved { addr: Ipv4Addr, subnet: Ipv4Net },
    #[error("address {addr} is already in use on network {network}")]
    InUse { addr: Ipv4Addr, network: String },
    #[error("no free address left in {range} of network {network}")]
    RangeExhausted { range: Ipv4Net, network: String },
    #[error("subnet {subnet} is too small for a gateway and endpoints (needs /30 or larger)")]
    TooSmall { subnet: Ipv4Net },
}

impl Address for Ipv4Addr {
    const BITS: u32 = 32;
    type Error = IpamError;
    fn to_bits(self) -> u128 {
        u128::from(u32::from(self))
    }
    fn from_bits(bits: u128) -> Self {
        Ipv4Addr::from(bits as u32)
    }
    fn bad_prefix(value: String) -> IpamError {
        IpamError::BadPrefix { value }
    }
    fn is_loopback_addr(&self) -> bool {
        self.is_loopback()
    }
    fn is_unspecified_addr(&self) -> bool {
        self.is_unspecified()
    }
    fn from_ip(ip: IpAddr) -> Option<Self> {
        match ip {
            IpAddr::V4(a) => Some(a),
            _ => None,
        }
    }
}

/// Where automatic subnets come from: `base` cut into `/size` pieces (the daemon config's
/// `default-address-pool`, as in Docker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    /// The whole range, e.g. 10.201.0.0/16.
    pub base: Ipv4Net,
    /// Prefix length of each network's subnet, e.g. 24.
    pub size: u8,
}

impl Default for Pool {
    fn default() -> Self {
        Self {
            base: Ipv4Net {
                addr: Ipv4Addr::new(10, 201, 0, 0),
                prefix: 16,
            },
            size: 24,
        }
    }
}

/// What a candidate subnet must not overlap, with a word for each kind in error messages.
#[derive(Debug, Default, Clone)]
pub struct InUse {
    /// Destinations of host routes (the default route excluded) that are not berth's.
    pub host_routes: Vec<Ipv4Net>,
    /// Host interface addresses with their prefix, not berth's bridges.
    pub host_addrs: Vec<Ipv4Net>,
    /// Subnets of berth networks that exist.
    pub networks: Vec<Ipv4Net>,
}

impl InUse {
    fn conflict(&self, subnet: &Ipv4Net) -> Option<(Ipv4Net, &'static str)> {
        let kinds: [(&[Ipv4Net], &'static str); 3] = [
            (&self.networks, "another berth network"),
            (&self.host_routes, "a host route"),
            (&self.host_addrs, "a host address"),
        ];
        for (list, what) in kinds {
            if let Some(o) = list.iter().find(|o| o.prefix > 0 && o.overlaps(subnet)) {
                return Some((*o, what));
            }
        }
        None
    }
}

/// Picks the first `/size` subnet of the pool that overlaps nothing in use.
pub fn allocate_subnet(pool: &Pool, used: &InUse) -> Result<Ipv4Net, IpamError> {
    if pool.size < pool.base.prefix || pool.size > 30 {
        return Err(IpamError::BadPool {
            pool: pool.base,
            size: pool.size,
        });
    }
    let count = 1u64 << (pool.size - pool.base.prefix);
    let step = 1u64 << (32 - pool.size as u32);
    for i in 0..count {
        let start = u32::from(pool.base.addr).wrapping_add((i * step) as u32);
        let cand = Ipv4Net::new(Ipv4Addr::from(start), pool.size)?;
        if used.conflict(&cand).is_none() {
            return Ok(cand);
        }
    }
    Err(IpamError::PoolExhausted {
        pool: pool.base,
        size: pool.size,
    })
}

/// Checks a user-given subnet against what is in use.
pub fn check_subnet(subnet: &Ipv4Net, used: &InUse) -> Result<(), IpamError> {
    if subnet.prefix > 30 {
        return Err(IpamError::TooSmall { subnet: *subnet });
    }
    match used.conflict(subnet) {
        Some((other, what)) => Err(IpamError::Overlap {
            subnet: *subnet,
            other,
            what,
        }),
        None => Ok(()),
    }
}

/// The conventional gateway: the first host address of the subnet.
pub fn default_gateway(subnet: &Ipv4Net) -> Result<Ipv4Addr, IpamError> {
    if subnet.prefix > 30 {
        return Err(IpamError::TooSmall { subnet: *subnet });
    }
    subnet.nth(1).ok_or(IpamError::TooSmall { subnet: *subnet })
}

/// Checks that `addr` can be given to an endpoint of a network.
pub fn check_address(
    addr: Ipv4Addr,
    subnet: &Ipv4Net,
    gateway: Ipv4Addr,
    taken: &BTreeSet<Ipv4Addr>,
    network: &str,
) -> Result<(), IpamError> {
    if !subnet.contains(addr) {
        return Err(IpamError::OutsideSubnet {
            addr,
            subnet: *subnet,
        });
    }
    if addr == subnet.addr || addr == subnet.last() || addr == gateway {
        return Err(IpamError::Reserved {
            addr,
            subnet: *subnet,
        });
    }
    if taken.contains(&addr) {
        return Err(IpamError::InUse {
            addr,
            network: network.to_string(),
        });
    }
    Ok(())
}

/// The first free address of `range` (or the whole subnet), skipping reserved and taken ones.
pub fn allocate_address(
    subnet: &Ipv4Net,
    range: Option<&Ipv4Net>,
    gateway: Ipv4Addr,
    taken: &BTreeSet<Ipv4Addr>,
    network: &str,
) -> Result<Ipv4Addr, IpamError> {
    let r = range.unwrap_or(subnet);
    for n in 0..r.size() {
        let Some(ip) = r.nth(n) else { break };
        if check_address(ip, subnet, gateway, taken, network).is_ok() {
            return Ok(ip);
        }
    }
    Err(IpamError::RangeExhausted {
        range: *r,
        network: network.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Ipv4Net {
        s.parse().unwrap()
    }

    #[test]
    fn parse_masks_host_bits_and_rejects_garbage() {
        assert_eq!(net("10.1.2.3/24").to_string(), "10.1.2.0/24");
        assert!("10.1.2.3".parse::<Ipv4Net>().is_err());
        assert!("10.1.2.3/33".parse::<Ipv4Net>().is_err());
        assert!("x/24".parse::<Ipv4Net>().is_err());
    }

    #[test]
    fn overlap_rules() {
        assert!(net("10.0.0.0/8").overlaps(&net("10.201.3.0/24")));
        assert!(net("10.201.3.0/24").overlaps(&net("10.0.0.0/8")));
        assert!(!net("10.201.3.0/24").overlaps(&net("10.201.4.0/24")));
        assert!(net("10.0.0.0/8").covers(&net("10.1.0.0/16")));
        assert!(!net("10.1.0.0/16").covers(&net("10.0.0.0/8")));
    }

    #[test]
    fn subnet_skips_host_routes_addresses_and_networks() {
        let used = InUse {
            host_routes: vec![net("10.201.0.0/23"), net("0.0.0.0/0")],
            host_addrs: vec![net("10.201.2.7/24")],
            networks: vec![net("10.201.3.0/24")],
        };
        let s = allocate_subnet(&Pool::default(), &used).unwrap();
        assert_eq!(s, net("10.201.4.0/24"));
        let err = check_subnet(&net("10.201.1.0/24"), &used).unwrap_err();
        assert!(err.to_string().contains("host route"), "{err}");
    }

    #[test]
    fn pool_exhaustion_is_an_error() {
        let pool = Pool {
            base: net("10.9.0.0/23"),
            size: 24,
        };
        let used = InUse {
            networks: vec![net("10.9.0.0/24"), net("10.9.1.0/24")],
            ..Default::default()
        };
        assert!(matches!(
            allocate_subnet(&pool, &used),
            Err(IpamError::PoolExhausted { .. })
        ));
    }

    #[test]
    fn addresses_skip_reserved_and_taken_and_honour_range() {
        let s = net("10.201.7.0/24");
        let gw = default_gateway(&s).unwrap();
        assert_eq!(gw, Ipv4Addr::new(10, 201, 7, 1));
        let mut taken = BTreeSet::new();
        let a = allocate_address(&s, None, gw, &taken, "n").unwrap();
        assert_eq!(a, Ipv4Addr::new(10, 201, 7, 2));
        taken.insert(a);
        let r = net("10.201.7.128/25");
        let b = allocate_address(&s, Some(&r), gw, &taken, "n").unwrap();
        assert_eq!(b, Ipv4Addr::new(10, 201, 7, 128));
        assert!(check_address(Ipv4Addr::new(10, 201, 7, 255), &s, gw, &taken, "n").is_err());
        assert!(check_address(a, &s, gw, &taken, "n").is_err());
        assert!(check_address(Ipv4Addr::new(10, 201, 8, 1), &s, gw, &taken, "n").is_err());
        let tiny = net("10.201.9.0/30");
        let gw = default_gateway(&tiny).unwrap();
        let x = allocate_address(&tiny, None, gw, &BTreeSet::new(), "n").unwrap();
        let mut t = BTreeSet::new();
        t.insert(x);
        assert!(allocate_address(&tiny, None, gw, &t, "n").is_err());
    }
}
