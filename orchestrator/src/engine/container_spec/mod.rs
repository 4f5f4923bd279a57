//! The one translation of "a container to create" ([`ContainerSpec`], Docker's create body)
//! into the runtime's [`ContainerConfig`] and the bridge networks to attach it to.
//!
//! Both front ends lower into the spec (`container run/create` flags in the CLI, Compose
//! services in [`super::translate`]) and come here, so the image's VOLUMEs, env, ports, mounts,
//! sizes, limits and security options mean the same in both. Everything is checked before
//! anything is made; an error names the field of the spec.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use berth_netd::ports::{PortMapping, Protocol};
use berth_runtime::container::config::ProcessOverrides;
use berth_runtime::container::volumes::anonymous_name;
use berth_runtime::container::{
    ContainerConfig, MountSpec, NetworkMode, Propagation, Record, Resources, RootfsSource,
    SecurityOpt, Ulimit,
};
use berth_runtime::image::Image;

use super::labels;

mod block_io;
mod mounts;
mod namespaces;
pub(crate) mod realtime;
use super::stack::DEFAULT_BRIDGE;
use crate::api::container::{ContainerSpec, HostConfig, UnsupportedField, is_bridge_mode};
use crate::api::project::{ContainerConnect, ContainerNetwork};
pub use block_io::host_warnings;
pub(crate) use block_io::update_weight;
use mounts::mounts;
pub use mounts::{share_volumes_from, volumes_from_entry};
use namespaces::{namespaces, network};

/// Why a spec cannot become a container: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SpecError {
    #[error("{0}")]
    Unsupported(#[from] UnsupportedField),
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Finds a container by name or id (for `VolumesFrom` and `container:NAME`).
pub type Lookup<'a> = &'a dyn Fn(&str) -> Result<Record, String>;

/// What the translation needs besides the spec.
#[derive(Default)]
pub struct Context<'a> {
    /// The resolved image (`None` only with `Rootfs`).
    pub image: Option<&'a Image>,
    /// Anonymous volume to reuse per target (the replaced container's, on a recreate).
    pub inherit: Option<&'a BTreeMap<String, String>>,
    /// Finds other containers (`VolumesFrom`, `container:NAME`); `None` when the caller joins
    /// shared namespaces itself (the engine's services), which leaves such a mode unattached.
    pub containers: Option<Lookup<'a>>,
}

/// A spec translated: the runtime config and how to join its networks.
#[derive(Debug)]
pub struct Translated {
    pub config: ContainerConfig,
    /// The image's id, recorded with the container so `image rm` knows it is in use.
    pub image_id: Option<String>,
    /// Bridge networks to attach before start (`container` left empty); `None` for
    /// none/host/container: modes.
    pub connect: Option<ContainerConnect>,
    /// `ExtraHosts` as `(name, ip)` pairs (`ip` may be `host-gateway`).
    pub extra_hosts: Vec<(String, String)>,
    /// What is accepted and not applied (AppArmor/SELinux options, limits the host's cgroups
    /// lack), for the caller to show.
    pub warnings: Vec<String>,
}

/// The network `NetworkMode` names: `bridge` for empty and `default`, as Docker.
fn primary_network(mode: &str) -> &str {
    match mode {
        "" | "default" => DEFAULT_BRIDGE,
        m => m,
    }
}

