//! Creating the container process: berth's own init cloned into new namespaces, or an
//! external OCI runtime forked; then the handshake that places it in its cgroup, lets it go
//! on and hears whether it reached exec.

use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use caps::CapsHashSet;
use nix::sched::CloneFlags;
use nix::sys::signal::Signal;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use seccompiler::BpfProgram;

use super::stdio::{Output, Stdio, set_nonblock};
use super::{Cgroup, Record, ShimError, pipe, sys};
use crate::container::cgroups::CgroupError;
use crate::container::config::RootfsSource;
use crate::container::init::{self, InitArgs, InitFailure};
use crate::container::oci_runtime::{self, OciRuntime};
use crate::container::rootfs::RootLayout;

/// What the spawn needs from the start.
pub(super) struct Launch<'a> {
    pub(super) rec: &'a Record,
    pub(super) spec: &'a Spec,
    pub(super) caps: &'a CapsHashSet,
    pub(super) seccomp: &'a [BpfProgram],
    pub(super) cgroup: &'a Cgroup,
    pub(super) external: Option<OciRuntime>,
    /// The shim's own fds (control socket, signalfd), closed in the container.
    pub(super) shim_fds: [RawFd; 2],
    /// The starter reads its pipe to EOF: the container must not keep it open.
    pub(super) sync_fd: Option<RawFd>,
}

/// Runs the container process and returns the pid the shim reaps: the init, placed in
/// its cgroup and past exec. On failure nothing of it is left (process, cgroup).
/// Returns the container's init and, under berth's own executor, a hold on its mount
/// namespace (see [`hold_mnt_ns`]).
pub(super) fn container(
    l: &Launch<'_>,
    stdio: &mut Stdio,
) -> Result<(Pid, Option<OwnedFd>), ShimError> {
    let rec = l.rec;
    let (go_r, go_w) = pipe()?;
    let (rep_r, rep_w) = pipe()?;
    let layout = root_layout(&rec.config.rootfs);
    // Short relative overlay paths: the child inherits this cwd.
    nix::unistd::chdir(&rec.dir).map_err(sys("entering the container dir"))?;
    let pid_file = rec.run_dir.join("oci.pid");
    let with_init;
    let spec = if rec.config.init && l.external.is_none() {
        with_init = spec_with_init(l.spec, rec)?;
        &with_init
    } else {
        l.spec
    };
    // Under berth's own init on cgroup v1 the cgroup is made first and the child moves
    // itself in as its first step (see `Cgroup::self_join_files`); otherwise the handshake
    // makes it and moves the child's pid, while the child sets up its root.
    let tasks = match l.external {
        None => self_join_files(l)?,
        Some(_) => None,
    };
    let pid = match l.external {
        None => {
            let mut close = vec![go_w.as_raw_fd(), rep_r.as_raw_fd()];
            close.extend(l.shim_fds);
            close.extend(stdio.shim_side());
            close.extend(l.sync_fd);
            let args = InitArgs {
                spec,
                user: rec.config.user.as_deref(),
                group_add: &rec.config.group_add,
                layout: &layout,
                volumes: &rec.volumes,
                console: stdio.console.take(),
                stdio: stdio.fds,
                close,
                go: go_r.as_raw_fd(),
                report: rep_w.as_raw_fd(),
                cgroup_tasks: tasks
                    .as_ref()
                    .map(|t| t.iter().map(AsRawFd::as_raw_fd).collect())
                    .unwrap_or_default(),
                caps: l.caps,
                seccomp: l.seccomp,
                reaper: rec.config.init,
                tty: rec.config.tty,
            };
            clone_in_pid_ns(&args, l.spec).inspect_err(|_| {
                if tasks.is_some() {
                    let _ = l.cgroup.remove();
                }
            })?
        }
        Some(ort) => fork_runtime(
            ort,
            rec,
            &layout,
            stdio,
            &pid_file,
            go_r.as_raw_fd(),
            rep_w.as_raw_fd(),
        )?,
    };
    let mnt_ns = l.external.is_none().then(|| hold_mnt_ns(pid)).flatten();
    drop(go_r);
    drop(rep_w);
    drop(std::mem::take(&mut stdio.child_side));
    let joined = tasks.is_some();
    drop(tasks);
    handshake(l, pid, joined, go_w, rep_r)?;
    match l.external {
        None => Ok((pid, mnt_ns)),
        Some(ort) => wait_external(ort, rec, l.cgroup, pid, &pid_file, stdio).map(|p| (p, None)),
    }
}

