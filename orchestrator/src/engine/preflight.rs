//! `up`'s preflight: what the plan's new containers need from the host is checked before the
//! first step runs, so `up` fails with nothing created or started.
//!
//! Bind mounts first: a missing source of a long-syntax bind (`type: bind`, whose
//! `create_host_path` is false unless set) is refused with the service, the `volumes[i]` key
//! and the path, as Docker refuses it ("bind source path does not exist") but before any
//! network or container exists; the short syntax (`./dir:/x`, `create_host_path: true`)
//! gets the missing directory made, as Docker makes it, once every check passed.
//!
//! Then ports: every host port the plan's new containers will publish (USERS.md §7: compose
//! finds a collision only when the colliding container starts, after others did).
//!
//! Three sources of conflict, in this order: two new containers of the project claiming the
//! same port, a port another berth container publishes (not one this plan removes, i.e.
//! the container being recreated), and a host socket listening on it (netd reads the host
//! namespace's sockets). Each refusal names the service, the port and the holder. netd's
//! attach checks again, so a port taken between the preflight and the attach is still refused.

use std::collections::BTreeSet;
use std::path::PathBuf;

use berth_netd::Netd;
use berth_netd::ports::{PortError, PortMapping};
use berth_runtime::container::Runtime;

use super::plan::{Plan, Step};
use crate::api::project::Outcome;
use crate::compose::Project;
use crate::compose::model::VolumeType;

/// One container the plan creates and a port it will publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPort {
    /// Its service.
    pub service: String,
    /// Its container name.
    pub container: String,
    /// The publication.
    pub mapping: PortMapping,
}

/// The ports the plan's `CreateContainer` steps will publish (containers on a network of
/// their own only: `network_mode: host` and `none` publish nothing).
pub fn planned_ports(project: &Project, plan: &Plan) -> Result<Vec<PlannedPort>, String> {
    let mut out = Vec::new();
    for node in &plan.nodes {
        let Step::CreateContainer { service, name, .. } = &node.step else {
            continue;
        };
        let Some(svc) = project.services.get(service) else {
            continue;
        };
        let own_net = matches!(
            svc.network_mode.as_deref(),
            None | Some("bridge") | Some("default")
        );
        if !own_net || svc.networks.is_empty() {
            continue;
        }
        // Lowered and typed as the container's create will (one parse of ports).
        let mut spec = crate::api::container::ContainerSpec::default();
        spec.host_config.port_bindings = super::translate::port_bindings(&svc.ports).0;
        let mappings = super::container_spec::port_mappings(&spec, None)
            .map_err(|err| format!("service {service}: {err}"))?;
        for mapping in mappings {
            out.push(PlannedPort {
                service: service.clone(),
                container: name.clone(),
                mapping,
            });
        }
    }
    Ok(out)
}

/// Two new containers claiming a common host port, as a message naming both.
pub fn own_clash(ports: &[PlannedPort]) -> Option<String> {
    for (i, a) in ports.iter().enumerate() {
        for b in &ports[i + 1..] {
            if a.container == b.container {
                continue;
            }
            if let Some(port) = a.mapping.clashes(&b.mapping) {
                let proto = a.mapping.protocol.as_str();
                return Some(if a.service == b.service {
                    format!(
                        "service {}: containers {} and {} would both publish host port {proto}/{port} ({}); only one container can hold a fixed host port",
                        a.service, a.container, b.container, a.mapping
                    )
                } else {
                    format!(
                        "services {} and {} would both publish host port {proto}/{port} ({} and {})",
                        a.service, b.service, a.mapping, b.mapping
                    )
                });
            }
        }
    }
    None
}

/// A bind mount of a container the plan creates whose source does not exist yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBind {
    /// Its service.
    pub service: String,
    /// Its index in the service's `volumes`.
    pub index: usize,
    /// The host path.
    pub source: PathBuf,
    /// Whether `up` makes it (`create_host_path`, implied by the short syntax).
    pub create: bool,
}

