//! A service's pod template: its one container (image, command, environment, ports, probe,
//! resources, security context, mounts) and the pod-level settings (host aliases, DNS,
//! sysctls, grace period, the init containers that wait for healthy dependencies).

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use super::storage::{Owners, ProjectFiles};
use super::{Conversion, ConvertError, labels, names};
use crate::compose::Project;
use crate::compose::model::{DependsCondition, Healthcheck, Service, VolumeType};

/// The image of the init container that waits for a dependency's Service (busybox: `nc`
/// and `nslookup` in 4 MB).
pub(super) const WAIT_IMAGE: &str = "busybox:1.36";

fn refuse(service: &str, key: &str, reason: impl Into<String>) -> ConvertError {
    ConvertError::Refused {
        service: service.to_string(),
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// Whole seconds, at least 1 (probe fields are seconds; Compose allows sub-second).
fn secs(d: std::time::Duration) -> u64 {
    d.as_secs().max(1)
}

/// The pod template (`metadata` + `spec`) of service `name`, running `image` when given
/// (else the service's own).
#[allow(clippy::too_many_arguments)]
pub(super) fn pod_template(
    project: &Project,
    name: &str,
    svc: &Service,
    image: Option<&str>,
    owners: &Owners,
    ports: &[(u16, String)],
    files: &mut ProjectFiles,
    conv: &mut Conversion,
) -> Result<Value, ConvertError> {
    let image = image.map(String::from).or_else(|| svc.image.clone()).ok_or_else(|| {
        refuse(
            name,
            "image",
            "the service is only built (build:): name the image the cluster pulls with image:, or push it with --registry R --push",
        )
    })?;
    let mut c = Map::new();
    c.insert("name".into(), json!(name));
    c.insert("image".into(), json!(image));
    if let Some(p) = &svc.pull_policy {
        let policy = match serde_json::to_value(p)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .as_deref()
        {
            Some("always") => "Always",
            Some("never") => "Never",
            _ => "IfNotPresent",
        };
        c.insert("imagePullPolicy".into(), json!(policy));
    }
    if let Some(e) = &svc.entrypoint {
        c.insert("command".into(), json!(e));
    }
    if let Some(cmd) = &svc.command {
        c.insert("args".into(), json!(cmd));
    }
    let mut env = Vec::new();
    for (k, v) in &svc.environment {
        match v {
            Some(v) => env.push(json!({"name": k, "value": v})),
            None => conv.warn(
                name,
                "environment",
                format!("{k} has no value when converting and is left out"),
            ),
        }
    }
    if !env.is_empty() {
        c.insert("env".into(), Value::Array(env));
    }
    if !ports.is_empty() {
        let ports = ports
            .iter()
            .map(|(port, proto)| json!({"containerPort": port, "protocol": proto}))
            .collect();
        c.insert("ports".into(), Value::Array(ports));
    }
    if let Some(wd) = &svc.working_dir {
        c.insert("workingDir".into(), json!(wd));
    }
    if svc.tty == Some(true) {
        c.insert("tty".into(), json!(true));
    }
    if svc.stdin_open == Some(true) {
        c.insert("stdin".into(), json!(true));
    }
    if let Some(sc) = security_context(name, svc, conv) {
        c.insert("securityContext".into(), sc);
    }
    if let Some(r) = resources(name, svc, conv) {
        c.insert("resources".into(), r);
    }
    if let Some(probe) = svc.healthcheck.as_ref().and_then(readiness_probe) {
        c.insert("readinessProbe".into(), probe);
    }

    let mut spec = Map::new();
    let (mounts, volumes) = mounts(project, name, svc, owners, files, conv)?;
    if !mounts.is_empty() {
        c.insert("volumeMounts".into(), Value::Array(mounts));
    }
    if !volumes.is_empty() {
        spec.insert("volumes".into(), Value::Array(volumes));
    }
    let init = wait_containers(name, svc, conv);
    if !init.is_empty() {
        spec.insert("initContainers".into(), Value::Array(init));
    }
    spec.insert("containers".into(), json!([Value::Object(c)]));
    if let Some(h) = &svc.hostname {
        if names::is_dns1035(h) || names::is_dns1123_subdomain(h) && !h.contains('.') {
            spec.insert("hostname".into(), json!(h));
        } else {
            conv.warn(
                name,
                "hostname",
                format!("{h:?} is not a DNS-1123 label and is left out"),
            );
        }
    }
    let aliases = host_aliases(name, svc, conv);
    if !aliases.is_empty() {
        spec.insert("hostAliases".into(), Value::Array(aliases));
    }
    if let Some(dns) = dns_config(svc) {
        spec.insert("dnsConfig".into(), dns);
    }
    if let Some(g) = &svc.stop_grace_period {
        spec.insert("terminationGracePeriodSeconds".into(), json!(g.0.as_secs()));
    }
    if !svc.sysctls.is_empty() {
        let s: Vec<Value> = svc
            .sysctls
            .iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect();
        spec.insert("securityContext".into(), json!({"sysctls": s}));
    }
    // The pod's pause container becomes PID 1 and reaps orphans, as `init: true` does.
    if svc.init == Some(true) {
        spec.insert("shareProcessNamespace".into(), json!(true));
    }
    match svc.restart.as_deref() {
        None | Some("always") | Some("unless-stopped") => {}
        // A Job (workload.rs), unless the service owns claims a Job cannot keep.
        Some(_) if super::workload::run_once(svc).is_some() && owners.owned(name).is_empty() => {}
        Some(other) => conv.warn(
            name,
            "restart",
            format!("{other:?}: a StatefulSet's pods always restart (a Job would not keep the service's own volumes)"),
        ),
    }
    let mut meta = json!({"labels": labels(project, name)});
    if let Some(a) = annotations(svc) {
        meta["annotations"] = a;
    }
    Ok(json!({"metadata": meta, "spec": Value::Object(spec)}))
}

/// Compose `labels` and `annotations` as pod annotations (label values have a stricter
/// grammar than Compose's).
fn annotations(svc: &Service) -> Option<Value> {
    let mut a: BTreeMap<String, String> = svc.labels.clone();
    if let Some(more) = &svc.annotations {
        a.extend(more.clone());
    }
    (!a.is_empty()).then(|| json!(a))
}

/// `containerPort`s from `ports` (targets) and `expose` (single ports and short ranges).
pub(super) fn container_ports(
    name: &str,
    svc: &Service,
    conv: &mut Conversion,
) -> Vec<(u16, String)> {
    let mut out: Vec<(u16, String)> = Vec::new();
    for p in &svc.ports {
        out.push((p.target, p.protocol.to_ascii_uppercase()));
    }
    for e in &svc.expose {
        let (range, proto) = e.split_once('/').unwrap_or((e.as_str(), "tcp"));
        let (lo, hi) = range.split_once('-').unwrap_or((range, range));
        match (lo.parse::<u16>(), hi.parse::<u16>()) {
            (Ok(lo), Ok(hi)) if lo <= hi && hi - lo < 100 => {
                for port in lo..=hi {
                    out.push((port, proto.to_ascii_uppercase()));
                }
            }
            _ => conv.warn(
                name,
                "expose",
                format!("{e:?} is not a port or a range of under 100 ports and is left out"),
            ),
        }
    }
    out.sort();
    out.dedup();
    out
}

fn security_context(name: &str, svc: &Service, conv: &mut Conversion) -> Option<Value> {
    let mut sc = Map::new();
    let caps = |list: &[String]| -> Vec<String> {
        list.iter()
            .map(|c| c.trim_start_matches("CAP_").to_ascii_uppercase())
            .collect()
    };
    let mut capabilities = Map::new();
    if !svc.cap_add.is_empty() {
        capabilities.insert("add".into(), json!(caps(&svc.cap_add)));
    }
    if !svc.cap_drop.is_empty() {
        capabilities.insert("drop".into(), json!(caps(&svc.cap_drop)));
    }
    if !capabilities.is_empty() {
        sc.insert("capabilities".into(), Value::Object(capabilities));
    }
    if svc.read_only == Some(true) {
        sc.insert("readOnlyRootFilesystem".into(), json!(true));
    }
    if let Some(user) = &svc.user {
        let (u, g) = user.split_once(':').unwrap_or((user.as_str(), ""));
        match u.parse::<u64>() {
            Ok(uid) => {
                sc.insert("runAsUser".into(), json!(uid));
            }
            Err(_) => conv.warn(
                name,
                "user",
                format!("{u:?}: Kubernetes takes numeric ids only; left out"),
            ),
        }
        if !g.is_empty() {
            match g.parse::<u64>() {
                Ok(gid) => {
                    sc.insert("runAsGroup".into(), json!(gid));
                }
                Err(_) => conv.warn(
                    name,
                    "user",
                    format!("group {g:?}: Kubernetes takes numeric ids only; left out"),
                ),
            }
        }
    }
    (!sc.is_empty()).then_some(Value::Object(sc))
}

/// Limits from `deploy.resources.limits` (else `cpus`/`mem_limit`), requests from
/// `reservations` (else `mem_reservation`).
fn resources(name: &str, svc: &Service, conv: &mut Conversion) -> Option<Value> {
    let res = svc.deploy.as_ref().and_then(|d| d.resources.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let reserve = res.and_then(|r| r.reservations.as_ref());
    let mut lim = Map::new();
    if let Some(cpus) = limits.and_then(|l| l.cpus).or(svc.cpus) {
        lim.insert(
            "cpu".into(),
            json!(format!("{}m", (cpus * 1000.0).round() as u64)),
        );
    }
    if let Some(mem) = limits.and_then(|l| l.memory).or(svc.mem_limit) {
        lim.insert("memory".into(), json!(mem.0.to_string()));
    }
    if limits.and_then(|l| l.pids).or(svc.pids_limit).is_some() {
        conv.warn(
            name,
            "pids_limit",
            "a pod has no per-container pids limit (the node's kubelet sets one)",
        );
    }
    let mut req = Map::new();
    if let Some(cpus) = reserve.and_then(|r| r.cpus) {
        req.insert(
            "cpu".into(),
            json!(format!("{}m", (cpus * 1000.0).round() as u64)),
        );
    }
    if let Some(mem) = reserve.and_then(|r| r.memory).or(svc.mem_reservation) {
        req.insert("memory".into(), json!(mem.0.to_string()));
    }
    let mut out = Map::new();
    if !lim.is_empty() {
        out.insert("limits".into(), Value::Object(lim));
    }
    if !req.is_empty() {
        out.insert("requests".into(), Value::Object(req));
    }
    (!out.is_empty()).then_some(Value::Object(out))
}

/// A healthcheck as a readiness probe: Compose's health gates dependants and never restarts
/// the container, which is what readiness (not liveness) does. `None` when disabled or when
/// it is the image's own (Kubernetes does not run images' HEALTHCHECKs).
pub(super) fn readiness_probe(h: &Healthcheck) -> Option<Value> {
    if h.disable {
        return None;
    }
    let command = match h.test.first().map(String::as_str) {
        Some("CMD") => h.test[1..].to_vec(),
        Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), h.test[1..].join(" ")],
        _ => return None,
    };
    let mut p = Map::new();
    p.insert("exec".into(), json!({"command": command}));
    let interval = h.interval.map_or(30, |d| secs(d.0));
    p.insert("periodSeconds".into(), json!(interval));
    p.insert(
        "timeoutSeconds".into(),
        json!(h.timeout.map_or(30, |d| secs(d.0))),
    );
    p.insert(
        "failureThreshold".into(),
        json!(h.retries.unwrap_or(3).max(1)),
    );
    if let Some(sp) = h.start_period {
        p.insert("initialDelaySeconds".into(), json!(sp.0.as_secs()));
    }
    Some(Value::Object(p))
}

/// One init container per `depends_on: service_healthy`: it waits until the dependency's
/// name resolves (a headless Service lists only ready pods, and a pod is ready when its
/// probe, the healthcheck, passes).
fn wait_containers(name: &str, svc: &Service, conv: &mut Conversion) -> Vec<Value> {
    let mut out = Vec::new();
    for (dep, d) in &svc.depends_on {
        match d.condition {
            DependsCondition::ServiceStarted => {}
            DependsCondition::ServiceCompletedSuccessfully => conv.warn(
                name,
                "depends_on",
                format!("{dep}: service_completed_successfully has no pod equivalent (run it as a Job before)"),
            ),
            DependsCondition::ServiceHealthy => {
                // The dependency's Service is headless: its name resolves only once a pod
                // is ready, i.e. once its probe (the healthcheck) passes.
                let script =
                    format!("until nslookup {dep}; do echo waiting for {dep}; sleep 2; done");
                out.push(json!({
                    "name": format!("wait-for-{dep}"),
                    "image": WAIT_IMAGE,
                    "command": ["sh", "-c", script],
                }));
            }
        }
    }
    out
}

fn host_aliases(name: &str, svc: &Service, conv: &mut Conversion) -> Vec<Value> {
    let mut by_ip: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (host, ips) in &svc.extra_hosts {
        for ip in ips {
            if ip.parse::<std::net::IpAddr>().is_ok() {
                by_ip.entry(ip.clone()).or_default().push(host.clone());
            } else {
                conv.warn(
                    name,
                    "extra_hosts",
                    format!("{host}={ip}: only IP addresses become host aliases"),
                );
            }
        }
    }
    by_ip
        .into_iter()
        .map(|(ip, hostnames)| json!({"ip": ip, "hostnames": hostnames}))
        .collect()
}

/// Extra servers, searches and options merged into the cluster's DNS (the policy stays
/// `ClusterFirst`, so service names keep resolving).
fn dns_config(svc: &Service) -> Option<Value> {
    if svc.dns.is_empty() && svc.dns_search.is_empty() && svc.dns_opt.is_empty() {
        return None;
    }
    let mut d = Map::new();
    if !svc.dns.is_empty() {
        d.insert("nameservers".into(), json!(svc.dns));
    }
    if !svc.dns_search.is_empty() {
        d.insert("searches".into(), json!(svc.dns_search));
    }
    if !svc.dns_opt.is_empty() {
        let opts: Vec<Value> = svc
            .dns_opt
            .iter()
            .map(|o| match o.split_once(':') {
                Some((n, v)) => json!({"name": n, "value": v}),
                None => json!({"name": o}),
            })
            .collect();
        d.insert("options".into(), Value::Array(opts));
    }
    Some(Value::Object(d))
}

/// The container's mounts and the pod's volumes.
fn mounts(
    project: &Project,
    name: &str,
    svc: &Service,
    owners: &Owners,
    files: &mut ProjectFiles,
    conv: &mut Conversion,
) -> Result<(Vec<Value>, Vec<Value>), ConvertError> {
    let mut mounts = Vec::new();
    let mut volumes = Vec::new();
    for (i, v) in svc.volumes.iter().enumerate() {
        let mut m = Map::new();
        m.insert("mountPath".into(), json!(v.target));
        if v.read_only {
            m.insert("readOnly".into(), json!(true));
        }
        if let Some(sub) = v.volume.as_ref().and_then(|o| o.subpath.clone()) {
            m.insert("subPath".into(), json!(sub));
        }
        let vol_name = match (&v.kind, &v.source) {
            (VolumeType::Volume, Some(key)) => {
                let claim = owners.claim_name(project, key);
                let vname = names::sanitize(key);
                if !owners.owned_by(key, name) {
                    volumes.push(
                        json!({"name": vname, "persistentVolumeClaim": {"claimName": claim}}),
                    );
                }
                vname
            }
            (VolumeType::Volume, None) => {
                let vname = format!("anon-{i}");
                volumes.push(json!({"name": vname, "emptyDir": {}}));
                vname
            }
            (VolumeType::Tmpfs, _) => {
                let vname = format!("tmpfs-{i}");
                let mut ed = Map::new();
                ed.insert("medium".into(), json!("Memory"));
                if let Some(size) = v.tmpfs.as_ref().and_then(|t| t.size) {
                    ed.insert("sizeLimit".into(), json!(size.0.to_string()));
                }
                volumes.push(json!({"name": vname, "emptyDir": Value::Object(ed)}));
                vname
            }
            (VolumeType::Bind, Some(src)) => {
                if !v.read_only {
                    return Err(refuse(
                        name,
                        "volumes",
                        format!(
                            "bind {src}:{}: a read-write host path does not exist on cluster nodes: use a named volume",
                            v.target
                        ),
                    ));
                }
                let (cm, key) = files.bind(project, name, src)?;
                let vname = format!("bind-{i}");
                volumes.push(json!({"name": vname, "configMap": {"name": cm}}));
                if let Some(key) = key {
                    m.insert("subPath".into(), json!(key));
                }
                vname
            }
            (kind, _) => {
                return Err(refuse(
                    name,
                    "volumes",
                    format!("{:?} mounts have no pod equivalent", kind),
                ));
            }
        };
        m.insert("name".into(), json!(vol_name));
        mounts.push(Value::Object(m));
    }
    for (i, t) in svc.tmpfs.iter().enumerate() {
        let path = t.split(':').next().unwrap_or(t);
        let vname = format!("tmpfs-x{i}");
        volumes.push(json!({"name": vname, "emptyDir": {"medium": "Memory"}}));
        mounts.push(json!({"name": vname, "mountPath": path}));
    }
    if let Some(shm) = svc.shm_size {
        volumes.push(json!({"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": shm.0.to_string()}}));
        mounts.push(json!({"name": "dshm", "mountPath": "/dev/shm"}));
    }
    for (kind, refs) in [("configs", &svc.configs), ("secrets", &svc.secrets)] {
        for r in refs {
            let (obj, key) = files.file_object(project, name, kind, &r.source)?;
            let target = r.target.clone().unwrap_or_else(|| {
                if kind == "secrets" {
                    format!("/run/secrets/{}", r.source)
                } else {
                    format!("/{}", r.source)
                }
            });
            let target = if target.starts_with('/') {
                target
            } else {
                format!("/run/secrets/{target}")
            };
            let vname = format!("{}-{}", &kind[..kind.len() - 1], names::sanitize(&r.source));
            let mut src = Map::new();
            if kind == "secrets" {
                src.insert("secretName".into(), json!(obj));
            } else {
                src.insert("name".into(), json!(obj));
            }
            if let Some(mode) = r.mode {
                src.insert("defaultMode".into(), json!(mode));
            }
            if r.uid.is_some() || r.gid.is_some() {
                conv.warn(
                    name,
                    kind,
                    format!(
                        "{}: uid/gid of the file are the pod's fsGroup in Kubernetes; left out",
                        r.source
                    ),
                );
            }
            let source_key = if kind == "secrets" {
                "secret"
            } else {
                "configMap"
            };
            volumes.push(json!({"name": vname, source_key: Value::Object(src)}));
            mounts.push(
                json!({"name": vname, "mountPath": target, "subPath": key, "readOnly": true}),
            );
        }
    }
    Ok((mounts, volumes))
}
