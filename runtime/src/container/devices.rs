//! Host devices given to a container (`--device`, Compose `devices:`) and extra device cgroup
//! rules (`--device-cgroup-rule`, Compose `device_cgroup_rules`).
//!
//! A device is bound into the container at its path (the node itself, so its major and minor
//! stay the host's) and allowed in the device cgroup with its permissions. The rules go into
//! the OCI spec's `linux.resources.devices`: berth's executor writes them to the cgroup v1
//! `devices` controller; on cgroup v2 it loads no eBPF filter (the spec's rules are enforced
//! only by crun or runc there), as with every other container it runs.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Why a device or a rule cannot be given.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeviceError {
    #[error("device {0:?}: expected HOST[:CONTAINER][:PERMISSIONS]")]
    Mapping(String),
    #[error("device permissions {0:?}: expected a combination of r, w and m")]
    Permissions(String),
    #[error("device {path:?} is not a character or block device on the host: {reason}")]
    NotADevice { path: PathBuf, reason: String },
    #[error("device path {0:?} in the container must be absolute")]
    Relative(PathBuf),
    #[error(
        "device cgroup rule {0:?}: expected `TYPE MAJOR:MINOR ACCESS` (`c 1:3 mr`, `b 8:* rw`)"
    )]
    Rule(String),
}

/// One host device as the container sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct DeviceMapping {
    /// The device node on the host.
    pub host: PathBuf,
    /// Where it appears in the container.
    pub container: PathBuf,
    /// cgroup access: a combination of `r`, `w`, `m`.
    pub permissions: String,
}

fn valid_permissions(p: &str) -> bool {
    !p.is_empty() && p.len() <= 3 && p.chars().all(|c| matches!(c, 'r' | 'w' | 'm'))
}

impl DeviceMapping {
    /// Parses Docker's `--device` value `HOST[:CONTAINER][:PERMISSIONS]` (permissions `rwm`
    /// by default, the container path the host's).
    pub fn parse(s: &str) -> Result<DeviceMapping, DeviceError> {
        let parts: Vec<&str> = s.split(':').collect();
        let (host, container, permissions) = match parts.as_slice() {
            [h] => (*h, *h, "rwm"),
            [h, p] if valid_permissions(p) => (*h, *h, *p),
            [h, c] => (*h, *c, "rwm"),
            [h, c, p] => (*h, *c, *p),
            _ => return Err(DeviceError::Mapping(s.to_string())),
        };
        if host.is_empty() || container.is_empty() {
            return Err(DeviceError::Mapping(s.to_string()));
        }
        DeviceMapping::new(host, container, permissions)
    }

    /// A mapping with checked permissions and an absolute container path.
    pub fn new(host: &str, container: &str, permissions: &str) -> Result<Self, DeviceError> {
        if !valid_permissions(permissions) {
            return Err(DeviceError::Permissions(permissions.to_string()));
        }
        let container = PathBuf::from(container);
        if !container.is_absolute() {
            return Err(DeviceError::Relative(container));
        }
        Ok(DeviceMapping {
            host: host.into(),
            container,
            permissions: permissions.to_string(),
        })
    }

    /// The device cgroup rule that allows this device (read from the host's node now).
    pub fn rule(&self) -> Result<Value, DeviceError> {
        let not_a_device = |reason: String| DeviceError::NotADevice {
            path: self.host.clone(),
            reason,
        };
        let md = std::fs::metadata(&self.host).map_err(|e| not_a_device(e.to_string()))?;
        let kind = if md.file_type().is_char_device() {
            "c"
        } else if md.file_type().is_block_device() {
            "b"
        } else {
            return Err(not_a_device("not a device node".into()));
        };
        let rdev = md.rdev();
        Ok(json!({
            "allow": true,
            "type": kind,
            "major": libc::major(rdev),
            "minor": libc::minor(rdev),
            "access": self.permissions,
        }))
    }
}

/// Parses a device cgroup rule as Docker takes it (`c 1:3 mr`, `b 8:* rw`, `a *:* rwm`) into
/// the OCI spec's allow rule.
pub fn parse_rule(s: &str) -> Result<Value, DeviceError> {
    let bad = || DeviceError::Rule(s.to_string());
    let fields: Vec<&str> = s.split_whitespace().collect();
    let [kind, numbers, access] = fields.as_slice() else {
        return Err(bad());
    };
    if !matches!(*kind, "a" | "b" | "c") || !valid_permissions(access) {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| -> Result<Value, DeviceError> {
        match n {
            "*" => Ok(Value::Null),
            n => n.parse::<i64>().map(Value::from).map_err(|_| bad()),
        }
    };
    let mut rule = json!({"allow": true, "type": kind, "access": access});
    for (key, n) in [("major", major), ("minor", minor)] {
        let v = number(n)?;
        if !v.is_null() {
            rule[key] = v;
        }
    }
    Ok(rule)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_values_parse_as_docker_reads_them() {
        let d = DeviceMapping::parse("/dev/null").expect("valid");
        assert_eq!(
            (d.container.to_str(), d.permissions.as_str()),
            (Some("/dev/null"), "rwm")
        );
        let d = DeviceMapping::parse("/dev/null:r").expect("valid");
        assert_eq!(
            (d.container.to_str(), d.permissions.as_str()),
            (Some("/dev/null"), "r")
        );
        let d = DeviceMapping::parse("/dev/null:/dev/x:rw").expect("valid");
        assert_eq!(
            (d.container.to_str(), d.permissions.as_str()),
            (Some("/dev/x"), "rw")
        );
        assert!(DeviceMapping::parse("/dev/null:/dev/x:rwx").is_err());
        assert!(DeviceMapping::parse("/dev/null:x").is_err());
        let rule = d.rule().expect("a device");
        assert_eq!(
            (
                rule["type"].as_str(),
                rule["major"].as_u64(),
                rule["minor"].as_u64()
            ),
            (Some("c"), Some(1), Some(3))
        );
        assert!(
            DeviceMapping::parse("/etc/hostname")
                .expect("parses")
                .rule()
                .is_err()
        );
    }

    #[test]
    fn rules_parse_with_wildcards() {
        let r = parse_rule("c 1:3 mr").expect("valid");
        assert_eq!(r["major"], 1);
        assert_eq!(r["access"], "mr");
        let r = parse_rule("b 8:* rw").expect("valid");
        assert!(r.get("minor").is_none());
        for bad in ["c 1:3", "x 1:3 r", "c 1-3 r", "c 1:3 rx", "c a:3 r"] {
            assert!(parse_rule(bad).is_err(), "{bad}");
        }
    }
}
