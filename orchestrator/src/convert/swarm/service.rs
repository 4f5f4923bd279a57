//! One service for Swarm: the keys `docker stack deploy` honours are kept (some reshaped),
//! the engine-level ones with a Swarm form move into `deploy`, what Swarm ignores is dropped
//! with a warning, what it cannot run is refused. Every key of the service falls in one of
//! those groups, so a key the model learns later is warned about, never dropped silently.

use yaml_serde::{Mapping, Value};

use super::objects::FileConfigs;
use super::{ConvertError, Warnings, s};
use crate::compose::Project;

/// What a service's conversion needs to know besides its own keys.
pub(super) struct Context<'a> {
    pub project: &'a Project,
    pub name: &'a str,
    /// The image to run (pinned when pushed).
    pub image: Option<String>,
    pub no_mesh: bool,
    /// The image was built and pushed for this deploy: `build` is done, not dropped.
    pub pushed: bool,
}

/// Keys `docker stack deploy` runs as they are in the resolved model.
const KEPT: &[&str] = &[
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "credential_spec",
    "dns",
    "dns_search",
    "domainname",
    "entrypoint",
    "environment",
    "extra_hosts",
    "hostname",
    "init",
    "isolation",
    "labels",
    "logging",
    "read_only",
    "secrets",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "user",
    "working_dir",
];

/// Keys converted below (reshaped, or folded into `deploy`).
const RESHAPED: &[&str] = &[
    "cpus",
    "deploy",
    "healthcheck",
    "image",
    "mem_limit",
    "mem_reservation",
    "networks",
    "pids_limit",
    "ports",
    "restart",
    "scale",
    "volumes",
];

/// Keys with no effect on a Swarm task, dropped without a word: every port of a task is
/// reachable on its networks, profiles are applied before converting.
const MOOT: &[&str] = &["expose", "profiles"];

/// Keys `docker stack deploy` ignores or cannot express: dropped, with why.
const IGNORED: &[(&str, &str)] = &[
    (
        "build",
        "the image is built and pushed before deploying; the nodes pull it",
    ),
    ("container_name", "Swarm names the tasks itself"),
    (
        "depends_on",
        "Swarm starts services in no order: the service must retry until what it needs answers",
    ),
    (
        "links",
        "services reach each other by name on their networks",
    ),
    ("attach", "a CLI display setting"),
    ("develop", "watch rules are for the local dev loop"),
    ("pull_policy", "Swarm pulls the pinned image on each node"),
    ("shm_size", "Swarm services have no /dev/shm size"),
    ("security_opt", "ignored by docker stack deploy"),
    ("cgroup_parent", "ignored by docker stack deploy"),
    ("oom_score_adj", "Swarm services have no OOM score"),
    ("mem_swappiness", "Swarm services have no swappiness"),
    ("memswap_limit", "Swarm services have no swap limit"),
    ("cpu_shares", "use deploy.resources"),
    ("cpu_quota", "use deploy.resources"),
    ("cpu_period", "use deploy.resources"),
    ("cpuset", "Swarm services are not pinned to CPUs"),
    ("blkio_config", "Swarm services have no block I/O limits"),
    ("annotations", "Swarm services have no OCI annotations"),
    ("mac_address", "Swarm sets each task's address"),
];

/// Keys refused whatever their value: Swarm cannot give their meaning to a task.
const REFUSED: &[(&str, &str)] = &[
    ("privileged", "Swarm services cannot run privileged"),
    (
        "devices",
        "Swarm services cannot be given host devices (docker stack deploy drops them)",
    ),
    (
        "gpus",
        "use deploy.resources.reservations.generic_resources",
    ),
    (
        "volumes_from",
        "tasks cannot mount another container's volumes: share a named volume",
    ),
    (
        "external_links",
        "containers outside the stack are not on its overlay networks: make them a service",
    ),
    ("userns_mode", "Swarm services cannot set a user namespace"),
    ("use_api_socket", "there is no Docker API socket in a task"),
    ("provider", "provider services run a local binary"),
    ("models", "models run on the local Docker Model Runner"),
    ("storage_opt", "Swarm services cannot set storage options"),
    ("runtime", "Swarm services run the nodes' default runtime"),
];

