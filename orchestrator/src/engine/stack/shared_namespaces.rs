//! The namespaces a service shares with another container: `network_mode`, `pid` and `ipc`
//! as `service:NAME` (the lowest running replica, as Compose picks it) or `container:NAME`
//! (any running container). The planner made the service wait for that one to start.

use super::*;
use berth_runtime::container::IpcMode;

impl Engine {
    /// The running container a `KEY: service:NAME | container:NAME` mode of `service` names;
    /// `None` for any other mode. Its absence or a stopped one is an error naming the key.
    pub(super) fn shared_target(
        &self,
        project: &Project,
        service: &str,
        key: &str,
        mode: &str,
    ) -> Result<Option<Record>, String> {
        if let Some(dep) = mode.strip_prefix("service:") {
            let mut running: Vec<Member> =
                project_members::of_project(&self.runtime, &project.name, OneOffs::Exclude)
                    .into_iter()
                    .filter(|m| m.state.status == Status::Running && m.service == dep)
                    .collect();
            running.sort_by_key(|m| m.number);
            return running
                .into_iter()
                .next()
                .map(|m| Some(m.rec))
                .ok_or_else(|| {
                    format!(
                        "service {service}: {key} {mode}: service {dep} has no running container"
                    )
                });
        }
        let Some(name) = mode.strip_prefix("container:") else {
            return Ok(None);
        };
        let rec = self
            .runtime
            .resolve(name)
            .map_err(|err| format!("service {service}: {key} {mode}: {err}"))?;
        if !self.runtime.is_running(&rec) {
            return Err(format!(
                "service {service}: {key} {mode}: container {name} is not running"
            ));
        }
        Ok(Some(rec))
    }

    /// `pid:` and `ipc:` as `service:NAME | container:NAME`: the container joins that
    /// container's PID or IPC namespace (and its /dev/shm), by id; the runtime finds its
    /// process at each start, and refuses an IPC namespace its owner did not make
    /// shareable, as Docker does.
    pub(super) fn join_shared_namespaces(
        &self,
        project: &Project,
        service: &str,
        svc: &crate::compose::Service,
        cfg: &mut berth_runtime::container::ContainerConfig,
    ) -> Result<(), String> {
        if let Some(mode) = svc.pid.as_deref()
            && let Some(target) = self.shared_target(project, service, "pid", mode)?
        {
            cfg.pid_from = Some(target.id);
        }
        if let Some(mode) = svc.ipc.as_deref()
            && let Some(target) = self.shared_target(project, service, "ipc", mode)?
        {
            if !target.config.ipc.is_joinable() {
                return Err(format!(
                    "service {service}: ipc {mode}: the IPC namespace of container {} is not shareable (give it ipc: shareable)",
                    target.config.name
                ));
            }
            cfg.ipc = IpcMode::Container(target.id);
        }
        Ok(())
    }
}
