//! Networks: creating and removing them (subnets from IPAM, the bridge, the firewall), and
//! keeping a bridge present, up and addressed.

use std::collections::BTreeSet;

use super::{Ipv6Create, Netd, NetdError, NetworkCreate, now, valid_name};
use crate::firewall::{self, FirewallError};
use crate::ipam::{self, InUse, IpamError, Ipv4Net};
use crate::ipam6::{self, Ipam6Error, Ipv6Net};
use crate::links;
use crate::names;
use crate::state::{NetworkSpec, State};

impl Netd {
    pub(crate) async fn egress_mtu(&self) -> Result<u32, NetdError> {
        if let Some(m) = self.cfg.default_mtu {
            return Ok(m);
        }
        let routes = links::list_routes(self.kernel.host()).await?;
        let links = links::list_links(self.kernel.host()).await?;
        Ok(links::uplink_mtu(&routes, &links))
    }

    /// The IPv4 GSO size for new veths of networks with egress: BIG TCP while every device an
    /// IPv4 route leaves through (berth's bridges aside) takes packets that large, else the
    /// kernel default (`None`); see [`links::egress_gso_size`].
    pub(crate) async fn egress_gso(&self) -> Result<Option<u32>, NetdError> {
        let Some(devs) = links::route_devices(self.kernel.host()).await? else {
            return Ok(None);
        };
        // Only the routes' devices: a dump of every link would grow with the containers.
        let uplinks = links::links_by_index(self.kernel.host(), &devs).await?;
        Ok(links::uplinks_gso_size(&devs, &uplinks))
    }

    async fn in_use(&self, state: &State) -> Result<InUse, NetdError> {
        let ours: BTreeSet<String> = state.networks.values().map(|n| n.bridge.clone()).collect();
        let links = links::list_links(self.kernel.host()).await?;
        let our_idx: BTreeSet<u32> = links
            .iter()
            .filter(|l| ours.contains(&l.name))
            .map(|l| l.index)
            .collect();
        let routes = links::list_routes(self.kernel.host()).await?;
        let addrs = links::list_addrs(self.kernel.host()).await?;
        Ok(InUse {
            host_routes: routes
                .iter()
                .filter(|r| r.dst.prefix() > 0 && !r.oif.is_some_and(|i| our_idx.contains(&i)))
                .map(|r| r.dst)
                .collect(),
            host_addrs: addrs
                .iter()
                .filter(|a| !our_idx.contains(&a.index) && !a.ip.is_loopback())
                .filter_map(|a| Ipv4Net::new(a.ip, a.prefix).ok())
                .collect(),
            networks: state.networks.values().map(|n| n.subnet).collect(),
        })
    }

    /// IPv6 subnets in use: berth's networks', and the host's routes and addresses (not on
    /// berth's bridges, link-local and the default route left out).
    async fn in_use6(&self, state: &State) -> Result<(Vec<Ipv6Net>, Vec<Ipv6Net>), NetdError> {
        let ours: Vec<Ipv6Net> = state.networks.values().filter_map(|n| n.subnet6).collect();
        let bridges: BTreeSet<String> = state.networks.values().map(|n| n.bridge.clone()).collect();
        let links = links::list_links(self.kernel.host()).await?;
        let our_idx: BTreeSet<u32> = links
            .iter()
            .filter(|l| bridges.contains(&l.name))
            .map(|l| l.index)
            .collect();
        let host = links::list_addrs6(self.kernel.host())
            .await?
            .into_iter()
            .filter(|a| !our_idx.contains(&a.index) && !a.ip.is_loopback())
            .filter_map(|a| Ipv6Net::new(a.ip, a.prefix).ok())
            .collect();
        Ok((ours, host))
    }

    /// Creates a network: validates and allocates, records it, makes the bridge (up, gateway
    /// address) and updates the firewall.
    pub async fn create_network(&self, req: NetworkCreate) -> Result<NetworkSpec, NetdError> {
        self.create_network_with_ipv6(req, Ipv6Create::default())
            .await
    }

