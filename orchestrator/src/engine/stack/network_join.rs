//! A single container joining one more network, or leaving one, while it exists (`docker
//! network connect/disconnect`): the endpoint, its DNS names, and the lines of the container's
//! /etc/hosts and /etc/resolv.conf for that network; its other networks stay as they are.

use super::*;
use crate::api::error::ApiError;
use crate::api::project::ContainerNetwork;
use crate::engine::networks::netd_error;

impl Engine {
    /// Attaches container `rec` to the network `join` names, after the networks it has (the
    /// first keeps the default route): its name, hostname, short id and `join.aliases`
    /// answer there, /etc/hosts gains its address on it and /etc/resolv.conf that network's
    /// DNS; `links` are names (legacy `--link TARGET:ALIAS`) that resolve for it alone.
    /// All or nothing. Answers the endpoint made.
    pub async fn join_network(
        self: &Arc<Self>,
        rec: &Record,
        join: ContainerNetwork,
        links: Vec<berth_netd::dns::LinkAlias>,
    ) -> Result<berth_netd::state::Endpoint, ApiError> {
        self.sweep_orphan_endpoints().await;
        if join.name == DEFAULT_BRIDGE {
            self.ensure_default_bridge()
                .await
                .map_err(ApiError::internal)?;
        }
        let name = rec.config.name.clone();
        let netns = rec.netns.clone().ok_or_else(|| {
            ApiError::invalid(format!(
                "container {name} has no network namespace to attach"
            ))
        })?;
        let state = self.netd.state().await;
        let spec = state
            .find_network(&join.name)
            .cloned()
            .ok_or_else(|| netd_error(&berth_netd::NetdError::NoNetwork { key: join.name }))?;
        let hostname = rec
            .config
            .hostname
            .clone()
            .unwrap_or_else(|| rec.id[..12].to_string());
        let mut aliases = vec![hostname.clone(), rec.id[..12].to_string()];
        aliases.extend(join.aliases);
        aliases.retain(|a| a != &name);
        aliases.sort();
        aliases.dedup();
        let has = state
            .endpoints
            .iter()
            .filter(|e| e.container == rec.id)
            .count();
        let eps = self
            .netd
            .attach(
                &rec.id,
                NetnsRef::Path(netns),
                vec![EndpointRequest {
                    network: spec.name.clone(),
                    ipv4_address: join.ipv4_address,
                    ipv6_address: None,
                    mac_address: join.mac_address,
                    priority: -(has as i32),
                    aliases: aliases.clone(),
                    ports: Vec::new(),
                    interface_name: join.interface_name.clone(),
                    link_local_ips: join.link_local_ips.clone(),
                    gw_priority: 0,
                    sysctls: join.sysctls.clone(),
                }],
            )
            .await
            .map_err(|e| netd_error(&e))?;
        let Some(ep) = eps.into_iter().next() else {
            return Err(ApiError::internal("netd made no endpoint"));
        };
        let mut names = vec![name.clone()];
        names.extend(aliases);
        let net_name = spec.name.clone();
        // Kept before the DNS has them, so that a restarted daemon registers them again.
        if let Err(err) = crate::engine::connect_links::set(rec, &spec.name, &links) {
            self.netd
                .detach(&rec.id, Some(&spec.name))
                .await
                .map_err(|e| netd_error(&e))?;
            return Err(ApiError::internal(err));
        }
        let undo = |why: String| async move {
            let _ = crate::engine::connect_links::set(rec, &net_name, &[]);
            self.dns.records().remove_endpoint(&net_name, &rec.id);
            if let Err(err) = self.netd.detach(&rec.id, Some(&net_name)).await {
                tracing::warn!(%err, "detaching a container whose network join failed");
            }
            ApiError::internal(why)
        };
        if let Err(err) = self.dns.records().add_endpoint(
            &spec.name,
            DnsEndpoint {
                id: rec.id.clone(),
                container: rec.id.clone(),
                addresses: endpoint_addresses(&ep),
                dns_servers: crate::engine::labels::dns_servers(&rec.config.labels),
                names,
                links: crate::engine::labels::links(&rec.config.labels)
                    .into_iter()
                    .chain(links)
                    .collect(),
            },
        ) {
            return Err(undo(format!("DNS names of {name}: {err}")).await);
        }
        let servers: Vec<IpAddr> = std::iter::once(IpAddr::V4(spec.gateway))
            .chain(spec.gateway6.map(IpAddr::V6))
            .collect();
        if let Err(err) = edit_name_files(rec, |hosts, resolv| {
            for a in endpoint_addresses(&ep) {
                hosts.push_str(&format!("{a}\t{hostname}\n"));
            }
            add_nameservers(resolv, &servers);
        }) {
            return Err(undo(err).await);
        }
        Ok(ep)
    }

