//! Bridges, veth pairs, addresses and routes over rtnetlink (the product never runs `ip`).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoVeth, LinkAttribute, LinkFlags, LinkInfo,
    LinkMessage,
};
use netlink_packet_route::route::{RouteAddress, RouteAttribute, RouteMessage, RouteType};
use rtnetlink::{
    Handle, LinkBridge, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder,
};

use crate::ipam::Ipv4Net;

/// A netlink operation that failed, with the object it was about.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("netlink: cannot {op} {what}")]
    Netlink {
        op: &'static str,
        what: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("interface {name} does not exist")]
    Missing { name: String },
    /// A delete run on the deleting thread failed (its error, as text).
    #[error("netlink: cannot delete {name}: {why}")]
    Delete { name: String, why: String },
    /// A change netd will not make (it would take over what another owner holds).
    #[error("refused: {what}")]
    Refused { what: String },
}

fn nl(op: &'static str, what: impl Into<String>) -> impl FnOnce(rtnetlink::Error) -> LinkError {
    let what = what.into();
    move |source| LinkError::Netlink { op, what, source }
}

/// The errno of a netlink error reply, if it is one.
pub fn errno(e: &rtnetlink::Error) -> Option<i32> {
    match e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    }
}

/// What netd needs to know of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// ifindex.
    pub index: u32,
    /// Name.
    pub name: String,
    /// Administratively up.
    pub up: bool,
    /// Bridge (or other controller) index, if enslaved.
    pub controller: Option<u32>,
    /// MTU.
    pub mtu: u32,
    /// `bridge`, `veth`, ... when the kernel says.
    pub kind: Option<String>,
    /// IPv4 GSO size limit (kernel 6.3+; `None` where the kernel does not report it): the
    /// largest IPv4 GSO packet the device takes without segmenting it in software.
    pub gso_ipv4_max: Option<u32>,
    /// Its alias (`ifalias`), where one is set: [`crate::names::OWN_BRIDGE_ALIAS`] on berth's
    /// bridges.
    pub alias: Option<String>,
    /// As a bridge port: whether it is isolated (it exchanges frames with the bridge itself
    /// and non-isolated ports only); `None` when it is no bridge port or the kernel does not say.
    pub isolated: Option<bool>,
}

