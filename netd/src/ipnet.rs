//! An IP prefix of either family (`10.201.3.0/24`, `fd00:b5e7:0:3::/64`): one type generic
//! over the address ([`IpNet<Ipv4Addr>`] is [`crate::ipam::Ipv4Net`], [`IpNet<Ipv6Addr>`] is
//! [`crate::ipam6::Ipv6Net`]), with the arithmetic IPAM needs and a plain-string form in the
//! state on disk. Our own small type: the prefix crates bring far more than this needs.

use std::fmt::{self, Debug, Display};
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// An address family's address, as IPAM computes with it.
pub trait Address: Copy + Ord + Hash + Debug + Display + FromStr + Send + Sync + 'static {
    /// Bits in an address.
    const BITS: u32;
    /// What a malformed prefix of this family is refused with.
    type Error: std::error::Error;
    /// The address as a number.
    fn to_bits(self) -> u128;
    /// The address of a number (the low [`Self::BITS`] bits).
    fn from_bits(bits: u128) -> Self;
    /// The error for a malformed prefix `value`.
    fn bad_prefix(value: String) -> Self::Error;
    /// Whether this is a loopback address.
    fn is_loopback_addr(&self) -> bool;
    /// Whether this is the unspecified address (any).
    fn is_unspecified_addr(&self) -> bool;
    /// The address if `ip` is of this family.
    fn from_ip(ip: IpAddr) -> Option<Self>;
}

/// An IP prefix: a network address (host bits zero) and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(
    try_from = "String",
    into = "String",
    bound(serialize = "A: Address", deserialize = "A: Address")
)]
pub struct IpNet<A: Address> {
    pub(crate) addr: A,
    pub(crate) prefix: u8,
}

/// The low `host_bits` bits set.
fn low_bits(host_bits: u32) -> u128 {
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

impl IpNet<Ipv4Addr> {
    /// 127.0.0.0/8.
    pub const LOOPBACK: Self = Self {
        addr: Ipv4Addr::new(127, 0, 0, 0),
        prefix: 8,
    };
}

impl<A: Address> IpNet<A> {
    /// Builds a prefix, masking host bits away so equal networks compare equal.
    pub fn new(addr: A, prefix: u8) -> Result<Self, A::Error> {
        if u32::from(prefix) > A::BITS {
            return Err(A::bad_prefix(format!("{addr}/{prefix}")));
        }
        Ok(Self {
            addr: A::from_bits(addr.to_bits() & Self::mask(prefix)),
            prefix,
        })
    }

    /// The network part's bits of a `prefix`.
    fn mask(prefix: u8) -> u128 {
        low_bits(A::BITS) & !low_bits(A::BITS - u32::from(prefix))
    }

    /// The network address.
    pub fn addr(&self) -> A {
        self.addr
    }

    /// The prefix length.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// Number of addresses covered (saturating for an IPv6 /0).
    pub fn size(&self) -> u128 {
        low_bits(A::BITS - u32::from(self.prefix)).saturating_add(1)
    }

    /// The last address (broadcast for IPv4 subnets with more than two addresses).
    pub fn last(&self) -> A {
        A::from_bits(self.addr.to_bits() | low_bits(A::BITS - u32::from(self.prefix)))
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: A) -> bool {
        ip.to_bits() & Self::mask(self.prefix) == self.addr.to_bits()
    }

    /// Whether the two prefixes share any address.
    pub fn overlaps(&self, other: &Self) -> bool {
        let m = Self::mask(self.prefix.min(other.prefix));
        self.addr.to_bits() & m == other.addr.to_bits() & m
    }

    /// Whether `other` lies wholly inside `self`.
    pub fn covers(&self, other: &Self) -> bool {
        other.prefix >= self.prefix && self.contains(other.addr)
    }

    /// The `n`-th address of the prefix (0 = the network address), if inside.
    pub fn nth(&self, n: u128) -> Option<A> {
        (n <= low_bits(A::BITS - u32::from(self.prefix)))
            .then(|| A::from_bits(self.addr.to_bits() | n))
    }
}

impl<A: Address> Display for IpNet<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

impl<A: Address> FromStr for IpNet<A> {
    type Err = A::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || A::bad_prefix(s.to_string());
        let (a, p) = s.split_once('/').ok_or_else(bad)?;
        let addr: A = a.trim().parse().map_err(|_| bad())?;
        let prefix: u8 = p.trim().parse().map_err(|_| bad())?;
        if u32::from(prefix) > A::BITS {
            return Err(bad());
        }
        Self::new(addr, prefix)
    }
}

impl<A: Address> TryFrom<String> for IpNet<A> {
    type Error = A::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl<A: Address> From<IpNet<A>> for String {
    fn from(n: IpNet<A>) -> String {
        n.to_string()
    }
}
