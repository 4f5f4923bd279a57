//! Namespaces a container joins from another one (`--pid container:X`, `--ipc container:X`):
//! the bundle names the donor by id, and each start points it at the donor's running
//! process (`/proc/PID/ns/...`), as Docker resolves them at start. The donor's /dev/shm is
//! a tmpfs on the host (a mount in another container's mount namespace cannot be bound), made
//! when a shareable container starts and unmounted when it is removed.
//!
//! Until resolved, the bundle holds a path that is not absolute, so that nothing can run it
//! in namespaces of its own by mistake: a join that was not resolved fails.

use std::fs;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use serde_json::Value;

use super::config::IpcMode;
use super::{Record, Runtime, RuntimeError, state};

/// The placeholder the bundle holds for `what` (`pid`, `ipc`, `shm`) of container `id`.
pub(crate) fn unresolved(id: &str, what: &str) -> String {
    format!("container:{id}/{what}")
}

/// The host directory a shareable container's /dev/shm is mounted on, in its dir.
pub(crate) fn shm_dir(container_dir: &Path) -> PathBuf {
    container_dir.join("shm")
}

fn is_tmpfs(dir: &Path) -> bool {
    nix::sys::statfs::statfs(dir)
        .map(|s| s.filesystem_type() == nix::sys::statfs::TMPFS_MAGIC)
        .unwrap_or(false)
}

/// Unmounts a shareable container's /dev/shm (a no-op for any other).
pub(crate) fn unmount_shm(container_dir: &Path) {
    let dir = shm_dir(container_dir);
    while is_tmpfs(&dir) && umount2(&dir, MntFlags::MNT_DETACH).is_ok() {}
}

/// Mounts a shareable container's /dev/shm on the host, once per run (its content lives
/// until the container stops).
fn mount_shm(rec: &Record) -> Result<(), RuntimeError> {
    let dir = shm_dir(&rec.dir);
    if is_tmpfs(&dir) {
        return Ok(());
    }
    crate::modes::mkdir(&dir, crate::modes::PRIVATE_DIR).map_err(|source| RuntimeError::Io {
        what: "creating the shareable /dev/shm",
        path: dir.clone(),
        source,
    })?;
    mount(
        Some("shm"),
        &dir,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some(format!("mode=1777,size={}", rec.config.shm_size).as_str()),
    )
    .map_err(|e| RuntimeError::Io {
        what: "mounting the shareable /dev/shm",
        path: dir,
        source: e.into(),
    })
}

fn refuse(rec: &Record, message: String) -> RuntimeError {
    RuntimeError::Start {
        code: 125,
        message: format!("container {}: {message}", rec.config.name),
    }
}

impl Runtime {
    /// The running donor `id` of `rec`'s `kind` namespace and its host pid.
    fn donor(&self, rec: &Record, id: &str, kind: &str) -> Result<(Record, i32), RuntimeError> {
        let donor = self.resolve(id).map_err(|_| {
            refuse(
                rec,
                format!("cannot join the {kind} namespace of container {id}: it does not exist"),
            )
        })?;
        if donor.id == rec.id {
            return Err(refuse(rec, format!("cannot join its own {kind} namespace")));
        }
        let st = self.state(&donor)?;
        if !self.is_running(&donor) || st.pid <= 0 {
            return Err(refuse(
                rec,
                format!(
                    "cannot join the {kind} namespace of container {}: it is not running",
                    donor.config.name
                ),
            ));
        }
        Ok((donor, st.pid))
    }

    /// Points the bundle's joined namespaces (and a joined /dev/shm) at the donors' running
    /// processes; a donor that is gone, stopped or (IPC) not shareable is an error naming it.
    pub(crate) fn resolve_joined(&self, rec: &Record) -> Result<(), RuntimeError> {
        let cfg = &rec.config;
        if cfg.ipc == IpcMode::Shareable {
            mount_shm(rec)?;
        }
        let ipc_from = match &cfg.ipc {
            IpcMode::Container(id) => Some(id),
            _ => None,
        };
        if cfg.pid_from.is_none() && ipc_from.is_none() {
            return Ok(());
        }
        let mut paths: Vec<(&str, String)> = Vec::new();
        let mut shm = None;
        if let Some(id) = &cfg.pid_from {
            let (_, pid) = self.donor(rec, id, "PID")?;
            paths.push(("pid", format!("/proc/{pid}/ns/pid")));
        }
        if let Some(id) = ipc_from {
            let (donor, pid) = self.donor(rec, id, "IPC")?;
            if !donor.config.ipc.is_joinable() {
                return Err(refuse(
                    rec,
                    format!(
                        "the IPC namespace of container {} is not shareable (give it ipc: shareable)",
                        donor.config.name
                    ),
                ));
            }
            paths.push(("ipc", format!("/proc/{pid}/ns/ipc")));
            shm = Some(match donor.config.ipc {
                IpcMode::Host => "/dev/shm".to_string(),
                _ => shm_dir(&donor.dir).display().to_string(),
            });
        }
        let path = rec.spec_path();
        let io = |source| RuntimeError::Io {
            what: "rewriting the joined namespaces of",
            path: path.clone(),
            source,
        };
        let text = fs::read(&path).map_err(io)?;
        let mut spec: Value =
            serde_json::from_slice(&text).map_err(|e| io(std::io::Error::other(e)))?;
        if let Some(nss) = spec
            .pointer_mut("/linux/namespaces")
            .and_then(Value::as_array_mut)
        {
            for ns in nss {
                let kind = ns.get("type").and_then(Value::as_str).unwrap_or_default();
                if let Some((_, p)) = paths.iter().find(|(k, _)| *k == kind) {
                    ns["path"] = Value::String(p.clone());
                }
            }
        }
        if let (Some(src), Some(mounts)) =
            (shm, spec.get_mut("mounts").and_then(Value::as_array_mut))
        {
            for m in mounts {
                if m.get("destination").and_then(Value::as_str) == Some("/dev/shm") {
                    m["source"] = Value::String(src.clone());
                }
            }
        }
        state::write_json_atomic(&path, &spec).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unresolved_join_is_not_an_absolute_path() {
        let p = unresolved("abc", "pid");
        assert!(!p.starts_with('/'), "{p}");
        assert!(p.contains("abc"));
    }
}
