//! Storage: named volumes as PersistentVolumeClaims (or a StatefulSet's claim templates when
//! one service owns them), read-only project files mounted by binds and the project's
//! `configs`/`secrets` as ConfigMaps and Secrets carrying their content.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::{Map, Value, json};

use super::{ConvertError, names};
use crate::compose::Project;
use crate::compose::model::VolumeType;

/// The size a claim asks for when the file says none (Compose volumes have no size).
pub(super) const DEFAULT_CLAIM: &str = "1Gi";

/// The largest content a ConfigMap or Secret carries (Kubernetes' object limit is 1 MiB).
const MAX_OBJECT_BYTES: u64 = 1 << 20;

/// Which services mount each named volume.
#[derive(Debug, Default)]
pub(super) struct Owners(BTreeMap<String, Vec<String>>);

/// The services using each top-level volume, in name order.
pub(super) fn volume_owners(project: &Project) -> Owners {
    let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (name, svc) in &project.services {
        for v in &svc.volumes {
            if let (VolumeType::Volume, Some(key)) = (&v.kind, &v.source)
                && project.volumes.contains_key(key)
            {
                let users = m.entry(key.clone()).or_default();
                if !users.contains(name) {
                    users.push(name.clone());
                }
            }
        }
    }
    Owners(m)
}

impl Owners {
    /// True when `service` is the only user of volume `key` (and it is the project's own):
    /// the service's StatefulSet then holds the claim as a template.
    pub(super) fn owned_by(&self, key: &str, service: &str) -> bool {
        self.0.get(key).is_some_and(|u| u == &[service.to_string()])
    }

    /// The volumes `service` owns.
    pub(super) fn owned(&self, service: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, u)| *u == &[service.to_string()])
            .map(|(k, _)| k.clone())
            .collect()
    }

    /// The claim a volume is mounted from.
    pub(super) fn claim_name(&self, project: &Project, key: &str) -> String {
        match project.volumes.get(key) {
            Some(v) if v.external => v.name.clone(),
            Some(v) => names::sanitize(&v.name),
            None => names::sanitize(key),
        }
    }
}

/// The claim template or claim of one volume.
pub(super) fn claim(name: &str, access: &str, labels: &BTreeMap<String, String>) -> Value {
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if !labels.is_empty() {
        meta.insert("annotations".into(), json!(labels));
    }
    json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": Value::Object(meta),
        "spec": {
            "accessModes": [access],
            "resources": {"requests": {"storage": DEFAULT_CLAIM}},
        },
    })
}

/// Stand-alone claims: volumes several services share (ReadWriteMany: the cluster needs a
/// storage class that offers it). External volumes are the cluster's own, not made here.
pub(super) fn claims(project: &Project, owners: &Owners) -> Vec<Value> {
    owners
        .0
        .iter()
        .filter(|(_, users)| users.len() > 1)
        .filter_map(|(key, _)| {
            let v = project.volumes.get(key)?;
            (!v.external)
                .then(|| claim(&owners.claim_name(project, key), "ReadWriteMany", &v.labels))
        })
        .collect()
}

/// ConfigMaps and Secrets gathered while converting the services, each made once.
#[derive(Debug, Default)]
pub(super) struct ProjectFiles {
    /// name -> (kind, key -> bytes)
    objects: BTreeMap<String, (&'static str, BTreeMap<String, Vec<u8>>)>,
}

impl ProjectFiles {
    /// A read-only bind of a project file or flat directory: the ConfigMap holding it and,
    /// for a file, the key to mount as `subPath`.
    pub(super) fn bind(
        &mut self,
        project: &Project,
        service: &str,
        src: &str,
    ) -> Result<(String, Option<String>), ConvertError> {
        let path = PathBuf::from(src);
        let refuse = |reason: String| ConvertError::Refused {
            service: service.to_string(),
            key: "volumes".into(),
            reason,
        };
        // Compared as the kernel resolves them, so `..` and symlinks cannot smuggle a host
        // path into a ConfigMap.
        let canon = |p: &Path| {
            std::fs::canonicalize(p).map_err(|source| ConvertError::Read {
                path: p.display().to_string(),
                source,
            })
        };
        let (real, root) = (canon(&path)?, canon(&project.working_dir)?);
        let rel = real
            .strip_prefix(&root)
            .map_err(|_| {
                refuse(format!(
                    "bind {src}: only files inside the project directory can travel as a ConfigMap"
                ))
            })?
            .to_path_buf();
        let name = names::sanitize(&format!("{}-{}", project.name, rel.display()));
        let meta = std::fs::metadata(&real).map_err(|source| ConvertError::Read {
            path: src.to_string(),
            source,
        })?;
        let mut data = BTreeMap::new();
        let key = if meta.is_dir() {
            let entries = std::fs::read_dir(&real).map_err(|source| ConvertError::Read {
                path: src.to_string(),
                source,
            })?;
            for e in entries.flatten() {
                let p = canon(&e.path())?;
                if !p.starts_with(&root) {
                    return Err(refuse(format!(
                        "bind {src}: {} leads outside the project directory",
                        e.path().display()
                    )));
                }
                if p.is_dir() {
                    return Err(refuse(format!(
                        "bind {src}: {} is a subdirectory; a ConfigMap holds one flat directory",
                        p.display()
                    )));
                }
                let k = config_key(&e.path());
                data.insert(k, read(&p)?);
            }
            None
        } else {
            let k = config_key(&path);
            data.insert(k.clone(), read(&real)?);
            Some(k)
        };
        let total: u64 = data.values().map(|v| v.len() as u64).sum();
        if total > MAX_OBJECT_BYTES {
            return Err(refuse(format!(
                "bind {src}: {total} bytes is over a ConfigMap's 1 MiB"
            )));
        }
        self.objects.insert(name.clone(), ("ConfigMap", data));
        Ok((name, key))
    }

