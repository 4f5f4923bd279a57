//! What the daemon and its DNS keeper exchange, as files in the keeper's directory
//! (`<run>/dns`, mode 0700, files 0600):
//!
//! - `records.json` ([`RecordsFile`]): every network's scope, listen addresses and endpoints.
//!   Written by the daemon only, always whole: a temporary file renamed over the old one, so
//!   a reader sees one generation or the next, never a torn file.
//! - `keeper.json` ([`KeeperStatus`]): written the same way by the keeper after each load: the
//!   generation it serves, what it listens on (with socket inodes, which the daemon exempts
//!   from its host-port check) and what it could not bind.
//! - `BERTH_DNS_FDS` (environment of a new keeper): descriptor numbers of sockets the daemon
//!   kept from the previous keeper, to serve on instead of binding new ones.
//! - `keeper.lock`: a POSIX record lock the keeper holds for its whole life. Only one keeper
//!   runs per directory, and `F_GETLK` tells anyone which process that is.

use std::io::Read;
use std::net::SocketAddr;
use std::os::fd::AsFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::records::{Endpoint, NetworkScope};

/// The records, written by the daemon.
pub const RECORDS: &str = "records.json";
/// The keeper's report, written by the keeper.
pub const STATUS: &str = "keeper.json";
/// Held by the running keeper.
pub const LOCK: &str = "keeper.lock";
/// Largest file read (a table of 10,000 endpoints is about 3 MB).
const MAX_BYTES: u64 = 64 << 20;

/// Errors of reading and writing the exchanged files; each names its path.
#[derive(Debug, thiserror::Error)]
pub enum HandoffError {
    /// A file or the directory could not be read, written or created.
    #[error("dns keeper: cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A file larger than any table berth writes.
    #[error("dns keeper: {path} is larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A file that is not what its writer writes.
    #[error("dns keeper: cannot parse {path}")]
    Parse {
        /// The path.
        path: PathBuf,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// One network as the keeper serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PublishedNetwork {
    /// Who its clients are.
    pub scope: NetworkScope,
    /// Where its servers listen (the gateways, port 53).
    pub listen: Vec<SocketAddr>,
    /// Its containers' names and addresses.
    pub endpoints: Vec<Endpoint>,
}

/// `records.json`: the whole table, one generation of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RecordsFile {
    /// Grows with every write, across daemon restarts.
    pub generation: u64,
    /// Names the journal of later generations (`records.<journal>.log`, `dns/journal.rs`).
    #[serde(default)]
    pub journal: u64,
    /// Grows when netd saw the host's network change: the keeper re-reads resolv.conf and
    /// forgets which upstreams failed.
    pub host_epoch: u64,
    /// The networks, in id order.
    pub networks: Vec<PublishedNetwork>,
}

/// A server the keeper runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Listening {
    /// Its network.
    pub network: String,
    /// Its address.
    pub addr: SocketAddr,
    /// The inodes of its sockets (UDP, and TCP when bound).
    pub inodes: Vec<u64>,
    /// The same sockets' descriptor numbers in the keeper (for pidfd_getfd).
    #[serde(default)]
    pub fds: Vec<i32>,
}

/// A server the keeper could not start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct BindFailure {
    /// Its network.
    pub network: String,
    /// Its address.
    pub addr: SocketAddr,
    /// Why, as the keeper logged it.
    pub error: String,
}

/// `keeper.json`: what the keeper serves now.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct KeeperStatus {
    /// The keeper's process id.
    pub pid: u32,
    /// The generation of `records.json` it serves.
    pub generation: u64,
    /// Its servers.
    pub listening: Vec<Listening>,
    /// Servers it could not start.
    pub failed: Vec<BindFailure>,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> HandoffError {
    let path = path.to_path_buf();
    move |source| HandoffError::Io { op, path, source }
}

/// Creates the directory (mode 0700) if needed.
pub fn prepare_dir(dir: &Path) -> Result<(), HandoffError> {
    std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io_err("set the mode of", dir))
}

