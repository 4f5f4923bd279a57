//! `berth shim DIR`: one per container, freshly exec'd and single-threaded, so cloning the
//! container is safe. It runs in a session of its own, creates the cgroup, clones the container init
//! into new namespaces, reports success or the init's failure to whoever started it, then
//! stays the container's parent: it pumps stdout/stderr into the log, answers the control
//! socket (status, kill, stop, wait), and records the exit status (OOM included).
//!
//! One file per job: `setup` reads and prepares what the start needs (spec, signals,
//! capabilities, seccomp, control socket, state), `stdio` wires the container's
//! stdin/stdout/stderr and moves bytes between them, the log and attached clients,
//! `clients` answers the control socket, `spawn` creates the container process and hands
//! it to its cgroup, and `events` is the loop that serves the container until it exits.

mod clients;
mod events;
mod setup;
mod spawn;
mod stdio;

use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use nix::sys::signalfd::SignalFd;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::capabilities;
use super::cgroups::{Cgroup, CgroupError};
use super::init::chain;
use super::logs::{LogError, LogWriter};
use super::oci_runtime::OciRuntime;
use super::record::{Record, RecordError};
use super::seccomp;
use super::state::{State, StateError, Status};
use clients::Attached;
use stdio::{Output, Stdio};

/// Env var naming the fd on which the shim reports the start result to its starter.
pub const SYNC_FD_ENV: &str = "BERTH_SHIM_SYNC_FD";
/// When set to 1, the shim keeps the sync fd and also reports the exit on it: a foreground
/// `run` learns the status without racing `--rm` or the control socket's removal.
pub const SYNC_EXIT_ENV: &str = "BERTH_SHIM_SYNC_EXIT";
/// When set (`FD,STDIN`, e.g. `4,1`), FD is the shim's end of a socket pair whose other end
/// the starter keeps: a client attached before the container starts, whose input goes to the
/// container's stdin when STDIN is 1.
pub const ATTACH_ENV: &str = "BERTH_SHIM_ATTACH";
/// The cgroup v1 hierarchies as the starter knows them ([`super::cgroups::export_v1_hierarchies`]),
/// for the shim and the exec helper.
pub const CGROUP_V1_ENV: &str = "BERTH_SHIM_CGROUP_V1";

/// Errors of the shim before the container runs; they are reported to the starter.
#[derive(Debug, thiserror::Error)]
pub enum ShimError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("reading the runtime spec {path}")]
    Spec {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("compiling the container's seccomp profile")]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("reading the container's capabilities")]
    Caps(#[from] capabilities::CapError),
    #[error("{what}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    #[error("binding the control socket {path}")]
    Socket {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the container failed to start: {message}")]
    Init { code: i32, message: String },
}

impl ShimError {
    /// Docker's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ShimError::Init { code, .. } => *code,
            _ => 125,
        }
    }
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> ShimError {
    move |source| ShimError::Sys { what, source }
}

/// What the shim tells its starter on the sync fd.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartReport {
    Started { pid: i32, shim_pid: i32 },
    Failed { code: i32, message: String },
    Exited { exit_code: i32, oom_killed: bool },
}

/// Writes one JSON line (the starter reads line by line).
fn report(fd: Option<&OwnedFd>, r: &StartReport) {
    if let (Some(fd), Ok(mut data)) = (fd, serde_json::to_vec(r)) {
        data.push(b'\n');
        let _ = nix::unistd::write(fd, &data);
    }
}

