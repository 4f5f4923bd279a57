//! berth-netd: networks, with no knowledge of stacks or images.
//!
//! Bridges, veth endpoints, IPAM, nftables NAT and ports, the embedded DNS server, and the
//! reconcile loop that follows host NIC changes. See ARCHITECTURE.md.

pub mod conflicts;
pub mod desired;
pub mod docker_user;
pub mod fastpath;
pub mod firewall;
pub mod guards;
pub mod ipam;
pub mod ipam6;
pub mod ipnet;
pub mod kernel;
pub mod link_deleter;
pub mod links;
pub mod listeners;
pub mod names;
pub mod netd;
pub mod netns;
pub mod nft;
pub mod ports;
pub mod reconcile;
pub mod report;
pub mod state;
pub mod state_journal;
pub mod sysctl;
pub mod unmanaged;
pub mod watch;

pub use conflicts::SubnetConflict;
pub use netd::{
    Config, EndpointRequest, HostChange, Ipv6Create, Netd, NetdError, NetworkCreate, ReconcileHook,
    check_sysctl,
};
pub use report::{ReconcileReport, Repair};
pub mod dns;
