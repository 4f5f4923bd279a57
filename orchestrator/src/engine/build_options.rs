//! A Compose service's `build:` section in the runtime's build options: the RUN options
//! (`network`, `extra_hosts`, `shm_size`, `ulimits`, `privileged`), the cache sources
//! (`cache_from`, `cache_to`), the SSH agents (`ssh`), the named contexts
//! (`additional_contexts`, another service's image among them) and the extra tags (`tags`).
//! The same [`RunOptions`] the docker CLI's `POST /build` and `berth image build` fill, so each
//! key is translated once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_runtime::build::exec::{
    BuildSsh, CacheSource, NamedContext, NamedSource, parse_cache_from, parse_cache_to,
};
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

/// Where `cache_from` finds cache: local images (`IMAGE`, `type=registry,ref=IMAGE`: the image
/// as the store has it, berth does not fetch cache from registries) and directories a
/// `cache_to` wrote (`type=local,src=DIR`, relative to the project directory). Other cache
/// types (`gha`, `s3`, ...) are refused by name.
pub fn cache_from(b: &Build, project_dir: &Path) -> Result<(Vec<String>, Vec<PathBuf>), String> {
    let (mut images, mut dirs) = (Vec::new(), Vec::new());
    for entry in &b.cache_from {
        match parse_cache_from(entry).map_err(|e| format!("build.cache_from {e}"))? {
            CacheSource::Image(i) => images.push(i),
            CacheSource::Dir(d) => dirs.push(project_dir.join(d)),
        }
    }
    Ok((images, dirs))
}

/// Where `cache_to` exports the build's cache: one `type=local,dest=DIR` (relative to the
/// project directory); other exporters are refused by name.
pub fn cache_to(b: &Build, project_dir: &Path) -> Result<Option<PathBuf>, String> {
    match b.cache_to.as_slice() {
        [] => Ok(None),
        [one] => parse_cache_to(one)
            .map(|d| Some(project_dir.join(d)))
            .map_err(|e| format!("build.cache_to {e}")),
        _ => Err("build.cache_to: berth exports to one directory (one type=local,dest=DIR)".into()),
    }
}