fn to_link(m: &LinkMessage) -> Link {
    let mut l = Link {
        index: m.header.index,
        name: String::new(),
        up: m.header.flags.contains(LinkFlags::Up),
        controller: None,
        mtu: 0,
        kind: None,
        gso_ipv4_max: None,
        alias: None,
        isolated: None,
    };
    for a in &m.attributes {
        match a {
            LinkAttribute::IfName(n) => l.name = n.clone(),
            LinkAttribute::IfAlias(a) => l.alias = Some(a.clone()),
            LinkAttribute::Controller(c) if *c != 0 => l.controller = Some(*c),
            LinkAttribute::Mtu(m) => l.mtu = *m,
            LinkAttribute::GsoIpv4MaxSize(g) => l.gso_ipv4_max = Some(*g),
            LinkAttribute::LinkInfo(infos) => {
                for i in infos {
                    match i {
                        LinkInfo::Kind(k) => l.kind = Some(k.to_string()),
                        LinkInfo::PortData(InfoPortData::BridgePort(port)) => {
                            for p in port {
                                if let InfoBridgePort::Isolated(v) = p {
                                    l.isolated = Some(*v);
                                }
                            }
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    l
}

/// Every interface of the namespace.
pub async fn list_links(h: &Handle) -> Result<Vec<Link>, LinkError> {
    let mut s = h.link().get().execute();
    let mut out = Vec::new();
    while let Some(m) = s.try_next().await.map_err(nl("list", "links"))? {
        out.push(to_link(&m));
    }
    Ok(out)
}

/// The interfaces with these indexes, those gone left out: one request each, so that a host
/// with hundreds of veths is not dumped whole to read a few uplinks.
pub async fn links_by_index(h: &Handle, indexes: &BTreeSet<u32>) -> Result<Vec<Link>, LinkError> {
    let mut out = Vec::new();
    for &i in indexes {
        let mut s = h.link().get().match_index(i).execute();
        match s.try_next().await {
            Ok(Some(m)) => out.push(to_link(&m)),
            Ok(None) => {}
            Err(e) if errno(&e) == Some(libc::ENODEV) => {}
            Err(e) => return Err(nl("look up", format!("interface index {i}"))(e)),
        }
    }
    Ok(out)
}

/// One interface by name, `None` when absent.
pub async fn link_by_name(h: &Handle, name: &str) -> Result<Option<Link>, LinkError> {
    let mut s = h.link().get().match_name(name).execute();
    match s.try_next().await {
        Ok(m) => Ok(m.map(|m| to_link(&m))),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(None),
        Err(e) => Err(nl("look up", name)(e)),
    }
}

/// Creates a bridge, up, with `mtu` and a fixed `mac`; returns it. An existing bridge of that
/// name is reused (idempotent create). The fixed MAC matters: a bridge left to itself takes
/// the lowest MAC of its ports and changes it as ports come and go, which leaves containers'
/// ARP entries for the gateway pointing nowhere for up to half a minute.
pub async fn ensure_bridge(
    h: &Handle,
    name: &str,
    mtu: u32,
    mac: [u8; 6],
) -> Result<Link, LinkError> {
    if let Some(l) = link_by_name(h, name).await? {
        if !l.up {
            set_up(h, l.index, name).await?;
        }
        if l.alias.as_deref() != Some(crate::names::OWN_BRIDGE_ALIAS) {
            set_own_alias(h, l.index, name).await?;
        }
        return Ok(l);
    }
    let msg = LinkBridge::new(name)
        .mtu(mtu)
        .address(mac.to_vec())
        .up()
        .build();
    match h.link().add(msg).execute().await {
        Ok(()) => {}
        Err(e) if errno(&e) == Some(libc::EEXIST) => {}
        Err(e) => return Err(nl("create bridge", name)(e)),
    }
    let l = link_by_name(h, name).await?.ok_or(LinkError::Missing {
        name: name.to_string(),
    })?;
    // The kernel takes no alias in the create message: set apart.
    set_own_alias(h, l.index, name).await?;
    Ok(l)
}

/// Marks a bridge as berth's (see [`crate::names::OWN_BRIDGE_ALIAS`]).
async fn set_own_alias(h: &Handle, index: u32, name: &str) -> Result<(), LinkError> {
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .alias(crate::names::OWN_BRIDGE_ALIAS)
                .build(),
        )
        .execute()
        .await
        .map_err(nl("set the alias of", name))
}

/// Sets a link up.
pub async fn set_up(h: &Handle, index: u32, name: &str) -> Result<(), LinkError> {
    h.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(nl("set up", name))
}

/// Enslaves `index` to bridge `controller` and sets it up.
pub async fn set_controller(
    h: &Handle,
    index: u32,
    controller: u32,
    name: &str,
) -> Result<(), LinkError> {
    h.link()
        .set(
            LinkUnspec::new_with_index(index)
                .controller(controller)
                .up()
                .build(),
        )
        .execute()
        .await
        .map_err(nl("attach to bridge", name))
}

/// Deletes a link; absent is fine.
pub async fn delete_link(h: &Handle, name: &str) -> Result<bool, LinkError> {
    let Some(l) = link_by_name(h, name).await? else {
        return Ok(false);
    };
    match h.link().del(l.index).execute().await {
        Ok(()) => Ok(true),
        Err(e) if errno(&e) == Some(libc::ENODEV) => Ok(false),
        Err(e) => Err(nl("delete", name)(e)),
    }
}

/// Adds `ip/prefix` to `index`; already present is fine.
pub async fn ensure_address(
    h: &Handle,
    index: u32,
    ip: Ipv4Addr,
    prefix: u8,
    name: &str,
) -> Result<(), LinkError> {
    match h
        .address()
        .add(index, IpAddr::V4(ip), prefix)
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl("add address", format!("{ip}/{prefix} on {name}"))(e)),
    }
}

/// An IPv4 address on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr {
    /// ifindex.
    pub index: u32,
    /// Address.
    pub ip: Ipv4Addr,
    /// Prefix length.
    pub prefix: u8,
}

fn to_addr(m: &AddressMessage) -> Option<Addr> {
    let ip = m.attributes.iter().find_map(|a| match a {
        AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
        _ => None,
    });
    let ip = ip.or_else(|| {
        m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        })
    })?;
    Some(Addr {
        index: m.header.index,
        ip,
        prefix: m.header.prefix_len,
    })
}

