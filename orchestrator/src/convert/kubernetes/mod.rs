//! Compose -> Kubernetes manifests (`berth convert kubernetes`).
//!
//! Each Compose service becomes a workload (a Deployment, or a StatefulSet when it owns named
//! volumes, so each replica keeps its storage) and a Service of the same name, so that every
//! name a container resolved on berth resolves the same in the cluster (aliases become extra
//! Services). Named volumes become PersistentVolumeClaims, read-only binds of project files
//! and `configs` ConfigMaps, `secrets` Secrets, healthchecks readiness probes, `depends_on:
//! service_healthy` an init container that waits for the dependency's Service. What
//! Kubernetes cannot express is refused (an error naming the service and key) or, where the
//! stack still runs the same without it, warned by name; [`coverage`] checks that every key
//! a service sets is one of the three, so none is dropped silently.

mod coverage;
pub mod helm;
pub mod kustomize;
mod names;
mod pod;
mod services;
mod storage;
mod workload;
pub mod yaml;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::compose::Project;

/// Why a project cannot be converted: the first thing Kubernetes cannot express.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A key whose meaning a cluster cannot give (host network, privileged, devices ...).
    #[error("service {service:?}: {key}: {reason}")]
    Refused {
        /// The Compose service.
        service: String,
        /// Its key that cannot be converted.
        key: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A name that would not resolve the same in the cluster.
    #[error("{what} {name:?} is not a valid Kubernetes name ({rule}): rename it")]
    Name {
        /// What the name names (service, alias, config...).
        what: &'static str,
        /// The name.
        name: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// Two objects would have one kind and name: the cluster would keep only the last.
    #[error("two {kind} objects would be named {name:?}: rename the alias, volume or file")]
    Duplicate {
        /// The object kind.
        kind: String,
        /// The name both would take.
        name: String,
    },
    /// A project file a ConfigMap or Secret is made of.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
}

/// One manifest: the file it goes to and the object.
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    /// `<name>-<kind>.yaml`, lowercase.
    pub file: String,
    /// The Kubernetes object (apiVersion, kind, metadata, spec).
    pub object: Value,
}

/// The conversion of a project: its manifests, in a stable order, and the warnings (each
/// naming the service and key it is about).
#[derive(Debug, Clone, Default)]
pub struct Conversion {
    /// The objects, one per file.
    pub manifests: Vec<Manifest>,
    /// What was left out, by service and key.
    pub warnings: Vec<String>,
}

impl Conversion {
    fn add(&mut self, object: Value) {
        let kind = object["kind"]
            .as_str()
            .unwrap_or("object")
            .to_ascii_lowercase();
        let name = object["metadata"]["name"].as_str().unwrap_or("unnamed");
        self.manifests.push(Manifest {
            file: format!("{name}-{kind}.yaml"),
            object,
        });
    }

    fn warn(&mut self, service: &str, key: &str, what: impl std::fmt::Display) {
        self.warnings
            .push(format!("service {service:?}: {key}: {what}"));
    }

    /// All manifests as one multi-document YAML stream (`kubectl apply -f -` takes it).
    pub fn to_yaml_stream(&self) -> String {
        let mut out = String::new();
        for m in &self.manifests {
            out.push_str("---\n");
            out.push_str(&yaml::to_string(&m.object));
        }
        out
    }
}

/// Converts a loaded project. `Err` names the first key Kubernetes cannot express.
pub fn convert(project: &Project) -> Result<Conversion, ConvertError> {
    convert_with(project, &BTreeMap::new())
}

/// Converts a loaded project with the image each listed service runs replaced (pinned
/// `registry/name:tag@sha256:…` references after a push); a service not listed keeps its own
/// `image:`.
pub fn convert_with(
    project: &Project,
    images: &BTreeMap<String, String>,
) -> Result<Conversion, ConvertError> {
    let mut conv = Conversion::default();
    names::check_project(project)?;
    let owners = storage::volume_owners(project);
    let mut files = storage::ProjectFiles::default();
    for (name, svc) in &project.services {
        coverage::check(name, svc, &mut conv)?;
        let ports = pod::container_ports(name, svc, &mut conv);
        let image = images.get(name).map(String::as_str);
        let pod = pod::pod_template(
            project, name, svc, image, &owners, &ports, &mut files, &mut conv,
        )?;
        conv.add(workload::workload(project, name, svc, pod, &owners));
        for s in services::services(project, name, svc, &ports, &mut conv)? {
            conv.add(s);
        }
    }
    for pvc in storage::claims(project, &owners) {
        conv.add(pvc);
    }
    for obj in files.objects(project) {
        conv.add(obj);
    }
    // Two objects of one kind and name (an alias two services share, two volume names that
    // read the same once lowercased): one would replace the other in the cluster.
    let mut seen = BTreeSet::new();
    for m in &conv.manifests {
        if !seen.insert(m.file.clone()) {
            return Err(ConvertError::Duplicate {
                kind: m.object["kind"].as_str().unwrap_or("object").to_string(),
                name: m.object["metadata"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            });
        }
    }
    Ok(conv)
}

/// The labels every object of the project carries and the selector of a service's pods.
fn labels(project: &Project, service: &str) -> Value {
    serde_json::json!({
        "app.kubernetes.io/name": service,
        "app.kubernetes.io/part-of": project.name,
        "app.kubernetes.io/managed-by": "berth",
    })
}

/// The selector of one service's pods (a subset of [`labels`]).
fn selector(project: &Project, service: &str) -> Value {
    serde_json::json!({
        "app.kubernetes.io/name": service,
        "app.kubernetes.io/part-of": project.name,
    })
}

#[cfg(test)]
mod tests;
