//! The stack's top-level objects for Swarm: networks become overlays, volumes stay per-node
//! local volumes (or the driver the file names), configs and secrets keep their files; the
//! names Compose gives by default (`<project>_<key>`) are left to `docker stack deploy`, which
//! prefixes the stack's name itself. Read-only binds of single project files are collected
//! here as extra configs ([`FileConfigs`]).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use yaml_serde::{Mapping, Value};

use super::{ConvertError, Warnings, s};
use crate::compose::Project;

/// Converts one top-level object of `kind`.
pub(super) fn convert(
    project: &Project,
    kind: &str,
    name: &str,
    obj: Mapping,
    warn: &mut Warnings,
) -> Result<Mapping, ConvertError> {
    let external = obj.get("external") == Some(&Value::Bool(true));
    let mut out = Mapping::new();
    for (k, v) in obj {
        let Some(key) = k.as_str() else { continue };
        match (kind, key) {
            (_, "name") => {
                let default = format!("{}_{name}", project.name);
                if external || v.as_str() != Some(default.as_str()) {
                    out.insert(k, v);
                }
            }
            (_, "external" | "labels") => {
                out.insert(k, v);
            }
            ("networks", "driver") => match v.as_str() {
                Some("bridge") => warn.object(
                    kind,
                    name,
                    "driver",
                    "bridge networks stay on one node: the stack gets an overlay network",
                ),
                _ => {
                    out.insert(k, v);
                }
            },
            ("networks", "driver_opts" | "internal" | "attachable") => {
                out.insert(k, v);
            }
            ("networks", "ipam") => {
                if let Some(ipam) = ipam(name, &v, warn) {
                    out.insert(k, Value::Mapping(ipam));
                }
            }
            ("volumes", "driver" | "driver_opts") => {
                out.insert(k, v);
            }
            ("configs" | "secrets", "file" | "template_driver") => {
                out.insert(k, v);
            }
            (_, other) if other.starts_with("x-") => {}
            (_, other) => {
                warn.object(
                    kind,
                    name,
                    other,
                    "not in docker stack deploy's file format; dropped",
                );
            }
        }
    }
    if kind == "volumes" && !external && !out.contains_key("driver") {
        warn.object(
            kind,
            name,
            "driver",
            "a local volume lives on one node: a task moved to another node starts with an empty one (pin the service with deploy.placement or name a shared volume driver)",
        );
    }
    if (kind == "configs" || kind == "secrets") && !external && !out.contains_key("file") {
        return Err(ConvertError::Object {
            kind: kind.to_string(),
            name: name.to_string(),
            reason: "Swarm creates configs and secrets from files: give it file:".into(),
        });
    }
    Ok(out)
}

/// IPAM: the driver and each pool's subnet (Swarm allocates the gateway and ranges).
fn ipam(name: &str, v: &Value, warn: &mut Warnings) -> Option<Mapping> {
    let v = v.as_mapping()?;
    let mut out = Mapping::new();
    if let Some(d) = v.get("driver") {
        out.insert(s("driver"), d.clone());
    }
    if let Some(Value::Sequence(pools)) = v.get("config") {
        let mut kept = Vec::new();
        for p in pools {
            let Some(p) = p.as_mapping() else { continue };
            let mut q = Mapping::new();
            for (k, v) in p {
                match k.as_str() {
                    Some("subnet") => {
                        q.insert(k.clone(), v.clone());
                    }
                    Some(other) => warn.object(
                        "networks",
                        name,
                        &format!("ipam.config.{other}"),
                        "Swarm allocates it; dropped",
                    ),
                    None => {}
                }
            }
            kept.push(Value::Mapping(q));
        }
        out.insert(s("config"), Value::Sequence(kept));
    }
    (!out.is_empty()).then_some(out)
}

/// Read-only binds of single files turned into Swarm configs, by host path: one config per
/// file however many services mount it.
#[derive(Debug, Default)]
pub(super) struct FileConfigs {
    /// Host path -> (config key, content digest).
    by_path: BTreeMap<String, (String, String)>,
}

impl FileConfigs {
    /// The service-level reference mounting `source` at `target`.
    pub(super) fn reference(&mut self, project: &Project, source: &str, target: &str) -> Value {
        let n = self.by_path.len();
        let (key, _) = self
            .by_path
            .entry(source.to_string())
            .or_insert_with(|| config_key(project, source, n));
        let mut m = Mapping::new();
        m.insert(s("source"), s(key));
        m.insert(s("target"), s(target));
        Value::Mapping(m)
    }

    /// Adds the collected configs to the file's top-level `configs`. Each is named after its
    /// content's digest: Swarm configs cannot change, so a changed file is a new config and a
    /// redeploy rolls the services over to it.
    pub(super) fn add_to(self, project: &str, file: &mut Mapping) {
        if self.by_path.is_empty() {
            return;
        }
        let configs = file
            .entry(s("configs"))
            .or_insert_with(|| Value::Mapping(Mapping::new()));
        let Value::Mapping(configs) = configs else {
            return;
        };
        for (path, (key, digest)) in self.by_path {
            let mut c = Mapping::new();
            c.insert(s("file"), s(&path));
            c.insert(s("name"), s(&format!("{project}_{key}-{digest}")));
            configs.insert(s(&key), Value::Mapping(c));
        }
    }
}

/// The config key of a bound file: its path under the project directory, `/` and other
/// characters Swarm refuses as `_`, prefixed so it cannot meet the file's own `configs:`; and
/// the first 12 hex digits of its content's SHA-256 (empty content if unreadable: the
/// deploy then fails on the file, by name).
fn config_key(project: &Project, source: &str, n: usize) -> (String, String) {
    let path = std::path::Path::new(source);
    let rel = path
        .strip_prefix(&project.working_dir)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| {
            path.file_name()
                .map(|f| format!("{n}-{}", f.to_string_lossy()))
                .unwrap_or_else(|| n.to_string())
        });
    let clean: String = rel
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let digest = Sha256::digest(std::fs::read(path).unwrap_or_default());
    let digest = hex::encode(digest);
    (format!("file_{clean}"), digest[..12].to_string())
}
