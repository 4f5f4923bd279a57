//! IPv6 rules of `enable_ipv6` networks, in berth's own `ip6` table (same name as the `ip`
//! one), written in the same batch as the `ip` table so both families change together.
//!
//! The same shape as IPv4: each IPv6 subnet reachable only from its own bridge and the host
//! (the `raw` subnet guard; no direct routing from a LAN neighbour), masquerade of each
//! non-internal IPv6 subnet for anything not on its own bridge (no egress NIC named), DNAT of published ports to the container's IPv6
//! address for packets to any local address (`fib daddr type local`), hairpin masquerade,
//! forward isolation between networks and none out of internal ones. What IPv6 cannot do:
//! `[::1]:PORT` from the host itself (the kernel never routes ::1 off the host, and there is
//! no IPv6 `route_localnet`: netd refuses such a port), which is also why the `ip6` table
//! needs no loopback guard (the kernel drops packets for ::1 that arrive on another interface
//! before any netfilter hook); ports published with an IPv4 `host_ip` are IPv4 only, with
//! an IPv6 one (`::` = any) IPv6 only.

use std::net::Ipv6Addr;

use nftables::expr::{Expression, MetaKey, NamedExpression, Prefix};
use nftables::schema::{NfCmd, NfObject, Nftables};
use nftables::stmt::{NAT, Operator, Statement};
use nftables::types::NfFamily;

use crate::firewall::{
    CHAINS, Fingerprint, FirewallError, accept, chain, ct, drop_, eq, fib_local, field, m, masq,
    meta, nft, notrack_inside, observed_family, rule, s, spare_gateway_dns, table_obj_of, tag,
};
use crate::guards::subnet_guard;
use crate::ipam6::Ipv6Net;
use crate::names::BRIDGE_PREFIX;
use crate::ports::Protocol;

/// A network's IPv6 side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork6 {
    /// Bridge name.
    pub bridge: String,
    /// IPv6 subnet.
    pub subnet: Ipv6Net,
    /// No egress.
    pub internal: bool,
    /// IPv6 gateway (its DNS server and published ports stay tracked).
    pub gateway: Option<Ipv6Addr>,
}

/// One published port pair, to a container's IPv6 address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwPort6 {
    /// tcp/udp.
    pub proto: Protocol,
    /// Only this host IPv6 address (else any local address).
    pub host_ip: Option<Ipv6Addr>,
    /// Host port.
    pub host_port: u16,
    /// Container IPv6 address.
    pub dest: Ipv6Addr,
    /// Container port.
    pub dest_port: u16,
}

/// Everything berth's `ip6` table must hold; empty networks mean no `ip6` table at all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset6 {
    /// IPv6-enabled networks.
    pub networks: Vec<FwNetwork6>,
    /// Published ports of their endpoints.
    pub ports: Vec<FwPort6>,
}

fn prefix6(n: &Ipv6Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(n.addr().to_string())),
        len: n.prefix() as u32,
    }))
}

/// The rules (chain, statements) of an IPv6 ruleset, in order.
pub fn rules6(rs: &Ruleset6) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let any_bridge = || s(format!("{BRIDGE_PREFIX}*"));
    let mut out = Vec::new();
    for n in &rs.networks {
        out.push(subnet_guard("ip6", &n.bridge, prefix6(&n.subnet)));
    }
    for n in &rs.networks {
        if let Some(gw) = n.gateway {
            out.push(notrack_inside(
                "ip6",
                &n.bridge,
                prefix6(&n.subnet),
                gw.to_string(),
            ));
        }
    }
    let wildcard = rs
        .ports
        .iter()
        .filter(|p| p.host_ip.is_none())
        .map(|p| (p.proto, p.host_port));
    let subnets: Vec<_> = rs.networks.iter().map(|n| prefix6(&n.subnet)).collect();
    out.extend(spare_gateway_dns("ip6", wildcard, &subnets));
    for p in &rs.ports {
        let dst = match p.host_ip {
            Some(ip) => eq(field("ip6", "daddr"), s(ip.to_string())),
            None => fib_local(),
        };
        let body = vec![
            dst,
            eq(
                field(p.proto.as_str(), "dport"),
                Expression::Number(p.host_port as u32),
            ),
            Statement::DNAT(Some(NAT {
                addr: Some(s(p.dest.to_string())),
                family: None,
                port: Some(Expression::Number(p.dest_port as u32)),
                flags: None,
            })),
        ];
        out.push(("prerouting", body.clone()));
        out.push(("output", body));
    }
    for n in &rs.networks {
        if !n.internal {
            out.push((
                "postrouting",
                vec![
                    eq(field("ip6", "saddr"), prefix6(&n.subnet)),
                    m(meta(MetaKey::Oifname), Operator::NEQ, s(n.bridge.clone())),
                    masq(),
                ],
            ));
        }
        out.push((
            "postrouting",
            vec![
                m(ct("status"), Operator::IN, s("dnat")),
                eq(field("ip6", "saddr"), prefix6(&n.subnet)),
                eq(meta(MetaKey::Oifname), s(n.bridge.clone())),
                masq(),
            ],
        ));
    }
    out.push((
        "forward",
        vec![
            m(
                ct("state"),
                Operator::IN,
                Expression::List(vec![s("established"), s("related")]),
            ),
            accept(),
        ],
    ));
    out.push((
        "forward",
        vec![
            m(ct("status"), Operator::IN, s("dnat")),
            eq(meta(MetaKey::Oifname), any_bridge()),
            accept(),
        ],
    ));
    for n in &rs.networks {
        let br = || s(n.bridge.clone());
        if n.internal {
            out.push((
                "forward",
                vec![
                    eq(meta(MetaKey::Iifname), br()),
                    m(meta(MetaKey::Oifname), Operator::NEQ, br()),
                    drop_(),
                ],
            ));
            out.push((
                "forward",
                vec![
                    eq(meta(MetaKey::Oifname), br()),
                    m(meta(MetaKey::Iifname), Operator::NEQ, br()),
                    drop_(),
                ],
            ));
        } else {
            out.push((
                "forward",
                vec![
                    eq(meta(MetaKey::Iifname), br()),
                    eq(meta(MetaKey::Oifname), any_bridge()),
                    m(meta(MetaKey::Oifname), Operator::NEQ, br()),
                    drop_(),
                ],
            ));
        }
    }
    out.push((
        "forward",
        vec![eq(meta(MetaKey::Iifname), any_bridge()), accept()],
    ));
    out
}