/// Translates `spec` into the container `name` (generated when empty).
pub fn translate(name: &str, spec: &ContainerSpec, cx: &Context) -> Result<Translated, SpecError> {
    spec.check_supported()?;
    let hc = &spec.host_config;
    let none_if_empty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let (mut c, image_id) = match (&spec.rootfs, cx.image) {
        (Some(dir), _) => {
            let mut args = spec.entrypoint.clone().unwrap_or_default();
            args.extend(spec.cmd.clone().unwrap_or_default());
            let mut c = ContainerConfig::new(RootfsSource::Dir(dir.clone()), args);
            c.env.extend(spec.env.iter().cloned());
            if !spec.user.is_empty() {
                c.user = Some(spec.user.clone());
            }
            if !spec.working_dir.is_empty() {
                c.working_dir = Some(PathBuf::from(&spec.working_dir));
            }
            (c, None)
        }
        (None, Some(image)) => {
            // Docker's rules for combining the image's Entrypoint/Cmd/Env/User/WorkingDir with
            // the overrides live in the runtime.
            let overrides = ProcessOverrides {
                entrypoint: spec.entrypoint.clone(),
                cmd: spec.cmd.clone().unwrap_or_default(),
                env: spec.env.clone(),
                user: none_if_empty(&spec.user),
                working_dir: none_if_empty(&spec.working_dir).map(PathBuf::from),
            };
            let c = ContainerConfig::from_image(image.layer_dirs(), &image.config, overrides);
            (c, Some(image.id.to_string()))
        }
        (None, None) => return Err(invalid("Image", "an image (or Rootfs) is needed")),
    };
    c.name = name.to_string();
    c.hostname = none_if_empty(&spec.hostname);
    c.tty = spec.tty;
    c.open_stdin = spec.open_stdin;
    // A terminal gets a TERM, as Docker gives it.
    if spec.tty && !c.env.iter().any(|e| e.starts_with("TERM=")) {
        c.env.push("TERM=xterm".into());
    }
    let mut warnings = Vec::new();
    mounts(spec, cx, &mut c)?;
    network(spec, cx, &mut c)?;
    limits(spec, &mut c)?;
    block_io::block_io(hc, &mut c, &mut warnings)?;
    for o in &hc.security_opt {
        let opt = SecurityOpt::parse(o).map_err(|e| invalid("HostConfig.SecurityOpt", e))?;
        if opt == SecurityOpt::NotApplied {
            warnings.push(format!(
                "security option {o:?} is not applied (berth loads no AppArmor or SELinux policy)"
            ));
        }
        opt.apply(&mut c);
    }
    devices(hc, &mut c)?;
    namespaces(spec, cx, &mut c)?;
    c.annotations = hc.annotations.clone();
    c.group_add = hc.group_add.clone();
    c.cgroup_parent = (!hc.cgroup_parent.is_empty()).then(|| hc.cgroup_parent.clone());
    c.privileged = hc.privileged;
    c.read_only = hc.readonly_rootfs;
    c.cap_add = hc.cap_add.clone();
    c.cap_drop = hc.cap_drop.clone();
    c.init = hc.init.unwrap_or(false);
    c.oci_runtime = match hc.runtime.as_deref() {
        None | Some("") | Some("berth") => None,
        Some(r) => Some(
            berth_runtime::container::oci_runtime::OciRuntime::parse(r)
                .map_err(|e| invalid("HostConfig.Runtime", e.to_string()))?
                .name()
                .to_string(),
        ),
    };
    c.auto_remove = hc.auto_remove;
    if let Some(s) = &spec.stop_signal {
        c.stop_signal = super::translate::parse_signal(s).ok_or_else(|| {
            invalid(
                "StopSignal",
                format!("{s:?} is not a signal name or number"),
            )
        })?;
    }
    if let Some(t) = spec.stop_timeout {
        c.stop_timeout = t;
    }
    let mut l: BTreeMap<String, String> = cx
        .image
        .and_then(|i| i.runtime_config())
        .and_then(|r| r.labels().clone())
        .map(|m| m.into_iter().collect())
        .unwrap_or_default();
    l.extend(spec.labels.clone());
    if let Some(policy) = hc.restart_policy.label() {
        if hc.auto_remove {
            return Err(invalid(
                "HostConfig.RestartPolicy",
                format!(
                    "{policy} and AutoRemove (--rm) conflict: a removed container cannot restart"
                ),
            ));
        }
        l.insert(labels::RESTART.into(), policy);
    }
    c.labels.extend(l);
    // The check is kept as a label so that a restarted daemon re-arms it.
    if let Some(check) = spec
        .healthcheck
        .as_ref()
        .and_then(|h| super::health::Check::from_spec(h, cx.image))
    {
        let json =
            serde_json::to_string(&check).map_err(|e| invalid("Healthcheck", e.to_string()))?;
        c.labels.insert(labels::HEALTHCHECK.into(), json);
    }
    let extra_hosts = extra_hosts(spec)?;
    let connect = connect_request(spec, cx, &extra_hosts)?;
    let links: Vec<String> = hc
        .links
        .iter()
        .chain(
            spec.networking_config
                .endpoints_config
                .values()
                .flat_map(|e| e.links.iter()),
        )
        .cloned()
        .collect();
    if !links.is_empty() {
        let pairs = labels::parse_links(&links).map_err(|e| invalid("HostConfig.Links", e))?;
        // Docker's CLI sends a link in HostConfig and in the endpoint's settings too.
        let mut joined: Vec<String> = Vec::new();
        for (t, a) in &pairs {
            let pair = format!("{t}:{a}");
            if !joined.contains(&pair) {
                joined.push(pair);
            }
        }
        c.labels.insert(labels::LINKS.into(), joined.join(","));
    }
    // On a bridge network the servers are the embedded DNS's upstreams for this container
    // (names of the network still resolve); otherwise they go into its resolv.conf.
    let servers = dns_servers(spec)?;
    if connect.is_some() || matches!(c.network, NetworkMode::New) {
        if !servers.is_empty() {
            let list: Vec<String> = servers.iter().map(ToString::to_string).collect();
            c.labels.insert(labels::DNS_SERVERS.into(), list.join(","));
        }
    } else if !servers.is_empty() || !hc.dns_search.is_empty() || !hc.dns_options.is_empty() {
        let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
        c.resolv_conf = Some(
            super::resolv::override_resolv(&host, &servers, &hc.dns_search, &hc.dns_options)
                .map_err(|e| invalid("HostConfig.DnsSearch", e.to_string()))?,
        );
    }
    Ok(Translated {
        config: c,
        image_id,
        connect,
        extra_hosts,
        warnings,
    })
}

