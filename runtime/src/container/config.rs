//! What a caller asks for when it creates a container: the berth-level description that
//! `spec` turns into an OCI runtime-spec `config.json` plus the few berth-only settings
//! (overlay layers, logs, stop behaviour) that the OCI format has no field for.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Where the container's root filesystem comes from. Layers are stacked with overlayfs inside
/// the container's own mount namespace, so a crash never leaves a host mount behind.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case")]
pub enum RootfsSource {
    /// Read-only layer directories, bottom to top (as `Image::layer_dirs()` returns them);
    /// writes go to a per-container upper dir that `rm` deletes.
    Layers(Vec<PathBuf>),
    /// A plain directory used as is (as `podman run --rootfs`); writes land in it.
    Dir(PathBuf),
}

/// The container's network namespace, as Docker's `--network` values.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A new, empty namespace pinned under the run dir before the container starts, so that
    /// netd can attach it without racing the container (podman's model).
    #[default]
    New,
    /// A new namespace nobody attaches: loopback only.
    None,
    /// The host's namespace.
    Host,
    /// Another container's namespace, by its pin (`--network container:X`, compose
    /// `network_mode: service:x`); nothing is pinned or removed for this one.
    Join(PathBuf),
}

/// A mount the user asked for (`-v`, `--tmpfs`, compose `volumes:`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum MountSpec {
    /// A host path bound into the container.
    Bind {
        source: PathBuf,
        target: PathBuf,
        #[serde(default)]
        read_only: bool,
        /// Bind a copy of the file, made at create with this owner and mode, instead of the
        /// file itself (a bind mount cannot change either): compose secrets' and configs'
        /// `uid`/`gid`/`mode`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        owned_copy: Option<FileOwner>,
        /// Mount propagation between the host and the container (`rprivate` when unset;
        /// `private`, `rshared`, `shared`, `rslave`, `slave`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        propagation: Option<Propagation>,
        /// What becomes of the mounts under `source` (Docker's `bind-recursive`).
        #[serde(default, skip_serializing_if = "BindRecursive::is_default")]
        recursive: BindRecursive,
    },
    /// A named volume under `<root>/volumes/NAME/_data`, created on first use and filled
    /// from the image's content at the target, as Docker does.
    Volume {
        name: String,
        target: PathBuf,
        #[serde(default)]
        read_only: bool,
        /// Leave an empty volume empty instead of filling it from the image
        /// (`volume-nocopy`, compose `volume.nocopy`).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        nocopy: bool,
        /// Mount only this directory of the volume (relative, resolved inside the volume at
        /// each start; compose `volume.subpath`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        subpath: Option<PathBuf>,
    },
    /// A tmpfs with optional mount options (`size=64m,mode=1777`).
    Tmpfs {
        target: PathBuf,
        #[serde(default)]
        options: Vec<String>,
    },
}

/// How a bind mount treats the mounts under its source, as Docker's `bind-recursive` (Compose
/// `bind.recursive`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum BindRecursive {
    /// Submounts come along; read-only reaches them where the kernel can (5.12+).
    #[default]
    Enabled,
    /// The source's own mount only.
    Disabled,
    /// Submounts come along and stay writable under a read-only bind.
    Writable,
    /// Submounts come along, read-only with the bind; an error where the kernel cannot.
    Readonly,
}

impl BindRecursive {
    /// Docker's and Compose's word for `s` (`enabled`, `disabled`, `writable`, `readonly`).
    pub fn parse(s: &str) -> Result<BindRecursive, String> {
        match s {
            "enabled" => Ok(BindRecursive::Enabled),
            "disabled" => Ok(BindRecursive::Disabled),
            "writable" => Ok(BindRecursive::Writable),
            "readonly" => Ok(BindRecursive::Readonly),
            other => Err(format!(
                "{other:?} is not a bind recursion (enabled, disabled, writable, readonly)"
            )),
        }
    }

    /// Whether this is the default (left out of records).
    pub fn is_default(&self) -> bool {
        *self == BindRecursive::Enabled
    }
}

/// How mount events propagate between a bind mount and its host source (Docker's
/// `bind-propagation`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Propagation {
    Private,
    Rprivate,
    Shared,
    Rshared,
    Slave,
    Rslave,
}

