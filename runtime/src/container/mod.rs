//! Containers: from a [`ContainerConfig`] to a running process in its own namespaces and
//! cgroup, watched by a per-container shim that outlives its caller.
//!
//! The library never clones a container itself (its caller may be a multi-threaded daemon):
//! [`Runtime::start`] execs `shim_exe shim DIR`, a fresh single-threaded process that does.

pub mod block_io;
pub mod capabilities;
mod cgroup_mounts;
pub mod cgroups;
pub mod commit;
pub mod config;
pub mod control;
pub mod copy;
pub mod devices;
pub mod exec;
mod freeze;
mod image_ref;
pub mod init;
mod joined;
mod lifecycle;
pub mod logs;
pub mod mounts;
mod names;
pub mod namespaces;
pub mod oci_runtime;
pub mod process;
pub mod realtime;
pub mod record;
pub mod recover;
pub mod rootfs;
pub mod seccomp;
pub mod shim;
pub mod spec;
pub mod state;
mod update;
pub mod usage;
pub mod volume_mount;
pub mod volumes;

use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;

pub use config::{
    BindRecursive, BlockIo, ContainerConfig, DeviceRate, ExecConfig, FileOwner, HostNamespaces,
    IpcMode, MountSpec, NetworkMode, Propagation, Resources, RootfsSource, SecurityOpt, Ulimit,
};
pub use image_ref::IMAGE_REF_FILE;
pub use lifecycle::{ExitInfo, ExitWatch, USER_STOPPED};
pub use record::Record;
pub use recover::{Creation, HalfMade, LiveShim, ShimLook, look_at_shim, shim_gone};
pub use state::{State, Status};

use crate::modes;
use control::{ControlError, Request, Response};
use shim::StartReport;

/// Where an instance keeps its files, and which executable is the shim.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `--root`: containers, volumes.
    pub root: PathBuf,
    /// `--run`: control sockets, pinned namespaces.
    pub run: PathBuf,
    /// The executable that understands `shim DIR` and `exec-helper DIR JSON` (the berth
    /// binary); the library cannot know its path.
    pub shim_exe: PathBuf,
    /// cgroup directory (below each hierarchy root) that holds this instance's containers;
    /// removed when its last container goes. Default `berth`.
    pub cgroup_parent: String,
}

impl RuntimeConfig {
    /// A config with the default cgroup parent.
    pub fn new(root: PathBuf, run: PathBuf, shim_exe: PathBuf) -> RuntimeConfig {
        RuntimeConfig {
            root,
            run,
            shim_exe,
            cgroup_parent: "berth".into(),
        }
    }
}