/// Every IPv4 address of the namespace.
pub async fn list_addrs(h: &Handle) -> Result<Vec<Addr>, LinkError> {
    let mut req = h.address().get();
    req.message_mut().header.family = AddressFamily::Inet;
    let mut s = req.execute();
    let mut out = Vec::new();
    while let Some(m) = s.try_next().await.map_err(nl("list", "addresses"))? {
        out.extend(to_addr(&m));
    }
    Ok(out)
}

/// An IPv4 route of the main table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix (0.0.0.0/0 for a default route).
    pub dst: Ipv4Net,
    /// Next hop.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface.
    pub oif: Option<u32>,
    /// Preferred source.
    pub prefsrc: Option<Ipv4Addr>,
    /// Metric.
    pub priority: u32,
}

fn v4(a: &RouteAddress) -> Option<Ipv4Addr> {
    match a {
        RouteAddress::Inet(ip) => Some(*ip),
        _ => None,
    }
}

fn to_route(m: &RouteMessage) -> Option<Route> {
    if m.header.kind != RouteType::Unicast {
        return None;
    }
    let mut table = m.header.table as u32;
    let mut r = Route {
        dst: Ipv4Net::new(Ipv4Addr::UNSPECIFIED, 0).ok()?,
        gateway: None,
        oif: None,
        prefsrc: None,
        priority: 0,
    };
    let mut dst = Ipv4Addr::UNSPECIFIED;
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(d) => dst = v4(d)?,
            RouteAttribute::Gateway(g) => r.gateway = v4(g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            RouteAttribute::PrefSource(s) => r.prefsrc = v4(s),
            RouteAttribute::Priority(p) => r.priority = *p,
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != 254 {
        return None;
    }
    r.dst = Ipv4Net::new(dst, m.header.destination_prefix_length).ok()?;
    Some(r)
}

/// Unicast IPv4 routes of the main table.
pub async fn list_routes(h: &Handle) -> Result<Vec<Route>, LinkError> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut s = h.route().get(msg).execute();
    let mut out = Vec::new();
    while let Some(m) = s.try_next().await.map_err(nl("list", "routes"))? {
        out.extend(to_route(&m));
    }
    Ok(out)
}

/// Adds a default route via `gw` (replacing one that exists).
pub async fn set_default_route(h: &Handle, gw: Ipv4Addr) -> Result<(), LinkError> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new().gateway(gw).build();
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl("add default route via", gw.to_string()))
}

/// The host end and the container end of a new endpoint.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    /// Host end name.
    pub host: &'a str,
    /// Container end name (`eth0` ...), given directly in the container namespace.
    pub peer: &'a str,
    /// The container namespace fd the peer is created in.
    pub peer_ns_fd: i32,
    /// MAC of the container end.
    pub peer_mac: [u8; 6],
    /// MTU of both ends.
    pub mtu: u32,
    /// Bridge index of the host end.
    pub bridge: u32,
    /// IPv4 GSO size limit of both ends, when larger than the kernel's 64 KiB default (IPv4
    /// "BIG TCP", kernel 6.3+): fewer, larger packets cross the bridge. Only for networks
    /// whose traffic never leaves through a device with a smaller limit, because such a device
    /// would segment every oversized packet in software (see [`BIG_TCP_GSO_SIZE`] and
    /// [`egress_gso_size`]).
    pub gso_max_size: Option<u32>,
}

