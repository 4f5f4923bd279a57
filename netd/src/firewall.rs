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

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};

use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix,
};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Accept, Drop, Match, NAT, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

use crate::guards::{loopback_guard, subnet_guard};
use crate::ipam::Ipv4Net;
use crate::names::BRIDGE_PREFIX;
use crate::ports::Protocol;

/// berth's default table name (family `ip`), for the default instance.
pub const TABLE: &str = "berth";

static TABLE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The table this process manages: `berth` unless [`set_table`] chose another, so that two
/// berth instances (different `--root`) in one network namespace never rewrite each other's
/// rules.
pub fn table() -> &'static str {
    TABLE_NAME.get().map(String::as_str).unwrap_or(TABLE)
}

/// Picks this process's table name, once; false when another name was already chosen.
pub fn set_table(name: &str) -> bool {
    TABLE_NAME.set(name.to_string()).is_ok() || table() == name
}
/// Comment on the rules berth adds to Docker's DOCKER-USER chain, to find them again.
pub const DOCKER_USER_COMMENT: &str = "berth";

/// What went wrong talking to nft.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    #[error("cannot run `nft {args}` (is the nftables package installed?)")]
    Spawn {
        args: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`nft {args}` failed: {stderr}")]
    Nft { args: String, stderr: String },
    #[error("cannot encode the nft batch")]
    Encode(#[source] serde_json::Error),
    #[error("cannot read `nft {args}` output")]
    Decode {
        args: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A network as the firewall sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwNetwork {
    /// Bridge name.
    pub bridge: String,
    /// Subnet.
    pub subnet: Ipv4Net,
    /// No egress.
    pub internal: bool,
    /// Gateway address (the embedded DNS, and the host as the containers see it).
    pub gateway: Ipv4Addr,
}

/// One published port pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FwPort {
    /// tcp/udp.
    pub proto: Protocol,
    /// Only this host address (else any local address).
    pub host_ip: Option<Ipv4Addr>,
    /// Host port.
    pub host_port: u16,
    /// Container address.
    pub dest: Ipv4Addr,
    /// Container port.
    pub dest_port: u16,
}

/// Everything berth's table must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ruleset {
    /// Networks.
    pub networks: Vec<FwNetwork>,
    /// Published ports.
    pub ports: Vec<FwPort>,
}

pub(crate) fn s(v: impl Into<String>) -> Expression<'static> {
    Expression::String(Cow::Owned(v.into()))
}
pub(crate) fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}
pub(crate) fn field(proto: &'static str, f: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(
        PayloadField {
            protocol: Cow::Borrowed(proto),
            field: Cow::Borrowed(f),
        },
    )))
}
fn prefix(n: &Ipv4Net) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(s(n.addr().to_string())),
        len: n.prefix() as u32,
    }))
}
pub(crate) fn ct(key: &'static str) -> Expression<'static> {
    Expression::Named(NamedExpression::CT(CT {
        key: Cow::Borrowed(key),
        family: None,
        dir: None,
    }))
}
pub(crate) fn m(
    left: Expression<'static>,
    op: Operator,
    right: Expression<'static>,
) -> Statement<'static> {
    Statement::Match(Match { left, right, op })
}
pub(crate) fn eq(left: Expression<'static>, right: Expression<'static>) -> Statement<'static> {
    m(left, Operator::EQ, right)
}
pub(crate) fn fib_local() -> Statement<'static> {
    let mut flags = HashSet::new();
    flags.insert(FibFlag::Daddr);
    eq(
        Expression::Named(NamedExpression::Fib(Fib {
            result: FibResult::Type,
            flags,
        })),
        s("local"),
    )
}
pub(crate) fn accept() -> Statement<'static> {
    Statement::Accept(Some(Accept {}))
}
pub(crate) fn drop_() -> Statement<'static> {
    Statement::Drop(Some(Drop {}))
}
pub(crate) fn masq() -> Statement<'static> {
    Statement::Masquerade(None)
}

pub(crate) fn chain(
    family: NfFamily,
    table: &str,
    name: &'static str,
    ty: NfChainType,
    hook: NfHook,
    prio: i32,
) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Chain(Chain {
        family,
        table: Cow::Owned(table.to_string()),
        name: Cow::Borrowed(name),
        _type: Some(ty),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Default::default()
    })))
}

