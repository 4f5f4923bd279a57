//! The namespaces a spec asks for: `PidMode`, `IpcMode`, `UTSMode`, `CgroupnsMode` and
//! `NetworkMode` (the container's own, the host's, or another container's).

use berth_runtime::container::{ContainerConfig, HostNamespaces, IpcMode, NetworkMode};

use super::{Context, SpecError, invalid};
use crate::api::container::ContainerSpec;

/// `PidMode`, `IpcMode`, `UTSMode`, `CgroupnsMode` (the container's own namespace, the
/// host's or, for PID and IPC, another container's) and `Domainname`.
pub(super) fn namespaces(
    spec: &ContainerSpec,
    cx: &Context,
    c: &mut ContainerConfig,
) -> Result<(), SpecError> {
    let hc = &spec.host_config;
    let host = |field: &str, value: &str, own: &[&str]| -> Result<bool, SpecError> {
        match value {
            "host" => Ok(true),
            v if v.is_empty() || own.contains(&v) => Ok(false),
            v if field != "HostConfig.PidMode" || !is_joined(v) => Err(invalid(
                field,
                format!("{v:?} is not supported (host, or empty for the container's own)"),
            )),
            _ => Ok(false),
        }
    };
    // Another container's namespace: by id, found through the lookup; without one (the
    // engine's services) the caller sets it ([`Context::containers`]).
    let donor = |field: &str, mode: &str| -> Result<Option<String>, SpecError> {
        let name = match mode.split_once(':') {
            Some(("container", name)) => name,
            Some(("service", _)) if cx.containers.is_some() => {
                return Err(invalid(
                    field,
                    format!("{mode:?}: service: is Compose's; name the container (container:NAME)"),
                ));
            }
            _ => return Ok(None),
        };
        match cx.containers {
            Some(lookup) => lookup(name)
                .map(|r| Some(r.id))
                .map_err(|e| invalid(field, format!("{mode}: {e}"))),
            None => Ok(None),
        }
    };
    if is_joined(&hc.pid_mode) {
        c.pid_from = donor("HostConfig.PidMode", &hc.pid_mode)?;
    }
    c.ipc = match hc.ipc_mode.as_str() {
        m if is_joined(m) => match donor("HostConfig.IpcMode", m)? {
            Some(id) => {
                // Refused now, not only at start: a donor that is not shareable never is.
                if let Some(lookup) = cx.containers
                    && let Ok(rec) = lookup(&id)
                    && !rec.config.ipc.is_joinable()
                {
                    return Err(invalid(
                        "HostConfig.IpcMode",
                        format!(
                            "{m}: the IPC namespace of container {} is not shareable (give it --ipc shareable)",
                            rec.config.name
                        ),
                    ));
                }
                IpcMode::Container(id)
            }
            None => IpcMode::Private,
        },
        m => IpcMode::parse(m).map_err(|e| invalid("HostConfig.IpcMode", e))?,
    };
    // Every container runs in the host's user namespace: `host` asks for just that.
    if !matches!(hc.userns_mode.as_str(), "" | "host") {
        return Err(invalid(
            "HostConfig.UsernsMode",
            format!(
                "{:?}: berth runs containers in the host's user namespace (only host)",
                hc.userns_mode
            ),
        ));
    }
    c.host_namespaces = HostNamespaces {
        pid: host("HostConfig.PidMode", &hc.pid_mode, &[])?,
        uts: host("HostConfig.UTSMode", &hc.uts_mode, &[])?,
        cgroup: host("HostConfig.CgroupnsMode", &hc.cgroupns_mode, &["private"])?,
    };
    if !spec.domainname.is_empty() {
        if c.host_namespaces.uts {
            return Err(invalid(
                "Domainname",
                "cannot be set in the host's UTS namespace (UTSMode host)",
            ));
        }
        c.domainname = Some(spec.domainname.clone());
    }
    Ok(())
}

/// Whether a namespace mode names another container's (`container:NAME`, Compose's
/// `service:NAME`).
fn is_joined(mode: &str) -> bool {
    mode.starts_with("container:") || mode.starts_with("service:")
}

/// `NetworkMode`: a bridge network (attached after the create), host, none or another
/// container's namespace.
pub(super) fn network(
    spec: &ContainerSpec,
    cx: &Context,
    c: &mut ContainerConfig,
) -> Result<(), SpecError> {
    let mode = spec.host_config.network_mode.as_str();
    c.network = match mode {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        m if m.starts_with("container:") || m.starts_with("service:") => match cx.containers {
            // Joined by the caller before the container is created.
            None => NetworkMode::None,
            Some(lookup) => {
                let name = m.split_once(':').map(|(_, n)| n).unwrap_or_default();
                let target = lookup(name).map_err(|e| invalid("HostConfig.NetworkMode", e))?;
                match (&target.netns, &target.config.network) {
                    (Some(ns), _) => NetworkMode::Join(ns.clone()),
                    (None, NetworkMode::Join(ns)) => NetworkMode::Join(ns.clone()),
                    _ => NetworkMode::Host,
                }
            }
        },
        _ => NetworkMode::New,
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::mounts::volume_subpath;
    use berth_runtime::container::{IpcMode, Propagation};

    #[test]
    fn a_subpath_stays_inside_the_volume() {
        for ok in ["a", "a/b", "a/../b", "./a"] {
            assert!(volume_subpath(ok).is_ok(), "{ok}");
        }
        for bad in ["..", "../x", "a/../../b", "/abs"] {
            assert!(volume_subpath(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ipc_modes_and_propagations_parse_as_docker_names_them() {
        assert_eq!(IpcMode::parse(""), Ok(IpcMode::Private));
        assert_eq!(IpcMode::parse("shareable"), Ok(IpcMode::Shareable));
        assert_eq!(
            IpcMode::parse("container:db"),
            Ok(IpcMode::Container("db".into()))
        );
        assert!(IpcMode::parse("container:").is_err());
        assert!(IpcMode::parse("bogus").is_err());
        assert!(IpcMode::Shareable.is_joinable() && !IpcMode::Private.is_joinable());
        assert_eq!(Propagation::parse("rslave"), Ok(Propagation::Rslave));
        assert!(Propagation::parse("recursive").is_err());
    }
}