/// The IPv4 GSO size berth gives both ends of an internal network's veths (192 KiB, the
/// size Cilium also uses for pods). A TCP sender behind a veth builds packets up to its
/// device's limit; through the bridge a container-to-container stream then costs each hop
/// one packet per 192 KiB instead of per 64 KiB, which is what keeps the
/// two-veths-plus-bridge path above bare-veth-pair speed (`bench/net-iperf.sh`). Networks with
/// egress get it only while every uplink takes it too ([`egress_gso_size`]; reconcile follows
/// the uplinks): a packet larger than the uplink's limit is segmented to MTU size in software
/// on the way out (container to an ISP namespace through a 64 KiB veth uplink: 5.2 instead of
/// 12.9 Gbit/s, 2.9x the CPU per GB; `EGRESS_GSO=196608 bench/net-iperf.sh`).
/// IPv6 keeps 64 KiB (IPv6 BIG TCP exists since 5.19 with a hop-by-hop jumbo header whose
/// handling by netfilter and bridges differs between kernels); the IPv4 attribute is
/// unknown, hence ignored, before 6.3, so only kernels that support it get it.
pub const BIG_TCP_GSO_SIZE: u32 = 196_608;

/// The kernel's default IPv4 GSO size limit (64 KiB), what a network with egress goes back to
/// when an uplink cannot take BIG TCP packets.
pub const DEFAULT_GSO_SIZE: u32 = 65_536;

/// The IPv4 GSO size for the veths of a network with egress, given the devices its forwarded
/// traffic can leave through (`uplinks`, berth's own bridges left out): [`BIG_TCP_GSO_SIZE`]
/// when every one of them takes packets that large unsegmented, `None` (the kernel default)
/// otherwise. A forwarded GSO packet larger than the output device's limit is segmented to
/// MTU-sized packets in software, so one 64 KiB uplink makes BIG TCP a loss for egress
/// (`EGRESS_GSO` in bench/net-iperf.sh); container-to-container traffic and egress through
/// uplinks that take it are what gain from it.
/// A kernel that does not report the limit (before 6.3) gets `None`; a host with no uplink
/// at all gets BIG TCP (nothing leaves; reconcile lowers it when an uplink appears).
pub fn egress_gso_size(uplinks: &[&Link]) -> Option<u32> {
    uplinks
        .iter()
        .all(|l| l.gso_ipv4_max.is_some_and(|g| g >= BIG_TCP_GSO_SIZE))
        .then_some(BIG_TCP_GSO_SIZE)
}

/// [`egress_gso_size`] of the interfaces among `links` that routes leave through (`devs`, from
/// [`route_devices`]), berth's bridges aside.
pub fn uplinks_gso_size(devs: &BTreeSet<u32>, links: &[Link]) -> Option<u32> {
    let uplinks: Vec<&Link> = links
        .iter()
        .filter(|l| {
            devs.contains(&l.index) && !crate::names::is_own_bridge(&l.name, l.alias.as_deref())
        })
        .collect();
    egress_gso_size(&uplinks)
}

/// The interfaces IPv4 unicast routes of every routing table leave through (each next hop of
/// a multipath route included): where forwarded container traffic can go. `None` when some
/// route's device cannot be told (a route through a nexthop object), so that callers stay on
/// the safe side.
pub async fn route_devices(h: &Handle) -> Result<Option<BTreeSet<u32>>, LinkError> {
    let msg = RouteMessageBuilder::<Ipv4Addr>::new().build();
    let mut s = h.route().get(msg).execute();
    let mut out = BTreeSet::new();
    let mut unknown = false;
    while let Some(m) = s.try_next().await.map_err(nl("list", "routes"))? {
        if m.header.kind != RouteType::Unicast {
            continue;
        }
        let mut dev = false;
        for a in &m.attributes {
            match a {
                RouteAttribute::Oif(i) => {
                    out.insert(*i);
                    dev = true;
                }
                RouteAttribute::MultiPath(hops) => {
                    out.extend(hops.iter().map(|n| n.interface_index));
                    dev = true;
                }
                _ => {}
            }
        }
        unknown |= !dev;
    }
    Ok((!unknown).then_some(out))
}

