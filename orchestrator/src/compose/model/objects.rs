//! Top-level networks, named volumes, configs and secrets.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A top-level network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The real network name (`<project>_<key>` unless set or external).
    #[serde(default)]
    pub name: String,
    /// Driver name: `bridge` (the default) runs; others are listed by `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options: those of Docker's bridge driver berth runs
    /// (`crate::api::bridge_options::APPLIED`: MTU, bridge name, ICC, masquerade, default
    /// host address of published ports, interface prefix); others are listed by
    /// `Project::unsupported`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Swarm attachable flag (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    /// Enable IPv4 (default true); `false` is listed by `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// Enable IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Created outside the project; berth only looks it up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// No route to the outside world.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Address management.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// Labels set on the network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `networks.<n>.ipam`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    /// Driver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Address pools: the first of each address family runs; the others are listed by
    /// `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One `ipam.config` pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    /// Subnet in CIDR form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Range to allocate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Addresses reserved by host name: never given to a container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level named volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// The real volume name (`<project>_<key>` unless set or external).
    #[serde(default)]
    pub name: String,
    /// Driver name: `local` (the default) runs; others are listed by `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// The local driver's options: the bind form (`type: none, o: bind, device: PATH`, see
    /// [`bind_device`]) links a host directory; any other `type`/`o`/`device` is mounted on
    /// the volume's directory (`type: tmpfs, device: tmpfs, o: size=64m`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Created outside the project; berth only looks it up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels of the volume, kept in its metadata (`volume inspect` shows them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A top-level config or secret; berth mounts the file-based kind (`file:`) only.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileObject {
    /// The real name (`<project>_<key>` unless set or external).
    #[serde(default)]
    pub name: String,
    /// Absolute path of the file holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Name of the environment variable whose value is the content (refused when a service mounts
    /// it: berth mounts file-based objects only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content (refused when a service mounts it: berth mounts file-based objects only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Created outside the project (listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Driver name (listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Template driver (listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
}

/// The host directory of a local volume declared as a bind (`driver_opts: {type: none, o: bind,
/// device: PATH}`, the usual way to give a named volume a fixed place on the host).
pub fn bind_device(opts: &BTreeMap<String, String>) -> Option<&str> {
    let bind = opts.get("type").map(String::as_str) == Some("none")
        && opts.get("o").is_some_and(|o| {
            o.split(',')
                .any(|x| x.trim() == "bind" || x.trim() == "rbind")
        });
    let only = opts
        .keys()
        .all(|k| matches!(k.as_str(), "type" | "o" | "device"));
    (bind && only)
        .then(|| opts.get("device").map(String::as_str))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_device_only_for_the_plain_bind_form() {
        let opts = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let bind = opts(&[("type", "none"), ("o", "bind"), ("device", "/srv/x")]);
        assert_eq!(bind_device(&bind), Some("/srv/x"));
        let rbind = opts(&[("type", "none"), ("o", "rw,rbind"), ("device", "/srv/x")]);
        assert_eq!(bind_device(&rbind), Some("/srv/x"));
        let tmpfs = opts(&[("type", "tmpfs"), ("o", "size=1m"), ("device", "tmpfs")]);
        assert_eq!(bind_device(&tmpfs), None);
        let extra = opts(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", "/x"),
            ("uid", "1"),
        ]);
        assert_eq!(bind_device(&extra), None);
    }
}
