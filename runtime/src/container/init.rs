//! The container side of creation: what runs in the cloned child, inside the new namespaces,
//! up to execve. Errors go back to the shim over a close-on-exec pipe as `{code, message}`;
//! a clean EOF on that pipe means the exec succeeded.

pub mod binary;

use std::ffi::CString;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use caps::CapsHashSet;
use nix::sched::{CloneFlags, unshare};
use oci_spec::runtime::Spec;
use seccompiler::BpfProgram;
use serde::{Deserialize, Serialize};

use super::capabilities::{self, CapError};
use super::namespaces::{self, NamespaceError};
use super::process::{self, ProcessError, User};
use super::rootfs::{self, RootLayout, RootfsError};
use super::seccomp::{self, SeccompError};

/// Errors of the container's own set-up, each mapped to a Docker exit code.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("waiting for the shim to place the container in its cgroup")]
    Sync(#[source] nix::Error),
    #[error("creating the cgroup namespace")]
    CgroupNs(#[source] nix::Error),
    #[error("moving into the container's cgroup")]
    Cgroup(#[source] nix::Error),
    #[error(transparent)]
    Namespace(#[from] NamespaceError),
    #[error("setting hostname {name:?}")]
    Hostname {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error(transparent)]
    Rootfs(#[from] RootfsError),
    #[error(transparent)]
    Process(#[from] ProcessError),
    #[error(transparent)]
    Caps(#[from] CapError),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
    #[error("setting up the container's stdio")]
    Stdio(#[source] nix::Error),
    #[error("handing the start report to the container's init")]
    Reaper(#[source] nix::Error),
    #[error("an argument or environment entry contains a NUL byte")]
    Nul,
    #[error("asking to die with the shim (PR_SET_PDEATHSIG)")]
    ParentDeath(#[source] nix::Error),
}

impl InitError {
    fn exit_code(&self) -> i32 {
        match self {
            InitError::Process(p) => p.exit_code(),
            _ => 125,
        }
    }
}

/// The failure report sent to the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InitFailure {
    pub code: i32,
    pub message: String,
}

/// The error with its whole source chain, on one line.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        let m = e.to_string();
        if !s.ends_with(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = e.source();
    }
    s
}

/// Writes a failure to `fd` and ends the process without running destructors or atexit.
pub fn fail(fd: RawFd, err: &InitError) -> ! {
    let f = InitFailure {
        code: err.exit_code(),
        message: chain(err),
    };
    if let Ok(data) = serde_json::to_vec(&f) {
        // SAFETY: fd is the report pipe we own; ManuallyDrop avoids closing it twice.
        let mut file = std::mem::ManuallyDrop::new(unsafe { std::fs::File::from_raw_fd(fd) });
        let _ = file.write_all(&data);
    }
    // SAFETY: _exit is always safe to call.
    unsafe { libc::_exit(f.code) }
}

/// Everything the user process needs after the filesystem is in place (shared with `exec`).
pub struct ProcessSetup<'a> {
    pub args: &'a [String],
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub user: User,
    pub caps: &'a CapsHashSet,
    pub rlimits: Vec<(String, u64, u64)>,
    pub no_new_privs: bool,
    pub seccomp: &'a [BpfProgram],
    /// Exec berth's init (bound at [`binary::CONTAINER_PATH`]) with the command as its
    /// child, as Docker's `--init` does: it stays PID 1, forwards signals and reaps zombies.
    pub reaper: bool,
    /// The start report pipe; with `reaper` it is handed to the init, whose child's exec
    /// closes the last copy.
    pub report_fd: RawFd,
    /// The process dies (SIGKILL) with its parent: a container's init with its shim, so that
    /// no container ever runs on unsupervised, whatever ended the shim.
    pub die_with_parent: bool,
}

/// Restores what a freshly exec'd process expects: no blocked signals, SIGPIPE default (Rust
/// ignores it at start-up, and an ignored signal survives execve).
pub fn reset_signals() {
    // SAFETY: plain libc calls on our own signal state.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
        for sig in 1..=libc::SIGRTMAX() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                default_disposition(sig);
            }
        }
    }
}

/// The kernel's `struct sigaction` (x86_64, aarch64 and the other architectures with
/// `sa_restorer`), for the signals glibc's own wrapper refuses to touch.
#[repr(C)]
struct KernelSigaction {
    handler: libc::sighandler_t,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Sets `sig` to its default action through the raw system call: glibc's `sigaction`
/// refuses the two real-time signals it keeps for itself (32, 33), yet a process started by
/// glibc's posix_spawn (as std starts most children) has them ignored, and an ignored
/// disposition survives exec into the container's process.
fn default_disposition(sig: libc::c_int) {
    let act = KernelSigaction {
        handler: libc::SIG_DFL,
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction with a valid struct of the kernel's layout and its size.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &act as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            std::mem::size_of::<u64>(),
        );
    }
}

fn cstrings(v: &[String]) -> Result<Vec<CString>, InitError> {
    v.iter()
        .map(|s| CString::new(s.as_bytes()).map_err(|_| InitError::Nul))
        .collect()
}

/// Limits, identity, capabilities, seccomp, then execve. Returns only on failure.
pub fn exec_process(p: &ProcessSetup<'_>) -> InitError {
    match exec_inner(p) {
        Ok(never) => match never {},
        Err(e) => e,
    }
}

fn exec_inner(p: &ProcessSetup<'_>) -> Result<std::convert::Infallible, InitError> {
    for (name, soft, hard) in &p.rlimits {
        process::set_rlimit(name, *soft, *hard)?;
    }
    let Some(cmd) = p.args.first() else {
        return Err(ProcessError::NoCommand.into());
    };
    capabilities::limit_bounding(p.caps)?;
    process::switch_user(&p.user)?;
    capabilities::apply(p.caps)?;
    // After the switch of user, which clears the parent-death signal.
    if p.die_with_parent {
        die_with_parent(p.report_fd)?;
    }
    nix::unistd::chdir(&p.cwd).map_err(|e| ProcessError::WorkDir {
        path: p.cwd.clone(),
        source: e.into(),
    })?;
    let path = process::find_executable(cmd, process::env_get(&p.env, "PATH"))?;
    if p.no_new_privs {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    }
    // Nothing the starter's process held open reaches the container: a descriptor
    // inherited from whoever ran berth (a shell's redirection, a CI runner's pipe, a
    // directory) would otherwise be the container's, and a directory's opens a way out of
    // its root. Every fd from 3 up closes at exec; the report pipe is re-opened below for
    // berth's own init, which needs it.
    close_on_exec_from(3).map_err(InitError::Stdio)?;
    let (file, argv, envp) = if p.reaper {
        // The init runs the command found above by the same search (the container's PATH).
        let mut argv = vec![binary::CONTAINER_PATH.to_string(), "--".into()];
        argv.extend(p.args.iter().cloned());
        let mut env = p.env.clone();
        env.push(format!("{}={}", binary::REPORT_ENV, p.report_fd));
        nix::fcntl::fcntl(
            // SAFETY: the report pipe stays open in this process until the exec.
            unsafe { std::os::fd::BorrowedFd::borrow_raw(p.report_fd) },
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
        )
        .map_err(InitError::Reaper)?;
        (PathBuf::from(binary::CONTAINER_PATH), argv, env)
    } else {
        (path, p.args.to_vec(), p.env.clone())
    };
    let argv = cstrings(&argv)?;
    let envp = cstrings(&envp)?;
    let cfile = CString::new(file.as_os_str().as_encoded_bytes()).map_err(|_| InitError::Nul)?;
    seccomp::install(p.seccomp)?;
    if p.reaper {
        // A PID 1 drops the signals it neither handles nor blocks: the init starts with all
        // of them blocked (the mask survives exec), so none sent meanwhile is lost.
        block_all_signals();
    }
    let err = nix::unistd::execve(&cfile, &argv, &envp).unwrap_err();
    Err(match err {
        nix::Error::ENOENT => ProcessError::NoSuchFile {
            cmd: cmd.clone(),
            path: file,
        }
        .into(),
        nix::Error::EACCES => ProcessError::NotExecutable { cmd: cmd.clone() }.into(),
        source => ProcessError::Exec {
            cmd: cmd.clone(),
            source,
        }
        .into(),
    })
}

/// Asks for SIGKILL when the parent (the shim) ends, then checks that it has not ended
/// already: the shim reads `report` until the exec, so a report pipe without a reader means
/// it is gone.
fn die_with_parent(report: RawFd) -> Result<(), InitError> {
    // SAFETY: prctl with integer arguments.
    if unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) } != 0 {
        return Err(InitError::ParentDeath(nix::Error::last()));
    }
    let mut fds = [libc::pollfd {
        fd: report,
        events: libc::POLLOUT,
        revents: 0,
    }];
    // SAFETY: poll(2) on one pollfd we own, without waiting.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), 1, 0) };
    if n > 0 && fds[0].revents & libc::POLLERR != 0 {
        // SAFETY: _exit ends this process at once; nobody is left to report to.
        unsafe { libc::_exit(125) };
    }
    Ok(())
}

/// Marks every descriptor from `first` up close-on-exec: close_range(2) where the kernel
/// has its CLOEXEC flag (5.11), else one fcntl per open descriptor listed in /proc/self/fd.
fn close_on_exec_from(first: RawFd) -> nix::Result<()> {
    let first = first as libc::c_uint;
    // SAFETY: close_range with a flag only marks descriptors; no memory is touched.
    if unsafe { libc::close_range(first, libc::c_uint::MAX, libc::CLOSE_RANGE_CLOEXEC as _) } == 0 {
        return Ok(());
    }
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)))?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd: &RawFd| *fd >= first as RawFd)
        .collect();
    for fd in fds {
        // SAFETY: F_SETFD on a descriptor number; one closed meanwhile (the directory's
        // own) answers EBADF, which is fine.
        unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
    }
    Ok(())
}

