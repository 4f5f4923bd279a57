//! nftables rules in berth's own table (`ip berth`) and nothing else.
//!
//! Driven through the `nftables` crate's typed JSON schema and `nft -j -f -` (as netavark
//! does): the rules are typed values, the batch is atomic, and only berth's own table is ever
//! read back. Netlink (nftnl/rustables) would avoid the process spawn but needs C libraries or
//! a GPL crate and hand-built expressions; `nft` JSON is what Debian ships and is stable for
//! writing. Applying is idempotent: one batch adds, deletes and recreates the whole table, so
//! other tables (Docker's, firewalld's) are never flushed or reordered.
//!
//! The masquerade rule names only berth's bridge (`oifname != <bridge>`), never the host NIC,
//! so a NIC change needs no rule change.
//!
//! What is reachable from outside the host is decided first, in the `raw` chain, by the rules
//! of [`crate::guards`] (no path to 127.0.0.0/8 but from `lo`, none to a network's subnet but
//! from its bridge and `lo`).
//!
//! Both families share one rule generator ([`rules`], generic over [`Family`]): each
//! subnet reachable only from its own bridge and the host, masquerade of each non-internal
//! subnet for anything not on its own bridge (unless its network turned masquerading off: then
//! only its gateway is guarded in `raw`, and the forward chain lets nothing but replies and
//! published ports into its bridge), DNAT of published ports for packets to any
//! local address (`fib daddr type local`) or the given host address, hairpin masquerade,
//! forward isolation between networks and none out of internal ones. What only IPv4 has: the
//! loopback guard and the masquerade of host-local clients (`127.0.0.1:PORT` needs
//! `route_localnet`); IPv6 cannot reach a container from `[::1]` (the kernel never routes ::1
//! off the host: netd refuses such a port), and drops packets for ::1 arriving elsewhere
//! before any hook. The `ip6` table exists only while there are IPv6 networks and is
//! written in the same batch as the `ip` one.

use std::fmt::Debug;
use std::net::{Ipv4Addr, Ipv6Addr};

use nftables::expr::{Expression, MetaKey, NamedExpression, Prefix, SetItem};
use nftables::schema::{NfCmd, NfObject, Nftables};
use nftables::stmt::{NAT, Operator, Statement};
use nftables::types::NfFamily;

use crate::guards::{loopback_guard, subnet_guard};
use crate::ipnet::{Address, IpNet};
use crate::names::BRIDGE_PREFIX;
use crate::nft::{
    CHAINS, accept, chain, ct, drop_, encode, eq, fib_local, field, listing_order, m, masq, meta,
    nft, observed_family, rule, s, table_obj_of, tag,
};
use crate::ports::Protocol;

pub use crate::docker_user::{
    DOCKER_USER_COMMENT, DockerUserSeen, docker_user_comment, docker_user_seen, sync_docker_user,
    sync_docker_user_family_in, sync_docker_user_in,
};
pub use crate::nft::{Fingerprint, FirewallError, TABLE, set_table, table};

/// An address family of berth's tables: what differs between the `ip` and `ip6` rules.
pub trait Family: Debug + Clone + Copy + PartialEq + Eq + Default {
    /// An address of the family.
    type Addr: Address;
    /// nft's name of the family (and of its address payload protocol).
    const NAME: &'static str;
    /// The nftables family.
    const NF: NfFamily;
    /// Whether the family has host-local clients through loopback (IPv4's 127.0.0.0/8 with
    /// `route_localnet`): the loopback guard and their masquerade.
    const LOOPBACK_CLIENTS: bool;
    /// Whether the table exists only while there are networks of the family.
    const ONLY_WITH_NETWORKS: bool;
}

/// IPv4: berth's `ip` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct V4;

/// IPv6: berth's `ip6` table (`enable_ipv6` networks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct V6;

impl Family for V4 {
    type Addr = Ipv4Addr;
    const NAME: &'static str = "ip";
    const NF: NfFamily = NfFamily::IP;
    const LOOPBACK_CLIENTS: bool = true;
    const ONLY_WITH_NETWORKS: bool = false;
}

impl Family for V6 {
    type Addr = Ipv6Addr;
    const NAME: &'static str = "ip6";
    const NF: NfFamily = NfFamily::IP6;
    const LOOPBACK_CLIENTS: bool = false;
    const ONLY_WITH_NETWORKS: bool = true;
}

