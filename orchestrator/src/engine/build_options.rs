//! A Compose service's `build:` section in the runtime's build options: the RUN options
//! (`network`, `extra_hosts`, `shm_size`, `ulimits`, `privileged`), the cache sources
//! (`cache_from`) and the extra tags (`tags`). The same [`RunOptions`] the docker CLI's
//! `POST /build` and `berth image build` fill, so each key is translated once.

use berth_runtime::build::run_options::RunOptions;
use berth_runtime::container::config::Ulimit;

use crate::compose::Build;

/// What a `build:` section asks of RUN steps, or the key it cannot honour by name.
pub fn run_options(b: &Build) -> Result<RunOptions, String> {
    let network = RunOptions::parse_network(b.network.as_deref().unwrap_or(""))
        .map_err(|e| format!("build.network: {e}"))?;
    let hosts = &b.extra_hosts;
    let extra_hosts = hosts
        .iter()
        .flat_map(|(host, ips)| ips.iter().map(move |ip| format!("{host}:{ip}")))
        .map(|h| RunOptions::parse_extra_host(&h).map_err(|e| format!("build.extra_hosts: {e}")))
        .collect::<Result<_, _>>()?;
    let limits = &b.ulimits;
    let ulimits = limits
        .iter()
        .map(|(name, u)| Ulimit {
            name: name.clone(),
            // -1 is "unlimited", as in Docker.
            soft: u64::try_from(u.soft).unwrap_or(u64::MAX),
            hard: u64::try_from(u.hard).unwrap_or(u64::MAX),
        })
        .collect();
    Ok(RunOptions {
        network,
        extra_hosts,
        shm_size: b.shm_size.as_ref().map(|s| s.0).filter(|s| *s > 0),
        ulimits,
        privileged: b.privileged.unwrap_or(false),
    })
}

/// The local images `cache_from` names: plain references, or `type=registry,ref=IMAGE` (the
/// image as the store has it; berth does not fetch cache from registries). Other cache
/// types (`local`, `gha`, ...) are refused by name.
pub fn cache_from(b: &Build) -> Result<Vec<String>, String> {
    b.cache_from
        .iter()
        .map(|entry| {
            if !entry.contains('=') {
                return Ok(entry.clone());
            }
            let fields: Vec<(&str, &str)> =
                entry.split(',').filter_map(|f| f.split_once('=')).collect();
            let get = |k: &str| fields.iter().find(|(f, _)| *f == k).map(|(_, v)| *v);
            match (get("type"), get("ref")) {
                (Some("registry"), Some(r)) if !r.is_empty() => Ok(r.to_string()),
                _ => Err(format!(
                    "build.cache_from {entry:?}: berth takes cache from local images only \
                     (IMAGE or type=registry,ref=IMAGE)"
                )),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::build::steps::RunNetworkMode;

    #[test]
    fn build_keys_become_run_options() {
        let b: Build = yaml_serde::from_str(
            "context: .\nnetwork: none\nshm_size: 2m\nprivileged: true\n\
             extra_hosts: {db: [10.0.0.9]}\nulimits: {nofile: {soft: 100, hard: 200}, core: 0}\n\
             cache_from: [app:1, 'type=registry,ref=app:2']\n",
        )
        .expect("build");
        let o = run_options(&b).expect("options");
        assert_eq!(o.network, RunNetworkMode::None);
        assert_eq!(o.shm_size, Some(2 << 20));
        assert!(o.privileged);
        assert_eq!(o.hosts_lines(), "10.0.0.9\tdb\n");
        assert_eq!(o.ulimits.len(), 2);
        assert_eq!(cache_from(&b).expect("cache"), ["app:1", "app:2"]);
        let bad: Build =
            yaml_serde::from_str("context: .\nnetwork: mynet\ncache_from: ['type=local,src=x']\n")
                .expect("build");
        assert!(run_options(&bad).is_err_and(|e| e.contains("build.network")));
        assert!(cache_from(&bad).is_err_and(|e| e.contains("build.cache_from")));
    }
}
