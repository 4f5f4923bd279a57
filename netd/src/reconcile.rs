//! `reconcile()`: make the kernel match the desired state again, whatever happened to it
//! (a deleted bridge, a veth pulled off its bridge, a flushed ruleset, a new default route),
//! and report each repair with how long it took.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::firewall;
use crate::links;
use crate::netd::{HostChange, Netd, NetdError};
use crate::netns::Netns;
use crate::state::{Endpoint, NetworkSpec};
use futures::StreamExt;

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
    pub conflicts: Vec<crate::conflicts::SubnetConflict>,
    /// Conflicts that were not there at the previous reconcile (warned about once).
    pub conflicts_new: Vec<crate::conflicts::SubnetConflict>,
    /// Conflicts of the previous reconcile that are gone.
    pub conflicts_resolved: Vec<crate::conflicts::SubnetConflict>,
}

impl ReconcileReport {
    pub(crate) fn timed<T>(&mut self, what: String, start: Instant, r: Result<T, NetdError>) {
        match r {
            Ok(_) => self.repairs.push(Repair {
                what,
                duration: start.elapsed(),
            }),
            Err(e) => self.errors.push(format!("{what}: {e}")),
        }
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

impl Netd {
    /// Checks, inside one container namespace, each endpoint's interface (present, up, its
    /// address), its default route and loopback, and repairs what drifted (someone ran
    /// `ip addr flush eth0` or `ip route del default` in the container). An interface that
    /// vanished while its host end lives (renamed or moved away) is recreated. Returns, per
    /// endpoint that needed something, what was done, when it started, and the outcome.
    async fn repair_inside(
        &self,
        path: std::path::PathBuf,
        eps: Vec<(Endpoint, NetworkSpec)>,
    ) -> Vec<(String, Instant, Result<bool, NetdError>)> {
        let s = Instant::now();
        let ns = match Netns::open(&path) {
            Ok(ns) => ns,
            // Gone between the checks: the next reconcile forgets it.
            Err(_) => return Vec::new(),
        };
        let looked = async {
            let cont = self.worker.connect(Some(&ns)).await?;
            let l = links::list_links(&cont).await?;
            let a = links::list_addrs(&cont).await?;
            let r = links::list_routes(&cont).await?;
            Ok::<_, NetdError>((cont, l, a, r))
        }
        .await;
        let (cont, cl, ca, cr) = match looked {
            Ok(x) => x,
            Err(e) => {
                return vec![(
                    format!("inspecting namespace {}", path.display()),
                    s,
                    Err(e),
                )];
            }
        };
        let mut out = Vec::new();
        let lo_down = cl.iter().any(|l| l.index == 1 && !l.up);
        for (i, (e, n)) in eps.iter().enumerate() {
            let s = Instant::now();
            let Some(l) = cl.iter().find(|l| l.name == e.ifname) else {
                let r = async {
                    links::delete_link(&self.host, &e.host_ifname).await?;
                    self.create_endpoint(&cont, &ns, e, n, true).await
                }
                .await
                .map(|()| true);
                out.push((
                    format!(
                        "{} of container {} was gone from its namespace: veth {} recreated",
                        e.ifname, e.container, e.host_ifname
                    ),
                    s,
                    r,
                ));
                continue;
            };
            let mut wrong = Vec::new();
            if !l.up {
                wrong.push("was down");
            }
            if !ca.iter().any(|a| a.index == l.index && a.ip == e.address) {
                wrong.push("had lost its address");
            }
            let want_default = e.default_route.then_some(n.gateway);
            if let Some(gw) = want_default
                && !cr
                    .iter()
                    .any(|r| r.dst.prefix() == 0 && r.gateway == Some(gw))
            {
                wrong.push("had lost the default route");
            }
            let fix_lo = lo_down && i == 0;
            if fix_lo {
                wrong.push("had loopback down");
            }
            if wrong.is_empty() {
                // IPv6 alone (its address or default route went).
                if e.address6.is_some() {
                    let r = self.configure_inside6(&cont, e, n).await;
                    if !matches!(r, Ok(false)) {
                        out.push((
                            format!(
                                "{} ({:?}) of container {} had lost its IPv6 address or route: restored",
                                e.ifname, e.address6, e.container
                            ),
                            s,
                            r,
                        ));
                    }
                }
                continue;
            }
            let r = async {
                links::configure_container_side(
                    &cont,
                    &e.ifname,
                    e.address,
                    n.subnet.prefix(),
                    want_default,
                    fix_lo,
                )
                .await?;
                // A link that went down lost its IPv6 addresses with it.
                self.configure_inside6(&cont, e, n).await?;
                Ok(true)
            }
            .await;
            out.push((
                format!(
                    "{} ({}) of container {} {}: restored",
                    e.ifname,
                    e.address,
                    e.container,
                    wrong.join(", ")
                ),
                s,
                r,
            ));
        }
        out
    }

    /// Makes every bridge present, up and addressed, every veth host end on its bridge (an
    /// endpoint whose pair vanished is recreated while its namespace exists), berth's nft table
    /// intact, forwarding on, and drops conntrack entries of masqueraded flows through an egress
    /// address that is no longer the host's egress. Publishes a `HostChange` afterwards.
    pub async fn reconcile(&self) -> ReconcileReport {
        let t0 = Instant::now();
        let mut rep = ReconcileReport::default();
        let mut inner = self.lock().await;
        let state = inner.state.clone();

        // Bridges.
        let mut bridge_idx: BTreeMap<String, u32> = BTreeMap::new();
        let links_now = match links::list_links(&self.host).await {
            Ok(l) => l,
            Err(e) => {
                rep.errors.push(e.to_string());
                Vec::new()
            }
        };
        let by_name: BTreeMap<&str, &links::Link> =
            links_now.iter().map(|l| (l.name.as_str(), l)).collect();
        let addrs = links::list_addrs(&self.host).await.unwrap_or_default();
        let addrs6 = if state.networks.values().any(|n| n.gateway6.is_some()) {
            links::list_addrs6(&self.host).await.unwrap_or_default()
        } else {
            Vec::new()
        };
        for n in state.networks.values() {
            let cur = by_name.get(n.bridge.as_str());
            let ok = cur.is_some_and(|l| {
                l.up && addrs
                    .iter()
                    .any(|a| a.index == l.index && a.ip == n.gateway)
                    && n.gateway6
                        .is_none_or(|g6| addrs6.iter().any(|a| a.index == l.index && a.ip == g6))
            });
            if ok {
                if let Some(l) = cur {
                    bridge_idx.insert(n.bridge.clone(), l.index);
                }
                continue;
            }
            let s = Instant::now();
            let what = match cur {
                None => format!(
                    "bridge {} of network {} was missing: recreated",
                    n.bridge, n.name
                ),
                Some(l) if !l.up => {
                    format!("bridge {} of network {} was down: set up", n.bridge, n.name)
                }
                Some(_) => format!(
                    "bridge {} of network {} lost its address: re-added",
                    n.bridge, n.name
                ),
            };
            let r = self.ensure_bridge(n).await;
            if let Ok((i, _)) = &r {
                bridge_idx.insert(n.bridge.clone(), *i);
            }
            rep.timed(what, s, r);
        }

        // Endpoints. One whose namespace is gone (its container died without a detach) took
        // its veth with it: it is forgotten, not recreated.
        let mut stale = Vec::new();
        let mut inside: Vec<(Endpoint, NetworkSpec)> = Vec::new();
        for e in &state.endpoints {
            let Some(n) = state.networks.get(&e.network) else {
                continue;
            };
            if !e.netns.path().exists() {
                stale.push(e.clone());
                continue;
            }
            let Some(&br) = bridge_idx.get(&n.bridge) else {
                continue;
            };
            match by_name.get(e.host_ifname.as_str()) {
                Some(l) if l.controller == Some(br) && l.up => inside.push((e.clone(), n.clone())),
                Some(l) => {
                    let s = Instant::now();
                    let r = links::set_controller(&self.host, l.index, br, &e.host_ifname)
                        .await
                        .map_err(NetdError::from);
                    let what = if l.controller == Some(br) {
                        format!(
                            "veth {} of container {} on bridge {} was down: set up",
                            e.host_ifname, e.container, n.bridge
                        )
                    } else {
                        format!(
                            "veth {} of container {} was off bridge {}: re-attached",
                            e.host_ifname, e.container, n.bridge
                        )
                    };
                    rep.timed(what, s, r);
                    inside.push((e.clone(), n.clone()));
                }
                None => {
                    let s = Instant::now();
                    let r = async {
                        let ns = Netns::open(&e.netns.path())?;
                        let cont = self.worker.connect(Some(&ns)).await?;
                        self.create_endpoint(&cont, &ns, e, n, true).await
                    }
                    .await;
                    rep.timed(
                        format!(
                            "veth {} of container {} on network {} was missing: recreated",
                            e.host_ifname, e.container, n.name
                        ),
                        s,
                        r,
                    );
                }
            }
        }

        // Inside the containers: the endpoint up with its address, the default route, lo up.
        // One netlink connection per namespace, a few namespaces at a time.
        let mut by_ns: BTreeMap<std::path::PathBuf, Vec<(Endpoint, NetworkSpec)>> = BTreeMap::new();
        for (e, n) in inside {
            by_ns.entry(e.netns.path()).or_default().push((e, n));
        }
        let checks = futures::stream::iter(by_ns)
            .map(|(path, eps)| self.repair_inside(path, eps))
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        for (what, s, r) in checks.into_iter().flatten() {
            match r {
                Ok(false) => {}
                Ok(true) => rep.timed(what, s, Ok(())),
                Err(e) => rep.timed::<()>(what, s, Err(e)),
            }
        }

        // MTU follows the egress interface for networks that did not set one (a VPN or a
        // different uplink can change it).
        if state.networks.values().any(|n| n.mtu.is_none()) {
            let want = self.egress_mtu().await.unwrap_or(0);
            for n in state.networks.values().filter(|n| n.mtu.is_none()) {
                let Some(br) = by_name.get(n.bridge.as_str()) else {
                    continue;
                };
                if want == 0 || br.mtu == want {
                    continue;
                }
                let s = Instant::now();
                let r = async {
                    for e in state.endpoints_of(&n.id) {
                        if stale.contains(e) {
                            continue;
                        }
                        let ns = Netns::open(&e.netns.path())?;
                        let cont = self.worker.connect(Some(&ns)).await?;
                        links::set_mtu(&cont, &e.ifname, want).await?;
                        links::set_mtu(&self.host, &e.host_ifname, want).await?;
                    }
                    links::set_mtu(&self.host, &n.bridge, want).await?;
                    Ok::<_, NetdError>(())
                }
                .await;
                rep.timed(
                    format!(
                        "network {} MTU {} did not follow the egress interface: set to {want}",
                        n.name, br.mtu
                    ),
                    s,
                    r,
                );
            }
        }

        // IPv4 GSO size of egress networks' veths: BIG TCP only while every uplink takes it.
        self.sync_egress_gso(&state, &links_now, &stale, &mut rep)
            .await;

        let mut state = state;
        if !stale.is_empty() {
            let s = Instant::now();
            inner.state.endpoints.retain(|e| !stale.contains(e));
            for e in &stale {
                // The veth dies with its namespace, but not always at once.
                let _ = links::delete_link(&self.host, &e.host_ifname).await;
            }
            match self.store.save(&inner.state) {
                Ok(()) => {
                    for e in &stale {
                        rep.repairs.push(Repair {
                            what: format!(
                                "namespace {} of container {} is gone: endpoint {} forgotten",
                                e.netns.path().display(),
                                e.container,
                                e.host_ifname
                            ),
                            duration: s.elapsed(),
                        });
                    }
                }
                Err(err) => rep
                    .errors
                    .push(format!("forgetting stale endpoints: {err}")),
            }
            state = inner.state.clone();
        }

        // Firewall and forwarding.
        if !state.networks.is_empty() {
            let rs = Self::ruleset(&state);
            let want = firewall::expected(&rs);
            let rs6 = Self::ruleset6(&state);
            let want6 = crate::firewall6::expected6(&rs6);
            let s = Instant::now();
            let table = self.table.clone();
            let r = self
                .worker
                .run(None, move || -> Result<Option<String>, NetdError> {
                    let mut what = Vec::new();
                    let seen = firewall::observed_in(&table)?;
                    let seen6 = match &want6 {
                        Some(_) => crate::firewall6::observed6_in(&table)?,
                        None => None,
                    };
                    let v4_bad = seen.as_ref() != Some(&want);
                    let v6_bad = seen6 != want6;
                    if v6_bad {
                        crate::firewall6::apply_with6_in(&table, &rs, &rs6)?;
                    } else if v4_bad {
                        firewall::apply_in(&table, &rs)?;
                    }
                    if v4_bad {
                        what.push(match seen {
                            None => format!("nft table ip {table} was missing: restored"),
                            Some(f) => format!(
                                "nft table ip {table} differed ({} chains/{} rules, want {}/{}): rewritten",
                                f.chains.len(),
                                f.rules.len(),
                                want.chains.len(),
                                want.rules.len()
                            ),
                        });
                    }
                    if v6_bad {
                        what.push(match seen6 {
                            None => format!("nft table ip6 {table} was missing: restored"),
                            Some(_) => format!("nft table ip6 {table} differed: rewritten"),
                        });
                    }
                    if want6.is_some()
                        && crate::netd::write_sysctl("net/ipv6/conf/all/forwarding", "1")?
                    {
                        what.push("net.ipv6.conf.all.forwarding was 0: set to 1".into());
                    }
                    if firewall::sync_docker_user_in(&table, true)? {
                        what.push("DOCKER-USER accept for berth bridges: restored".into());
                    }
                    if want6.is_some()
                        && firewall::sync_docker_user_family_in("ip6", &table, true)?
                    {
                        what.push("ip6 DOCKER-USER accept for berth bridges: restored".into());
                    }
                    if crate::netd::write_sysctl("net/ipv4/ip_forward", "1")? {
                        what.push("net.ipv4.ip_forward was 0: set to 1".into());
                    }
                    Ok((!what.is_empty()).then(|| what.join("; ")))
                })
                .await
                .map_err(NetdError::from)
                .and_then(|r| r);
            match r {
                Ok(Some(what)) => rep.repairs.push(Repair {
                    what,
                    duration: s.elapsed(),
                }),
                Ok(None) => {}
                Err(e) => rep.errors.push(format!("firewall: {e}")),
            }
        }

        // Egress addresses and stale NAT flows.
        let routes = links::list_routes(&self.host).await.unwrap_or_default();
        let addrs = links::list_addrs(&self.host).await.unwrap_or_default();
        let mut egress = BTreeSet::new();
        for r in routes.iter().filter(|r| r.dst.prefix() == 0) {
            let src = r.prefsrc.or_else(|| {
                let oif = r.oif?;
                let on: Vec<_> = addrs.iter().filter(|a| a.index == oif).collect();
                r.gateway
                    .and_then(|g| {
                        on.iter()
                            .find(|a| {
                                crate::ipam::Ipv4Net::new(a.ip, a.prefix)
                                    .is_ok_and(|n| n.contains(g))
                            })
                            .map(|a| a.ip)
                    })
                    .or_else(|| on.first().map(|a| a.ip))
            });
            egress.extend(src);
        }
        let vanished: Vec<Ipv4Addr> = inner.last_egress.difference(&egress).copied().collect();
        let masquerading = state.networks.values().any(|n| !n.internal);
        for a in vanished.into_iter().filter(|_| masquerading) {
            let s = Instant::now();
            let r = self
                .worker
                .run(None, move || flush_conntrack(a))
                .await
                .map_err(NetdError::from)
                .and_then(|r| r);
            let what = match &r {
                Ok(n) => format!(
                    "egress address {a} went away: flushed {n} masqueraded conntrack entries"
                ),
                Err(_) => format!("egress address {a} went away: flush conntrack"),
            };
            rep.timed(what, s, r);
        }
        if inner.last_egress != egress {
            let v: Vec<Ipv4Addr> = egress.iter().copied().collect();
            self.store.save_egress(&v);
        }
        inner.last_egress = egress.clone();

        // Subnets against the host as it is now (a LAN or VPN may have come since).
        let (addrs6, routes6) = if state.networks.values().any(|n| n.subnet6.is_some()) {
            (
                links::list_addrs6(&self.host).await.unwrap_or_default(),
                crate::conflicts::list_routes6(&self.host).await,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        let ours: BTreeSet<u32> = bridge_idx
            .values()
            .copied()
            .chain(
                links_now
                    .iter()
                    .filter(|l| state.networks.values().any(|n| n.bridge == l.name))
                    .map(|l| l.index),
            )
            .collect();
        rep.conflicts = crate::conflicts::find(
            &state, &ours, &links_now, &routes, &addrs, &addrs6, &routes6,
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
        crate::netd::log_report(&rep);
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

#[cfg(test)]
mod tests {
    #[test]
    fn conntrack_count_line() {
        let t = "conntrack v1.4.7 (conntrack-tools): 3 flow entries have been deleted.";
        assert_eq!(super::deleted_count(t), Some(3));
        assert_eq!(super::deleted_count("conntrack: invalid option"), None);
    }
}
