//! `container run|create` flags lowered into a [`ContainerConfig`]: sizes, ulimits, volumes,
//! mounts, security options and the name-file values, checked before anything is made.

use super::*;

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

pub(super) fn parse_ulimit(s: &str) -> anyhow::Result<Ulimit> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit {s:?} (expected name=soft[:hard])"))?;
    let parse = |v: &str| -> anyhow::Result<u64> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse()
            .with_context(|| format!("invalid ulimit value {v:?} in {s:?}"))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(vals)?, parse(vals)?),
    };
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

pub(super) fn parse_volume(v: &str) -> anyhow::Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        [dst] if dst.starts_with('/') => {
            return Ok(MountSpec::Volume {
                name: anonymous_name(),
                target: dst.into(),
                read_only: false,
            });
        }
        _ => bail!("invalid volume {v:?} (expected SRC:DST[:ro])"),
    };
    if !dst.starts_with('/') {
        bail!("invalid volume {v:?}: the container path must be absolute");
    }
    let read_only = opts.split(',').any(|o| o == "ro");
    if src.starts_with('/') || src.starts_with('.') {
        let source = std::fs::canonicalize(src)
            .with_context(|| format!("bind mount source {src:?} does not exist"))?;
        Ok(MountSpec::Bind {
            source,
            target: dst.into(),
            read_only,
        })
    } else {
        Ok(MountSpec::Volume {
            name: src.to_string(),
            target: dst.into(),
            read_only,
        })
    }
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

/// The volume name of a volume mount.
pub(super) fn volume_name(m: &MountSpec) -> Option<String> {
    match m {
        MountSpec::Volume { name, .. } => Some(name.clone()),
        _ => None,
    }
}

/// Docker's `--mount` key=value syntax.
pub(super) fn parse_mount(spec: &str) -> anyhow::Result<MountSpec> {
    let mut kind = "volume".to_string();
    let (mut source, mut target, mut read_only) = (None, None, false);
    let mut tmpfs_opts = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, "true"));
        match k {
            "type" => kind = v.to_string(),
            "source" | "src" => source = Some(v.to_string()),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => read_only = v != "false" && v != "0",
            "tmpfs-size" => tmpfs_opts.push(format!("size={v}")),
            "tmpfs-mode" => tmpfs_opts.push(format!("mode={v}")),
            other => bail!("--mount {spec:?}: option {other:?} is not supported"),
        }
    }
    let target = target.with_context(|| format!("--mount {spec:?}: target is required"))?;
    if !target.starts_with('/') {
        bail!("--mount {spec:?}: the target must be an absolute path");
    }
    Ok(match kind.as_str() {
        "bind" => {
            let src = source.with_context(|| format!("--mount {spec:?}: source is required"))?;
            MountSpec::Bind {
                source: std::fs::canonicalize(&src)
                    .with_context(|| format!("bind mount source {src:?} does not exist"))?,
                target: target.into(),
                read_only,
            }
        }
        "volume" => MountSpec::Volume {
            name: source.unwrap_or_else(anonymous_name),
            target: target.into(),
            read_only,
        },
        "tmpfs" => MountSpec::Tmpfs {
            target: target.into(),
            options: tmpfs_opts,
        },
        other => bail!("--mount {spec:?}: type {other:?} is not supported (bind, volume, tmpfs)"),
    })
}

/// The image a container runs, when it runs one (recorded so `image rm` knows it is in use).
type ImageId = Option<String>;

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