/// Sets the IPv4 GSO size limit of an interface by name; returns whether it changed (absent,
/// or a kernel that does not report the limit, is left alone: false).
pub async fn set_gso_ipv4_max_size(h: &Handle, name: &str, size: u32) -> Result<bool, LinkError> {
    let Some(l) = link_by_name(h, name).await? else {
        return Ok(false);
    };
    if l.gso_ipv4_max.is_none_or(|g| g == size) {
        return Ok(false);
    }
    let mut msg = LinkUnspec::new_with_index(l.index);
    for a in gso_attrs(size) {
        msg = msg.append_extra_attribute(a);
    }
    h.link()
        .set(msg.build())
        .execute()
        .await
        .map_err(nl("set the IPv4 GSO size of", name))?;
    Ok(true)
}

/// The attribute that raises a link's IPv4 GSO limit.
fn gso_attrs(size: u32) -> [LinkAttribute; 1] {
    [LinkAttribute::GsoIpv4MaxSize(size)]
}

/// Creates the veth pair in one request: host end up on the bridge, the peer born inside the
/// container namespace with its final name and MAC (no move-then-rename round trips).
///
/// A larger GSO limit is asked for in the same request; a kernel that refuses it (a device
/// whose TSO limit is smaller) gets the request again without it, so the endpoint works
/// everywhere and is only faster where the kernel can.
pub async fn create_veth(h: &Handle, spec: &VethSpec<'_>) -> Result<(), LinkError> {
    let msg = |gso: Option<u32>| {
        // The peer cannot be born up (the kernel answers ENOTCONN): configure_container_side
        // sets it up.
        let mut peer = LinkUnspec::new_with_name(spec.peer)
            .setns_by_fd(spec.peer_ns_fd)
            .address(spec.peer_mac.to_vec())
            .mtu(spec.mtu);
        let mut host = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
            .name(spec.host)
            .mtu(spec.mtu)
            .controller(spec.bridge)
            .up();
        for a in gso.map(gso_attrs).into_iter().flatten() {
            peer = peer.append_extra_attribute(a.clone());
            host = host.append_extra_attribute(a);
        }
        host.set_info_data(InfoData::Veth(InfoVeth::Peer(peer.build())))
            .build()
    };
    let what = || format!("{} <-> {}", spec.host, spec.peer);
    match h.link().add(msg(spec.gso_max_size)).execute().await {
        Err(e)
            if spec.gso_max_size.is_some()
                && matches!(
                    errno(&e),
                    Some(libc::EINVAL | libc::ERANGE | libc::EOPNOTSUPP)
                ) =>
        {
            tracing::debug!(veth = spec.host, error = %e, "kernel refused a larger GSO size; default kept");
            h.link()
                .add(msg(None))
                .execute()
                .await
                .map_err(nl("create veth", what()))
        }
        r => r.map_err(nl("create veth", what())),
    }
}

/// Inside the container namespace: address and up on the endpoint, loopback up (for a
/// container's first endpoint), and the default route when asked.
pub async fn configure_container_side(
    h: &Handle,
    ifname: &str,
    ip: Ipv4Addr,
    prefix: u8,
    default_via: Option<Ipv4Addr>,
    lo_up: bool,
) -> Result<(), LinkError> {
    let l = link_by_name(h, ifname).await?.ok_or(LinkError::Missing {
        name: ifname.to_string(),
    })?;
    ensure_address(h, l.index, ip, prefix, ifname).await?;
    if !l.up {
        set_up(h, l.index, ifname).await?;
    }
    if lo_up {
        // Loopback is ifindex 1 in every network namespace.
        set_up(h, 1, "lo").await?;
    }
    if let Some(gw) = default_via {
        set_default_route(h, gw).await?;
    }
    Ok(())
}

/// Turns on hairpin mode on a bridge port, so a container can reach its own published port
/// through a host address (the DNAT'd packet goes back out the port it came in on).
pub async fn set_hairpin(h: &Handle, name: &str) -> Result<(), LinkError> {
    let l = link_by_name(h, name).await?.ok_or(LinkError::Missing {
        name: name.to_string(),
    })?;
    h.link()
        .set_port(
            rtnetlink::LinkBridgePort::new(l.index)
                .hairpin(true)
                .build(),
        )
        .execute()
        .await
        .map_err(nl("set hairpin mode on", name))
}