fn refuse(name: &str, key: &str, reason: impl Into<String>) -> ConvertError {
    ConvertError::Refused {
        service: name.to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Converts one service's resolved tree.
pub(super) fn convert(
    ctx: &Context,
    svc: &Mapping,
    configs: &mut FileConfigs,
    warn: &mut Warnings,
) -> Result<Mapping, ConvertError> {
    let name = ctx.name;
    let mut out = Mapping::new();
    let mut deploy = svc
        .get("deploy")
        .and_then(Value::as_mapping)
        .cloned()
        .unwrap_or_default();
    let mut file_configs = Vec::new();
    for (key, value) in svc {
        let Some(key) = key.as_str() else { continue };
        if key.starts_with("x-") || MOOT.contains(&key) {
            continue;
        }
        if key == "network_mode" {
            network_mode(name, value)?;
            continue;
        }
        if key == "privileged" && value == &Value::Bool(false) {
            continue;
        }
        if key == "pid" || key == "ipc" {
            match value.as_str() {
                None | Some("private") | Some("shareable") => continue,
                Some(other) => {
                    return Err(refuse(
                        name,
                        key,
                        format!(
                            "{other:?}: Swarm tasks do not share a host's or another container's {key} namespace"
                        ),
                    ));
                }
            }
        }
        if let Some((_, why)) = REFUSED.iter().find(|(k, _)| *k == key) {
            return Err(refuse(name, key, *why));
        }
        if key == "extra_hosts" {
            out.insert(s(key), extra_hosts(value));
        } else if KEPT.contains(&key) {
            out.insert(s(key), value.clone());
        } else if RESHAPED.contains(&key) {
            match key {
                "healthcheck" => {
                    out.insert(s(key), Value::Mapping(healthcheck(name, value, warn)));
                }
                "ports" => {
                    out.insert(s(key), Value::Sequence(ports(ctx, value, warn)?));
                }
                "volumes" => {
                    let (mounts, files) = volumes(ctx, value, configs, warn)?;
                    if !mounts.is_empty() {
                        out.insert(s(key), Value::Sequence(mounts));
                    }
                    file_configs = files;
                }
                "networks" => {
                    out.insert(s(key), networks(name, value, warn));
                }
                // Folded into `deploy` below, or the pinned image.
                _ => {}
            }
        } else if key == "build" && ctx.pushed {
            continue;
        } else if let Some((_, why)) = IGNORED.iter().find(|(k, _)| *k == key) {
            warn.service(name, key, format!("dropped ({why})"));
        } else {
            warn.service(name, key, "has no Swarm equivalent here and is dropped");
        }
    }
    if let Some(image) = &ctx.image {
        out.insert(s("image"), s(image));
    }
    if !file_configs.is_empty() {
        let list = out
            .entry(s("configs"))
            .or_insert_with(|| Value::Sequence(Vec::new()));
        if let Value::Sequence(list) = list {
            list.extend(file_configs);
        }
    }
    fold_into_deploy(ctx, svc, &mut deploy, warn)?;
    if !deploy.is_empty() {
        out.insert(s("deploy"), Value::Mapping(deploy));
    }
    // Keys in name order, as `berth config` prints them: stable goldens.
    let mut entries: Vec<(Value, Value)> = out.into_iter().collect();
    entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    Ok(entries.into_iter().collect())
}

/// `extra_hosts` as `HOST:IP`, the form `docker stack deploy` reads (the model prints
/// Compose's newer `HOST=IP`).
fn extra_hosts(value: &Value) -> Value {
    match value {
        Value::Sequence(list) => Value::Sequence(
            list.iter()
                .map(|h| match h.as_str().and_then(|h| h.split_once('=')) {
                    Some((host, ip)) => s(&format!("{host}:{ip}")),
                    None => h.clone(),
                })
                .collect(),
        ),
        other => other.clone(),
    }
}

/// `network_mode`: the default bridge is the stack's overlay; anything else is refused.
fn network_mode(name: &str, value: &Value) -> Result<(), ConvertError> {
    match value.as_str() {
        None | Some("bridge") | Some("default") => Ok(()),
        Some("host") => Err(refuse(
            name,
            "network_mode",
            "Swarm services join the host's network as `networks: {host: {}}` with an external network `host`: write that instead",
        )),
        Some(other) => Err(refuse(
            name,
            "network_mode",
            format!("{other:?}: Swarm tasks cannot share another container's network"),
        )),
    }
}

fn healthcheck(name: &str, value: &Value, warn: &mut Warnings) -> Mapping {
    let mut out = Mapping::new();
    for (k, v) in value.as_mapping().into_iter().flatten() {
        match k.as_str() {
            Some(
                key @ ("test" | "interval" | "timeout" | "retries" | "start_period" | "disable"),
            ) => {
                out.insert(s(key), v.clone());
            }
            Some(other) => {
                warn.service(
                    name,
                    &format!("healthcheck.{other}"),
                    "not in docker stack deploy's file format; dropped",
                );
            }
            None => {}
        }
    }
    out
}

fn ports(ctx: &Context, value: &Value, warn: &mut Warnings) -> Result<Vec<Value>, ConvertError> {
    let mut out = Vec::new();
    for p in value.as_sequence().into_iter().flatten() {
        let Some(p) = p.as_mapping() else { continue };
        let mut q = Mapping::new();
        if let Some(t) = p.get("target") {
            q.insert(s("target"), t.clone());
        }
        if let Some(published) = p.get("published") {
            let published = match published.as_str().map(str::parse::<u64>) {
                Some(Ok(n)) => Value::Number(n.into()),
                Some(Err(_)) => {
                    return Err(refuse(
                        ctx.name,
                        "ports",
                        format!(
                            "published {:?}: Swarm publishes one port per entry, not a range: list them",
                            published.as_str().unwrap_or_default()
                        ),
                    ));
                }
                None => published.clone(),
            };
            q.insert(s("published"), published);
        }
        if let Some(proto) = p.get("protocol") {
            q.insert(s("protocol"), proto.clone());
        }
        let mode = if ctx.no_mesh {
            "host"
        } else {
            p.get("mode").and_then(Value::as_str).unwrap_or("ingress")
        };
        q.insert(s("mode"), s(mode));
        if let Some(ip) = p.get("host_ip").and_then(Value::as_str)
            && !ip.is_empty()
            && ip != "0.0.0.0"
            && ip != "::"
        {
            warn.service(
                ctx.name,
                "ports.host_ip",
                format!("{ip}: Swarm publishes on every address of the node; dropped"),
            );
        }
        out.push(Value::Mapping(q));
    }
    Ok(out)
}

/// Volumes: named volumes and tmpfs as they are, read-only binds of single files as Swarm
/// configs (they reach every node), other binds kept with a warning (the path must exist on
/// every node). Answers the mounts and the service's config references.
fn volumes(
    ctx: &Context,
    value: &Value,
    configs: &mut FileConfigs,
    warn: &mut Warnings,
) -> Result<(Vec<Value>, Vec<Value>), ConvertError> {
    let mut mounts = Vec::new();
    let mut refs = Vec::new();
    for v in value.as_sequence().into_iter().flatten() {
        let Some(v) = v.as_mapping() else { continue };
        let kind = v.get("type").and_then(Value::as_str).unwrap_or("volume");
        let source = v.get("source").and_then(Value::as_str).unwrap_or_default();
        let target = v.get("target").and_then(Value::as_str).unwrap_or_default();
        let read_only = v.get("read_only") == Some(&Value::Bool(true));
        let mut m = Mapping::new();
        m.insert(s("type"), s(kind));
        match kind {
            "volume" => {
                if !source.is_empty() {
                    m.insert(s("source"), s(source));
                }
                if let Some(Value::Mapping(o)) = v.get("volume") {
                    if let Some(n) = o.get("nocopy") {
                        let mut vo = Mapping::new();
                        vo.insert(s("nocopy"), n.clone());
                        m.insert(s("volume"), Value::Mapping(vo));
                    }
                    if o.contains_key("subpath") {
                        warn.service(
                            ctx.name,
                            "volumes.volume.subpath",
                            format!("{target}: not in docker stack deploy's file format; the whole volume is mounted"),
                        );
                    }
                }
            }
            "bind" => {
                if read_only && std::path::Path::new(source).is_file() {
                    refs.push(configs.reference(ctx.project, source, target));
                    continue;
                }
                m.insert(s("source"), s(source));
                if let Some(Value::Mapping(o)) = v.get("bind")
                    && let Some(p) = o.get("propagation")
                {
                    let mut bo = Mapping::new();
                    bo.insert(s("propagation"), p.clone());
                    m.insert(s("bind"), Value::Mapping(bo));
                }
                warn.service(
                    ctx.name,
                    "volumes",
                    format!(
                        "bind {source}:{target}: the path must exist on every node that may run the task (Swarm does not copy it)"
                    ),
                );
            }
            "tmpfs" => {
                if let Some(Value::Mapping(o)) = v.get("tmpfs")
                    && let Some(size) = o.get("size")
                {
                    // The file format takes bytes as a number here.
                    let size = match size.as_str().map(str::parse::<u64>) {
                        Some(Ok(n)) => Value::Number(n.into()),
                        _ => size.clone(),
                    };
                    let mut to = Mapping::new();
                    to.insert(s("size"), size);
                    m.insert(s("tmpfs"), Value::Mapping(to));
                }
            }
            other => {
                return Err(refuse(
                    ctx.name,
                    "volumes",
                    format!("{target}: type {other:?} is not a Swarm mount"),
                ));
            }
        }
        m.insert(s("target"), s(target));
        if read_only {
            m.insert(s("read_only"), Value::Bool(true));
        }
        mounts.push(Value::Mapping(m));
    }
    Ok((mounts, refs))
}

/// A service's networks: aliases kept; static addresses and per-endpoint settings dropped.
fn networks(name: &str, value: &Value, warn: &mut Warnings) -> Value {
    let Some(nets) = value.as_mapping() else {
        return value.clone();
    };
    let mut out = Mapping::new();
    for (net, cfg) in nets {
        let mut c = Mapping::new();
        for (k, v) in cfg.as_mapping().into_iter().flatten() {
            match k.as_str() {
                Some("aliases") => {
                    c.insert(s("aliases"), v.clone());
                }
                Some(other) => warn.service(
                    name,
                    &format!("networks.{}.{other}", net.as_str().unwrap_or_default()),
                    "Swarm sets each task's address and endpoint; dropped",
                ),
                None => {}
            }
        }
        let c = if c.is_empty() {
            Value::Null
        } else {
            Value::Mapping(c)
        };
        out.insert(net.clone(), c);
    }
    Value::Mapping(out)
}

/// `restart`, `scale`, `mem_limit`, `mem_reservation`, `cpus`, `pids_limit` into `deploy`,
/// where Swarm reads them (`deploy` wins where both are set); `no_mesh` sets the endpoint mode.
fn fold_into_deploy(
    ctx: &Context,
    svc: &Mapping,
    deploy: &mut Mapping,
    warn: &mut Warnings,
) -> Result<(), ConvertError> {
    let name = ctx.name;
    if let Some(scale) = svc.get("scale") {
        deploy.entry(s("replicas")).or_insert_with(|| scale.clone());
    }
    if let Some(restart) = svc.get("restart").and_then(Value::as_str)
        && !deploy.contains_key("restart_policy")
    {
        let mut policy = Mapping::new();
        let (cond, attempts) = match restart.split_once(':') {
            Some(("on-failure", n)) => ("on-failure", n.parse::<u64>().ok()),
            _ => match restart {
                "no" => ("none", None),
                "on-failure" => ("on-failure", None),
                _ => ("any", None),
            },
        };
        policy.insert(s("condition"), s(cond));
        if let Some(n) = attempts {
            policy.insert(s("max_attempts"), Value::Number(n.into()));
        }
        deploy.insert(s("restart_policy"), Value::Mapping(policy));
    }
    let mut limits = Mapping::new();
    let mut reservations = Mapping::new();
    for (key, limit, field) in [
        ("mem_limit", true, "memory"),
        ("cpus", true, "cpus"),
        ("pids_limit", true, "pids"),
        ("mem_reservation", false, "memory"),
    ] {
        let into = if limit {
            &mut limits
        } else {
            &mut reservations
        };
        if let Some(v) = svc.get(key) {
            let v = match v {
                Value::Number(n) if field == "cpus" => s(&n.to_string()),
                other => other.clone(),
            };
            into.insert(s(field), v);
        }
    }
    if !limits.is_empty() || !reservations.is_empty() {
        let res = deploy
            .entry(s("resources"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        if let Value::Mapping(res) = res {
            for (which, vals) in [("limits", limits), ("reservations", reservations)] {
                if vals.is_empty() {
                    continue;
                }
                let m = res
                    .entry(s(which))
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if let Value::Mapping(m) = m {
                    for (k, v) in vals {
                        m.entry(k).or_insert(v);
                    }
                }
            }
        }
    }
    if let Some(Value::Mapping(res)) = deploy.get("resources")
        && let Some(Value::Mapping(r)) = res.get("reservations")
        && r.contains_key("devices")
    {
        return Err(refuse(
            name,
            "deploy.resources.reservations.devices",
            "Swarm reserves generic_resources, not devices",
        ));
    }
    if ctx.no_mesh {
        deploy
            .entry(s("endpoint_mode"))
            .or_insert_with(|| s("dnsrr"));
    }
    if deploy.get("endpoint_mode").and_then(Value::as_str) == Some("dnsrr")
        && !ctx.no_mesh
        && svc
            .get("ports")
            .and_then(Value::as_sequence)
            .is_some_and(|p| !p.is_empty())
    {
        warn.service(
            name,
            "deploy.endpoint_mode",
            "dnsrr cannot publish through the routing mesh: publish in host mode (--no-mesh)",
        );
    }
    Ok(())
}

/// Whether a converted service sets `deploy.resources.limits.pids` (file format 3.13).
pub(super) fn any_pids_limit(file: &Mapping) -> bool {
    file.get("services")
        .and_then(Value::as_mapping)
        .into_iter()
        .flatten()
        .any(|(_, svc)| {
            svc.get("deploy")
                .and_then(|d| d.get("resources"))
                .and_then(|r| r.get("limits"))
                .and_then(|l| l.get("pids"))
                .is_some()
        })
}
