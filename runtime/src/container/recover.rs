//! What a crash leaves behind, found and settled: containers whose creation never finished
//! (the creator was killed between laying out the bundle and wiring the network), and
//! containers whose shim died (killed) while their processes ran on, orphaned.
//!
//! A creation is marked by a `creating` file in the container dir, written right after the
//! dir and removed last by whoever finishes the creation (the runtime for a plain create, the
//! engine once the container is attached and named). The file names the creator (pid and
//! process start time, so a recycled pid does not pass for it): a marker whose creator is gone
//! belongs to a half-made container.

use std::fs;
use std::io;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use nix::fcntl::{Flock, FlockArg};

use super::cgroups::Cgroup;
use super::names::Names;
use super::record::Record;
use super::state::{State, Status};
use super::{Runtime, namespaces, oci_runtime, remove_files, volumes};

/// The marker of a creation in progress, in the container dir.
pub const CREATING: &str = "creating";

/// Prefix of a container dir being removed (renamed aside, then deleted).
pub(crate) const REMOVING: &str = ".removing-";

/// Prefix of a container dir being made: `.new-PID-START-ID`, renamed to `ID` once its marker
/// is inside, so that a container dir never exists without its marker. The name carries the
/// creator, so that one whose creator died is told from one still being made.
const STAGING: &str = ".new-";

/// Exit code recorded for a container whose shim died: its processes were killed (SIGKILL).
pub const SHIM_DIED_CODE: i32 = 137;

/// A dir without a record nor a marker is only taken for debris once this old: a creator
/// that was not killed writes its marker microseconds after the dir.
const BARE_DIR_GRACE: Duration = Duration::from_secs(60);

/// How far a container's creation got, as its marker tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Creation {
    /// No marker: finished.
    Done,
    /// A live process is creating it; `own` when that process is this one.
    InProgress { own: bool },
    /// The creator died before finishing.
    Abandoned,
}

/// A container that a crash left half-made: its id, its dir and its record if that was
/// written.
#[derive(Debug, Clone)]
pub struct HalfMade {
    pub id: String,
    pub dir: PathBuf,
    pub record: Option<Record>,
}

/// The start time of `pid` in clock ticks since boot (field 22 of its stat), if it lives.
fn start_time(pid: i32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if matches!(state, "Z" | "X" | "x") {
        return None;
    }
    // `rest` starts at field 3 (state); the start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// What this process writes into a marker.
fn creator_line() -> String {
    let pid = std::process::id() as i32;
    format!("{pid} {}\n", start_time(pid).unwrap_or(0))
}

/// Writes the marker into a freshly made container dir.
pub(crate) fn mark_creating(dir: &Path) -> io::Result<()> {
    crate::modes::write_file(
        &dir.join(CREATING),
        creator_line().as_bytes(),
        crate::modes::PRIVATE_FILE,
    )
}

/// Makes the container dir `dir` with its marker already inside (made aside under a name
/// that names this process, then renamed into place), so that a creator killed at any point
/// leaves either a staging dir that [`Runtime::repair_index`] removes or a marked dir that
/// [`Runtime::half_made`] finds at once.
pub(crate) fn make_marked_dir(dir: &Path) -> io::Result<()> {
    let (Some(parent), Some(id)) = (dir.parent(), dir.file_name()) else {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    };
    let pid = std::process::id() as i32;
    let staging = parent.join(format!(
        "{STAGING}{pid}-{}-{}",
        start_time(pid).unwrap_or(0),
        id.to_string_lossy()
    ));
    let made = crate::modes::mkdir(&staging, crate::modes::PRIVATE_DIR)
        .and_then(|_| mark_creating(&staging))
        .and_then(|()| fs::rename(&staging, dir));
    if made.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    made
}

/// Whether a staging dir's creator (named in its file name) is gone.
fn staging_abandoned(name: &str) -> bool {
    let Some(rest) = name.strip_prefix(STAGING) else {
        return false;
    };
    let mut it = rest.splitn(3, '-');
    let pid: Option<i32> = it.next().and_then(|p| p.parse().ok());
    let started: Option<u64> = it.next().and_then(|s| s.parse().ok());
    match (pid, started) {
        (Some(pid), Some(started)) if pid > 0 => start_time(pid) != Some(started),
        _ => true,
    }
}

/// Reads a container dir's marker.
pub fn creation(dir: &Path) -> Creation {
    let Ok(line) = fs::read_to_string(dir.join(CREATING)) else {
        return Creation::Done;
    };
    let mut it = line.split_whitespace();
    let pid: Option<i32> = it.next().and_then(|p| p.parse().ok());
    let started: Option<u64> = it.next().and_then(|s| s.parse().ok());
    match (pid, started) {
        (Some(pid), Some(started)) if pid > 0 && start_time(pid) == Some(started) => {
            Creation::InProgress {
                own: pid == std::process::id() as i32,
            }
        }
        _ => Creation::Abandoned,
    }
}

/// Whether the container in `dir` (`<root>/containers/<id>`) is recorded as running by a shim
/// that is gone: the one case where reading its state ([`Runtime::state`]) settles something.
/// Reads only its state file and the shim's `/proc` entry, not its record, so a sweep over
/// every container stays cheap.
pub fn shim_gone(dir: &Path) -> bool {
    State::load(&dir.join("state.json"))
        .is_ok_and(|st| st.status == Status::Running && !is_shim_of(st.shim_pid, dir))
}

/// A container's shim as seen alive once (its pid and start time), so that a poller can ask
/// again whether it lives from its `/proc` stat alone, without reading the container's state
/// and the shim's command line each time; a recycled pid has another start time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LiveShim {
    pid: i32,
    start: u64,
}

