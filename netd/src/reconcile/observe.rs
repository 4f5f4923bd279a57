//! Reconcile's first step: the kernel as it is, read in one place into a plain value
//! ([`Observed`]) that the pure diff compares with the desired state. Only what the state
//! makes relevant is read (IPv6 lists only with IPv6 networks, the firewall only with
//! networks, the inside of each container namespace that holds an endpoint).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use futures::StreamExt;

use crate::conflicts::{self, Route6};
use crate::firewall::{self, DockerUserSeen, Fingerprint};
use crate::links::{self, Addr, Addr6, Link, Route};
use crate::netd::{Netd, NetdError};
use crate::netns::Netns;
use crate::state::State;

/// What reconcile saw of the host namespace, the container namespaces and berth's tables.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// Host interfaces.
    pub links: Vec<Link>,
    /// Host IPv4 addresses.
    pub addrs: Vec<Addr>,
    /// Host IPv6 addresses (read only with IPv6 networks).
    pub addrs6: Vec<Addr6>,
    /// Host IPv4 routes of the main table.
    pub routes: Vec<Route>,
    /// Host IPv6 routes of the main table (read only with IPv6 networks).
    pub routes6: Vec<Route6>,
    /// The uplink's MTU, `None` when the routes or links could not be read.
    pub uplink_mtu: Option<u32>,
    /// The IPv4 GSO limit the veths of networks with egress should have (BIG TCP only while
    /// every uplink takes it), `None` when unknown or not needed.
    pub veth_gso: Option<u32>,
    /// The host's egress addresses.
    pub egress: BTreeSet<Ipv4Addr>,
    /// Each container namespace that holds an endpoint, by path.
    pub namespaces: BTreeMap<PathBuf, Namespace>,
    /// berth's tables and the forwarding switches, `None` when not read (no network, or the
    /// read failed: see `errors`).
    pub firewall: Option<FirewallSeen>,
    /// Reads that failed, as report errors.
    pub errors: Vec<String>,
}

/// A container namespace as reconcile found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Namespace {
    /// Its path is gone: the container died without a detach.
    Gone,
    /// It vanished between the checks (the next reconcile sees it gone).
    Vanished,
    /// It could not be read (the reason is in the report's errors).
    Unreadable,
    /// Its interfaces, addresses and routes.
    Seen(Inside),
}

/// The network view from inside one container namespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inside {
    /// Interfaces (`lo` is index 1).
    pub links: Vec<Link>,
    /// IPv4 addresses.
    pub addrs: Vec<Addr>,
    /// IPv4 routes.
    pub routes: Vec<Route>,
    /// IPv6 addresses (read only when an endpoint there has one).
    pub addrs6: Vec<Addr6>,
    /// Gateways of IPv6 default routes (likewise).
    pub default_gateways6: Vec<Ipv6Addr>,
    /// The endpoints' interface sysctls, by `/proc/sys`-relative path (read only when an
    /// endpoint there sets some; a path that cannot be read is left out).
    pub sysctls: BTreeMap<String, String>,
}

/// berth's nftables tables and the switches forwarding needs, as the kernel has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FirewallSeen {
    /// The `ip` table's fingerprint, `None` when it is missing.
    pub ip: Option<Fingerprint>,
    /// The `ip6` table's fingerprint (read only when one is wanted).
    pub ip6: Option<Fingerprint>,
    /// `net.ipv4.ip_forward`.
    pub ip_forward: bool,
    /// `net.ipv6.conf.all.forwarding` (read only when an `ip6` table is wanted).
    pub ipv6_forwarding: bool,
    /// berth's accepts in Docker's `ip` DOCKER-USER chain, `None` without Docker.
    pub docker_user: Option<DockerUserSeen>,
    /// The same in Docker's `ip6` table (read only when an `ip6` table is wanted).
    pub docker_user6: Option<DockerUserSeen>,
}

