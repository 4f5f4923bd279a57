//! The pure planners: desired project x observed state -> plan. No I/O, no clock.
//!
//! The rules users rely on (USERS.md §5): `up` twice without an edit plans nothing; editing one
//! service recreates exactly that service (plus restarts of dependents that declared
//! `restart: true`); scaling adds or removes by replica number; orphans are reported, and
//! removed only when asked.

use std::collections::{BTreeMap, BTreeSet};

use super::labels::container_name;
use super::observed::{ContainerState, Observed, ObservedContainer};
use super::plan::{Plan, Step};
use crate::api::project::{DownOptions, RmiScope, UpOptions};
use crate::compose::{Project, Service, VolumeType, service_hash};
use crate::graph::{GraphError, ServiceGraph};

/// What convergence decided for one replica of a service.
enum Action<'a> {
    Create(u32, String),
    Recreate(&'a ObservedContainer, String),
    Restart(&'a ObservedContainer, String),
    Start(&'a ObservedContainer),
}

/// The image references of `project` that `down --rmi scope` removes, each once.
pub fn rmi_images(scope: RmiScope, project: &Project) -> Vec<String> {
    let mut out: Vec<String> = project
        .services
        .iter()
        .filter(|(_, svc)| scope == RmiScope::All || svc.image.is_none())
        .filter_map(|(name, _)| project.image_of(name))
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Why no plan could be made; names the service at fault.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("--scale {service}={n}: no such service in this project")]
    ScaleUnknown { service: String, n: u32 },
    #[error(
        "--scale {service}={n}: service {service} sets container_name, so it cannot run more than one container"
    )]
    ScaleFixedName { service: String, n: u32 },
}

/// Networks a service joins, by project key (none with `network_mode`).
fn service_networks(svc: &Service) -> Vec<&str> {
    if svc.network_mode.is_some() {
        return Vec::new();
    }
    svc.networks.keys().map(String::as_str).collect()
}

/// Named volumes a service mounts, by project key.
fn service_volumes(svc: &Service) -> Vec<&str> {
    svc.volumes
        .iter()
        .filter(|v| v.kind == VolumeType::Volume)
        .filter_map(|v| v.source.as_deref())
        .collect()
}

/// Why an existing container must be recreated, or `None` to keep it.
fn recreate_cause(
    c: &ObservedContainer,
    hash: &str,
    image: Option<&String>,
    opts: &UpOptions,
) -> Option<String> {
    if opts.no_recreate {
        return None;
    }
    if opts.force_recreate {
        return Some("--force-recreate".into());
    }
    if opts.renew_anon_volumes {
        return Some("--renew-anon-volumes".into());
    }
    if c.config_hash != hash {
        return Some("configuration changed".into());
    }
    match (image, c.image_id.as_ref()) {
        (Some(want), Some(have)) if want != have => Some("image changed".into()),
        _ => None,
    }
}

/// Why an existing container is broken (a crash left it half-made, unattached to a network
/// its service joins, or without its names), or `None`. Such a container is recreated even
/// with `--no-recreate`: it is debris, not a container to keep.
fn broken_cause(c: &ObservedContainer, networks: &[String]) -> Option<String> {
    let mut why = c.defects.clone();
    if let Some(attached) = &c.attached {
        for net in networks.iter().filter(|n| !attached.contains(*n)) {
            why.push(format!("not attached to network {net}"));
        }
    }
    (!why.is_empty()).then(|| why.join("; "))
}

