//! Plans of the project verbs that act on existing containers (`start`, `stop`, `restart`,
//! `kill`, `pause`, `unpause`, `rm`): one step per container, level by level along the
//! dependency graph (stops, kills and pauses dependents first, starts and unpauses what is
//! needed first). Pure: the containers and their states come in, a plan goes out.

use std::collections::BTreeSet;

use crate::api::project::Verb;
use crate::engine::plan::{Plan, Step};
use crate::graph::ServiceGraph;

/// One container a verb may act on, as the planner needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerbTarget {
    pub id: String,
    pub name: String,
    pub service: String,
    pub running: bool,
    pub paused: bool,
}

/// Plans `verb` over `targets` (the services' containers in listing order), restricted to
/// `services`. Each level waits for the whole level before it; `rm` has no order (every
/// removal is independent) and lists the running containers it leaves as warnings.
pub fn plan_verb(
    graph: &ServiceGraph,
    services: &BTreeSet<String>,
    targets: &[VerbTarget],
    verb: &Verb,
) -> Plan {
    let mut plan = Plan::default();
    let stop_levels = || graph.stop_levels(Some(services));
    let start_levels = || graph.start_levels(Some(services));
    match verb {
        Verb::Start => by_levels(&mut plan, &start_levels(), targets, Vec::new(), |t| {
            (!t.running).then(|| start(t))
        }),
        Verb::Stop { .. } => by_levels(&mut plan, &stop_levels(), targets, Vec::new(), |t| {
            Some(stop(t))
        }),
        Verb::Restart { .. } => {
            let stopped = by_levels(&mut plan, &stop_levels(), targets, Vec::new(), |t| {
                Some(stop(t))
            });
            by_levels(&mut plan, &start_levels(), targets, stopped, |t| {
                Some(start(t))
            })
        }
        Verb::Kill { signal } => by_levels(&mut plan, &stop_levels(), targets, Vec::new(), |t| {
            t.running.then(|| Step::KillContainer {
                service: t.service.clone(),
                name: t.name.clone(),
                id: t.id.clone(),
                signal: *signal,
            })
        }),
        Verb::Pause => by_levels(&mut plan, &stop_levels(), targets, Vec::new(), |t| {
            (t.running && !t.paused).then(|| Step::PauseContainer {
                service: t.service.clone(),
                name: t.name.clone(),
                id: t.id.clone(),
            })
        }),
        Verb::Unpause => by_levels(&mut plan, &start_levels(), targets, Vec::new(), |t| {
            (t.running && t.paused).then(|| Step::UnpauseContainer {
                service: t.service.clone(),
                name: t.name.clone(),
                id: t.id.clone(),
            })
        }),
        Verb::Rm { stop, volumes } => {
            for t in targets.iter().filter(|t| services.contains(&t.service)) {
                if t.running && !stop {
                    plan.warnings.push(format!(
                        "skipped {}: running (stop it first, or use -s)",
                        t.name
                    ));
                    continue;
                }
                let step = Step::RemoveContainer {
                    service: t.service.clone(),
                    name: t.name.clone(),
                    id: t.id.clone(),
                    cause: "rm".into(),
                    volumes: *volumes,
                };
                plan.push(step, Vec::new());
            }
            Vec::new()
        }
    };
    plan
}

/// Pushes `make`'s step for the targets of each level in turn, every node of a level after
/// the nodes of the level before it (the first after `first_after`). Answers the nodes of
/// the last level that had any.
fn by_levels(
    plan: &mut Plan,
    levels: &[Vec<String>],
    targets: &[VerbTarget],
    first_after: Vec<usize>,
    make: impl Fn(&VerbTarget) -> Option<Step>,
) -> Vec<usize> {
    let mut after = first_after;
    for level in levels {
        let mine: Vec<usize> = targets
            .iter()
            .filter(|t| level.contains(&t.service))
            .filter_map(&make)
            .map(|step| plan.push(step, after.clone()))
            .collect();
        if !mine.is_empty() {
            after = mine;
        }
    }
    after
}