    /// [`Netd::create_network`] with IPv6 settings: with `req.enable_ipv6` (or a subnet in
    /// `v6`) the network is dual-stack: an IPv6 subnet (given, or the next /64 of
    /// fd00:b5e7::/48), the gateway's IPv6 address on the bridge, and for every endpoint the
    /// counterpart of its IPv4 address, an IPv6 default route, masquerade and published ports
    /// in berth's `ip6` table.
    pub async fn create_network_with_ipv6(
        &self,
        req: NetworkCreate,
        v6: Ipv6Create,
    ) -> Result<NetworkSpec, NetdError> {
        if !valid_name(&req.name) {
            return Err(NetdError::BadName { name: req.name });
        }
        let want_v6 = req.enable_ipv6 || v6.subnet.is_some();
        let mut inner = self.lock().await;
        if inner.state.networks.values().any(|n| n.name == req.name) {
            return Err(NetdError::NetworkExists { name: req.name });
        }
        let used = self.in_use(&inner.state).await?;
        let ipam_err = |source| NetdError::Ipam {
            name: req.name.clone(),
            source,
        };
        let subnet = match req.subnet {
            Some(s) => {
                ipam::check_subnet(&s, &used).map_err(ipam_err)?;
                s
            }
            None => ipam::allocate_subnet(&self.cfg.pool, &used).map_err(ipam_err)?,
        };
        let gateway = match req.gateway {
            Some(g) => {
                if !subnet.contains(g) || g == subnet.addr() || g == subnet.last() {
                    return Err(NetdError::BadGateway { gateway: g, subnet });
                }
                g
            }
            None => ipam::default_gateway(&subnet).map_err(ipam_err)?,
        };
        if let Some(r) = &req.ip_range
            && !subnet.covers(r)
        {
            return Err(ipam_err(IpamError::Overlap {
                subnet,
                other: *r,
                what: "an ip_range outside the subnet",
            }));
        }
        let (subnet6, gateway6) = if want_v6 {
            let ipam6_err = |source| NetdError::Ipam6 {
                name: req.name.clone(),
                source,
            };
            let (ours, host) = self.in_use6(&inner.state).await?;
            let s6 = match v6.subnet {
                Some(s6) => {
                    ipam6::check_subnet(&s6, &ours, &host).map_err(ipam6_err)?;
                    s6
                }
                None => ipam6::allocate_subnet(&ipam6::default_pool(), &ours, &host)
                    .map_err(ipam6_err)?,
            };
            let g6 = match v6.gateway {
                Some(g) if s6.contains(g) && g != s6.addr() => g,
                Some(g) => {
                    return Err(ipam6_err(Ipam6Error::Overlap {
                        subnet: s6,
                        other: Ipv6Net::new(g, 128).map_err(ipam6_err)?,
                        what: "a gateway outside the IPv6 subnet",
                    }));
                }
                None => ipam6::counterpart(gateway, &subnet, &s6).map_err(ipam6_err)?,
            };
            if let Some(r) = v6.ip_range
                && !s6.covers(&r)
            {
                return Err(ipam6_err(Ipam6Error::Overlap {
                    subnet: s6,
                    other: r,
                    what: "an ip_range outside the IPv6 subnet",
                }));
            }
            (Some(s6), Some(g6))
        } else {
            (None, None)
        };
        for (host, addr) in &req.aux_addresses {
            let inside = match addr {
                std::net::IpAddr::V4(a) => subnet.contains(*a),
                std::net::IpAddr::V6(a) => subnet6.is_some_and(|s6| s6.contains(*a)),
            };
            if !inside {
                return Err(NetdError::AuxAddressOutside {
                    network: req.name.clone(),
                    host: host.clone(),
                    addr: *addr,
                    subnet: match (addr, subnet6) {
                        (std::net::IpAddr::V6(_), Some(s6)) => s6.to_string(),
                        (std::net::IpAddr::V6(_), None) => "(the network has no IPv6)".into(),
                        _ => subnet.to_string(),
                    },
                });
            }
        }
        let bridge = match &req.bridge_name {
            Some(b) => {
                self.check_bridge_name(&inner.state, &req.name, b).await?;
                b.clone()
            }
            None => String::new(),
        };
        if let Some(p) = &req.options.iface_prefix {
            check_iface_prefix(&req.name, p)?;
        }
        let id = names::new_network_id(&req.name);
        let mut options = req.options.clone();
        options.named_bridge = req.bridge_name.is_some();
        let spec = NetworkSpec {
            options,
            aux_addresses: req.aux_addresses.clone(),
            ip_range6: v6.ip_range.filter(|_| subnet6.is_some()),
            subnet6,
            gateway6,
            bridge: if bridge.is_empty() {
                names::bridge_name(&id)
            } else {
                bridge
            },
            id: id.clone(),
            name: req.name.clone(),
            subnet,
            gateway,
            ip_range: req.ip_range,
            internal: req.internal,
            mtu: req.mtu,
            labels: req.labels.clone(),
            created: now(),
        };
        inner.state.networks.insert(id.clone(), spec.clone());
        let res = async {
            self.store.save(&inner.state)?;
            self.ensure_bridge(&spec).await?;
            self.apply_firewall(&inner.state).await
        }
        .await;
        if let Err(first) = res {
            inner.state.networks.remove(&id);
            let cleanup = async {
                links::delete_link(self.kernel.host(), &spec.bridge).await?;
                self.store.save(&inner.state)?;
                Ok::<_, NetdError>(())
            }
            .await;
            return Err(match cleanup {
                Ok(()) => first,
                Err(c) => NetdError::WithCleanup {
                    first: Box::new(first),
                    cleanup: Box::new(c),
                },
            });
        }
        tracing::info!(network = %spec.name, bridge = %spec.bridge, subnet = %spec.subnet, subnet6 = ?spec.subnet6, "network created");
        Ok(spec)
    }

