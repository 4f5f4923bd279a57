//! Kernel names and identifiers derived from berth ids.
//!
//! Interface names are at most 15 bytes, so they come from short hashes: the same id always
//! gives the same name, which is how a restarted netd finds what it made.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

/// Prefix of every bridge berth makes; firewall rules match `berth-*` so that they never need
/// the list of bridges (and never name a host NIC).
pub const BRIDGE_PREFIX: &str = "berth-";
/// The alias (`ifalias`) netd gives every bridge it makes, so that a bridge named by the user
/// (`com.docker.network.bridge.name`), which lacks [`BRIDGE_PREFIX`], is still known for
/// berth's: not an uplink, and its own link events not a host change.
pub const OWN_BRIDGE_ALIAS: &str = "berth-netd bridge";

/// Whether a link is a bridge berth made: by its name's prefix, or by [`OWN_BRIDGE_ALIAS`].
pub fn is_own_bridge(name: &str, alias: Option<&str>) -> bool {
    name.starts_with(BRIDGE_PREFIX) || alias == Some(OWN_BRIDGE_ALIAS)
}

/// Prefix of the host end of every veth berth makes.
pub const VETH_PREFIX: &str = "vb";

fn short_hash(parts: &[&str], len: usize) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    let mut s = hex::encode(h.finalize());
    s.truncate(len);
    s
}

/// `berth-` + 8 hex digits of the network id (14 bytes).
pub fn bridge_name(network_id: &str) -> String {
    format!("{BRIDGE_PREFIX}{}", short_hash(&[network_id], 8))
}

/// `vb` + 10 hex digits of (container, network) (12 bytes): one veth per endpoint.
pub fn veth_name(container: &str, network_id: &str) -> String {
    format!("{VETH_PREFIX}{}", short_hash(&[container, network_id], 10))
}

/// A locally administered unicast MAC derived from the endpoint address, as Docker does, so an
/// endpoint that gets its address back also gets its MAC back (peers' ARP caches stay right).
pub fn endpoint_mac(ip: Ipv4Addr) -> [u8; 6] {
    let o = ip.octets();
    [0x02, 0xb7, o[0], o[1], o[2], o[3]]
}

/// `aa:bb:..` text for a MAC.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff`; refuses multicast addresses (not usable on an interface).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut out = [0u8; 6];
    let mut parts = s.split(':');
    for b in out.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    (parts.next().is_none() && out[0] & 1 == 0).then_some(out)
}

/// A fresh 64-hex-digit network id (as Docker's), unique per call.
pub fn new_network_id(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    short_hash(
        &[
            name,
            &nanos.to_string(),
            &std::process::id().to_string(),
            &n.to_string(),
        ],
        64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_and_are_stable() {
        let id = new_network_id("x");
        assert_eq!(id.len(), 64);
        assert_ne!(id, new_network_id("x"));
        let b = bridge_name(&id);
        assert!(b.len() <= 15 && b.starts_with(BRIDGE_PREFIX));
        assert_eq!(b, bridge_name(&id));
        let v = veth_name("c1", &id);
        assert!(v.len() <= 15);
        assert_ne!(v, veth_name("c2", &id));
    }

    #[test]
    fn mac_is_local_unicast_and_follows_ip() {
        let m = endpoint_mac(Ipv4Addr::new(10, 201, 0, 2));
        assert_eq!(m[0] & 0x01, 0, "unicast");
        assert_eq!(m[0] & 0x02, 0x02, "locally administered");
        assert_eq!(mac_string(&m), "02:b7:0a:c9:00:02");
        assert_eq!(parse_mac("02:b7:0a:c9:00:02"), Some(m));
        assert_eq!(parse_mac("01:00:5e:00:00:01"), None, "multicast");
        assert_eq!(parse_mac("02:b7:0a:c9:00"), None);
        assert_eq!(parse_mac("02:b7:0a:c9:00:02:03"), None);
    }
}
