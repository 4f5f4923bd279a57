//! `container run|create` flags lowered into "a container to create" ([`ContainerSpec`],
//! Docker's create body), as the docker CLI does: host paths resolved, env files read, sizes
//! and ports parsed, checked before anything is made. The engine's one translation
//! ([`crate::engine::container_spec`]) makes the container of it.

use super::*;
use crate::api::container::{
    ContainerSpec, EndpointIpam, EndpointSettings, HostConfig, LogConfig, Mount, PortBinding,
    RestartPolicy, TmpfsOptions, UlimitSpec,
};

/// Signal names (KILL, SIGTERM) or numbers.
pub(super) fn parse_signal(s: &str) -> anyhow::Result<i32> {
    crate::engine::translate::parse_signal(s).ok_or_else(|| anyhow::anyhow!("unknown signal {s:?}"))
}

/// `KEY` alone takes the host's value (dropped when unset), as Docker does.
pub(super) fn resolve_env(list: &[String]) -> Vec<String> {
    list.iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

/// A size as Compose files write it (`64m`, `1g`, `2GiB`, bytes): one grammar for both.
pub(super) fn parse_size(s: &str) -> anyhow::Result<u64> {
    crate::compose::units::parse_size(s).map_err(anyhow::Error::msg)
}

pub(crate) fn parse_ulimit(s: &str) -> anyhow::Result<UlimitSpec> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit {s:?} (expected name=soft[:hard])"))?;
    let parse = |v: &str| -> anyhow::Result<i64> {
        if v == "-1" || v == "unlimited" {
            return Ok(-1);
        }
        match v.parse::<i64>() {
            Ok(n) if n >= 0 => Ok(n),
            _ => bail!("invalid ulimit value {v:?} in {s:?}"),
        }
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(vals)?, parse(vals)?),
    };
    Ok(UlimitSpec {
        name: name.to_string(),
        soft,
        hard,
    })
}

/// A bind source on the host, made absolute against the working directory (it must exist).
fn host_path(src: &str) -> anyhow::Result<String> {
    let p = std::fs::canonicalize(src)
        .with_context(|| format!("bind mount source {src:?} does not exist"))?;
    Ok(p.display().to_string())
}

/// `-v`: `DST` (an anonymous volume) or `SRC:DST[:OPTS]` with a host path or a volume name.
pub(super) enum VolumeFlag {
    Anonymous(String),
    Bind(String),
}

pub(super) fn parse_volume(v: &str) -> anyhow::Result<VolumeFlag> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, None),
        [src, dst, opts] => (*src, *dst, Some(*opts)),
        [dst] if dst.starts_with('/') => return Ok(VolumeFlag::Anonymous(dst.to_string())),
        _ => bail!("invalid volume {v:?} (expected SRC:DST[:ro])"),
    };
    if !dst.starts_with('/') {
        bail!("invalid volume {v:?}: the container path must be absolute");
    }
    let src = if src.starts_with('/') || src.starts_with('.') {
        host_path(src)?
    } else {
        src.to_string()
    };
    Ok(VolumeFlag::Bind(match opts {
        Some(o) => format!("{src}:{dst}:{o}"),
        None => format!("{src}:{dst}"),
    }))
}

/// The image to run, pulled from its registry per `--pull` (missing, always, never).
pub(super) fn image_for_run(
    store: &berth_runtime::image::ImageStore,
    image: &str,
    pull: &str,
) -> anyhow::Result<berth_runtime::image::Image> {
    let fetch = || {
        berth_runtime::image::registry::pull(store, image, &Default::default(), &|_| {})
            .with_context(|| format!("pulling {image}"))
    };
    match pull {
        "always" => fetch(),
        "missing" => match store.resolve(image) {
            Ok(img) => Ok(img),
            Err(_) => {
                eprintln!("Unable to find image '{image}' locally; pulling it");
                fetch().with_context(|| {
                    format!(
                        "image {image:?} is not in the store and could not be pulled; make it with \
                         `berth image load`, `import`, `build` or `bootstrap`"
                    )
                })
            }
        },
        "never" => store.resolve(image).with_context(|| {
            format!(
                "image {image:?}: not in the store (--pull never); get it with `berth image pull`, \
                 `load`, `import` or `bootstrap`"
            )
        }),
        other => bail!("--pull {other:?}: expected missing, always or never"),
    }
}

