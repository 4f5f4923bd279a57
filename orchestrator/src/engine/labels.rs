//! Labels berth puts on a project's containers.
//!
//! They are the same keys Docker Compose uses, so scripts that filter on
//! `com.docker.compose.project` keep working, and they are all the engine needs to recognise
//! its containers after a daemon restart: state on disk, not memory, is the truth.

/// Project the container belongs to.
pub const PROJECT: &str = "com.docker.compose.project";
/// Key of a project volume in the Compose file (on the volumes a project makes).
pub const VOLUME: &str = "com.docker.compose.volume";
/// Service the container runs.
pub const SERVICE: &str = "com.docker.compose.service";
/// Replica number, from 1.
pub const NUMBER: &str = "com.docker.compose.container-number";
/// Hash of the service's resolved config when the container was created (decides recreation).
pub const CONFIG_HASH: &str = "com.docker.compose.config-hash";
/// "True" for `berth run` one-off containers, which convergence leaves alone.
pub const ONEOFF: &str = "com.docker.compose.oneoff";
/// Image id the container was created from (an image change recreates, like a config change).
pub const IMAGE: &str = "com.docker.compose.image";
/// The service's restart policy (`always`, `unless-stopped`, `on-failure[:N]`), which the
/// daemon enforces; absent for `no`.
pub const RESTART: &str = "berth.restart";
/// The resolved healthcheck (JSON), so that checks survive daemon and policy restarts.
pub const HEALTHCHECK: &str = "berth.healthcheck";
/// The container's own DNS servers (`--dns`, compose `dns:`), comma-separated: on a bridge
/// network the embedded DNS forwards this container's outside queries to them instead of the
/// host's resolvers, so names of the network still resolve.
pub const DNS_SERVERS: &str = "berth.dns";
/// Legacy links of a container, `TARGET:ALIAS` pairs joined by commas: each ALIAS resolves
/// to TARGET (a container or service name) for this container alone.
pub const LINKS: &str = "berth.links";
/// Id of the container whose network namespace this one shares (`network_mode: service:X`
/// or `container:X`).
pub const NETWORK_FROM: &str = "berth.network-from";
/// Compose files the project came from, for `berth ls`.
pub const CONFIG_FILES: &str = "com.docker.compose.project.config_files";
/// Project working directory, for `berth ls`.
pub const WORKING_DIR: &str = "com.docker.compose.project.working_dir";

/// Name of a service container: `container_name` when set, else `<project>-<service>-<n>`.
pub fn container_name(project: &str, service: &str, number: u32, fixed: Option<&str>) -> String {
    match fixed {
        Some(name) => name.to_string(),
        None => format!("{project}-{service}-{number}"),
    }
}

/// The upstreams in a container's [`DNS_SERVERS`] label, on port 53.
pub fn dns_servers(
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<std::net::SocketAddr> {
    labels
        .get(DNS_SERVERS)
        .map(|v| {
            v.split(',')
                .filter_map(|s| s.trim().parse::<std::net::IpAddr>().ok())
                .map(|ip| std::net::SocketAddr::new(ip, 53))
                .collect()
        })
        .unwrap_or_default()
}

/// Docker's link forms (`db`, `db:alias`, `/db:/web/alias`) as `TARGET:ALIAS` pairs; an error
/// names the link that is not one.
pub fn parse_links(links: &[String]) -> Result<Vec<(String, String)>, String> {
    links
        .iter()
        .map(|l| {
            let (target, alias) = l.split_once(':').unwrap_or((l, l));
            let target = target.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            let ok = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            };
            if ok(target) && ok(alias) {
                Ok((target.to_string(), alias.to_string()))
            } else {
                Err(format!("invalid link {l:?}: use NAME or NAME:ALIAS"))
            }
        })
        .collect()
}

/// The links in a container's [`LINKS`] label, as the DNS takes them.
pub fn links(
    labels: &std::collections::BTreeMap<String, String>,
) -> Vec<berth_netd::dns::LinkAlias> {
    labels
        .get(LINKS)
        .into_iter()
        .flat_map(|v| v.split(','))
        .filter_map(|p| p.split_once(':'))
        .map(|(target, alias)| berth_netd::dns::LinkAlias {
            alias: alias.to_string(),
            target: target.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod link_tests {
    use super::*;

    #[test]
    fn links_read_in_dockers_forms() {
        let l = |v: &[&str]| parse_links(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            l(&["db", "db:database", "/cache:/web/kv"]).expect("valid"),
            [
                ("db".to_string(), "db".to_string()),
                ("db".into(), "database".into()),
                ("cache".into(), "kv".into())
            ]
        );
        assert!(l(&["db:"]).expect_err("empty alias").contains("\"db:\""));
        assert!(l(&["a,b:c"]).is_err());
        let labels = [(LINKS.to_string(), "db:database,cache:kv".to_string())].into();
        let got = links(&labels);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[1].target.as_str(), got[1].alias.as_str()),
            ("cache", "kv")
        );
    }
}
