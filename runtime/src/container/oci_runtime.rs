//! `--runtime crun|runc`: the same OCI bundle run by an external runtime instead of berth's
//! executor, still under berth's shim (logs, exit status, control socket, cgroup). The shim
//! forks a child that builds the overlay root in a mount namespace of its own (so nothing is
//! left on the host if anything dies) and execs `crun|runc run --detach --pid-file ...`.
//!
//! Detached, because then the runtime gets out of the way once the container runs: the shim
//! is a child subreaper, so the container's init (from the pid file) is re-parented to it and
//! the shim reaps it itself, exactly as it reaps its own executor's init: the real exit
//! status (a signal stays a signal), and the container's cgroup still in place when the
//! shim reads its OOM counter. A foreground runtime would reap the init and (runc) delete the
//! cgroup first. The shim then `delete`s the runtime's record of the container. With a tty,
//! the runtime allocates the pty inside the container and sends its master over
//! `--console-socket` (SCM_RIGHTS): the shim holds it as it holds its own executor's, for
//! attach, resize and logs. Without one, the runtime hands its stdio (the shim's pipes)
//! through to the container's process.
//!
//! crun runs with `--cgroup-manager=disabled` (it refuses cgroup v1 hybrid hosts) inside the
//! cgroup the shim made, so limits still apply; runc manages the same cgroup path itself.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::SigSet;
use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
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

    /// The global options: state root, and for crun no cgroup manager of its own.
    fn global(self, state_root: &Path) -> Vec<String> {
        let mut v = vec![
            self.name().to_string(),
            "--root".into(),
            state_root.display().to_string(),
        ];
        if self == OciRuntime::Crun {
            v.push("--cgroup-manager=disabled".into());
        }
        v
    }

    /// The runtime's argv for a detached `run` of the bundle in `dir`; `console` is the
    /// socket that gets the pty master of a tty container.
    pub fn argv(
        self,
        state_root: &Path,
        dir: &Path,
        id: &str,
        pid_file: &Path,
        console: Option<&Path>,
    ) -> Vec<String> {
        let mut v = self.global(state_root);
        v.extend(["run".into(), "--detach".into()]);
        if let Some(c) = console {
            v.push("--console-socket".into());
            v.push(c.display().to_string());
        }
        v.extend([
            "--bundle".into(),
            dir.display().to_string(),
            "--pid-file".into(),
            pid_file.display().to_string(),
            id.to_string(),
        ]);
        v
    }

    /// `delete --force`s the runtime's record of container `id` (and, for runc, the cgroup
    /// dirs it made), so the same id can run again; `Err` with what the runtime said.
    pub fn delete(self, state_root: &Path, id: &str) -> Result<(), String> {
        if !state_root.join(id).exists() {
            return Ok(());
        }
        let argv = self.global(state_root);
        let out = std::process::Command::new(&argv[0])
            .args(&argv[1..])
            .args(["delete", "--force", id])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .output()
            .map_err(|e| format!("running {} delete: {e}", self.name()))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} delete {id}: {}",
                self.name(),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
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
    /// crun: detach the hybrid host's cgroup2 mount in the child's own mount namespace.
    pub hide_unified_cgroup: bool,
}

fn fail(report: RawFd, code: i32, message: String) -> ! {
    if let Ok(data) = serde_json::to_vec(&InitFailure { code, message }) {
        // SAFETY: writing our own buffer to an fd we own.
        let _ = unsafe { libc::write(report, data.as_ptr().cast(), data.len()) };
    }
    // SAFETY: leaving the forked child without running the parent's destructors.
    unsafe { libc::_exit(code) }
}

