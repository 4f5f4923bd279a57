//! Reconcile's last step: carry out the repairs the diff asked for, in order, timing each
//! and reporting what worked and what did not. Repairs of an endpoint whose bridge could not
//! be repaired are skipped; repairs inside containers run a few namespaces at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use futures::StreamExt;

use crate::firewall;
use crate::links;
use crate::netd::{Inner, Netd, NetdError};
use crate::netns::Netns;
use crate::report::{ReconcileReport, Repair};
use crate::state::Endpoint;

use super::diff::RepairOp;
use super::observe::Observed;

/// What one repair inside a container said: its text, when it started, and whether it had
/// to change anything.
type InsideOutcome = (String, Instant, Result<bool, NetdError>);

impl Netd {
    /// Runs `ops` (from [`super::diff::diff`] over `seen`) against the kernel and the state
    /// in `inner`, recording each in `rep`.
    pub(crate) async fn apply(
        &self,
        inner: &mut Inner,
        seen: &Observed,
        ops: Vec<RepairOp>,
        rep: &mut ReconcileReport,
    ) {
        // Bridge indexes as seen, then as repaired; bridges whose repair failed.
        let mut bridges: BTreeMap<String, u32> = seen
            .links
            .iter()
            .map(|l| (l.name.clone(), l.index))
            .collect();
        let mut failed: BTreeSet<String> = BTreeSet::new();
        let mut ops = ops.into_iter().peekable();
        while let Some(op) = ops.next() {
            if op
                .needs_bridge()
                .is_some_and(|n| failed.contains(&n.bridge))
            {
                continue;
            }
            if op.inside().is_some() {
                let mut group = vec![op];
                while let Some(next) = ops.next_if(|o| o.inside().is_some()) {
                    group.push(next);
                }
                group.retain(|o| o.needs_bridge().is_none_or(|n| !failed.contains(&n.bridge)));
                self.apply_inside(group, rep).await;
                continue;
            }
            if let RepairOp::Forget { endpoint } = op {
                let mut stale = vec![endpoint];
                while let Some(RepairOp::Forget { endpoint }) =
                    ops.next_if(|o| matches!(o, RepairOp::Forget { .. }))
                {
                    stale.push(endpoint);
                }
                self.forget(inner, &stale, rep).await;
                continue;
            }
            let s = Instant::now();
            let what = op.to_string();
            match op {
                RepairOp::Bridge { network, .. } => {
                    let r = self.ensure_bridge(&network).await;
                    match &r {
                        Ok((i, _)) => {
                            bridges.insert(network.bridge.clone(), *i);
                        }
                        Err(_) => {
                            failed.insert(network.bridge.clone());
                        }
                    }
                    rep.timed(what, s, r);
                }
                RepairOp::Veth {
                    endpoint: e,
                    network: n,
                    index,
                    ..
                } => {
                    let Some(&br) = bridges.get(&n.bridge) else {
                        continue;
                    };
                    let r = async {
                        links::set_controller(self.kernel.host(), index, br, &e.host_ifname)
                            .await?;
                        // A port put back on its bridge starts with the bridge's defaults.
                        if n.options.no_icc {
                            links::set_isolated(self.kernel.host(), index, &e.host_ifname, true)
                                .await?;
                        }
                        if !e.ports.is_empty() {
                            links::set_hairpin(self.kernel.host(), &e.host_ifname).await?;
                        }
                        Ok::<_, links::LinkError>(())
                    }
                    .await;
                    rep.timed(what, s, r);
                }
                RepairOp::RecreateVeth {
                    endpoint: e,
                    network: n,
                } => {
                    let r = async {
                        let (ns, cont) = self.kernel.enter(&e.netns.path()).await?;
                        self.create_endpoint(&cont, &ns, &e, &n, true).await
                    }
                    .await;
                    rep.timed(what, s, r);
                }
                RepairOp::Mtu {
                    network: n,
                    to,
                    endpoints,
                    ..
                } => {
                    let r = async {
                        for e in &endpoints {
                            let (_, cont) = self.kernel.enter(&e.netns.path()).await?;
                            links::set_mtu(&cont, &e.ifname, to).await?;
                            links::set_mtu(self.kernel.host(), &e.host_ifname, to).await?;
                        }
                        links::set_mtu(self.kernel.host(), &n.bridge, to).await?;
                        Ok::<_, NetdError>(())
                    }
                    .await;
                    rep.timed(what, s, r);
                }
                RepairOp::Gso { endpoints, to, .. } => {
                    // Both ends, the container's first (it is the sender).
                    let r = async {
                        for e in &endpoints {
                            let (_, cont) = self.kernel.enter(&e.netns.path()).await?;
                            links::set_gso_ipv4_max_size(&cont, &e.ifname, to).await?;
                            links::set_gso_ipv4_max_size(self.kernel.host(), &e.host_ifname, to)
                                .await?;
                        }
                        Ok::<_, NetdError>(())
                    }
                    .await;
                    rep.timed(what, s, r);
                }
                RepairOp::Firewall {
                    table,
                    ip6,
                    rules,
                    rules6,
                    ..
                } => {
                    let both = ip6 != super::diff::TableDrift::Intact;
                    let r = self
                        .kernel
                        .run_host(move || {
                            if both {
                                crate::firewall::apply_with6_in(&table, &rules, &rules6)
                            } else {
                                firewall::apply_in(&table, &rules)
                            }
                        })
                        .await
                        .map_err(NetdError::from)
                        .and_then(|r| r.map_err(NetdError::from));
                    rep.timed(what, s, r);
                }
                RepairOp::Sysctl(switch) => {
                    let r = self
                        .kernel
                        .run_host(move || crate::sysctl::write(switch.path(), "1"))
                        .await
                        .map_err(NetdError::from)
                        .and_then(|r| r.map_err(NetdError::from));
                    rep.timed(what, s, r);
                }
                RepairOp::DockerUser { family, named } => {
                    let table = self.table.clone();
                    let r = self
                        .kernel
                        .run_host(move || {
                            firewall::sync_docker_user_family_in(family, &table, true, &named)
                        })
                        .await
                        .map_err(NetdError::from)
                        .and_then(|r| r.map_err(NetdError::from));
                    rep.timed(what, s, r);
                }
                RepairOp::FlushConntrack { addr } => {
                    let r = self
                        .kernel
                        .run_host(move || flush_conntrack(addr))
                        .await
                        .map_err(NetdError::from)
                        .and_then(|r| r);
                    let what = match &r {
                        Ok(n) => format!(
                            "egress address {addr} went away: flushed {n} masqueraded conntrack entries"
                        ),
                        Err(_) => what,
                    };
                    rep.timed(what, s, r);
                }
                RepairOp::RecreateInside { .. }
                | RepairOp::RestoreInside { .. }
                | RepairOp::RestoreInside6 { .. }
                | RepairOp::Forget { .. } => {}
            }
        }
    }