/// The batch objects for the `ip6` table `table`: recreated whole when there are IPv6
/// networks, removed (add first so the delete cannot fail) when there are none.
pub fn objects6(table: &str, rs: &Ruleset6) -> Vec<NfObject<'static>> {
    let t = || table_obj_of(NfFamily::IP6, table);
    let mut objs = vec![
        NfObject::CmdObject(NfCmd::Add(t())),
        NfObject::CmdObject(NfCmd::Delete(t())),
    ];
    if rs.networks.is_empty() {
        return objs;
    }
    objs.push(NfObject::CmdObject(NfCmd::Add(t())));
    for (name, ty, hook, prio) in CHAINS {
        objs.push(chain(NfFamily::IP6, table, name, ty, hook, prio));
    }
    for (c, body, t) in tag(rules6(rs)) {
        objs.push(rule(NfFamily::IP6, table, c, body, t));
    }
    objs
}

/// The fingerprint an intact `ip6` table has (`None`: there must be none).
pub fn expected6(rs: &Ruleset6) -> Option<Fingerprint> {
    if rs.networks.is_empty() {
        return None;
    }
    let mut chains: Vec<String> = CHAINS.iter().map(|c| c.0.to_string()).collect();
    chains.sort();
    Some(Fingerprint {
        chains,
        rules: crate::firewall::listing_order(tag(rules6(rs))),
    })
}

/// The `ip6` table `table` as the kernel has it (blocking; on the namespace worker).
pub fn observed6_in(table: &str) -> Result<Option<Fingerprint>, FirewallError> {
    observed_family("ip6", table)
}

/// Writes (or removes) the `ip6` table `table` alone (blocking; on the namespace worker).
pub fn apply6_in(table: &str, rs: &Ruleset6) -> Result<(), FirewallError> {
    let batch = Nftables {
        objects: std::borrow::Cow::Owned(objects6(table, rs)),
    };
    let json = crate::firewall::encode(&batch)?;
    nft(&["-j", "-f", "-"], Some(&json)).map(|_| ())
}

/// Writes berth's `ip` table and its `ip6` table (or removes the latter when there is no
/// IPv6 network) in one atomic nft batch (blocking; on the namespace worker).
pub fn apply_with6_in(
    table: &str,
    rs: &crate::firewall::Ruleset,
    rs6: &Ruleset6,
) -> Result<(), FirewallError> {
    let mut objs = crate::firewall::batch_in(table, rs).objects.into_owned();
    objs.extend(objects6(table, rs6));
    let batch = Nftables {
        objects: std::borrow::Cow::Owned(objs),
    };
    let json = crate::firewall::encode(&batch)?;
    nft(&["-j", "-f", "-"], Some(&json)).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs() -> Ruleset6 {
        Ruleset6 {
            networks: vec![FwNetwork6 {
                bridge: "berth-aaaa".into(),
                subnet: "fd00:b5e7::/64".parse().unwrap(),
                internal: false,
                gateway: Some("fd00:b5e7::1".parse().unwrap()),
            }],
            ports: vec![FwPort6 {
                proto: Protocol::Tcp,
                host_ip: None,
                host_port: 8080,
                dest: "fd00:b5e7::2".parse().unwrap(),
                dest_port: 80,
            }],
        }
    }

    #[test]
    fn ip6_table_holds_masquerade_dnat_and_isolation() {
        let objs = objects6("berth", &rs());
        let text = serde_json::to_string(&objs).unwrap();
        assert!(text.contains("\"family\":\"ip6\""), "{text}");
        assert!(text.contains("masquerade"));
        assert!(text.contains("fd00:b5e7::2"));
        assert!(
            !text.contains("\"family\":\"ip\""),
            "only ip6 objects: {text}"
        );
        assert_eq!(expected6(&rs()).unwrap().rules.len(), rules6(&rs()).len());
    }

    #[test]
    fn ipv6_subnets_are_reachable_only_from_their_bridge_and_the_host() {
        let raw: Vec<String> = rules6(&rs())
            .iter()
            .filter(|(c, _)| *c == "raw")
            .map(|(_, b)| serde_json::to_string(b).unwrap())
            .collect();
        assert_eq!(
            raw[0],
            r#"[{"match":{"left":{"payload":{"protocol":"ip6","field":"daddr"}},"right":{"prefix":{"addr":"fd00:b5e7::","len":64}},"op":"=="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"berth-aaaa","op":"!="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"lo","op":"!="}},{"drop":{}}]"#
        );
        assert_eq!(raw.len(), 2, "the guard, then the notrack rule");
        assert!(
            !raw.iter()
                .any(|r| r.contains(r#""::1""#) || r.contains(r#""lo","op":"=="#)),
            "no loopback guard"
        );
    }

    #[test]
    fn no_ipv6_network_means_no_ip6_table() {
        let objs = objects6("berth", &Ruleset6::default());
        assert_eq!(objs.len(), 2, "add + delete only");
        assert!(expected6(&Ruleset6::default()).is_none());
    }
}