/// `Devices` and `DeviceCgroupRules`, checked now (the host node must be a device) so the
/// error names the field.
fn devices(hc: &HostConfig, c: &mut ContainerConfig) -> Result<(), SpecError> {
    use berth_runtime::container::devices::{DeviceMapping, parse_rule};
    for d in &hc.devices {
        let field = "HostConfig.Devices";
        let container = match d.path_in_container.as_str() {
            "" => d.path_on_host.as_str(),
            p => p,
        };
        let permissions = match d.cgroup_permissions.as_str() {
            "" => "rwm",
            p => p,
        };
        let m = DeviceMapping::new(&d.path_on_host, container, permissions)
            .map_err(|e| invalid(field, e.to_string()))?;
        m.rule().map_err(|e| invalid(field, e.to_string()))?;
        c.devices.push(m);
    }
    for r in &hc.device_cgroup_rules {
        parse_rule(r).map_err(|e| invalid("HostConfig.DeviceCgroupRules", e.to_string()))?;
        c.device_cgroup_rules.push(r.clone());
    }
    Ok(())
}

/// The cgroup limits a `HostConfig` asks for (Docker's 0 for a field: none); the one
/// translation for create and for Docker's `update`.
pub(crate) fn resources(hc: &HostConfig) -> Resources {
    let mut r = Resources {
        memory: (hc.memory > 0).then_some(hc.memory),
        // CpuQuota/CpuPeriod (the CFS pair Docker passes through) is the same limit as
        // NanoCpus.
        cpus: if hc.nano_cpus > 0 {
            Some(hc.nano_cpus as f64 / 1e9)
        } else if hc.cpu_quota > 0 {
            let period = if hc.cpu_period > 0 {
                hc.cpu_period
            } else {
                100_000
            };
            Some(hc.cpu_quota as f64 / period as f64)
        } else {
            None
        },
        cpu_shares: (hc.cpu_shares > 0).then(|| hc.cpu_shares.max(2) as u64),
        cpuset_cpus: (!hc.cpuset_cpus.is_empty()).then(|| hc.cpuset_cpus.clone()),
        // Docker's 0 and -1 mean no limit; only a positive limit is one.
        pids_limit: hc.pids_limit.filter(|l| *l > 0),
        memory_reservation: (hc.memory_reservation > 0).then_some(hc.memory_reservation),
        memory_swap: (hc.memory_swap > 0 || hc.memory_swap == -1).then_some(hc.memory_swap),
        memory_swappiness: hc.memory_swappiness.and_then(|s| u64::try_from(s).ok()),
        // Checked and resolved to devices by `block_io` at create; `update` keeps the
        // container's.
        ..Resources::default()
    };
    if hc.cpu_realtime_period > 0 || hc.cpu_realtime_runtime > 0 {
        realtime::apply(hc, berth_runtime::container::realtime::supported(), &mut r);
    }
    r
}