/// Docker's `--mount` key=value syntax.
pub(super) fn parse_mount(spec: &str) -> anyhow::Result<Mount> {
    let mut m = Mount {
        r#type: "volume".into(),
        ..Mount::default()
    };
    let mut tmpfs = TmpfsOptions::default();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, "true"));
        match k {
            "type" => m.r#type = v.to_string(),
            "source" | "src" => m.source = v.to_string(),
            "target" | "destination" | "dst" => m.target = v.to_string(),
            "readonly" | "ro" => m.read_only = v != "false" && v != "0",
            "volume-nocopy" | "volume-no-copy" => {
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .no_copy = v != "false" && v != "0";
            }
            "volume-subpath" => {
                m.volume_options
                    .get_or_insert_with(Default::default)
                    .subpath = v.to_string();
            }
            "bind-propagation" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .propagation = v.to_string()
            }
            // Docker's words, lowered to its BindOptions flags.
            "bind-recursive" => {
                let o = m.bind_options.get_or_insert_with(Default::default);
                match v {
                    "enabled" => {}
                    "disabled" => o.non_recursive = true,
                    "writable" => o.read_only_non_recursive = true,
                    "readonly" => o.read_only_force_recursive = true,
                    other => bail!(
                        "--mount {spec:?}: bind-recursive {other:?} is not one of enabled, \
                         disabled, writable, readonly"
                    ),
                }
            }
            "bind-nonrecursive" => {
                m.bind_options
                    .get_or_insert_with(Default::default)
                    .non_recursive = v != "false" && v != "0"
            }
            "tmpfs-size" => tmpfs.size_bytes = Some(parse_size(v)?),
            "tmpfs-mode" => {
                tmpfs.mode =
                    Some(u32::from_str_radix(v, 8).with_context(|| {
                        format!("--mount {spec:?}: tmpfs-mode {v:?} is not octal")
                    })?)
            }
            other => bail!("--mount {spec:?}: option {other:?} is not supported"),
        }
    }
    if m.target.is_empty() {
        bail!("--mount {spec:?}: target is required");
    }
    if !m.target.starts_with('/') {
        bail!("--mount {spec:?}: the target must be an absolute path");
    }
    match m.r#type.as_str() {
        "bind" if m.source.is_empty() => bail!("--mount {spec:?}: source is required"),
        "bind" => m.source = host_path(&m.source)?,
        "volume" => {}
        "tmpfs" => m.tmpfs_options = Some(tmpfs),
        other => bail!("--mount {spec:?}: type {other:?} is not supported (bind, volume, tmpfs)"),
    }
    Ok(m)
}

/// `-p`: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]` as a `PortBindings` entry (an empty
/// host port: a free one, picked by the engine).
pub(super) fn publish_binding(p: &str) -> anyhow::Result<(String, PortBinding)> {
    let (body, proto) = p.rsplit_once('/').unwrap_or((p, "tcp"));
    let parts: Vec<&str> = body.split(':').collect();
    let (key, host_ip, host_port) = match parts.as_slice() {
        [cont] | ["", cont] => (format!("{cont}/{proto}"), String::new(), String::new()),
        [ip, "", cont] => (format!("{cont}/{proto}"), ip.to_string(), String::new()),
        _ => {
            let m: berth_netd::ports::PortMapping =
                p.parse().with_context(|| format!("-p {p:?}"))?;
            let range = |first: u16| match m.count {
                1 => first.to_string(),
                n => format!("{first}-{}", first + (n - 1)),
            };
            (
                format!("{}/{}", range(m.container_port), m.protocol.as_str()),
                m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                range(m.host_port),
            )
        }
    };
    Ok((key, PortBinding { host_ip, host_port }))
}