/// A subnet as an nft prefix expression.
fn prefix<A: Address>(net: &IpNet<A>) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(net.addr().to_string())),
        len: u32::from(net.prefix()),
    }))
}

/// A network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork<F: Family = V4> {
    /// Bridge name.
    pub bridge: String,
    /// Subnet.
    pub subnet: IpNet<F::Addr>,
    /// No egress.
    pub internal: bool,
    /// Gateway address (the embedded DNS, and the host as the containers see it); its
    /// traffic stays tracked.
    pub gateway: Option<F::Addr>,
    /// Whether the subnet is masqueraded on its way out (`enable_ip_masquerade`, on unless
    /// turned off).
    pub masquerade: bool,
}

/// One published port pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwPort<F: Family = V4> {
    /// tcp/udp/sctp.
    pub proto: Protocol,
    /// Only this host address (else any local address).
    pub host_ip: Option<F::Addr>,
    /// Host port.
    pub host_port: u16,
    /// Container address.
    pub dest: F::Addr,
    /// Container port.
    pub dest_port: u16,
}

/// Everything one of berth's tables must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ruleset<F: Family = V4> {
    /// Networks.
    pub networks: Vec<FwNetwork<F>>,
    /// Published ports.
    pub ports: Vec<FwPort<F>>,
}

impl<F: Family> Default for Ruleset<F> {
    fn default() -> Self {
        Self {
            networks: Vec::new(),
            ports: Vec::new(),
        }
    }
}

/// A network's IPv6 side.
pub type FwNetwork6 = FwNetwork<V6>;
/// One published port pair, to a container's IPv6 address.
pub type FwPort6 = FwPort<V6>;
/// Everything berth's `ip6` table must hold; no networks means no `ip6` table at all.
pub type Ruleset6 = Ruleset<V6>;

/// Where a port 53 is published on every address (`wildcard`: protocol and host port of each
/// such publication), one `return` per network subnet (`subnets`, as prefix expressions of
/// `family`) ahead of the DNATs: the DNAT matches every local address, the gateways too, and
/// would otherwise catch the containers' queries to the embedded DNS.
pub(crate) fn spare_gateway_dns(
    family: &'static str,
    wildcard: impl Iterator<Item = (Protocol, u16)>,
    subnets: &[Expression<'static>],
) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let on_53: Vec<Protocol> = wildcard
        .filter(|(_, port)| *port == 53)
        .map(|(p, _)| p)
        .collect();
    let mut out = Vec::new();
    for proto in [Protocol::Udp, Protocol::Tcp] {
        if !on_53.contains(&proto) {
            continue;
        }
        for subnet in subnets {
            out.push((
                "prerouting",
                vec![
                    eq(field(family, "daddr"), subnet.clone()),
                    eq(field(proto.as_str(), "dport"), Expression::Number(53)),
                    Statement::Return(None),
                ],
            ));
        }
    }
    out
}

/// The `raw` rule that lets what a container sends to another container of its subnet skip
/// conntrack (br_netfilter, loaded wherever Docker runs, would track every bridged frame
/// though nothing rewrites them); the gateway's traffic (DNS, published ports reached through
/// it) stays tracked.
pub(crate) fn notrack_inside(
    family: &'static str,
    bridge: &str,
    subnet: Expression<'static>,
    gateway: String,
) -> (&'static str, Vec<Statement<'static>>) {
    (
        "raw",
        vec![
            eq(meta(MetaKey::Iifname), s(bridge.to_string())),
            eq(field(family, "saddr"), subnet.clone()),
            eq(field(family, "daddr"), subnet),
            m(field(family, "daddr"), Operator::NEQ, s(gateway)),
            Statement::Notrack,
        ],
    )
}