/// Memory, CPU, pids, ulimits, sysctls, /dev/shm and log rotation.
fn limits(spec: &ContainerSpec, c: &mut ContainerConfig) -> Result<(), SpecError> {
    let hc = &spec.host_config;
    realtime::check(hc)?;
    c.resources = resources(hc);
    // Docker's checks of the memory fields, with its reasons.
    if hc.memory_swap > 0 && hc.memory <= 0 {
        return Err(invalid(
            "HostConfig.MemorySwap",
            "a memory+swap limit needs a memory limit (--memory)",
        ));
    }
    if hc.memory_swap > 0 && hc.memory_swap < hc.memory {
        return Err(invalid(
            "HostConfig.MemorySwap",
            "the memory+swap limit must be at least the memory limit",
        ));
    }
    if hc.memory > 0 && hc.memory_reservation > hc.memory {
        return Err(invalid(
            "HostConfig.MemoryReservation",
            "the memory limit cannot be less than the reservation",
        ));
    }
    if !(-1000..=1000).contains(&hc.oom_score_adj) {
        return Err(invalid(
            "HostConfig.OomScoreAdj",
            format!("{} is not in -1000..1000", hc.oom_score_adj),
        ));
    }
    c.oom_score_adj = (hc.oom_score_adj != 0).then_some(hc.oom_score_adj as i32);
    if let Some(s) = hc.memory_swappiness
        && !(s == -1 || (0..=100).contains(&s))
    {
        return Err(invalid(
            "HostConfig.MemorySwappiness",
            format!("{s} is not in 0-100 (or -1)"),
        ));
    }
    let limit = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    c.ulimits = hc
        .ulimits
        .iter()
        .map(|u| Ulimit {
            name: u.name.clone(),
            soft: limit(u.soft),
            hard: limit(u.hard),
        })
        .collect();
    c.sysctls = hc.sysctls.clone();
    if hc.shm_size > 0 {
        c.shm_size = hc.shm_size;
    }
    let log = &hc.log_config;
    if !matches!(log.r#type.as_str(), "" | "json-file" | "local") {
        return Err(invalid(
            "HostConfig.LogConfig.Type",
            format!("{:?} is not supported (json-file or local)", log.r#type),
        ));
    }
    for (k, v) in &log.config {
        let field = format!("HostConfig.LogConfig.Config.{k}");
        match k.as_str() {
            "max-size" => {
                c.log_max_size =
                    crate::compose::units::parse_size(v).map_err(|e| invalid(field, e))?
            }
            "max-file" => {
                c.log_max_files = v
                    .parse()
                    .map_err(|_| invalid(field, format!("{v:?} is not a number")))?
            }
            _ => return Err(invalid(field, "not supported (max-size, max-file)")),
        }
    }
    Ok(())
}

/// `ExtraHosts` `NAME:IP` (or `NAME=IP`) pairs; IP may be `host-gateway`.
fn extra_hosts(spec: &ContainerSpec) -> Result<Vec<(String, String)>, SpecError> {
    spec.host_config
        .extra_hosts
        .iter()
        .map(|h| {
            let field = "HostConfig.ExtraHosts";
            let (name, ip) = h
                .split_once(['=', ':'])
                .ok_or_else(|| invalid(field, format!("{h:?}: expected NAME:IP")))?;
            if ip != "host-gateway" && ip.parse::<IpAddr>().is_err() {
                return Err(invalid(
                    field,
                    format!("{h:?}: {ip:?} is not an IP address or host-gateway"),
                ));
            }
            Ok((name.to_string(), ip.to_string()))
        })
        .collect()
}

fn dns_servers(spec: &ContainerSpec) -> Result<Vec<IpAddr>, SpecError> {
    spec.host_config
        .dns
        .iter()
        .map(|d| {
            d.parse()
                .map_err(|_| invalid("HostConfig.Dns", format!("{d:?} is not an IP address")))
        })
        .collect()
}

/// A transport protocol as Docker spells it in `80/tcp` (sctp is refused: netd does not
/// publish it).
pub fn parse_protocol(field: &str, p: &str) -> Result<Protocol, SpecError> {
    match p {
        "" | "tcp" => Ok(Protocol::Tcp),
        "udp" => Ok(Protocol::Udp),
        other => Err(invalid(
            field,
            format!("protocol {other:?} is not supported (tcp or udp)"),
        )),
    }
}

/// `80`, `80-81`: first port and count.
fn port_range(field: &str, s: &str) -> Result<(u16, u16), SpecError> {
    let bad = || invalid(field, format!("{s:?} is not a port or range 1-65535"));
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| bad())?;
    let b: u16 = b.parse().map_err(|_| bad())?;
    if a == 0 || b < a {
        return Err(bad());
    }
    Ok((a, b - a + 1))
}