impl Propagation {
    /// Parses Docker's names (`rprivate`, `shared`, ...).
    pub fn parse(s: &str) -> Result<Propagation, String> {
        Ok(match s {
            "private" => Propagation::Private,
            "rprivate" => Propagation::Rprivate,
            "shared" => Propagation::Shared,
            "rshared" => Propagation::Rshared,
            "slave" => Propagation::Slave,
            "rslave" => Propagation::Rslave,
            other => {
                return Err(format!(
                    "{other:?}: expected private, rprivate, shared, rshared, slave or rslave"
                ));
            }
        })
    }

    /// The OCI mount option.
    pub fn as_str(self) -> &'static str {
        match self {
            Propagation::Private => "private",
            Propagation::Rprivate => "rprivate",
            Propagation::Shared => "shared",
            Propagation::Rshared => "rshared",
            Propagation::Slave => "slave",
            Propagation::Rslave => "rslave",
        }
    }
}

/// The owner and permission bits of a file berth copies for a container.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileOwner {
    pub uid: u32,
    pub gid: u32,
    pub mode: u32,
}

/// A resource limit as `--ulimit name=soft:hard`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ulimit {
    /// Docker's name (`nofile`, `nproc`, `core` ...).
    pub name: String,
    pub soft: u64,
    pub hard: u64,
}

/// cgroup limits; `None` means "inherit", as Docker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Resources {
    /// Hard memory limit in bytes (`--memory`).
    pub memory: Option<i64>,
    /// CPU quota in CPUs (`--cpus 1.5`).
    pub cpus: Option<f64>,
    /// Relative CPU weight (`--cpu-shares`, default 1024).
    pub cpu_shares: Option<u64>,
    /// Allowed CPUs (`--cpuset-cpus 0-1`).
    pub cpuset_cpus: Option<String>,
    /// Maximum number of tasks (`--pids-limit`).
    pub pids_limit: Option<i64>,
    /// Soft memory limit in bytes the kernel reclaims down to under pressure
    /// (`--memory-reservation`).
    #[serde(default)]
    pub memory_reservation: Option<i64>,
    /// Memory plus swap in bytes, -1 unlimited (`--memory-swap`); unset with a memory limit:
    /// no swap.
    #[serde(default)]
    pub memory_swap: Option<i64>,
    /// How readily the kernel swaps the container's pages, 0-100 (`--memory-swappiness`;
    /// cgroup v1 only, v2 has no such knob).
    #[serde(default)]
    pub memory_swappiness: Option<u64>,
    /// The container's tasks are paused, not killed, when they reach the memory limit
    /// (`--oom-kill-disable`; cgroup v1 only).
    #[serde(default)]
    pub oom_kill_disable: bool,
    /// Block I/O weights and throttles (`--blkio-weight`, `--device-read-bps` ...).
    #[serde(default)]
    pub block_io: BlockIo,
    /// Real-time scheduling period in microseconds (`--cpu-rt-period`; cgroup v1 with RT
    /// group scheduling only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<u64>,
    /// Real-time runtime in microseconds per period (`--cpu-rt-runtime`): the budget of the
    /// cgroups above grows by it while the container runs (`realtime.rs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<u64>,
}

/// A container's block I/O share and limits, per device by its `major:minor` (the host's
/// numbers, resolved from the paths the user named).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct BlockIo {
    /// Relative weight, 10-1000 (`--blkio-weight`).
    #[serde(default)]
    pub weight: Option<u16>,
    /// Per-device weights, 10-1000 (`--blkio-weight-device`).
    #[serde(default)]
    pub weight_device: Vec<DeviceRate>,
    /// Bytes per second read (`--device-read-bps`).
    #[serde(default)]
    pub read_bps: Vec<DeviceRate>,
    /// Bytes per second written (`--device-write-bps`).
    #[serde(default)]
    pub write_bps: Vec<DeviceRate>,
    /// Read operations per second (`--device-read-iops`).
    #[serde(default)]
    pub read_iops: Vec<DeviceRate>,
    /// Write operations per second (`--device-write-iops`).
    #[serde(default)]
    pub write_iops: Vec<DeviceRate>,
}

impl BlockIo {
    /// Whether nothing is asked.
    pub fn is_empty(&self) -> bool {
        self == &BlockIo::default()
    }
}

