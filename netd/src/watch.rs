//! Host network change events: rtnetlink link, IPv4 address and IPv4 route notifications,
//! coalesced so that a burst (a Wi-Fi roam changes addresses, routes and links within
//! milliseconds) leads to one reconcile.

use std::time::Duration;

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, MulticastGroup};

use crate::names::{VETH_PREFIX, is_own_bridge};
use crate::netns::{NetnsError, NetnsWorker};

pub use crate::netns::Messages;

/// Groups netd listens to.
pub const GROUPS: &[MulticastGroup] = &[
    MulticastGroup::Link,
    MulticastGroup::Ipv4Ifaddr,
    MulticastGroup::Ipv4Route,
];

/// A subscription in the host namespace.
pub struct Watcher {
    _handle: Handle,
    msgs: Messages,
}

/// What kind of host object changed (for logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// A link appeared, changed or vanished.
    Link,
    /// One of netd's own links (a `vb…` veth host end or a `berth-…` bridge) is in a state
    /// that may need repair: deleted, off its bridge, down. Every attach produces one such
    /// update too (the host end is announced before it joins its bridge), so these are
    /// reconciled at most once per [`OWN_LINK_INTERVAL`] instead of once per burst.
    OwnLink,
    /// An IPv4 address.
    Address,
    /// An IPv4 route.
    Route,
}

/// Whether a link update is one netd's own work produces in a healthy state (a veth host end
/// on its bridge, a bridge up): those would only wake a reconcile with nothing to do, and an
/// attach burst would keep it busy. Anything else (a deletion, a veth without a bridge, a
/// bridge down, any host NIC) counts.
fn own_healthy_link(l: &LinkMessage) -> bool {
    let name = link_name(l);
    let mut controller = false;
    for a in &l.attributes {
        if let LinkAttribute::Controller(c) = a {
            controller = *c != 0;
        }
    }
    let up = l.header.flags.contains(LinkFlags::Up);
    (name.starts_with(VETH_PREFIX) && controller && up) || (own_bridge(l) && up)
}

/// Whether the link is a bridge netd made (by its name, or its alias for a bridge the user
/// named).
fn own_bridge(l: &LinkMessage) -> bool {
    let alias = l.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfAlias(a) => Some(a.as_str()),
        _ => None,
    });
    is_own_bridge(link_name(l), alias)
}

/// How often updates of netd's own links alone may wake a reconcile (host uplink changes
/// always do at once).
pub const OWN_LINK_INTERVAL: Duration = Duration::from_secs(1);

fn link_name(l: &LinkMessage) -> &str {
    l.attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.as_str()),
            _ => None,
        })
        .unwrap_or("")
}

fn own_link(l: &LinkMessage) -> bool {
    link_name(l).starts_with(VETH_PREFIX) || own_bridge(l)
}

fn kind(msg: &NetlinkMessage<RouteNetlinkMessage>) -> Option<ChangeKind> {
    match &msg.payload {
        NetlinkPayload::InnerMessage(m) => match m {
            RouteNetlinkMessage::NewLink(l) if own_healthy_link(l) => None,
            RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) if own_link(l) => {
                Some(ChangeKind::OwnLink)
            }
            RouteNetlinkMessage::NewLink(_) | RouteNetlinkMessage::DelLink(_) => {
                Some(ChangeKind::Link)
            }
            RouteNetlinkMessage::NewAddress(_) | RouteNetlinkMessage::DelAddress(_) => {
                Some(ChangeKind::Address)
            }
            RouteNetlinkMessage::NewRoute(_) | RouteNetlinkMessage::DelRoute(_) => {
                Some(ChangeKind::Route)
            }
            _ => None,
        },
        _ => None,
    }
}

impl Watcher {
    /// Subscribes in the worker's host namespace.
    pub async fn start(worker: &NetnsWorker) -> Result<Self, NetnsError> {
        let (handle, msgs) = worker.subscribe(GROUPS).await?;
        Ok(Self {
            _handle: handle,
            msgs,
        })
    }

    /// Waits for a change, then until `quiet` passes without another one (at most `max`
    /// in total). Returns what was seen, or `None` when the subscription ended.
    pub async fn next_change(&mut self, quiet: Duration, max: Duration) -> Option<Change> {
        let mut seen = Change::default();
        loop {
            let (m, _) = self.msgs.next().await?;
            if seen.add(&m) {
                break;
            }
        }
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let wait = quiet.min(deadline.saturating_duration_since(tokio::time::Instant::now()));
            if wait.is_zero() {
                break;
            }
            match tokio::time::timeout(wait, self.msgs.next()).await {
                Ok(Some((m, _))) => {
                    seen.add(&m);
                }
                Ok(None) => return Some(seen),
                Err(_) => break,
            }
        }
        Some(seen)
    }
}