/// Isolates a bridge port (or lifts that): isolated ports exchange no frames with each other,
/// only with the bridge itself (the gateway) and ports that are not isolated. This is how a
/// network with `enable_icc=false` keeps its containers apart, at layer 2, without netfilter
/// seeing bridged frames (br_netfilter).
pub async fn set_isolated(h: &Handle, index: u32, name: &str, on: bool) -> Result<(), LinkError> {
    h.link()
        .set_port(rtnetlink::LinkBridgePort::new(index).isolated(on).build())
        .execute()
        .await
        .map_err(nl("set bridge port isolation on", name))
}

/// Sets the MTU of an interface by name; absent is fine (returns false).
pub async fn set_mtu(h: &Handle, name: &str, mtu: u32) -> Result<bool, LinkError> {
    let Some(l) = link_by_name(h, name).await? else {
        return Ok(false);
    };
    if l.mtu == mtu {
        return Ok(false);
    }
    h.link()
        .set(LinkUnspec::new_with_index(l.index).mtu(mtu).build())
        .execute()
        .await
        .map_err(nl("set MTU of", name))?;
    Ok(true)
}

/// An IPv6 address on an interface (global and ULA ones; link-local are left out: every
/// interface has its own and netd never manages them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addr6 {
    /// ifindex.
    pub index: u32,
    /// Address.
    pub ip: std::net::Ipv6Addr,
    /// Prefix length.
    pub prefix: u8,
}

/// Every non-link-local IPv6 address of the namespace.
pub async fn list_addrs6(h: &Handle) -> Result<Vec<Addr6>, LinkError> {
    let mut req = h.address().get();
    req.message_mut().header.family = AddressFamily::Inet6;
    let mut s = req.execute();
    let mut out = Vec::new();
    while let Some(m) = s.try_next().await.map_err(nl("list", "IPv6 addresses"))? {
        let ip = m.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V6(ip)) => Some(*ip),
            _ => None,
        });
        if let Some(ip) = ip.filter(|ip| !ip.is_unicast_link_local()) {
            out.push(Addr6 {
                index: m.header.index,
                ip,
                prefix: m.header.prefix_len,
            });
        }
    }
    Ok(out)
}

/// Adds `ip/prefix` to `index` without duplicate address detection (netd owns the subnet, so
/// DAD would only delay the address by a second or more); already present is fine.
pub async fn ensure_address6(
    h: &Handle,
    index: u32,
    ip: std::net::Ipv6Addr,
    prefix: u8,
    name: &str,
) -> Result<(), LinkError> {
    let mut req = h.address().add(index, IpAddr::V6(ip), prefix);
    req.message_mut().attributes.push(AddressAttribute::Flags(
        netlink_packet_route::address::AddressFlags::Nodad,
    ));
    match req.execute().await {
        Ok(()) => Ok(()),
        Err(e) if errno(&e) == Some(libc::EEXIST) => Ok(()),
        Err(e) => Err(nl("add address", format!("{ip}/{prefix} on {name}"))(e)),
    }
}

/// Adds (or replaces) the IPv6 default route via `gw`.
pub async fn set_default_route6(h: &Handle, gw: std::net::Ipv6Addr) -> Result<(), LinkError> {
    let msg = RouteMessageBuilder::<std::net::Ipv6Addr>::new()
        .gateway(gw)
        .build();
    h.route()
        .add(msg)
        .replace()
        .execute()
        .await
        .map_err(nl("add IPv6 default route via", gw.to_string()))
}

/// Gateways of the namespace's IPv6 default routes.
pub async fn default_gateways6(h: &Handle) -> Result<Vec<std::net::Ipv6Addr>, LinkError> {
    let msg = RouteMessageBuilder::<std::net::Ipv6Addr>::new().build();
    let mut s = h.route().get(msg).execute();
    let mut out = Vec::new();
    while let Some(m) = s.try_next().await.map_err(nl("list", "IPv6 routes"))? {
        if m.header.destination_prefix_length != 0 {
            continue;
        }
        out.extend(m.attributes.iter().filter_map(|a| match a {
            RouteAttribute::Gateway(RouteAddress::Inet6(g)) => Some(*g),
            _ => None,
        }));
    }
    Ok(out)
}

