//! Joining containers to networks: netd endpoints, DNS names and the container's /etc/hosts
//! and resolv.conf, for single containers and stack containers alike, and the sweeps that
//! drop what netd no longer has.

use super::*;

/// One network a single container joins (`berth container run --network NAME`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// Network name or id; `bridge` is made on first use (the network Docker users expect).
    pub name: String,
    /// Extra DNS names on this network (`--network-alias`).
    pub aliases: Vec<String>,
    /// Static address (`--ip`).
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    /// Static MAC (`--mac-address`), else derived from the address.
    #[serde(default)]
    pub mac_address: Option<String>,
}

/// Body of `POST /v1/container/connect`: attach a created single container before it starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConnect {
    /// Container id.
    pub container: String,
    /// In priority order: the first carries the default route and the published ports.
    pub networks: Vec<ContainerNetwork>,
    /// `-p/--publish`.
    pub ports: Vec<PortMapping>,
    /// `--add-host NAME:IP` lines for /etc/hosts (`host-gateway` is the first network's
    /// gateway).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns-search`, `--dns-option`: replace the host's in resolv.conf.
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
}

/// The name of the network `--network bridge` means, made on first use.
pub const DEFAULT_BRIDGE: &str = "bridge";

impl Engine {
    /// Attaches a single container (created, pinned netns) to networks, registers its DNS
    /// names (name, hostname, short id, aliases) and writes its /etc/hosts and
    /// /etc/resolv.conf, as [`StackBackend`] does for services. All or nothing: on failure
    /// what was attached is detached again. Returns `ethN address` lines.
    pub async fn connect_container(
        self: &Arc<Self>,
        req: ContainerConnect,
    ) -> Result<Vec<String>, String> {
        self.sweep_orphan_endpoints().await;
        let e = self.clone();
        let key = req.container.clone();
        let rec = blocking(move || e.runtime.resolve(&key).map_err(|err| err.to_string())).await?;
        let name = rec.config.name.clone();
        let hostname = rec
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| rec.id[..12].to_string());
        let netns = rec
            .netns
            .clone()
            .ok_or_else(|| format!("container {name} has no network namespace to attach"))?;
        if req.networks.is_empty() {
            return Err(format!("container {name}: no network to connect"));
        }
        if req.networks.iter().any(|n| n.name == DEFAULT_BRIDGE) {
            self.ensure_default_bridge().await?;
        }
        let mut ports = req.ports.clone();
        let mut reqs = Vec::new();
        let mut dns_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let state = self.netd.state().await;
        for (i, n) in req.networks.iter().enumerate() {
            let spec = state
                .find_network(&n.name)
                .ok_or_else(|| format!("no such network: {}", n.name))?;
            let mut aliases = vec![hostname.clone(), rec.id[..12].to_string()];
            aliases.extend(n.aliases.iter().cloned());
            aliases.retain(|a| a != &name);
            aliases.sort();
            aliases.dedup();
            let mut names = vec![name.clone()];
            names.extend(aliases.iter().cloned());
            dns_names.insert(spec.name.clone(), names);
            reqs.push(EndpointRequest {
                network: spec.name.clone(),
                ipv4_address: n.ipv4_address,
                ipv6_address: None,
                mac_address: n.mac_address.clone(),
                priority: -(i as i32),
                aliases,
                ports: if i == 0 {
                    std::mem::take(&mut ports)
                } else {
                    Vec::new()
                },
            });
        }
        let endpoints = self
            .netd
            .attach(&rec.id, NetnsRef::Path(netns), reqs)
            .await
            .map_err(|err| format!("attaching {name}: {err:#}"))?;
        match self
            .register_container(&rec, &hostname, &endpoints, &dns_names, &req)
            .await
        {
            Ok(()) => Ok(endpoints
                .iter()
                .map(|ep| format!("{} {}", ep.ifname, ep.address))
                .collect()),
            Err(err) => {
                self.disconnect_container(&rec.id).await;
                Err(err)
            }
        }
    }

    /// DNS records, /etc/hosts and /etc/resolv.conf of a freshly attached single container.
    pub(super) async fn register_container(
        &self,
        rec: &Record,
        hostname: &str,
        endpoints: &[berth_netd::state::Endpoint],
        dns_names: &BTreeMap<String, Vec<String>>,
        req: &ContainerConnect,
    ) -> Result<(), String> {
        let mut hosts =
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n".to_string();
        let mut gateways = Vec::new();
        // The IPv6 gateways (whose DNS servers answer too) follow every IPv4 one.
        let mut gateways6 = Vec::new();
        let nets = self.netd.networks().await;
        for ep in endpoints {
            let net_name = nets
                .iter()
                .find(|n| n.id == ep.network || n.name == ep.network)
                .map(|n| {
                    gateways.push(IpAddr::V4(n.gateway));
                    gateways6.extend(n.gateway6.map(IpAddr::V6));
                    n.name.clone()
                })
                .unwrap_or_else(|| ep.network.clone());
            hosts.push_str(&hosts_lines(ep, hostname));
            self.dns
                .records()
                .add_endpoint(
                    &net_name,
                    DnsEndpoint {
                        id: rec.id.clone(),
                        container: rec.id.clone(),
                        addresses: endpoint_addresses(ep),
                        dns_servers: crate::engine::labels::dns_servers(&rec.config.labels),
                        names: dns_names.get(&net_name).cloned().unwrap_or_default(),
                        ..Default::default()
                    },
                )
                .map_err(|err| format!("DNS names of {}: {err}", rec.config.name))?;
        }
        let overrides = ContainerResolvOverrides {
            search: (!req.dns_search.is_empty()).then(|| req.dns_search.clone()),
            options: (!req.dns_options.is_empty()).then(|| req.dns_options.clone()),
        };
        self.write_name_files(
            rec,
            hosts,
            &gateways,
            &gateways6,
            &req.extra_hosts,
            &overrides,
        )
        .map_err(|err| match err {
            NameFilesError::ExtraHost(what) => format!("--add-host {what}"),
            NameFilesError::Write(what) => what,
        })
    }

    /// Writes a connected container's `/etc/hosts` (`hosts`, its endpoint lines, then the
    /// `extra` NAME/IP pairs, where `host-gateway` is the first network's gateway) and
    /// `/etc/resolv.conf` (every IPv4 gateway's DNS, then the IPv6 ones, with the host's
    /// search domains), before it starts.
    pub(super) fn write_name_files(
        &self,
        rec: &Record,
        mut hosts: String,
        gateways: &[IpAddr],
        gateways6: &[IpAddr],
        extra: &[(String, String)],
        overrides: &ContainerResolvOverrides,
    ) -> Result<(), NameFilesError> {
        for (name, ip) in extra {
            let addr = if ip == "host-gateway" {
                *gateways.first().ok_or_else(|| {
                    NameFilesError::ExtraHost(format!("{name}: host-gateway needs a network"))
                })?
            } else {
                ip.parse::<IpAddr>().map_err(|_| {
                    NameFilesError::ExtraHost(format!(
                        "{name}: {ip:?} is not an IP address or host-gateway"
                    ))
                })?
            };
            let line = crate::engine::resolv::hosts_entry(addr, name).map_err(|err| {
                NameFilesError::ExtraHost(format!("{}: {err}", name.escape_debug()))
            })?;
            hosts.push_str(&line);
        }
        crate::engine::resolv::check_overrides(
            overrides.search.as_deref().unwrap_or_default(),
            overrides.options.as_deref().unwrap_or_default(),
        )
        .map_err(|err| NameFilesError::Write(err.to_string()))?;
        let host = self.resolv.host().map(|h| h.conf).unwrap_or_default();
        let servers: Vec<IpAddr> = gateways.iter().chain(gateways6).copied().collect();
        let resolv = container_resolv_conf(&servers, &host, overrides);
        for (file, content) in [("hosts", hosts), ("resolv.conf", resolv)] {
            let path = rec.dir.join(file);
            std::fs::write(&path, content).map_err(|err| {
                NameFilesError::Write(format!("writing {}: {err}", path.display()))
            })?;
        }
        Ok(())
    }

    /// Creates the `bridge` network (a pool subnet, DNS on its gateway) unless it exists;
    /// serialised so that two first uses cannot both create it.
    pub(super) async fn ensure_default_bridge(&self) -> Result<(), String> {
        let lock = self.project_lock("\0network:bridge");
        let _held = lock.lock().await;
        if self
            .netd
            .state()
            .await
            .find_network(DEFAULT_BRIDGE)
            .is_some()
        {
            return Ok(());
        }
        let mut labels = BTreeMap::new();
        labels.insert("berth.default-bridge".to_string(), "true".to_string());
        let spec = self
            .netd
            .create_network(NetworkCreate {
                name: DEFAULT_BRIDGE.into(),
                subnet: None,
                gateway: None,
                ip_range: None,
                internal: false,
                enable_ipv6: false,
                mtu: None,
                labels,
            })
            .await
            .map_err(|err| format!("creating the default network {DEFAULT_BRIDGE}: {err:#}"))?;
        self.start_dns(&spec);
        Ok(())
    }

    /// Drops a container's DNS names and detaches it from every network; for containers
    /// that are gone already (`--rm`), so nothing here needs the container's files.
    pub async fn disconnect_container(&self, id: &str) -> Option<String> {
        for net in self.netd.networks().await {
            self.dns.records().remove_endpoint(&net.name, id);
        }
        self.netd
            .detach(id, None)
            .await
            .err()
            .map(|err| format!("detaching {id}: {err:#}"))
    }

    /// Detaches endpoints whose container is gone (a `--rm` container the shim removed
    /// when it exited): its directory and its pinned namespace no longer exist.
    pub async fn sweep_orphan_endpoints(&self) {
        let state = self.netd.state().await;
        let mut gone: Vec<String> = state
            .endpoints
            .iter()
            .filter(|ep| {
                matches!(&ep.netns, NetnsRef::Path(p) if !p.exists())
                    && !self.root.join("containers").join(&ep.container).exists()
            })
            .map(|ep| ep.container.clone())
            .collect();
        gone.dedup();
        for id in &gone {
            tracing::info!(container = %id, "detaching the endpoints of a removed container");
            if let Some(err) = self.disconnect_container(id).await {
                tracing::warn!(%err, "sweeping a removed container's endpoints");
            }
        }
        // DNS records whose endpoint netd no longer has: netd's reconcile forgets the
        // endpoints of a container whose namespace died, and its names must stop answering.
        // A record missing from the first snapshot may have been attached since (its attach
        // comes before its record): only those are checked again, against a state read after
        // the records.
        let attached = |st: &berth_netd::state::State, net_id: &str, net_name: &str, c: &str| {
            st.endpoints
                .iter()
                .any(|ep| ep.container == c && (ep.network == net_id || ep.network == net_name))
        };
        let suspects: Vec<(String, String, DnsEndpoint)> = state
            .networks
            .values()
            .flat_map(|net| {
                self.dns
                    .records()
                    .endpoints(&net.name)
                    .into_iter()
                    .map(|r| (net.id.clone(), net.name.clone(), r))
            })
            .filter(|(id, name, r)| !attached(&state, id, name, &r.container))
            .collect();
        if suspects.is_empty() {
            return;
        }
        let now = self.netd.state().await;
        for (net_id, net_name, rec) in suspects {
            if !attached(&now, &net_id, &net_name, &rec.container) {
                tracing::info!(container = %rec.container, network = %net_name, "dropping the DNS names of a detached container");
                self.dns.records().remove_endpoint(&net_name, &rec.id);
            }
        }
    }

    /// Re-registers a container's DNS names from its current name and its endpoints'
    /// aliases (after `container rename`), so the old name stops answering.
    pub async fn refresh_container_dns(&self, id: &str) -> Result<(), String> {
        let rt = self.runtime.clone();
        let key = id.to_string();
        let rec = blocking(move || rt.resolve(&key).map_err(|err| err.to_string())).await?;
        let state = self.netd.state().await;
        for ep in state.endpoints.iter().filter(|e| e.container == rec.id) {
            let Some(net) = state.networks.get(&ep.network) else {
                continue;
            };
            let mut names = vec![rec.config.name.clone()];
            names.extend(ep.aliases.iter().cloned());
            self.dns.records().remove_endpoint(&net.name, &rec.id);
            self.dns
                .records()
                .add_endpoint(
                    &net.name,
                    DnsEndpoint {
                        id: rec.id.clone(),
                        container: rec.id.clone(),
                        addresses: endpoint_addresses(ep),
                        dns_servers: crate::engine::labels::dns_servers(&rec.config.labels),
                        names,
                        ..Default::default()
                    },
                )
                .map_err(|err| format!("DNS names of {}: {err}", rec.config.name))?;
        }
        Ok(())
    }

    /// `network_mode: service:NAME | container:NAME`: the container joins the network
    /// namespace of a running container of that service (the lowest replica, as compose
    /// picks) or of that container, and shares its /etc/hosts, /etc/resolv.conf and
    /// hostname, as Docker does. The planner made the service wait for that one to start.
    /// The label [`labels::NETWORK_FROM`] records whose namespace it is, so a recreated
    /// provider recreates its users (their namespace died with it).
    pub fn join_shared_network(
        &self,
        project: &Project,
        service: &str,
        svc: &crate::compose::Service,
        cfg: &mut berth_runtime::container::ContainerConfig,
    ) -> Result<(), String> {
        let Some(mode) = svc.network_mode.as_deref() else {
            return Ok(());
        };
        let target = if let Some(dep) = mode.strip_prefix("service:") {
            let mut running: Vec<(u32, Record)> = self
                .runtime
                .list()
                .into_iter()
                .filter(|(r, st)| {
                    st.status == Status::Running
                        && r.config.labels.get(labels::PROJECT) == Some(&project.name)
                        && r.config.labels.get(labels::SERVICE).map(String::as_str) == Some(dep)
                        && r.config.labels.get(labels::ONEOFF).map(String::as_str) != Some("True")
                })
                .map(|(r, _)| {
                    let n = r
                        .config
                        .labels
                        .get(labels::NUMBER)
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(u32::MAX);
                    (n, r)
                })
                .collect();
            running.sort_by_key(|(n, _)| *n);
            running.into_iter().next().map(|(_, r)| r).ok_or_else(|| {
                format!(
                    "service {service}: network_mode {mode}: service {dep} has no running container"
                )
            })?
        } else if let Some(name) = mode.strip_prefix("container:") {
            let rec = self
                .runtime
                .resolve(name)
                .map_err(|err| format!("service {service}: network_mode {mode}: {err}"))?;
            if !self.runtime.is_running(&rec) {
                return Err(format!(
                    "service {service}: network_mode {mode}: container {name} is not running"
                ));
            }
            rec
        } else {
            return Ok(());
        };
        cfg.network = match (&target.netns, &target.config.network) {
            (Some(ns), _) => NetworkMode::Join(ns.clone()),
            (None, NetworkMode::Join(ns)) => NetworkMode::Join(ns.clone()),
            (None, NetworkMode::Host) => NetworkMode::Host,
            _ => {
                return Err(format!(
                    "service {service}: network_mode {mode}: container {} has no network namespace to share (network_mode none)",
                    target.config.name
                ));
            }
        };
        let read = |f: &str| std::fs::read_to_string(target.dir.join(f)).ok();
        cfg.hosts = read("hosts");
        cfg.resolv_conf = read("resolv.conf");
        if svc.hostname.is_none() {
            cfg.hostname = read("hostname").map(|h| h.trim().to_string());
        }
        cfg.labels
            .insert(labels::NETWORK_FROM.into(), target.id.clone());
        Ok(())
    }

    /// Runs [`Engine::sweep_orphan_endpoints`] every two seconds for the daemon's lifetime.
    pub async fn sweep_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(2)).await;
            self.sweep_orphan_endpoints().await;
        }
    }
}

