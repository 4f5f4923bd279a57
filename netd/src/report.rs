//! What one reconcile did, for callers (`berth events`, the DNS part's hooks) and the log:
//! the repairs it made with their durations, what it could not repair, and what it saw.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::conflicts::SubnetConflict;

/// One thing reconcile fixed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repair {
    /// What was wrong and what was done.
    pub what: String,
    /// Time the repair took.
    pub duration: Duration,
}

/// The outcome of one reconcile.
#[derive(Debug, Clone, Default)]
pub struct ReconcileReport {
    /// Repairs, in the order made.
    pub repairs: Vec<Repair>,
    /// What could not be repaired.
    pub errors: Vec<String>,
    /// Whole reconcile time.
    pub duration: Duration,
    /// Egress addresses found.
    pub egress: Vec<Ipv4Addr>,
    /// Networks whose subnet overlaps a host route or address that is not berth's, as the
    /// host is now (a LAN or VPN that came after the network). Not an error: reconcile has
    /// nothing to repair, the user has to choose another subnet; kept apart so `errors` stays
    /// "what reconcile could not repair".
    pub conflicts: Vec<SubnetConflict>,
    /// Conflicts that were not there at the previous reconcile (warned about once).
    pub conflicts_new: Vec<SubnetConflict>,
    /// Conflicts of the previous reconcile that are gone.
    pub conflicts_resolved: Vec<SubnetConflict>,
}

impl ReconcileReport {
    /// Records the outcome of a repair that started at `start`: a repair when it worked, an
    /// error naming `what` when it did not.
    pub(crate) fn timed<T, E: std::fmt::Display>(
        &mut self,
        what: String,
        start: Instant,
        r: Result<T, E>,
    ) {
        match r {
            Ok(_) => self.repairs.push(Repair {
                what,
                duration: start.elapsed(),
            }),
            Err(e) => self.errors.push(format!("{what}: {e}")),
        }
    }
}

/// An error with its sources, for a log line.
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

/// Logs a report: each repair and each error, and subnet conflicts only when they change.
pub(crate) fn log_report(r: &ReconcileReport) {
    for rep in &r.repairs {
        tracing::info!(repair = %rep.what, took_us = rep.duration.as_micros() as u64, "reconcile repaired");
    }
    for e in &r.errors {
        tracing::warn!(error = %e, "reconcile could not repair");
    }
    // Only changes: the 30 s backstop must not repeat a standing conflict.
    for c in &r.conflicts_new {
        tracing::warn!(network = %c.network, subnet = %c.subnet, host = %c.host, interface = %c.interface, "{c}");
    }
    for c in &r.conflicts_resolved {
        tracing::info!(network = %c.network, subnet = %c.subnet, host = %c.host, interface = %c.interface, "subnet conflict gone");
    }
}