/// The rules (chain, statements) of a ruleset of either family, in order.
pub fn rules<F: Family>(rs: &Ruleset<F>) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let fam = F::NAME;
    let any_bridge = || s(format!("{BRIDGE_PREFIX}*"));
    // Bridges named by the user (`com.docker.network.bridge.name`) escape the `berth-*`
    // wildcard: the rules that name every bridge also name them, as an anonymous set.
    let named: Vec<&str> = rs
        .networks
        .iter()
        .map(|n| n.bridge.as_str())
        .filter(|b| !b.starts_with(BRIDGE_PREFIX))
        .collect();
    let set_of = |names: &[&str]| {
        Expression::Named(NamedExpression::Set(
            names
                .iter()
                .map(|b| SetItem::Element(s(b.to_string())))
                .collect(),
        ))
    };
    let mut out = Vec::new();
    if F::LOOPBACK_CLIENTS && !rs.networks.is_empty() {
        out.push(loopback_guard());
    }
    for n in &rs.networks {
        if n.masquerade || n.internal {
            out.push(subnet_guard(fam, &n.bridge, prefix(&n.subnet)));
        } else if let Some(gw) = n.gateway {
            // Unmasqueraded traffic gets its replies addressed to the containers from outside:
            // only the gateway stays guarded here, and the forward chain drops what is not a
            // reply or a published port on its way into the bridge.
            out.push(subnet_guard(fam, &n.bridge, s(gw.to_string())));
        }
    }
    let wildcard = rs
        .ports
        .iter()
        .filter(|p| p.host_ip.is_none())
        .map(|p| (p.proto, p.host_port));
    let subnets: Vec<_> = rs.networks.iter().map(|n| prefix(&n.subnet)).collect();
    out.extend(spare_gateway_dns(fam, wildcard, &subnets));
    for p in &rs.ports {
        let dst = match p.host_ip {
            Some(ip) => eq(field(fam, "daddr"), s(ip.to_string())),
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
        // A publication on a loopback address is for the host's own clients, whose first
        // packet passes `output` only: no prerouting DNAT, so no frame from outside can be
        // translated to it (the loopback guard drops such frames earlier anyway).
        if !p.host_ip.is_some_and(|ip| ip.is_loopback_addr()) {
            out.push(("prerouting", body.clone()));
        }
        out.push(("output", body));
    }
    // Where br_netfilter is loaded (Docker loads it), frames bridged between two containers
    // of a network pass the IP hooks, conntrack included, though nothing rewrites them:
    // ~10% more CPU per byte than a plain bridge (`BRIDGE_NF_CALL=0 bench/net-iperf.sh`).
    // Container-to-container packets of one subnet are not tracked; the gateway's traffic
    // (DNS, published ports reached through the gateway address) still is.
    for n in &rs.networks {
        if let Some(gw) = n.gateway {
            out.push(notrack_inside(
                fam,
                &n.bridge,
                prefix(&n.subnet),
                gw.to_string(),
            ));
        }
    }
    for n in &rs.networks {
        let br = || s(n.bridge.clone());
        if !n.internal && n.masquerade {
            out.push((
                "postrouting",
                vec![
                    eq(field(fam, "saddr"), prefix(&n.subnet)),
                    m(meta(MetaKey::Oifname), Operator::NEQ, br()),
                    masq(),
                ],
            ));
        }
        if F::LOOPBACK_CLIENTS {
            // Host-local clients of published ports (127.0.0.1 needs route_localnet on the
            // bridge).
            out.push((
                "postrouting",
                vec![
                    eq(field(fam, "saddr"), prefix(&IpNet::<Ipv4Addr>::LOOPBACK)),
                    eq(meta(MetaKey::Oifname), br()),
                    masq(),
                ],
            ));
        }
        // Hairpin: a container reaching a published port of its own network via a host address.
        out.push((
            "postrouting",
            vec![
                m(ct("status"), Operator::IN, s("dnat")),
                eq(field(fam, "saddr"), prefix(&n.subnet)),
                eq(meta(MetaKey::Oifname), br()),
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
    if !named.is_empty() {
        out.push((
            "forward",
            vec![
                m(ct("status"), Operator::IN, s("dnat")),
                eq(meta(MetaKey::Oifname), set_of(&named)),
                accept(),
            ],
        ));
    }
    for n in rs.networks.iter().filter(|n| !n.masquerade && !n.internal) {
        // The subnet guard's part for an unmasqueraded network: replies and published ports
        // were accepted above; nothing else enters its bridge from elsewhere.
        out.push((
            "forward",
            vec![
                eq(meta(MetaKey::Oifname), s(n.bridge.clone())),
                m(meta(MetaKey::Iifname), Operator::NEQ, s(n.bridge.clone())),
                drop_(),
            ],
        ));
    }
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
            let others: Vec<&str> = named.iter().copied().filter(|b| *b != n.bridge).collect();
            if !others.is_empty() {
                out.push((
                    "forward",
                    vec![
                        eq(meta(MetaKey::Iifname), br()),
                        eq(meta(MetaKey::Oifname), set_of(&others)),
                        drop_(),
                    ],
                ));
            }
        }
    }
    out.push((
        "forward",
        vec![eq(meta(MetaKey::Iifname), any_bridge()), accept()],
    ));
    if !named.is_empty() {
        out.push((
            "forward",
            vec![eq(meta(MetaKey::Iifname), set_of(&named)), accept()],
        ));
    }
    out
}

/// The `ip6` rules (see [`rules`]).
pub fn rules6(rs: &Ruleset6) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    rules(rs)
}

/// The idempotent batch objects of one family's table `table`: add it (so the delete cannot
/// fail), delete it, and recreate it with every chain and rule; a family whose table exists
/// only with networks stops after the delete when there are none. One transaction: never a
/// moment without NAT.
pub fn objects<F: Family>(table: &str, rs: &Ruleset<F>) -> Vec<NfObject<'static>> {
    let t = || table_obj_of(F::NF, table);
    let mut objs = vec![
        NfObject::CmdObject(NfCmd::Add(t())),
        NfObject::CmdObject(NfCmd::Delete(t())),
    ];
    if F::ONLY_WITH_NETWORKS && rs.networks.is_empty() {
        return objs;
    }
    objs.push(NfObject::CmdObject(NfCmd::Add(t())));
    for (name, ty, hook, prio) in CHAINS {
        objs.push(chain(F::NF, table, name, ty, hook, prio));
    }
    for (c, body, tag) in tag(rules(rs)) {
        objs.push(rule(F::NF, table, c, body, tag));
    }
    objs
}