/// Plans `berth up`.
pub fn plan_up(
    project: &Project,
    observed: &Observed,
    opts: &UpOptions,
) -> Result<Plan, PlanError> {
    let graph = ServiceGraph::from_project(project)?;
    let selected = graph.select(&opts.services, opts.no_deps)?;
    for (service, n) in &opts.scale {
        let Some(svc) = project.services.get(service) else {
            return Err(PlanError::ScaleUnknown {
                service: service.clone(),
                n: *n,
            });
        };
        if *n > 1 && svc.container_name.is_some() {
            return Err(PlanError::ScaleFixedName {
                service: service.clone(),
                n: *n,
            });
        }
    }
    let mut plan = Plan::default();

    // Networks and volumes the selected services use.
    let mut network_nodes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut volume_nodes: BTreeMap<&str, usize> = BTreeMap::new();
    for name in &selected {
        let Some(svc) = project.services.get(name) else {
            continue;
        };
        for key in service_networks(svc) {
            let Some(net) = project.networks.get(key) else {
                continue;
            };
            if net.external
                || observed.networks.contains(&net.name)
                || network_nodes.contains_key(key)
            {
                continue;
            }
            let step = Step::CreateNetwork {
                key: key.to_string(),
                name: net.name.clone(),
            };
            network_nodes.insert(key, plan.push(step, vec![]));
        }
        for key in service_volumes(svc) {
            let Some(vol) = project.volumes.get(key) else {
                continue;
            };
            if vol.external
                || observed.volumes.contains(&vol.name)
                || volume_nodes.contains_key(key)
            {
                continue;
            }
            let step = Step::CreateVolume {
                key: key.to_string(),
                name: vol.name.clone(),
            };
            volume_nodes.insert(key, plan.push(step, vec![]));
        }
    }

    // Services in dependency order, so a dependency's nodes exist before its dependents'.
    let order: Vec<String> = graph
        .start_levels(Some(&selected))
        .into_iter()
        .flatten()
        .collect();
    // Nodes after which a service counts as (re)started, for its dependents to wait on.
    let mut ready_nodes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut recreated: BTreeSet<String> = BTreeSet::new();
    for name in &order {
        let Some(svc) = project.services.get(name) else {
            continue;
        };
        let hash = service_hash(svc);
        let image_id = observed.images.get(name);
        let want = opts
            .scale
            .get(name)
            .copied()
            .unwrap_or_else(|| svc.replicas());
        let existing = observed.service_containers(name);
        let networks: Vec<String> = service_networks(svc)
            .into_iter()
            .filter_map(|key| project.networks.get(key))
            .map(|n| n.name.clone())
            .collect();
        let restart_cause = svc
            .depends_on
            .iter()
            .find(|(dep, d)| d.restart && recreated.contains(*dep))
            .map(|(dep, _)| format!("dependency {dep} was recreated"));
        // `network_mode: service:X`: the namespace is X's first container's; when that one is
        // replaced (now, or since this container was made), the old namespace is gone.
        let net_provider = svc
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"));
        // `pid`/`ipc: service:X`: X's namespaces, found again at each start; a recreated X
        // recreates its users, as for the network.
        let ns_providers: Vec<(&str, &str)> = [
            ("network_mode", &svc.network_mode),
            ("pid", &svc.pid),
            ("ipc", &svc.ipc),
        ]
        .into_iter()
        .filter_map(|(k, m)| Some((k, m.as_deref()?.strip_prefix("service:")?)))
        .collect();
        let provider_cause = |c: &ObservedContainer| -> Option<String> {
            if let Some((key, dep)) = ns_providers.iter().find(|(_, d)| recreated.contains(*d)) {
                return Some(format!("{key} service:{dep} was recreated"));
            }
            let dep = net_provider?;
            let current = observed
                .service_containers(dep)
                .first()
                .map(|p| p.id.clone());
            match (&c.network_from, current) {
                (Some(had), Some(now)) if *had != now => Some(format!(
                    "network_mode service:{dep} is another container now"
                )),
                _ => None,
            }
        };

        // Decide first, so that a service with nothing to do adds no node at all.
        let mut actions: Vec<Action> = Vec::new();
        for number in 1..=want {
            match existing.iter().find(|c| c.number == number) {
                None => actions.push(Action::Create(number, "no existing container".into())),
                Some(c) => match broken_cause(c, &networks)
                    .or_else(|| recreate_cause(c, &hash, image_id, opts))
                    .or_else(|| (!opts.no_recreate).then(|| provider_cause(c)).flatten())
                {
                    Some(cause) => actions.push(Action::Recreate(c, cause)),
                    None => match &restart_cause {
                        Some(cause) => actions.push(Action::Restart(c, cause.clone())),
                        None if c.state != ContainerState::Running && !opts.no_start => {
                            actions.push(Action::Start(c))
                        }
                        None => {}
                    },
                },
            }
        }
        for c in existing.iter().filter(|c| c.number > want) {
            // Scaled-down replicas leave their anonymous volumes dangling, as compose.
            let step = Step::RemoveContainer {
                service: name.clone(),
                name: c.name.clone(),
                id: c.id.clone(),
                cause: format!("scale down to {want}"),
                volumes: false,
            };
            plan.push(step, vec![]);
        }
        if actions.is_empty() {
            continue;
        }

        let creates = actions
            .iter()
            .any(|a| matches!(a, Action::Create(..) | Action::Recreate(..)));
        let mut prereq: Vec<usize> = Vec::new();
        if creates && image_id.is_none() {
            let step = Step::EnsureImage {
                service: name.clone(),
                image: project.image_of(name).unwrap_or_default(),
                build: svc.build.is_some(),
            };
            prereq.push(plan.push(step, vec![]));
        }
        for key in service_networks(svc) {
            prereq.extend(network_nodes.get(key));
        }
        for key in service_volumes(svc) {
            prereq.extend(volume_nodes.get(key));
        }
        let mut waits: Vec<usize> = Vec::new();
        for (dep, d) in &svc.depends_on {
            if !selected.contains(dep) {
                continue;
            }
            let step = Step::WaitDependency {
                service: name.clone(),
                dependency: dep.clone(),
                condition: d.condition,
                required: d.required,
            };
            let after = ready_nodes.get(dep).cloned().unwrap_or_default();
            waits.push(plan.push(step, after));
        }
        // Joining X's namespace needs X's container running, and mounting X's volumes
        // needs X's container made: depends_on or not (Compose adds both as service_started).
        let mut implicit: Vec<&str> = Vec::new();
        for (_, dep) in &ns_providers {
            if !implicit.contains(dep) {
                implicit.push(dep);
            }
        }
        for v in &svc.volumes_from {
            if let Some(dep) = crate::compose::volumes_from_service(v)
                && !implicit.contains(&dep)
            {
                implicit.push(dep);
            }
        }
        for dep in implicit {
            if !selected.iter().any(|s| s == dep) || svc.depends_on.contains_key(dep) {
                continue;
            }
            let step = Step::WaitDependency {
                service: name.clone(),
                dependency: dep.to_string(),
                condition: crate::compose::DependsCondition::ServiceStarted,
                required: true,
            };
            let after = ready_nodes.get(dep).cloned().unwrap_or_default();
            waits.push(plan.push(step, after));
        }
        let before_create: Vec<usize> = prereq.iter().chain(&waits).copied().collect();

        let mut ready: Vec<usize> = Vec::new();
        for action in actions {
            let (number, cause, mut after, inherit) = match action {
                Action::Create(number, cause) => {
                    (number, cause, before_create.clone(), BTreeMap::new())
                }
                Action::Recreate(c, cause) => {
                    // The old container's anonymous volumes stay for the new one (or, with
                    // -V, dangling, as compose leaves them).
                    let step = Step::RemoveContainer {
                        service: name.clone(),
                        name: c.name.clone(),
                        id: c.id.clone(),
                        cause: format!("recreate: {cause}"),
                        volumes: false,
                    };
                    let removed = plan.push(step, before_create.clone());
                    let mut after = before_create.clone();
                    after.push(removed);
                    let inherit = if opts.renew_anon_volumes {
                        BTreeMap::new()
                    } else {
                        c.anonymous_volumes.clone()
                    };
                    (c.number, cause, after, inherit)
                }
                Action::Restart(c, cause) => {
                    let step = Step::RestartContainer {
                        service: name.clone(),
                        name: c.name.clone(),
                        cause,
                    };
                    ready.push(plan.push(step, waits.clone()));
                    continue;
                }
                Action::Start(c) => {
                    let step = Step::StartContainer {
                        service: name.clone(),
                        name: c.name.clone(),
                    };
                    ready.push(plan.push(step, waits.clone()));
                    continue;
                }
            };
            recreated.insert(name.clone());
            let cname = container_name(&project.name, name, number, svc.container_name.as_deref());
            let step = Step::CreateContainer {
                service: name.clone(),
                number,
                name: cname.clone(),
                cause,
                inherit,
            };
            after.sort_unstable();
            let created = plan.push(step, after);
            if opts.no_start {
                ready.push(created);
            } else {
                let step = Step::StartContainer {
                    service: name.clone(),
                    name: cname,
                };
                ready.push(plan.push(step, vec![created]));
            }
        }
        ready_nodes.insert(name.clone(), ready);
    }

    add_orphans(project, observed, opts.remove_orphans, false, &mut plan);
    Ok(plan)
}

