//! `reconcile()`: make the kernel match the desired state again, whatever happened to it (a
//! deleted bridge, a veth pulled off its bridge, a flushed ruleset, a new default route), and
//! report each repair with how long it took.
//!
//! Three steps, as netavark does it: [`observe`] reads the kernel into a plain value, the pure
//! [`diff::diff`] compares it with the desired state and lists repair operations, and `apply`
//! carries them out. Everything that decides is in the diff, tested without root.

pub mod diff;
pub mod observe;

mod apply;

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::Instant;

pub use crate::report::{ReconcileReport, Repair};

use crate::desired::Desired;
use crate::netd::{HostChange, Netd};

impl Netd {
    /// Makes every bridge present, up and addressed, every veth host end on its bridge (an
    /// endpoint whose pair vanished is recreated while its namespace exists), berth's nft table
    /// intact, forwarding on, and drops conntrack entries of masqueraded flows through an egress
    /// address that is no longer the host's egress. Publishes a `HostChange` afterwards.
    pub async fn reconcile(&self) -> ReconcileReport {
        let t0 = Instant::now();
        let mut inner = self.lock().await;
        let state = inner.state.clone();
        let seen = self.observe(&state).await;
        let ops = diff::diff(
            &Desired {
                state: &state,
                last_egress: &inner.last_egress,
                default_mtu: self.cfg.default_mtu,
                table: &self.table,
            },
            &seen,
        );
        let mut rep = ReconcileReport {
            errors: seen.errors.clone(),
            ..ReconcileReport::default()
        };
        self.apply(&mut inner, &seen, ops, &mut rep).await;
        let state = inner.state.clone();
        self.repair_fast_path(&state, &mut rep).await;

        let egress = seen.egress.clone();
        if inner.last_egress != egress {
            let v: Vec<Ipv4Addr> = egress.iter().copied().collect();
            self.store.save_egress(&v);
        }
        inner.last_egress = egress.clone();

        // Subnets against the host as it is now (a LAN or VPN may have come since).
        let ours: BTreeSet<u32> = seen
            .links
            .iter()
            .filter(|l| state.networks.values().any(|n| n.bridge == l.name))
            .map(|l| l.index)
            .collect();
        rep.conflicts = crate::conflicts::find(
            &state,
            &ours,
            &seen.links,
            &seen.routes,
            &seen.addrs,
            &seen.addrs6,
            &seen.routes6,
        );
        rep.conflicts_new = rep
            .conflicts
            .iter()
            .filter(|c| !inner.conflicts.contains(c))
            .cloned()
            .collect();
        rep.conflicts_resolved = inner
            .conflicts
            .iter()
            .filter(|c| !rep.conflicts.contains(c))
            .cloned()
            .collect();
        inner.conflicts = rep.conflicts.clone();

        inner.generation += 1;
        rep.egress = egress.into_iter().collect();
        rep.duration = t0.elapsed();
        let g = inner.generation;
        crate::report::log_report(&rep);
        inner.last_report = Some(rep.clone());
        for r in &rep.repairs {
            if inner.recent_repairs.len() == 256 {
                inner.recent_repairs.pop_front();
            }
            inner.recent_repairs.push_back(r.clone());
        }
        drop(inner);
        self.changes.send_replace(HostChange {
            generation: g,
            egress: rep.egress.clone(),
        });
        let hooks: Vec<_> = self
            .hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        for h in hooks {
            h(&rep);
        }
        rep
    }
}