/// The `ip6` table's objects (see [`objects`]).
pub fn objects6(table: &str, rs: &Ruleset6) -> Vec<NfObject<'static>> {
    objects(table, rs)
}

/// The fingerprint an intact table of the family has (whatever its networks).
fn fingerprint<F: Family>(rs: &Ruleset<F>) -> Fingerprint {
    let mut chains: Vec<String> = CHAINS.iter().map(|c| c.0.to_string()).collect();
    chains.sort();
    Fingerprint {
        chains,
        rules: listing_order(tag(rules(rs))),
    }
}

/// The fingerprint an intact `ip` table has.
pub fn expected(rs: &Ruleset) -> Fingerprint {
    fingerprint(rs)
}

/// The fingerprint an intact `ip6` table has (`None`: there must be none).
pub fn expected6(rs: &Ruleset6) -> Option<Fingerprint> {
    (!rs.networks.is_empty()).then(|| fingerprint(rs))
}

/// The whole idempotent `ip` batch (see [`objects`]) for this process's table.
pub fn batch(rs: &Ruleset) -> Nftables<'static> {
    batch_in(table(), rs)
}

/// [`batch`] for the table `table` (each berth instance has its own).
pub fn batch_in(table: &str, rs: &Ruleset) -> Nftables<'static> {
    Nftables {
        objects: std::borrow::Cow::Owned(objects(table, rs)),
    }
}

/// A batch that removes berth's table (add first so the delete cannot fail).
pub fn delete_batch() -> Nftables<'static> {
    delete_batch_in(table())
}

/// [`delete_batch`] for the table `table`.
pub fn delete_batch_in(table: &str) -> Nftables<'static> {
    let t = || table_obj_of(NfFamily::IP, table);
    Nftables {
        objects: std::borrow::Cow::Owned(vec![
            NfObject::CmdObject(NfCmd::Add(t())),
            NfObject::CmdObject(NfCmd::Delete(t())),
        ]),
    }
}

/// Runs a batch of objects through `nft -j -f -` (blocking; on the namespace worker).
fn run_batch(objects: Vec<NfObject<'static>>) -> Result<(), FirewallError> {
    let json = encode(&Nftables {
        objects: std::borrow::Cow::Owned(objects),
    })?;
    nft(&["-j", "-f", "-"], Some(&json)).map(|_| ())
}

