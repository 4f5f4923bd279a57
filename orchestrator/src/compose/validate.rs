//! Checks across the typed model: references between services and resources, dependency cycles,
//! duplicate container names, host-port clashes, and so on. Each finding names its key path;
//! the loader adds file:line:column.

use std::collections::BTreeMap;

use super::error::{Issue, Place};
use super::fields::suggest;
use super::loader::LoadOptions;
use super::model::{Project, Service, VolumeType, volumes_from_service};
use crate::graph::{GraphError, ServiceGraph};

fn issue(path: String, message: String) -> Issue {
    Issue {
        place: Place {
            file: None,
            line: None,
            path,
        },
        message,
    }
}

/// All semantic findings for a project.
pub fn check(p: &Project, opts: &LoadOptions) -> Vec<Issue> {
    let mut out = Vec::new();
    for name in &opts.services {
        if !p.services.contains_key(name) {
            let hint = hint(name, p.services.keys());
            out.push(issue(
                String::new(),
                format!("no such service: {name:?}{hint}"),
            ));
        }
    }
    let mut container_names: BTreeMap<&str, &str> = BTreeMap::new();
    for name in p.services.keys().chain(p.disabled_services.keys()) {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
            || name.is_empty()
        {
            out.push(issue(
                format!("services.{name}"),
                format!(
                    "invalid service name {name:?}: use only letters, digits, '.', '_' and '-'"
                ),
            ));
        }
    }
    for (name, svc) in &p.services {
        let sp = format!("services.{name}");
        if let Some(cn) = &svc.container_name {
            let mut chars = cn.chars();
            let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
                && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !ok {
                out.push(issue(
                    format!("{sp}.container_name"),
                    format!(
                        "invalid container name {cn:?}: must start with a letter or digit, then letters, digits, '.', '_' or '-'"
                    ),
                ));
            }
        }
        if let Some(lg) = &svc.logging {
            if let Some(v) = lg.options.get("max-size")
                && super::units::parse_size(v).is_err()
            {
                out.push(issue(
                    format!("{sp}.logging.options.max-size"),
                    format!("{v:?} is not a size (e.g. 10m)"),
                ));
            }
            if let Some(v) = lg.options.get("max-file")
                && !v.parse::<u32>().is_ok_and(|n| n > 0)
            {
                out.push(issue(
                    format!("{sp}.logging.options.max-file"),
                    format!("{v:?} is not a positive number of files"),
                ));
            }
        }
        for (i, d) in svc.dns.iter().enumerate() {
            if d.parse::<std::net::IpAddr>().is_err() {
                out.push(issue(
                    format!("{sp}.dns[{i}]"),
                    format!("{d:?} is not an IP address (dns: lists resolver addresses)"),
                ));
            }
        }
        if svc.provider.is_some() {
            out.push(issue(
                format!("{sp}.provider"),
                format!(
                    "service {name:?} is run by a provider: provider services are not supported by berth"
                ),
            ));
        } else if svc.image.is_none() && svc.build.is_none() {
            out.push(issue(
                sp.clone(),
                format!("service {name:?} has neither an image nor a build context"),
            ));
        }
        references(p, name, svc, &mut out);
        if let Some(cn) = &svc.container_name {
            if let Some(other) = container_names.insert(cn, name) {
                out.push(issue(
                    format!("{sp}.container_name"),
                    format!("container name {cn:?} is already used by service {other:?}"),
                ));
            }
            if svc.replicas() > 1 {
                out.push(issue(
                    format!("{sp}.container_name"),
                    format!(
                        "container_name {cn:?} cannot be used with {} replicas (names must be unique)",
                        svc.replicas()
                    ),
                ));
            }
        }
        if let (Some(scale), Some(replicas)) =
            (svc.scale, svc.deploy.as_ref().and_then(|d| d.replicas))
            && scale != replicas
        {
            out.push(issue(
                format!("{sp}.scale"),
                format!("scale ({scale}) and deploy.replicas ({replicas}) disagree"),
            ));
        }
        // Compose refuses two different values for one limit rather than pick one.
        let limits = svc
            .deploy
            .as_ref()
            .and_then(|d| d.resources.as_ref())
            .and_then(|r| r.limits.as_ref());
        if let (Some(cpus), Some(limit)) = (svc.cpus, limits.and_then(|l| l.cpus))
            && cpus != limit
        {
            out.push(issue(
                format!("{sp}.cpus"),
                format!("cpus ({cpus}) and deploy.resources.limits.cpus ({limit}) disagree"),
            ));
        }
        if let (Some(pids), Some(limit)) = (svc.pids_limit, limits.and_then(|l| l.pids))
            && pids != limit
        {
            out.push(issue(
                format!("{sp}.pids_limit"),
                format!("pids_limit ({pids}) and deploy.resources.limits.pids ({limit}) disagree"),
            ));
        }
        if let (Some(mem), Some(limit)) = (svc.mem_limit, limits.and_then(|l| l.memory))
            && mem != limit
        {
            out.push(issue(
                format!("{sp}.mem_limit"),
                format!(
                    "mem_limit ({}) and deploy.resources.limits.memory ({}) disagree",
                    mem.0, limit.0
                ),
            ));
        }
        if let Some(mode) = &svc.network_mode
            && !svc.networks.is_empty()
        {
            out.push(issue(
                format!("{sp}.network_mode"),
                format!("network_mode {mode:?} cannot be combined with networks"),
            ));
        }
        if let Some(mode) = &svc.network_mode
            && (mode.starts_with("service:") || mode.starts_with("container:"))
            && !svc.ports.is_empty()
        {
            out.push(issue(
                format!("{sp}.ports"),
                format!(
                    "ports cannot be published with network_mode {mode:?}: publish them on the service or container whose network it shares"
                ),
            ));
        }
        let mut targets: BTreeMap<&str, usize> = BTreeMap::new();
        for (i, v) in svc.volumes.iter().enumerate() {
            if let Some(first) = targets.insert(v.target.as_str(), i) {
                out.push(issue(
                    format!("{sp}.volumes[{i}]"),
                    format!(
                        "mount target {:?} is already used by volumes[{first}]",
                        v.target
                    ),
                ));
            }
        }
        for (i, e) in svc.expose.iter().enumerate() {
            let ok = match e.split_once('/') {
                Some((p, proto)) => ["tcp", "udp", "sctp"].contains(&proto) && port_or_range(p),
                None => port_or_range(e),
            };
            if !ok {
                out.push(issue(
                    format!("{sp}.expose[{i}]"),
                    format!("{e:?} is not a port or range (1-65535)"),
                ));
            }
        }
        for (i, port) in svc.ports.iter().enumerate() {
            if port.target == 0 {
                out.push(issue(format!("{sp}.ports[{i}]"), "target port 0".into()));
            }
        }
    }
    addresses(p, &mut out);
    name_file_values(p, &mut out);
    ports_clash(p, &mut out);
    security_and_protocols(p, &mut out);
    {
        // Missing dependencies are reported above; the graph looks only for cycles.
        let edges = p
            .services
            .iter()
            .map(|(n, s)| {
                let deps = s
                    .dependencies()
                    .into_iter()
                    .filter(|d| p.services.contains_key(d))
                    .collect();
                (n.clone(), deps)
            })
            .collect();
        match ServiceGraph::from_edges(edges) {
            Err(GraphError::Cycle { path }) => {
                let first = path.first().cloned().unwrap_or_default();
                out.push(issue(
                    format!("services.{first}.depends_on"),
                    format!("dependency cycle: {}", path.join(" -> ")),
                ));
            }
            Err(e) => out.push(issue(String::new(), e.to_string())),
            Ok(_) => {}
        }
    }
    out
}