/// Refuses a control character in the flags whose values become lines of the container's
/// /etc/hosts, /etc/hostname or resolv.conf (or DNS names), before anything is made.
pub(super) fn check_name_file_flags(a: &RunArgs) -> anyhow::Result<()> {
    use crate::engine::resolv::one_line;
    let lists: [(&str, &[String], &'static str); 4] = [
        ("--add-host", &a.add_host, "/etc/hosts"),
        ("--dns-search", &a.dns_search, "/etc/resolv.conf"),
        ("--dns-option", &a.dns_option, "/etc/resolv.conf"),
        ("--network-alias", &a.network_alias, "/etc/hosts"),
    ];
    if let Some(h) = &a.hostname {
        one_line("--hostname", h, "/etc/hostname")?;
    }
    for (flag, values, file) in lists {
        for v in values {
            one_line(flag, v, file)?;
        }
    }
    Ok(())
}

/// The flags as a container spec, and the name asked for (empty: generated).
pub(super) fn run_spec(a: &RunArgs) -> anyhow::Result<(String, ContainerSpec)> {
    check_name_file_flags(a)?;
    let entrypoint = a
        .entrypoint
        .as_ref()
        .map(|ep| shell_words::split(ep).with_context(|| format!("entrypoint {ep:?}")))
        .transpose()?;
    let mut spec = ContainerSpec {
        entrypoint,
        ..ContainerSpec::default()
    };
    match &a.rootfs {
        Some(rootfs) => {
            spec.rootfs = Some(
                std::fs::canonicalize(rootfs)
                    .with_context(|| format!("rootfs directory {}", rootfs.display()))?,
            );
            spec.cmd = Some(a.args.clone());
        }
        None => {
            let (image, cmd) = a
                .args
                .split_first()
                .context("an IMAGE is needed (or --rootfs DIR)")?;
            // The arguments after the flags take hyphens (the command's own flags), so a
            // flag berth does not know lands here: name it rather than pull an image by it.
            if image.starts_with('-') {
                bail!("unknown flag: {image} (see `berth container run --help`)");
            }
            spec.image = image.clone();
            spec.cmd = (!cmd.is_empty()).then(|| cmd.to_vec());
        }
    }
    for f in &a.env_file {
        let iter =
            dotenvy::from_path_iter(f).with_context(|| format!("env file {}", f.display()))?;
        for item in iter {
            let (k, v) = item.with_context(|| format!("env file {}", f.display()))?;
            spec.env.push(format!("{k}={v}"));
        }
    }
    spec.env.extend(resolve_env(&a.env));
    spec.tty = a.tty;
    spec.open_stdin = a.interactive;
    spec.attach_stdin = a.interactive;
    spec.attach_stdout = !a.detach;
    spec.attach_stderr = !a.detach;
    spec.user = a.user.clone().unwrap_or_default();
    spec.working_dir = a
        .workdir
        .as_ref()
        .map(|w| w.display().to_string())
        .unwrap_or_default();
    spec.hostname = a.hostname.clone().unwrap_or_default();
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        spec.labels.insert(k.to_string(), v.to_string());
    }
    for f in &a.label_file {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("--label-file {}", f.display()))?;
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (k, v) = line.split_once('=').unwrap_or((line, ""));
            spec.labels
                .entry(k.to_string())
                .or_insert_with(|| v.to_string());
        }
    }
    if !a.attach.is_empty() {
        if a.detach {
            bail!("-a/--attach and -d/--detach cannot be combined");
        }
        spec.attach_stdin = false;
        spec.attach_stdout = false;
        spec.attach_stderr = false;
        for stream in &a.attach {
            match stream.to_ascii_lowercase().as_str() {
                "stdin" => spec.attach_stdin = true,
                "stdout" => spec.attach_stdout = true,
                "stderr" => spec.attach_stderr = true,
                _ => bail!("-a {stream:?}: use STDIN, STDOUT or STDERR"),
            }
        }
    }
    spec.healthcheck = health_flags(a)?;
    spec.stop_signal = a.stop_signal.clone();
    spec.stop_timeout = a.stop_timeout;
    let mut hc = HostConfig::default();
    for v in &a.volume {
        match parse_volume(v)? {
            VolumeFlag::Anonymous(target) => {
                spec.volumes.insert(target, Default::default());
            }
            VolumeFlag::Bind(b) => hc.binds.push(b),
        }
    }
    for m in &a.mount {
        hc.mounts.push(parse_mount(m)?);
    }
    for t in &a.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t, ""));
        hc.tmpfs.insert(target.to_string(), opts.to_string());
    }
    hc.volumes_from = a.volumes_from.clone();
    hc.pid_mode = a.pid.clone().unwrap_or_default();
    hc.ipc_mode = a.ipc.clone().unwrap_or_default();
    hc.uts_mode = a.uts.clone().unwrap_or_default();
    hc.cgroupns_mode = a.cgroupns.clone().unwrap_or_default();
    spec.domainname = a.domainname.clone().unwrap_or_default();
    for an in &a.annotation {
        let (k, v) = an
            .split_once('=')
            .with_context(|| format!("--annotation {an:?}: expected KEY=VALUE"))?;
        hc.annotations.insert(k.to_string(), v.to_string());
    }
    // The first --network is the container's (default route, ports, aliases, address); more
    // are further bridge networks (eth1 ...).
    hc.network_mode = a
        .network
        .first()
        .cloned()
        .unwrap_or_else(|| "bridge".into());
    for n in a.network.iter().skip(1) {
        spec.networking_config
            .endpoints_config
            .insert(n.clone(), EndpointSettings::default());
    }
    if a.ip.is_some()
        || a.mac_address.is_some()
        || !a.network_alias.is_empty()
        || !a.link_local_ip.is_empty()
    {
        spec.networking_config.endpoints_config.insert(
            hc.network_mode.clone(),
            EndpointSettings {
                aliases: a.network_alias.clone(),
                ipam_config: (a.ip.is_some() || !a.link_local_ip.is_empty()).then(|| {
                    EndpointIpam {
                        ipv4_address: a.ip.map(|ip| ip.to_string()).unwrap_or_default(),
                        link_local_ips: a.link_local_ip.iter().map(ToString::to_string).collect(),
                        ..Default::default()
                    }
                }),
                mac_address: a.mac_address.clone().unwrap_or_default(),
                ..Default::default()
            },
        );
    }
    for p in &a.publish {
        let (key, binding) = publish_binding(p)?;
        hc.port_bindings.entry(key).or_default().push(binding);
    }
    hc.publish_all_ports = a.publish_all;
    hc.extra_hosts = a.add_host.clone();
    hc.dns = a.dns.iter().map(ToString::to_string).collect();
    hc.dns_search = a.dns_search.clone();
    hc.dns_options = a.dns_option.clone();
    hc.memory = a
        .memory
        .as_deref()
        .map(parse_size)
        .transpose()?
        .map_or(0, |m| m as i64);
    hc.memory_reservation = a
        .memory_reservation
        .as_deref()
        .map(parse_size)
        .transpose()?
        .map_or(0, |m| m as i64);
    hc.memory_swap = match a.memory_swap.as_deref() {
        None => 0,
        Some("-1") => -1,
        Some(s) => parse_size(s)? as i64,
    };
    hc.memory_swappiness = a.memory_swappiness;
    hc.oom_score_adj = a.oom_score_adj.unwrap_or(0);
    hc.group_add = a.group_add.clone();
    hc.cgroup_parent = a.cgroup_parent.clone().unwrap_or_default();
    hc.nano_cpus = a.cpus.map_or(0, |c| (c * 1e9).round() as i64);
    hc.cpu_shares = a.cpu_shares.map_or(0, |s| s as i64);
    hc.cpuset_cpus = a.cpuset_cpus.clone().unwrap_or_default();
    let micros = |flag: &str, v: Option<u64>| {
        v.map_or(Ok(0), i64::try_from)
            .map_err(|_| anyhow::anyhow!("--{flag}: the value is too large"))
    };
    hc.cpu_realtime_period = micros("cpu-rt-period", a.cpu_rt_period)?;
    hc.cpu_realtime_runtime = micros("cpu-rt-runtime", a.cpu_rt_runtime)?;
    hc.pids_limit = a.pids_limit;
    a.block_io.apply(&mut hc)?;
    for d in &a.device {
        let m = berth_runtime::container::devices::DeviceMapping::parse(d)?;
        hc.devices.push(crate::api::container::DeviceMapping {
            path_on_host: m.host.display().to_string(),
            path_in_container: m.container.display().to_string(),
            cgroup_permissions: m.permissions,
        });
    }
    hc.device_cgroup_rules = a.device_cgroup_rule.clone();
    hc.cap_add = a.cap_add.clone();
    hc.cap_drop = a.cap_drop.clone();
    hc.privileged = a.privileged;
    hc.readonly_rootfs = a.read_only;
    hc.security_opt = a.security_opt.clone();
    for u in &a.ulimit {
        hc.ulimits.push(parse_ulimit(u)?);
    }
    if let Some(s) = &a.shm_size {
        hc.shm_size = parse_size(s)?;
    }
    for s in &a.sysctl {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("invalid sysctl {s:?} (expected KEY=VALUE)"))?;
        hc.sysctls.insert(k.to_string(), v.to_string());
    }
    let mut log = LogConfig::default();
    for o in &a.log_opt {
        let (k, v) = o
            .split_once('=')
            .with_context(|| format!("--log-opt {o:?}: expected KEY=VALUE"))?;
        log.config.insert(k.to_string(), v.to_string());
    }
    hc.log_config = log;
    hc.restart_policy = RestartPolicy::parse(&a.restart)
        .map_err(|e| anyhow::anyhow!("--restart {:?}: {e}", a.restart))?;
    hc.auto_remove = a.rm;
    hc.init = a.init.then_some(true);
    hc.runtime = a.runtime.clone();
    spec.host_config = hc;
    Ok((a.name.clone().unwrap_or_default(), spec))
}

