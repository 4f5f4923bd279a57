//! Where a container's files live and the record (`berth.json`) that ties them together:
//! what the shim, `exec` and a later process need beyond the OCI config.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::ContainerConfig;

/// Errors reading a container record.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("reading {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing {path}")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

/// The berth-only facts about one container, next to its `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub id: String,
    pub config: ContainerConfig,
    /// `<root>/containers/<id>`: bundle, state, logs, upper and work dirs.
    pub dir: PathBuf,
    /// `<run>/c/<id12>`: control socket (short, for the 108-byte socket path limit).
    pub run_dir: PathBuf,
    /// Pinned network namespace, when the container has its own.
    pub netns: Option<PathBuf>,
    /// Host dirs of the named volumes in `config.mounts` order.
    pub volumes: Vec<PathBuf>,
    /// cgroup path below each hierarchy root.
    pub cgroup: String,
}

impl Record {
    /// File names inside the container dir.
    pub const FILE: &'static str = "berth.json";

    /// Reads `<dir>/berth.json`.
    pub fn load(dir: &Path) -> Result<Record, RecordError> {
        let path = dir.join(Self::FILE);
        let data = fs::read(&path).map_err(|source| RecordError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&data).map_err(|source| RecordError::Parse { path, source })
    }

    /// The control socket.
    pub fn socket(&self) -> PathBuf {
        self.run_dir.join("ctl")
    }

    /// The state file.
    pub fn state_path(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    /// The json-file log.
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("log.json")
    }

    /// The OCI bundle's config.
    pub fn spec_path(&self) -> PathBuf {
        self.dir.join("config.json")
    }
}
