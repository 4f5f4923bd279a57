//! Talking to nftables: typed rule building blocks (expressions, statements, chains and rules
//! of the `nftables` crate's JSON schema), the chains berth's tables hold, the fingerprint
//! reconcile compares, and running `nft` itself. Family-neutral: [`crate::firewall`] builds
//! berth's rulesets from these for `ip` and `ip6` alike.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

use nftables::expr::{
    CT, Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
};
use nftables::schema::{Chain, NfCmd, NfListObject, NfObject, Nftables, Rule, Table};
use nftables::stmt::{Accept, Drop, Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

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