impl std::fmt::Display for MissingBind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "service {}: volumes[{}]: bind source path {} does not exist (create it, or set bind.create_host_path: true)",
            self.service,
            self.index,
            self.source.display()
        )
    }
}

/// The bind sources of the services the plan creates containers of that are not on the host
/// (each service once, whatever its replicas).
pub fn missing_binds(project: &Project, plan: &Plan) -> Vec<MissingBind> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for node in &plan.nodes {
        let Step::CreateContainer { service, .. } = &node.step else {
            continue;
        };
        let Some(svc) = project.services.get(service) else {
            continue;
        };
        if !seen.insert(service.as_str()) {
            continue;
        }
        for (index, v) in svc.volumes.iter().enumerate() {
            let (VolumeType::Bind, Some(source)) = (&v.kind, v.source.as_deref()) else {
                continue;
            };
            let source = PathBuf::from(source);
            // symlink_metadata: a dangling link is something present, as the kernel will say.
            if source.symlink_metadata().is_ok() {
                continue;
            }
            let create = v
                .bind
                .as_ref()
                .and_then(|b| b.create_host_path)
                .unwrap_or(false);
            out.push(MissingBind {
                service: service.clone(),
                index,
                source,
                create,
            });
        }
    }
    out
}

/// Makes the missing sources `up` is to create (directories, as Docker does).
fn create_bind_sources(missing: &[MissingBind]) -> Result<(), String> {
    for m in missing.iter().filter(|m| m.create) {
        std::fs::create_dir_all(&m.source).map_err(|err| {
            format!(
                "service {}: volumes[{}]: creating bind source path {}: {err}",
                m.service,
                m.index,
                m.source.display()
            )
        })?;
    }
    Ok(())
}

