//! The one attach path: joins a created container to its networks in priority order (the
//! published ports are handed over with the first; netd gives them and the default route to
//! the network of the highest `gw_priority`, as Docker does), registers its DNS names and
//! writes its /etc/hosts and /etc/resolv.conf, all or nothing. Services (the plan backend,
//! `berth run`) and single containers (`container run --network`) both come through here;
//! each caller only says which networks, names and files it wants and words the errors for
//! its own keys.

use super::*;

/// One network a container joins, already resolved to netd's network name.
#[derive(Debug, Clone, Default)]
pub(super) struct NetworkJoin {
    /// netd's name of the network (DNS records are kept by it).
    pub network: String,
    /// Static IPv4 address.
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    /// Static IPv6 address.
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    /// Static MAC address, else derived from the IPv4 address.
    pub mac_address: Option<String>,
    /// netd's priority: the join order, highest first.
    pub priority: i32,
    /// DNS names on this network besides the container's own name.
    pub aliases: Vec<String>,
    /// The interface's name inside the container, else `ethN`.
    pub interface_name: Option<String>,
    /// Extra link-local addresses on the interface.
    pub link_local_ips: Vec<std::net::IpAddr>,
    /// Which network carries the default route: the highest; on ties a dual-stack network,
    /// then the network whose name sorts first (Docker 28's order).
    pub gw_priority: i32,
    /// Sysctls of the interface, `IFNAME` standing for it.
    pub sysctls: Vec<(String, String)>,
}

/// What a container is attached with.
#[derive(Debug, Clone, Default)]
pub(super) struct Attachment {
    /// The networks, in priority order: the first gets the published ports.
    pub networks: Vec<NetworkJoin>,
    /// Published ports.
    pub ports: Vec<PortMapping>,
    /// Extra `/etc/hosts` NAME/IP pairs (`host-gateway` is the first network's gateway).
    pub extra_hosts: Vec<(String, String)>,
    /// Search domains and options replacing the host's in resolv.conf.
    pub resolv: ContainerResolvOverrides,
    /// Legacy links `(alias, container name)` that resolve for this container alone.
    pub links: Vec<(String, String)>,
}

/// Why [`Engine::attach`] failed; callers word it for the keys the user wrote.
pub(super) enum AttachError {
    /// The container has no network namespace of its own.
    NoNetns,
    /// netd refused the endpoints (nothing was attached).
    Netd(berth_netd::NetdError),
    /// A DNS name could not be registered (the endpoints were detached again).
    Dns(String),
    /// `/etc/hosts` or resolv.conf could not be made (the endpoints were detached again).
    NameFiles(NameFilesError),
}

impl AttachError {
    /// The message for errors every caller words the same way; `netd` words netd's refusal.
    pub(super) fn message(
        self,
        name: &str,
        netd: impl FnOnce(berth_netd::NetdError) -> String,
        name_files: impl FnOnce(NameFilesError) -> String,
    ) -> String {
        match self {
            AttachError::NoNetns => {
                format!("container {name} has no network namespace to attach")
            }
            AttachError::Netd(err) => netd(err),
            AttachError::Dns(err) => format!("DNS names of {name}: {err}"),
            AttachError::NameFiles(err) => name_files(err),
        }
    }
}

impl Engine {
    /// Attaches a created container (pinned netns) to `how.networks`, registers its DNS
    /// names (its name, then each network's aliases) and writes its /etc/hosts and
    /// /etc/resolv.conf naming it `hostname`. On failure what was attached is detached
    /// again. Answers the endpoints made.
    pub(super) async fn attach(
        &self,
        rec: &Record,
        hostname: &str,
        mut how: Attachment,
    ) -> Result<Vec<berth_netd::state::Endpoint>, AttachError> {
        let netns = rec.netns.clone().ok_or(AttachError::NoNetns)?;
        let mut ports = std::mem::take(&mut how.ports);
        let mut dns_names: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut reqs = Vec::with_capacity(how.networks.len());
        for (i, join) in std::mem::take(&mut how.networks).into_iter().enumerate() {
            let mut names = vec![rec.config.name.clone()];
            names.extend(join.aliases.iter().cloned());
            dns_names.insert(join.network.clone(), names);
            reqs.push(EndpointRequest {
                interface_name: join.interface_name,
                link_local_ips: join.link_local_ips,
                gw_priority: join.gw_priority,
                sysctls: join.sysctls,
                network: join.network,
                ipv4_address: join.ipv4_address,
                ipv6_address: join.ipv6_address,
                mac_address: join.mac_address,
                priority: join.priority,
                aliases: join.aliases,
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
            .map_err(AttachError::Netd)?;
        match self
            .register(rec, hostname, &endpoints, &dns_names, &how)
            .await
        {
            Ok(()) => Ok(endpoints),
            Err(err) => {
                if let Some(undo) = self.disconnect_container(&rec.id).await {
                    tracing::warn!(%undo, "detaching a container whose attach failed");
                }
                Err(err)
            }
        }
    }

    /// DNS records, /etc/hosts and /etc/resolv.conf of a freshly attached container.
    async fn register(
        &self,
        rec: &Record,
        hostname: &str,
        endpoints: &[berth_netd::state::Endpoint],
        dns_names: &BTreeMap<String, Vec<String>>,
        how: &Attachment,
    ) -> Result<(), AttachError> {
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
                        links: crate::engine::labels::links(&rec.config.labels)
                            .into_iter()
                            .chain(crate::engine::connect_links::of(rec, &net_name))
                            .chain(how.links.iter().map(|(alias, target)| {
                                berth_netd::dns::LinkAlias {
                                    alias: alias.clone(),
                                    target: target.clone(),
                                }
                            }))
                            .collect(),
                    },
                )
                .map_err(|err| AttachError::Dns(err.to_string()))?;
        }
        self.write_name_files(
            rec,
            hosts,
            &gateways,
            &gateways6,
            &how.extra_hosts,
            &how.resolv,
        )
        .map_err(AttachError::NameFiles)
    }

    /// Writes a connected container's `/etc/hosts` (`hosts`, its endpoint lines, then the
    /// `extra` NAME/IP pairs, where `host-gateway` is the first network's gateway) and
    /// `/etc/resolv.conf` (every IPv4 gateway's DNS, then the IPv6 ones, with the host's
    /// search domains), before it starts.
    fn write_name_files(
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
}

/// The resolv.conf overrides of `--dns-search`/`--dns-option` or `dns_search`/`dns_opt`:
/// the host's stay where none are given.
pub(super) fn resolv_overrides(search: &[String], options: &[String]) -> ContainerResolvOverrides {
    ContainerResolvOverrides {
        search: (!search.is_empty()).then(|| search.to_vec()),
        options: (!options.is_empty()).then(|| options.to_vec()),
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
fn hosts_lines(ep: &berth_netd::state::Endpoint, hostname: &str) -> String {
    endpoint_addresses(ep)
        .iter()
        .map(|a| format!("{a}\t{hostname}\n"))
        .collect()
}

/// Why [`Engine::write_name_files`] failed; callers name the key the entry came from.
pub(super) enum NameFilesError {
    /// An extra host entry (`NAME: why`).
    ExtraHost(String),
    /// A file could not be written.
    Write(String),
}