/// The SSH agents `build.ssh` names, as `--ssh` takes them: a list of `default`, `ID` or
/// `ID=SOCKET`, or a map of ID to SOCKET (empty: `SSH_AUTH_SOCK`). `SSH_AUTH_SOCK` is the
/// project environment's (the user's shell, carried by the CLI) or else the daemon's own; a
/// relative socket path is the project directory's, `~/` the environment's HOME.
pub fn ssh(
    b: &Build,
    env: &BTreeMap<String, String>,
    project_dir: &Path,
) -> Result<Vec<BuildSsh>, String> {
    use yaml_serde::Value;
    let bad = |m: String| format!("build.ssh: {m}");
    let specs: Vec<String> = match &b.ssh {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => Ok(s.clone()),
                other => Err(bad(format!("expected default or ID=SOCKET, got {other:?}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| match (k, v) {
                (Value::String(k), Value::Null) => Ok(k.clone()),
                (Value::String(k), Value::String(v)) if v.is_empty() => Ok(k.clone()),
                (Value::String(k), Value::String(v)) => Ok(format!("{k}={v}")),
                _ => Err(bad(format!("expected ID: SOCKET, got {k:?}: {v:?}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(format!("expected a list or a map, got {other:?}"))),
    };
    let auth_sock = || {
        env.get("SSH_AUTH_SOCK")
            .cloned()
            .or_else(|| std::env::var("SSH_AUTH_SOCK").ok())
    };
    specs
        .iter()
        .map(|spec| {
            let mut a = BuildSsh::parse(spec, auth_sock).map_err(&bad)?;
            let raw = a.socket.to_string_lossy().into_owned();
            if let (Some(rest), Some(home)) = (raw.strip_prefix("~/"), env.get("HOME")) {
                a.socket = Path::new(home).join(rest);
            } else if a.socket.is_relative() {
                a.socket = project_dir.join(&a.socket);
            }
            Ok(a)
        })
        .collect()
}

/// The named contexts `build.additional_contexts` gives (a map of NAME to a directory,
/// `docker-image://REF` or `service:OTHER`, or a list of `NAME=VALUE`); a relative directory is
/// the project directory's, as Compose resolves it. `service:OTHER` is the image built for
/// OTHER, which `service_image` finds in the local store (it is never pulled); remote sources
/// are refused by name.
pub fn additional_contexts(
    b: &Build,
    project_dir: &Path,
    service_image: impl Fn(&str) -> Result<String, String>,
) -> Result<Vec<NamedContext>, String> {
    use yaml_serde::Value;
    let bad = |m: String| format!("build.additional_contexts: {m}");
    let pairs: Vec<(String, String)> = match &b.additional_contexts {
        None | Some(Value::Null) => return Ok(Vec::new()),
        Some(Value::Mapping(m)) => m
            .iter()
            .map(|(k, v)| match (k, v) {
                (Value::String(k), Value::String(v)) => Ok((k.clone(), v.clone())),
                _ => Err(bad(format!("expected NAME: PATH, got {k:?}: {v:?}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(Value::Sequence(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s
                    .split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| bad(format!("{s:?}: expected NAME=PATH"))),
                other => Err(bad(format!("expected NAME=PATH, got {other:?}"))),
            })
            .collect::<Result<_, _>>()?,
        Some(other) => return Err(bad(format!("expected a map or a list, got {other:?}"))),
    };
    pairs
        .iter()
        .map(|(name, value)| {
            if let Some(other) = value.strip_prefix("service:") {
                let image =
                    service_image(other).map_err(|e| bad(format!("{name}={value}: {e}")))?;
                // Checked as any name is, then standing for the store's image.
                let mut c =
                    NamedContext::new(name, &format!("docker-image://{image}"), project_dir)
                        .map_err(&bad)?;
                c.source = NamedSource::Local(image);
                return Ok(c);
            }
            NamedContext::new(name, value, project_dir).map_err(&bad)
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
        let dir = Path::new("/proj");
        assert_eq!(cache_from(&b, dir).expect("cache").0, ["app:1", "app:2"]);
        let bad: Build = yaml_serde::from_str(
            "context: .\nnetwork: mynet\ncache_from: ['type=local,src=c', 'type=gha']\n\
             cache_to: ['type=local,dest=c', 'type=inline']\n",
        )
        .expect("build");
        assert!(run_options(&bad).is_err_and(|e| e.contains("build.network")));
        assert!(cache_from(&bad, dir).is_err_and(|e| e.contains("build.cache_from")));
        assert!(cache_to(&bad, dir).is_err_and(|e| e.contains("build.cache_to")));
        let local: Build = yaml_serde::from_str(
            "context: .\ncache_from: ['type=local,src=c']\ncache_to: ['type=local,dest=c,mode=max']\n",
        )
        .expect("build");
        assert_eq!(cache_from(&local, dir).expect("dirs").1, [dir.join("c")]);
        assert_eq!(cache_to(&local, dir).expect("to"), Some(dir.join("c")));
    }

    #[test]
    fn ssh_agents_read_as_composes() {
        let env: BTreeMap<String, String> = [
            ("SSH_AUTH_SOCK".to_string(), "/run/u/agent".to_string()),
            ("HOME".to_string(), "/home/u".to_string()),
        ]
        .into();
        let dir = Path::new("/proj");
        let b: Build =
            yaml_serde::from_str("context: .\nssh: [default, 'gh=~/gh.sock', 'rel=a.sock']\n")
                .expect("build");
        let got: Vec<(String, String)> = ssh(&b, &env, dir)
            .expect("ssh")
            .into_iter()
            .map(|a| (a.id, a.socket.display().to_string()))
            .collect();
        assert_eq!(
            got,
            [
                ("default".into(), "/run/u/agent".into()),
                ("gh".into(), "/home/u/gh.sock".into()),
                ("rel".into(), "/proj/a.sock".into())
            ]
        );
        let m: Build =
            yaml_serde::from_str("context: .\nssh: {default: , k: /s}\n").expect("build");
        assert_eq!(ssh(&m, &env, dir).expect("map").len(), 2);
        let bad: Build = yaml_serde::from_str("context: .\nssh: [{a: 1}]\n").expect("build");
        assert!(ssh(&bad, &env, dir).is_err_and(|e| e.contains("build.ssh")));
    }

    #[test]
    fn additional_contexts_read_as_composes() {
        let dir = Path::new("/proj");
        let images = |s: &str| match s {
            "base" => Ok("sha256:0123".to_string()),
            other => Err(format!("no image for {other}")),
        };
        let b: Build = yaml_serde::from_str(
            "context: .\nadditional_contexts: {lib: ./lib, base: 'docker-image://busybox:1'}\n",
        )
        .expect("build");
        let got = additional_contexts(&b, dir, images).expect("contexts");
        assert_eq!(
            (got[0].name.as_str(), got[1].name.as_str()),
            ("lib", "base")
        );
        assert_eq!(got[0].source, NamedSource::Dir(dir.join("./lib")));
        assert_eq!(got[1].source, NamedSource::Image("busybox:1".into()));
        let l: Build =
            yaml_serde::from_str("context: .\nadditional_contexts: ['x=/abs']\n").expect("build");
        assert_eq!(additional_contexts(&l, dir, images).expect("list").len(), 1);
        // Another service's image: the store's, by the id the resolver gives.
        let s: Build =
            yaml_serde::from_str("context: .\nadditional_contexts: ['b=service:base']\n")
                .expect("build");
        let got = additional_contexts(&s, dir, images).expect("service");
        assert_eq!(got[0].source, NamedSource::Local("sha256:0123".into()));
        for bad in [
            "{a: 'service:web'}",
            "{a: 'https://x/y.git'}",
            "['nameonly']",
        ] {
            let b: Build =
                yaml_serde::from_str(&format!("context: .\nadditional_contexts: {bad}\n"))
                    .expect("build");
            assert!(
                additional_contexts(&b, dir, images)
                    .is_err_and(|e| e.contains("build.additional_contexts")),
                "{bad}"
            );
        }
    }
}