/// The endpoint driver options of the services the plan creates containers of, checked as
/// their creation will check them, so that a bad one fails `up` before any network is made.
fn endpoint_options(project: &Project, plan: &Plan) -> Result<(), String> {
    for node in &plan.nodes {
        let Step::CreateContainer { service, .. } = &node.step else {
            continue;
        };
        let Some(svc) = project.services.get(service) else {
            continue;
        };
        for (key, o) in &svc.networks {
            if let Some(o) = o {
                super::translate::endpoint_driver_opts(service, key, o)
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// Checks the plan's bind sources and ports (the message of the first refusal), then makes
/// the bind sources the short syntax asks for.
pub async fn check(
    netd: &Netd,
    runtime: &Runtime,
    project: &Project,
    plan: &Plan,
) -> Result<(), String> {
    endpoint_options(project, plan)?;
    let binds = missing_binds(project, plan);
    if let Some(refused) = binds.iter().find(|m| !m.create) {
        return Err(refused.to_string());
    }
    check_ports(netd, runtime, project, plan).await?;
    create_bind_sources(&binds)
}

/// Checks the plan's ports; the message of the first refusal.
async fn check_ports(
    netd: &Netd,
    runtime: &Runtime,
    project: &Project,
    plan: &Plan,
) -> Result<(), String> {
    let ports = planned_ports(project, plan)?;
    if ports.is_empty() {
        return Ok(());
    }
    if let Some(msg) = own_clash(&ports) {
        return Err(msg);
    }
    let replaced: BTreeSet<String> = plan
        .nodes
        .iter()
        .filter_map(|n| match &n.step {
            Step::RemoveContainer { id, .. } => Some(id.clone()),
            _ => None,
        })
        .collect();
    let mappings: Vec<PortMapping> = ports.iter().map(|p| p.mapping.clone()).collect();
    let refused = netd
        .check_ports(&mappings, &replaced)
        .await
        .map_err(|err| {
            format!(
                "checking published ports: {}",
                crate::api::error::error_chain(&err)
            )
        })?;
    let Some((i, err)) = refused else {
        return Ok(());
    };
    let p = &ports[i.min(ports.len() - 1)];
    let why = match err {
        // netd knows berth containers by id; say their names.
        PortError::Conflict { proto, port, owner } => {
            let name = runtime
                .resolve(&owner)
                .map(|r| r.config.name.clone())
                .unwrap_or_else(|_| owner.chars().take(12).collect());
            format!("host port {proto}/{port} is already published by container {name}")
        }
        other => other.to_string(),
    };
    Err(format!("service {}: port {}: {why}", p.service, p.mapping))
}

/// The outcome of an `up` the preflight refused: nothing done, every step not done.
pub fn refused(plan: &Plan, failure: String) -> Outcome {
    Outcome {
        plan: plan.to_string(),
        warnings: plan.warnings.clone(),
        done: 0,
        failures: vec![failure],
        skipped: plan.nodes.iter().map(|n| n.step.to_string()).collect(),
        removed_images: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::project::UpOptions;
    use crate::engine::observed::Observed;
    use crate::engine::reconcile::plan_up;
    use crate::engine::reconcile::tests::project;

    #[test]
    fn planned_ports_follow_the_plan_and_replicas_clash() {
        let p = project(
            r#"
name: pf
services:
  web:
    image: nginx
    ports: ["8080:80", "127.0.0.1:9000-9001:9000-9001/udp"]
  host:
    image: nginx
    network_mode: host
    ports: ["7070:70"]
  quiet:
    image: nginx
"#,
        );
        let plan = plan_up(&p, &Observed::default(), &UpOptions::default()).expect("plan");
        let ports = planned_ports(&p, &plan).expect("ports");
        let shown: Vec<String> = ports
            .iter()
            .map(|p| format!("{} {} {}", p.service, p.container, p.mapping))
            .collect();
        assert_eq!(
            shown,
            vec![
                "web pf-web-1 8080->80/tcp",
                "web pf-web-1 127.0.0.1:9000->9000/udp",
                "web pf-web-1 127.0.0.1:9001->9001/udp"
            ],
            "network_mode: host publishes nothing"
        );
        assert_eq!(own_clash(&ports), None, "one container's own ports");
        let scaled = UpOptions {
            scale: [("web".to_string(), 2)].into(),
            ..UpOptions::default()
        };
        let plan = plan_up(&p, &Observed::default(), &scaled).expect("plan");
        let ports = planned_ports(&p, &plan).expect("ports");
        assert_eq!(
            own_clash(&ports).as_deref(),
            Some(
                "service web: containers pf-web-1 and pf-web-2 would both publish host port tcp/8080 (8080->80/tcp); only one container can hold a fixed host port"
            )
        );
        let r = refused(&plan, "no".into());
        assert_eq!((r.done, r.skipped.len()), (0, plan.nodes.len()));
    }

    #[test]
    fn missing_bind_sources_are_made_for_the_short_syntax_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().display();
        std::fs::create_dir(dir.path().join("there")).expect("mkdir");
        let p = project(&format!(
            r#"
name: pf
services:
  web:
    image: nginx
    volumes:
      - {d}/there:/a
      - {d}/short/new:/b
      - type: bind
        source: {d}/long
        target: /c
      - type: bind
        source: {d}/made
        target: /d
        bind:
          create_host_path: true
"#
        ));
        let plan = plan_up(&p, &Observed::default(), &UpOptions::default()).expect("plan");
        let missing = missing_binds(&p, &plan);
        let shown: Vec<(usize, bool)> = missing.iter().map(|m| (m.index, m.create)).collect();
        assert_eq!(shown, [(1, true), (2, false), (3, true)]);
        assert_eq!(
            missing[1].to_string(),
            format!(
                "service web: volumes[2]: bind source path {d}/long does not exist (create it, or set bind.create_host_path: true)"
            )
        );
        create_bind_sources(&missing).expect("create");
        assert!(dir.path().join("short/new").is_dir() && dir.path().join("made").is_dir());
        assert!(
            !dir.path().join("long").exists(),
            "long syntax: refused, not made"
        );
    }
}
