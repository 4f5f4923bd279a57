//! Static bridge FDB entries for fast-path endpoints: the bridge no longer sees the unicast
//! frames between containers, so a learned entry for a container's MAC would age out and the
//! bridge would then flood frames for it (from the gateway, say) to every port. A static entry
//! never ages and goes with its port; it is also sticky (`bridge fdb add MAC dev VETH master
//! static sticky`), so a frame another port sends with that source MAC does not move it (the
//! owner's own frames skip the bridge and would never move it back).
//!
//! An entry is only ever added, never made by replacing another: the bridge's own (local,
//! permanent) entries and another endpoint's static entry stay where they are, and the add
//! fails naming the MAC. A learned entry elsewhere (stale, or learned from a spoofed source)
//! is taken over.

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use rtnetlink::Handle;

use crate::links::{self, LinkError};
use crate::names::mac_string;

/// `NUD_NOARP` without `NUD_PERMANENT`: what `bridge fdb` calls a static entry.
const NUD_NOARP: u16 = 0x40;
const NUD_PERMANENT: u16 = 0x80;

/// One bridge FDB entry as the kernel lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The port (or the bridge itself, for its own entries).
    pub port: u32,
    /// The bridge the port belongs to.
    pub bridge: Option<u32>,
    /// The MAC.
    pub mac: [u8; 6],
    /// Added by hand and never aged (`static`).
    pub is_static: bool,
    /// The bridge's own address (`permanent`, local).
    pub permanent: bool,
    /// Does not move when another port sends with this source MAC (`sticky`).
    pub sticky: bool,
}

fn netlink(op: &'static str, what: String) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    move |source| LinkError::Netlink { op, what, source }
}

fn request(h: &Handle, port: u32, mac: &[u8; 6]) -> rtnetlink::NeighbourAddRequest {
    h.neighbours()
        .add_bridge(port, mac)
        .state(NeighbourState::Noarp)
        .flags(NeighbourFlags::Controller | NeighbourFlags::Sticky)
}

/// Adds a static, sticky entry for `mac` on port `port` of bridge `bridge`. An entry already
/// there for the MAC: kept when it is this port's (made sticky if it was not), taken over when
/// it was learned, refused when it is the bridge's own or another port's static entry.
pub async fn add_static(
    h: &Handle,
    bridge: u32,
    port: u32,
    mac: &[u8; 6],
) -> Result<(), LinkError> {
    match request(h, port, mac).execute().await {
        Ok(()) => return Ok(()),
        Err(e) if links::errno(&e) == Some(libc::EEXIST) => {}
        Err(e) => {
            return Err(netlink("add a static FDB entry on port", port.to_string())(
                e,
            ));
        }
    }
    let held: Vec<Entry> = list(h)
        .await?
        .into_iter()
        .filter(|e| e.mac == *mac && (e.bridge == Some(bridge) || e.port == bridge))
        .collect();
    if let Some(e) = held
        .iter()
        .find(|e| e.permanent || (e.is_static && e.port != port))
    {
        let whose = if e.permanent {
            "the bridge's own address (a local entry)".to_string()
        } else {
            format!("a static entry on port {}", e.port)
        };
        return Err(LinkError::Refused {
            what: format!(
                "static FDB entry {} on port {port}: the MAC is already {whose}",
                mac_string(mac)
            ),
        });
    }
    if held
        .iter()
        .any(|e| e.port == port && e.is_static && e.sticky)
    {
        return Ok(());
    }
    // Learned (here or elsewhere), or this port's without the sticky flag.
    request(h, port, mac)
        .replace()
        .execute()
        .await
        .map_err(netlink("make a static FDB entry on port", port.to_string()))
}

/// Removes the static entry for `mac` on `port`; none there is fine.
pub async fn remove_static(h: &Handle, port: u32, mac: &[u8; 6]) -> Result<(), LinkError> {
    let mut m = NeighbourMessage::default();
    m.header.family = AddressFamily::Bridge;
    m.header.ifindex = port;
    m.header.state = NeighbourState::Noarp;
    m.header.flags = NeighbourFlags::Controller;
    m.attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.to_vec()));
    match h.neighbours().del(m).execute().await {
        Ok(()) => Ok(()),
        Err(e) if links::errno(&e) == Some(libc::ENOENT) => Ok(()),
        Err(e) => Err(netlink(
            "remove the static FDB entry on port",
            port.to_string(),
        )(e)),
    }
}

/// Every bridge FDB entry of the host namespace.
pub async fn list(h: &Handle) -> Result<Vec<Entry>, LinkError> {
    let msgs: Vec<_> = h
        .neighbours()
        .get()
        .set_address_family(AddressFamily::Bridge)
        .execute()
        .try_collect()
        .await
        .map_err(netlink("list", "the bridge FDB".into()))?;
    Ok(msgs
        .into_iter()
        .filter_map(|m| {
            let s = u16::from(m.header.state);
            let mut mac = None;
            let mut bridge = None;
            for a in &m.attributes {
                match a {
                    NeighbourAttribute::LinkLayerAddress(b) if b.len() == 6 => {
                        let mut x = [0u8; 6];
                        x.copy_from_slice(b);
                        mac = Some(x);
                    }
                    NeighbourAttribute::Controller(i) => bridge = Some(*i),
                    _ => {}
                }
            }
            Some(Entry {
                port: m.header.ifindex,
                bridge,
                mac: mac?,
                is_static: s & NUD_NOARP != 0 && s & NUD_PERMANENT == 0,
                permanent: s & NUD_PERMANENT != 0,
                sticky: m.header.flags.contains(NeighbourFlags::Sticky),
            })
        })
        .collect())
}

/// The static FDB entries of the host namespace, as (port index, MAC, sticky).
pub async fn list_static(h: &Handle) -> Result<Vec<(u32, [u8; 6], bool)>, LinkError> {
    Ok(list(h)
        .await?
        .into_iter()
        .filter(|e| e.is_static)
        .map(|e| (e.port, e.mac, e.sticky))
        .collect())
}