/// One block device's weight or rate.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeviceRate {
    pub major: u64,
    pub minor: u64,
    /// The weight or the rate per second.
    pub value: u64,
}

/// Everything the runtime needs to create one container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ContainerConfig {
    /// Unique name (`--name`); generated when empty.
    pub name: String,
    pub rootfs: RootfsSource,
    /// The full argv (entrypoint + cmd already combined by the caller).
    pub args: Vec<String>,
    /// `KEY=VALUE` entries, image env first, overrides after (last wins).
    pub env: Vec<String>,
    /// `name`, `uid`, `uid:gid` or `name:group`, resolved in the container's /etc/passwd.
    pub user: Option<String>,
    /// Working directory inside the container, created when missing.
    pub working_dir: Option<PathBuf>,
    pub hostname: Option<String>,
    pub network: NetworkMode,
    /// Content of the container's /etc/hosts, /etc/resolv.conf (netd computes them).
    pub hosts: Option<String>,
    pub resolv_conf: Option<String>,
    pub mounts: Vec<MountSpec>,
    pub read_only: bool,
    pub resources: Resources,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub privileged: bool,
    /// `--security-opt seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// `--security-opt no-new-privileges=false` turns it off; on by default here.
    pub no_new_privileges: bool,
    pub ulimits: Vec<Ulimit>,
    pub sysctls: BTreeMap<String, String>,
    /// Size of /dev/shm in bytes (Docker's default 64 MiB).
    pub shm_size: u64,
    /// Run a minimal reaper as PID 1 (`--init`).
    pub init: bool,
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// Remove the container when it exits (`--rm`); the shim does it, so it also happens
    /// when the CLI that started it is gone.
    pub auto_remove: bool,
    /// Signal `stop` sends first (`--stop-signal`, the image's StopSignal, else SIGTERM).
    pub stop_signal: i32,
    /// Seconds `stop` waits before SIGKILL (`--stop-timeout`, default 10).
    pub stop_timeout: u64,
    /// Log rotation: bytes per file and number of files kept (json-file's max-size/max-file).
    pub log_max_size: u64,
    pub log_max_files: u32,
    /// Free-form labels (the engine keeps project/service here).
    pub labels: BTreeMap<String, String>,
    /// Names of the volume mounts made for this container alone (`-v /dst`, the image's
    /// VOLUME): `rm -v` and `--rm` remove them.
    #[serde(default)]
    pub anonymous_volumes: Vec<String>,
    /// `crun` or `runc` to run the bundle with instead of berth's own executor
    /// (`--runtime`, compose `runtime:`).
    #[serde(default)]
    pub oci_runtime: Option<String>,
    /// Host devices bound into the container and allowed in its device cgroup (`--device`).
    #[serde(default)]
    pub devices: Vec<super::devices::DeviceMapping>,
    /// Extra device cgroup allow rules (`--device-cgroup-rule c 1:3 mr`).
    #[serde(default)]
    pub device_cgroup_rules: Vec<String>,
    /// The OOM killer's score adjustment of the container's processes, -1000..1000
    /// (`--oom-score-adj`).
    #[serde(default)]
    pub oom_score_adj: Option<i32>,
    /// Extra groups of the container's process, names (in the container's /etc/group) or
    /// numbers (`--group-add`).
    #[serde(default)]
    pub group_add: Vec<String>,
    /// The cgroup the container's cgroup is made under, relative to each hierarchy's root
    /// (`--cgroup-parent`); unset: the runtime's own parent.
    #[serde(default)]
    pub cgroup_parent: Option<String>,
    /// OCI annotations of the container's bundle (`--annotation`, compose `annotations:`),
    /// for tools that read the runtime spec.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    /// The namespaces the container shares with the host instead of getting its own
    /// (`--pid host`, `--uts host`, `--cgroupns host`).
    #[serde(default)]
    pub host_namespaces: HostNamespaces,
    /// NIS domain name in the container's UTS namespace (`--domainname`).
    #[serde(default)]
    pub domainname: Option<String>,
    /// The container whose PID namespace this one joins (`--pid container:X`, compose
    /// `pid: service:X`), by id; resolved to its running process at each start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_from: Option<String>,
    /// The IPC namespace and /dev/shm (`--ipc`, compose `ipc:`).
    #[serde(default)]
    pub ipc: IpcMode,
}