fn hint<'a>(word: &str, known: impl Iterator<Item = &'a String>) -> String {
    suggest(word, known.map(String::as_str))
        .map(|s| format!(" (did you mean {s:?}?)"))
        .unwrap_or_default()
}

fn references(p: &Project, name: &str, svc: &Service, out: &mut Vec<Issue>) {
    let sp = format!("services.{name}");
    for (dep, d) in &svc.depends_on {
        let disabled = p
            .services
            .get(dep)
            .and_then(|s| s.healthcheck.as_ref())
            .is_some_and(|h| h.disable);
        if d.condition == super::model::DependsCondition::ServiceHealthy && disabled {
            out.push(issue(
                format!("{sp}.depends_on.{dep}"),
                format!(
                    "waits for {dep:?} to be healthy, but {dep:?} has its healthcheck disabled"
                ),
            ));
        }
    }
    let mut check_service = |path: String, dep: &str, required: bool, what: &str| {
        if p.services.contains_key(dep) {
            return;
        }
        if let Some(d) = p.disabled_services.get(dep) {
            if required {
                out.push(issue(
                    path,
                    format!(
                        "{what} service {dep:?}, which is disabled by its profiles {:?} (enable one with --profile)",
                        d.profiles
                    ),
                ));
            }
            return;
        }
        if required {
            let h = hint(dep, p.services.keys());
            out.push(issue(path, format!("{what} unknown service {dep:?}{h}")));
        } else {
            tracing::warn!(
                service = name,
                dependency = dep,
                "optional dependency is not defined"
            );
        }
    };
    for (dep, d) in &svc.depends_on {
        check_service(
            format!("{sp}.depends_on.{dep}"),
            dep,
            d.required,
            "depends on",
        );
    }
    for (i, l) in svc.links.iter().enumerate() {
        let dep = l.split(':').next().unwrap_or(l);
        check_service(format!("{sp}.links[{i}]"), dep, true, "links to");
    }
    for (i, v) in svc.volumes_from.iter().enumerate() {
        if let Some(dep) = volumes_from_service(v) {
            check_service(
                format!("{sp}.volumes_from[{i}]"),
                dep,
                true,
                "takes volumes from",
            );
        }
    }
    let contexts = svc.build.as_ref().map(|b| b.service_contexts());
    let mut unbuilt = Vec::new();
    for (ctx, dep) in contexts.unwrap_or_default() {
        let path = format!("{sp}.build.additional_contexts.{ctx}");
        match p.services.get(&dep) {
            // As Compose: only a service that builds its image can stand for a context.
            Some(other) if other.build.is_none() => unbuilt.push(issue(
                path,
                format!(
                    "service {dep:?} has no build: section, so it cannot be a build context (name its image as docker-image://IMAGE)"
                ),
            )),
            Some(_) => {}
            None => check_service(path, &dep, true, "takes a build context from"),
        }
    }
    for (key, mode) in [
        ("network_mode", &svc.network_mode),
        ("ipc", &svc.ipc),
        ("pid", &svc.pid),
    ] {
        if let Some(dep) = mode.as_deref().and_then(|m| m.strip_prefix("service:")) {
            check_service(format!("{sp}.{key}"), dep, true, "shares the namespace of");
        }
    }
    out.extend(unbuilt);
    for net in svc.networks.keys() {
        if !p.networks.contains_key(net) && net != "default" {
            let h = hint(net, p.networks.keys());
            out.push(issue(
                format!("{sp}.networks.{net}"),
                format!("network {net:?} is not declared under top-level networks{h}"),
            ));
        }
    }
    for (i, v) in svc.volumes.iter().enumerate() {
        if v.kind == VolumeType::Volume
            && let Some(src) = &v.source
            && !p.volumes.contains_key(src)
        {
            let h = hint(src, p.volumes.keys());
            out.push(issue(
                format!("{sp}.volumes[{i}]"),
                format!("named volume {src:?} is not declared under top-level volumes{h}"),
            ));
        }
        let kind = match v.kind {
            VolumeType::Image => Some("image"),
            VolumeType::Npipe => Some("npipe"),
            VolumeType::Cluster => Some("cluster"),
            _ => None,
        };
        if let Some(kind) = kind {
            out.push(issue(
                format!("{sp}.volumes[{i}].type"),
                format!(
                    "{kind} mounts are not supported: berth mounts bind, volume and tmpfs only"
                ),
            ));
        }
        if v.kind == VolumeType::Bind && v.source.is_none() {
            out.push(issue(
                format!("{sp}.volumes[{i}]"),
                "bind mount without a source".into(),
            ));
        }
    }
    for (kind, refs, top) in [
        ("configs", &svc.configs, &p.configs),
        ("secrets", &svc.secrets, &p.secrets),
    ] {
        for (i, r) in refs.iter().enumerate() {
            let Some(o) = top.get(&r.source) else {
                let h = hint(&r.source, top.keys());
                out.push(issue(
                    format!("{sp}.{kind}[{i}]"),
                    format!("{:?} is not declared under top-level {kind}{h}", r.source),
                ));
                continue;
            };
            // Mounted as a bind of the host file, so only `file:` has something to mount.
            if o.file.is_none() {
                let key = if o.content.is_some() {
                    "content"
                } else if o.environment.is_some() {
                    "environment"
                } else if o.external {
                    "external"
                } else if o.driver.is_some() {
                    "driver"
                } else {
                    "file"
                };
                out.push(issue(
                    format!("{sp}.{kind}[{i}]"),
                    format!(
                        "{kind}.{}.{key} is not supported: berth mounts file-based {kind} only \
                         (give the content in a file: and name it with file:)",
                        r.source
                    ),
                ));
            }
        }
    }
}