pub(crate) fn rule(
    family: NfFamily,
    table: &str,
    chain: &'static str,
    expr: Vec<Statement<'static>>,
    comment: String,
) -> NfObject<'static> {
    NfObject::CmdObject(NfCmd::Add(NfListObject::Rule(Rule {
        family,
        table: Cow::Owned(table.to_string()),
        chain: Cow::Borrowed(chain),
        expr: Cow::Owned(expr),
        comment: Some(Cow::Owned(comment)),
        ..Default::default()
    })))
}

/// What reconcile compares: chain names and, per rule, its chain and its comment. Every rule
/// berth writes carries `berth <hash of the whole ruleset> <position>`, so a deleted, added,
/// reordered or stale rule shows as a difference without parsing rule bodies (whose JSON shape
/// changes between nft releases).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fingerprint {
    /// Sorted chain names.
    pub chains: Vec<String>,
    /// (chain, comment) per rule, in listing order.
    pub rules: Vec<(String, String)>,
}

fn tagged_rules(rs: &Ruleset) -> Vec<(&'static str, Vec<Statement<'static>>, String)> {
    tag(rules(rs))
}

/// Tags each rule with `berth <hash of all rules> <position>` (see [`Fingerprint`]).
pub(crate) fn tag(
    rules: Vec<(&'static str, Vec<Statement<'static>>)>,
) -> Vec<(&'static str, Vec<Statement<'static>>, String)> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for (c, body) in &rules {
        h.update(c.as_bytes());
        h.update(serde_json::to_vec(body).unwrap_or_default());
    }
    let tag = hex::encode(&h.finalize()[..4]);
    rules
        .into_iter()
        .enumerate()
        .map(|(i, (c, b))| (c, b, format!("berth {tag} {i}")))
        .collect()
}

/// The fingerprint an intact table has.
pub fn expected(rs: &Ruleset) -> Fingerprint {
    let mut chains: Vec<String> = CHAINS.iter().map(|c| c.0.to_string()).collect();
    chains.sort();
    Fingerprint {
        chains,
        rules: listing_order(tagged_rules(rs)),
    }
}

/// (chain, tag) of `rules` in the order `nft list` shows them: chain by chain in creation
/// order ([`CHAINS`]), rules of one chain in insertion order. (Rules are generated per
/// published port, prerouting and output interleaved; compared in that order, a table with
/// two ports looked changed on every reconcile and was rewritten each time.)
pub(crate) fn listing_order(
    rules: Vec<(&'static str, Vec<Statement<'static>>, String)>,
) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = rules
        .into_iter()
        .map(|(c, _, t)| (c.to_string(), t))
        .collect();
    out.sort_by_key(|(c, _)| CHAINS.iter().position(|x| x.0 == c.as_str()));
    out
}

fn table_obj(table: &str) -> NfListObject<'static> {
    table_obj_of(NfFamily::IP, table)
}

pub(crate) fn table_obj_of(family: NfFamily, table: &str) -> NfListObject<'static> {
    NfListObject::Table(Table {
        family,
        name: Cow::Owned(table.to_string()),
        handle: None,
    })
}

pub(crate) const CHAINS: [(&str, NfChainType, NfHook, i32); 5] = [
    // Before conntrack (-200): traffic between containers of one network skips it.
    ("raw", NfChainType::Filter, NfHook::Prerouting, -300),
    ("prerouting", NfChainType::NAT, NfHook::Prerouting, -100),
    ("output", NfChainType::NAT, NfHook::Output, -100),
    ("postrouting", NfChainType::NAT, NfHook::Postrouting, 100),
    ("forward", NfChainType::Filter, NfHook::Forward, 0),
];

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