/// Docker's IPC modes: whose System V IPC objects, POSIX message queues and /dev/shm the
/// container sees.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum IpcMode {
    /// Its own namespace, which no other container may join (Docker's default).
    #[default]
    Private,
    /// Its own namespace, which other containers may join.
    Shareable,
    /// Its own namespace without a /dev/shm.
    None,
    /// The host's namespace and /dev/shm.
    Host,
    /// The namespace and /dev/shm of the container with this id (shareable or host), resolved
    /// to its running process at each start.
    Container(String),
}

impl IpcMode {
    /// Parses Docker's `IpcMode` (`""`, `private`, `shareable`, `none`, `host`,
    /// `container:X`); for `container:` the caller resolves the name to an id.
    pub fn parse(mode: &str) -> Result<IpcMode, String> {
        Ok(match mode {
            "" | "private" => IpcMode::Private,
            "shareable" => IpcMode::Shareable,
            "none" => IpcMode::None,
            "host" => IpcMode::Host,
            m => match m.strip_prefix("container:") {
                Some(c) if !c.is_empty() => IpcMode::Container(c.to_string()),
                _ => {
                    return Err(format!(
                        "{m:?}: expected private, shareable, none, host or container:NAME"
                    ));
                }
            },
        })
    }

    /// Whether another container may join this one's IPC namespace (Docker allows
    /// shareable and host donors only).
    pub fn is_joinable(&self) -> bool {
        matches!(self, IpcMode::Shareable | IpcMode::Host)
    }
}

/// Which of the container's namespaces are the host's (Docker's `host` modes); the rest are
/// the container's own.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct HostNamespaces {
    /// The host's PID namespace: the container sees (and may signal) every host process.
    #[serde(default)]
    pub pid: bool,
    /// The host's UTS namespace: its hostname is the host's.
    #[serde(default)]
    pub uts: bool,
    /// The host's cgroup namespace: /proc/self/cgroup shows full host paths.
    #[serde(default)]
    pub cgroup: bool,
}

impl ContainerConfig {
    /// A config with Docker's defaults for everything but what identifies the container.
    pub fn new(rootfs: RootfsSource, args: Vec<String>) -> Self {
        ContainerConfig {
            name: String::new(),
            rootfs,
            args,
            env: vec![DEFAULT_PATH_ENV.to_string()],
            user: None,
            working_dir: None,
            hostname: None,
            network: NetworkMode::New,
            hosts: None,
            resolv_conf: None,
            mounts: Vec::new(),
            read_only: false,
            resources: Resources::default(),
            cap_add: Vec::new(),
            cap_drop: Vec::new(),
            privileged: false,
            seccomp_unconfined: false,
            no_new_privileges: true,
            ulimits: Vec::new(),
            sysctls: BTreeMap::new(),
            shm_size: 64 * 1024 * 1024,
            init: false,
            tty: false,
            open_stdin: false,
            auto_remove: false,
            stop_signal: libc::SIGTERM,
            stop_timeout: 10,
            log_max_size: 10 * 1024 * 1024,
            log_max_files: 3,
            labels: BTreeMap::new(),
            anonymous_volumes: Vec::new(),
            oci_runtime: None,
            devices: Vec::new(),
            device_cgroup_rules: Vec::new(),
            oom_score_adj: None,
            group_add: Vec::new(),
            cgroup_parent: None,
            annotations: BTreeMap::new(),
            host_namespaces: HostNamespaces::default(),
            domainname: None,
            pid_from: None,
            ipc: IpcMode::Private,
        }
    }
}

/// The PATH a container gets when its image sets none (Docker's).
pub const DEFAULT_PATH_ENV: &str =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// One `exec` request into a running container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct ExecConfig {
    pub args: Vec<String>,
    /// Added to the container's env (last wins).
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<PathBuf>,
    pub tty: bool,
    /// Forward the caller's stdin.
    pub interactive: bool,
    /// Do not wait: the process runs on, detached.
    pub detach: bool,
}

/// What the user sets on top of an image's defaults (`--entrypoint`, the command after the
/// image, `-e`, `-u`, `-w`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessOverrides {
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub working_dir: Option<PathBuf>,
}

