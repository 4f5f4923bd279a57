//! berth-netd: networks, with no knowledge of stacks or images.
//!
//! Bridges, veth endpoints, IPAM, nftables NAT and ports, the embedded DNS server, and the
//! reconcile loop that follows host NIC changes. See ARCHITECTURE.md.
pub mod dns;
