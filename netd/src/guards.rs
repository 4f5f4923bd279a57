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
