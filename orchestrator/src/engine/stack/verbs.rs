//! The project verbs on existing containers (`start`, `stop`, `restart`, `kill`, `pause`,
//! `unpause`, `rm`) as plans: the planner ([`plan_verb`]) orders one step per container
//! along the dependency levels, and the one executor runs them through [`StackBackend`], as
//! for `up` and `down`.

use super::*;
use crate::api::project::Verb;
use crate::engine::reconcile::{VerbTarget, plan_verb};

impl Engine {
    /// Runs `verb` on the containers (one-offs excepted) of `services` of `project` (all
    /// when empty), under the project's lock: plans it with [`plan_verb`] and executes the
    /// plan, every step tried (a failure does not hold back the next level).
    pub async fn run_verb(
        self: &Arc<Self>,
        project: Project,
        services: Vec<String>,
        verb: Verb,
    ) -> Result<VerbOutcome, EngineError> {
        let lock = self.project_lock(&project.name);
        let _held = lock.lock().await;
        let graph = crate::graph::ServiceGraph::from_project(&project).map_err(PlanError::from)?;
        let set: BTreeSet<String> = if services.is_empty() {
            project.services.keys().cloned().collect()
        } else {
            if let Some(unknown) = services.iter().find(|s| !project.services.contains_key(*s)) {
                return Err(EngineError::NoSuchService(unknown.clone()));
            }
            services.into_iter().collect()
        };
        let mut members: Vec<Member> =
            project_members::of_project(&self.runtime, &project.name, OneOffs::Exclude)
                .into_iter()
                .filter(|m| set.contains(&m.service))
                .collect();
        project_members::sort_by_service(&mut members);
        let targets: Vec<VerbTarget> = members
            .iter()
            .map(|m| {
                let running = self.runtime.is_running(&m.rec);
                VerbTarget {
                    id: m.rec.id.clone(),
                    name: m.rec.config.name.clone(),
                    service: m.service.clone(),
                    running,
                    paused: running && self.runtime.is_paused(&m.rec),
                }
            })
            .collect();
        let plan = plan_verb(&graph, &set, &targets, &verb);
        tracing::info!(project = %project.name, steps = plan.nodes.len(), ?verb, "project verb");
        let timeout = match verb {
            Verb::Stop { timeout } | Verb::Restart { timeout } => timeout,
            _ => None,
        };
        let backend = Arc::new(StackBackend {
            stop_timeout: timeout,
            progress: Some(Mutex::new(Vec::new())),
            ..StackBackend::new(self.clone(), project)
        });
        // Every container of a level at once, as many as there are.
        let exec = ExecOptions {
            parallel: plan.nodes.len().max(1),
            keep_going: true,
            release_on_failure: true,
        };
        let mut report = execute(&plan, backend.clone(), exec).await;
        report.failures.sort_by_key(|f| f.node);
        let who = |node: usize| match plan.nodes.get(node).map(|n| &n.step) {
            Some(Step::RemoveContainer { id, .. }) => id.clone(),
            Some(
                Step::StopContainer { name, .. }
                | Step::StartContainer { name, .. }
                | Step::KillContainer { name, .. }
                | Step::PauseContainer { name, .. }
                | Step::UnpauseContainer { name, .. },
            ) => name.clone(),
            Some(other) => other.to_string(),
            None => "a step".to_string(),
        };
        Ok(VerbOutcome {
            members: targets.len(),
            progress: backend.take_progress(),
            removed: plan
                .nodes
                .iter()
                .filter_map(|n| match &n.step {
                    Step::RemoveContainer { name, .. } => Some(name.clone()),
                    _ => None,
                })
                .collect(),
            warnings: plan.warnings.clone(),
            failures: report
                .failures
                .iter()
                .map(|f| format!("{}: {}", who(f.node), f.error))
                .collect(),
        })
    }
}