/// The rules (chain, statements) of a ruleset, in order.
pub fn rules(rs: &Ruleset) -> Vec<(&'static str, Vec<Statement<'static>>)> {
    let any_bridge = || s(format!("{BRIDGE_PREFIX}*"));
    let mut out = Vec::new();
    if !rs.networks.is_empty() {
        out.push(loopback_guard());
    }
    for n in &rs.networks {
        out.push(subnet_guard("ip", &n.bridge, prefix(&n.subnet)));
    }
    let wildcard = rs
        .ports
        .iter()
        .filter(|p| p.host_ip.is_none())
        .map(|p| (p.proto, p.host_port));
    let subnets: Vec<_> = rs.networks.iter().map(|n| prefix(&n.subnet)).collect();
    out.extend(spare_gateway_dns("ip", wildcard, &subnets));
    for p in &rs.ports {
        let dst = match p.host_ip {
            Some(ip) => eq(field("ip", "daddr"), s(ip.to_string())),
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
        if !p.host_ip.is_some_and(|ip| ip.is_loopback()) {
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
        out.push(notrack_inside(
            "ip",
            &n.bridge,
            prefix(&n.subnet),
            n.gateway.to_string(),
        ));
    }
    for n in &rs.networks {
        if !n.internal {
            out.push((
                "postrouting",
                vec![
                    eq(field("ip", "saddr"), prefix(&n.subnet)),
                    m(meta(MetaKey::Oifname), Operator::NEQ, s(n.bridge.clone())),
                    masq(),
                ],
            ));
        }
        // Host-local clients of published ports (127.0.0.1 needs route_localnet on the bridge).
        out.push((
            "postrouting",
            vec![
                eq(
                    field("ip", "saddr"),
                    prefix(&Ipv4Net::new(Ipv4Addr::new(127, 0, 0, 0), 8).unwrap_or(n.subnet)),
                ),
                eq(meta(MetaKey::Oifname), s(n.bridge.clone())),
                masq(),
            ],
        ));
        // Hairpin: a container reaching a published port of its own network via a host address.
        out.push((
            "postrouting",
            vec![
                m(ct("status"), Operator::IN, s("dnat")),
                eq(field("ip", "saddr"), prefix(&n.subnet)),
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
        if n.internal {
            out.push((
                "forward",
                vec![
                    eq(meta(MetaKey::Iifname), s(n.bridge.clone())),
                    m(meta(MetaKey::Oifname), Operator::NEQ, s(n.bridge.clone())),
                    drop_(),
                ],
            ));
            out.push((
                "forward",
                vec![
                    eq(meta(MetaKey::Oifname), s(n.bridge.clone())),
                    m(meta(MetaKey::Iifname), Operator::NEQ, s(n.bridge.clone())),
                    drop_(),
                ],
            ));
        } else {
            out.push((
                "forward",
                vec![
                    eq(meta(MetaKey::Iifname), s(n.bridge.clone())),
                    eq(meta(MetaKey::Oifname), any_bridge()),
                    m(meta(MetaKey::Oifname), Operator::NEQ, s(n.bridge.clone())),
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

/// The whole idempotent batch: add table (so the delete cannot fail), delete it, recreate it
/// with every chain and rule. One transaction: never a moment without NAT.
pub fn batch(rs: &Ruleset) -> Nftables<'static> {
    batch_in(table(), rs)
}

/// [`batch`] for the table `table` (each berth instance has its own).
pub fn batch_in(table: &str, rs: &Ruleset) -> Nftables<'static> {
    let mut objs = vec![
        NfObject::CmdObject(NfCmd::Add(table_obj(table))),
        NfObject::CmdObject(NfCmd::Delete(table_obj(table))),
        NfObject::CmdObject(NfCmd::Add(table_obj(table))),
    ];
    for (name, ty, hook, prio) in CHAINS {
        objs.push(chain(NfFamily::IP, table, name, ty, hook, prio));
    }
    for (c, body, tag) in tagged_rules(rs) {
        objs.push(rule(NfFamily::IP, table, c, body, tag));
    }
    Nftables {
        objects: Cow::Owned(objs),
    }
}

/// The JSON `nft -j -f -` reads for `batch`. The `nftables` crate (0.6) writes the unit
/// statement `notrack` as the string `"notrack"`, which nft refuses ("expected object"); nft's
/// schema spells it `{"notrack": null}`, so such strings in rule bodies are rewritten.
pub(crate) fn encode(batch: &Nftables<'_>) -> Result<Vec<u8>, FirewallError> {
    fn fix(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(o) => {
                if let Some(serde_json::Value::Array(expr)) = o.get_mut("expr") {
                    for st in expr.iter_mut() {
                        if st.as_str() == Some("notrack") {
                            *st = serde_json::json!({ "notrack": null });
                        }
                    }
                }
                o.values_mut().for_each(fix);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(fix),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(batch).map_err(FirewallError::Encode)?;
    fix(&mut v);
    serde_json::to_vec(&v).map_err(FirewallError::Encode)
}

/// A batch that removes berth's table (add first so the delete cannot fail).
pub fn delete_batch() -> Nftables<'static> {
    delete_batch_in(table())
}

/// [`delete_batch`] for the table `table`.
pub fn delete_batch_in(table: &str) -> Nftables<'static> {
    Nftables {
        objects: Cow::Owned(vec![
            NfObject::CmdObject(NfCmd::Add(table_obj(table))),
            NfObject::CmdObject(NfCmd::Delete(table_obj(table))),
        ]),
    }
}

/// Runs `nft` with `args`, feeding `stdin`; returns stdout. Must run in the namespace whose
/// rules are meant (netd calls it on its namespace worker).
pub fn nft(args: &[&str], stdin: Option<&[u8]>) -> Result<Vec<u8>, FirewallError> {
    let joined = args.join(" ");
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| FirewallError::Spawn {
            args: joined.clone(),
            source,
        })?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .map_err(|source| FirewallError::Spawn {
                args: joined.clone(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| FirewallError::Spawn {
            args: joined.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(FirewallError::Nft {
            args: joined,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(out.stdout)
}

/// Applies the ruleset (blocking; call on the namespace worker).
pub fn apply(rs: &Ruleset) -> Result<(), FirewallError> {
    apply_in(table(), rs)
}

/// [`apply`] to the table `table`.
pub fn apply_in(table: &str, rs: &Ruleset) -> Result<(), FirewallError> {
    let json = encode(&batch_in(table, rs))?;
    nft(&["-j", "-f", "-"], Some(&json)).map(|_| ())
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

/// The fingerprint of berth's table `table` of `family` (`ip`, `ip6`).
pub(crate) fn observed_family(
    family: &str,
    table: &str,
) -> Result<Option<Fingerprint>, FirewallError> {
    let args = ["-j", "list", "table", family, table];
    let out = match nft(&args, None) {
        Ok(o) => o,
        Err(FirewallError::Nft { stderr, .. }) if stderr.contains("No such file") => {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let v: serde_json::Value =
        serde_json::from_slice(&out).map_err(|source| FirewallError::Decode {
            args: args.join(" "),
            source,
        })?;
    let list = v
        .get("nftables")
        .and_then(|l| l.as_array())
        .cloned()
        .unwrap_or_default();
    let text = |o: &serde_json::Value, k: &str| {
        o.get(k)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut chains: Vec<String> = list
        .iter()
        .filter_map(|o| o.get("chain"))
        .map(|c| text(c, "name"))
        .collect();
    chains.sort();
    let rules = list
        .iter()
        .filter_map(|o| o.get("rule"))
        .map(|r| (text(r, "chain"), text(r, "comment")))
        .collect();
    Ok(Some(Fingerprint { chains, rules }))
}

/// Docker's `ip filter FORWARD` with policy drop blocks forwarded traffic whatever berth's
/// table accepts; Docker documents DOCKER-USER as the place for the user's accepts. This keeps
/// three narrow accepts there (from berth bridges, replies to them, and connections to their
/// published ports, which DNAT sends to a berth bridge) while berth has networks,
/// and none when it has none. Returns whether something changed.
pub fn sync_docker_user(want: bool) -> Result<bool, FirewallError> {
    sync_docker_user_in(table(), want)
}

/// The comment that marks the DOCKER-USER accepts of the instance whose table is `table`:
/// `berth` for the default table, `berth:<table>` for others. Each instance keeps and removes
/// only its own pair, so one instance removing its last network never takes away the
/// accepts another instance's containers still need.
pub fn docker_user_comment(table: &str) -> String {
    if table == TABLE {
        DOCKER_USER_COMMENT.to_string()
    } else {
        format!("{DOCKER_USER_COMMENT}:{table}")
    }
}

/// [`sync_docker_user`] for the instance whose table is `table` (its accepts carry
/// [`docker_user_comment`]).
pub fn sync_docker_user_in(table: &str, want: bool) -> Result<bool, FirewallError> {
    sync_docker_user_family_in("ip", table, want)
}

/// berth's accepts in Docker's DOCKER-USER chain of one family, as the kernel has them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DockerUserSeen {
    /// Rule handles of this instance's accepts.
    pub ours: Vec<String>,
    /// Whether Docker's FORWARD chain drops by default (only then are accepts needed).
    pub drop_policy: bool,
}

impl DockerUserSeen {
    /// Whether [`sync_docker_user_family_in`] with `want` would change the chain: the three
    /// accepts are wanted (berth has networks and Docker's policy drops) but not all there,
    /// or not wanted but some are.
    pub fn needs_change(&self, want: bool) -> bool {
        let want = want && self.drop_policy;
        if want {
            self.ours.len() != 3
        } else {
            !self.ours.is_empty()
        }
    }
}

/// berth's accepts in Docker's `family filter` DOCKER-USER chain (blocking; on the namespace
/// worker); `None` when Docker has no such table or chain.
pub fn docker_user_seen(
    family: &str,
    table: &str,
) -> Result<Option<DockerUserSeen>, FirewallError> {
    let comment = docker_user_comment(table);
    // One cheap listing first: on a host without Docker there is nothing more to read.
    let tables = String::from_utf8_lossy(&nft(&["list", "tables"], None)?).into_owned();
    if !tables
        .lines()
        .any(|l| l.trim() == format!("table {family} filter"))
    {
        return Ok(None);
    }
    let forward = match nft(&["list", "chain", family, "filter", "FORWARD"], None) {
        Ok(o) => String::from_utf8_lossy(&o).into_owned(),
        Err(FirewallError::Nft { .. }) => String::new(),
        Err(e) => return Err(e),
    };
    let docker_user = match nft(
        &["-a", "list", "chain", family, "filter", "DOCKER-USER"],
        None,
    ) {
        Ok(o) => Some(String::from_utf8_lossy(&o).into_owned()),
        Err(FirewallError::Nft { .. }) => None,
        Err(e) => return Err(e),
    };
    let Some(du) = docker_user else {
        return Ok(None);
    };
    let ours = du
        .lines()
        .filter(|l| l.contains(&format!("comment \"{comment}\"")))
        .filter_map(|l| {
            l.rsplit_once("# handle ")
                .map(|(_, h)| h.trim().to_string())
        })
        .collect();
    Ok(Some(DockerUserSeen {
        ours,
        drop_policy: forward.contains("policy drop"),
    }))
}

/// [`sync_docker_user_in`] for Docker's `family filter` table: `ip`, or `ip6` when Docker
/// runs with ip6tables (its IPv6 FORWARD policy is drop as well) and berth has IPv6 networks.
pub fn sync_docker_user_family_in(
    family: &str,
    table: &str,
    want: bool,
) -> Result<bool, FirewallError> {
    let comment = docker_user_comment(table);
    let Some(seen) = docker_user_seen(family, table)? else {
        return Ok(false);
    };
    if !seen.needs_change(want) {
        return Ok(false);
    }
    let want = want && seen.drop_policy;
    let ours = seen.ours;
    for h in &ours {
        nft(
            &[
                "delete",
                "rule",
                family,
                "filter",
                "DOCKER-USER",
                "handle",
                h,
            ],
            None,
        )?;
    }
    if want {
        let pat = format!("\"{BRIDGE_PREFIX}*\"");
        let c = format!("\"{comment}\"");
        nft(
            &[
                "insert",
                "rule",
                family,
                "filter",
                "DOCKER-USER",
                "oifname",
                &pat,
                "ct",
                "status",
                "dnat",
                "counter",
                "accept",
                "comment",
                &c,
            ],
            None,
        )?;
        nft(
            &[
                "insert",
                "rule",
                family,
                "filter",
                "DOCKER-USER",
                "oifname",
                &pat,
                "ct",
                "state",
                "established,related",
                "counter",
                "accept",
                "comment",
                &c,
            ],
            None,
        )?;
        nft(
            &[
                "insert",
                "rule",
                family,
                "filter",
                "DOCKER-USER",
                "iifname",
                &pat,
                "counter",
                "accept",
                "comment",
                &c,
            ],
            None,
        )?;
    }
    Ok(true)
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
                    gateway: Ipv4Addr::new(10, 201, 0, 1),
                },
                FwNetwork {
                    bridge: "berth-bbbb".into(),
                    subnet: "10.201.1.0/24".parse().unwrap(),
                    internal: true,
                    gateway: Ipv4Addr::new(10, 201, 1, 1),
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
