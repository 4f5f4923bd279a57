//! `berth shim DIR`: one per container, freshly exec'd and single-threaded, so cloning the
//! container is safe. It daemonises (setsid), creates the cgroup, clones the container init
//! into new namespaces, reports success or the init's failure to whoever started it, then
//! stays the container's parent: it pumps stdout/stderr into the log, answers the control
//! socket (status, kill, stop, wait), and records the exit status (OOM included).

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use serde::{Deserialize, Serialize};

use super::capabilities;
use super::cgroups::{Cgroup, CgroupError};
use super::config::RootfsSource;
use super::control::{Request, Response};
use super::init::{self, InitArgs, InitFailure, chain};
use super::logs::{LogError, LogWriter};
use super::oci_runtime::{self, OciRuntime};
use super::record::{Record, RecordError};
use super::rootfs::RootLayout;
use super::seccomp;
use super::state::{State, StateError, Status};

/// Env var naming the fd on which the shim reports the start result to its starter.
pub const SYNC_FD_ENV: &str = "BERTH_SHIM_SYNC_FD";
/// When set to 1, the shim keeps the sync fd and also reports the exit on it: a foreground
/// `run` learns the status without racing `--rm` or the control socket's removal.
pub const SYNC_EXIT_ENV: &str = "BERTH_SHIM_SYNC_EXIT";
/// When set to 1, the shim reports `Listening` and waits (up to 10 s) for one `attach`
/// client before it starts the container.
pub const ATTACH_ENV: &str = "BERTH_SHIM_ATTACH";

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
    Started {
        pid: i32,
        shim_pid: i32,
    },
    Failed {
        code: i32,
        message: String,
    },
    Exited {
        exit_code: i32,
        oom_killed: bool,
    },
    /// The control socket is ready for the attach that precedes the start.
    Listening,
}

/// One attached client.
struct Attached {
    s: UnixStream,
    /// Its input goes to the container's stdin.
    stdin: bool,
    /// Without a tty, output is framed as Docker's: [stream, 0, 0, 0, len u32 BE] + data.
    framed: bool,
}

fn parse_request(s: &UnixStream) -> Option<Request> {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // Read byte by byte up to the newline, so that raw input after it stays in the socket.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match (&*s).read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
        if line.len() > 4096 {
            return None;
        }
    }
    serde_json::from_slice(&line).ok()
}

fn accept_attach(listener: &UnixListener) -> Option<Attached> {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if poll(&mut fds, PollTimeout::from(10_000u16)).ok()? == 0 {
        return None;
    }
    let (s, _) = listener.accept().ok()?;
    match parse_request(&s)? {
        Request::Attach { stdin, tty } => attach_client(s, stdin, tty),
        _ => None,
    }
}

fn attach_client(s: UnixStream, stdin: bool, tty: bool) -> Option<Attached> {
    send_ref(&s, &Response::Ok);
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nonblocking(true);
    Some(Attached {
        s,
        stdin,
        framed: !tty,
    })
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
    // Detach: the starter waits for this first process only; the grandchild lives on.
    // [`super::Runtime`] detaches the shim before exec (one exec of this big binary less per
    // start): a session leader is detached already.
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
    let wait_attach = if std::env::var(ATTACH_ENV).as_deref() == Ok("1") {
        sync.as_ref()
    } else {
        None
    };
    let mut shim = match Shim::start(dir, sync_raw, wait_attach) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %chain(&e), "container start failed");
            record_failure(dir, &e);
            report(
                sync.as_ref(),
                &StartReport::Failed {
                    code: e.exit_code(),
                    message: chain(&e),
                },
            );
            cleanup_failed(dir);
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
        let _ = st.save(&rec.state_path());
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

enum Output {
    Pipe { fd: OwnedFd, stream: &'static str },
}

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
}

fn pipe() -> Result<(OwnedFd, OwnedFd), ShimError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("creating a pipe"))
}

