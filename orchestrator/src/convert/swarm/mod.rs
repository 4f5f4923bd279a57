//! Compose -> the file `docker stack deploy` accepts (`berth convert swarm`, `berth deploy
//! --swarm`).
//!
//! The project's resolved model (as `berth config` prints it) is reduced to what Swarm runs:
//! `build` and `container_name` go (the images are built and pushed first, tasks are named by
//! Swarm), the images are replaced by the digests they were pushed as, `restart`, `scale`,
//! `mem_limit`, `cpus` and friends move into `deploy`, read-only binds of single project
//! files become Swarm configs (so they reach every node), and what Swarm ignores is dropped
//! with a warning naming the service and key (`depends_on`: Swarm starts services in no
//! order). What Swarm cannot run (privileged, devices, another container's namespaces) is
//! refused by name. Without IPVS in the nodes' kernels there is no routing mesh: `no_mesh`
//! publishes ports on the nodes that run the tasks and finds tasks by DNS round robin.

mod objects;
mod service;

use std::collections::BTreeMap;

use yaml_serde::{Mapping, Value};

use crate::compose::{self, Project};

/// Why a project cannot be deployed on Swarm: the first thing Swarm cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A service key whose meaning Swarm cannot give.
    #[error("service {service:?}: {key}: {reason}")]
    Refused {
        /// The Compose service.
        service: String,
        /// Its key that cannot be converted.
        key: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A top-level object (network, volume, config, secret) Swarm cannot create.
    #[error("{kind} {name:?}: {reason}")]
    Object {
        /// `networks`, `volumes`, `configs` or `secrets`.
        kind: String,
        /// Its key in the file.
        name: String,
        /// Why, and what to do instead.
        reason: String,
    },
    /// The model could not be rendered as a tree.
    #[error("rendering the project: {0}")]
    Render(#[from] yaml_serde::Error),
}

/// What the conversion needs besides the project.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The image each service runs, by service (pinned `repo@sha256:…` after a push); a
    /// service not listed keeps its own `image:`.
    pub images: BTreeMap<String, String>,
    /// No routing mesh (the nodes' kernels lack IPVS): ports published in `host` mode on the
    /// nodes that run a task, services found by DNS round robin (`endpoint_mode: dnsrr`).
    pub no_mesh: bool,
}

/// The converted file and the warnings (each naming the service or object and the key).
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The stack file, as `docker stack deploy -c` reads it.
    pub file: Value,
    /// What was left out, by service and key.
    pub warnings: Vec<String>,
}

impl Conversion {
    /// The stack file as YAML.
    pub fn to_yaml(&self) -> Result<String, yaml_serde::Error> {
        yaml_serde::to_string(&self.file)
    }
}

/// Collects warnings while converting.
#[derive(Debug, Default)]
struct Warnings(Vec<String>);

impl Warnings {
    fn service(&mut self, service: &str, key: &str, what: impl std::fmt::Display) {
        self.0.push(format!("service {service:?}: {key}: {what}"));
    }

    fn object(&mut self, kind: &str, name: &str, key: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{kind} {name:?}: {key}: {what}"));
    }
}

/// Converts a loaded project for `docker stack deploy`. `Err` names the first key Swarm cannot
/// run.
pub fn convert(project: &Project, opts: &Options) -> Result<Conversion, ConvertError> {
    let mut tree = project.to_yaml_value()?;
    compose::render::compose_shape(&mut tree, false);
    let mut warnings = Warnings::default();
    let mut out = Mapping::new();
    // The oldest file format with every key written here (`docker stack deploy` of Docker
    // 20.10 refuses a file without one); 3.13 only where a pids limit needs it.
    out.insert(s("version"), s("3.8"));
    let mut configs = objects::FileConfigs::default();
    let top = tree.as_mapping().cloned().unwrap_or_default();
    if let Some(Value::Mapping(services)) = top.get("services") {
        let mut converted = Mapping::new();
        for (name, svc) in services {
            let (Some(name), Value::Mapping(svc)) = (name.as_str(), svc) else {
                continue;
            };
            let pinned = opts.images.get(name).cloned();
            let ctx = service::Context {
                project,
                name,
                pushed: pinned.is_some(),
                image: pinned.or_else(|| project.image_of(name)),
                no_mesh: opts.no_mesh,
            };
            let svc = service::convert(&ctx, svc, &mut configs, &mut warnings)?;
            converted.insert(s(name), Value::Mapping(svc));
        }
        out.insert(s("services"), Value::Mapping(converted));
    }
    for kind in ["networks", "volumes", "secrets", "configs"] {
        let Some(Value::Mapping(objs)) = top.get(kind) else {
            continue;
        };
        let mut converted = Mapping::new();
        for (name, obj) in objs {
            let Some(name) = name.as_str() else { continue };
            let obj = obj.as_mapping().cloned().unwrap_or_default();
            let obj = objects::convert(project, kind, name, obj, &mut warnings)?;
            converted.insert(s(name), Value::Mapping(obj));
        }
        if !converted.is_empty() {
            out.insert(s(kind), Value::Mapping(converted));
        }
    }
    configs.add_to(&project.name, &mut out);
    if service::any_pids_limit(&out) {
        out.insert(s("version"), s("3.13"));
    }
    let mut file = Value::Mapping(out);
    compose::escape_dollars(&mut file);
    Ok(Conversion {
        file,
        warnings: warnings.0,
    })
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

#[cfg(test)]
mod tests;