/// The addresses a container's names resolve to on one network: A, and AAAA on a dual-stack
/// network (an IPv4-only name still gets an empty NOERROR for AAAA from the server).
pub(super) fn endpoint_addresses(ep: &berth_netd::state::Endpoint) -> Vec<IpAddr> {
    std::iter::once(IpAddr::V4(ep.address))
        .chain(ep.address6.map(IpAddr::V6))
        .collect()
}

/// /etc/hosts lines naming the container itself on one network (both families, as Docker
/// writes them).
/// The names other services give `service` through `links: ["service:alias"]`. Docker
/// scopes such an alias to the linking container; here it resolves on the networks the two
/// share, which is what a compose file written for `--link` needs.
pub(super) fn link_aliases(p: &Project, service: &str) -> Vec<String> {
    p.services
        .values()
        .flat_map(|s| s.links.iter())
        .filter_map(|l| l.split_once(':'))
        .filter(|(target, alias)| *target == service && !alias.is_empty())
        .map(|(_, alias)| alias.to_string())
        .collect()
}

/// Why [`Engine::write_name_files`] failed; callers name the key the entry came from.
pub(super) enum NameFilesError {
    /// An extra host entry (`NAME: why`).
    ExtraHost(String),
    /// A file could not be written.
    Write(String),
}

pub(super) fn hosts_lines(ep: &berth_netd::state::Endpoint, hostname: &str) -> String {
    endpoint_addresses(ep)
        .iter()
        .map(|a| format!("{a}\t{hostname}\n"))
        .collect()
}
