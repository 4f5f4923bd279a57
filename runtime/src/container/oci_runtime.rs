//! `--runtime crun|runc`: the same OCI bundle run by an external runtime instead of berth's
//! executor, still under berth's shim (logs, exit status, control socket, cgroup). The shim
//! forks a child that builds the overlay root in a mount namespace of its own (so nothing is
//! left on the host if anything dies) and execs `crun|runc run --pid-file ...`; the container's
//! init (from the pid file) is what `kill`, `exec` and `stats` address, the runtime process is
//! what the shim reaps. crun runs with `--cgroup-manager=disabled` (it refuses cgroup v1
//! hybrid hosts) inside the cgroup the shim made, so limits still apply; runc manages the
//! same cgroup path itself.

use std::ffi::CString;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::SigSet;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::init::InitFailure;
use super::rootfs::RootLayout;

/// The external runtimes berth knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OciRuntime {
    Crun,
    Runc,
}

/// An unknown `--runtime` value.
#[derive(Debug, thiserror::Error)]
#[error("unknown OCI runtime {0:?} (berth knows crun and runc; the default is berth's own)")]
pub struct UnknownRuntime(pub String);

impl OciRuntime {
    /// Parses `crun` or `runc`.
    pub fn parse(name: &str) -> Result<OciRuntime, UnknownRuntime> {
        match name {
            "crun" => Ok(OciRuntime::Crun),
            "runc" => Ok(OciRuntime::Runc),
            other => Err(UnknownRuntime(other.to_string())),
        }
    }

    /// The executable name.
    pub fn name(self) -> &'static str {
        match self {
            OciRuntime::Crun => "crun",
            OciRuntime::Runc => "runc",
        }
    }

    /// The runtime's argv for a foreground `run` of the bundle in `dir`.
    pub fn argv(self, state_root: &Path, dir: &Path, id: &str, pid_file: &Path) -> Vec<String> {
        let mut v = vec![
            self.name().to_string(),
            "--root".into(),
            state_root.display().to_string(),
        ];
        if self == OciRuntime::Crun {
            v.push("--cgroup-manager=disabled".into());
        }
        v.extend([
            "run".into(),
            "--bundle".into(),
            dir.display().to_string(),
            "--pid-file".into(),
            pid_file.display().to_string(),
            id.to_string(),
        ]);
        v
    }
}

/// What the forked child needs; everything is prepared before the fork.
pub struct ChildArgs<'a> {
    pub argv: Vec<CString>,
    pub layout: &'a RootLayout,
    pub stdio: [RawFd; 3],
    /// Blocks until the shim placed the child in the cgroup.
    pub go: RawFd,
    /// Gets an [`InitFailure`] when the child cannot exec the runtime.
    pub report: RawFd,
}

fn fail(report: RawFd, code: i32, message: String) -> ! {
    if let Ok(data) = serde_json::to_vec(&InitFailure { code, message }) {
        // SAFETY: writing our own buffer to an fd we own.
        let _ = unsafe { libc::write(report, data.as_ptr().cast(), data.len()) };
    }
    // SAFETY: leaving the forked child without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

/// The forked child: never returns.
pub fn child_main(a: &ChildArgs<'_>) -> ! {
    let mut b = [0u8; 1];
    // SAFETY: reading one byte into our buffer.
    let _ = unsafe { libc::read(a.go, b.as_mut_ptr().cast(), 1) };
    if let Err(e) = nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS) {
        fail(a.report, 125, format!("unsharing the mount namespace: {e}"));
    }
    if let Err(e) = super::rootfs::mount_root_private(a.layout) {
        fail(
            a.report,
            125,
            format!("mounting the root filesystem: {}", super::init::chain(&e)),
        );
    }
    for (i, fd) in a.stdio.iter().enumerate() {
        // SAFETY: dup2 onto our own stdio.
        if unsafe { libc::dup2(*fd, i as i32) } < 0 {
            fail(a.report, 125, "setting up stdio".into());
        }
    }
    let _ = SigSet::all().thread_unblock();
    let Some(prog) = a.argv.first() else {
        fail(a.report, 125, "no runtime to run".into());
    };
    let err = nix::unistd::execvp(prog, &a.argv).err();
    fail(
        a.report,
        127,
        format!(
            "exec {:?}: {} (install it: apt-get install {})",
            prog,
            err.map(|e| e.desc()).unwrap_or("failed"),
            prog.to_string_lossy()
        ),
    )
}

/// Waits for the runtime to write the container's pid; `Err` with what the runtime said
/// (its stderr, read from `err_fd`) when it exits first or takes longer than 30 s.
pub fn wait_pid_file(
    runtime: OciRuntime,
    pid_file: &Path,
    child: Pid,
    err_fd: RawFd,
) -> Result<Pid, (i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(s) = std::fs::read_to_string(pid_file)
            && let Ok(pid) = s.trim().parse::<i32>()
            && pid > 0
        {
            return Ok(Pid::from_raw(pid));
        }
        let exited = match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => Some(code),
            Ok(WaitStatus::Signaled(_, s, _)) => Some(128 + s as i32),
            _ => None,
        };
        if exited.is_some() || Instant::now() > deadline {
            let mut buf = vec![0u8; 8192];
            // SAFETY: reading into our buffer from a non-blocking pipe we own.
            let n = unsafe { libc::read(err_fd, buf.as_mut_ptr().cast(), buf.len()) };
            let said = if n > 0 {
                String::from_utf8_lossy(&buf[..n as usize])
                    .trim()
                    .to_string()
            } else {
                String::new()
            };
            let code = exited.unwrap_or(125);
            if exited.is_none() {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
            }
            return Err((
                if code == 0 { 125 } else { code },
                format!(
                    "{} did not start the container (exit {code}): {said}",
                    runtime.name()
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Where the runtime keeps its state for a container: inside the container's run dir, so
/// removing the container removes it.
pub fn state_root(run_dir: &Path) -> PathBuf {
    run_dir.join("oci")
}
