//! `pause` / `unpause`: a container's processes frozen in place by the cgroup freezer (v1
//! `freezer.state` or v2 `cgroup.freeze`, whichever the host mounts), as `docker pause`.

use super::cgroups::{Cgroup, CgroupError};
use super::record::Record;
use super::{Runtime, RuntimeError};

impl Runtime {
    fn cgroup_of(&self, rec: &Record) -> Result<Cgroup, CgroupError> {
        Cgroup::locate(&rec.cgroup)
    }

    /// Freezes every process of a running container.
    pub fn pause(&self, rec: &Record) -> Result<(), RuntimeError> {
        if !self.is_running(rec) {
            return Err(RuntimeError::Start {
                code: 125,
                message: format!("container {} is not running", rec.config.name),
            });
        }
        self.cgroup_of(rec)
            .and_then(|cg| cg.freeze())
            .map_err(|source| RuntimeError::Freezer {
                verb: "pausing",
                name: rec.config.name.clone(),
                source,
            })
    }

    /// Lets the processes of a paused container run again.
    pub fn unpause(&self, rec: &Record) -> Result<(), RuntimeError> {
        if !self.is_paused(rec) {
            return Err(RuntimeError::Start {
                code: 125,
                message: format!("container {} is not paused", rec.config.name),
            });
        }
        self.cgroup_of(rec)
            .and_then(|cg| cg.thaw())
            .map_err(|source| RuntimeError::Freezer {
                verb: "unpausing",
                name: rec.config.name.clone(),
                source,
            })
    }

    /// Whether a running container is paused (frozen or freezing).
    pub fn is_paused(&self, rec: &Record) -> bool {
        self.is_running(rec) && self.cgroup_of(rec).is_ok_and(|cg| cg.is_frozen())
    }
}