/// The shim's `main`: returns the process exit code.
pub fn main(dir: &Path) -> i32 {
    let sync: Option<OwnedFd> = std::env::var(SYNC_FD_ENV)
        .ok()
        .and_then(|v| v.parse::<RawFd>().ok())
        // SAFETY: the starter passed us this fd for exactly this purpose.
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) });
    // The starter reads the report until EOF: the container must not inherit the write end,
    // or a long-running container keeps the starter waiting forever.
    if let Some(fd) = &sync {
        let _ = nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
    }
    // Detach: [`super::Runtime`] starts the shim in a session of its own (posix_spawn with
    // POSIX_SPAWN_SETSID) and reaps it when it ends. Started any other way, the shim forks
    // once and the child, in a new session, lives on.
    let pid = nix::unistd::getpid();
    if nix::unistd::getsid(None).ok() != Some(pid) {
        // SAFETY: the shim is single-threaded here (freshly exec'd, nothing spawned yet).
        match unsafe { nix::unistd::fork() } {
            Ok(nix::unistd::ForkResult::Parent { .. }) => return 0,
            Ok(nix::unistd::ForkResult::Child) => {}
            Err(e) => {
                report(
                    sync.as_ref(),
                    &StartReport::Failed {
                        code: 125,
                        message: format!("forking the shim: {e}"),
                    },
                );
                return 125;
            }
        }
        let _ = nix::unistd::setsid();
    }
    redirect_stdio(dir);
    let sync_raw = sync.as_ref().map(|f| f.as_raw_fd());
    let keep_sync = std::env::var(SYNC_EXIT_ENV).as_deref() == Ok("1");
    let attach = std::env::var(ATTACH_ENV).ok().and_then(|v| attach_fd(&v));
    if let Ok(v) = std::env::var(CGROUP_V1_ENV) {
        super::cgroups::seed_v1_hierarchies(&v);
    }
    let mut shim = match Shim::start(dir, sync_raw, attach) {
        Ok(s) => s,
        Err(e) => {
            // Undone before anything that writes (state, log), which a full disk may refuse:
            // the starter hears of the failure only once nothing of the container is left.
            cleanup_failed(dir);
            record_failure(dir, &e);
            report(
                sync.as_ref(),
                &StartReport::Failed {
                    code: e.exit_code(),
                    message: chain(&e),
                },
            );
            tracing::warn!(error = %chain(&e), "container start failed");
            return e.exit_code();
        }
    };
    report(
        sync.as_ref(),
        &StartReport::Started {
            pid: shim.pid.as_raw(),
            shim_pid: std::process::id() as i32,
        },
    );
    // The start (spec, seccomp program, mounts) is what used the heap; the shim lives as long
    // as its container, so hand the freed memory back to the kernel now.
    // SAFETY: malloc_trim only releases free memory of this process's allocator.
    unsafe { libc::malloc_trim(0) };
    if keep_sync {
        shim.exit_report = sync;
    } else {
        drop(sync);
    }
    shim.run();
    0
}

/// The client attached with the start, from [`ATTACH_ENV`]'s `FD,STDIN`; its fd is made
/// close-on-exec, so that the container does not inherit it.
fn attach_fd(v: &str) -> Option<(UnixStream, bool)> {
    let (fd, stdin) = v.split_once(',')?;
    let fd: RawFd = fd.parse().ok()?;
    // SAFETY: the starter passed us this fd, one end of a socket pair, for exactly this.
    let s = unsafe { UnixStream::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &s,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Some((s, stdin == "1"))
}

fn redirect_stdio(dir: &Path) {
    let null = fs::File::open("/dev/null").ok();
    let log = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("shim.log"))
        .ok();
    // SAFETY: dup2 onto our own 0/1/2.
    unsafe {
        if let Some(n) = &null {
            libc::dup2(n.as_raw_fd(), 0);
        }
        if let Some(l) = &log {
            libc::dup2(l.as_raw_fd(), 1);
            libc::dup2(l.as_raw_fd(), 2);
        }
    }
}

fn record_failure(dir: &Path, e: &ShimError) {
    let Ok(rec) = Record::load(dir) else { return };
    if let Ok(mut st) = State::load(&rec.state_path()) {
        st.status = Status::Exited;
        st.pid = 0;
        st.shim_pid = 0;
        st.exit_code = Some(e.exit_code());
        st.error = Some(chain(e));
        st.finished_at = Some(SystemTime::now());
        let _ = st.save_exit(&rec.state_path());
    }
}

/// Removes what a failed start may have left: socket, cgroup.
fn cleanup_failed(dir: &Path) {
    if let Ok(rec) = Record::load(dir) {
        let _ = fs::remove_file(rec.socket());
        if let Ok(cg) = Cgroup::locate(&rec.cgroup) {
            let _ = cg.remove();
        }
    }
}

/// The container's parent for its whole life: what the event loop serves.
struct Shim {
    rec: Record,
    state: State,
    pid: Pid,
    /// The external runtime whose record of the container goes at the exit.
    external: Option<OciRuntime>,
    cgroup: Cgroup,
    log: LogWriter,
    outputs: Vec<(Output, Vec<u8>)>,
    /// Write end of a `-i` container's stdin pipe (no tty); closed when the attached
    /// client's input ends.
    stdin_w: Option<OwnedFd>,
    /// Clients receiving the output live (`attach`, foreground `run -i/-t`).
    attached: Vec<Attached>,
    listener: UnixListener,
    sigfd: SignalFd,
    waiters: Vec<UnixStream>,
    stop_deadline: Option<Instant>,
    exit: Option<(i32, Option<i32>)>,
    /// The starter's pipe, when it asked to hear about the exit too.
    exit_report: Option<OwnedFd>,
    /// The container's mount namespace, held so that its teardown happens when the shim
    /// drops it rather than in the init's exit (see `events::finish`).
    mnt_ns: Option<OwnedFd>,
}