/// What one burst of events changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Change {
    /// The kinds seen, each once.
    pub kinds: Vec<ChangeKind>,
    /// The names of netd's own links seen in a state that may need repair, each once: when
    /// they are all there is, netd looks at just these links instead of reconciling.
    pub own_links: Vec<String>,
}

impl Change {
    /// Whether netd's own links are all that changed.
    pub fn own_links_only(&self) -> bool {
        self.kinds.iter().all(|k| *k == ChangeKind::OwnLink)
    }

    /// Notes one event; returns whether it was a change at all.
    fn add(&mut self, msg: &NetlinkMessage<RouteNetlinkMessage>) -> bool {
        let Some(k) = kind(msg) else {
            return false;
        };
        if !self.kinds.contains(&k) {
            self.kinds.push(k);
        }
        if k == ChangeKind::OwnLink
            && let NetlinkPayload::InnerMessage(
                RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l),
            ) = &msg.payload
        {
            let name = link_name(l);
            if !self.own_links.iter().any(|n| n == name) {
                self.own_links.push(name.to_string());
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_route::link::LinkMessage;

    fn link(name: &str, up: bool, controller: u32) -> NetlinkMessage<RouteNetlinkMessage> {
        let mut l = LinkMessage::default();
        l.attributes.push(LinkAttribute::IfName(name.into()));
        if controller != 0 {
            l.attributes.push(LinkAttribute::Controller(controller));
        }
        if up {
            l.header.flags |= LinkFlags::Up;
        }
        NetlinkMessage::from(RouteNetlinkMessage::NewLink(l))
    }

    #[test]
    fn own_healthy_updates_are_ignored_the_rest_counts() {
        assert_eq!(kind(&link("vb0123456789", true, 7)), None);
        assert_eq!(kind(&link("berth-1a2b3c4d", true, 0)), None);
        assert_eq!(
            kind(&link("vb0123456789", true, 0)),
            Some(ChangeKind::OwnLink)
        );
        assert_eq!(
            kind(&link("berth-1a2b3c4d", false, 0)),
            Some(ChangeKind::OwnLink)
        );
        assert_eq!(kind(&link("wlan0", true, 0)), Some(ChangeKind::Link));
        let del = NetlinkMessage::from(RouteNetlinkMessage::DelLink(LinkMessage::default()));
        assert_eq!(kind(&del), Some(ChangeKind::Link));
        let mut own = LinkMessage::default();
        own.attributes
            .push(LinkAttribute::IfName("vb0123456789".into()));
        let del = NetlinkMessage::from(RouteNetlinkMessage::DelLink(own));
        assert_eq!(kind(&del), Some(ChangeKind::OwnLink));
        // A bridge the user named is berth's by its alias, not its name.
        let named = |alias: Option<&str>, up: bool| {
            let mut l = LinkMessage::default();
            l.attributes.push(LinkAttribute::IfName("br-app".into()));
            l.attributes
                .extend(alias.map(|a| LinkAttribute::IfAlias(a.into())));
            if up {
                l.header.flags |= LinkFlags::Up;
            }
            NetlinkMessage::from(RouteNetlinkMessage::NewLink(l))
        };
        let own_alias = Some(crate::names::OWN_BRIDGE_ALIAS);
        assert_eq!(kind(&named(own_alias, true)), None);
        assert_eq!(kind(&named(own_alias, false)), Some(ChangeKind::OwnLink));
        assert_eq!(kind(&named(None, true)), Some(ChangeKind::Link));
    }

    #[test]
    fn a_burst_names_each_own_link_once_and_says_when_they_are_all() {
        let mut c = Change::default();
        assert!(!c.add(&link("vb0123456789", true, 7)), "healthy: no change");
        assert!(c.add(&link("vb0123456789", false, 0)));
        assert!(c.add(&link("vb0123456789", true, 0)));
        assert!(c.add(&link("vbabcdefabcd", true, 0)));
        assert_eq!(c.own_links, ["vb0123456789", "vbabcdefabcd"]);
        assert!(c.own_links_only());
        assert!(c.add(&link("wlan0", true, 0)));
        assert!(!c.own_links_only(), "an uplink's change always reconciles");
        assert_eq!(c.kinds, [ChangeKind::OwnLink, ChangeKind::Link]);
    }
}
