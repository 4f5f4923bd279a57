//! `exec` into a running container, from a freshly exec'd single-threaded helper
//! (`berth exec-helper`): join the container's cgroup and every namespace, fork so the pid
//! namespace applies, then the same identity, capability, no_new_privs and seccomp steps as
//! the container's own process. The helper relays a pty when asked and exits with the
//! process's status.

use std::fs;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sched::CloneFlags;
use nix::sys::wait::{WaitStatus, waitpid};
use oci_spec::runtime::Spec;

use super::capabilities;
use super::cgroups::Cgroup;
use super::config::ExecConfig;
use super::init::{self, InitFailure, ProcessSetup, chain};
use super::namespaces;
use super::process;
use super::record::Record;
use super::seccomp;
use super::state::{State, Status};

/// Errors of the exec helper before the process runs.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Record(#[from] super::record::RecordError),
    #[error(transparent)]
    State(#[from] super::state::StateError),
    #[error("container {id} is not running")]
    NotRunning { id: String },
    #[error("reading the runtime spec {path}")]
    Spec {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
    #[error(transparent)]
    Cgroup(#[from] super::cgroups::CgroupError),
    #[error(transparent)]
    Namespace(#[from] super::namespaces::NamespaceError),
    #[error(transparent)]
    Caps(#[from] capabilities::CapError),
    #[error(transparent)]
    Seccomp(#[from] seccomp::SeccompError),
    #[error("{what}")]
    Sys {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
}

fn sys(what: &'static str) -> impl FnOnce(nix::Error) -> ExecError {
    move |source| ExecError::Sys { what, source }
}

/// The helper's `main`: runs `exec` in the container in `dir`, returns the exit status.
pub fn main(dir: &Path, exec: &ExecConfig) -> i32 {
    if let Ok(v) = std::env::var(super::shim::CGROUP_V1_ENV) {
        super::cgroups::seed_v1_hierarchies(&v);
    }
    match run(dir, exec) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("berth: exec: {}", chain(&e));
            125
        }
    }
}

fn run(dir: &Path, exec: &ExecConfig) -> Result<i32, ExecError> {
    let rec = Record::load(dir)?;
    let state = State::load(&rec.state_path())?;
    if state.status != Status::Running || state.pid <= 0 {
        return Err(ExecError::NotRunning { id: rec.id });
    }
    let spec_path = rec.spec_path();
    let spec = Spec::load(&spec_path).map_err(|source| ExecError::Spec {
        path: spec_path.clone(),
        source,
    })?;
    let proc_ = spec.process().as_ref();
    let mut caps = capabilities::parse(
        &proc_
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref())
            .map(|b| b.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .unwrap_or_default(),
    )?;
    let filters = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(p) => seccomp::compile(p)?,
        None => Vec::new(),
    };
    // Open every namespace first: after joining the mount namespace /proc is the container's.
    let pid = state.pid;
    let mut nss = Vec::new();
    for (name, flag) in [
        ("cgroup", CloneFlags::CLONE_NEWCGROUP),
        ("ipc", CloneFlags::CLONE_NEWIPC),
        ("uts", CloneFlags::CLONE_NEWUTS),
        ("net", CloneFlags::CLONE_NEWNET),
        ("pid", CloneFlags::CLONE_NEWPID),
        ("mnt", CloneFlags::CLONE_NEWNS),
    ] {
        let path = PathBuf::from(format!("/proc/{pid}/ns/{name}"));
        let mine = fs::read_link(format!("/proc/self/ns/{name}")).ok();
        if fs::read_link(&path).ok() == mine {
            continue;
        }
        nss.push((namespaces::open_ns(&path)?, flag, path));
    }
    let cgroup = Cgroup::locate(&rec.cgroup)?;
    cgroup.join_self()?;
    // Same rule as the shim: no device filter on cgroup v2, so no CAP_MKNOD either.
    if matches!(cgroup, Cgroup::V2 { .. }) && !rec.config.privileged {
        caps.remove(&caps::Capability::CAP_MKNOD);
    }
    for (fd, flag, path) in &nss {
        namespaces::join(fd, *flag, path)?;
    }
    let pty = if exec.tty {
        let master = nix::pty::posix_openpt(
            nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_NOCTTY | nix::fcntl::OFlag::O_CLOEXEC,
        )
        .map_err(sys("opening /dev/ptmx in the container"))?;
        nix::pty::grantpt(&master).map_err(sys("grantpt"))?;
        nix::pty::unlockpt(&master).map_err(sys("unlockpt"))?;
        let name = nix::pty::ptsname_r(&master).map_err(sys("ptsname"))?;
        Some((master, name))
    } else {
        None
    };
    let (rep_r, rep_w) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(sys("creating a pipe"))?;
    let mut env = proc_.and_then(|p| p.env().clone()).unwrap_or_default();
    env.extend(exec.env.iter().cloned());
    let cwd = exec
        .working_dir
        .clone()
        .or_else(|| proc_.map(|p| p.cwd().clone()))
        .unwrap_or_else(|| "/".into());
    let no_new_privs = proc_.and_then(|p| p.no_new_privileges()).unwrap_or(false);
    let user_spec = exec.user.clone().or_else(|| rec.config.user.clone());

    init::hide_from_container();
    // SAFETY: the helper is single-threaded (freshly exec'd).
    match unsafe { nix::unistd::fork() }.map_err(sys("forking into the container"))? {
        nix::unistd::ForkResult::Child => {
            drop(rep_r);
            init::reset_signals();
            let report = rep_w.as_raw_fd();
            let _ = nix::unistd::setsid();
            if let Some((_, name)) = &pty
                && let Ok(slave) = fs::OpenOptions::new().read(true).write(true).open(name)
            {
                // SAFETY: dup2 onto 0/1/2 and take the terminal as controlling tty.
                unsafe {
                    libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0);
                    for i in 0..3 {
                        libc::dup2(slave.as_raw_fd(), i);
                    }
                }
            } else if let Ok(null) = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/null")
            {
                // A detached process's output goes nowhere, as `docker exec -d`'s does:
                // it must not hold the caller's stdout and stderr (a caller capturing them
                // would wait for as long as the process runs).
                let targets: &[RawFd] = match (exec.detach, exec.interactive) {
                    (true, _) => &[0, 1, 2],
                    (false, false) => &[0],
                    (false, true) => &[],
                };
                for fd in targets {
                    // SAFETY: dup2 onto our own stdio.
                    unsafe { libc::dup2(null.as_raw_fd(), *fd) };
                }
            }
            let err = match process::resolve_user(user_spec.as_deref(), Path::new("/")) {
                Ok(user) => {
                    let env = process::with_home(env, &user);
                    let setup = ProcessSetup {
                        args: &exec.args,
                        env,
                        cwd,
                        user,
                        caps: &caps,
                        rlimits: Vec::new(),
                        no_new_privs,
                        seccomp: &filters,
                        reaper: false,
                        report_fd: report,
                        // An exec'd process lives on its own, as Docker's does.
                        die_with_parent: false,
                    };
                    init::exec_process(&setup)
                }
                Err(e) => e.into(),
            };
            init::fail(report, &err)
        }
        nix::unistd::ForkResult::Parent { child } => {
            drop(rep_w);
            let mut buf = Vec::new();
            let _ = std::io::Read::read_to_end(&mut fs::File::from(rep_r), &mut buf);
            if !buf.is_empty() {
                let _ = waitpid(child, None);
                let f: InitFailure = serde_json::from_slice(&buf).unwrap_or(InitFailure {
                    code: 126,
                    message: String::from_utf8_lossy(&buf).into_owned(),
                });
                eprintln!("berth: {}", f.message);
                return Ok(f.code);
            }
            if exec.detach {
                return Ok(0);
            }
            if let Some((master, _)) = pty {
                relay(&master, exec.interactive);
            }
            Ok(match waitpid(child, None) {
                Ok(WaitStatus::Exited(_, c)) => c,
                Ok(WaitStatus::Signaled(_, s, _)) => 128 + s as i32,
                _ => 255,
            })
        }
    }
}

/// Copies stdin -> pty and pty -> stdout until the pty closes; puts a terminal stdin in raw
/// mode meanwhile.
fn relay<F: AsFd>(master: &F, interactive: bool) {
    use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let saved = if interactive {
        tcgetattr(&stdin).ok()
    } else {
        None
    };
    if let Some(t) = &saved {
        let mut raw = t.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
    }
    let mut stdin_open = interactive;
    let mut buf = [0u8; 8192];
    loop {
        let mut fds = vec![PollFd::new(master.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
        }
        if poll(&mut fds, PollTimeout::NONE).is_err() {
            break;
        }
        let m_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let i_ready = fds
            .get(1)
            .and_then(|f| f.revents())
            .is_some_and(|r| !r.is_empty());
        if m_ready {
            match nix::unistd::read(master, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = std::io::Write::write_all(&mut std::io::stdout(), &buf[..n]);
                    let _ = std::io::Write::flush(&mut std::io::stdout());
                }
                Err(nix::Error::EINTR) => {}
                _ => break,
            }
        }
        if i_ready {
            match nix::unistd::read(&stdin, &mut buf) {
                Ok(n) if n > 0 => {
                    let _ = nix::unistd::write(master, &buf[..n]);
                }
                _ => {
                    // EOF on our stdin: pass an end-of-file to the terminal's reader.
                    let _ = nix::unistd::write(master, &[4u8]);
                    stdin_open = false;
                }
            }
        }
    }
    if let Some(t) = &saved {
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, t);
    }
}