/// A free host port for `proto` right now (the kernel's ephemeral range, as Docker's).
fn free_port(field: &str, proto: Protocol) -> Result<u16, SpecError> {
    match proto {
        Protocol::Udp => std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr()),
        Protocol::Tcp => std::net::TcpListener::bind("0.0.0.0:0").and_then(|s| s.local_addr()),
    }
    .map(|a| a.port())
    .map_err(|e| invalid(field, format!("finding a free host port: {e}")))
}

/// `PortBindings` (and, with `PublishAllPorts`, every exposed port: the spec's and the
/// image's) as typed mappings; an empty host port takes a free one.
pub fn port_mappings(
    spec: &ContainerSpec,
    image: Option<&Image>,
) -> Result<Vec<PortMapping>, SpecError> {
    let hc = &spec.host_config;
    let mut bindings: Vec<(String, crate::api::container::PortBinding)> = hc
        .port_bindings
        .iter()
        .flat_map(|(k, list)| list.iter().map(move |b| (k.clone(), b.clone())))
        .collect();
    if hc.publish_all_ports {
        let from_image = image
            .and_then(|i| {
                i.config
                    .config()
                    .as_ref()
                    .and_then(|c| c.exposed_ports().clone())
            })
            .unwrap_or_default();
        for k in spec.exposed_ports.keys().cloned().chain(from_image) {
            if !hc.port_bindings.contains_key(&k) && !bindings.iter().any(|(b, _)| *b == k) {
                bindings.push((k, Default::default()));
            }
        }
    }
    let mut out = Vec::new();
    for (key, b) in bindings {
        let field = format!("HostConfig.PortBindings.{key}");
        let (ports, proto) = key.split_once('/').unwrap_or((key.as_str(), "tcp"));
        let protocol = parse_protocol(&field, proto)?;
        let (container_port, count) = port_range(&field, ports)?;
        let host_ip = match b.host_ip.trim_matches(['[', ']']) {
            "" => None,
            ip => Some(
                ip.parse()
                    .map_err(|_| invalid(&field, format!("HostIp {ip:?} is not an address")))?,
            ),
        };
        let (host_port, host_count) = match b.host_port.as_str() {
            "" | "0" if count == 1 => (free_port(&field, protocol)?, 1),
            "" | "0" => {
                return Err(invalid(
                    field,
                    "a port range needs its host ports (HOST-RANGE:CONTAINER-RANGE)",
                ));
            }
            p => port_range(&field, p)?,
        };
        if host_count != count {
            return Err(invalid(field, "host and container ranges differ in length"));
        }
        let m = PortMapping {
            protocol,
            host_ip,
            host_port,
            container_port,
            count,
        };
        m.validate().map_err(|e| invalid(&field, e.to_string()))?;
        out.push(m);
    }
    Ok(out)
}