impl LiveShim {
    /// Whether the shim still lives (not a zombie, same start time).
    pub fn lives(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }
}

/// What a container's `state.json` and its shim's `/proc` entry say now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShimLook {
    /// Not running by its state (or no state to read).
    NotRunning,
    /// Running, and its shim lives.
    Lives(LiveShim),
    /// Running by its state, but its shim is gone: to be settled (`Runtime::state`).
    Gone,
}

/// Looks at the shim of the container in `dir` (as [`shim_gone`], and keeps what a later
/// [`LiveShim::lives`] needs).
pub fn look_at_shim(dir: &Path) -> ShimLook {
    let Ok(st) = State::load(&dir.join("state.json")) else {
        return ShimLook::NotRunning;
    };
    if st.status != Status::Running {
        return ShimLook::NotRunning;
    }
    match start_time(st.shim_pid) {
        Some(start) if is_shim_of(st.shim_pid, dir) => ShimLook::Lives(LiveShim {
            pid: st.shim_pid,
            start,
        }),
        _ => ShimLook::Gone,
    }
}

/// Whether `pid` is the shim of the container in `dir` (alive, not a zombie, and running
/// `shim DIR`), so that a recycled pid never passes for a dead shim.
pub(crate) fn is_shim_of(pid: i32, dir: &Path) -> bool {
    if pid <= 0 || start_time(pid).is_none() {
        return false;
    }
    let Ok(cmdline) = fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let mut args = cmdline.split(|b| *b == 0);
    args.any(|a| a == b"shim") && args.any(|a| a == dir.as_os_str().as_encoded_bytes())
}