/// Applies the ruleset (blocking; call on the namespace worker).
pub fn apply(rs: &Ruleset) -> Result<(), FirewallError> {
    apply_in(table(), rs)
}

/// [`apply`] to the table `table`.
pub fn apply_in(table: &str, rs: &Ruleset) -> Result<(), FirewallError> {
    run_batch(objects(table, rs))
}

/// Writes (or removes) the `ip6` table `table` alone (blocking; on the namespace worker).
pub fn apply6_in(table: &str, rs: &Ruleset6) -> Result<(), FirewallError> {
    run_batch(objects(table, rs))
}

/// Writes berth's `ip` table and its `ip6` table (or removes the latter when there is no
/// IPv6 network) in one atomic nft batch (blocking; on the namespace worker).
pub fn apply_with6_in(table: &str, rs: &Ruleset, rs6: &Ruleset6) -> Result<(), FirewallError> {
    let mut objs = objects(table, rs);
    objs.extend(objects(table, rs6));
    run_batch(objs)
}

/// Removes berth's table (blocking; call on the namespace worker).
pub fn remove() -> Result<(), FirewallError> {
    remove_in(table())
}

/// [`remove`] of the table `table`.
pub fn remove_in(table: &str) -> Result<(), FirewallError> {
    let json = serde_json::to_vec(&delete_batch_in(table)).map_err(FirewallError::Encode)?;
    nft(&["-j", "-f", "-"], Some(&json)).map(|_| ())
}

/// The fingerprint of berth's table as the kernel has it, `None` when the table is missing.
/// Only berth's own table is read (never other tables: their JSON shape is not ours).
pub fn observed() -> Result<Option<Fingerprint>, FirewallError> {
    observed_in(table())
}

/// [`observed`] for the table `table`.
pub fn observed_in(table: &str) -> Result<Option<Fingerprint>, FirewallError> {
    observed_family("ip", table)
}

