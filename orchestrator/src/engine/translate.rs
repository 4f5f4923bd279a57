//! From a resolved Compose service to "a container to create" ([`ContainerSpec`], what
//! `docker compose` sends the engine), then through the one translation of
//! [`super::container_spec`] to the runtime's `ContainerConfig`, plus the engine's labels.
//!
//! Pure: everything the container will be is decided here from the model, so it is unit-tested
//! without root, and the config hash of the service covers what this function reads.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use berth_runtime::image::Image;

use super::container_spec::Translated;
use super::container_spec::{Context, SpecError};
use super::labels;
use crate::api::container::{
    ContainerSpec, DeviceMapping, Empty, EndpointIpam, EndpointSettings, HealthConfig, HostConfig,
    LogConfig, Mount, NetworkingConfig, PortBinding, RestartPolicy, ThrottleDevice, TmpfsOptions,
    UlimitSpec, WeightDevice,
};
use crate::compose::{Port, Project, Service, VolumeType};

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

/// A service mount's `bind:` options as Docker's `BindOptions` (`recursive` as Compose lowers
/// it: `disabled` NonRecursive, `writable` ReadOnlyNonRecursive, `readonly`
/// ReadOnlyForceRecursive).
fn bind_options(
    b: Option<&crate::compose::BindOptions>,
) -> Result<Option<crate::api::container::BindOptions>, String> {
    let Some(b) = b else { return Ok(None) };
    let recursive = match b.recursive.as_deref() {
        None => berth_runtime::container::BindRecursive::Enabled,
        Some(r) => berth_runtime::container::BindRecursive::parse(r)?,
    };
    use berth_runtime::container::BindRecursive::*;
    let o = crate::api::container::BindOptions {
        propagation: b.propagation.clone().unwrap_or_default(),
        non_recursive: recursive == Disabled,
        read_only_non_recursive: recursive == Writable,
        read_only_force_recursive: recursive == Readonly,
        ..Default::default()
    };
    Ok((o != crate::api::container::BindOptions::default()).then_some(o))
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
    let own_network = matches!(
        svc.network_mode.as_deref(),
        None | Some("bridge") | Some("default")
    );
    let (networking_config, first_network) = service_networks(project, service, svc)?;
    let network_mode = match svc.network_mode.as_deref() {
        // The first of the service's networks (in key order), as `docker compose` names it.
        None | Some("bridge") | Some("default") => first_network,
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
                .filter(|t| t.size.is_some() || t.mode.is_some())
                .map(|t| TmpfsOptions {
                    size_bytes: t.size.as_ref().map(|s| s.0),
                    mode: t.mode,
                    ..Default::default()
                }),
            volume_options: v
                .volume
                .as_ref()
                .filter(|o| o.nocopy == Some(true) || o.subpath.is_some())
                .map(|o| crate::api::container::VolumeOptions {
                    no_copy: o.nocopy == Some(true),
                    subpath: o.subpath.clone().unwrap_or_default(),
                    ..Default::default()
                }),
            bind_options: bind_options(v.bind.as_ref())
                .map_err(|e| spec_err(&format!("volumes[{index}].bind.recursive"), e))?,
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
    let reservations = svc
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.as_ref());
    let blkio = svc.blkio_config.as_ref();
    let throttles = |list: Option<&Vec<crate::compose::BlkioRate>>| -> Vec<ThrottleDevice> {
        list.into_iter()
            .flatten()
            .map(|t| ThrottleDevice {
                path: t.path.clone(),
                rate: t.rate.0,
            })
            .collect()
    };
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
    let restart_policy = match (
        svc.restart.as_deref(),
        svc.deploy.as_ref().and_then(|d| d.restart_policy.as_ref()),
    ) {
        (Some(r), _) => RestartPolicy::parse(r).map_err(|e| spec_err("restart", e))?,
        (None, Some(p)) => {
            deploy_restart(p).map_err(|e| spec_err("deploy.restart_policy.condition", e))?
        }
        (None, None) => RestartPolicy::default(),
    };
    // Published ports go on the first network; a service on no network publishes nothing.
    let (port_bindings, exposed_ports) = if own_network && !svc.networks.is_empty() {
        port_bindings(&svc.ports)
    } else {
        Default::default()
    };
    let host_config = HostConfig {
        // `service[:alias]`: the alias resolves to the service for this container alone.
        links: svc.links.clone(),
        mounts,
        port_bindings,
        extra_hosts: svc
            .extra_hosts
            .iter()
            .flat_map(|(host, ips)| ips.iter().map(move |ip| format!("{host}:{ip}")))
            .collect(),
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
        // `deploy.resources.reservations.memory` wins over `mem_reservation`, as in Compose.
        memory_reservation: reservations
            .and_then(|r| r.memory.as_ref())
            .or(svc.mem_reservation.as_ref())
            .map_or(0, |b| b.0 as i64),
        memory_swap: svc.memswap_limit.unwrap_or(0),
        memory_swappiness: svc.mem_swappiness,
        oom_score_adj: svc.oom_score_adj.unwrap_or(0),
        group_add: svc.group_add.clone(),
        cgroup_parent: svc.cgroup_parent.clone().unwrap_or_default(),
        cpu_shares: svc.cpu_shares.unwrap_or(0),
        cpu_period: svc.cpu_period.unwrap_or(0),
        cpu_quota: svc.cpu_quota.unwrap_or(0),
        cpu_realtime_period: svc.cpu_rt_period.unwrap_or(0),
        cpu_realtime_runtime: svc.cpu_rt_runtime.unwrap_or(0),
        cpuset_cpus: svc.cpuset.clone().unwrap_or_default(),
        pids_limit: limits.and_then(|l| l.pids).or(svc.pids_limit),
        oom_kill_disable: svc.oom_kill_disable,
        blkio_weight: blkio.and_then(|b| b.weight).unwrap_or(0),
        blkio_weight_device: blkio
            .map(|b| {
                b.weight_device
                    .iter()
                    .map(|w| WeightDevice {
                        path: w.path.clone(),
                        weight: w.weight,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        blkio_device_read_bps: throttles(blkio.map(|b| &b.device_read_bps)),
        blkio_device_write_bps: throttles(blkio.map(|b| &b.device_write_bps)),
        blkio_device_read_iops: throttles(blkio.map(|b| &b.device_read_iops)),
        blkio_device_write_iops: throttles(blkio.map(|b| &b.device_write_iops)),
        devices: svc
            .devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: d.source.clone(),
                path_in_container: d.target.clone(),
                cgroup_permissions: d.permissions.clone().unwrap_or_default(),
            })
            .collect(),
        device_cgroup_rules: svc.device_cgroup_rules.clone(),
        annotations: svc.annotations.clone().unwrap_or_default(),
        // `service:`/`container:` are joined by the engine (`Engine::join_shared_namespaces`).
        pid_mode: svc.pid.clone().unwrap_or_default(),
        ipc_mode: svc.ipc.clone().unwrap_or_default(),
        uts_mode: host_mode(&svc.uts),
        // `host` is how berth runs every container; other modes are warned at load.
        userns_mode: host_mode(&svc.userns_mode),
        cgroupns_mode: svc.cgroup.clone().unwrap_or_default(),
        ..Default::default()
    };
    let uts_host = host_config.uts_mode == "host";
    Ok(ContainerSpec {
        // The host's UTS namespace keeps the host's name, as Docker requires.
        hostname: match (&svc.hostname, uts_host) {
            (Some(h), _) => h.clone(),
            (None, true) => String::new(),
            (None, false) => name.to_string(),
        },
        domainname: svc.domainname.clone().unwrap_or_default(),
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
        exposed_ports,
        healthcheck: Some(health_config(svc)),
        host_config,
        networking_config,
        ..Default::default()
    })
}

/// Secrets and configs with `uid`, `gid` or `mode` are bound as a copy with that owner and
/// mode (a bind mount of the host file cannot change either); unset ones default as in Swarm:
/// owner 0:0, mode 0444. Without any of the three the host file itself is bound, as Compose
/// binds it.
fn owned_files(
    service: &str,
    svc: &Service,
    c: &mut berth_runtime::container::ContainerConfig,
) -> Result<(), TranslateError> {
    use berth_runtime::container::{FileOwner, MountSpec};
    for (kind, refs, base) in [
        ("secrets", &svc.secrets, "/run/secrets"),
        ("configs", &svc.configs, "/"),
    ] {
        for (i, r) in refs.iter().enumerate() {
            if r.uid.is_none() && r.gid.is_none() && r.mode.is_none() {
                continue;
            }
            let id = |key: &str, v: &Option<String>| -> Result<u32, TranslateError> {
                match v.as_deref() {
                    None => Ok(0),
                    Some(v) => v.trim().parse().map_err(|_| TranslateError::Spec {
                        service: service.into(),
                        source: SpecError::Invalid {
                            field: format!("{kind}[{i}].{key}"),
                            message: format!("{v:?} is not a numeric id"),
                        },
                    }),
                }
            };
            let owner = FileOwner {
                uid: id("uid", &r.uid)?,
                gid: id("gid", &r.gid)?,
                mode: r.mode.unwrap_or(0o444),
            };
            let want = Path::new(base).join(r.target.as_deref().unwrap_or(&r.source));
            for m in &mut c.mounts {
                if let MountSpec::Bind {
                    target, owned_copy, ..
                } = m
                    && *target == want
                {
                    *owned_copy = Some(owner);
                }
            }
        }
    }
    Ok(())
}

/// `pid:`/`uts:` as the spec's mode: `host` only (another container's namespace is warned
/// about by the loader and left out here).
fn host_mode(mode: &Option<String>) -> String {
    match mode.as_deref() {
        Some("host") => "host".into(),
        _ => String::new(),
    }
}

/// `deploy.restart_policy` as the engine's policy, the way Docker Compose maps it when
/// `restart:` is absent: `none` is no restart, `any` always, `on-failure` with `max_attempts`
/// as its retry count (`delay` and `window` are Swarm's and not applied).
fn deploy_restart(p: &crate::compose::RestartPolicy) -> Result<RestartPolicy, String> {
    let name = match p.condition.as_deref() {
        None | Some("none") | Some("no") => "no",
        Some("any") | Some("always") => "always",
        Some("on-failure") => "on-failure",
        Some("unless-stopped") => "unless-stopped",
        Some(other) => {
            return Err(format!(
                "{other:?} is not a restart condition (none, on-failure or any)"
            ));
        }
    };
    Ok(RestartPolicy {
        name: name.into(),
        maximum_retry_count: if name == "on-failure" {
            p.max_attempts.unwrap_or(0)
        } else {
            0
        },
    })
}

/// Compose `ports:` as Docker's `PortBindings` (the published ones; a published range
/// over one target publishes as many container ports) and `ExposedPorts` (all of them).
pub fn port_bindings(
    ports: &[Port],
) -> (BTreeMap<String, Vec<PortBinding>>, BTreeMap<String, Empty>) {
    let mut bindings: BTreeMap<String, Vec<PortBinding>> = BTreeMap::new();
    let mut exposed = BTreeMap::new();
    for p in ports {
        let proto = if p.protocol.is_empty() {
            "tcp"
        } else {
            p.protocol.as_str()
        };
        exposed.insert(format!("{}/{proto}", p.target), Empty {});
        let Some(published) = &p.published else {
            continue;
        };
        let count = match published.split_once('-') {
            Some((a, b)) => match (a.parse::<u32>(), b.parse::<u32>()) {
                (Ok(a), Ok(b)) if b > a => b - a,
                _ => 0,
            },
            None => 0,
        };
        let key = match count {
            0 => format!("{}/{proto}", p.target),
            n => format!("{}-{}/{proto}", p.target, u32::from(p.target) + n),
        };
        let host_ip = match p.host_ip.as_deref() {
            None | Some("0.0.0.0") => String::new(),
            Some(ip) => ip.to_string(),
        };
        bindings.entry(key).or_default().push(PortBinding {
            host_ip,
            host_port: published.clone(),
        });
    }
    (bindings, exposed)
}

/// The service's networks as Docker's `EndpointsConfig` (by the networks' real names, with
/// the service name and `aliases:`, static addresses and `gw_priority`), and
/// the first one's name for `NetworkMode`.
fn service_networks(
    project: &Project,
    service: &str,
    svc: &Service,
) -> Result<(NetworkingConfig, String), TranslateError> {
    let mut config = NetworkingConfig::default();
    let mut first = None;
    for (key, o) in &svc.networks {
        let net = project
            .networks
            .get(key)
            .ok_or_else(|| TranslateError::Spec {
                service: service.into(),
                source: SpecError::Invalid {
                    field: format!("networks.{key}"),
                    message: "not declared at the top level".into(),
                },
            })?;
        let o = o.clone().unwrap_or_default();
        let mut aliases = vec![service.to_string()];
        aliases.extend(o.aliases.iter().cloned());
        for a in &o.link_local_ips {
            if !a
                .parse()
                .is_ok_and(crate::engine::container_spec::is_link_local)
            {
                return Err(TranslateError::Spec {
                    service: service.into(),
                    source: SpecError::Invalid {
                        field: format!("networks.{key}.link_local_ips"),
                        message: format!(
                            "{a:?} is not a link-local address (169.254.0.0/16 or fe80::/10)"
                        ),
                    },
                });
            }
        }
        let driver_opts = endpoint_driver_opts(service, key, &o)?;
        let ipam =
            (o.ipv4_address.is_some() || o.ipv6_address.is_some() || !o.link_local_ips.is_empty())
                .then(|| EndpointIpam {
                    ipv4_address: o.ipv4_address.clone().unwrap_or_default(),
                    ipv6_address: o.ipv6_address.clone().unwrap_or_default(),
                    link_local_ips: o.link_local_ips.clone(),
                    ..Default::default()
                });
        config.endpoints_config.insert(
            net.name.clone(),
            EndpointSettings {
                aliases,
                ipam_config: ipam,
                mac_address: o.mac_address.clone().unwrap_or_default(),
                gw_priority: o.gw_priority.unwrap_or(0),
                driver_opts,
                ..Default::default()
            },
        );
        first.get_or_insert_with(|| net.name.clone());
    }
    // The service-level `mac_address` is the first network's, unless it sets its own (as
    // Docker Compose gives it to the primary endpoint).
    if let Some(mac) = &svc.mac_address
        && let Some(ep) = first
            .as_ref()
            .and_then(|n| config.endpoints_config.get_mut(n))
        && ep.mac_address.is_empty()
    {
        ep.mac_address = mac.clone();
    }
    Ok((config, first.unwrap_or_default()))
}

/// The endpoint driver options of a service's network that berth runs, as Docker's create
/// body carries them: `interface_name` as [`crate::api::container::IFNAME_OPT`] (the same
/// option under `driver_opts` must agree with it), and
/// [`crate::api::container::SYSCTLS_OPT`], checked here so a bad entry names the service's
/// key. Other options are left out: `up` warns about them by name (`Project::unsupported`).
pub(crate) fn endpoint_driver_opts(
    service: &str,
    key: &str,
    o: &crate::compose::ServiceNetwork,
) -> Result<BTreeMap<String, String>, TranslateError> {
    use crate::api::container::{IFNAME_OPT, SYSCTLS_OPT, endpoint_sysctls};
    let bad = |k: &str, message: String| TranslateError::Spec {
        service: service.into(),
        source: SpecError::Invalid {
            field: format!("networks.{key}.driver_opts.{k}"),
            message,
        },
    };
    let mut out = BTreeMap::new();
    if let Some(v) = o.driver_opts.get(SYSCTLS_OPT) {
        endpoint_sysctls(v).map_err(|e| bad(SYSCTLS_OPT, e))?;
        out.insert(SYSCTLS_OPT.to_string(), v.clone());
    }
    match (o.driver_opts.get(IFNAME_OPT), &o.interface_name) {
        (Some(a), Some(b)) if a != b => {
            return Err(bad(
                IFNAME_OPT,
                format!("{a:?} differs from interface_name {b:?}"),
            ));
        }
        (Some(n), _) | (None, Some(n)) => {
            out.insert(IFNAME_OPT.to_string(), n.clone());
        }
        (None, None) => {}
    }
    Ok(out)
}

/// Compose's `priority` of each network as the join order (Docker's create body has no
/// field for it; `gw_priority` went into `GwPriority`).
fn join_order(project: &Project, svc: &Service, t: &mut Translated) {
    let Some(connect) = t.connect.as_mut() else {
        return;
    };
    for n in &mut connect.networks {
        let priority = svc.networks.iter().find_map(|(key, o)| {
            let real = project.networks.get(key).map(|net| net.name.as_str());
            (real == Some(n.name.as_str()))
                .then(|| o.as_ref().and_then(|o| o.priority))
                .flatten()
        });
        if let Some(p) = priority {
            n.priority = p.clamp(i64::from(i32::MIN / 2), i64::from(i32::MAX / 2)) as i32;
        }
    }
}

/// `healthcheck:` as Docker's `Healthcheck` (durations in nanoseconds); without one, the
/// image's HEALTHCHECK.
fn health_config(svc: &Service) -> HealthConfig {
    let Some(h) = &svc.healthcheck else {
        return HealthConfig::default();
    };
    if h.disable {
        return HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        };
    }
    let ns = |d: Option<&crate::compose::units::Duration>| {
        d.map(|d| i64::try_from(d.0.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    };
    HealthConfig {
        test: h.test.clone(),
        interval: ns(h.interval.as_ref()),
        timeout: ns(h.timeout.as_ref()),
        retries: h
            .retries
            .map(|r| i64::try_from(r).unwrap_or(i64::MAX))
            .unwrap_or(0),
        start_period: ns(h.start_period.as_ref()),
        start_interval: ns(h.start_interval.as_ref()),
    }
}

/// The container for replica `number` of `service`: its config (with the engine's labels)
/// and the networks to attach it to.
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
) -> Result<Translated, TranslateError> {
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
    let mut t = super::container_spec::translate(&name, &spec, &cx).map_err(|source| {
        TranslateError::Spec {
            service: service.into(),
            source,
        }
    })?;
    owned_files(service, svc, &mut t.config)?;
    join_order(project, svc, &mut t);
    let c = &mut t.config;
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
    for (key, label, hooks) in [
        ("post_start", super::hooks::POST_START, &svc.post_start),
        ("pre_stop", super::hooks::PRE_STOP, &svc.pre_stop),
    ] {
        let Some(v) = hooks else { continue };
        let json = serde_json::to_value(v)
            .map_err(|e| e.to_string())
            .and_then(|v| super::hooks::parse(key, &v))
            .and_then(|h| serde_json::to_string(&h).map_err(|e| e.to_string()))
            .map_err(|message| TranslateError::Spec {
                service: service.into(),
                source: SpecError::Invalid {
                    field: key.into(),
                    message,
                },
            })?;
        l.insert(label.into(), json);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::container_spec::{Context, translate};
    use crate::engine::reconcile::tests::project;

    const STACK: &str = r#"
name: lw
services:
  web:
    image: nginx
    ports: ["8080:80", "127.0.0.1:9000:9000/udp", "0.0.0.0:7000:70", "3000"]
    networks:
      front: { aliases: [www], ipv6_address: "fd00::10", priority: 5, gw_priority: 9 }
      back: {}
    extra_hosts: ["gw:host-gateway", "db:10.0.0.9"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 2s
      retries: 4
  client:
    image: nginx
    links: ["web:site"]
    networks: [back]
  quiet:
    image: nginx
    healthcheck: { disable: true }
networks:
  front: { enable_ipv6: true }
  back:
"#;

    #[test]
    fn deploy_restart_policy_maps_as_compose_does() {
        let p = |c: &str, n: Option<u32>| crate::compose::RestartPolicy {
            condition: Some(c.into()),
            max_attempts: n,
            ..Default::default()
        };
        let label = |c, n| deploy_restart(&p(c, n)).expect("valid").label();
        assert_eq!(
            label("on-failure", Some(2)).as_deref(),
            Some("on-failure:2")
        );
        assert_eq!(label("any", Some(2)).as_deref(), Some("always"));
        assert_eq!(label("none", None), None);
        assert!(deploy_restart(&p("sometimes", None)).is_err());
    }

    #[test]
    fn a_service_lowers_into_the_docker_create_body() {
        let p = project(STACK);
        let svc = &p.services["web"];
        let spec = service_spec(&p, "web", svc, "lw-web-1").expect("spec");
        let hc = &spec.host_config;
        assert_eq!(hc.network_mode, "lw_back", "the first network in key order");
        assert_eq!(hc.port_bindings["80/tcp"][0].host_port, "8080");
        assert_eq!(hc.port_bindings["9000/udp"][0].host_ip, "127.0.0.1");
        assert_eq!(
            hc.port_bindings["70/tcp"][0].host_ip, "",
            "0.0.0.0 is every address"
        );
        assert!(!hc.port_bindings.contains_key("3000/tcp"), "not published");
        assert!(spec.exposed_ports.contains_key("3000/tcp"));
        assert_eq!(hc.extra_hosts, vec!["db:10.0.0.9", "gw:host-gateway"]);
        let front = &spec.networking_config.endpoints_config["lw_front"];
        assert_eq!(
            front.aliases,
            vec!["web", "www"],
            "a link alias is not the target's"
        );
        let client =
            service_spec(&p, "client", &p.services["client"], "lw-client-1").expect("spec");
        assert_eq!(
            client.host_config.links,
            vec!["web:site"],
            "the linking service's own"
        );
        assert_eq!(front.gw_priority, 9, "gw_priority, not priority");
        let ipam = front.ipam_config.as_ref().expect("ipam");
        assert_eq!(ipam.ipv6_address, "fd00::10");
        let health = spec.healthcheck.as_ref().expect("healthcheck");
        assert_eq!(health.test, vec!["CMD", "true"]);
        assert_eq!((health.interval, health.retries), (2_000_000_000, 4));
        let quiet = service_spec(&p, "quiet", &p.services["quiet"], "lw-quiet-1").expect("spec");
        assert_eq!(quiet.healthcheck.expect("set").test, vec!["NONE"]);
    }

    #[test]
    fn the_one_translation_attaches_a_service_as_it_asked() {
        let p = project(STACK);
        let mut spec = service_spec(&p, "web", &p.services["web"], "lw-web-1").expect("spec");
        spec.rootfs = Some("/".into());
        spec.cmd = Some(vec!["true".into()]);
        let mut t = translate("lw-web-1", &spec, &Context::default()).expect("valid");
        let req = t.connect.clone().expect("bridge networks");
        let names: Vec<&str> = req.networks.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(names, vec!["lw_back", "lw_front"]);
        assert_eq!(req.networks[1].gw_priority, 9);
        join_order(&p, &p.services["web"], &mut t);
        let ordered = t.connect.as_ref().expect("bridge networks");
        assert_eq!(
            ordered.networks[1].priority, 5,
            "compose priority is the join order"
        );
        assert_eq!(
            req.networks[1].ipv6_address,
            Some("fd00::10".parse().expect("v6"))
        );
        assert_eq!(req.ports.len(), 3);
        assert!(
            req.extra_hosts
                .contains(&("gw".into(), "host-gateway".into()))
        );
        let check = crate::engine::health::Check::from_labels(&t.config.labels).expect("check");
        assert_eq!(check.args, vec!["true"]);
        assert_eq!(check.interval, std::time::Duration::from_secs(2));
        assert_eq!(
            check.timeout,
            std::time::Duration::from_secs(30),
            "Docker's default"
        );
    }
}