fn start(t: &VerbTarget) -> Step {
    Step::StartContainer {
        service: t.service.clone(),
        name: t.name.clone(),
    }
}

fn stop(t: &VerbTarget) -> Step {
    Step::StopContainer {
        service: t.service.clone(),
        name: t.name.clone(),
        id: t.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// web -> api -> db, plus a lone worker.
    fn graph() -> ServiceGraph {
        ServiceGraph::from_edges(vec![
            ("web".into(), vec!["api".into()]),
            ("api".into(), vec!["db".into()]),
            ("db".into(), vec![]),
            ("worker".into(), vec![]),
        ])
        .expect("graph")
    }

    fn target(service: &str, running: bool, paused: bool) -> VerbTarget {
        VerbTarget {
            id: format!("id-{service}"),
            name: format!("p-{service}-1"),
            service: service.into(),
            running,
            paused,
        }
    }

    fn all() -> BTreeSet<String> {
        ["web", "api", "db", "worker"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn targets() -> Vec<VerbTarget> {
        vec![
            target("api", true, false),
            target("db", true, true),
            target("web", false, false),
            target("worker", true, false),
        ]
    }

    #[test]
    fn stop_goes_dependents_first_level_by_level() {
        let plan = plan_verb(&graph(), &all(), &targets(), &Verb::Stop { timeout: None });
        assert_eq!(
            plan.to_string(),
            "[0] StopContainer p-web-1\n\
             [1] StopContainer p-api-1 after #0\n\
             [2] StopContainer p-db-1 after #1\n\
             [3] StopContainer p-worker-1 after #1\n"
        );
    }

    #[test]
    fn start_skips_running_containers_and_goes_dependencies_first() {
        let plan = plan_verb(&graph(), &all(), &targets(), &Verb::Start);
        assert_eq!(plan.to_string(), "[0] StartContainer p-web-1\n");
    }

    #[test]
    fn restart_starts_after_every_stop() {
        let set: BTreeSet<String> = ["api".to_string(), "db".to_string()].into();
        let plan = plan_verb(&graph(), &set, &targets(), &Verb::Restart { timeout: None });
        assert_eq!(
            plan.to_string(),
            "[0] StopContainer p-api-1\n\
             [1] StopContainer p-db-1 after #0\n\
             [2] StartContainer p-db-1 after #1\n\
             [3] StartContainer p-api-1 after #2\n"
        );
    }

    #[test]
    fn kill_pause_and_unpause_pick_by_state() {
        let kill = plan_verb(&graph(), &all(), &targets(), &Verb::Kill { signal: 9 });
        assert!(!kill.to_string().contains("p-web-1"), "{kill}");
        assert!(kill.to_string().contains("KillContainer p-db-1 (signal 9)"));
        let pause = plan_verb(&graph(), &all(), &targets(), &Verb::Pause);
        assert_eq!(
            pause.to_string(),
            "[0] PauseContainer p-api-1\n[1] PauseContainer p-worker-1 after #0\n"
        );
        let unpause = plan_verb(&graph(), &all(), &targets(), &Verb::Unpause);
        assert_eq!(unpause.to_string(), "[0] UnpauseContainer p-db-1\n");
    }

    #[test]
    fn rm_leaves_running_containers_unless_told_to_stop_them() {
        let plan = plan_verb(
            &graph(),
            &all(),
            &targets(),
            &Verb::Rm {
                stop: false,
                volumes: false,
            },
        );
        assert_eq!(plan.to_string().lines().count(), 4, "{plan}");
        assert!(
            plan.to_string()
                .contains("[0] RemoveContainer p-web-1 (rm)\n")
        );
        assert!(
            plan.warnings
                .contains(&"skipped p-api-1: running (stop it first, or use -s)".to_string())
        );
        let plan = plan_verb(
            &graph(),
            &all(),
            &targets(),
            &Verb::Rm {
                stop: true,
                volumes: true,
            },
        );
        assert_eq!(plan.nodes.len(), 4);
        assert!(plan.warnings.is_empty());
    }
}
