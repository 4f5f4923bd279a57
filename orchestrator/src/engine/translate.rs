//! From a resolved Compose service (+ its image) to the runtime's `ContainerConfig`.
//!
//! Pure: everything the container will be is decided here from the model, so it is unit-tested
//! without root, and the config hash of the service covers what this function reads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use berth_runtime::container::config::ProcessOverrides;
use berth_runtime::container::volumes::anonymous_name;
use berth_runtime::container::{ContainerConfig, MountSpec, NetworkMode, Ulimit};
use berth_runtime::image::Image;

use super::labels;
use crate::compose::{Project, Service, VolumeType};

/// Why a service cannot become a container; names the service and the key.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("service {service}: {key}: {value:?} is not a signal name or number")]
    Signal {
        service: String,
        key: &'static str,
        value: String,
    },
    #[error("service {service}: no command: neither the service nor image {image} sets one")]
    NoCommand { service: String, image: String },
    #[error("service {service}: volumes: a {kind} mount needs a source for target {target}")]
    NoSource {
        service: String,
        kind: &'static str,
        target: String,
    },
    #[error(
        "service {service}: volumes[{index}]: target {target:?} must be an absolute path in the container"
    )]
    RelativeTarget {
        service: String,
        index: usize,
        target: String,
    },
    #[error(
        "service {service}: network_mode {mode:?} is not supported (use host, none, service:NAME, container:NAME or networks:)"
    )]
    NetworkMode { service: String, mode: String },
    #[error("service {service}: {source}")]
    NameFile {
        service: String,
        source: super::resolv::NotOneLine,
    },
    #[error(
        "service {service}: {kind}: {name} is not declared at the top level, or has no file: \
         (berth mounts file-based {kind} only)"
    )]
    FileObject {
        service: String,
        kind: &'static str,
        name: String,
    },
    #[error("service {service}: runtime: {source}")]
    Runtime {
        service: String,
        #[source]
        source: berth_runtime::container::oci_runtime::UnknownRuntime,
    },
}

/// Parses `SIGTERM`, `TERM` or `15`.
pub fn parse_signal(s: &str) -> Option<i32> {
    if let Ok(n) = s.parse::<i32>() {
        return (1..=64).contains(&n).then_some(n);
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    nix::sys::signal::Signal::from_str(&name)
        .ok()
        .map(|s| s as i32)
}

/// The volume of `inherit` mounted at `target` (paths compared component-wise, so `/data/`
/// and `/data` are the same place).
fn inherited<'a>(inherit: &'a BTreeMap<String, String>, target: &Path) -> Option<&'a String> {
    inherit
        .iter()
        .find(|(t, _)| Path::new(t) == target)
        .map(|(_, name)| name)
}