/// Errors of the container API.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("no such container: {0}")]
    NotFound(String),
    #[error("container name {name:?} is already in use by container {id}")]
    NameInUse { name: String, id: String },
    #[error("container name {0:?} is invalid: use letters, digits, '_', '.', '-'")]
    BadName(String),
    /// A hostname that would add lines to the container's /etc/hosts and /etc/hostname.
    #[error("hostname {0:?} contains a control character")]
    BadHostname(String),
    #[error("{0:?} matches more than one container; use more of the id")]
    Ambiguous(String),
    #[error("no command given (the image has no Cmd or Entrypoint and none was passed)")]
    NoCommand,
    #[error("volume name {0:?} is invalid")]
    BadVolume(String),
    #[error("cgroup parent {0:?} is invalid (a path of names, no `.` or `..`)")]
    BadCgroupParent(String),
    #[error(transparent)]
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    Mount(#[from] mounts::MountError),
    #[error(transparent)]
    Process(#[from] process::ProcessError),
    #[error(transparent)]
    Namespace(#[from] namespaces::NamespaceError),
    #[error(transparent)]
    State(#[from] state::StateError),
    #[error(transparent)]
    Record(#[from] record::RecordError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error(transparent)]
    Volume(#[from] Box<volumes::VolumeError>),
    #[error("{what} {path}")]
    Io {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("starting the shim {exe}")]
    SpawnShim {
        exe: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the shim for {id} exited without reporting (see {log})")]
    ShimSilent { id: String, log: PathBuf },
    /// The container's own start failure, with Docker's exit code (125/126/127).
    #[error("{message}")]
    Start { code: i32, message: String },
    #[error("the shim ended without reporting the container's exit")]
    ShimLost,
    #[error("container {id} is running: stop it first or use force")]
    Running { id: String },
    #[error("container {id} is already running")]
    AlreadyRunning { id: String },
    /// `update` could not write the new limits into the running container's cgroup.
    #[error("updating the limits of container {name}")]
    Limits {
        name: String,
        #[source]
        source: cgroups::CgroupError,
    },
    /// `pause`/`unpause` could not drive the cgroup freezer.
    #[error("{verb} container {name}")]
    Freezer {
        verb: &'static str,
        name: String,
        #[source]
        source: cgroups::CgroupError,
    },
    #[error(transparent)]
    UnknownRuntime(#[from] oci_runtime::UnknownRuntime),
    #[error("--runtime {runtime}: {what} is not supported with an external runtime: {instead}")]
    ExternalRuntime {
        runtime: String,
        what: &'static str,
        instead: &'static str,
    },
}

impl RuntimeError {
    /// The exit code the CLI should use, as Docker does.
    pub fn exit_code(&self) -> i32 {
        match self {
            RuntimeError::Start { code, .. } => *code,
            RuntimeError::Process(p) => p.exit_code(),
            _ => 125,
        }
    }
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(io::Error) -> RuntimeError {
    let path = path.to_path_buf();
    move |source| RuntimeError::Io { what, path, source }
}

/// The container API of one berth instance.
#[derive(Debug, Clone)]
pub struct Runtime {
    cfg: RuntimeConfig,
}

fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut b);
    }
    hex::encode(b)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Deletes every trace of a container: netns pin, run dir, container dir.
pub(crate) fn remove_files(rec: &Record) {
    if let Some(ns) = &rec.netns {
        namespaces::unpin_netns(ns);
    }
    remove_record(rec);
}

/// What makes a container known: its dirs and its name.
pub(crate) fn remove_record(rec: &Record) {
    let _ = fs::remove_dir_all(retire_record(rec));
}

/// Makes the container unknown at once (run dir gone, container dir renamed aside, name
/// released) and returns the dir whose contents are still to be deleted. The shim of a
/// `--rm` container retires it before reporting the exit and deletes the rest afterwards:
/// freeing a file's blocks can wait on the disk (a synchronous discard on a journal-less
/// ext4 mounted with `discard`), which nobody waiting for the exit needs to sit through.
pub(crate) fn retire_record(rec: &Record) -> PathBuf {
    joined::unmount_shm(&rec.dir);
    let _ = fs::remove_dir_all(&rec.run_dir);
    // Renamed aside first: a removal cut short (kill -9) leaves a dir that recovery deletes
    // (`Runtime::repair_index`), never half of a container dir that still looks like one.
    let aside = rec
        .dir
        .with_file_name(format!("{}{}", recover::REMOVING, rec.id));
    let doomed = if fs::rename(&rec.dir, &aside).is_ok() {
        aside
    } else {
        rec.dir.clone()
    };
    names::Names::of(rec).release(&rec.config.name, &rec.id);
    doomed
}

impl Runtime {
    /// The instance's run directory (sockets, pins), where its daemon's sockets live.
    pub fn run_dir(&self) -> &Path {
        &self.cfg.run
    }

    /// An API over the instance described by `cfg`.
    pub fn new(cfg: RuntimeConfig) -> Runtime {
        Runtime { cfg }
    }

    fn containers_dir(&self) -> PathBuf {
        self.cfg.root.join("containers")
    }

    /// The name index, built from the records first if this root predates it.
    fn names(&self) -> names::Names {
        let names = names::Names::new(&self.containers_dir());
        if let Err(err) = names.ensure() {
            tracing::warn!(%err, "building the container name index; names are looked up by scanning");
        }
        names
    }

    /// The host directory of a named volume (`<root>/volumes/NAME/_data`).
    pub fn volume_dir(&self, name: &str) -> PathBuf {
        self.cfg.root.join("volumes").join(name).join("_data")
    }

    /// Every container of the instance with its state, oldest first.
    pub fn list(&self) -> Vec<(Record, State)> {
        let mut out = Vec::new();
        let Ok(rd) = fs::read_dir(self.containers_dir()) else {
            return out;
        };
        for e in rd.flatten() {
            // Dot entries are removals under way (see `remove_record`).
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let Ok(rec) = Record::load(&e.path()) else {
                continue;
            };
            if let Ok(st) = self.load_state(&rec) {
                out.push((rec, st));
            }
        }
        out.sort_by_key(|(_, s)| s.created_at);
        out
    }

    /// Finds a container by exact name, exact id or unique id prefix.
    pub fn resolve(&self, what: &str) -> Result<Record, RuntimeError> {
        if let Some(rec) = self.names().lookup(what) {
            return Ok(rec);
        }
        if what.len() == 64
            && what.bytes().all(|b| b.is_ascii_hexdigit())
            && let Ok(rec) = Record::load(&self.containers_dir().join(what))
        {
            return Ok(rec);
        }
        let all = self.list();
        if let Some((r, _)) = all
            .iter()
            .find(|(r, _)| r.config.name == what || r.id == what)
        {
            return Ok(r.clone());
        }
        let hits: Vec<_> = all.iter().filter(|(r, _)| r.id.starts_with(what)).collect();
        match hits.as_slice() {
            [(r, _)] if !what.is_empty() => Ok(r.clone()),
            [] | [_] => Err(RuntimeError::NotFound(what.to_string())),
            _ => Err(RuntimeError::Ambiguous(what.to_string())),
        }
    }

    /// Current state of a container.
    /// A container that says it runs but whose shim died is settled first (its processes
    /// killed, the exit recorded): see [`recover`].
    pub fn state(&self, rec: &Record) -> Result<State, RuntimeError> {
        Ok(self.load_state(rec)?)
    }

    /// Validates `config` and lays the container out on disk (bundle, state, netns pin),
    /// without starting it. Leaves nothing behind on error.
    pub fn create(&self, config: ContainerConfig) -> Result<Record, RuntimeError> {
        let rec = self.create_pending(config)?;
        if let Err(e) = self.finish_create(&rec) {
            remove_files(&rec);
            return Err(e);
        }
        Ok(rec)
    }

    /// [`Runtime::create`], leaving the container marked as being created (see [`recover`])
    /// until [`Runtime::finish_create`]: for a caller with more to do before the container
    /// is whole (attach it, name it), so that a crash in between is seen and rolled back.
    pub fn create_pending(&self, mut config: ContainerConfig) -> Result<Record, RuntimeError> {
        if config.args.is_empty() {
            return Err(RuntimeError::NoCommand);
        }
        if let Some(r) = &config.oci_runtime {
            oci_runtime::OciRuntime::parse(r)?;
            // berth's init is bound into the container by berth's own executor, which an
            // external runtime's bundle does not carry.
            if config.init {
                return Err(RuntimeError::ExternalRuntime {
                    runtime: r.clone(),
                    what: "--init",
                    instead: "drop --runtime (berth's own executor runs --init), or make an \
                              init inside the image the entrypoint (e.g. `tini --` or \
                              `dumb-init`)",
                });
            }
        }
        for u in &config.ulimits {
            if let Some(t) = spec::rlimit_type(&u.name) {
                process::check_rlimit(t, u.hard)?;
            }
        }
        let id = random_id();
        if config.name.is_empty() {
            config.name = format!("berth-{}", &id[..12]);
        }
        if !valid_name(&config.name) {
            return Err(RuntimeError::BadName(config.name));
        }
        if let Some(h) = &config.hostname
            && h.chars().any(char::is_control)
        {
            return Err(RuntimeError::BadHostname(h.clone()));
        }
        let names = self.names();
        if let Some(r) = names.lookup(&config.name) {
            return Err(RuntimeError::NameInUse {
                name: config.name,
                id: r.id,
            });
        }
        let dir = self.containers_dir().join(&id);
        let run_dir = self.cfg.run.join("c").join(&id[..12]);
        let netns = match config.network {
            NetworkMode::Host | NetworkMode::Join(_) => None,
            _ => Some(self.cfg.run.join("netns").join(&id[..12])),
        };
        let mut volumes = Vec::new();
        for m in &config.mounts {
            if let MountSpec::Volume { name, .. } = m {
                if !valid_name(name) {
                    return Err(RuntimeError::BadVolume(name.clone()));
                }
                volumes.push(self.volume_dir(name));
            }
        }
        let cgroup_parent = match config.cgroup_parent.as_deref() {
            None | Some("") => self.cfg.cgroup_parent.clone(),
            Some(p) => {
                let names: Vec<&str> = p.split('/').filter(|c| !c.is_empty()).collect();
                if names.is_empty() || names.iter().any(|c| *c == "." || *c == "..") {
                    return Err(RuntimeError::BadCgroupParent(p.to_string()));
                }
                names.join("/")
            }
        };
        let rec = Record {
            id: id.clone(),
            config,
            dir,
            run_dir,
            netns,
            volumes,
            cgroup: format!("{}/{id}", cgroup_parent.trim_matches('/')),
        };
        if let Err(e) = self.lay_out(&rec) {
            remove_files(&rec);
            return Err(e);
        }
        // Claimed once the record exists, so a create of the same name elsewhere sees a live
        // owner; the loser of such a race leaves nothing behind.
        match names.claim(&rec.config.name, &rec.id) {
            Ok(()) => Ok(rec),
            Err(names::ClaimError::Taken(owner)) => {
                remove_files(&rec);
                Err(RuntimeError::NameInUse {
                    name: rec.config.name,
                    id: owner,
                })
            }
            Err(names::ClaimError::Io(source)) => {
                remove_files(&rec);
                Err(RuntimeError::Io {
                    what: "claiming the container name",
                    path: self.cfg.root.join("container-names"),
                    source,
                })
            }
        }
    }

    fn lay_out(&self, rec: &Record) -> Result<(), RuntimeError> {
        let cfg = &rec.config;
        let dir = &rec.dir;
        if let Some(parent) = dir.parent() {
            modes::root_dir(&self.cfg.root, parent).map_err(io_err("creating", parent))?;
        }
        recover::make_marked_dir(dir).map_err(io_err("creating", dir))?;
        if let Some(parent) = rec.netns.as_deref().and_then(Path::parent) {
            modes::run_dir(&self.cfg.run, parent).map_err(io_err("creating", parent))?;
        }
        // The new netns is made on a thread while the bundle is written (dropping it on an
        // early error waits for it, so that `remove_files` finds the pin to remove).
        let pin = rec
            .netns
            .as_deref()
            .map(namespaces::pin_netns_async)
            .transpose()?;
        let rootfs = match &cfg.rootfs {
            RootfsSource::Layers(_) => {
                // The upper dir's mode is that of the container's `/`.
                for (d, mode) in [
                    ("rootfs", modes::PRIVATE_DIR),
                    ("upper", modes::CONTAINER_DIR),
                    ("work", modes::PRIVATE_DIR),
                ] {
                    let p = dir.join(d);
                    modes::mkdir(&p, mode).map_err(io_err("creating", &p))?;
                }
                dir.join("rootfs")
            }
            RootfsSource::Dir(d) => {
                if !d.is_dir() {
                    return Err(RuntimeError::Io {
                        what: "rootfs directory",
                        path: d.clone(),
                        source: io::Error::from(io::ErrorKind::NotFound),
                    });
                }
                d.clone()
            }
        };
        for v in &rec.volumes {
            if let Some(parent) = v.parent() {
                modes::root_dir(&self.cfg.root, parent).map_err(io_err("creating volume", v))?;
            }
            modes::mkdir(v, modes::CONTAINER_DIR).map_err(io_err("creating volume", v))?;
        }
        let hostname = cfg
            .hostname
            .clone()
            .unwrap_or_else(|| rec.id[..12].to_string());
        let hosts = cfg.hosts.clone().unwrap_or_else(|| {
            format!(
                "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"
            )
        });
        let resolv = cfg
            .resolv_conf
            .clone()
            .unwrap_or_else(|| fs::read_to_string("/etc/resolv.conf").unwrap_or_default());
        let files = [
            ("hosts", hosts),
            ("hostname", format!("{hostname}\n")),
            ("resolv.conf", resolv),
        ];
        // Bind-mounted into the container, read there by any uid.
        for (name, content) in &files {
            let p = dir.join(name);
            modes::write_file(&p, content.as_bytes(), modes::CONTAINER_FILE)
                .map_err(io_err("writing", &p))?;
        }
        // Resolved now for the bundle's sake (crun/runc); an unknown user is reported by the
        // container's init at start, with the container's own files as the truth.
        let etc_root = match &cfg.rootfs {
            RootfsSource::Dir(d) => Some(d.clone()),
            RootfsSource::Layers(l) => l
                .iter()
                .rev()
                .find(|d| d.join("etc/passwd").symlink_metadata().is_ok())
                .cloned(),
        };
        let user = match etc_root
            .and_then(|r| Some((process::resolve_user(cfg.user.as_deref(), &r).ok()?, r)))
        {
            // berth's own init resolves the extra groups again at start, in the container's
            // files (mounts included); crun and runc take them from here, so for those an
            // unknown group is an error now rather than a process without it.
            Some((mut u, r)) => {
                let added = process::add_groups(&mut u, &cfg.group_add, &r);
                if cfg.oci_runtime.is_some() {
                    added?;
                }
                Some(u)
            }
            None => None,
        };
        // Files bound as copies with their own owner and mode (secrets' uid/gid/mode).
        let owned = mounts::owned_copies(cfg, dir)?;
        let cfg = owned.as_ref().unwrap_or(cfg);
        let spec = spec::build(
            &rec.id,
            cfg,
            &spec::SpecPaths {
                rootfs: &rootfs,
                hosts: &dir.join("hosts"),
                hostname: &dir.join("hostname"),
                resolv_conf: &dir.join("resolv.conf"),
                netns: rec.netns.as_deref(),
                volume_dirs: &rec.volumes,
                cgroup: &rec.cgroup,
                user: user.as_ref(),
                shm: &joined::shm_dir(dir),
            },
        )?;
        // The log exists from the start so a foreground reader can open it before the shim
        // runs (and keep reading after `--rm` deleted it).
        let p = rec.log_path();
        modes::create_file(&p, modes::PRIVATE_FILE).map_err(io_err("creating", &p))?;
        let p = rec.spec_path();
        state::write_json_atomic(&p, &spec).map_err(io_err("writing", &p))?;
        let p = dir.join(Record::FILE);
        state::write_json_atomic(&p, rec).map_err(io_err("writing", &p))?;
        State::new(&rec.id, &cfg.name).save(&rec.state_path())?;
        if let Some(pin) = pin {
            pin.wait()?;
        }
        Ok(())
    }

    /// Removes a container; a running one only with `force` (it is killed first).
    pub fn remove(&self, rec: &Record, force: bool) -> Result<(), RuntimeError> {
        if self.is_running(rec) {
            if !force {
                return Err(RuntimeError::Running { id: rec.id.clone() });
            }
            // Frozen tasks would not act on the SIGKILL below (cgroup v1).
            if self.is_paused(rec) {
                let _ = self.unpause(rec);
            }
            // A shim that no longer answers (killed) is skipped: the cgroup sweep below kills
            // whatever of the container is left.
            if let Ok(waiter) = control::send(&rec.socket(), &Request::Wait) {
                let _ = control::call(
                    &rec.socket(),
                    &Request::Kill {
                        signal: libc::SIGKILL,
                    },
                );
                let _ = self.read_exit(rec, waiter);
            }
        }
        if let Ok(cg) = cgroups::Cgroup::locate(&rec.cgroup) {
            let _ = cg.remove();
        }
        remove_files(rec);
        Ok(())
    }

    /// The helper command that runs `exec` inside the running container; the caller picks
    /// its stdio (a daemon pipes or hands over sockets, the CLI inherits its own) and waits
    /// for it: its exit status is the process's.
    pub fn exec_command(&self, rec: &Record, exec: &ExecConfig) -> Result<Command, RuntimeError> {
        if !self.is_running(rec) {
            return Err(RuntimeError::Start {
                code: 125,
                message: format!("container {} is not running", rec.config.name),
            });
        }
        let json = serde_json::to_string(exec).map_err(|e| RuntimeError::SpawnShim {
            exe: self.cfg.shim_exe.clone(),
            source: io::Error::other(e),
        })?;
        let mut cmd = Command::new(&self.cfg.shim_exe);
        cmd.arg("exec-helper").arg(&rec.dir).arg(json);
        if let Some(v) = cgroups::export_v1_hierarchies() {
            cmd.env(shim::CGROUP_V1_ENV, v);
        }
        Ok(cmd)
    }

    /// Runs `exec` inside the running container through a fresh helper process that
    /// inherits the caller's stdio; returns the process's exit status.
    pub fn exec(&self, rec: &Record, exec: &ExecConfig) -> Result<i32, RuntimeError> {
        let status =
            self.exec_command(rec, exec)?
                .status()
                .map_err(|source| RuntimeError::SpawnShim {
                    exe: self.cfg.shim_exe.clone(),
                    source,
                })?;
        use std::os::unix::process::ExitStatusExt;
        Ok(status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
    }

    /// Renames a container (the name is only berth's; nothing in the container changes).
    pub fn rename(&self, rec: &Record, name: &str) -> Result<Record, RuntimeError> {
        if !valid_name(name) {
            return Err(RuntimeError::BadName(name.to_string()));
        }
        let names = self.names();
        match names.claim(name, &rec.id) {
            Ok(()) => {}
            Err(names::ClaimError::Taken(id)) => {
                return Err(RuntimeError::NameInUse {
                    name: name.to_string(),
                    id,
                });
            }
            Err(names::ClaimError::Io(source)) => {
                return Err(RuntimeError::Io {
                    what: "claiming the container name",
                    path: self.cfg.root.join("container-names"),
                    source,
                });
            }
        }
        let mut new = rec.clone();
        new.config.name = name.to_string();
        let p = rec.dir.join(Record::FILE);
        state::write_json_atomic(&p, &new).map_err(io_err("writing", &p))?;
        let mut st = self.state(rec)?;
        st.name = name.to_string();
        st.save(&rec.state_path())?;
        if rec.config.name != name {
            names.release(&rec.config.name, &rec.id);
        }
        Ok(new)
    }

    /// cgroup counters and network bytes (rx, tx) of a running container.
    pub fn stats(&self, rec: &Record) -> Option<(cgroups::CgroupStats, u64, u64)> {
        let st = self.state(rec).ok()?;
        if st.status != Status::Running || st.pid <= 0 {
            return None;
        }
        let cg = cgroups::Cgroup::locate(&rec.cgroup).ok()?.stats();
        let (mut rx, mut tx) = (0, 0);
        for l in fs::read_to_string(format!("/proc/{}/net/dev", st.pid))
            .unwrap_or_default()
            .lines()
            .skip(2)
        {
            let Some((iface, rest)) = l.split_once(':') else {
                continue;
            };
            if iface.trim() == "lo" {
                continue;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            rx += f.first().copied().unwrap_or(0);
            tx += f.get(8).copied().unwrap_or(0);
        }
        Some((cg, rx, tx))
    }

    /// The detailed usage of a running container (Docker's stats document); none when it
    /// does not run.
    pub fn usage(&self, rec: &Record) -> Option<usage::Usage> {
        let st = self.state(rec).ok()?;
        if st.status != Status::Running || st.pid <= 0 {
            return None;
        }
        let mut u = usage::of_cgroup(&cgroups::Cgroup::locate(&rec.cgroup).ok()?);
        u.networks = usage::networks_of(st.pid);
        Some(u)
    }

    /// Copies `cpath` from the container into the host directory `host_dir`.
    pub fn copy_out(
        &self,
        rec: &Record,
        cpath: &Path,
        host_dir: &Path,
    ) -> Result<(), copy::CopyError> {
        copy::copy_out(&self.cfg.shim_exe, rec, cpath, host_dir)
    }

    /// Writes the container's flattened root filesystem as a tar (`export`).
    pub fn export(&self, rec: &Record, out: &mut dyn io::Write) -> Result<(), copy::CopyError> {
        copy::export(&self.cfg.shim_exe, rec, out)
    }

    /// Copies the host path `host` into the container directory `cdir`.
    pub fn copy_in(&self, rec: &Record, host: &Path, cdir: &Path) -> Result<(), copy::CopyError> {
        copy::copy_in(&self.cfg.shim_exe, rec, host, cdir)
    }

    /// Copies `(host path, name)` entries in one stream, each under its name relative to
    /// the container directory `cdir` (a watch's batch of changes).
    pub fn copy_in_entries(
        &self,
        rec: &Record,
        entries: &[(PathBuf, PathBuf)],
        cdir: &Path,
    ) -> Result<(), copy::CopyError> {
        copy::copy_in_entries(&self.cfg.shim_exe, rec, entries, cdir)
    }

    /// The stat of `cpath` in the container (`None`: no such path).
    pub fn path_stat(
        &self,
        rec: &Record,
        cpath: &Path,
    ) -> Result<Option<copy::PathStat>, copy::CopyError> {
        copy::path_stat(&self.cfg.shim_exe, rec, cpath)
    }

    /// Writes a tar of `cpath` in the container to `out` (Docker's archive GET).
    pub fn archive_out(
        &self,
        rec: &Record,
        cpath: &Path,
        out: &mut dyn io::Write,
    ) -> Result<(), copy::CopyError> {
        copy::archive_out(&self.cfg.shim_exe, rec, cpath, out)
    }

    /// Unpacks a tar into the container directory `cdir` (Docker's archive PUT).
    pub fn archive_in(
        &self,
        rec: &Record,
        input: &mut dyn io::Read,
        cdir: &Path,
        opts: copy::PutOptions,
    ) -> Result<(), copy::CopyError> {
        copy::archive_in(&self.cfg.shim_exe, rec, input, cdir, opts)
    }

    /// Host pids of the container's processes (`top`).
    pub fn pids(&self, rec: &Record) -> Vec<i32> {
        cgroups::Cgroup::locate(&rec.cgroup)
            .map(|c| c.pids())
            .unwrap_or_default()
    }
}
