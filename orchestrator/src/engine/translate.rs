//! From a resolved Compose service to "a container to create" ([`ContainerSpec`], what
//! `docker compose` sends the engine), then through the one translation of
//! [`super::container_spec`] to the runtime's `ContainerConfig`, plus the engine's labels.
//!
//! Pure: everything the container will be is decided here from the model, so it is unit-tested
//! without root, and the config hash of the service covers what this function reads.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use berth_runtime::container::ContainerConfig;
use berth_runtime::image::Image;

use super::container_spec::{Context, SpecError};
use super::labels;
use crate::api::container::{
    ContainerSpec, HostConfig, LogConfig, Mount, RestartPolicy, TmpfsOptions, UlimitSpec,
};
use crate::compose::{Project, Service, VolumeType};

/// Why a service cannot become a container; names the service and the key.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("service {service}: {source}")]
    Spec {
        service: String,
        #[source]
        source: SpecError,
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
    #[error(
        "service {service}: {kind}: {name} is not declared at the top level, or has no file: \
         (berth mounts file-based {kind} only)"
    )]
    FileObject {
        service: String,
        kind: &'static str,
        name: String,
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

/// "A container to create" for replica `number` of `service`, as `docker compose` lowers a
/// service into the engine's create body (the name is [`labels::container_name`]).
pub fn service_spec(
    project: &Project,
    service: &str,
    svc: &Service,
    name: &str,
) -> Result<ContainerSpec, TranslateError> {
    let spec_err = |field: &str, message: String| TranslateError::Spec {
        service: service.into(),
        source: SpecError::Invalid {
            field: field.into(),
            message,
        },
    };
    let network_mode = match svc.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => String::new(),
        Some(m @ ("host" | "none")) => m.to_string(),
        // The namespace of another container: only the engine can find it (it must exist);
        // `Engine::join_shared_network` joins it before the container is created.
        Some(m) if m.starts_with("service:") || m.starts_with("container:") => m.to_string(),
        Some(other) => {
            return Err(TranslateError::NetworkMode {
                service: service.into(),
                mode: other.into(),
            });
        }
    };
    let mut mounts = Vec::new();
    for (index, v) in svc.volumes.iter().enumerate() {
        let r#type = match v.kind {
            VolumeType::Bind => "bind",
            VolumeType::Volume => "volume",
            VolumeType::Tmpfs => "tmpfs",
            _ => {
                return Err(TranslateError::NoSource {
                    service: service.into(),
                    kind: "supported (bind, volume or tmpfs)",
                    target: v.target.clone(),
                });
            }
        };
        let source = v.source.clone().unwrap_or_default();
        if matches!(v.kind, VolumeType::Bind) && source.is_empty() {
            return Err(TranslateError::NoSource {
                service: service.into(),
                kind: "bind",
                target: v.target.clone(),
            });
        }
        if matches!(v.kind, VolumeType::Volume) && source.is_empty() && !v.target.starts_with('/') {
            return Err(TranslateError::RelativeTarget {
                service: service.into(),
                index,
                target: v.target.clone(),
            });
        }
        // A volume key of the file: the volume's real name (`<project>_data`, or `name:`).
        let source = match v.kind {
            VolumeType::Volume => project
                .volumes
                .get(&source)
                .map(|vol| vol.name.clone())
                .unwrap_or(source),
            _ => source,
        };
        mounts.push(Mount {
            r#type: r#type.into(),
            source,
            target: v.target.clone(),
            read_only: v.read_only,
            tmpfs_options: v
                .tmpfs
                .as_ref()
                .and_then(|t| t.size.as_ref())
                .map(|s| TmpfsOptions {
                    size_bytes: Some(s.0),
                    ..Default::default()
                }),
            ..Default::default()
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
            mounts.push(Mount {
                r#type: "bind".into(),
                source: Path::new(file).display().to_string(),
                target: target.display().to_string(),
                read_only: true,
                ..Default::default()
            });
        }
    }
    let limits = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.as_ref());
    // `logging:` with the json-file or local driver: the shim's rotation (the loader warns
    // about other drivers and options by name).
    let mut log_config = LogConfig::default();
    if let Some(lg) = &svc.logging
        && matches!(
            lg.driver.as_deref(),
            None | Some("json-file") | Some("local")
        )
    {
        for key in ["max-size", "max-file"] {
            if let Some(v) = lg.options.get(key) {
                log_config.config.insert(key.into(), v.clone());
            }
        }
    }
    let restart_policy = match svc.restart.as_deref() {
        None => RestartPolicy::default(),
        Some(r) => RestartPolicy::parse(r).map_err(|e| spec_err("restart", e))?,
    };
    let host_config = HostConfig {
        mounts,
        tmpfs: svc
            .tmpfs
            .iter()
            .map(|t| {
                let (target, opts) = t.split_once(':').unwrap_or((t, ""));
                (target.to_string(), opts.to_string())
            })
            .collect(),
        network_mode,
        restart_policy,
        cap_add: svc.cap_add.clone(),
        cap_drop: svc.cap_drop.clone(),
        dns: svc.dns.clone(),
        dns_options: svc.dns_opt.clone(),
        dns_search: svc.dns_search.clone(),
        privileged: svc.privileged.unwrap_or(false),
        readonly_rootfs: svc.read_only.unwrap_or(false),
        security_opt: svc.security_opt.clone(),
        ulimits: svc
            .ulimits
            .iter()
            .map(|(name, u)| UlimitSpec {
                name: name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        shm_size: svc.shm_size.as_ref().map(|s| s.0).unwrap_or(0),
        sysctls: svc.sysctls.clone(),
        init: svc.init,
        runtime: svc.runtime.clone(),
        log_config,
        memory: limits
            .and_then(|l| l.memory.as_ref())
            .or(svc.mem_limit.as_ref())
            .map(|b| b.0 as i64)
            .unwrap_or(0),
        nano_cpus: limits
            .and_then(|l| l.cpus)
            .or(svc.cpus)
            .map(|c| (c * 1e9).round() as i64)
            .unwrap_or(0),
        cpu_shares: svc.cpu_shares.unwrap_or(0),
        cpu_period: svc.cpu_period.unwrap_or(0),
        cpu_quota: svc.cpu_quota.unwrap_or(0),
        cpuset_cpus: svc.cpuset.clone().unwrap_or_default(),
        pids_limit: limits.and_then(|l| l.pids).or(svc.pids_limit),
        ..Default::default()
    };
    Ok(ContainerSpec {
        hostname: svc.hostname.clone().unwrap_or_else(|| name.to_string()),
        user: svc.user.clone().unwrap_or_default(),
        tty: svc.tty.unwrap_or(false),
        open_stdin: svc.stdin_open.unwrap_or(false),
        // `KEY` without a value was resolved from the host by the loader; None = unset.
        env: svc
            .environment
            .iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
            .collect(),
        cmd: svc.command.clone(),
        entrypoint: svc.entrypoint.clone(),
        image: project.image_of(service).unwrap_or_default(),
        working_dir: svc.working_dir.clone().unwrap_or_default(),
        labels: svc.labels.clone(),
        stop_signal: svc.stop_signal.clone(),
        stop_timeout: svc.stop_grace_period.as_ref().map(|d| d.0.as_secs()),
        host_config,
        ..Default::default()
    })
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
    let spec = service_spec(project, service, svc, &name)?;
    let cx = Context {
        image: Some(image),
        inherit: Some(inherit),
        containers: None,
    };
    let mut c = super::container_spec::translate(&name, &spec, &cx)
        .map_err(|source| TranslateError::Spec {
            service: service.into(),
            source,
        })?
        .config;
    if c.args.is_empty() {
        return Err(TranslateError::NoCommand {
            service: service.into(),
            image: spec.image,
        });
    }
    let l = &mut c.labels;
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
    Ok(c)
}
