//! The container's state on disk: the truth a later process (CLI, restarted daemon) reads to
//! find and re-adopt a container. Written atomically (temp file + rename) so a reader never
//! sees half a file.

use std::fs;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
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

    /// Holds [`RESERVE_BYTES`] of disk next to the state file `path` while the container
    /// runs, so that its exit can be recorded ([`State::save_exit`]) even once its log or
    /// anything else has filled the disk: a running record that outlives its shim would
    /// read as a shim that died. Best effort: no room, no reserve.
    pub fn reserve_room(path: &Path) {
        let Ok(f) = fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .mode(crate::modes::PRIVATE_FILE)
            .open(reserve_path(path))
        else {
            return;
        };
        // SAFETY: fallocate(2) on a file we own, with integer arguments.
        unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, RESERVE_BYTES) };
    }

    /// [`State::save`] of the record that the container no longer runs: when the disk is
    /// full, the room held by [`State::reserve_room`] is given up for it. The reserve goes
    /// either way.
    pub fn save_exit(&self, path: &Path) -> Result<(), StateError> {
        let reserve = reserve_path(path);
        let saved = self.save(path).or_else(|_| {
            let _ = fs::remove_file(&reserve);
            self.save(path)
        });
        let _ = fs::remove_file(&reserve);
        saved
    }
}

/// Bytes held for the exit record: two blocks, the temp file's and a directory's.
const RESERVE_BYTES: i64 = 8192;

/// The reserve of the state file `path` ([`State::reserve_room`]).
fn reserve_path(path: &Path) -> PathBuf {
    path.with_file_name("state.reserve")
}

/// Serialises `value` next to `path` and renames it over `path`; only root may read it (a
/// container's config holds its environment's secrets).
pub(crate) fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let data = serde_json::to_vec_pretty(value).map_err(io::Error::other)?;
    crate::modes::write_atomic(path, &data, crate::modes::PRIVATE_FILE)
}