/// Writes `value` as `dir/name` through a temporary file and a rename; returns its size.
pub fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> Result<u64, HandoffError> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let bytes = serde_json::to_vec(value).map_err(|source| HandoffError::Parse {
        path: path.clone(),
        source,
    })?;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io_err("create", &tmp))?;
    std::io::Write::write_all(&mut f, &bytes).map_err(io_err("write", &tmp))?;
    drop(f);
    std::fs::rename(&tmp, &path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("rename into place", &path)(e)
    })?;
    Ok(bytes.len() as u64)
}

/// Reads `dir/name`; `None` when it does not exist.
pub fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, HandoffError> {
    let path = dir.join(name);
    let f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", &path)(e)),
    };
    parse_limited(f, &path).map(Some)
}

/// Reads and parses an open file of at most [`MAX_BYTES`].
pub fn parse_limited<T: DeserializeOwned>(
    f: std::fs::File,
    path: &Path,
) -> Result<T, HandoffError> {
    let path = path.to_path_buf();
    let mut bytes = Vec::new();
    f.take(MAX_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", &path))?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(HandoffError::TooLarge {
            path,
            limit: MAX_BYTES,
        });
    }
    serde_json::from_slice(&bytes).map_err(|source| HandoffError::Parse { path, source })
}

/// Opens (creating) the lock file.
pub fn open_lock(dir: &Path) -> Result<std::fs::File, HandoffError> {
    let path = dir.join(LOCK);
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(&path)
        .map_err(io_err("open", &path))
}

fn whole_file_lock(kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is a plain C struct; all-zero is a valid value that we then fill in.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl
}

/// Takes the keeper's lock without waiting; `false` when another process holds it.
pub fn try_lock(file: &std::fs::File) -> bool {
    let fl = whole_file_lock(libc::F_WRLCK);
    nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_SETLK(&fl)).is_ok()
}

/// The process holding the keeper's lock, if any (as seen from this PID namespace).
pub fn lock_holder(file: &std::fs::File) -> Option<i32> {
    let mut fl = whole_file_lock(libc::F_WRLCK);
    nix::fcntl::fcntl(file.as_fd(), nix::fcntl::FcntlArg::F_GETLK(&mut fl)).ok()?;
    (fl.l_type != libc::F_UNLCK as libc::c_short && fl.l_pid > 0).then_some(fl.l_pid)
}

/// The environment variable that lists handed-over sockets.
pub const FDS_ENV: &str = "BERTH_DNS_FDS";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_bad_ones_name_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("dns");
        prepare_dir(&d).unwrap();
        assert!(read_json::<RecordsFile>(&d, RECORDS).unwrap().is_none());
        let file = RecordsFile {
            generation: 7,
            journal: 0,
            host_epoch: 1,
            networks: vec![PublishedNetwork {
                scope: NetworkScope {
                    id: "p_default".into(),
                    subnets: vec!["10.9.0.0/24".parse().unwrap()],
                    internal: false,
                },
                listen: vec!["10.9.0.1:53".parse().unwrap()],
                endpoints: vec![Endpoint {
                    id: "c1".into(),
                    container: "c1".into(),
                    addresses: vec!["10.9.0.2".parse().unwrap()],
                    names: vec!["p-db-1".into(), "db".into()],
                    ..Default::default()
                }],
            }],
        };
        write_json(&d, RECORDS, &file).unwrap();
        assert_eq!(read_json::<RecordsFile>(&d, RECORDS).unwrap(), Some(file));
        let mode = std::fs::metadata(d.join(RECORDS))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::write(d.join(RECORDS), b"{\"networks\": [{\"scope\": 3}]}").unwrap();
        let err = read_json::<RecordsFile>(&d, RECORDS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("records.json"), "{err}");
    }

    #[test]
    fn the_lock_is_free_until_taken() {
        let dir = tempfile::tempdir().unwrap();
        let f = open_lock(dir.path()).unwrap();
        assert_eq!(lock_holder(&f), None);
        assert!(try_lock(&f));
        // A POSIX lock is per process: its holder sees no other holder (the keeper's
        // holder as seen by the daemon is checked end to end in orchestrator/tests).
        assert_eq!(lock_holder(&f), None);
    }
}
