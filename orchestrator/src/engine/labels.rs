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