/// The `ip6` table `table` as the kernel has it (blocking; on the namespace worker).
pub fn observed6_in(table: &str) -> Result<Option<Fingerprint>, FirewallError> {
    observed_family("ip6", table)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Two networks (one internal) and a published port: the fixture of the rule tests here
    /// and in `guards`.
    pub(crate) fn rs() -> Ruleset {
        Ruleset {
            networks: vec![
                FwNetwork {
                    bridge: "berth-aaaa".into(),
                    subnet: "10.201.0.0/24".parse().unwrap(),
                    internal: false,
                    gateway: Some(Ipv4Addr::new(10, 201, 0, 1)),
                    masquerade: true,
                },
                FwNetwork {
                    bridge: "berth-bbbb".into(),
                    subnet: "10.201.1.0/24".parse().unwrap(),
                    internal: true,
                    gateway: Some(Ipv4Addr::new(10, 201, 1, 1)),
                    masquerade: true,
                },
            ],
            ports: vec![FwPort {
                proto: Protocol::Tcp,
                host_ip: None,
                host_port: 8080,
                dest: Ipv4Addr::new(10, 201, 0, 2),
                dest_port: 80,
            }],
        }
    }

    #[test]
    fn expected_rules_follow_the_listing_order_and_port_53_spares_the_gateways() {
        let mut r = rs();
        r.ports.push(FwPort {
            proto: Protocol::Udp,
            host_ip: None,
            host_port: 53,
            dest: Ipv4Addr::new(10, 201, 0, 3),
            dest_port: 53,
        });
        let want = expected(&r);
        let chains: Vec<&str> = want.rules.iter().map(|(c, _)| c.as_str()).collect();
        let mut grouped = chains.clone();
        grouped.sort_by_key(|c| CHAINS.iter().position(|x| x.0 == *c));
        assert_eq!(chains, grouped, "chain by chain, as nft lists them");
        // One return per network for udp/53 before the DNATs; none for tcp (not published).
        let returns = rules(&r)
            .iter()
            .filter(|(c, b)| {
                *c == "prerouting" && b.iter().any(|st| matches!(st, Statement::Return(_)))
            })
            .count();
        assert_eq!(returns, 2);
        assert!(
            !rules(&rs())
                .iter()
                .any(|(_, b)| b.iter().any(|st| matches!(st, Statement::Return(_))))
        );
    }

    #[test]
    fn bridged_traffic_skips_conntrack_but_the_gateway_does_not() {
        let raw: Vec<_> = rules(&rs())
            .into_iter()
            .filter(|(c, b)| *c == "raw" && b.contains(&Statement::Notrack))
            .collect();
        assert_eq!(raw.len(), 2, "one per network");
        let json = String::from_utf8(encode(&batch(&rs())).unwrap()).unwrap();
        assert!(json.contains(r#"{"notrack":null}"#), "{json}");
        assert!(!json.contains(r#","notrack"]"#), "no bare string: {json}");
        assert!(
            json.contains("10.201.0.1"),
            "the gateway is excluded: {json}"
        );
    }

    #[test]
    fn batch_recreates_only_our_table() {
        let j = serde_json::to_value(batch(&rs())).unwrap();
        let objs = j["nftables"].as_array().unwrap();
        assert_eq!(objs[0]["add"]["table"]["name"], "berth");
        assert_eq!(objs[1]["delete"]["table"]["name"], "berth");
        for o in objs {
            let text = o.to_string();
            assert!(text.contains("\"table\":\"berth\"") || text.contains("\"name\":\"berth\""));
        }
    }

    #[test]
    fn masquerade_names_no_host_nic_and_skips_internal() {
        let r = rules(&rs());
        let masq: Vec<String> = r
            .iter()
            .filter(|(c, b)| {
                *c == "postrouting"
                    && !serde_json::to_string(b).unwrap().contains("127.0.0.0")
                    && !serde_json::to_string(b).unwrap().contains("status")
            })
            .map(|(_, b)| serde_json::to_string(b).unwrap())
            .collect();
        assert_eq!(masq.len(), 1, "{masq:?}");
        assert!(
            masq[0].contains("10.201.0.0")
                && masq[0].contains("!=")
                && masq[0].contains("berth-aaaa")
        );
        let dnat = r
            .iter()
            .filter(|(_, b)| serde_json::to_string(b).unwrap().contains("dnat\":{"))
            .count();
        assert_eq!(dnat, 2, "prerouting and output");
        let fp = expected(&rs());
        assert_eq!(fp.chains.len(), 5);
        assert_eq!(fp.rules.len(), r.len());
        assert!(fp.rules.iter().all(|(_, c)| c.starts_with("berth ")));
        let mut other = rs();
        other.ports.clear();
        assert_ne!(
            expected(&other).rules[0].1,
            fp.rules[0].1,
            "the tag follows the ruleset"
        );
    }
}

#[cfg(test)]
mod tests6 {
    use super::*;

    fn rs() -> Ruleset6 {
        Ruleset6 {
            networks: vec![FwNetwork6 {
                bridge: "berth-aaaa".into(),
                subnet: "fd00:b5e7::/64".parse().unwrap(),
                internal: false,
                gateway: Some("fd00:b5e7::1".parse().unwrap()),
                masquerade: true,
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

#[cfg(test)]
mod guard_tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::ports::Protocol;

    /// The firewall tests' ruleset without its published port (the guards of `crate::guards`).
    fn rs() -> Ruleset {
        Ruleset {
            ports: Vec::new(),
            ..super::tests::rs()
        }
    }

    fn json(body: &[Statement<'static>]) -> String {
        serde_json::to_string(body).unwrap()
    }

    #[test]
    fn raw_guards_keep_loopback_and_subnets_from_outside() {
        let r = rules(&rs());
        let raw: Vec<String> = r
            .iter()
            .filter(|(c, _)| *c == "raw")
            .map(|(_, b)| json(b))
            .collect();
        let golden = [
            GOLDEN_LOOPBACK,
            &GOLDEN_SUBNET
                .replace("SUBNET", "10.201.0.0")
                .replace("BRIDGE", "berth-aaaa"),
            &GOLDEN_SUBNET
                .replace("SUBNET", "10.201.1.0")
                .replace("BRIDGE", "berth-bbbb"),
        ];
        assert_eq!(raw[..3], golden, "guards first, internal networks included");
        assert_eq!(raw.len(), 5, "then one notrack per network");
        assert!(raw[3..].iter().all(|b| b.contains("notrack")));
        // Covered by the fingerprint reconcile compares.
        let fp = expected(&rs());
        assert_eq!(fp.rules.iter().filter(|(c, _)| c == "raw").count(), 5);
        assert!(
            !rules(&Ruleset::<V4>::default())
                .iter()
                .any(|(c, _)| *c == "raw"),
            "no network, no guard"
        );
    }

    #[test]
    fn loopback_publications_are_translated_in_output_only() {
        let mut r = rs();
        r.ports = vec![
            FwPort {
                proto: Protocol::Tcp,
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8081,
                dest: Ipv4Addr::new(10, 201, 0, 2),
                dest_port: 80,
            },
            FwPort {
                proto: Protocol::Udp,
                host_ip: Some(Ipv4Addr::new(192, 0, 2, 7)),
                host_port: 5300,
                dest: Ipv4Addr::new(10, 201, 0, 2),
                dest_port: 53,
            },
        ];
        let dnat: Vec<(&str, String)> = rules(&r)
            .iter()
            .filter(|(_, b)| json(b).contains("\"dnat\":{"))
            .map(|(c, b)| (*c, json(b)))
            .collect();
        let chains: Vec<&str> = dnat.iter().map(|(c, _)| *c).collect();
        assert_eq!(chains, ["output", "prerouting", "output"], "{dnat:?}");
        assert!(dnat[0].1.contains("127.0.0.1"));
        assert!(dnat[1].1.contains("192.0.2.7") && dnat[2].1.contains("192.0.2.7"));
    }

    #[test]
    fn no_masquerade_drops_the_subnets_rule_and_named_bridges_are_named() {
        let mut r = rs();
        r.networks[0].masquerade = false;
        r.networks[0].bridge = "br-app".into();
        let texts: Vec<(&str, String)> = rules(&r)
            .into_iter()
            .map(|(c, b)| (c, serde_json::to_string(&b).unwrap()))
            .collect();
        assert!(
            !texts.iter().any(|(c, t)| *c == "postrouting"
                && t.contains("\"masquerade\"")
                && t.contains("10.201.0.0")
                && !t.contains("status")),
            "no outbound masquerade for the subnet: {texts:?}"
        );
        // Replies come back to the containers' own addresses: the raw guard keeps only the
        // gateway, and the forward chain lets nothing but replies and published ports in.
        assert!(texts.iter().any(|(c, t)| *c == "raw"
            && t.contains(r#""right":"10.201.0.1""#)
            && t.contains("drop")));
        assert!(!texts.iter().any(|(c, t)| *c == "raw"
            && t.contains(r#""addr":"10.201.0.0""#)
            && t.contains("drop")));
        assert!(texts.iter().any(|(c, t)| *c == "forward"
            && t.contains(r#"{"match":{"left":{"meta":{"key":"oifname"}},"right":"br-app","op":"=="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"br-app","op":"!="}},{"drop":{}}"#)));
        // Hairpin and host-local clients of published ports still are.
        assert!(
            texts
                .iter()
                .any(|(c, t)| *c == "postrouting" && t.contains("status") && t.contains("br-app"))
        );
        // The bridge outside `berth-*` is isolated from the others and accepted by name.
        assert!(texts.iter().any(|(c, t)| *c == "forward"
            && t.contains(r#""right":{"set":["br-app"]}"#)
            && t.contains("iifname")
            && t.contains("accept")));
        assert!(texts.iter().any(|(c, t)| *c == "forward"
            && t.contains(r#""right":{"set":["br-app"]}"#)
            && t.contains("dnat")));
        let json = String::from_utf8(encode(&batch(&r)).unwrap()).unwrap();
        assert!(json.contains("br-app"), "{json}");
        // Unchanged when every bridge is berth's own.
        assert!(
            !serde_json::to_string(&objects(TABLE, &rs()))
                .unwrap()
                .contains("\"set\"")
        );
    }

    const GOLDEN_LOOPBACK: &str = r#"[{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"127.0.0.0","len":8}},"op":"=="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"lo","op":"!="}},{"drop":{}}]"#;
    const GOLDEN_SUBNET: &str = r#"[{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"SUBNET","len":24}},"op":"=="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"BRIDGE","op":"!="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"lo","op":"!="}},{"drop":{}}]"#;
}