/// Whether the namespace has an IPv6 default route via `gw`.
pub async fn has_default_route6(h: &Handle, gw: std::net::Ipv6Addr) -> Result<bool, LinkError> {
    Ok(default_gateways6(h).await?.contains(&gw))
}

/// The MTU of the uplink: the device of the preferred default route, if it takes at least
/// 576; 1500 when there is no default route (pure, over listed routes and links).
pub fn uplink_mtu(routes: &[Route], links: &[Link]) -> u32 {
    let Some(oif) = routes
        .iter()
        .filter(|r| r.dst.prefix() == 0)
        .min_by_key(|r| r.priority)
        .and_then(|r| r.oif)
    else {
        return 1500;
    };
    links
        .iter()
        .find(|l| l.index == oif)
        .map(|l| l.mtu)
        .filter(|m| *m >= 576)
        .unwrap_or(1500)
}

/// The host's egress addresses: the preferred source of each default route, else the
/// address of its device on the gateway's subnet, else the device's first address (pure).
pub fn egress_addrs(routes: &[Route], addrs: &[Addr]) -> BTreeSet<Ipv4Addr> {
    let mut egress = BTreeSet::new();
    for r in routes.iter().filter(|r| r.dst.prefix() == 0) {
        let src = r.prefsrc.or_else(|| {
            let oif = r.oif?;
            let on: Vec<_> = addrs.iter().filter(|a| a.index == oif).collect();
            r.gateway
                .and_then(|g| {
                    on.iter()
                        .find(|a| Ipv4Net::new(a.ip, a.prefix).is_ok_and(|n| n.contains(g)))
                        .map(|a| a.ip)
                })
                .or_else(|| on.first().map(|a| a.ip))
        });
        egress.extend(src);
    }
    egress
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(name: &str, gso: Option<u32>) -> Link {
        Link {
            index: 2,
            name: name.into(),
            up: true,
            controller: None,
            mtu: 1500,
            kind: None,
            gso_ipv4_max: gso,
            alias: None,
            isolated: None,
        }
    }

    #[test]
    fn big_tcp_on_egress_only_when_every_uplink_takes_it() {
        let big = link("eth0", Some(BIG_TCP_GSO_SIZE));
        let bigger = link("eth1", Some(524_280));
        let small = link("wlan0", Some(DEFAULT_GSO_SIZE));
        let old_kernel = link("eth2", None);
        assert_eq!(egress_gso_size(&[&big, &bigger]), Some(BIG_TCP_GSO_SIZE));
        assert_eq!(egress_gso_size(&[&big, &small]), None);
        assert_eq!(egress_gso_size(&[&old_kernel]), None);
        assert_eq!(egress_gso_size(&[]), Some(BIG_TCP_GSO_SIZE));
    }

    #[test]
    fn berths_bridges_are_no_uplinks_whatever_their_name() {
        let mut eth = link("eth0", Some(BIG_TCP_GSO_SIZE));
        eth.index = 2;
        let mut ours = link("berth-1a2b3c4d", Some(DEFAULT_GSO_SIZE));
        ours.index = 3;
        let mut named = link("br-app", Some(DEFAULT_GSO_SIZE));
        named.index = 4;
        named.alias = Some(crate::names::OWN_BRIDGE_ALIAS.into());
        let devs: BTreeSet<u32> = [2, 3, 4].into();
        let links = vec![eth, ours, named.clone()];
        assert_eq!(uplinks_gso_size(&devs, &links), Some(BIG_TCP_GSO_SIZE));
        // The same bridge without berth's alias is some host bridge: an uplink.
        named.alias = None;
        assert_eq!(uplinks_gso_size(&devs, &[links[0].clone(), named]), None);
    }
}
