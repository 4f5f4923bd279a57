//! Reconcile's part of the fast path: read the kernel (each network's map, the programs on
//! each endpoint's host veth, the bridge FDB's static entries), compare with the endpoints
//! netd holds, repair the difference. A container restarted has a new veth, so a new ifindex
//! for its MAC; a restarted netd finds each network's program again on its veths.

use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;
use std::time::Instant;

use super::{applies_to, attach, fdb, mac_of};
use crate::links;
use crate::names::mac_string;
use crate::netd::Netd;
use crate::report::ReconcileReport;
use crate::state::{Endpoint, NetworkSpec, State};

/// A network, its bridge's index, and its endpoints whose veth is on the bridge, each with the
/// veth's index.
type NetPorts<'a> = (&'a NetworkSpec, u32, Vec<(&'a Endpoint, u32)>);

impl Netd {
    /// Makes every endpoint of a network that takes the fast path present in its map with its
    /// veth's current index, its program attached and its static FDB entry there; drops map
    /// entries of endpoints that are gone. With the fast path switched off, takes netd's
    /// programs off the veths instead.
    pub(crate) async fn repair_fast_path(&self, state: &State, rep: &mut ReconcileReport) {
        if state.endpoints.is_empty() {
            return;
        }
        let host = self.kernel.host();
        let links = match links::list_links(host).await {
            Ok(l) => l,
            Err(e) => {
                rep.errors.push(format!("fast path: {e}"));
                return;
            }
        };
        // Each network's endpoints whose veth is on its bridge, with the veth's index.
        let mut by_net: Vec<NetPorts<'_>> = Vec::new();
        for n in state.networks.values() {
            let Some(br) = links.iter().find(|l| l.name == n.bridge) else {
                continue;
            };
            let eps: Vec<(&Endpoint, u32)> = state
                .endpoints
                .iter()
                .filter(|e| e.network == n.id)
                .filter_map(|e| {
                    links
                        .iter()
                        .find(|l| l.name == e.host_ifname && l.controller == Some(br.index))
                        .map(|l| (e, l.index))
                })
                .collect();
            if !eps.is_empty() {
                by_net.push((n, br.index, eps));
            }
        }
        if self.fast_path.wanted
            && (!self.fast_path.active() || !by_net.iter().any(|(n, ..)| applies_to(n)))
        {
            return;
        }
        let static_fdb: BTreeSet<(u32, [u8; 6], bool)> = match fdb::list_static(host).await {
            Ok(v) => v.into_iter().collect(),
            Err(e) => {
                rep.errors.push(format!("fast path: {e}"));
                return;
            }
        };
        if !self.fast_path.wanted {
            for (_, _, eps) in &by_net {
                for (e, port) in eps {
                    self.take_off(e, *port, &static_fdb, rep).await;
                }
            }
            return;
        }
        for (n, bridge, eps) in by_net.iter().filter(|(n, ..)| applies_to(n)) {
            let ports: Vec<u32> = eps.iter().map(|(_, p)| *p).collect();
            let p = match self.net_program(n, &ports).await {
                Ok(p) => p,
                Err(err) => {
                    rep.errors.push(format!(
                        "fast path of network {}: {}",
                        n.name,
                        crate::report::chain(&err)
                    ));
                    self.fast_path
                        .failed(&format!("the program of network {}", n.name), &err);
                    if !self.fast_path.active() {
                        return;
                    }
                    continue;
                }
            };
            // The map.
            let s = Instant::now();
            let want: BTreeMap<[u8; 6], (u32, &str)> = eps
                .iter()
                .map(|(e, port)| (mac_of(e), (*port, e.host_ifname.as_str())))
                .collect();
            match p.map.entries() {
                Ok(have) => {
                    for (mac, (port, ifname)) in &want {
                        if have.get(mac) != Some(port) {
                            rep.timed(
                                format!(
                                    "fast path: {} -> {ifname} in network {}'s map",
                                    mac_string(mac),
                                    n.name
                                ),
                                s,
                                p.map.set(mac, *port),
                            );
                        }
                    }
                    for mac in have.keys().filter(|m| !want.contains_key(*m)) {
                        rep.timed(
                            format!(
                                "fast path: dropped {} (gone) from network {}'s map",
                                mac_string(mac),
                                n.name
                            ),
                            s,
                            p.map.remove(mac),
                        );
                    }
                }
                Err(e) => rep
                    .errors
                    .push(format!("fast path: reading network {}'s map: {e}", n.name)),
            }
            for (e, port) in eps {
                self.fast_path.record_port(&e.host_ifname, *port);
                // The program on the veth (not a stale one of an older map).
                let s = Instant::now();
                match attach::ours_on(host, *port).await {
                    Ok(Some(f)) if f.info.id == p.id => {}
                    Ok(found) => {
                        let stale = found.map(|f| f.info.id);
                        let r = async {
                            if stale.is_some() {
                                attach::detach(host, *port).await?;
                            }
                            attach::attach(host, p.prog.as_fd(), *port).await
                        }
                        .await;
                        let what = match stale {
                            Some(id) => format!(
                                "fast path: program attached to {} (replacing stale program {id})",
                                e.host_ifname
                            ),
                            None => format!("fast path: program attached to {}", e.host_ifname),
                        };
                        rep.timed(what, s, r);
                    }
                    Err(err) => rep
                        .errors
                        .push(format!("fast path: programs on {}: {err}", e.host_ifname)),
                }
                // The static FDB entry, sticky.
                let mac = mac_of(e);
                if !static_fdb.contains(&(*port, mac, true)) {
                    let s = Instant::now();
                    let r = fdb::add_static(host, *bridge, *port, &mac).await;
                    let how = if static_fdb.contains(&(*port, mac, false)) {
                        "made sticky"
                    } else {
                        "added"
                    };
                    rep.timed(
                        format!(
                            "fast path: static FDB entry {} on {} {how}",
                            mac_string(&mac),
                            e.host_ifname
                        ),
                        s,
                        r,
                    );
                }
            }
        }
    }

    /// Takes one veth off the fast path (switched off): netd's program, the endpoint's static
    /// FDB entry (the bridge learns and ages the MAC again), and the ingress qdisc when it
    /// holds no other filter.
    async fn take_off(
        &self,
        e: &Endpoint,
        port: u32,
        static_fdb: &BTreeSet<(u32, [u8; 6], bool)>,
        rep: &mut ReconcileReport,
    ) {
        let host = self.kernel.host();
        let s = Instant::now();
        if let Ok(Some(_)) = attach::ours_on(host, port).await {
            let r = async {
                attach::detach(host, port).await?;
                attach::remove_empty_ingress(host, port).await
            }
            .await;
            rep.timed(
                format!("fast path off: program detached from {}", e.host_ifname),
                s,
                r,
            );
        }
        let mac = mac_of(e);
        if static_fdb.iter().any(|(p, m, _)| *p == port && *m == mac) {
            let s = Instant::now();
            rep.timed(
                format!(
                    "fast path off: static FDB entry {} removed from {}",
                    mac_string(&mac),
                    e.host_ifname
                ),
                s,
                fdb::remove_static(host, port, &mac).await,
            );
        }
    }
}