/// What to ask the engine to attach, for a bridge `NetworkMode`: that network first (default
/// route, published ports, aliases and address), then the other `EndpointsConfig` networks.
fn connect_request(
    spec: &ContainerSpec,
    cx: &Context,
    extra_hosts: &[(String, String)],
) -> Result<Option<ContainerConnect>, SpecError> {
    let hc = &spec.host_config;
    let mode = hc.network_mode.as_str();
    let endpoints = &spec.networking_config.endpoints_config;
    if !is_bridge_mode(mode) {
        if !hc.port_bindings.is_empty() || hc.publish_all_ports {
            return Err(invalid(
                "HostConfig.PortBindings",
                format!("publishing ports (-p) needs a bridge network, not NetworkMode {mode}"),
            ));
        }
        if endpoints.keys().any(|n| n != mode) {
            return Err(invalid(
                "NetworkingConfig.EndpointsConfig",
                format!("NetworkMode {mode} cannot be combined with other networks"),
            ));
        }
        if endpoints.values().any(|e| {
            !e.aliases.is_empty()
                || !e.mac_address.is_empty()
                || e.ipam_config.is_some()
                || e.gw_priority != 0
        }) {
            return Err(invalid(
                "NetworkingConfig.EndpointsConfig",
                format!(
                    "--ip, --mac-address and --network-alias need a bridge network, not NetworkMode {mode}"
                ),
            ));
        }
        return Ok(None);
    }
    let primary = primary_network(mode).to_string();
    let mut networks = vec![ContainerNetwork {
        name: primary.clone(),
        ..Default::default()
    }];
    for name in endpoints.keys() {
        let name = primary_network(name);
        if name != primary {
            if !is_bridge_mode(name) {
                return Err(invalid(
                    "NetworkingConfig.EndpointsConfig",
                    format!("{name} cannot be combined with other networks"),
                ));
            }
            networks.push(ContainerNetwork {
                name: name.to_string(),
                ..Default::default()
            });
        }
    }
    for n in &mut networks {
        let ep = endpoints
            .iter()
            .find(|(k, _)| primary_network(k) == n.name)
            .map(|(_, e)| e);
        let Some(ep) = ep else { continue };
        let field = format!("NetworkingConfig.EndpointsConfig.{}", n.name);
        n.aliases = ep.aliases.clone();
        for (k, v) in &ep.driver_opts {
            let at = || format!("{field}.DriverOpts.{k}");
            match k.as_str() {
                crate::api::container::IFNAME_OPT => n.interface_name = Some(v.clone()),
                crate::api::container::SYSCTLS_OPT => {
                    n.sysctls =
                        crate::api::container::endpoint_sysctls(v).map_err(|e| invalid(at(), e))?
                }
                _ => {
                    return Err(invalid(
                        at(),
                        format!(
                            "{v:?}: only {} are supported",
                            crate::api::container::ENDPOINT_OPTS.join(" and ")
                        ),
                    ));
                }
            }
        }
        n.mac_address = (!ep.mac_address.is_empty()).then(|| ep.mac_address.clone());
        n.gw_priority = ep
            .gw_priority
            .clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
        n.ipv4_address = match ep.ipam_config.as_ref().map(|i| i.ipv4_address.as_str()) {
            None | Some("") => None,
            Some(a) => Some(a.parse().map_err(|_| {
                invalid(&field, format!("IPv4Address {a:?} is not an IPv4 address"))
            })?),
        };
        for a in ep.ipam_config.iter().flat_map(|i| &i.link_local_ips) {
            let ip: std::net::IpAddr = a.parse().map_err(|_| {
                invalid(
                    format!("{field}.IPAMConfig.LinkLocalIPs"),
                    format!("{a:?} is not an IP address"),
                )
            })?;
            if !is_link_local(ip) {
                return Err(invalid(
                    format!("{field}.IPAMConfig.LinkLocalIPs"),
                    format!("{a} is not link-local (169.254.0.0/16 or fe80::/10)"),
                ));
            }
            n.link_local_ips.push(ip);
        }
        n.ipv6_address = match ep.ipam_config.as_ref().map(|i| i.ipv6_address.as_str()) {
            None | Some("") => None,
            Some(a) => Some(a.parse().map_err(|_| {
                invalid(&field, format!("IPv6Address {a:?} is not an IPv6 address"))
            })?),
        };
    }
    Ok(Some(ContainerConnect {
        container: String::new(),
        networks,
        ports: port_mappings(spec, cx.image)?,
        extra_hosts: extra_hosts.to_vec(),
        dns_search: hc.dns_search.clone(),
        dns_options: hc.dns_options.clone(),
        links: Vec::new(),
    }))
}

