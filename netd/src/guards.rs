//! What is reachable from outside the host, decided in the `raw` prerouting chain of berth's
//! `ip` and `ip6` tables: before conntrack and before any table's DNAT, so neither a DNAT nor
//! `route_localnet` can open a path these rules close. A published port is unaffected: at that
//! point its packets are still addressed to the host, and DNAT sends them to the container
//! afterwards.

use nftables::expr::{Expression, MetaKey, NamedExpression, Prefix};
use nftables::stmt::{Operator, Statement};

use crate::nft::{drop_, eq, field, m, meta, s};

/// The `raw` rule that drops packets for 127.0.0.0/8 which did not come in on `lo`. The
/// kernel treats them as martians except on interfaces with `route_localnet` (berth's
/// bridges, for publications on 127.0.0.1) and except when a DNAT rewrote the destination
/// first (a published port reached at 127.0.0.1 from another machine). Nothing legitimate
/// arrives so: the host's own connections to 127.0.0.1 are translated in `output`, and the
/// replies of the containers they reach are still addressed to the gateway here (conntrack
/// restores 127.0.0.1 after this chain).
pub fn loopback_guard() -> (&'static str, Vec<Statement<'static>>) {
    (
        "raw",
        vec![
            eq(
                field("ip", "daddr"),
                Expression::Named(NamedExpression::Prefix(Prefix {
                    addr: Box::new(s("127.0.0.0")),
                    len: 8,
                })),
            ),
            m(meta(MetaKey::Iifname), Operator::NEQ, s("lo")),
            drop_(),
        ],
    )
}

/// The `raw` rule that keeps a network's subnet (its containers and its gateway address)
/// out of reach of everything but its own bridge and the host itself (`lo`: the host's
/// packets to its own gateway address loop through it). A LAN neighbour routing the subnet
/// through this host, or a container of another network, is dropped before conntrack;
/// published ports still work because their packets are addressed to the host here, and
/// DNAT sends them to the container after this chain.
pub fn subnet_guard(
    family: &'static str,
    bridge: &str,
    subnet: Expression<'static>,
) -> (&'static str, Vec<Statement<'static>>) {
    (
        "raw",
        vec![
            eq(field(family, "daddr"), subnet),
            m(meta(MetaKey::Iifname), Operator::NEQ, s(bridge.to_string())),
            m(meta(MetaKey::Iifname), Operator::NEQ, s("lo")),
            drop_(),
        ],
    )
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::firewall::{FwPort, Ruleset, expected, rules};
    use crate::ports::Protocol;

    /// The firewall tests' ruleset without its published port.
    fn rs() -> Ruleset {
        Ruleset {
            ports: Vec::new(),
            ..crate::firewall::tests::rs()
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
            !rules(&Ruleset::<crate::firewall::V4>::default())
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

    const GOLDEN_LOOPBACK: &str = r#"[{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"127.0.0.0","len":8}},"op":"=="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"lo","op":"!="}},{"drop":{}}]"#;
    const GOLDEN_SUBNET: &str = r#"[{"match":{"left":{"payload":{"protocol":"ip","field":"daddr"}},"right":{"prefix":{"addr":"SUBNET","len":24}},"op":"=="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"BRIDGE","op":"!="}},{"match":{"left":{"meta":{"key":"iifname"}},"right":"lo","op":"!="}},{"drop":{}}]"#;
}