fn block_all_signals() {
    // SAFETY: plain libc calls on our own signal mask.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::sigprocmask(libc::SIG_SETMASK, &all, std::ptr::null_mut());
    }
}

/// What the shim hands to the cloned child.
pub struct InitArgs<'a> {
    pub spec: &'a Spec,
    pub user: Option<&'a str>,
    /// Extra groups of the process (`--group-add`).
    pub group_add: &'a [String],
    pub layout: &'a RootLayout,
    pub volumes: &'a [PathBuf],
    pub console: Option<PathBuf>,
    /// stdin, stdout, stderr for the process.
    pub stdio: [RawFd; 3],
    /// Closed in the child (the shim's ends).
    pub close: Vec<RawFd>,
    pub go: RawFd,
    pub report: RawFd,
    /// The cgroup's `tasks` files, through which the child moves itself in first thing
    /// (empty when the shim places it).
    pub cgroup_tasks: Vec<RawFd>,
    pub caps: &'a CapsHashSet,
    pub seccomp: &'a [BpfProgram],
    pub reaper: bool,
    pub tty: bool,
}

/// Entry point of the cloned child; never returns.
pub fn run(a: &InitArgs<'_>) -> ! {
    let err = match setup(a) {
        Ok(p) => exec_process(&p),
        Err(e) => e,
    };
    fail(a.report, &err)
}

