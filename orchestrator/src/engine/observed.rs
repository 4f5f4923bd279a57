//! A snapshot of what runs for one project, as the planner sees it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Lifecycle state of an observed container, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running,
    Paused,
    Exited(i32),
}

/// One existing container of the project, read back from its labels and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub number: u32,
    pub config_hash: String,
    pub image_id: Option<String>,
    pub oneoff: bool,
    pub state: ContainerState,
    /// Its anonymous volumes by target path (what a recreate hands to the new container).
    pub anonymous_volumes: BTreeMap<String, String>,
    /// Id of the container whose network namespace it shares (`network_mode: service:X`).
    pub network_from: Option<String>,
    /// Networks it has an endpoint on (netd's state, which netd's reconcile holds to what
    /// is in the container's namespace); `None` when it has no namespace of its own.
    pub attached: Option<BTreeSet<String>>,
    /// What a crash left wrong with it beyond its networks (see [`wiring_defects`]); any
    /// entry makes `up` recreate it.
    pub defects: Vec<String>,
}

/// Everything of one project that exists now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Observed {
    pub containers: Vec<ObservedContainer>,
    /// Names of the networks that exist (berth-level names, e.g. `lnmp_default`).
    pub networks: BTreeSet<String>,
    /// Names of the volumes that exist.
    pub volumes: BTreeSet<String>,
    /// Image ids the desired services resolve to now, by service (absent: not in the store yet).
    pub images: BTreeMap<String, String>,
}

impl Observed {
    /// The project's non-one-off containers of `service`, sorted by replica number.
    pub fn service_containers(&self, service: &str) -> Vec<&ObservedContainer> {
        let mut out: Vec<&ObservedContainer> = self
            .containers
            .iter()
            .filter(|c| c.service == service && !c.oneoff)
            .collect();
        out.sort_by_key(|c| c.number);
        out
    }
}

/// What observe found of one container's wiring, beside its labels.
#[derive(Debug, Clone, Default)]
pub struct Wiring<'a> {
    /// Its creation never finished (its creator died, or gave up, half-way).
    pub half_made: bool,
    /// Networks it has an endpoint on.
    pub attached: BTreeSet<String>,
    /// Networks whose embedded DNS holds its names.
    pub named: BTreeSet<String>,
    /// Its /etc/resolv.conf as written in its dir.
    pub resolv_conf: Option<&'a str>,
    /// The DNS servers of its attached networks (their gateways).
    pub dns_servers: Vec<IpAddr>,
}

/// The defects of a container's wiring that only a recreate repairs: a half-made container,
/// an attached network whose DNS lacks its names, a resolv.conf that names none of its
/// networks' DNS servers (never written: still the host's). Sorted, one line each.
pub fn wiring_defects(w: &Wiring<'_>) -> Vec<String> {
    let mut out = Vec::new();
    if w.half_made {
        out.push("its creation never finished".to_string());
    }
    for net in w.attached.difference(&w.named) {
        out.push(format!("no DNS names on network {net}"));
    }
    if !w.attached.is_empty() && !w.dns_servers.is_empty() {
        let servers: BTreeSet<IpAddr> = w
            .resolv_conf
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix("nameserver"))
            .filter_map(|a| a.trim().parse().ok())
            .collect();
        if !w.dns_servers.iter().any(|s| servers.contains(s)) {
            out.push("its /etc/resolv.conf does not use its networks' DNS".to_string());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_wired_container_has_no_defects() {
        let w = Wiring {
            attached: set(&["p_default"]),
            named: set(&["p_default"]),
            resolv_conf: Some("search lan\nnameserver 10.89.0.1\noptions ndots:0\n"),
            dns_servers: vec!["10.89.0.1".parse().expect("ip")],
            ..Wiring::default()
        };
        assert!(wiring_defects(&w).is_empty(), "{:?}", wiring_defects(&w));
    }

    #[test]
    fn crash_leftovers_are_named() {
        let w = Wiring {
            half_made: true,
            attached: set(&["p_back", "p_front"]),
            named: set(&["p_front"]),
            resolv_conf: Some("nameserver 192.168.1.1\n"),
            dns_servers: vec!["10.89.0.1".parse().expect("ip")],
        };
        assert_eq!(
            wiring_defects(&w),
            [
                "its creation never finished",
                "no DNS names on network p_back",
                "its /etc/resolv.conf does not use its networks' DNS"
            ]
        );
        // Not attached anywhere (network_mode none): nothing to compare the files with.
        let none = Wiring {
            resolv_conf: Some("nameserver 192.168.1.1\n"),
            ..Wiring::default()
        };
        assert!(wiring_defects(&none).is_empty());
    }
}