fn port_or_range(s: &str) -> bool {
    let one = |p: &str| p.parse::<u32>().is_ok_and(|n| (1..=65535).contains(&n));
    match s.split_once('-') {
        Some((a, b)) => one(a) && one(b),
        None => one(s),
    }
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, len)) = s.split_once('/') else {
        return false;
    };
    match (ip.parse::<std::net::IpAddr>(), len.parse::<u8>()) {
        (Ok(std::net::IpAddr::V4(_)), Ok(l)) => l <= 32,
        (Ok(std::net::IpAddr::V6(_)), Ok(l)) => l <= 128,
        _ => false,
    }
}

/// Addresses and subnets that must parse.
fn addresses(p: &Project, out: &mut Vec<Issue>) {
    for (name, svc) in &p.services {
        for (net, cfg) in &svc.networks {
            let Some(cfg) = cfg else { continue };
            let np = format!("services.{name}.networks.{net}");
            if let Some(a) = &cfg.ipv4_address
                && a.parse::<std::net::Ipv4Addr>().is_err()
            {
                out.push(issue(
                    format!("{np}.ipv4_address"),
                    format!("{a:?} is not an IPv4 address"),
                ));
            }
            if let Some(a) = &cfg.ipv6_address
                && a.parse::<std::net::Ipv6Addr>().is_err()
            {
                out.push(issue(
                    format!("{np}.ipv6_address"),
                    format!("{a:?} is not an IPv6 address"),
                ));
            }
        }
        for (host, ips) in &svc.extra_hosts {
            for ip in ips {
                if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                    out.push(issue(
                        format!("services.{name}.extra_hosts.{host}"),
                        format!("{ip:?} is not an IP address (or host-gateway)"),
                    ));
                }
            }
        }
    }
    for (name, n) in &p.networks {
        let Some(ipam) = &n.ipam else { continue };
        for (i, pool) in ipam.config.iter().enumerate() {
            let pp = format!("networks.{name}.ipam.config[{i}]");
            for (key, v) in [("subnet", &pool.subnet), ("ip_range", &pool.ip_range)] {
                if let Some(v) = v
                    && !valid_cidr(v)
                {
                    out.push(issue(
                        format!("{pp}.{key}"),
                        format!("{v:?} is not a CIDR subnet like 10.5.0.0/24"),
                    ));
                }
            }
            if let Some(g) = &pool.gateway
                && g.parse::<std::net::IpAddr>().is_err()
            {
                out.push(issue(
                    format!("{pp}.gateway"),
                    format!("{g:?} is not an IP address"),
                ));
            }
        }
    }
}