/// `KEY=VALUE` lists merged by key, later entries winning, first-seen order kept. Keys are
/// found through an index, so a service with a hundred thousand variables costs linear time.
pub fn merge_env(base: &[String], over: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(base.len() + over.len());
    let mut slots: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for e in base.iter().chain(over) {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        match slots.get(key) {
            Some(&i) => out[i] = e.clone(),
            None => {
                slots.insert(key, out.len());
                out.push(e.clone());
            }
        }
    }
    out
}

impl ContainerConfig {
    /// A container of an image: its layers (bottom to top) as the rootfs, and the image's
    /// Entrypoint/Cmd/Env/WorkingDir/User under the user's overrides, with Docker's rules
    /// (`--entrypoint` drops the image's Cmd; a command replaces Cmd only).
    pub fn from_image(
        layers: Vec<PathBuf>,
        image: &oci_spec::image::ImageConfiguration,
        o: ProcessOverrides,
    ) -> ContainerConfig {
        let ic = image.config().as_ref();
        let (entrypoint, cmd) = match o.entrypoint {
            Some(ep) => (ep, o.cmd),
            None => {
                let ep = ic.and_then(|c| c.entrypoint().clone()).unwrap_or_default();
                let cmd = if o.cmd.is_empty() {
                    ic.and_then(|c| c.cmd().clone()).unwrap_or_default()
                } else {
                    o.cmd
                };
                (ep, cmd)
            }
        };
        let mut args = entrypoint;
        args.extend(cmd);
        let mut cfg = ContainerConfig::new(RootfsSource::Layers(layers), args);
        let image_env = ic.and_then(|c| c.env().clone()).unwrap_or_default();
        let base = if image_env.iter().any(|e| e.starts_with("PATH=")) {
            image_env
        } else {
            merge_env(&[DEFAULT_PATH_ENV.to_string()], &image_env)
        };
        cfg.env = merge_env(&base, &o.env);
        cfg.user = o
            .user
            .or_else(|| ic.and_then(|c| c.user().clone()).filter(|u| !u.is_empty()));
        if let Some(sig) = ic.and_then(|c| c.stop_signal().clone()) {
            let name = if sig.starts_with("SIG") {
                sig.clone()
            } else {
                format!("SIG{sig}")
            };
            if let Ok(n) = sig.parse::<i32>() {
                cfg.stop_signal = n;
            } else if let Ok(s) = name.parse::<nix::sys::signal::Signal>() {
                cfg.stop_signal = s as i32;
            }
        }
        cfg.working_dir = o.working_dir.or_else(|| {
            ic.and_then(|c| c.working_dir().clone())
                .filter(|w| !w.is_empty())
                .map(PathBuf::from)
        });
        cfg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(json: &str) -> oci_spec::image::ImageConfiguration {
        serde_json::from_str(json).expect("image config")
    }

    #[test]
    fn merge_env_keeps_first_order_and_last_value() {
        let base = ["A=1".to_string(), "B=2".into(), "FLAG".into()];
        let over = [
            "B=3".to_string(),
            "C=4".into(),
            "A=5".into(),
            "FLAG=on".into(),
        ];
        assert_eq!(merge_env(&base, &over), ["A=5", "B=3", "FLAG=on", "C=4"]);
        assert_eq!(merge_env(&[], &["K=1".into(), "K=2".into()]), ["K=2"]);
    }

    #[test]
    fn image_defaults_follow_dockers_precedence() {
        let img = image(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]},
               "config":{"Entrypoint":["/entry"],"Cmd":["serve","--port","80"],
                         "Env":["PATH=/app/bin:/bin","MODE=prod"],"WorkingDir":"/app","User":"www",
                         "StopSignal":"SIGQUIT"}}"#,
        );
        let c = ContainerConfig::from_image(vec!["/l0".into()], &img, ProcessOverrides::default());
        assert_eq!(c.args, ["/entry", "serve", "--port", "80"]);
        assert_eq!(c.env, ["PATH=/app/bin:/bin", "MODE=prod"]);
        assert_eq!(c.working_dir.as_deref(), Some(std::path::Path::new("/app")));
        assert_eq!(c.user.as_deref(), Some("www"));
        assert_eq!(c.rootfs, RootfsSource::Layers(vec!["/l0".into()]));
        assert_eq!(c.stop_signal, libc::SIGQUIT);

        let c = ContainerConfig::from_image(
            vec![],
            &img,
            ProcessOverrides {
                cmd: vec!["check".into()],
                env: vec!["MODE=dev".into(), "X=1".into()],
                user: Some("0".into()),
                ..ProcessOverrides::default()
            },
        );
        assert_eq!(c.args, ["/entry", "check"]);
        assert_eq!(c.env, ["PATH=/app/bin:/bin", "MODE=dev", "X=1"]);
        assert_eq!(c.user.as_deref(), Some("0"));

        let c = ContainerConfig::from_image(
            vec![],
            &img,
            ProcessOverrides {
                entrypoint: Some(vec!["sh".into()]),
                ..ProcessOverrides::default()
            },
        );
        assert_eq!(c.args, ["sh"], "--entrypoint drops the image's Cmd");

        let bare = image(
            r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        );
        let c = ContainerConfig::from_image(vec![], &bare, ProcessOverrides::default());
        assert!(c.args.is_empty() && c.env == [DEFAULT_PATH_ENV]);
    }
}

