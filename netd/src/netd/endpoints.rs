//! Endpoints: attaching a container to networks (planned in [`super::attach_plan`], then made
//! all or nothing), the veth pair and its inside, and detaching.

use rtnetlink::Handle;

use super::attach_plan::plan_attach;
use super::{EndpointRequest, Netd, NetdError};
use crate::links::{self, LinkError, VethSpec};
use crate::names;
use crate::netns::Netns;
use crate::ports::PortMapping;
use crate::state::{Endpoint, NetnsRef, NetworkSpec};

impl Netd {
    /// Attaches a container (its namespace) to networks: one veth each, named eth0, eth1 ...
    /// in priority order after any it already has, default route via the non-internal network
    /// of the highest `gw_priority` (among equals a dual-stack one, then the first by name) when
    /// the container has none yet.
    /// All or nothing.
    pub async fn attach(
        &self,
        container: &str,
        netns: NetnsRef,
        mut reqs: Vec<EndpointRequest>,
    ) -> Result<Vec<Endpoint>, NetdError> {
        reqs.sort_by_key(|r| std::cmp::Reverse(r.priority));
        let mut inner = self.lock().await;
        // Validate and allocate everything first.
        let existing_count = inner
            .state
            .endpoints
            .iter()
            .filter(|e| e.container == container)
            .count();
        let planned = plan_attach(&inner.state, container, &netns, &reqs)?;
        let wanted: Vec<PortMapping> = planned
            .iter()
            .flat_map(|(e, _)| e.ports.iter().cloned())
            .collect();
        if let Some((_, err)) = self.host_listeners(wanted).await? {
            return Err(err.into());
        }
        for (e, _) in &planned {
            let deleter = self.kernel.deleter();
            if deleter.wait(&e.host_ifname).await.is_err() {
                // Once more, here: a leftover of that name would refuse the create for good.
                let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            }
            // A removed endpoint's veth with this MAC keeps it (and its static FDB entry) on
            // the bridge until it is gone: a recreated container often gets the same address.
            deleter.wait_key(&mac_key(e)).await;
        }
        let ns = Netns::open(&netns.path())?;
        let mut made: Vec<String> = Vec::new();
        let res = async {
            let cont = self.kernel.connect(&ns).await?;
            let first = existing_count == 0;
            for (i, (e, n)) in planned.iter().enumerate() {
                self.create_endpoint(&cont, &ns, e, n, first && i == 0)
                    .await?;
                made.push(e.host_ifname.clone());
            }
            Ok::<_, NetdError>(())
        }
        .await;
        let res = match res {
            Ok(()) => {
                inner
                    .state
                    .endpoints
                    .extend(planned.iter().map(|(e, _)| e.clone()));
                let ops = planned
                    .iter()
                    .map(|(e, _)| crate::state_journal::Op::Endpoint(e.clone()))
                    .collect();
                let r = self
                    .store
                    .save_change(&inner.state, ops)
                    .map_err(NetdError::from);
                match r {
                    Ok(()) if planned.iter().any(|(e, _)| !e.ports.is_empty()) => {
                        self.apply_firewall(&inner.state).await
                    }
                    other => other,
                }
            }
            Err(e) => Err(e),
        };
        if let Err(first) = res {
            inner
                .state
                .endpoints
                .retain(|e| !(e.container == container && made.contains(&e.host_ifname)));
            let mut cleanup = Ok(());
            for (e, _) in planned
                .iter()
                .filter(|(e, _)| made.contains(&e.host_ifname))
            {
                self.fast_path_remove(e).await;
            }
            for h in &made {
                if let Err(e) = links::delete_link(self.kernel.host(), h).await {
                    cleanup = Err(NetdError::from(e));
                }
            }
            if let Err(e) = self.store.save(&inner.state) {
                cleanup = Err(e.into());
            }
            return Err(match cleanup {
                Ok(()) => first,
                Err(c) => NetdError::WithCleanup {
                    first: Box::new(first),
                    cleanup: Box::new(c),
                },
            });
        }
        for (e, n) in &planned {
            tracing::info!(container, network = %n.name, ifname = %e.ifname, address = %e.address, "endpoint attached");
        }
        Ok(planned.into_iter().map(|(e, _)| e).collect())
    }

