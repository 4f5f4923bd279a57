//! What berth parses but does not run: a service's keys and the project's, by key path, so
//! the engine can refuse or warn about them by name.

use super::{Ipam, Project, Service, ServiceVolume, bind_device};

/// A key berth parses but does not run, by key path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unsupported {
    /// Key path, e.g. `services.web.gpus` or `networks.front.driver=overlay`.
    pub path: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
}

/// Whether `platform` (`linux`, `linux/amd64`, `linux/arm64/v8`...) is this host's own, the
/// one berth runs and builds.
pub fn is_host_platform(platform: &str) -> bool {
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    platform == "linux"
        || platform == format!("linux/{host}")
        || platform.starts_with(&format!("linux/{host}/"))
}

/// Whether a `build.platforms` value lists this host's platform and no other.
pub fn only_host_platform(platforms: &yaml_serde::Value) -> bool {
    platforms.as_sequence().is_some_and(|list| {
        !list.is_empty()
            && list
                .iter()
                .all(|p| p.as_str().is_some_and(is_host_platform))
    })
}

impl Service {
    /// Keys of this service that berth parses but does not run.
    pub fn unsupported_keys(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let raw: [(&'static str, bool); 11] = [
            ("credential_spec", self.credential_spec.is_some()),
            ("gpus", self.gpus.is_some()),
            ("models", self.models.is_some()),
            ("provider", self.provider.is_some()),
            ("storage_opt", self.storage_opt.is_some()),
            ("isolation", self.isolation.is_some()),
            ("cpu_count", self.cpu_count.is_some()),
            ("cpu_percent", self.cpu_percent.is_some()),
            (
                "cpu_period",
                self.cpu_period.is_some() && self.cpu_quota.is_none(),
            ),
            (
                "userns_mode (only host)",
                self.userns_mode.as_deref().is_some_and(|m| m != "host"),
            ),
            (
                "uts (only host)",
                self.uts.as_deref().is_some_and(|m| m != "host"),
            ),
        ];
        out.extend(raw.iter().filter(|(_, set)| *set).map(|(k, _)| *k));
        if self.security_opt.iter().any(|o| {
            berth_runtime::container::SecurityOpt::parse(o)
                == Ok(berth_runtime::container::SecurityOpt::NotApplied)
        }) {
            out.push("security_opt apparmor/label (berth loads no AppArmor or SELinux policy)");
        }
        if self.logging.as_ref().is_some_and(|l| {
            !matches!(
                l.driver.as_deref(),
                None | Some("json-file") | Some("local")
            ) || l.options.keys().any(|k| k != "max-size" && k != "max-file")
        }) {
            out.push("logging (drivers other than json-file/local, options other than max-size/max-file)");
        }
        if let Some(p) = self.platform.as_deref()
            && !is_host_platform(p)
        {
            out.push("platform (images run on the host's own platform)");
        }
        if let Some(d) = &self.deploy {
            if d.placement.is_some() {
                out.push("deploy.placement");
            }
            if d.update_config.is_some() {
                out.push("deploy.update_config");
            }
            if d.rollback_config.is_some() {
                out.push("deploy.rollback_config");
            }
            if d.mode.as_deref().is_some_and(|m| m != "replicated") {
                out.push("deploy.mode");
            }
            if !d.labels.is_empty() {
                out.push("deploy.labels (Swarm service labels; use labels: for the container)");
            }
            if d.restart_policy
                .as_ref()
                .is_some_and(|p| p.delay.is_some() || p.window.is_some())
            {
                out.push("deploy.restart_policy delay/window (Swarm only)");
            }
            if d.endpoint_mode.is_some() {
                out.push("deploy.endpoint_mode");
            }
            if d.resources
                .as_ref()
                .and_then(|r| r.reservations.as_ref())
                .is_some_and(|l| l.cpus.is_some() || l.pids.is_some())
            {
                // Memory is the cgroup's soft limit, as `mem_reservation`; a CPU share or
                // a count of processes cannot be guaranteed outside Swarm (Compose drops
                // them too).
                out.push("deploy.resources.reservations.cpus/pids (Swarm scheduling only)");
            }
            if let Some(r) = &d.resources
                && [&r.limits, &r.reservations]
                    .into_iter()
                    .flatten()
                    .any(|l| l.devices.is_some() || l.generic_resources.is_some())
            {
                out.push("deploy.resources.devices");
            }
        }
        if let Some(b) = &self.build {
            for (k, set) in [
                (
                    "build.platforms (berth builds for the host's own platform only)",
                    b.platforms.as_ref().is_some_and(|p| !only_host_platform(p)),
                ),
                ("build.entitlements", b.entitlements.is_some()),
                ("build.isolation", b.isolation.is_some()),
                ("build.provenance", b.provenance.is_some()),
                ("build.sbom", b.sbom.is_some()),
            ] {
                if set {
                    out.push(k);
                }
            }
        }
        out
    }
}

impl Project {
    /// Every key the model holds that berth does not run, by path; the engine refuses or
    /// warns about these by name instead of ignoring them.
    pub fn unsupported(&self) -> Vec<Unsupported> {
        let mut out = Vec::new();
        for (name, svc) in &self.services {
            for key in svc.unsupported_keys() {
                out.push(Unsupported {
                    path: format!("services.{name}.{key}"),
                });
            }
        }
        for (name, svc) in &self.services {
            for (i, v) in svc.volumes.iter().enumerate() {
                for key in mount_options_not_run(v) {
                    out.push(Unsupported {
                        path: format!("services.{name}.volumes[{i}].{key}"),
                    });
                }
            }
            for (i, p) in svc.ports.iter().enumerate() {
                if p.app_protocol.is_some() {
                    out.push(Unsupported {
                        path: format!("services.{name}.ports[{i}].app_protocol"),
                    });
                }
            }
            for (net, opt) in &svc.networks {
                let Some(o) = opt else { continue };
                for key in o
                    .driver_opts
                    .keys()
                    .filter(|k| !crate::api::container::ENDPOINT_OPTS.contains(&k.as_str()))
                {
                    out.push(Unsupported {
                        path: format!("services.{name}.networks.{net}.driver_opts.{key}"),
                    });
                }
            }
        }
        for (name, n) in &self.networks {
            if let Some(d) = n.driver.as_deref()
                && d != "bridge"
            {
                out.push(Unsupported {
                    path: format!("networks.{name}.driver={d}"),
                });
            }
            for key in n
                .driver_opts
                .keys()
                .filter(|k| !crate::api::bridge_options::APPLIED.contains(&k.as_str()))
            {
                out.push(Unsupported {
                    path: format!("networks.{name}.driver_opts.{key}"),
                });
            }
            if n.attachable.is_some() {
                out.push(Unsupported {
                    path: format!("networks.{name}.attachable (Swarm only)"),
                });
            }
            if let Some(ipam) = &n.ipam {
                for key in ipam_not_run(ipam) {
                    out.push(Unsupported {
                        path: format!("networks.{name}.ipam.{key}"),
                    });
                }
            }
            if n.enable_ipv4 == Some(false) {
                out.push(Unsupported {
                    path: format!("networks.{name}.enable_ipv4=false (networks are always IPv4)"),
                });
            }
        }
        for (name, v) in &self.volumes {
            if let Some(d) = v.driver.as_deref()
                && d != "local"
            {
                out.push(Unsupported {
                    path: format!("volumes.{name}.driver={d}"),
                });
            }
            // `type`, `o` and `device` are the local driver's mount (or bind); any other key
            // is refused when the volume is made.
            if bind_device(&v.driver_opts).is_none() {
                for key in v.driver_opts.keys() {
                    if !matches!(key.as_str(), "type" | "o" | "device") {
                        out.push(Unsupported {
                            path: format!("volumes.{name}.driver_opts.{key}"),
                        });
                    }
                }
            }
        }
        for (kind, map) in [("configs", &self.configs), ("secrets", &self.secrets)] {
            for (name, o) in map {
                if o.external || o.driver.is_some() || o.template_driver.is_some() {
                    out.push(Unsupported {
                        path: format!("{kind}.{name} (external or driver-based)"),
                    });
                }
                for (key, set) in [
                    ("labels", !o.labels.is_empty()),
                    ("driver_opts", !o.driver_opts.is_empty()),
                ] {
                    if set {
                        out.push(Unsupported {
                            path: format!("{kind}.{name}.{key}"),
                        });
                    }
                }
            }
        }
        out
    }
}

/// The options of one service mount that berth does not apply, by key under the mount.
fn mount_options_not_run(v: &ServiceVolume) -> Vec<&'static str> {
    let mut out = Vec::new();
    if let Some(b) = &v.bind {
        for (key, set) in [("bind.selinux", b.selinux.is_some())] {
            if set {
                out.push(key);
            }
        }
    }
    out
}