pub(super) fn build_config(
    rt: &Runtime,
    root: &Path,
    a: &RunArgs,
) -> anyhow::Result<(ContainerConfig, ImageId)> {
    check_name_file_flags(a)?;
    let entrypoint = a
        .entrypoint
        .as_ref()
        .map(|ep| shell_words::split(ep).with_context(|| format!("entrypoint {ep:?}")))
        .transpose()?;
    let mut image_volumes: Vec<String> = Vec::new();
    let (mut cfg, image_id) = match &a.rootfs {
        Some(rootfs) => {
            let rootfs = std::fs::canonicalize(rootfs)
                .with_context(|| format!("rootfs directory {}", rootfs.display()))?;
            let mut args = entrypoint.unwrap_or_default();
            args.extend(a.args.iter().cloned());
            (ContainerConfig::new(RootfsSource::Dir(rootfs), args), None)
        }
        None => {
            let (image, cmd) = a
                .args
                .split_first()
                .context("an IMAGE is needed (or --rootfs DIR)")?;
            let store = berth_runtime::image::ImageStore::open(root)
                .with_context(|| format!("image store under {}", root.display()))?;
            let img = image_for_run(&store, image, &a.pull)?;
            let overrides = berth_runtime::container::config::ProcessOverrides {
                entrypoint,
                cmd: cmd.to_vec(),
                env: Vec::new(),
                user: None,
                working_dir: None,
            };
            let cfg = ContainerConfig::from_image(img.layer_dirs(), &img.config, overrides);
            image_volumes = img
                .config
                .config()
                .as_ref()
                .and_then(|c| c.volumes().clone())
                .unwrap_or_default();
            (cfg, Some(img.id.to_string()))
        }
    };
    cfg.name = a.name.clone().unwrap_or_default();
    for f in &a.env_file {
        let iter =
            dotenvy::from_path_iter(f).with_context(|| format!("env file {}", f.display()))?;
        for item in iter {
            let (k, v) = item.with_context(|| format!("env file {}", f.display()))?;
            cfg.env.push(format!("{k}={v}"));
        }
    }
    cfg.env.extend(resolve_env(&a.env));
    if a.tty && !cfg.env.iter().any(|e| e.starts_with("TERM=")) {
        cfg.env.push("TERM=xterm".into());
    }
    let mut anonymous = Vec::new();
    for v in &a.volume {
        let m = parse_volume(v)?;
        if !v.contains(':') {
            anonymous.extend(volume_name(&m));
        }
        cfg.mounts.push(m);
    }
    for spec in &a.mount {
        let m = parse_mount(spec)?;
        if matches!(m, MountSpec::Volume { .. })
            && !spec
                .split(',')
                .any(|p| p.starts_with("source=") || p.starts_with("src="))
        {
            anonymous.extend(volume_name(&m));
        }
        cfg.mounts.push(m);
    }
    // The image's VOLUMEs that no mount covers get an anonymous volume, as Docker does.
    for target in image_volumes {
        let covered = cfg.mounts.iter().any(|m| match m {
            MountSpec::Bind { target: t, .. }
            | MountSpec::Volume { target: t, .. }
            | MountSpec::Tmpfs { target: t, .. } => t == Path::new(&target),
        });
        if !covered && target.starts_with('/') {
            let name = anonymous_name();
            anonymous.push(name.clone());
            cfg.mounts.push(MountSpec::Volume {
                name,
                target: target.into(),
                read_only: false,
            });
        }
    }
    cfg.anonymous_volumes = anonymous;
    // --volumes-from: the other container's volumes and binds, at the same places.
    for spec in &a.volumes_from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, m),
            _ => (spec.as_str(), ""),
        };
        let other = rt
            .resolve(name)
            .with_context(|| format!("--volumes-from {spec}"))?;
        for m in &other.config.mounts {
            let mut m = m.clone();
            match &mut m {
                MountSpec::Bind { read_only, .. } | MountSpec::Volume { read_only, .. } => {
                    match mode {
                        "ro" => *read_only = true,
                        "rw" => *read_only = false,
                        _ => {}
                    }
                }
                MountSpec::Tmpfs { .. } => continue,
            }
            cfg.mounts.push(m);
        }
    }
    for t in &a.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t, ""));
        cfg.mounts.push(MountSpec::Tmpfs {
            target: target.into(),
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    if a.workdir.is_some() {
        cfg.working_dir = a.workdir.clone();
    }
    if a.user.is_some() {
        cfg.user = a.user.clone();
    }
    cfg.hostname = a.hostname.clone();
    let network = network_of(a);
    if (!a.publish.is_empty() || a.publish_all) && !is_named_network(&network) {
        bail!("-p/--publish needs a bridge network, not --network {network}");
    }
    if (a.ip.is_some() || a.mac_address.is_some() || !a.network_alias.is_empty())
        && !is_named_network(&network)
    {
        bail!(
            "--ip, --mac-address and --network-alias need a bridge network, not --network {network}"
        );
    }
    cfg.network = match network.as_str() {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other if other.starts_with("container:") => {
            let target = rt.resolve(&other["container:".len()..])?;
            match (&target.netns, &target.config.network) {
                (Some(ns), _) => NetworkMode::Join(ns.clone()),
                (None, NetworkMode::Join(ns)) => NetworkMode::Join(ns.clone()),
                _ => NetworkMode::Host,
            }
        }
        // A bridge network: attached by the daemon's netd once the container exists.
        _ => NetworkMode::New,
    };
    cfg.resources.memory = a
        .memory
        .as_deref()
        .map(parse_size)
        .transpose()?
        .map(|m| m as i64);
    cfg.resources.cpus = a.cpus;
    cfg.resources.cpu_shares = a.cpu_shares;
    cfg.resources.cpuset_cpus = a.cpuset_cpus.clone();
    cfg.resources.pids_limit = a.pids_limit;
    cfg.cap_add = a.cap_add.clone();
    cfg.cap_drop = a.cap_drop.clone();
    cfg.privileged = a.privileged;
    cfg.read_only = a.read_only;
    for o in &a.security_opt {
        let opt = berth_runtime::container::SecurityOpt::parse(o).map_err(anyhow::Error::msg)?;
        if opt == berth_runtime::container::SecurityOpt::NotApplied {
            eprintln!(
                "warning: security option {o:?} is not applied (berth loads no AppArmor or SELinux policy)"
            );
        }
        opt.apply(&mut cfg);
    }
    for u in &a.ulimit {
        cfg.ulimits.push(parse_ulimit(u)?);
    }
    if let Some(s) = &a.shm_size {
        cfg.shm_size = parse_size(s)?;
    }
    let mut sysctls = BTreeMap::new();
    for s in &a.sysctl {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("invalid sysctl {s:?} (expected KEY=VALUE)"))?;
        sysctls.insert(k.to_string(), v.to_string());
    }
    cfg.sysctls = sysctls;
    if let Some(s) = &a.stop_signal {
        cfg.stop_signal = parse_signal(s)?;
    }
    if let Some(t) = a.stop_timeout {
        cfg.stop_timeout = t;
    }
    for o in &a.log_opt {
        match o.split_once('=') {
            Some(("max-size", v)) => cfg.log_max_size = parse_size(v)?,
            Some(("max-file", v)) => {
                cfg.log_max_files = v
                    .parse()
                    .with_context(|| format!("--log-opt {o:?}: max-file must be a number"))?
            }
            _ => bail!("--log-opt {o:?} is not supported (max-size=SIZE, max-file=N)"),
        }
    }
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        cfg.labels.insert(k.to_string(), v.to_string());
    }
    if a.restart != "no" {
        let valid = matches!(
            a.restart.as_str(),
            "always" | "unless-stopped" | "on-failure"
        ) || a
            .restart
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !valid {
            bail!(
                "--restart {:?}: expected no, always, unless-stopped or on-failure[:N]",
                a.restart
            );
        }
        if a.rm {
            bail!(
                "--restart {} and --rm conflict: a removed container cannot restart",
                a.restart
            );
        }
        cfg.labels
            .insert(crate::engine::labels::RESTART.into(), a.restart.clone());
    }
    // On a bridge network the servers are the embedded DNS's upstreams for this container
    // (names of the network still resolve); otherwise they go into its resolv.conf.
    if !a.dns.is_empty() && is_named_network(&network) {
        let list: Vec<String> = a.dns.iter().map(ToString::to_string).collect();
        cfg.labels
            .insert(crate::engine::labels::DNS_SERVERS.into(), list.join(","));
    }
    cfg.init = a.init;
    cfg.oci_runtime = a.runtime.clone().filter(|r| r != "berth");
    cfg.tty = a.tty;
    cfg.open_stdin = a.interactive;
    cfg.auto_remove = a.rm;
    Ok((cfg, image_id))
}