/// Hides this process's /proc entries (exe, mem, fds) from the container's other processes
/// while it still runs berth's code (until execve resets it):
/// without CAP_SYS_PTRACE they cannot reopen the host's berth binary through /proc/PID/exe.
pub fn hide_from_container() {
    // SAFETY: prctl with integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
}

fn setup<'a>(a: &'a InitArgs<'a>) -> Result<ProcessSetup<'a>, InitError> {
    hide_from_container();
    reset_signals();
    for fd in &a.close {
        // SAFETY: closing the shim's ends of pipes we do not use.
        unsafe { libc::close(*fd) };
    }
    // Into the cgroup before anything else, so that all the set-up below is accounted and
    // limited there. The child is single-threaded: the move of this thread is the process's.
    crate::container::cgroups::join_through(&a.cgroup_tasks).map_err(InitError::Cgroup)?;
    for fd in &a.cgroup_tasks {
        // SAFETY: our inherited copies of the shim's `tasks` files, used above.
        unsafe { libc::close(*fd) };
    }
    // SAFETY: go is our pipe read end.
    let go = unsafe { OwnedFd::from_raw_fd(a.go) };
    nix::unistd::setsid().map_err(InitError::Stdio)?;
    let linux = a.spec.linux().as_ref();
    let nss = linux
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default();
    for ns in &nss {
        use oci_spec::runtime::LinuxNamespaceType as T;
        // Joined before the mounts: /dev/mqueue belongs to the IPC namespace that mounts it.
        let flag = match ns.typ() {
            T::Network => CloneFlags::CLONE_NEWNET,
            T::Ipc => CloneFlags::CLONE_NEWIPC,
            _ => continue,
        };
        if let Some(path) = ns.path() {
            let fd = namespaces::open_ns(path)?;
            namespaces::join(&fd, flag, path)?;
        }
    }
    if let Some(h) = a.spec.hostname()
        && nss
            .iter()
            .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Uts)
    {
        nix::unistd::sethostname(h).map_err(|source| InitError::Hostname {
            name: h.clone(),
            source,
        })?;
        if let Some(d) = a.spec.domainname() {
            namespaces::set_domainname(d)?;
        }
    }
    // SAFETY: umask only touches our own process state.
    unsafe { libc::umask(0o022) };
    rootfs::mount_all(a.spec, a.layout, a.volumes, a.console.as_deref())?;
    let mut user = process::resolve_user(a.user, Path::new("/"))?;
    process::add_groups(&mut user, a.group_add, Path::new("/"))?;
    let proc_ = a.spec.process().as_ref();
    let cwd = proc_.map(|p| p.cwd().clone()).unwrap_or_else(|| "/".into());
    process::ensure_workdir(&cwd, &user)?;
    rootfs::finish(a.spec)?;
    // Only now wait for the shim's go: it has set the OOM score adjustment, and where we did
    // not move ourselves (cgroup v2) it has put us into the cgroup, the mounts above
    // overlapping that move. Nothing of the container's own runs before this point, and the
    // cgroup namespace is made after the move so that its root is the container's cgroup.
    let mut b = [0u8; 1];
    let n = nix::unistd::read(&go, &mut b).map_err(InitError::Sync)?;
    if n != 1 {
        return Err(InitError::Sync(nix::Error::EPIPE));
    }
    drop(go);
    if nss
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Cgroup && n.path().is_none())
    {
        unshare(CloneFlags::CLONE_NEWCGROUP).map_err(InitError::CgroupNs)?;
    }
    for (i, fd) in a.stdio.iter().enumerate() {
        // SAFETY: dup2 onto 0/1/2.
        if unsafe { libc::dup2(*fd, i as RawFd) } < 0 {
            return Err(InitError::Stdio(nix::Error::last()));
        }
    }
    if a.tty {
        // SAFETY: make our stdin (the pty slave) the controlling terminal.
        unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) };
    }
    let env = process::with_home(
        proc_.and_then(|p| p.env().clone()).unwrap_or_default(),
        &user,
    );
    let rlimits = proc_
        .and_then(|p| p.rlimits().clone())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let name = serde_json::to_value(r.typ())
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (name, r.soft(), r.hard())
        })
        .collect();
    Ok(ProcessSetup {
        args: proc_.and_then(|p| p.args().as_deref()).unwrap_or_default(),
        env,
        cwd,
        user,
        caps: a.caps,
        rlimits,
        no_new_privs: proc_.and_then(|p| p.no_new_privileges()).unwrap_or(false),
        seccomp: a.seccomp,
        reaper: a.reaper,
        report_fd: a.report,
        die_with_parent: true,
    })
}
