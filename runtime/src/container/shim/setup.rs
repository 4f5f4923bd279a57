//! What the start reads and prepares before the container process exists: the runtime
//! spec, the signalfd, the capability set and seccomp program, the control socket, the
//! external runtime; and the state record once the container runs.

use std::fs;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::SystemTime;

use caps::CapsHashSet;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use super::{Cgroup, OciRuntime, Record, ShimError, State, Status, capabilities, seccomp, sys};
use crate::container::config::ContainerConfig;
use seccompiler::BpfProgram;

/// The container's runtime spec.
pub(super) fn read_spec(spec_path: &Path) -> Result<Spec, ShimError> {
    // Read whole, then parsed from the slice: serde_json's reader path costs about twice
    // the instructions of this one, on every container start.
    fs::read(spec_path)
        .map_err(oci_spec::OciSpecError::from)
        .and_then(|data| {
            serde_json::from_slice::<Spec>(&data).map_err(oci_spec::OciSpecError::from)
        })
        .map_err(|source| ShimError::Spec {
            path: spec_path.to_path_buf(),
            source,
        })
}

/// Signals arrive through a signalfd; the child unblocks them before exec.
pub(super) fn signal_fd() -> Result<SignalFd, ShimError> {
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
    SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .map_err(sys("creating a signalfd"))
}

/// The spec's bounding set, which the init keeps.
pub(super) fn capabilities(spec: &Spec) -> Result<CapsHashSet, ShimError> {
    Ok(capabilities::parse(
        &spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().as_ref())
            .map(|b| b.iter().map(|c| c.to_string()).collect::<Vec<_>>())
            .unwrap_or_default(),
    )?)
}

/// The spec's seccomp profile compiled here, before the clone, so the init only loads it.
pub(super) fn seccomp_filters(spec: &Spec) -> Result<Vec<BpfProgram>, ShimError> {
    Ok(
        match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(profile) => seccomp::compile(profile)?,
            None => Vec::new(),
        },
    )
}

/// Binds the container's control socket (non-blocking: the event loop polls it).
pub(super) fn control_socket(rec: &Record) -> Result<UnixListener, ShimError> {
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
    Ok(listener)
}

/// cgroup v2 filters devices only with BPF programs, which berth does not load: a container
/// that could mknod would reach host disks. Without the v1 devices controller, CAP_MKNOD
/// goes (the standard nodes are made before caps are dropped).
pub(super) fn drop_mknod_without_device_filter(
    spec: &Spec,
    cgroup: &Cgroup,
    caps: &mut CapsHashSet,
    id: &str,
) {
    let restricts_devices = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().as_ref())
        .is_some_and(|d| !d.is_empty());
    if restricts_devices && matches!(cgroup, Cgroup::V2 { .. }) {
        caps.remove(&caps::Capability::CAP_MKNOD);
        tracing::info!(id = %id, "cgroup v2: no device filter, CAP_MKNOD dropped");
    }
}

/// The external OCI runtime (runc, crun) that runs the container instead of berth's init.
pub(super) fn external_runtime(cfg: &ContainerConfig) -> Result<Option<OciRuntime>, ShimError> {
    cfg.oci_runtime
        .as_deref()
        .map(OciRuntime::parse)
        .transpose()
        .map_err(|e| ShimError::Init {
            code: 125,
            message: e.to_string(),
        })
}

/// Records the container as running as `pid`, the shim being this process.
pub(super) fn record_running(state: &mut State, rec: &Record, pid: Pid) -> Result<(), ShimError> {
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
    State::reserve_room(&rec.state_path());
    Ok(())
}