    /// Creates one endpoint in the kernel (host veth on the bridge, peer configured inside).
    pub(crate) async fn create_endpoint(
        &self,
        cont: &Handle,
        ns: &Netns,
        e: &Endpoint,
        n: &NetworkSpec,
        lo_up: bool,
    ) -> Result<(), NetdError> {
        use std::os::fd::AsRawFd;
        let br = match links::link_by_name(self.kernel.host(), &n.bridge).await? {
            Some(l) => l,
            None => {
                self.ensure_bridge(n).await?;
                links::link_by_name(self.kernel.host(), &n.bridge)
                    .await?
                    .ok_or(LinkError::Missing {
                        name: n.bridge.clone(),
                    })?
            }
        };
        let spec = VethSpec {
            host: &e.host_ifname,
            peer: &e.ifname,
            peer_ns_fd: ns.fd().as_raw_fd(),
            peer_mac: names::parse_mac(&e.mac).unwrap_or_else(|| names::endpoint_mac(e.address)),
            mtu: if br.mtu > 0 { br.mtu } else { 1500 },
            bridge: br.index,
            gso_max_size: if n.internal {
                Some(links::BIG_TCP_GSO_SIZE)
            } else {
                self.egress_gso().await?
            },
        };
        links::create_veth(self.kernel.host(), &spec).await?;
        if n.options.no_icc
            && let Err(err) = self.isolate_port(&e.host_ifname).await
        {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            return Err(err);
        }
        if !e.ports.is_empty()
            && let Err(err) = links::set_hairpin(self.kernel.host(), &e.host_ifname).await
        {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            return Err(err.into());
        }
        let via = e.default_route.then_some(n.gateway);
        if let Err(err) = links::configure_container_side(
            cont,
            &e.ifname,
            e.address,
            n.subnet.prefix(),
            via,
            lo_up,
        )
        .await
        {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            return Err(err.into());
        }
        if let Err(err) = self.configure_inside6(cont, e, n).await {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            return Err(err);
        }
        if let Err(err) = add_link_local(cont, e).await {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            return Err(err.into());
        }
        if let Err(err) = self.apply_sysctls(ns, e).await {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
            return Err(err);
        }
        self.fast_path_add(n, e, br.index).await;
        Ok(())
    }

    /// Isolates the host end of a veth on its bridge (a network with `enable_icc=false`).
    pub(crate) async fn isolate_port(&self, host_ifname: &str) -> Result<(), NetdError> {
        let l = links::link_by_name(self.kernel.host(), host_ifname)
            .await?
            .ok_or(LinkError::Missing {
                name: host_ifname.to_string(),
            })?;
        links::set_isolated(self.kernel.host(), l.index, host_ifname, true).await?;
        Ok(())
    }

    /// Writes an endpoint's interface sysctls inside its container (on the namespace worker,
    /// since `/proc/sys/net` is the calling thread's namespace's); returns whether any value
    /// changed.
    pub(crate) async fn apply_sysctls(&self, ns: &Netns, e: &Endpoint) -> Result<bool, NetdError> {
        if e.sysctls.is_empty() {
            return Ok(false);
        }
        let writes: Vec<(String, String)> = e
            .sysctls
            .iter()
            .map(|(k, v)| (crate::sysctl::interface_path(k, &e.ifname), v.clone()))
            .collect();
        let changed = self
            .kernel
            .worker()
            .run(
                Some(ns),
                move || -> Result<bool, crate::sysctl::SysctlError> {
                    let mut changed = false;
                    for (path, value) in &writes {
                        changed |= crate::sysctl::write(path, value)?;
                    }
                    Ok(changed)
                },
            )
            .await??;
        Ok(changed)
    }

    /// The IPv6 side of an endpoint inside its container: address (no DAD) and, on the
    /// endpoint carrying the default route, the IPv6 default route via the gateway. Returns
    /// whether anything had to change.
    pub(crate) async fn configure_inside6(
        &self,
        cont: &Handle,
        e: &Endpoint,
        n: &NetworkSpec,
    ) -> Result<bool, NetdError> {
        let (Some(a6), Some(s6)) = (e.address6, n.subnet6) else {
            return Ok(false);
        };
        let l = links::link_by_name(cont, &e.ifname)
            .await?
            .ok_or(LinkError::Missing {
                name: e.ifname.clone(),
            })?;
        let mut changed = false;
        if !links::list_addrs6(cont)
            .await?
            .iter()
            .any(|x| x.index == l.index && x.ip == a6)
        {
            links::ensure_address6(cont, l.index, a6, s6.prefix(), &e.ifname).await?;
            changed = true;
        }
        if e.default_route
            && let Some(g6) = n.gateway6
            && !links::has_default_route6(cont, g6).await?
        {
            links::set_default_route6(cont, g6).await?;
            changed = true;
        }
        Ok(changed)
    }

