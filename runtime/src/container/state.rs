//! The container's state on disk: the truth a later process (CLI, restarted daemon) reads to
//! find and re-adopt a container. Written atomically (temp file + rename) so a reader never
//! sees half a file.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Errors reading or writing a state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("reading container state {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing container state {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("writing container state {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Life-cycle phase, as Docker names them.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    /// Docker's lowercase word for the status.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

/// What the shim records about its container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct State {
    pub id: String,
    pub name: String,
    pub status: Status,
    /// Host pid of the container's init (0 when not running).
    pub pid: i32,
    /// Host pid of the shim that watches it.
    pub shim_pid: i32,
    /// Exit code, 128+signal when killed by a signal.
    pub exit_code: Option<i32>,
    /// Signal that ended the container, if any.
    pub exit_signal: Option<i32>,
    pub oom_killed: bool,
    /// Why the last start failed before the process ran.
    pub error: Option<String>,
    pub created_at: SystemTime,
    pub started_at: Option<SystemTime>,
    pub finished_at: Option<SystemTime>,
}

impl State {
    /// A freshly created container.
    pub fn new(id: &str, name: &str) -> Self {
        State {
            id: id.to_string(),
            name: name.to_string(),
            status: Status::Created,
            pid: 0,
            shim_pid: 0,
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            error: None,
            created_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
        }
    }

    /// Reads `path`.
    pub fn load(path: &Path) -> Result<State, StateError> {
        let data = fs::read(path).map_err(|source| StateError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&data).map_err(|source| StateError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes `path` atomically.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        write_json_atomic(path, self).map_err(|source| StateError::Write {
            path: path.to_path_buf(),
            source,
        })
    }
}

/// Serialises `value` next to `path` and renames it over `path`; only root may read it (a
/// container's config holds its environment's secrets).
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    crate::modes::write_atomic(path, &data, crate::modes::PRIVATE_FILE)
}