/// Containers of services no longer in the project: removed on request (with their anonymous
/// volumes when `volumes`), else reported.
fn add_orphans(
    project: &Project,
    observed: &Observed,
    remove: bool,
    volumes: bool,
    plan: &mut Plan,
) -> Vec<usize> {
    let orphans: Vec<&ObservedContainer> = observed
        .containers
        .iter()
        .filter(|c| !project.services.contains_key(&c.service))
        .filter(|c| !project.disabled_services.contains_key(&c.service))
        .collect();
    if orphans.is_empty() {
        return Vec::new();
    }
    if !remove {
        let names: Vec<&str> = orphans.iter().map(|c| c.name.as_str()).collect();
        plan.warnings.push(format!(
            "found orphan containers ({}) for this project; if you removed or renamed their \
             service in the compose file, run this command with --remove-orphans to clean them up",
            names.join(", ")
        ));
        return Vec::new();
    }
    orphans
        .into_iter()
        .map(|c| {
            let step = Step::RemoveContainer {
                service: c.service.clone(),
                name: c.name.clone(),
                id: c.id.clone(),
                cause: "orphan".into(),
                volumes: volumes && !c.anonymous_volumes.is_empty(),
            };
            plan.push(step, vec![])
        })
        .collect()
}

/// Plans `berth down`: containers in reverse dependency order (dependents first, independent
/// ones in parallel), then the project's networks, then volumes with `-v`.
pub fn plan_down(
    project: &Project,
    observed: &Observed,
    opts: &DownOptions,
) -> Result<Plan, PlanError> {
    let graph = ServiceGraph::from_project(project)?;
    let mut plan = Plan::default();
    let mut removed: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut all: Vec<usize> = Vec::new();
    for name in graph.stop_levels(None).into_iter().flatten() {
        let after: Vec<usize> = graph
            .dependents(&name)
            .iter()
            .filter_map(|d| removed.get(d))
            .flatten()
            .copied()
            .collect();
        let mut mine: Vec<usize> = Vec::new();
        let mut containers: Vec<&ObservedContainer> = observed
            .containers
            .iter()
            .filter(|c| c.service == name)
            .collect();
        containers.sort_by_key(|c| (c.oneoff, c.number));
        for c in containers {
            let step = Step::RemoveContainer {
                service: name.clone(),
                name: c.name.clone(),
                id: c.id.clone(),
                cause: "down".into(),
                volumes: opts.volumes && !c.anonymous_volumes.is_empty(),
            };
            mine.push(plan.push(step, after.clone()));
        }
        all.extend(&mine);
        removed.insert(name, mine);
    }
    all.extend(add_orphans(
        project,
        observed,
        opts.remove_orphans,
        opts.volumes,
        &mut plan,
    ));
    for net in project.networks.values() {
        if !net.external && observed.networks.contains(&net.name) {
            let step = Step::RemoveNetwork {
                name: net.name.clone(),
            };
            plan.push(step, all.clone());
        }
    }
    if opts.volumes {
        for vol in project.volumes.values() {
            if !vol.external && observed.volumes.contains(&vol.name) {
                let step = Step::RemoveVolume {
                    name: vol.name.clone(),
                };
                plan.push(step, all.clone());
            }
        }
    }
    Ok(plan)
}

mod verbs;

pub use verbs::{VerbTarget, plan_verb};

#[cfg(test)]
pub(crate) mod tests;
