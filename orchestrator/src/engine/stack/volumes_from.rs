//! A service's `volumes_from`: the volumes and bind mounts of another service's container
//! (`svc`, `service:svc`, the first by number, as Compose picks it) or of any container
//! (`container:NAME`), each with `:ro`/`:rw` when given.

use super::*;
use crate::compose::volumes_from_service;
use crate::engine::container_spec::{share_volumes_from, volumes_from_entry};

impl Engine {
    /// Adds the mounts every `volumes_from` entry of `service` names to `cfg`; an entry whose
    /// container does not exist fails the create, naming the entry.
    pub(super) fn share_service_volumes(
        &self,
        project: &Project,
        service: &str,
        svc: &crate::compose::Service,
        cfg: &mut berth_runtime::container::ContainerConfig,
    ) -> Result<(), String> {
        for (i, entry) in svc.volumes_from.iter().enumerate() {
            let key = format!("service {service}: volumes_from[{i}] {entry}");
            let other = match volumes_from_service(entry) {
                Some(dep) => {
                    let mut members: Vec<Member> =
                        project_members::of_project(&self.runtime, &project.name, OneOffs::Exclude)
                            .into_iter()
                            .filter(|m| m.service == dep)
                            .collect();
                    members.sort_by_key(|m| m.number);
                    members
                        .into_iter()
                        .next()
                        .map(|m| m.rec)
                        .ok_or_else(|| format!("{key}: service {dep} has no container"))?
                }
                None => {
                    let name = entry.strip_prefix("container:").unwrap_or(entry);
                    let (name, _) = volumes_from_entry(name);
                    self.runtime
                        .resolve(name)
                        .map_err(|err| format!("{key}: {err}"))?
                }
            };
            let (_, read_only) = volumes_from_entry(entry);
            share_volumes_from(cfg, &other, read_only);
        }
        Ok(())
    }
}