/// One `--security-opt` / compose `security_opt` value, parsed once for every front end so
/// `container run` and Compose services agree on what each value does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityOpt {
    /// `seccomp=unconfined`: no seccomp filter.
    SeccompUnconfined,
    /// `no-new-privileges[=true|false]` (`:` works as the separator too).
    NoNewPrivileges(bool),
    /// `apparmor=…` / `label=…`: an AppArmor profile or SELinux label. berth loads no LSM
    /// policy, so the front ends warn by name instead of pretending to apply it.
    NotApplied,
}

impl SecurityOpt {
    /// Parses a value; the error names it and lists what is supported.
    pub fn parse(opt: &str) -> Result<SecurityOpt, String> {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt, None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => Ok(SecurityOpt::SeccompUnconfined),
            ("no-new-privileges", None | Some("true")) => Ok(SecurityOpt::NoNewPrivileges(true)),
            ("no-new-privileges", Some("false")) => Ok(SecurityOpt::NoNewPrivileges(false)),
            ("apparmor" | "label", Some(_)) => Ok(SecurityOpt::NotApplied),
            ("seccomp", Some(profile)) => Err(format!(
                "security option {opt:?}: seccomp profile {profile:?} is not supported (berth applies its default profile or, with seccomp=unconfined, none)"
            )),
            _ => Err(format!(
                "security option {opt:?} is not supported (supported: seccomp=unconfined, no-new-privileges[=true|false]; apparmor=… and label=… are accepted and not applied)"
            )),
        }
    }

    /// Sets what this option controls on `cfg`.
    pub fn apply(&self, cfg: &mut ContainerConfig) {
        match self {
            SecurityOpt::SeccompUnconfined => cfg.seccomp_unconfined = true,
            SecurityOpt::NoNewPrivileges(on) => cfg.no_new_privileges = *on,
            SecurityOpt::NotApplied => {}
        }
    }
}

#[cfg(test)]
mod security_opt_tests {
    use super::SecurityOpt;

    #[test]
    fn both_separators_and_every_supported_form() {
        assert_eq!(
            SecurityOpt::parse("seccomp:unconfined"),
            Ok(SecurityOpt::SeccompUnconfined)
        );
        assert_eq!(
            SecurityOpt::parse("no-new-privileges"),
            Ok(SecurityOpt::NoNewPrivileges(true))
        );
        assert_eq!(
            SecurityOpt::parse("no-new-privileges:false"),
            Ok(SecurityOpt::NoNewPrivileges(false))
        );
        assert_eq!(
            SecurityOpt::parse("label=disable"),
            Ok(SecurityOpt::NotApplied)
        );
        assert_eq!(
            SecurityOpt::parse("apparmor:unconfined"),
            Ok(SecurityOpt::NotApplied)
        );
    }

    #[test]
    fn unknown_values_and_profiles_are_refused_by_name() {
        let e = SecurityOpt::parse("seccomp=/etc/profile.json").unwrap_err();
        assert!(e.contains("/etc/profile.json"), "{e}");
        let e = SecurityOpt::parse("systempaths=unconfined").unwrap_err();
        assert!(e.contains("systempaths=unconfined"), "{e}");
        assert!(SecurityOpt::parse("no-new-privileges=maybe").is_err());
    }
}
