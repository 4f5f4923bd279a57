//! Static bridge FDB entries for fast-path endpoints: the bridge no longer sees the unicast
//! frames between containers, so a learned entry for a container's MAC would age out and the
//! bridge would then flood frames for it (from the gateway, say) to every port. A static entry
//! (`bridge fdb replace MAC dev VETH master static`) never ages; it goes with its port.

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{NeighbourAttribute, NeighbourFlags, NeighbourState};
use rtnetlink::Handle;

use crate::links::LinkError;

/// `NUD_NOARP` without `NUD_PERMANENT`: what `bridge fdb` calls a static entry.
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

/// Adds (or turns a learned entry into) a static entry for `mac` on bridge port `port`.
pub async fn add_static(h: &Handle, port: u32, mac: &[u8; 6]) -> Result<(), LinkError> {
    h.neighbours()
        .add_bridge(port, mac)
        .state(NeighbourState::Noarp)
        .flags(NeighbourFlags::Controller)
        .replace()
        .execute()
        .await
        .map_err(|source| LinkError::Netlink {
            op: "add a static FDB entry on port",
            what: port.to_string(),
            source,
        })
}

/// The static FDB entries of the host namespace, as (port index, MAC).
pub async fn list_static(h: &Handle) -> Result<Vec<(u32, [u8; 6])>, LinkError> {
    let msgs: Vec<_> = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(|source| LinkError::Netlink {
            op: "list",
            what: "the bridge FDB".into(),
            source,
        })?;
    Ok(msgs
        .into_iter()
        .filter(|m| {
            let s = u16::from(m.header.state);
            s & NUD_NOARP != 0 && s & NUD_PERMANENT == 0
        })
        .filter_map(|m| {
            m.attributes.iter().find_map(|a| match a {
                NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                    let mut mac = [0u8; 6];
                    mac.copy_from_slice(b);
                    Some((m.header.ifindex, mac))
                }
                _ => None,
            })
        })
        .collect())
}