    /// Forgets endpoints whose namespace is gone (one state write for all).
    async fn forget(&self, inner: &mut Inner, stale: &[Endpoint], rep: &mut ReconcileReport) {
        let s = Instant::now();
        inner.state.endpoints.retain(|e| !stale.contains(e));
        for e in stale {
            self.fast_path_remove(e).await;
            inner.removals.push(e);
            // The veth dies with its namespace, but not always at once.
            self.queue_delete(e).await;
        }
        let ops = stale
            .iter()
            .map(|e| crate::state_journal::Op::EndpointGone(e.host_ifname.clone()))
            .collect();
        match self.store.save_change(&inner.state, ops) {
            Ok(()) => {
                for e in stale {
                    rep.repairs.push(Repair {
                        what: RepairOp::Forget {
                            endpoint: e.clone(),
                        }
                        .to_string(),
                        duration: s.elapsed(),
                    });
                }
            }
            Err(err) => rep
                .errors
                .push(format!("forgetting stale endpoints: {err}")),
        }
    }

    /// Repairs inside container namespaces: one netlink connection per namespace, a few
    /// namespaces at a time.
    async fn apply_inside(&self, ops: Vec<RepairOp>, rep: &mut ReconcileReport) {
        let mut by_ns: BTreeMap<PathBuf, Vec<RepairOp>> = BTreeMap::new();
        for op in ops {
            if let Some(p) = op.inside() {
                by_ns.entry(p).or_default().push(op);
            }
        }
        let done = futures::stream::iter(by_ns)
            .map(|(path, ops)| self.repair_namespace(path, ops))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        for (what, s, r) in done.into_iter().flatten() {
            match r {
                Ok(false) => {}
                Ok(true) => rep.timed(what, s, Ok::<_, NetdError>(())),
                Err(e) => rep.timed::<(), _>(what, s, Err(e)),
            }
        }
    }