/// The spec plus the read-only bind of berth's init (`--init`), installed under the
/// runtime's root (`<root>/containers/<id>` is the container's dir) on first use.
fn spec_with_init(spec: &Spec, rec: &Record) -> Result<Spec, ShimError> {
    let root = rec.dir.parent().and_then(Path::parent).unwrap_or(&rec.dir);
    let host = init::binary::install(root).map_err(|e| ShimError::Init {
        code: 125,
        message: format!(
            "installing the container init under {}: {e}",
            root.join("init").display()
        ),
    })?;
    let mut spec = spec.clone();
    let mut mounts = spec.mounts().clone().unwrap_or_default();
    mounts.push(init::binary::mount(&host));
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

fn root_layout(rootfs: &RootfsSource) -> RootLayout {
    match rootfs {
        RootfsSource::Layers(lowers) => RootLayout::Overlay {
            lowers: lowers.clone(),
            upper: "upper".into(),
            work: "work".into(),
            target: "rootfs".into(),
        },
        RootfsSource::Dir(d) => RootLayout::Dir(d.clone()),
    }
}

/// The namespaces the clone creates: those of the spec without a path to join.
fn clone_flags(spec: &Spec) -> CloneFlags {
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
    flags
}

/// The init cloned, into the PID namespace the spec joins by path when it names one: a
/// process's PID namespace is fixed when it is made, so the shim enters that namespace for
/// its children just for the clone and returns to its own right after.
fn clone_in_pid_ns(args: &InitArgs<'_>, spec: &Spec) -> Result<Pid, ShimError> {
    let joined = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().clone())
        .unwrap_or_default()
        .into_iter()
        .find(|ns| ns.typ() == LinuxNamespaceType::Pid)
        .and_then(|ns| ns.path().clone());
    let Some(path) = joined else {
        return clone_init(args, clone_flags(spec));
    };
    let open = |p: &Path| {
        fs::File::open(p)
            .map(OwnedFd::from)
            .map_err(|e| ShimError::Init {
                code: 125,
                message: format!("opening the PID namespace {} to join: {e}", p.display()),
            })
    };
    let own = open(Path::new("/proc/self/ns/pid"))?;
    let target = open(&path)?;
    nix::sched::setns(&target, CloneFlags::CLONE_NEWPID)
        .map_err(sys("joining the PID namespace of another container"))?;
    let cloned = clone_init(args, clone_flags(spec));
    nix::sched::setns(&own, CloneFlags::CLONE_NEWPID)
        .map_err(sys("returning to the shim's own PID namespace"))?;
    cloned
}

/// berth's init, cloned into its namespaces.
fn clone_init(args: &InitArgs<'_>, flags: CloneFlags) -> Result<Pid, ShimError> {
    let mut stack = vec![0u8; 1 << 20];
    // SAFETY: the shim is single-threaded; the child runs on its own stack in a copy of our
    // address space and never returns into our frames (init::run ends in exec/_exit).
    unsafe {
        nix::sched::clone(
            Box::new(|| init::run(args)),
            &mut stack,
            flags,
            Some(libc::SIGCHLD),
        )
    }
    .map_err(sys("cloning the container process"))
}

/// An external runtime, forked; its pid is the runtime's, not yet the container's.
fn fork_runtime(
    ort: OciRuntime,
    rec: &Record,
    layout: &RootLayout,
    stdio: &Stdio,
    pid_file: &Path,
    go: RawFd,
    report: RawFd,
) -> Result<Pid, ShimError> {
    let _ = fs::remove_file(pid_file);
    // The runtime detaches once the container runs: its init is re-parented to the shim,
    // which reaps it (and reads the OOM counter) itself.
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
            pid_file,
            stdio
                .console_listener
                .as_ref()
                .map(|_| console_path.as_path()),
        )
        .into_iter()
        .filter_map(|a| std::ffi::CString::new(a).ok())
        .collect();
    let child = oci_runtime::ChildArgs {
        argv,
        layout,
        stdio: stdio.fds,
        go,
        report,
        hide_unified_cgroup: ort == OciRuntime::Crun,
    };
    // SAFETY: the shim is single-threaded; the child only mounts, dup2s and execs.
    match unsafe { nix::unistd::fork() }.map_err(sys("forking the OCI runtime"))? {
        nix::unistd::ForkResult::Child => oci_runtime::child_main(&child),
        nix::unistd::ForkResult::Parent { child } => Ok(child),
    }
}