impl Netd {
    /// Reads everything reconcile compares (see [`Observed`]). Failed reads leave their part
    /// empty and are listed in `errors`; nothing is changed.
    pub(crate) async fn observe(&self, state: &State) -> Observed {
        let mut o = Observed::default();
        let host = self.kernel.host();
        match links::list_links(host).await {
            Ok(l) => o.links = l,
            Err(e) => o.errors.push(e.to_string()),
        }
        let addrs = links::list_addrs(host).await;
        let routes = links::list_routes(host).await;
        let any6 = state
            .networks
            .values()
            .any(|n| n.gateway6.is_some() || n.subnet6.is_some());
        if any6 {
            o.addrs6 = links::list_addrs6(host).await.unwrap_or_default();
        }
        if state.networks.values().any(|n| n.subnet6.is_some()) {
            o.routes6 = conflicts::list_routes6(host).await;
        }
        if let (Ok(r), false) = (&routes, o.links.is_empty()) {
            o.uplink_mtu = Some(links::uplink_mtu(r, &o.links));
        }
        o.addrs = addrs.unwrap_or_default();
        o.routes = routes.unwrap_or_default();
        o.egress = links::egress_addrs(&o.routes, &o.addrs);
        if state.networks.values().any(|n| !n.internal) {
            // The uplinks among the links already read.
            match links::route_devices(host).await {
                Ok(devs) => {
                    let g = devs.and_then(|d| links::uplinks_gso_size(&d, &o.links));
                    o.veth_gso = Some(g.unwrap_or(links::DEFAULT_GSO_SIZE));
                }
                Err(e) => o.errors.push(format!("uplinks' IPv4 GSO limit: {e}")),
            }
        }

        // Inside the containers: one netlink connection per namespace, a few at a time.
        let mut paths: BTreeMap<PathBuf, (bool, Vec<String>)> = BTreeMap::new();
        for e in &state.endpoints {
            if state.networks.contains_key(&e.network) {
                let (v6, sysctls) = paths.entry(e.netns.path()).or_default();
                *v6 |= e.address6.is_some() || e.link_local_ips.iter().any(|a| a.is_ipv6());
                sysctls.extend(
                    e.sysctls
                        .iter()
                        .map(|(k, _)| crate::sysctl::interface_path(k, &e.ifname)),
                );
            }
        }
        let seen = futures::stream::iter(paths)
            .map(|(path, (v6, sysctls))| async move {
                let ns = self.observe_inside(&path, v6, sysctls).await;
                (path, ns)
            })
            .buffer_unordered(8)
            .collect::<Vec<_>>()
            .await;
        for (path, ns) in seen {
            let ns = match ns {
                Ok(ns) => ns,
                Err(e) => {
                    o.errors
                        .push(format!("inspecting namespace {}: {e}", path.display()));
                    Namespace::Unreadable
                }
            };
            o.namespaces.insert(path, ns);
        }

        if !state.networks.is_empty() {
            let want6 = state.networks.values().any(|n| n.subnet6.is_some());
            let table = self.table.clone();
            let r = self
                .kernel
                .run_host(move || observe_firewall(&table, want6))
                .await
                .map_err(NetdError::from)
                .and_then(|r| r);
            match r {
                Ok(f) => o.firewall = Some(f),
                Err(e) => o.errors.push(format!("firewall: {e}")),
            }
        }
        o
    }

    /// One container namespace (see [`Namespace`]).
    async fn observe_inside(
        &self,
        path: &Path,
        v6: bool,
        sysctls: Vec<String>,
    ) -> Result<Namespace, NetdError> {
        if !path.exists() {
            return Ok(Namespace::Gone);
        }
        let Ok(ns) = Netns::open(path) else {
            return Ok(Namespace::Vanished);
        };
        let cont = self.kernel.connect(&ns).await?;
        let mut inside = Inside {
            links: links::list_links(&cont).await?,
            addrs: links::list_addrs(&cont).await?,
            routes: links::list_routes(&cont).await?,
            ..Inside::default()
        };
        if v6 {
            inside.addrs6 = links::list_addrs6(&cont).await?;
            inside.default_gateways6 = links::default_gateways6(&cont).await?;
        }
        if !sysctls.is_empty() {
            // `/proc/sys/net` is the reading thread's namespace's: read on the worker there.
            inside.sysctls = self
                .kernel
                .worker()
                .run(Some(&ns), move || {
                    sysctls
                        .into_iter()
                        .filter_map(|p| crate::sysctl::read(&p).ok().map(|v| (p, v)))
                        .collect()
                })
                .await?;
        }
        Ok(Namespace::Seen(inside))
    }
}

/// berth's tables and the forwarding switches (blocking; on the host namespace's worker).
fn observe_firewall(table: &str, want6: bool) -> Result<FirewallSeen, NetdError> {
    let on = |v: String| v == "1";
    Ok(FirewallSeen {
        ip: firewall::observed_in(table)?,
        ip6: if want6 {
            crate::firewall::observed6_in(table)?
        } else {
            None
        },
        ip_forward: on(crate::sysctl::read("net/ipv4/ip_forward")?),
        ipv6_forwarding: want6 && on(crate::sysctl::read("net/ipv6/conf/all/forwarding")?),
        docker_user: firewall::docker_user_seen("ip", table)?,
        docker_user6: if want6 {
            firewall::docker_user_seen("ip6", table)?
        } else {
            None
        },
    })
}