impl Runtime {
    /// Ends the creation of a container made with [`Runtime::create_pending`]: from here on
    /// it is whole.
    pub fn finish_create(&self, rec: &Record) -> Result<(), super::RuntimeError> {
        let p = rec.dir.join(CREATING);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(super::RuntimeError::Io {
                what: "removing the creation marker",
                path: p,
                source,
            }),
        }
    }

    /// Containers whose creator died before finishing them, and dirs that never got as far
    /// as a marker or a record (older than a minute). Never one that a live process is
    /// still creating.
    pub fn half_made(&self) -> Vec<HalfMade> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.containers_dir()) else {
            return out;
        };
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            let dir = e.path();
            if id.len() != 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) || !dir.is_dir() {
                continue;
            }
            let record = Record::load(&dir).ok();
            let broken = match creation(&dir) {
                Creation::Abandoned => true,
                Creation::InProgress { .. } => false,
                // A record without state (made before markers existed) or a bare dir.
                Creation::Done => {
                    let stateless = record
                        .as_ref()
                        .is_none_or(|r| State::load(&r.state_path()).is_err());
                    let old = e
                        .metadata()
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok())
                        .is_some_and(|age| age > BARE_DIR_GRACE);
                    stateless && old
                }
            };
            if broken {
                out.push(HalfMade { id, dir, record });
            }
        }
        out
    }

    /// Removes what a half-made container left: its processes and cgroup (if it got that
    /// far), netns pin, run dir, dir, name and anonymous volumes. Network endpoints are the
    /// caller's (netd sweeps those whose namespace and dir are gone).
    pub fn discard(&self, h: &HalfMade) {
        match &h.record {
            Some(rec) => {
                if let Ok(cg) = Cgroup::locate(&rec.cgroup) {
                    let _ = cg.remove();
                }
                remove_files(rec);
                volumes::remove_anonymous(rec);
            }
            None => {
                let short = &h.id[..12];
                namespaces::unpin_netns(&self.cfg.run.join("netns").join(short));
                let _ = fs::remove_dir_all(self.cfg.run.join("c").join(short));
                let _ = fs::remove_dir_all(&h.dir);
            }
        }
        self.drop_names_of_missing();
    }

    /// Repairs what a crash cut short around the records: removals renamed aside but not
    /// deleted go, and so do dirs whose creator died while making them aside; name entries
    /// whose container dir is gone are dropped, records whose name has no entry get it back.
    pub fn repair_index(&self) {
        if let Ok(rd) = fs::read_dir(self.containers_dir()) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(REMOVING) || staging_abandoned(&name) {
                    let _ = fs::remove_dir_all(e.path());
                }
            }
        }
        self.drop_names_of_missing();
        let names = self.names();
        for (rec, _) in self.list() {
            if names.lookup(&rec.config.name).is_none() {
                let _ = names.claim(&rec.config.name, &rec.id);
            }
        }
    }

    /// Drops name entries whose container dir does not exist (a claim is only made once the
    /// dir and record exist, so such an entry cannot be a creation in progress).
    fn drop_names_of_missing(&self) {
        let index = self.cfg.root.join("container-names");
        let Ok(rd) = fs::read_dir(&index) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Ok(id) = fs::read_to_string(e.path()) else {
                continue;
            };
            let id = id.trim();
            if id.is_empty() || !self.containers_dir().join(id).exists() {
                Names::new(&self.containers_dir()).release(&name, id);
            }
        }
    }

    /// The state of a container, settled first when it says running but its shim is dead
    /// (see [`Runtime::settle_dead_shim`]).
    pub(crate) fn load_state(&self, rec: &Record) -> Result<State, super::state::StateError> {
        let st = State::load(&rec.state_path())?;
        if st.status == Status::Running && !is_shim_of(st.shim_pid, &rec.dir) {
            return self.settle_dead_shim(rec);
        }
        Ok(st)
    }

    /// A container whose shim died (killed) has nobody to reap it, log its output or record
    /// its exit, and its output pipes are gone: it cannot be re-adopted, so whatever is left
    /// in its cgroup is killed and the exit recorded as a SIGKILL (137, with the reason in
    /// `error`), so that every reader tells the truth and a restart policy can start it
    /// again. Serialised on a lock file, and checked again under it, so that two readers
    /// settle once and a run started since is never touched.
    fn settle_dead_shim(&self, rec: &Record) -> Result<State, super::state::StateError> {
        let lock = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(rec.dir.join("settle.lock"))
            .ok()
            .and_then(|f| Flock::lock(f, FlockArg::LockExclusive).ok());
        let mut st = State::load(&rec.state_path())?;
        if st.status != Status::Running || is_shim_of(st.shim_pid, &rec.dir) {
            return Ok(st);
        }
        // A shim answers on its socket while it lives: one that accepts is not dead.
        match UnixStream::connect(rec.socket()) {
            Ok(_) => return Ok(st),
            Err(e)
                if !matches!(
                    e.kind(),
                    io::ErrorKind::ConnectionRefused | io::ErrorKind::NotFound
                ) =>
            {
                return Ok(st);
            }
            Err(_) => {}
        }
        let mut left = 0;
        if let Ok(cg) = Cgroup::locate(&rec.cgroup) {
            left = cg.pids().len();
            if let Err(err) = cg.remove() {
                tracing::warn!(id = %rec.id, %err, "killing what a dead shim left");
            }
        }
        if let Some(ort) = rec
            .config
            .oci_runtime
            .as_deref()
            .and_then(|r| oci_runtime::OciRuntime::parse(r).ok())
        {
            let _ = ort.delete(&oci_runtime::state_root(&rec.run_dir), &rec.id);
        }
        let _ = fs::remove_file(rec.socket());
        tracing::warn!(
            id = %rec.id,
            shim = st.shim_pid,
            killed = left,
            "the container's shim died; its processes were killed"
        );
        // The container's init dies with its shim (see `init::die_with_parent`); only what
        // outlived it (a process outside the container's PID namespace) is left to kill.
        st.error = Some(if left == 0 {
            format!(
                "the container's shim (pid {}) died, and the container with it",
                st.shim_pid
            )
        } else {
            format!(
                "the container's shim (pid {}) died; the {left} process(es) it left were killed",
                st.shim_pid
            )
        });
        st.status = Status::Exited;
        st.pid = 0;
        st.shim_pid = 0;
        st.exit_code = Some(SHIM_DIED_CODE);
        st.exit_signal = Some(libc::SIGKILL);
        st.finished_at = Some(SystemTime::now());
        if rec.config.auto_remove {
            remove_files(rec);
            volumes::remove_anonymous(rec);
        } else if let Err(err) = st.save_exit(&rec.state_path()) {
            tracing::warn!(id = %rec.id, %err, "recording the exit of a container whose shim died");
        }
        drop(lock);
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_marker_is_in_progress_and_a_dead_or_recycled_creator_is_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(creation(dir.path()), Creation::Done);
        mark_creating(dir.path()).expect("mark");
        assert_eq!(creation(dir.path()), Creation::InProgress { own: true });
        // Our pid with another start time: a recycled pid is not the creator.
        let pid = std::process::id();
        fs::write(dir.path().join(CREATING), format!("{pid} 1\n")).expect("write");
        assert_eq!(creation(dir.path()), Creation::Abandoned);
        fs::write(dir.path().join(CREATING), "garbage").expect("write");
        assert_eq!(creation(dir.path()), Creation::Abandoned);
    }

    #[test]
    fn a_container_dir_appears_with_its_marker_and_a_dead_creators_staging_is_known() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("c0ffee");
        make_marked_dir(&dir).expect("make");
        assert_eq!(creation(&dir), Creation::InProgress { own: true });
        let left: Vec<_> = fs::read_dir(root.path())
            .expect("read")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(left, vec![std::ffi::OsString::from("c0ffee")]);
        // An existing dir is never taken over.
        assert!(make_marked_dir(&dir).is_err());
        let pid = std::process::id();
        let me = start_time(pid as i32).expect("own start time");
        assert!(!staging_abandoned(&format!("{STAGING}{pid}-{me}-c0ffee")));
        assert!(staging_abandoned(&format!("{STAGING}{pid}-1-c0ffee")));
        assert!(staging_abandoned(&format!("{STAGING}garbage")));
        assert!(!staging_abandoned("c0ffee"));
    }

    #[test]
    fn a_shim_is_known_by_its_command_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        // This test process is alive but is no shim.
        assert!(!is_shim_of(std::process::id() as i32, dir.path()));
        assert!(!is_shim_of(0, dir.path()));
        assert!(!is_shim_of(-1, dir.path()));
    }
}