/// A reference to the init's mount namespace, taken right after the clone. While the shim
/// holds it, the init's exit does not tear the namespace down (unmounting its tree waits for
/// an expedited RCU grace period, ~1-7 ms, before the exit reaches the shim); the shim drops
/// it where that wait costs nobody (after a `--rm` run's report). `None` if it is gone already.
fn hold_mnt_ns(pid: Pid) -> Option<OwnedFd> {
    fs::File::open(format!("/proc/{pid}/ns/mnt"))
        .ok()
        .map(OwnedFd::from)
}

/// The container's cgroup, made, and its `tasks` files for the child to move itself in
/// through; `None` where the cgroup has no such files (v2), which the handshake then places.
fn self_join_files(l: &Launch<'_>) -> Result<Option<Vec<OwnedFd>>, ShimError> {
    if !matches!(l.cgroup, Cgroup::V1 { .. }) {
        return Ok(None);
    }
    let resources = l.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    l.cgroup.make(&l.rec.cgroup, resources)?;
    l.cgroup.self_join_files().map_err(|e| {
        let _ = l.cgroup.remove();
        ShimError::from(e)
    })
}

/// Places the child in its cgroup unless it moved itself (`joined`), lets it go on, and
/// reads its report: empty once it reached exec, an [`InitFailure`] otherwise.
fn handshake(
    l: &Launch<'_>,
    pid: Pid,
    joined: bool,
    go_w: OwnedFd,
    rep_r: OwnedFd,
) -> Result<(), ShimError> {
    let cgroup = l.cgroup;
    let resources = l.spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    // runc places the container in the same (absolute) cgroup path itself and removes it
    // at exit, which it cannot do while its own process sits in it.
    let placed = if joined {
        Ok(())
    } else {
        cgroup.make(&l.rec.cgroup, resources).and_then(|()| {
            if l.external == Some(OciRuntime::Runc) {
                Ok(())
            } else {
                cgroup.add_pid(pid.as_raw())
            }
        })
    };
    // The OOM score adjustment, set before the container's own code runs (its children
    // inherit it); crun and runc apply the spec's value themselves.
    let placed =
        placed.and_then(
            |()| match l.spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
                Some(adj) if l.external.is_none() => {
                    let path = format!("/proc/{pid}/oom_score_adj");
                    fs::write(&path, adj.to_string()).map_err(|source| CgroupError::Write {
                        path: path.into(),
                        value: adj.to_string(),
                        source,
                    })
                }
                _ => Ok(()),
            },
        );
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
    Ok(())
}

/// Takes down a container that runs but whose start cannot be completed: its processes
/// killed and reaped, its cgroup and (external runtime) record removed.
pub(super) fn undo(pid: Pid, cgroup: &Cgroup, external: Option<OciRuntime>, rec: &Record) {
    let _ = nix::sys::signal::kill(pid, Signal::SIGKILL);
    let _ = waitpid(pid, None);
    if let Err(e) = cgroup.remove() {
        tracing::warn!(error = %e, "removing the cgroup of a container whose start failed");
    }
    if let Some(ort) = external {
        let _ = ort.delete(&oci_runtime::state_root(&rec.run_dir), &rec.id);
    }
}

/// Under an external runtime, the container's init is the runtime's grandchild,
/// re-parented to the shim once the runtime exits: from then on it is what the shim reaps.
/// With a tty, the runtime sends the pty master, which becomes the container's output.
fn wait_external(
    ort: OciRuntime,
    rec: &Record,
    cgroup: &Cgroup,
    runtime_pid: Pid,
    pid_file: &Path,
    stdio: &mut Stdio,
) -> Result<Pid, ShimError> {
    let err_fd = stdio
        .runtime_err
        .as_ref()
        .map(|fd| fd.as_raw_fd())
        .or_else(|| {
            stdio
                .outputs
                .iter()
                .find_map(|(Output::Pipe { fd, stream }, _)| {
                    (*stream == "stderr").then(|| fd.as_raw_fd())
                })
        })
        .unwrap_or(-1);
    let state_root = oci_runtime::state_root(&rec.run_dir);
    let started =
        oci_runtime::wait_started(ort, pid_file, runtime_pid, err_fd).and_then(|init| match &stdio
            .console_listener
        {
            None => Ok(init),
            Some(l) => match oci_runtime::recv_console(l) {
                Ok(master) => {
                    set_nonblock(&master);
                    stdio.outputs.push((
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
        });
    if stdio.console_listener.take().is_some() {
        let _ = fs::remove_file(oci_runtime::console_socket(&rec.run_dir));
    }
    match started {
        Ok(p) => Ok(p),
        Err((code, message)) => {
            let _ = ort.delete(&state_root, &rec.id);
            let _ = cgroup.remove();
            Err(ShimError::Init { code, message })
        }
    }
}
