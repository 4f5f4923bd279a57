//! Single containers on networks (`container run --network`, through the one attach path in
//! `attach.rs`), the default `bridge` network, DNS names after a rename, `network_mode`
//! sharing (the sweeps that drop what netd no longer has are in `sweep.rs`).

use super::*;
use crate::api::project::ContainerConnect;

/// The name of the network `--network bridge` means, made on first use.
pub const DEFAULT_BRIDGE: &str = "bridge";

impl Engine {
    /// Attaches a single container (created, pinned netns) to networks through
    /// [`Engine::attach`], as services are: DNS names (name, hostname, short id, aliases),
    /// /etc/hosts and /etc/resolv.conf. All or nothing: on failure what was attached is
    /// detached again. Returns `ethN address` lines.
    pub async fn connect_container(
        self: &Arc<Self>,
        req: ContainerConnect,
    ) -> Result<Vec<String>, String> {
        self.sweep_orphan_endpoints().await;
        let e = self.clone();
        let key = req.container.clone();
        let rec = blocking(move || {
            e.runtime
                .resolve(&key)
                .map_err(|err| crate::api::error::error_chain(&err))
        })
        .await?;
        let name = rec.config.name.clone();
        let endpoints = self
            .connect_record(
                &rec,
                req,
                |err| format!("attaching {name}: {err:#}"),
                |err| match err {
                    NameFilesError::ExtraHost(what) => format!("--add-host {what}"),
                    NameFilesError::Write(what) => what,
                },
            )
            .await?;
        Ok(endpoints
            .iter()
            .map(|ep| format!("{} {}", ep.ifname, ep.address))
            .collect())
    }

    /// The one way a created container joins its networks, whoever asked (a single
    /// container's create, a service's replica): `req.networks` in their order (the first
    /// carries the published ports; the priority falls by one per place, so ties go to the
    /// earlier), named by the container's name, hostname, short id and the aliases. The
    /// caller words netd's refusals and the name-file errors for the keys its user wrote.
    pub(super) async fn connect_record(
        &self,
        rec: &Record,
        req: ContainerConnect,
        netd_error: impl FnOnce(berth_netd::NetdError) -> String,
        name_files_error: impl FnOnce(NameFilesError) -> String,
    ) -> Result<Vec<berth_netd::state::Endpoint>, String> {
        let name = rec.config.name.clone();
        let hostname = rec
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| rec.id[..12].to_string());
        if rec.netns.is_none() {
            return Err(format!(
                "container {name} has no network namespace to attach"
            ));
        }
        if req.networks.is_empty() {
            return Err(format!("container {name}: no network to connect"));
        }
        if req.networks.iter().any(|n| n.name == DEFAULT_BRIDGE) {
            self.ensure_default_bridge().await?;
        }
        let mut networks = Vec::with_capacity(req.networks.len());
        for (i, n) in req.networks.iter().enumerate() {
            // The network alone: a copy of netd's whole state per container would make a
            // stack's up quadratic.
            let spec = self
                .netd
                .find_network(&n.name)
                .await
                .ok_or_else(|| format!("no such network: {}", n.name))?;
            let mut aliases = vec![hostname.clone(), rec.id[..12].to_string()];
            aliases.extend(n.aliases.iter().cloned());
            aliases.retain(|a| a != &name);
            aliases.sort();
            aliases.dedup();
            networks.push(NetworkJoin {
                network: spec.name.clone(),
                ipv4_address: n.ipv4_address,
                ipv6_address: n.ipv6_address,
                mac_address: n.mac_address.clone(),
                priority: n.priority.saturating_sub(i as i32),
                aliases,
                interface_name: n.interface_name.clone(),
                link_local_ips: n.link_local_ips.clone(),
                gw_priority: n.gw_priority,
                sysctls: n.sysctls.clone(),
            });
        }
        let how = Attachment {
            networks,
            ports: req.ports,
            extra_hosts: req.extra_hosts,
            resolv: resolv_overrides(&req.dns_search, &req.dns_options),
            links: req.links,
        };
        self.attach(rec, &hostname, how)
            .await
            .map_err(|err| err.message(&name, netd_error, name_files_error))
    }

    /// Creates the `bridge` network (a pool subnet, DNS on its gateway) unless it exists;
    /// serialised so that two first uses cannot both create it.
    pub async fn ensure_default_bridge(&self) -> Result<(), String> {
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
                aux_addresses: BTreeMap::new(),
                bridge_name: None,
                options: Default::default(),
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
            .release(id)
            .await
            .err()
            .map(|err| format!("detaching {id}: {err:#}"))
    }

    /// Re-registers a container's DNS names from its current name and its endpoints'
    /// aliases (after `container rename`), so the old name stops answering.
    pub async fn refresh_container_dns(&self, id: &str) -> Result<(), String> {
        let rt = self.runtime.clone();
        let key = id.to_string();
        let rec = blocking(move || {
            rt.resolve(&key)
                .map_err(|err| crate::api::error::error_chain(&err))
        })
        .await?;
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
                        links: crate::engine::labels::links(&rec.config.labels)
                            .into_iter()
                            .chain(crate::engine::connect_links::of(&rec, &net.name))
                            .collect(),
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
        let Some(target) = self.shared_target(project, service, "network_mode", mode)? else {
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
}