    /// A service's reference to a top-level config or secret: the object and its key.
    pub(super) fn file_object(
        &mut self,
        project: &Project,
        service: &str,
        kind: &str,
        source: &str,
    ) -> Result<(String, String), ConvertError> {
        let table = if kind == "secrets" {
            &project.secrets
        } else {
            &project.configs
        };
        let refuse = |reason: String| ConvertError::Refused {
            service: service.to_string(),
            key: kind.to_string(),
            reason,
        };
        let fo = table
            .get(source)
            .ok_or_else(|| refuse(format!("{source} is not defined at the top level")))?;
        let key = names::sanitize(source);
        if fo.external {
            return Ok((fo.name.clone(), key));
        }
        let bytes = if let Some(file) = &fo.file {
            read(Path::new(file))?
        } else if let Some(content) = &fo.content {
            content.clone().into_bytes()
        } else if let Some(var) = &fo.environment {
            project
                .environment
                .get(var)
                .ok_or_else(|| refuse(format!("{source}: environment variable {var} is not set")))?
                .clone()
                .into_bytes()
        } else {
            return Err(refuse(format!(
                "{source} has no file, content or environment"
            )));
        };
        if bytes.len() as u64 > MAX_OBJECT_BYTES {
            return Err(refuse(format!(
                "{source}: over the 1 MiB of a ConfigMap or Secret"
            )));
        }
        let name = names::sanitize(&fo.name);
        names::object_name(
            if kind == "secrets" {
                "secret"
            } else {
                "config"
            },
            &name,
        )?;
        let obj_kind = if kind == "secrets" {
            "Secret"
        } else {
            "ConfigMap"
        };
        let entry = self
            .objects
            .entry(name.clone())
            .or_insert_with(|| (obj_kind, BTreeMap::new()));
        entry.1.insert(key.clone(), bytes);
        Ok((name, key))
    }

    /// The ConfigMaps and Secrets, text as text and anything else base64.
    pub(super) fn objects(&self, project: &Project) -> Vec<Value> {
        let mut out = Vec::new();
        for (name, (kind, data)) in &self.objects {
            let mut text = Map::new();
            let mut binary = Map::new();
            for (k, v) in data {
                match std::str::from_utf8(v) {
                    Ok(s) => text.insert(k.clone(), json!(s)),
                    Err(_) => binary.insert(
                        k.clone(),
                        json!(base64::engine::general_purpose::STANDARD.encode(v)),
                    ),
                };
            }
            let mut obj = Map::new();
            obj.insert("apiVersion".into(), json!("v1"));
            obj.insert("kind".into(), json!(kind));
            obj.insert(
                "metadata".into(),
                json!({"name": name, "labels": {"app.kubernetes.io/part-of": project.name}}),
            );
            let (text_key, bin_key) = if *kind == "Secret" {
                ("stringData", "data")
            } else {
                ("data", "binaryData")
            };
            if !text.is_empty() {
                obj.insert(text_key.into(), Value::Object(text));
            }
            if !binary.is_empty() {
                obj.insert(bin_key.into(), Value::Object(binary));
            }
            out.push(Value::Object(obj));
        }
        out
    }
}

/// A ConfigMap key for a file (`[-._a-zA-Z0-9]+`).
fn config_key(p: &Path) -> String {
    p.file_name()
        .map(|n| {
            n.to_string_lossy()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || "-._".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect()
        })
        .unwrap_or_else(|| "file".into())
}

fn read(p: &Path) -> Result<Vec<u8>, ConvertError> {
    let meta = std::fs::metadata(p).map_err(|source| ConvertError::Read {
        path: p.display().to_string(),
        source,
    })?;
    if meta.len() > MAX_OBJECT_BYTES {
        return Err(ConvertError::Read {
            path: p.display().to_string(),
            source: std::io::Error::other("over the 1 MiB a ConfigMap or Secret holds"),
        });
    }
    std::fs::read(p).map_err(|source| ConvertError::Read {
        path: p.display().to_string(),
        source,
    })
}