    /// Checks a bridge name given at creation (`com.docker.network.bridge.name`): a valid
    /// interface name that neither another network's bridge nor any existing interface of the
    /// host has (berth never takes over a link it did not make), and not shaped like the names
    /// berth derives for its bridges and veths.
    async fn check_bridge_name(
        &self,
        state: &State,
        network: &str,
        bridge: &str,
    ) -> Result<(), NetdError> {
        let bad = |why: String| NetdError::BadBridgeName {
            network: network.to_string(),
            bridge: bridge.to_string(),
            why,
        };
        if !super::attach_plan::valid_ifname(bridge) {
            return Err(bad(
                "is not an interface name (1-15 bytes, no '/', ':', blanks or control characters)"
                    .into(),
            ));
        }
        let veth_like = bridge
            .strip_prefix(names::VETH_PREFIX)
            .is_some_and(|h| h.len() == 10 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if bridge.starts_with(names::BRIDGE_PREFIX) || veth_like {
            return Err(bad(format!(
                "is reserved: berth derives the names {:?}+hash of its bridges and {:?}+hash of its veths",
                names::BRIDGE_PREFIX,
                names::VETH_PREFIX
            )));
        }
        if let Some(n) = state.networks.values().find(|n| n.bridge == bridge) {
            return Err(bad(format!("is already the bridge of network {}", n.name)));
        }
        if let Some(l) = links::link_by_name(self.kernel.host(), bridge).await? {
            return Err(bad(format!(
                "is already an interface of the host (index {}, {}): berth only makes bridges of its own",
                l.index,
                l.kind.as_deref().unwrap_or("kind unknown")
            )));
        }
        Ok(())
    }

    /// Makes a network's bridge present, up and addressed; returns its index and whether
    /// anything had to change.
    pub(crate) async fn ensure_bridge(&self, n: &NetworkSpec) -> Result<(u32, bool), NetdError> {
        let existed = links::link_by_name(self.kernel.host(), &n.bridge).await?;
        let mtu = match n.mtu {
            Some(m) => m,
            None => self.egress_mtu().await?,
        };
        let l = links::ensure_bridge(
            self.kernel.host(),
            &n.bridge,
            mtu,
            names::endpoint_mac(n.gateway),
        )
        .await?;
        let addrs = links::list_addrs(self.kernel.host()).await?;
        let has = addrs
            .iter()
            .any(|a| a.index == l.index && a.ip == n.gateway && a.prefix == n.subnet.prefix());
        if !has {
            links::ensure_address(
                self.kernel.host(),
                l.index,
                n.gateway,
                n.subnet.prefix(),
                &n.bridge,
            )
            .await?;
        }
        let br = n.bridge.clone();
        let v6 = n.subnet6.is_some();
        // route_localnet lets the host's own clients of a published port (127.0.0.1:PORT,
        // translated in `output`) leave through the bridge with their loopback source and
        // lets the container's replies, which conntrack readdresses to 127.0.0.1, in: the
        // kernel would take both for martians. Only networks that can publish ports need
        // it (internal ones cannot); what it would also let in (a container's frames for
        // 127.0.0.0/8) is dropped by the firewall's loopback guard.
        let localnet = if n.internal { "0" } else { "1" };
        let changed_sysctl = self
            .kernel
            .run_host(move || -> Result<bool, NetdError> {
                let a = crate::sysctl::write("net/ipv4/ip_forward", "1")?;
                let b = crate::sysctl::write(&format!("net/ipv4/conf/{br}/route_localnet"), localnet)?;
                let c = if v6 {
                    // The bridge may have been born with IPv6 off (a host that disables it
                    // by default); forwarding is what lets containers' IPv6 out.
                    let c = crate::sysctl::write(&format!("net/ipv6/conf/{br}/disable_ipv6"), "0")?;
                    let d = crate::sysctl::write("net/ipv6/conf/all/forwarding", "1")?;
                    if d {
                        tracing::warn!(
                            "IPv6 forwarding turned on for berth's IPv6 networks: interfaces with accept_ra=1 stop taking router advertisements (set accept_ra=2 on the uplink to keep SLAAC)"
                        );
                    }
                    c || d
                } else {
                    false
                };
                Ok(a || b || c)
            })
            .await??;
        let mut has6 = true;
        if let (Some(s6), Some(g6)) = (n.subnet6, n.gateway6) {
            has6 = links::list_addrs6(self.kernel.host())
                .await?
                .iter()
                .any(|a| a.index == l.index && a.ip == g6);
            if !has6 {
                links::ensure_address6(self.kernel.host(), l.index, g6, s6.prefix(), &n.bridge)
                    .await?;
            }
        }
        let changed = existed.as_ref().is_none_or(|e| !e.up) || !has || !has6 || changed_sysctl;
        Ok((l.index, changed))
    }

    /// Writes berth's table (or removes it when there is no network) and syncs DOCKER-USER.
    pub(crate) async fn apply_firewall(&self, state: &State) -> Result<(), NetdError> {
        let rs = crate::desired::ruleset(state);
        let rs6 = crate::desired::ruleset6(state);
        let any = !state.networks.is_empty();
        let named = crate::desired::named_bridges(state, false);
        let named6 = crate::desired::named_bridges(state, true);
        let table = self.table.clone();
        self.kernel
            .run_host(move || -> Result<(), FirewallError> {
                if any {
                    crate::firewall::apply_with6_in(&table, &rs, &rs6)?;
                } else {
                    firewall::remove_in(&table)?;
                    crate::firewall::apply6_in(&table, &rs6)?;
                }
                firewall::sync_docker_user_in(&table, any, &named)?;
                firewall::sync_docker_user_family_in(
                    "ip6",
                    &table,
                    !rs6.networks.is_empty(),
                    &named6,
                )?;
                Ok(())
            })
            .await??;
        Ok(())
    }

    /// Removes a network that has no endpoints: bridge, rules, state.
    pub async fn remove_network(&self, key: &str) -> Result<NetworkSpec, NetdError> {
        // Veths of containers that left it may still be on their way out: waited for outside
        // netd's lock (each delete ends with an RCU barrier), and for this network's alone.
        let id = self
            .lock()
            .await
            .state
            .find_network(key)
            .map(|n| n.id.clone());
        if let Some(id) = id {
            self.kernel
                .deleter()
                .wait_key(&super::endpoints::network_key(&id))
                .await;
        }
        let mut inner = self.lock().await;
        let n = inner
            .state
            .find_network(key)
            .cloned()
            .ok_or_else(|| NetdError::NoNetwork {
                key: key.to_string(),
            })?;
        // Endpoints of containers whose namespace is gone do not hold the network.
        let id = n.id.clone();
        inner
            .state
            .endpoints
            .retain(|e| e.network != id || e.netns.path().exists());
        let users: Vec<String> = inner
            .state
            .endpoints_of(&n.id)
            .map(|e| e.container.clone())
            .collect();
        if !users.is_empty() {
            return Err(NetdError::NetworkInUse {
                name: n.name,
                containers: users.join(", "),
            });
        }
        inner.state.networks.remove(&n.id);
        self.store.save(&inner.state)?;
        self.fast_path_forget_network(&n.id);
        let mut errs = Vec::new();
        if let Err(e) = links::delete_link(self.kernel.host(), &n.bridge).await {
            errs.push(e.into());
        }
        if let Err(e) = self.apply_firewall(&inner.state).await {
            errs.push(e);
        }
        if !errs.is_empty() {
            return Err(NetdError::Teardown(errs));
        }
        tracing::info!(network = %n.name, "network removed");
        Ok(n)
    }

    /// Networks, by name.
    pub async fn networks(&self) -> Vec<NetworkSpec> {
        let inner = self.lock().await;
        let mut v: Vec<_> = inner.state.networks.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// Checks a `container_iface_prefix`: with a number appended it must stay a valid interface
/// name, so letters, digits, `_` and `-`, at most 12 bytes, and not starting with a digit.
fn check_iface_prefix(network: &str, prefix: &str) -> Result<(), NetdError> {
    let bad = |why| NetdError::BadIfacePrefix {
        network: network.to_string(),
        prefix: prefix.to_string(),
        why,
    };
    if prefix.is_empty() || prefix.len() > 12 {
        return Err(bad("must be 1 to 12 bytes long"));
    }
    if !prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        || prefix.as_bytes()[0].is_ascii_digit()
    {
        return Err(bad(
            "must be letters, digits, '_' and '-', not starting with a digit",
        ));
    }
    Ok(())
}