/// Whether an address may be a `link_local_ips` entry: 169.254.0.0/16 or fe80::/10.
pub(crate) fn is_link_local(ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => v4.is_link_local(),
        std::net::IpAddr::V6(v6) => v6.is_unicast_link_local(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::container::{HostConfig, PortBinding};

    fn rootfs_spec(hc: HostConfig) -> ContainerSpec {
        ContainerSpec {
            rootfs: Some("/".into()),
            cmd: Some(vec!["true".into()]),
            host_config: hc,
            ..Default::default()
        }
    }

    #[test]
    fn unknown_security_opt_is_refused_naming_the_value() {
        let spec = rootfs_spec(HostConfig {
            security_opt: vec!["no-such-thing=1".into()],
            network_mode: "none".into(),
            ..Default::default()
        });
        let err = translate("x", &spec, &Context::default()).expect_err("refused");
        assert!(err.to_string().contains("no-such-thing=1"), "{err}");
        assert!(err.to_string().contains("HostConfig.SecurityOpt"), "{err}");
    }

    #[test]
    fn a_pids_limit_of_zero_or_minus_one_is_no_limit() {
        for (given, want) in [(0, None), (-1, None), (5, Some(5))] {
            let spec = rootfs_spec(HostConfig {
                pids_limit: Some(given),
                network_mode: "none".into(),
                ..Default::default()
            });
            let t = translate("x", &spec, &Context::default()).expect("valid");
            assert_eq!(t.config.resources.pids_limit, want, "PidsLimit {given}");
        }
    }

    #[test]
    fn no_new_privileges_and_sizes_apply() {
        let mut log = crate::api::container::LogConfig::default();
        log.config.insert("max-size".into(), "2GiB".into());
        let spec = rootfs_spec(HostConfig {
            security_opt: vec![
                "no-new-privileges:false".into(),
                "seccomp=unconfined".into(),
            ],
            network_mode: "none".into(),
            log_config: log,
            ..Default::default()
        });
        let t = translate("x", &spec, &Context::default()).expect("valid");
        assert!(!t.config.no_new_privileges);
        assert!(t.config.seccomp_unconfined);
        assert_eq!(t.config.log_max_size, 2 << 30);
    }

    #[test]
    fn ports_are_typed_and_sctp_is_refused_by_name() {
        let mut spec = rootfs_spec(HostConfig::default());
        spec.host_config.port_bindings.insert(
            "80-81/udp".into(),
            vec![PortBinding {
                host_ip: "127.0.0.1".into(),
                host_port: "8080-8081".into(),
            }],
        );
        let ports = port_mappings(&spec, None).expect("valid");
        assert_eq!(ports.len(), 1);
        assert_eq!(
            (ports[0].protocol, ports[0].count, ports[0].host_port),
            (Protocol::Udp, 2, 8080)
        );
        spec.host_config.port_bindings.insert(
            "9/sctp".into(),
            vec![PortBinding {
                host_ip: String::new(),
                host_port: "9".into(),
            }],
        );
        let err = port_mappings(&spec, None).expect_err("refused");
        assert!(err.to_string().contains("sctp"), "{err}");
    }

    #[test]
    fn restart_and_auto_remove_conflict_and_ports_need_a_bridge() {
        let mut spec = rootfs_spec(HostConfig {
            auto_remove: true,
            restart_policy: crate::api::container::RestartPolicy::parse("always").expect("valid"),
            ..Default::default()
        });
        let err = translate("x", &spec, &Context::default()).expect_err("refused");
        assert!(err.to_string().contains("conflict"), "{err}");
        spec.host_config.restart_policy = Default::default();
        spec.host_config.network_mode = "host".into();
        spec.host_config.port_bindings.insert(
            "1/tcp".into(),
            vec![PortBinding {
                host_ip: String::new(),
                host_port: "1".into(),
            }],
        );
        let err = translate("x", &spec, &Context::default()).expect_err("refused");
        assert!(err.to_string().contains("needs a bridge network"), "{err}");
    }

    #[test]
    fn anonymous_volumes_take_inherited_names() {
        let mut spec = rootfs_spec(HostConfig {
            network_mode: "none".into(),
            ..Default::default()
        });
        spec.volumes.insert("/data".into(), Default::default());
        let inherit = BTreeMap::from([("/data/".to_string(), "kept".to_string())]);
        let cx = Context {
            inherit: Some(&inherit),
            ..Default::default()
        };
        let t = translate("x", &spec, &cx).expect("valid");
        assert_eq!(t.config.anonymous_volumes, vec!["kept".to_string()]);
    }

    /// docker-py's `volumes={name: {"bind": "/d"}}` sends the bind and `Volumes: {"/d": {}}`:
    /// the path is the named volume's, with no anonymous volume mounted over it.
    #[test]
    fn a_volume_path_a_bind_covers_gets_no_anonymous_volume() {
        let mut spec = rootfs_spec(HostConfig {
            network_mode: "none".into(),
            binds: vec!["data:/d:rw".into()],
            ..Default::default()
        });
        spec.volumes.insert("/d".into(), Default::default());
        spec.volumes.insert("/other".into(), Default::default());
        let t = translate("x", &spec, &Context::default()).expect("valid");
        let at_d: Vec<_> = t
            .config
            .mounts
            .iter()
            .filter(|m| matches!(m, MountSpec::Volume { target, .. } if target == Path::new("/d")))
            .collect();
        assert_eq!(at_d.len(), 1, "{:?}", t.config.mounts);
        assert_eq!(t.config.anonymous_volumes.len(), 1, "only /other");
    }
}