    /// Detaches container `rec` from one network: its endpoint and DNS names there go, and
    /// so do that endpoint's lines in /etc/hosts and the network's DNS in /etc/resolv.conf.
    pub async fn leave_network(&self, rec: &Record, network: &str) -> Result<(), ApiError> {
        let state = self.netd.state().await;
        let spec = state.find_network(network).cloned().ok_or_else(|| {
            netd_error(&berth_netd::NetdError::NoNetwork {
                key: network.into(),
            })
        })?;
        let ep = state
            .endpoints
            .iter()
            .find(|e| e.container == rec.id && (e.network == spec.id || e.network == spec.name))
            .cloned();
        self.netd
            .detach(&rec.id, Some(&spec.name))
            .await
            .map_err(|e| netd_error(&e))?;
        self.dns.records().remove_endpoint(&spec.name, &rec.id);
        if let Err(err) = crate::engine::connect_links::set(rec, &spec.name, &[]) {
            tracing::warn!(%err, "forgetting the links of a container that left a network");
        }
        let gone: Vec<String> = ep
            .iter()
            .flat_map(endpoint_addresses)
            .map(|a| a.to_string())
            .collect();
        let servers: Vec<String> = std::iter::once(spec.gateway.to_string())
            .chain(spec.gateway6.map(|g| g.to_string()))
            .collect();
        edit_name_files(rec, |hosts, resolv| {
            drop_lines(hosts, |l| {
                l.split_whitespace()
                    .next()
                    .is_some_and(|a| gone.iter().any(|g| g == a))
            });
            drop_lines(resolv, |l| {
                let mut w = l.split_whitespace();
                w.next() == Some("nameserver")
                    && w.next().is_some_and(|a| servers.contains(&a.to_string()))
            });
        })
        .map_err(ApiError::internal)
    }
}

/// Rewrites a container's /etc/hosts and /etc/resolv.conf in place (same inode: a running
/// container sees the change through its bind mounts); a container without them (network
/// mode host, none, or not yet attached) has nothing to change.
fn edit_name_files(
    rec: &Record,
    edit: impl FnOnce(&mut String, &mut String),
) -> Result<(), String> {
    let (hp, rp) = (rec.dir.join("hosts"), rec.dir.join("resolv.conf"));
    let read = |p: &Path| std::fs::read_to_string(p).ok();
    let (hosts, resolv) = (read(&hp), read(&rp));
    let (mut h, mut r) = (
        hosts.clone().unwrap_or_default(),
        resolv.clone().unwrap_or_default(),
    );
    edit(&mut h, &mut r);
    for (path, old, new) in [(&hp, hosts, h), (&rp, resolv, r)] {
        if old.is_some_and(|o| o != new) {
            std::fs::write(path, new)
                .map_err(|err| format!("writing {}: {err}", path.display()))?;
        }
    }
    Ok(())
}

/// Adds `nameserver` lines for `servers` after the last one already there (or first).
fn add_nameservers(resolv: &mut String, servers: &[IpAddr]) {
    let mut lines: Vec<String> = resolv.lines().map(str::to_string).collect();
    let at = lines
        .iter()
        .rposition(|l| l.trim_start().starts_with("nameserver"))
        .map_or(0, |i| i + 1);
    let new: Vec<String> = servers
        .iter()
        .map(|s| format!("nameserver {s}"))
        .filter(|l| !lines.contains(l))
        .collect();
    lines.splice(at..at, new);
    *resolv = lines.join("\n") + "\n";
}

/// Drops the lines `gone` picks.
fn drop_lines(text: &mut String, gone: impl Fn(&str) -> bool) {
    *text = text
        .lines()
        .filter(|l| !gone(l))
        .map(|l| format!("{l}\n"))
        .collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_are_added_once_after_the_others_and_dropped_by_address() {
        let mut r = "search x\nnameserver 10.0.0.1\noptions ndots:0\n".to_string();
        add_nameservers(
            &mut r,
            &["10.9.0.1".parse().unwrap_or(IpAddr::V4([0; 4].into()))],
        );
        assert_eq!(
            r,
            "search x\nnameserver 10.0.0.1\nnameserver 10.9.0.1\noptions ndots:0\n"
        );
        add_nameservers(
            &mut r,
            &["10.9.0.1".parse().unwrap_or(IpAddr::V4([0; 4].into()))],
        );
        assert_eq!(r.matches("10.9.0.1").count(), 1);
        drop_lines(&mut r, |l| l == "nameserver 10.9.0.1");
        assert_eq!(r, "search x\nnameserver 10.0.0.1\noptions ndots:0\n");
    }
}