impl Shim {
    fn start(
        dir: &Path,
        sync_fd: Option<RawFd>,
        wait_attach: Option<&OwnedFd>,
    ) -> Result<Shim, ShimError> {
        let rec = Record::load(dir)?;
        let mut state = State::load(&rec.state_path())?;
        let spec_path = rec.spec_path();
        // Read whole, then parsed from the slice: serde_json's reader path costs about twice
        // the instructions of this one, on every container start.
        let spec = fs::read(&spec_path)
            .map_err(oci_spec::OciSpecError::from)
            .and_then(|data| {
                serde_json::from_slice::<Spec>(&data).map_err(oci_spec::OciSpecError::from)
            })
            .map_err(|source| ShimError::Spec {
                path: spec_path.clone(),
                source,
            })?;
        let cfg = &rec.config;

        // Signals arrive through a signalfd; the child unblocks them before exec.
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGCHLD,
            Signal::SIGTERM,
            Signal::SIGINT,
            Signal::SIGHUP,
        ] {
            mask.add(s);
        }
        mask.thread_block().map_err(sys("blocking signals"))?;
        let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(sys("creating a signalfd"))?;

        let mut caps = capabilities::parse(
            &spec
                .process()
                .as_ref()
                .and_then(|p| p.capabilities().as_ref())
                .and_then(|c| c.bounding().as_ref())
                .map(|b| b.iter().map(|c| c.to_string()).collect::<Vec<_>>())
                .unwrap_or_default(),
        )?;
        let filters = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => seccomp::compile(profile)?,
            None => Vec::new(),
        };

        let log = LogWriter::open(&rec.log_path(), cfg.log_max_size, cfg.log_max_files)?;
        let sock = rec.socket();
        fs::create_dir_all(&rec.run_dir).map_err(|source| ShimError::Socket {
            path: rec.run_dir.clone(),
            source,
        })?;
        let _ = fs::remove_file(&sock);
        let listener = UnixListener::bind(&sock).map_err(|source| ShimError::Socket {
            path: sock.clone(),
            source,
        })?;
        listener
            .set_nonblocking(true)
            .map_err(|source| ShimError::Socket {
                path: sock.clone(),
                source,
            })?;

        // A foreground `run -i/-t` attaches before the container runs, so no output is lost.
        let mut attached = Vec::new();
        if let Some(fd) = wait_attach {
            report(Some(fd), &StartReport::Listening);
            if let Some(a) = accept_attach(&listener) {
                attached.push(a);
            }
        }
        // Only located here: its directories are made after the clone, while the container
        // sets up its root (a dozen mkdirs and limit writes on cgroup v1).
        let cgroup = Cgroup::locate(&rec.cgroup)?;
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());

        // cgroup v2 filters devices only with BPF programs, which berth does not load yet: a
        // container that could mknod would reach host disks. Without the v1 devices
        // controller, CAP_MKNOD goes (the standard nodes are made before caps are dropped).
        let restricts_devices = spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.devices().as_ref())
            .is_some_and(|d| !d.is_empty());
        if restricts_devices && matches!(cgroup, Cgroup::V2 { .. }) {
            caps.remove(&caps::Capability::CAP_MKNOD);
            tracing::info!(id = %rec.id, "cgroup v2: no device filter, CAP_MKNOD dropped");
        }

        let external = cfg
            .oci_runtime
            .as_deref()
            .map(OciRuntime::parse)
            .transpose()
            .map_err(|e| ShimError::Init {
                code: 125,
                message: e.to_string(),
            })?;

        // stdio
        let mut child_side: Vec<OwnedFd> = Vec::new();
        let mut outputs = Vec::new();
        let mut stdin_keep = None;
        let console;
        let stdio: [RawFd; 3];
        // An external runtime with a tty: it makes the pty and sends the master here; its own
        // stdio is only for what it says when it fails.
        let mut runtime_err = None;
        let mut console_listener = None;
        if cfg.tty && external.is_some() {
            console = None;
            let null = fs::File::open("/dev/null").map_err(|source| ShimError::Socket {
                path: "/dev/null".into(),
                source,
            })?;
            let (err_r, err_w) = pipe()?;
            set_nonblock(&err_r);
            stdio = [null.as_raw_fd(), err_w.as_raw_fd(), err_w.as_raw_fd()];
            child_side.extend([OwnedFd::from(null), err_w]);
            runtime_err = Some(err_r);
            let path = oci_runtime::console_socket(&rec.run_dir);
            let _ = fs::remove_file(&path);
            console_listener =
                Some(
                    UnixListener::bind(&path).map_err(|source| ShimError::Socket {
                        path: path.clone(),
                        source,
                    })?,
                );
        } else if cfg.tty {
            let pty = nix::pty::openpty(None, None).map_err(sys("opening a pty"))?;
            console = Some(nix::unistd::ttyname(&pty.slave).map_err(sys("naming the pty"))?);
            let fd = pty.slave.as_raw_fd();
            stdio = [fd, fd, fd];
            child_side.push(pty.slave);
            set_nonblock(&pty.master);
            outputs.push((
                Output::Pipe {
                    fd: pty.master,
                    stream: "stdout",
                },
                Vec::new(),
            ));
        } else {
            console = None;
            let (in_r, in_w) = pipe()?;
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            stdio = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
            child_side.extend([in_r, out_w, err_w]);
            if cfg.open_stdin {
                stdin_keep = Some(in_w);
            }
            set_nonblock(&out_r);
            set_nonblock(&err_r);
            outputs.push((
                Output::Pipe {
                    fd: out_r,
                    stream: "stdout",
                },
                Vec::new(),
            ));
            outputs.push((
                Output::Pipe {
                    fd: err_r,
                    stream: "stderr",
                },
                Vec::new(),
            ));
        }

        let (go_r, go_w) = pipe()?;
        let (rep_r, rep_w) = pipe()?;
        let layout = match &cfg.rootfs {
            RootfsSource::Layers(lowers) => RootLayout::Overlay {
                lowers: lowers.clone(),
                upper: "upper".into(),
                work: "work".into(),
                target: "rootfs".into(),
            },
            RootfsSource::Dir(d) => RootLayout::Dir(d.clone()),
        };
        // Short relative overlay paths: the child inherits this cwd.
        nix::unistd::chdir(&rec.dir).map_err(sys("entering the container dir"))?;

        let mut flags = CloneFlags::empty();
        for ns in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().clone())
            .unwrap_or_default()
        {
            if ns.path().is_some() {
                continue;
            }
            flags |= match ns.typ() {
                LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
                LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
                LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
                LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
                LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
                _ => CloneFlags::empty(), // cgroup: unshared by the child after placement
            };
        }
        let mut close = vec![
            go_w.as_raw_fd(),
            rep_r.as_raw_fd(),
            listener.as_raw_fd(),
            sigfd.as_fd().as_raw_fd(),
        ];
        close.extend(
            outputs
                .iter()
                .map(|(Output::Pipe { fd, .. }, _)| fd.as_raw_fd()),
        );
        if let Some(w) = &stdin_keep {
            close.push(w.as_raw_fd());
        }
        // The starter reads its pipe to EOF: the container must not keep it open.
        close.extend(sync_fd);
        let args = InitArgs {
            spec: &spec,
            user: cfg.user.as_deref(),
            layout: &layout,
            volumes: &rec.volumes,
            console,
            stdio,
            close,
            go: go_r.as_raw_fd(),
            report: rep_w.as_raw_fd(),
            caps: &caps,
            seccomp: &filters,
            reaper: cfg.init,
            tty: cfg.tty,
        };
        let pid_file = rec.run_dir.join("oci.pid");
        let pid = match external {
            None => {
                let mut stack = vec![0u8; 1 << 20];
                // SAFETY: the shim is single-threaded; the child runs on its own stack in a
                // copy of our address space and never returns into our frames (init::run
                // ends in exec/_exit).
                unsafe {
                    nix::sched::clone(
                        Box::new(|| init::run(&args)),
                        &mut stack,
                        flags,
                        Some(libc::SIGCHLD),
                    )
                }
                .map_err(sys("cloning the container process"))?
            }
            Some(ort) => {
                let _ = fs::remove_file(&pid_file);
                // The runtime detaches once the container runs: its init is re-parented to
                // the shim, which reaps it (and reads the OOM counter) itself.
                // SAFETY: prctl(2) with integer arguments only.
                if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
                    return Err(sys("becoming a child subreaper")(nix::Error::last()));
                }
                let console_path = oci_runtime::console_socket(&rec.run_dir);
                let argv: Vec<std::ffi::CString> = ort
                    .argv(
                        &oci_runtime::state_root(&rec.run_dir),
                        &rec.dir,
                        &rec.id,
                        &pid_file,
                        console_listener.as_ref().map(|_| console_path.as_path()),
                    )
                    .into_iter()
                    .filter_map(|a| std::ffi::CString::new(a).ok())
                    .collect();
                let child = oci_runtime::ChildArgs {
                    argv,
                    layout: &layout,
                    stdio,
                    go: go_r.as_raw_fd(),
                    report: rep_w.as_raw_fd(),
                    hide_unified_cgroup: ort == oci_runtime::OciRuntime::Crun,
                };
                // SAFETY: the shim is single-threaded; the child only mounts, dup2s and execs.
                match unsafe { nix::unistd::fork() }.map_err(sys("forking the OCI runtime"))? {
                    nix::unistd::ForkResult::Child => oci_runtime::child_main(&child),
                    nix::unistd::ForkResult::Parent { child } => child,
                }
            }
        };
        drop(go_r);
        drop(rep_w);
        drop(child_side);

        // runc places the container in the same (absolute) cgroup path itself and removes it
        // at exit, which it cannot do while its own process sits in it.
        let placed = cgroup.make(&rec.cgroup, resources).and_then(|()| {
            if external == Some(OciRuntime::Runc) {
                Ok(())
            } else {
                cgroup.add_pid(pid.as_raw())
            }
        });
        if let Err(e) = placed {
            // The init sets up its root before it waits for the placement, so it may have
            // failed (and exited) already: its own report is the error that matters then.
            let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
            let _ = cgroup.remove();
            drop(go_w);
            let mut buf = Vec::new();
            let _ = fs::File::from(rep_r).read_to_end(&mut buf);
            if let Ok(f) = serde_json::from_slice::<InitFailure>(&buf) {
                return Err(ShimError::Init {
                    code: f.code,
                    message: f.message,
                });
            }
            return Err(e.into());
        }
        let _ = nix::unistd::write(&go_w, b"1");
        drop(go_w);
        let mut buf = Vec::new();
        let _ = fs::File::from(rep_r).read_to_end(&mut buf);
        if !buf.is_empty() {
            let _ = waitpid(pid, None);
            let _ = cgroup.remove();
            let f: InitFailure = serde_json::from_slice(&buf).unwrap_or(InitFailure {
                code: 125,
                message: String::from_utf8_lossy(&buf).into_owned(),
            });
            return Err(ShimError::Init {
                code: f.code,
                message: f.message,
            });
        }
        // Under an external runtime, the container's init is the runtime's grandchild, re-parented
        // to the shim once the runtime exits: from then on it is what the shim reaps too.
        let pid = match external {
            None => pid,
            Some(ort) => {
                let err_fd = runtime_err
                    .as_ref()
                    .map(|fd| fd.as_raw_fd())
                    .or_else(|| {
                        outputs.iter().find_map(|(Output::Pipe { fd, stream }, _)| {
                            (*stream == "stderr").then(|| fd.as_raw_fd())
                        })
                    })
                    .unwrap_or(-1);
                let state_root = oci_runtime::state_root(&rec.run_dir);
                let started =
                    oci_runtime::wait_started(ort, &pid_file, pid, err_fd).and_then(|init| {
                        match &console_listener {
                            None => Ok(init),
                            Some(l) => match oci_runtime::recv_console(l) {
                                Ok(master) => {
                                    set_nonblock(&master);
                                    outputs.push((
                                        Output::Pipe {
                                            fd: master,
                                            stream: "stdout",
                                        },
                                        Vec::new(),
                                    ));
                                    Ok(init)
                                }
                                Err(message) => {
                                    let _ = nix::sys::signal::kill(init, Signal::SIGKILL);
                                    Err((125, message))
                                }
                            },
                        }
                    });
                if console_listener.take().is_some() {
                    let _ = fs::remove_file(oci_runtime::console_socket(&rec.run_dir));
                }
                match started {
                    Ok(p) => p,
                    Err((code, message)) => {
                        let _ = ort.delete(&state_root, &rec.id);
                        let _ = cgroup.remove();
                        return Err(ShimError::Init { code, message });
                    }
                }
            }
        };

        state.status = Status::Running;
        state.pid = pid.as_raw();
        state.shim_pid = std::process::id() as i32;
        state.started_at = Some(SystemTime::now());
        state.finished_at = None;
        state.exit_code = None;
        state.exit_signal = None;
        state.oom_killed = false;
        state.error = None;
        state.save(&rec.state_path())?;
        tracing::info!(id = %rec.id, pid = pid.as_raw(), "container started");
        Ok(Shim {
            rec,
            state,
            pid,
            external,
            cgroup,
            log,
            outputs,
            stdin_w: stdin_keep,
            attached,
            listener,
            sigfd,
            waiters: Vec::new(),
            stop_deadline: None,
            exit: None,
            exit_report: None,
        })
    }

    fn run(&mut self) {
        while self.exit.is_none() {
            self.step(None);
        }
        // The init is gone, so is its pid namespace: outputs reach EOF soon.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.outputs.is_empty() && Instant::now() < deadline {
            self.step(Some(deadline));
        }
        self.flush_partial();
        self.finish();
    }

    fn step(&mut self, until: Option<Instant>) {
        let wake = [self.stop_deadline, until].into_iter().flatten().min();
        let timeout = match wake {
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::NONE)
            }
            None => PollTimeout::NONE,
        };
        let (sig_ready, lis_ready, out_ready) = {
            let mut fds = vec![
                PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            for (Output::Pipe { fd, .. }, _) in &self.outputs {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let n_out = self.outputs.len();
            for a in &self.attached {
                let ev = if a.stdin {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                };
                fds.push(PollFd::new(a.s.as_fd(), ev));
            }
            if poll(&mut fds, timeout).is_err() {
                return;
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let in_ready: Vec<PollFlags> = fds[2 + n_out..]
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            (
                ready(&fds[0]),
                ready(&fds[1]),
                (
                    fds[2..2 + n_out].iter().map(ready).collect::<Vec<_>>(),
                    in_ready,
                ),
            )
        };
        let (out_ready, in_ready) = out_ready;
        for i in (0..in_ready.len()).rev() {
            let r = in_ready[i];
            if r.contains(PollFlags::POLLIN) && self.attached[i].stdin {
                self.read_input(i);
            }
            // Gone for good (not just a half-close of its input): forget it, or poll would
            // keep reporting the hang-up.
            if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                let a = self.attached.remove(i);
                if a.stdin && !self.rec.config.tty {
                    self.stdin_w = None;
                }
            }
        }
        if let Some(t) = self.stop_deadline
            && Instant::now() >= t
        {
            tracing::info!(id = %self.rec.id, "grace period over, sending SIGKILL");
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            self.stop_deadline = None;
        }
        let mut closed = Vec::new();
        for (i, r) in out_ready.iter().enumerate() {
            if *r && self.read_output(i) {
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            self.flush_one(i);
            self.outputs.remove(i);
        }
        if sig_ready {
            self.handle_signals();
        }
        if lis_ready {
            while let Ok((s, _)) = self.listener.accept() {
                self.handle_client(s);
            }
        }
    }

    /// Reads what is available; true at EOF.
    fn read_output(&mut self, i: usize) -> bool {
        let mut chunk = [0u8; 16384];
        loop {
            let (Output::Pipe { fd, stream }, buf) = &mut self.outputs[i];
            match nix::unistd::read(&*fd, &mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let fresh = buf[buf.len() - n..].to_vec();
                    let stream = *stream;
                    self.forward(stream, &fresh);
                    let (_, buf) = &mut self.outputs[i];
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let _ = self.log.write(stream, &line);
                    }
                    if buf.len() >= 16384 {
                        let data = std::mem::take(buf);
                        let _ = self.log.write(stream, &data);
                    }
                }
                Err(nix::Error::EAGAIN) => return false,
                Err(nix::Error::EINTR) => {}
                // A pty master reads EIO once the slave side is gone.
                Err(_) => return true,
            }
        }
    }

    /// Copies fresh output to every attached client; drops the ones that fail.
    fn forward(&mut self, stream: &str, data: &[u8]) {
        if self.attached.is_empty() {
            return;
        }
        let mut framed = Vec::with_capacity(data.len() + 8);
        framed.push(if stream == "stderr" { 2 } else { 1 });
        framed.extend_from_slice(&[0, 0, 0]);
        framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
        framed.extend_from_slice(data);
        self.attached.retain_mut(|a| {
            let _ = a.s.set_nonblocking(false);
            let bytes = if a.framed { &framed[..] } else { data };
            let ok = a.s.write_all(bytes).is_ok();
            let _ = a.s.set_nonblocking(true);
            ok
        });
    }

    /// Moves an attached client's input to the container's stdin.
    fn read_input(&mut self, i: usize) {
        let mut buf = [0u8; 8192];
        let n = match (&self.attached[i].s).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 {
            // Input ended: a pipe stdin gets EOF; the client keeps receiving output.
            self.attached[i].stdin = false;
            if !self.rec.config.tty {
                self.stdin_w = None;
            }
            return;
        }
        let target = if self.rec.config.tty {
            self.outputs.first().map(|(Output::Pipe { fd, .. }, _)| fd)
        } else {
            self.stdin_w.as_ref()
        };
        if let Some(fd) = target {
            let mut data = &buf[..n];
            while !data.is_empty() {
                match nix::unistd::write(fd, data) {
                    Ok(w) => data = &data[w..],
                    Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => break,
                }
            }
        }
    }

    fn flush_one(&mut self, i: usize) {
        let (Output::Pipe { stream, .. }, buf) = &mut self.outputs[i];
        if !buf.is_empty() {
            let data = std::mem::take(buf);
            let stream = *stream;
            let _ = self.log.write(stream, &data);
        }
    }

    fn flush_partial(&mut self) {
        for i in 0..self.outputs.len() {
            self.flush_one(i);
        }
    }

    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                loop {
                    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(p, code)) if p == self.pid => {
                            self.exit = Some((code, None));
                        }
                        Ok(WaitStatus::Signaled(p, s, _)) if p == self.pid => {
                            self.exit = Some((128 + s as i32, Some(s as i32)));
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            } else if let Ok(s) = Signal::try_from(sig) {
                // The shim was asked to stop: pass it on to the container.
                let _ = nix::sys::signal::kill(self.pid, s);
            }
        }
    }

    fn handle_client(&mut self, s: UnixStream) {
        let resp = match parse_request(&s) {
            None => Response::Error {
                message: "bad request".into(),
            },
            Some(Request::Attach { stdin, tty }) => {
                if self.exit.is_none()
                    && let Some(a) = attach_client(s, stdin, tty)
                {
                    self.attached.push(a);
                }
                return;
            }
            Some(Request::Resize { rows, cols }) => self.resize(rows, cols),
            Some(Request::Status) => Response::State {
                state: Box::new(self.state.clone()),
            },
            Some(Request::Kill { signal }) => self.signal(signal),
            Some(Request::Stop { signal, timeout }) => {
                let r = self.signal(signal);
                if r == Response::Ok {
                    self.stop_deadline = Some(Instant::now() + Duration::from_secs(timeout));
                }
                r
            }
            Some(Request::Wait) => {
                self.waiters.push(s);
                return;
            }
        };
        send(s, &resp);
    }

    fn resize(&self, rows: u16, cols: u16) -> Response {
        let Some((Output::Pipe { fd, .. }, _)) =
            self.outputs.first().filter(|_| self.rec.config.tty)
        else {
            return Response::Error {
                message: "the container has no tty".into(),
            };
        };
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the struct we own.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        Response::Ok
    }

    fn signal(&self, sig: i32) -> Response {
        match Signal::try_from(sig) {
            Ok(s) => match nix::sys::signal::kill(self.pid, s) {
                Ok(()) => Response::Ok,
                Err(e) => Response::Error {
                    message: format!("sending {s} to the container: {e}"),
                },
            },
            Err(_) => Response::Error {
                message: format!("unknown signal {sig}"),
            },
        }
    }

    fn finish(&mut self) {
        let (code, sig) = self.exit.unwrap_or((255, None));
        let oom = self.cgroup.oom_killed();
        let code = if oom && sig == Some(libc::SIGKILL) {
            137
        } else {
            code
        };
        let auto_remove = self.rec.config.auto_remove;
        // The external runtime's record (runc: and its cgroup dirs) goes once the OOM counter
        // is read, before anyone hears of the exit: the same id may run again at once.
        if let Some(ort) = self.external
            && let Err(e) = ort.delete(&oci_runtime::state_root(&self.rec.run_dir), &self.rec.id)
        {
            tracing::warn!(error = %e, "deleting the container from the runtime");
        }
        // A container that may start again (restart policy, `start`) gets a fresh cgroup at
        // the same path: this one must be gone before the exit is known, or a later removal
        // here would find (and kill) the next run's processes.
        if !auto_remove && let Err(e) = self.cgroup.remove() {
            tracing::warn!(error = %chain(&e), "removing the container cgroup");
        }
        self.state.status = Status::Exited;
        self.state.pid = 0;
        self.state.shim_pid = 0;
        self.state.exit_code = Some(code);
        self.state.exit_signal = sig;
        self.state.oom_killed = oom;
        self.state.finished_at = Some(SystemTime::now());
        if !auto_remove {
            let _ = self.state.save(&self.rec.state_path());
        }
        // No new clients from here on; serve those already queued (their `wait` is answered
        // below with everyone else's).
        let _ = fs::remove_file(self.rec.socket());
        while let Ok((s, _)) = self.listener.accept() {
            self.handle_client(s);
        }
        tracing::info!(id = %self.rec.id, code, oom, "container exited");
        // `--rm`: the container (name, files, anonymous volumes) is gone before anyone hears
        // of the exit, so a waiter never sees it (a reader that opened the log keeps its
        // file handle); only the kernel-side teardown waits until after the report.
        if auto_remove {
            super::remove_record(&self.rec);
            super::volumes::remove_anonymous(&self.rec);
        }
        let resp = Response::Exited {
            exit_code: code,
            oom_killed: oom,
        };
        for w in self.waiters.drain(..) {
            send(w, &resp);
        }
        report(
            self.exit_report.take().as_ref(),
            &StartReport::Exited {
                exit_code: code,
                oom_killed: oom,
            },
        );
        // The rest of `--rm` after the report: unmounting the netns pin waits for an RCU
        // grace period and the cgroup rmdirs take one call per v1 hierarchy, ~1-5 ms that a
        // foreground `run --rm` no longer waits for. Nothing can reuse either: the id is gone.
        if auto_remove {
            if let Err(e) = self.cgroup.remove() {
                tracing::warn!(error = %chain(&e), "removing the container cgroup");
            }
            if let Some(ns) = &self.rec.netns {
                super::namespaces::unpin_netns(ns);
            }
        }
    }
}

fn set_nonblock(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(bits) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(bits) | OFlag::O_NONBLOCK),
        );
    }
}

fn send(s: UnixStream, resp: &Response) {
    send_ref(&s, resp);
}

fn send_ref(mut s: &UnixStream, resp: &Response) {
    if let Ok(mut data) = serde_json::to_vec(resp) {
        data.push(b'\n');
        let _ = s.set_nonblocking(false);
        let _ = s.write_all(&data);
    }
}