/// `security_opt` values berth cannot apply (read by the same parser `container run` uses),
/// and published `sctp` ports, which netd does not publish: refused by name rather than run
/// with a weaker or different meaning.
fn security_and_protocols(p: &Project, out: &mut Vec<Issue>) {
    for (name, svc) in &p.services {
        for (i, o) in svc.security_opt.iter().enumerate() {
            if let Err(e) = berth_runtime::container::SecurityOpt::parse(o) {
                out.push(issue(format!("services.{name}.security_opt[{i}]"), e));
            }
        }
        for (i, port) in svc.ports.iter().enumerate() {
            if port.protocol == "sctp" && port.published.is_some() {
                out.push(issue(
                    format!("services.{name}.ports[{i}]"),
                    format!(
                        "publishing sctp port {} is not supported (tcp or udp)",
                        port.target
                    ),
                ));
            }
        }
    }
}

/// Values that become lines of a container's /etc/hosts, /etc/hostname or resolv.conf (or DNS
/// names): a control character, a newline above all, would let the file add lines of its
/// choosing (`db` mapped to an address nobody chose), so it is refused with its key.
fn name_file_values(p: &Project, out: &mut Vec<Issue>) {
    let mut check = |path: String, v: &str| {
        if v.chars().any(char::is_control) {
            out.push(issue(
                path,
                format!("{v:?} contains a control character (a newline would add a line to the container's name files)"),
            ));
        }
    };
    for (name, svc) in &p.services {
        let sp = format!("services.{name}");
        for (key, v) in [("hostname", &svc.hostname), ("domainname", &svc.domainname)] {
            if let Some(v) = v {
                check(format!("{sp}.{key}"), v);
            }
        }
        for (host, ips) in &svc.extra_hosts {
            // The host name is a key of the normalised mapping: the path stops at the list.
            check(format!("{sp}.extra_hosts"), host);
            for ip in ips {
                check(format!("{sp}.extra_hosts"), ip);
            }
        }
        for (key, list) in [
            ("dns_search", &svc.dns_search),
            ("dns_opt", &svc.dns_opt),
            ("links", &svc.links),
        ] {
            for (i, v) in list.iter().enumerate() {
                check(format!("{sp}.{key}[{i}]"), v);
            }
        }
        for (net, cfg) in &svc.networks {
            let Some(cfg) = cfg else { continue };
            for (i, a) in cfg.aliases.iter().enumerate() {
                check(format!("{sp}.networks.{net}.aliases[{i}]"), a);
            }
        }
    }
}