/// Where hybrid hosts mount the cgroup2 hierarchy beside the v1 ones.
const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// crun refuses a hybrid host whose cgroup2 hierarchy holds any controller ("cgroups in hybrid
/// mode not supported"), even with its cgroup manager disabled; a fresh Debian 12 on a cgroup v1
/// hybrid boot has hugetlb there. berth places the container in its cgroup itself, so crun
/// needs none of it: the mount is detached in this child's private mount namespace only (the
/// host keeps it), and crun sees a plain v1 host. Not a mount point (or no such dir): nothing
/// to do.
fn hide_unified_cgroup() {
    let is_cgroup2 = nix::sys::statfs::statfs(UNIFIED)
        .is_ok_and(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    let v1_root = nix::sys::statfs::statfs("/sys/fs/cgroup")
        .is_ok_and(|s| s.filesystem_type() != nix::sys::statfs::CGROUP2_SUPER_MAGIC);
    if is_cgroup2 && v1_root {
        let _ = nix::mount::umount2(UNIFIED, nix::mount::MntFlags::MNT_DETACH);
    }
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
    if a.hide_unified_cgroup {
        hide_unified_cgroup();
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

/// Waits for the detached runtime to exit after starting the container, then reads the
/// container's pid from `pid_file`; `Err` with what the runtime said (its stderr, read from
/// the non-blocking `err_fd`) when it fails or takes longer than 30 s.
pub fn wait_started(
    runtime: OciRuntime,
    pid_file: &Path,
    child: Pid,
    err_fd: RawFd,
) -> Result<Pid, (i32, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let code = loop {
        match waitpid(child, Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(_, code)) => break code,
            Ok(WaitStatus::Signaled(_, s, _)) => break 128 + s as i32,
            Ok(_) if Instant::now() <= deadline => {}
            Ok(_) => {
                let _ = nix::sys::signal::kill(child, nix::sys::signal::Signal::SIGKILL);
                let _ = waitpid(child, None);
                break 125;
            }
            Err(e) => return Err((125, format!("waiting for {}: {e}", runtime.name()))),
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    if code == 0
        && let Ok(s) = std::fs::read_to_string(pid_file)
        && let Ok(pid) = s.trim().parse::<i32>()
        && pid > 0
    {
        return Ok(Pid::from_raw(pid));
    }
    let mut buf = vec![0u8; 8192];
    // SAFETY: reading into our buffer from a non-blocking pipe we own.
    let n = unsafe { libc::read(err_fd, buf.as_mut_ptr().cast(), buf.len()) };
    let said = if n > 0 {
        String::from_utf8_lossy(&buf[..n as usize])
            .trim()
            .to_string()
    } else if code == 0 {
        format!("no pid in {}", pid_file.display())
    } else {
        String::new()
    };
    Err((
        start_failure_code(code, &said),
        format!(
            "{} did not start the container (exit {code}): {said}",
            runtime.name()
        ),
    ))
}

/// The exit code a failed start reports, as Docker maps its runtime's errors: 127 when the
/// command was not found, 126 when it could not be executed, else 125 (the runtime's own
/// failure; runc and crun both exit 1 whatever went wrong).
pub fn start_failure_code(code: i32, said: &str) -> i32 {
    let s = said.to_ascii_lowercase();
    let exec_error = s.contains("exec") || s.contains("executable");
    if exec_error && (s.contains("not found") || s.contains("no such file or directory")) {
        127
    } else if exec_error
        && (s.contains("permission denied") || s.contains("operation not permitted"))
    {
        126
    } else if code == 0 || code == 1 {
        125
    } else {
        code
    }
}

/// Takes the pty master the runtime sent on the console socket (`--console-socket`): one
/// connection carrying the fd as SCM_RIGHTS. The runtime has exited by now, so the
/// connection is queued already or never comes.
pub fn recv_console(listener: &UnixListener) -> Result<OwnedFd, String> {
    let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
    if !matches!(poll(&mut fds, PollTimeout::from(1000u16)), Ok(n) if n > 0) {
        return Err("the runtime sent no console (pty) on --console-socket".into());
    }
    let (s, _) = listener
        .accept()
        .map_err(|e| format!("accepting the console socket: {e}"))?;
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // The runtime sends the pty's name with it; only the fd matters.
    let mut name = [0u8; 256];
    let mut iov = [std::io::IoSliceMut::new(&mut name)];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let msg = recvmsg::<()>(
        s.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .map_err(|e| format!("receiving the console: {e}"))?;
    for c in msg
        .cmsgs()
        .map_err(|e| format!("receiving the console: {e}"))?
    {
        if let ControlMessageOwned::ScmRights(fds) = c
            && let Some(&fd) = fds.first()
        {
            // SAFETY: the kernel just installed this fd in our table for us.
            let master = unsafe { OwnedFd::from_raw_fd(fd) };
            for &extra in &fds[1..] {
                // SAFETY: closing fds we were sent and do not use.
                unsafe { libc::close(extra) };
            }
            return Ok(master);
        }
    }
    Err("the console socket carried no file descriptor".into())
}

/// Where the runtime keeps its state for a container: inside the container's run dir, so
/// removing the container removes it.
pub fn state_root(run_dir: &Path) -> PathBuf {
    run_dir.join("oci")
}

/// The socket an external runtime sends a tty container's pty master to.
pub fn console_socket(run_dir: &Path) -> PathBuf {
    run_dir.join("console")
}

#[cfg(test)]
mod tests {
    use super::start_failure_code;

    #[test]
    fn start_failures_map_to_dockers_codes() {
        let runc = r#"runc run failed: unable to start container process: exec: "nope": executable file not found in $PATH"#;
        assert_eq!(start_failure_code(1, runc), 127);
        let crun = "crun: executable file `nope` not found in $PATH: No such file or directory";
        assert_eq!(start_failure_code(1, crun), 127);
        let denied = r#"runc run failed: unable to start container process: exec: "/etc/passwd": permission denied"#;
        assert_eq!(start_failure_code(1, denied), 126);
        assert_eq!(
            start_failure_code(1, "crun: open executable: Permission denied"),
            126
        );
        assert_eq!(
            start_failure_code(1, "open executable: Operation not permitted"),
            126
        );
        assert_eq!(start_failure_code(1, "runc run failed: cgroup: bad"), 125);
    }
}