/// A close-on-exec pipe: (read end, write end).
fn pipe() -> Result<(OwnedFd, OwnedFd), ShimError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("creating a pipe"))
}

impl Shim {
    /// Everything up to the container running in its cgroup, recorded as running; an error
    /// here is the starter's to hear about (nothing of the container is left running).
    fn start(
        dir: &Path,
        sync_fd: Option<RawFd>,
        attach: Option<(UnixStream, bool)>,
    ) -> Result<Shim, ShimError> {
        let rec = Record::load(dir)?;
        let mut state = State::load(&rec.state_path())?;
        let spec = setup::read_spec(&rec.spec_path())?;
        let sigfd = setup::signal_fd()?;
        let mut caps = setup::capabilities(&spec)?;
        let filters = setup::seccomp_filters(&spec)?;
        let cfg = &rec.config;
        let log = LogWriter::open(&rec.log_path(), cfg.log_max_size, cfg.log_max_files)?;
        let listener = setup::control_socket(&rec)?;
        // A foreground `run -i/-t` attaches before the container runs, so no output is lost.
        let attached: Vec<Attached> = attach
            .map(|(s, stdin)| clients::preattached(s, stdin, cfg.tty))
            .into_iter()
            .collect();
        // Only located here: its directories are made after the clone, while the container
        // sets up its root (a dozen mkdirs and limit writes on cgroup v1).
        let cgroup = Cgroup::locate(&rec.cgroup)?;
        setup::drop_mknod_without_device_filter(&spec, &cgroup, &mut caps, &rec.id);
        let external = setup::external_runtime(cfg)?;
        let mut stdio = Stdio::open(&rec, external.is_some())?;
        let (pid, mnt_ns) = spawn::container(
            &spawn::Launch {
                rec: &rec,
                spec: &spec,
                caps: &caps,
                seccomp: &filters,
                cgroup: &cgroup,
                external,
                shim_fds: [listener.as_raw_fd(), sigfd.as_fd().as_raw_fd()],
                sync_fd,
            },
            &mut stdio,
        )?;
        // A container nobody can find as running (its state unwritten: a full disk) would be
        // unsupervised to all but this shim: the start fails and takes the container down.
        if let Err(e) = setup::record_running(&mut state, &rec, pid) {
            spawn::undo(pid, &cgroup, external, &rec);
            return Err(e);
        }
        tracing::info!(id = %rec.id, pid = pid.as_raw(), "container started");
        Ok(Shim {
            rec,
            state,
            pid,
            external,
            cgroup,
            log,
            outputs: stdio.outputs,
            stdin_w: stdio.stdin_w,
            attached,
            listener,
            sigfd,
            waiters: Vec::new(),
            stop_deadline: None,
            exit: None,
            exit_report: None,
            mnt_ns,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::os::fd::IntoRawFd;

    #[test]
    fn the_attached_client_comes_from_its_fd_close_on_exec_with_its_stdin_flag() {
        let (mut ours, theirs) = UnixStream::pair().expect("socket pair");
        let fd = theirs.into_raw_fd();
        let (mut s, stdin) = attach_fd(&format!("{fd},1")).expect("an attached client");
        assert!(stdin);
        let flags = nix::fcntl::fcntl(&s, nix::fcntl::FcntlArg::F_GETFD).expect("F_GETFD");
        assert_ne!(
            flags & libc::FD_CLOEXEC,
            0,
            "the container must not inherit it"
        );
        s.write_all(b"out").expect("write");
        let mut got = [0u8; 3];
        ours.read_exact(&mut got).expect("read");
        assert_eq!(&got, b"out");
        drop(s);
        let (pair, _) = UnixStream::pair().expect("socket pair");
        let fd = pair.into_raw_fd();
        let (_s, stdin) = attach_fd(&format!("{fd},0")).expect("an attached client");
        assert!(!stdin);
    }

    #[test]
    fn a_malformed_attach_value_attaches_nobody() {
        assert!(attach_fd("").is_none());
        assert!(attach_fd("4").is_none());
        assert!(attach_fd("x,1").is_none());
    }
}