/// Two services (or two entries) publishing the same host ip/port/protocol.
fn ports_clash(p: &Project, out: &mut Vec<Issue>) {
    let mut seen: BTreeMap<(u16, String), Vec<(String, String)>> = BTreeMap::new();
    for (name, svc) in &p.services {
        for (i, port) in svc.ports.iter().enumerate() {
            let Some(published) = port.published.as_deref() else {
                continue;
            };
            let (lo, hi) = match published.split_once('-') {
                Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(0)),
                None => {
                    let n: u16 = published.parse().unwrap_or(0);
                    (n, n)
                }
            };
            if lo == 0 || hi != lo {
                // A published range lets the engine pick a free port: no fixed clash.
                continue;
            }
            let ip = port.host_ip.clone().unwrap_or_default();
            let ip = if ip == "0.0.0.0" || ip == "::" {
                String::new()
            } else {
                ip
            };
            let entry = seen.entry((lo, port.protocol.clone())).or_default();
            let at = format!("services.{name}.ports[{i}]");
            for (other_ip, other_at) in entry.iter() {
                if other_ip == &ip || other_ip.is_empty() || ip.is_empty() {
                    let shown = if ip.is_empty() { "*" } else { ip.as_str() };
                    out.push(issue(
                        at.clone(),
                        format!(
                            "host port {shown}:{lo}/{} is already published by {other_at}",
                            port.protocol
                        ),
                    ));
                    break;
                }
            }
            entry.push((ip, at));
        }
    }
}