/// The parts of a network's `ipam` berth does not apply: a driver other than `default`, its
/// options, and every pool after the first of its address family.
fn ipam_not_run(ipam: &Ipam) -> Vec<String> {
    let mut out = Vec::new();
    if ipam.driver.as_deref().is_some_and(|d| d != "default") {
        out.push("driver".to_string());
    }
    out.extend(ipam.options.keys().map(|k| format!("options.{k}")));
    let (mut v4, mut v6) = (false, false);
    for (i, pool) in ipam.config.iter().enumerate() {
        let is_v6 = pool
            .subnet
            .as_deref()
            .or(pool.gateway.as_deref())
            .is_some_and(|a| a.contains(':'));
        let seen = if is_v6 { &mut v6 } else { &mut v4 };
        if *seen {
            out.push(format!("config[{i}] (one pool per address family)"));
        }
        *seen = true;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::IpamPool;

    #[test]
    fn ipam_lists_what_the_network_does_not_get() {
        let pool = |subnet: &str| IpamPool {
            subnet: Some(subnet.into()),
            ..Default::default()
        };
        let mut ipam = Ipam {
            driver: Some("default".into()),
            config: vec![pool("10.1.0.0/24"), pool("fd00::/64"), pool("10.2.0.0/24")],
            ..Default::default()
        };
        assert_eq!(
            ipam_not_run(&ipam),
            ["config[2] (one pool per address family)"]
        );
        ipam.driver = Some("dhcp".into());
        ipam.config.truncate(1);
        ipam.config[0]
            .aux_addresses
            .insert("r".into(), "10.1.0.9".into());
        assert_eq!(
            ipam_not_run(&ipam),
            ["driver"],
            "aux_addresses are reserved"
        );
    }
}