    /// Detaches a container from one network (or all when `network` is `None`). Best effort:
    /// keeps going and reports every error. The host veths are gone when it returns.
    pub async fn detach(&self, container: &str, network: Option<&str>) -> Result<(), NetdError> {
        let (gone, mut errs) = self.detach_state(container, network).await?;
        for e in &gone {
            if let Err(err) = self.kernel.deleter().wait(&e.host_ifname).await {
                errs.push(err.into());
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(NetdError::Teardown(errs))
        }
    }

    /// Detaches a container that is going away from every network: like `detach(container,
    /// None)`, but answers once netd's state, DNS view and fast path have forgotten it; the
    /// kernel's slow part, deleting the host veths, goes on after the answer (an attach that
    /// reuses one of the names waits for it).
    pub async fn release(&self, container: &str) -> Result<(), NetdError> {
        let (_, errs) = self.detach_state(container, None).await?;
        if errs.is_empty() {
            Ok(())
        } else {
            Err(NetdError::Teardown(errs))
        }
    }

    /// Waits for every host veth delete queued so far (before the daemon stops).
    pub async fn settle(&self) {
        self.kernel.deleter().settle().await;
    }

    /// The part of a detach made under netd's lock: state, fast path and firewall; the host
    /// veths are queued for deletion. Returns the endpoints it removed and the errors met on
    /// the way (the removal went on regardless); an error alone when nothing was removed.
    async fn detach_state(
        &self,
        container: &str,
        network: Option<&str>,
    ) -> Result<(Vec<Endpoint>, Vec<NetdError>), NetdError> {
        let mut inner = self.lock().await;
        let net_id = match network {
            Some(k) => Some(
                inner
                    .state
                    .find_network(k)
                    .map(|n| n.id.clone())
                    .ok_or_else(|| NetdError::NoNetwork { key: k.to_string() })?,
            ),
            None => None,
        };
        let (gone, keep): (Vec<Endpoint>, Vec<Endpoint>) =
            inner.state.endpoints.drain(..).partition(|e| {
                e.container == container && net_id.as_ref().is_none_or(|id| &e.network == id)
            });
        inner.state.endpoints = keep;
        if gone.is_empty() {
            if let (Some(k), Some(_)) = (network, net_id) {
                return Err(NetdError::NotAttached {
                    container: container.to_string(),
                    network: k.to_string(),
                });
            }
            return Ok((gone, Vec::new()));
        }
        for e in &gone {
            inner.removals.push(e);
        }
        let mut errs = Vec::new();
        let ops = gone
            .iter()
            .map(|e| crate::state_journal::Op::EndpointGone(e.host_ifname.clone()))
            .collect();
        if let Err(e) = self.store.save_change(&inner.state, ops) {
            errs.push(e.into());
        }
        for e in &gone {
            self.fast_path_remove(e).await;
            self.queue_delete(e).await;
        }
        if gone.iter().any(|e| !e.ports.is_empty())
            && let Err(e) = self.apply_firewall(&inner.state).await
        {
            errs.push(e);
        }
        Ok((gone, errs))
    }

    /// Queues the delete of a removed endpoint's host veth (deleted here and now when the
    /// deleting thread is gone).
    pub(crate) async fn queue_delete(&self, e: &Endpoint) {
        let keys = vec![mac_key(e), network_key(&e.network)];
        if !self.kernel.deleter().queue(&e.host_ifname, keys) {
            let _ = links::delete_link(self.kernel.host(), &e.host_ifname).await;
        }
    }
}

/// The key a pending delete holds for an endpoint's MAC on its network.
fn mac_key(e: &Endpoint) -> String {
    let mac = crate::fastpath::mac_of(e);
    format!("mac {} {}", e.network, names::mac_string(&mac))
}

/// The key every pending delete of a network's endpoints holds.
pub(crate) fn network_key(network_id: &str) -> String {
    format!("network {network_id}")
}

/// Adds an endpoint's `link_local_ips` to its interface inside the container (IPv4 as /16,
/// IPv6 as /64 without DAD), next to its network address.
pub(crate) async fn add_link_local(cont: &Handle, e: &Endpoint) -> Result<(), LinkError> {
    if e.link_local_ips.is_empty() {
        return Ok(());
    }
    let l = links::link_by_name(cont, &e.ifname)
        .await?
        .ok_or(LinkError::Missing {
            name: e.ifname.clone(),
        })?;
    for a in &e.link_local_ips {
        match a {
            std::net::IpAddr::V4(v4) => {
                links::ensure_address(cont, l.index, *v4, 16, &e.ifname).await?
            }
            std::net::IpAddr::V6(v6) => {
                links::ensure_address6(cont, l.index, *v6, 64, &e.ifname).await?
            }
        }
    }
    Ok(())
}