    /// The repairs inside one namespace, in order.
    async fn repair_namespace(&self, path: PathBuf, ops: Vec<RepairOp>) -> Vec<InsideOutcome> {
        let s = Instant::now();
        let ns = match Netns::open(&path) {
            Ok(ns) => ns,
            // Gone since it was read: the next reconcile forgets it.
            Err(_) => return Vec::new(),
        };
        let cont = match self.kernel.connect(&ns).await {
            Ok(c) => c,
            Err(e) => {
                return vec![(
                    format!("inspecting namespace {}", path.display()),
                    s,
                    Err(e.into()),
                )];
            }
        };
        let mut out = Vec::new();
        for op in ops {
            let s = Instant::now();
            let what = op.to_string();
            let r = match op {
                RepairOp::RecreateInside {
                    endpoint: e,
                    network: n,
                } => async {
                    links::delete_link(self.kernel.host(), &e.host_ifname).await?;
                    self.create_endpoint(&cont, &ns, &e, &n, true).await
                }
                .await
                .map(|()| true),
                RepairOp::RestoreInside {
                    endpoint: e,
                    network: n,
                    fix_lo,
                    ..
                } => {
                    async {
                        links::configure_container_side(
                            &cont,
                            &e.ifname,
                            e.address,
                            n.subnet.prefix(),
                            e.default_route.then_some(n.gateway),
                            fix_lo,
                        )
                        .await?;
                        // A link that went down lost its IPv6 addresses with it.
                        self.configure_inside6(&cont, &e, &n).await?;
                        crate::netd::add_link_local(&cont, &e).await?;
                        self.apply_sysctls(&ns, &e).await?;
                        Ok(true)
                    }
                    .await
                }
                RepairOp::RestoreInside6 {
                    endpoint: e,
                    network: n,
                } => self.configure_inside6(&cont, &e, &n).await,
                _ => continue,
            };
            out.push((what, s, r));
        }
        out
    }
}

/// Deletes conntrack entries of masqueraded flows whose NAT address is `addr` (blocking; run in
/// the host namespace). Returns how many the tool says it deleted. (The conntrack tool exits 1
/// when nothing matched, so its count line is what tells success.)
fn flush_conntrack(addr: Ipv4Addr) -> Result<u64, NetdError> {
    let out = Command::new("conntrack")
        .args(["-D", "--src-nat", "--reply-dst", &addr.to_string()])
        .output()
        .map_err(|source| NetdError::Conntrack {
            addr,
            detail: "cannot run it (is the conntrack package installed?)".into(),
            source: Some(source),
        })?;
    let text = String::from_utf8_lossy(&out.stderr);
    deleted_count(&text).ok_or_else(|| NetdError::Conntrack {
        addr,
        detail: text.trim().to_string(),
        source: None,
    })
}

/// The N of conntrack's "N flow entries have been deleted."
fn deleted_count(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1] == "flow")
        .and_then(|w| w[0].parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn conntrack_count_line() {
        let t = "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.";
        assert_eq!(super::deleted_count(t), Some(3));
        assert_eq!(super::deleted_count("conntrack: invalid option"), None);
    }
}