/// The container config for replica `number` of `service`.
///
/// Anonymous volumes (`volumes: [/data]`, a `type: volume` mount without source, and the
/// image's VOLUME paths no mount covers) take the volume `inherit` names for their target (the
/// replaced container's, on a recreate), else a fresh random name; all of them are listed in
/// `anonymous_volumes`.
pub fn container_config(
    project: &Project,
    service: &str,
    svc: &Service,
    number: u32,
    image: &Image,
    config_hash: &str,
    inherit: &BTreeMap<String, String>,
) -> Result<ContainerConfig, TranslateError> {
    let name = labels::container_name(
        &project.name,
        service,
        number,
        svc.container_name.as_deref(),
    );
    // Docker's rules for combining the image's Entrypoint/Cmd/Env/User/WorkingDir/StopSignal
    // with overrides live in the runtime (shared with `berth container run`).
    let env = svc
        .environment
        .iter()
        // `KEY` without a value was resolved from the host by the loader; None = unset.
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect();
    let overrides = ProcessOverrides {
        entrypoint: svc.entrypoint.clone(),
        cmd: svc.command.clone().unwrap_or_default(),
        env,
        user: svc.user.clone(),
        working_dir: svc.working_dir.clone().map(PathBuf::from),
    };
    let mut c = ContainerConfig::from_image(image.layer_dirs(), &image.config, overrides);
    c.name = name.clone();
    if c.args.is_empty() {
        return Err(TranslateError::NoCommand {
            service: service.into(),
            image: project.image_of(service).unwrap_or_default(),
        });
    }
    let rc = image.runtime_config();
    c.hostname = Some(svc.hostname.clone().unwrap_or_else(|| name.clone()));
    c.network = match svc.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => NetworkMode::New,
        Some("host") => NetworkMode::Host,
        Some("none") => NetworkMode::None,
        // The namespace of another container: only the engine can find it (it must exist);
        // `Engine::join_shared_network` replaces this before the container is created.
        Some(m) if m.starts_with("service:") || m.starts_with("container:") => NetworkMode::None,
        Some(other) => {
            return Err(TranslateError::NetworkMode {
                service: service.into(),
                mode: other.into(),
            });
        }
    };
    // `dns:` (checked to be addresses by the loader): the embedded DNS's upstreams for this
    // container on its networks; without networks, its resolv.conf lines, as with
    // `dns_search:` and `dns_opt:` (on networks those two are written when it is attached).
    let servers: Vec<std::net::IpAddr> = svc.dns.iter().filter_map(|d| d.parse().ok()).collect();
    let resolv_overrides =
        !servers.is_empty() || !svc.dns_search.is_empty() || !svc.dns_opt.is_empty();
    let mut dns_label = None;
    if matches!(c.network, NetworkMode::New) {
        if !servers.is_empty() {
            let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
            dns_label = Some(list.join(","));
        }
    } else if resolv_overrides {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        c.resolv_conf = Some(
            super::resolv::override_resolv(&host, &servers, &svc.dns_search, &svc.dns_opt)
                .map_err(|source| TranslateError::NameFile {
                    service: service.into(),
                    source,
                })?,
        );
    }
    let mut anonymous = Vec::new();
    for (index, v) in svc.volumes.iter().enumerate() {
        let target = PathBuf::from(&v.target);
        let need = |kind| TranslateError::NoSource {
            service: service.into(),
            kind,
            target: v.target.clone(),
        };
        c.mounts.push(match v.kind {
            VolumeType::Bind => MountSpec::Bind {
                source: PathBuf::from(v.source.as_deref().ok_or_else(|| need("bind"))?),
                target,
                read_only: v.read_only,
            },
            VolumeType::Volume => {
                let name = match v.source.as_deref().filter(|s| !s.is_empty()) {
                    Some(key) => project
                        .volumes
                        .get(key)
                        .map(|vol| vol.name.clone())
                        .unwrap_or_else(|| key.to_string()),
                    None => {
                        if !target.is_absolute() {
                            return Err(TranslateError::RelativeTarget {
                                service: service.into(),
                                index,
                                target: v.target.clone(),
                            });
                        }
                        let name = inherited(inherit, &target)
                            .cloned()
                            .unwrap_or_else(anonymous_name);
                        anonymous.push(name.clone());
                        name
                    }
                };
                MountSpec::Volume {
                    name,
                    target,
                    read_only: v.read_only,
                }
            }
            VolumeType::Tmpfs => MountSpec::Tmpfs {
                target,
                options: v
                    .tmpfs
                    .as_ref()
                    .and_then(|t| t.size.as_ref())
                    .map(|s| vec![format!("size={}", s.0)])
                    .unwrap_or_default(),
            },
            _ => {
                return Err(TranslateError::NoSource {
                    service: service.into(),
                    kind: "supported (bind, volume or tmpfs)",
                    target: v.target.clone(),
                });
            }
        });
    }
    // File-based secrets and configs, read-only at their target (secrets default to
    // /run/secrets/NAME, a relative target lands there too; configs default to /NAME).
    for (kind, refs, objects, base) in [
        ("secrets", &svc.secrets, &project.secrets, "/run/secrets"),
        ("configs", &svc.configs, &project.configs, "/"),
    ] {
        for r in refs {
            let file = objects
                .get(&r.source)
                .and_then(|o| o.file.as_ref())
                .ok_or_else(|| TranslateError::FileObject {
                    service: service.into(),
                    kind,
                    name: r.source.clone(),
                })?;
            let target = Path::new(base).join(r.target.as_deref().unwrap_or(&r.source));
            c.mounts.push(MountSpec::Bind {
                source: PathBuf::from(file),
                target,
                read_only: true,
            });
        }
    }
    for t in &svc.tmpfs {
        let mut parts = t.splitn(2, ':');
        let target = PathBuf::from(parts.next().unwrap_or_default());
        let options = parts
            .next()
            .map(|o| o.split(',').map(String::from).collect())
            .unwrap_or_default();
        c.mounts.push(MountSpec::Tmpfs { target, options });
    }
    // The image's VOLUMEs that no mount covers get an anonymous volume, as dockerd gives them.
    let image_volumes = image
        .config
        .config()
        .as_ref()
        .and_then(|c| c.volumes().clone())
        .unwrap_or_default();
    for t in image_volumes {
        let target = PathBuf::from(&t);
        let covered = c.mounts.iter().any(|m| match m {
            MountSpec::Bind { target: mt, .. }
            | MountSpec::Volume { target: mt, .. }
            | MountSpec::Tmpfs { target: mt, .. } => *mt == target,
        });
        if covered || !target.is_absolute() {
            continue;
        }
        let name = inherited(inherit, &target)
            .cloned()
            .unwrap_or_else(anonymous_name);
        anonymous.push(name.clone());
        c.mounts.push(MountSpec::Volume {
            name,
            target,
            read_only: false,
        });
    }
    c.anonymous_volumes = anonymous;
    c.read_only = svc.read_only.unwrap_or(false);
    c.privileged = svc.privileged.unwrap_or(false);
    c.cap_add = svc.cap_add.clone();
    c.cap_drop = svc.cap_drop.clone();
    // Refused values never get here (the loader checks them with the same parser).
    for o in &svc.security_opt {
        if let Ok(opt) = berth_runtime::container::SecurityOpt::parse(o) {
            opt.apply(&mut c);
        }
    }
    c.init = svc.init.unwrap_or(false);
    // `runtime: crun|runc` runs the same bundle with that OCI runtime (`berth`: our own).
    c.oci_runtime = match svc.runtime.as_deref() {
        None | Some("berth") => None,
        Some(r) => {
            let rt =
                berth_runtime::container::oci_runtime::OciRuntime::parse(r).map_err(|source| {
                    TranslateError::Runtime {
                        service: service.to_string(),
                        source,
                    }
                })?;
            Some(rt.name().to_string())
        }
    };
    c.tty = svc.tty.unwrap_or(false);
    c.open_stdin = svc.stdin_open.unwrap_or(false);
    c.sysctls = svc.sysctls.clone();
    if let Some(s) = &svc.shm_size {
        c.shm_size = s.0;
    }
    c.ulimits = svc
        .ulimits
        .iter()
        .map(|(name, u)| Ulimit {
            name: name.clone(),
            soft: u.soft.max(0) as u64,
            hard: u.hard.max(0) as u64,
        })
        .collect();
    let limits = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    c.resources.memory = limits
        .and_then(|l| l.memory.as_ref())
        .or(svc.mem_limit.as_ref())
        .map(|b| b.0 as i64);
    // cpu_quota/cpu_period (the CFS pair Docker passes through) is the same limit as cpus.
    let cfs = svc.cpu_quota.filter(|q| *q > 0).map(|q| {
        let period = svc.cpu_period.filter(|p| *p > 0).unwrap_or(100_000);
        q as f64 / period as f64
    });
    c.resources.cpus = limits.and_then(|l| l.cpus).or(svc.cpus).or(cfs);
    // `logging:` with the json-file or local driver: the shim's rotation (checked by the
    // loader; other drivers are warned by name).
    if let Some(lg) = &svc.logging
        && matches!(
            lg.driver.as_deref(),
            None | Some("json-file") | Some("local")
        )
    {
        if let Some(size) = lg
            .options
            .get("max-size")
            .and_then(|v| crate::compose::units::parse_size(v).ok())
        {
            c.log_max_size = size;
        }
        if let Some(n) = lg.options.get("max-file").and_then(|v| v.parse().ok()) {
            c.log_max_files = n;
        }
    }
    c.resources.pids_limit = limits.and_then(|l| l.pids).or(svc.pids_limit);
    c.resources.cpu_shares = svc.cpu_shares.map(|s| s.max(2) as u64);
    c.resources.cpuset_cpus = svc.cpuset.clone();
    if let Some(sig) = svc.stop_signal.clone() {
        c.stop_signal = parse_signal(&sig).ok_or_else(|| TranslateError::Signal {
            service: service.into(),
            key: "stop_signal",
            value: sig.clone(),
        })?;
    }
    if let Some(d) = &svc.stop_grace_period {
        c.stop_timeout = d.0.as_secs();
    }
    let mut l: BTreeMap<String, String> = rc
        .and_then(|r| r.labels().clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    l.extend(svc.labels.clone());
    if let Some(v) = dns_label {
        l.insert(labels::DNS_SERVERS.into(), v);
    }
    l.insert(labels::PROJECT.into(), project.name.clone());
    l.insert(labels::SERVICE.into(), service.into());
    l.insert(labels::NUMBER.into(), number.to_string());
    l.insert(labels::CONFIG_HASH.into(), config_hash.into());
    l.insert(labels::ONEOFF.into(), "False".into());
    l.insert(labels::IMAGE.into(), image.id.to_string());
    if let Some(check) = super::health::Check::from_service(svc, Some(image))
        && let Ok(json) = serde_json::to_string(&check)
    {
        l.insert(labels::HEALTHCHECK.into(), json);
    }
    if let Some(policy) = svc.restart.as_ref().filter(|r| r.as_str() != "no") {
        l.insert(labels::RESTART.into(), policy.clone());
    }
    l.insert(
        labels::WORKING_DIR.into(),
        project.working_dir.display().to_string(),
    );
    let files: Vec<String> = project
        .compose_files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    l.insert(labels::CONFIG_FILES.into(), files.join(","));
    c.labels = l;
    Ok(c)
}
