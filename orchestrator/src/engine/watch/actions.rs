//! What a rule does after (or instead of) a sync: restart the service's containers, run the
//! rule's command in each of them, or rebuild the service's image and recreate only that
//! service. Each goes through the engine's own paths (the `restart` verb, `up` of one
//! service without its dependencies), so a watch does nothing `berth` could not.

use std::sync::Arc;

use berth_runtime::container::{ExecConfig, Record};

use super::rules::ExecCommand;
use super::sync::run_in;
use crate::api::project::{UpOptions, Verb};
use crate::compose::Project;
use crate::engine::project_members::{self, OneOffs};
use crate::engine::stack::Engine;

/// The running containers of `service` (one-offs excepted), by replica number.
pub fn running(engine: &Engine, project: &str, service: &str) -> Vec<Record> {
    let mut members: Vec<_> =
        project_members::of_project(&engine.runtime, project, OneOffs::Exclude)
            .into_iter()
            .filter(|m| m.service == service && engine.runtime.is_running(&m.rec))
            .collect();
    project_members::sort_by_service(&mut members);
    members.into_iter().map(|m| m.rec).collect()
}

/// Restarts the service's containers (the project's `restart` verb on that service).
pub async fn restart(engine: &Arc<Engine>, project: &Project, service: &str) -> Result<(), String> {
    let out = engine
        .run_verb(
            project.clone(),
            vec![service.to_string()],
            Verb::Restart { timeout: None },
        )
        .await
        .map_err(|e| crate::api::error::error_chain(&e))?;
    if out.failures.is_empty() {
        Ok(())
    } else {
        Err(out.failures.join("; "))
    }
}

/// Runs a `sync+exec` command in the container; answers its exit status.
pub fn exec(engine: &Engine, rec: &Record, cmd: &ExecCommand) -> Result<i32, String> {
    let cfg = ExecConfig {
        args: cmd.command.clone(),
        env: cmd.environment.clone(),
        user: cmd.user.clone(),
        working_dir: cmd.working_dir.clone(),
        ..Default::default()
    };
    let (code, err) = run_in(&engine.runtime, rec, &cfg)?;
    if code != 0 && !err.is_empty() {
        tracing::info!(container = %rec.config.name, code, stderr = %err, "watch exec");
    }
    Ok(code)
}

/// Rebuilds the service's image, then converges that service alone (recreated when the
/// image changed), as Compose's `rebuild` action does.
pub async fn rebuild(engine: &Arc<Engine>, project: &Project, service: &str) -> Result<(), String> {
    engine.build_service(project, service, false).await?;
    let out = engine
        .up(
            project.clone(),
            UpOptions {
                services: vec![service.to_string()],
                no_deps: true,
                no_build: true,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| crate::api::error::error_chain(&e))?;
    let mut problems = out.failures;
    problems.extend(out.skipped);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
