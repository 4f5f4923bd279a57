//! `update`: new limits and labels for an existing container, as `docker update` changes
//! them: kept in its record and OCI config (the next start runs with them) and, while it
//! runs, written into its cgroup at once.

use std::collections::BTreeMap;

use oci_spec::runtime::LinuxResources;

use super::cgroups::Cgroup;
use super::config::Resources;
use super::record::Record;
use super::{Runtime, RuntimeError, io_err, spec, state};

impl Runtime {
    /// Gives the container `resources` and `labels` (both whole, replacing the old ones).
    /// A limit that was set and is no longer (`None`) is lifted where the cgroup allows it
    /// (pids); the others keep their value in the running cgroup until the next start.
    pub fn update(
        &self,
        rec: &Record,
        resources: Resources,
        labels: BTreeMap<String, String>,
    ) -> Result<Record, RuntimeError> {
        let limits = spec::limits(&resources)?;
        let mut new = rec.clone();
        new.config.resources = resources;
        new.config.labels = labels;
        // The running cgroup first: a limit the kernel refuses (memory below what is in use)
        // leaves its record and OCI config as they were.
        if self.is_running(rec) {
            let mut live = limits.clone();
            if rec.config.resources.pids_limit.is_some()
                && new.config.resources.pids_limit.is_none()
            {
                live.insert("pids".into(), serde_json::json!({"limit": -1}));
            }
            let lr: LinuxResources = serde_json::from_value(serde_json::Value::Object(live))
                .map_err(|e| RuntimeError::Io {
                    what: "translating the limits for",
                    path: rec.dir.clone(),
                    source: std::io::Error::other(e),
                })?;
            Cgroup::locate(&rec.cgroup)
                .and_then(|cg| cg.apply(&lr))
                .map_err(|source| RuntimeError::Limits {
                    name: rec.config.name.clone(),
                    source,
                })?;
        }
        // The OCI config the next start reads.
        let p = rec.spec_path();
        let mut oci: serde_json::Value = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or_else(|| RuntimeError::Io {
                what: "reading",
                path: p.clone(),
                source: std::io::Error::other("not an OCI config"),
            })?;
        if let Some(res) = oci
            .pointer_mut("/linux/resources")
            .and_then(|r| r.as_object_mut())
        {
            for key in ["memory", "cpu", "pids", "blockIO"] {
                res.remove(key);
            }
            res.extend(limits);
        }
        // Written as the record is: the container's files are written whole or not at all.
        state::write_json_atomic(&p, &oci).map_err(io_err("writing", &p))?;
        let p = rec.dir.join(Record::FILE);
        state::write_json_atomic(&p, &new).map_err(io_err("writing", &p))?;
        Ok(new)
    }
}