/// `--health-*` as Docker's `Healthcheck` (durations in nanoseconds; unset ones 0, the
/// defaults), `--no-healthcheck` as `["NONE"]`; none of them: the image's.
fn health_flags(a: &RunArgs) -> anyhow::Result<Option<crate::api::container::HealthConfig>> {
    let nanos = |flag: &str, v: &Option<String>| -> anyhow::Result<i64> {
        v.as_deref().map_or(Ok(0), |s| {
            crate::compose::units::parse_duration(s)
                .map(|d| d.as_nanos().min(i64::MAX as u128) as i64)
                .map_err(|e| anyhow::anyhow!("--{flag} {s:?}: {e}"))
        })
    };
    let any = a.health_cmd.is_some()
        || a.health_interval.is_some()
        || a.health_timeout.is_some()
        || a.health_retries.is_some()
        || a.health_start_period.is_some()
        || a.health_start_interval.is_some();
    if a.no_healthcheck {
        if any {
            bail!("--no-healthcheck conflicts with the --health-* flags");
        }
        return Ok(Some(crate::api::container::HealthConfig {
            test: vec!["NONE".into()],
            ..Default::default()
        }));
    }
    if !any {
        return Ok(None);
    }
    Ok(Some(crate::api::container::HealthConfig {
        test: a
            .health_cmd
            .as_ref()
            .map(|c| vec!["CMD-SHELL".to_string(), c.clone()])
            .unwrap_or_default(),
        interval: nanos("health-interval", &a.health_interval)?,
        timeout: nanos("health-timeout", &a.health_timeout)?,
        retries: a.health_retries.unwrap_or(0),
        start_period: nanos("health-start-period", &a.health_start_period)?,
        start_interval: nanos("health-start-interval", &a.health_start_interval)?,
    }))
}
