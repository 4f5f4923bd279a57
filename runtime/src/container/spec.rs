//! ContainerConfig -> OCI runtime-spec `config.json`. The bundle is the contract between the
//! library and whatever executes it: berth's own shim, or crun/runc for a conformance check.
//! Security defaults (capabilities, masked paths, seccomp deny-list) are decided here, once.

use std::path::{Path, PathBuf};

use oci_spec::runtime::Spec;
use serde_json::{Value, json};

use super::config::{
    BindRecursive, ContainerConfig, IpcMode, MountSpec, NetworkMode, Propagation, Resources,
};

/// Errors building a runtime spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error(
        "bind mount at {target}: a recursively read-only bind (bind-recursive=readonly) needs mount_setattr, kernel 5.12 or later"
    )]
    RecursiveReadOnly { target: PathBuf },
    #[error("unknown capability {name:?} (expected a name such as NET_ADMIN or CAP_NET_ADMIN)")]
    UnknownCapability { name: String },
    #[error("unknown ulimit {name:?}")]
    UnknownUlimit { name: String },
    #[error("ulimit {name}: soft limit {soft} is above the hard limit {hard}")]
    UlimitOrder { name: String, soft: u64, hard: u64 },
    #[error(
        "sysctl {key:?} is not namespaced: a container may only set net.*, kernel.shm*, kernel.msg*, kernel.sem and fs.mqueue.*"
    )]
    SysctlNotNamespaced { key: String },
    #[error("sysctl {key:?} cannot be set in the host's or another container's network namespace")]
    SysctlHostNet { key: String },
    #[error("sysctl {key:?} cannot be set in the host's or another container's IPC namespace")]
    SysctlSharedIpc { key: String },
    #[error("the generated config.json is not a valid OCI runtime spec")]
    Invalid(#[source] serde_json::Error),
    #[error("--cpus {0} is out of range")]
    Cpus(f64),
    #[error(transparent)]
    Device(#[from] super::devices::DeviceError),
    #[error(
        "a volume subpath is not supported with an external runtime: mount the volume, or run it with berth's own"
    )]
    SubpathExternal,
}

/// Docker's default capability set: what a container's root keeps.
pub const DEFAULT_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Paths of the host's kernel interfaces that leak information or let a container reach the
/// host: hidden behind /dev/null (files) or an empty read-only tmpfs (directories).
pub const MASKED_PATHS: &[&str] = &[
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Kernel tunables a container may read but not write.
pub const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Syscalls the default profile refuses with EPERM: kernel modules, kexec, BPF, keyrings,
/// mounts and namespaces, clock and swap changes, io_uring (its work runs in kernel threads
/// seccomp does not see, and it has been a frequent way into kernel bugs), and the old or
/// dangerous interfaces Docker's profile also leaves out.
pub const DENIED_SYSCALLS: &[&str] = &[
    "acct",
    "add_key",
    "bpf",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "ioperm",
    "iopl",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mount",
    "mount_setattr",
    "move_mount",
    "name_to_handle_at",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pivot_root",
    "process_vm_readv",
    "process_vm_writev",
    "query_module",
    "quotactl",
    "reboot",
    "request_key",
    "setns",
    "settimeofday",
    "swapoff",
    "swapon",
    "_sysctl",
    "syslog",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vm86",
    "vm86old",
];

/// Namespace flags a `clone` may not carry under the default profile (a container must not
/// make new namespaces).
const CLONE_NS_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// Normalises `net_admin` / `NET_ADMIN` / `CAP_NET_ADMIN` to `CAP_NET_ADMIN`, and checks it.
pub fn cap_name(name: &str) -> Result<String, SpecError> {
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("CAP_") {
        upper
    } else {
        format!("CAP_{upper}")
    };
    full.parse::<caps::Capability>()
        .map_err(|_| SpecError::UnknownCapability {
            name: name.to_string(),
        })?;
    Ok(full)
}

/// The capability set after `privileged`, `cap_drop` then `cap_add` (`ALL` works in both).
pub fn effective_caps(cfg: &ContainerConfig) -> Result<Vec<String>, SpecError> {
    // "All" means all that we hold: this host's root lacks CAP_SYS_RESOURCE, and a runtime
    // cannot grant what its own bounding set lacks (runc fails on it, as it should).
    let held = caps::read(None, caps::CapSet::Bounding).unwrap_or_else(|_| caps::all());
    let all: Vec<String> = held.iter().map(|c| c.to_string()).collect();
    let mut set: Vec<String> = if cfg.privileged {
        all.clone()
    } else {
        DEFAULT_CAPS.iter().map(|s| s.to_string()).collect()
    };
    // Drops first, then adds: `--cap-drop ALL --cap-add X` leaves exactly X, as Docker.
    for drop in &cfg.cap_drop {
        if drop.eq_ignore_ascii_case("ALL") {
            set.clear();
        } else {
            let c = cap_name(drop)?;
            set.retain(|x| *x != c);
        }
    }
    for add in &cfg.cap_add {
        if add.eq_ignore_ascii_case("ALL") {
            set = all.clone();
        } else {
            let c = cap_name(add)?;
            if !set.contains(&c) {
                set.push(c);
            }
        }
    }
    set.sort();
    Ok(set)
}

/// Docker's ulimit name -> the OCI rlimit type.
pub fn rlimit_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "core" => "RLIMIT_CORE",
        "cpu" => "RLIMIT_CPU",
        "data" => "RLIMIT_DATA",
        "fsize" => "RLIMIT_FSIZE",
        "locks" => "RLIMIT_LOCKS",
        "memlock" => "RLIMIT_MEMLOCK",
        "msgqueue" => "RLIMIT_MSGQUEUE",
        "nice" => "RLIMIT_NICE",
        "nofile" => "RLIMIT_NOFILE",
        "nproc" => "RLIMIT_NPROC",
        "rss" => "RLIMIT_RSS",
        "rtprio" => "RLIMIT_RTPRIO",
        "rttime" => "RLIMIT_RTTIME",
        "sigpending" => "RLIMIT_SIGPENDING",
        "stack" => "RLIMIT_STACK",
        "as" => "RLIMIT_AS",
        _ => return None,
    })
}

fn check_sysctl(key: &str, net: &NetworkMode, ipc: &IpcMode) -> Result<(), SpecError> {
    let namespaced = key.starts_with("kernel.shm")
        || key.starts_with("kernel.msg")
        || key == "kernel.sem"
        || key.starts_with("fs.mqueue.");
    if namespaced {
        if matches!(ipc, IpcMode::Host | IpcMode::Container(_)) {
            return Err(SpecError::SysctlSharedIpc {
                key: key.to_string(),
            });
        }
        return Ok(());
    }
    if key.starts_with("net.") {
        if matches!(net, NetworkMode::Host | NetworkMode::Join(_)) {
            return Err(SpecError::SysctlHostNet {
                key: key.to_string(),
            });
        }
        return Ok(());
    }
    Err(SpecError::SysctlNotNamespaced {
        key: key.to_string(),
    })
}

/// The default seccomp profile as OCI `linux.seccomp`: allow by default, EPERM for the
/// deny-list and for namespace-creating clones, ENOSYS for clone3 (whose flags a filter cannot
/// read) so that libc falls back to clone.
pub fn default_seccomp() -> Value {
    let mut syscalls = vec![json!({
        "names": DENIED_SYSCALLS,
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": libc::EPERM,
    })];
    for flag in CLONE_NS_FLAGS {
        syscalls.push(json!({
            "names": ["clone"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": libc::EPERM,
            "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}],
        }));
    }
    syscalls.push(json!({
        "names": ["clone3"],
        "action": "SCMP_ACT_ERRNO",
        "errnoRet": libc::ENOSYS,
    }));
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": syscalls,
    })
}

/// The OCI mount option (not a mount flag) of a volume berth's rootfs setup must not fill
/// from the image.
pub const NOCOPY: &str = "nocopy";

/// berth's mount option naming the directory of a volume to mount (`volume.subpath`), read by
/// the rootfs setup: `berth-subpath=REL`.
pub const SUBPATH: &str = "berth-subpath=";

/// Paths the spec refers to, decided by the caller's layout.
pub struct SpecPaths<'a> {
    /// Mount point of the rootfs (or the plain rootfs directory itself).
    pub rootfs: &'a Path,
    /// Files bind-mounted as /etc/hosts, /etc/hostname, /etc/resolv.conf.
    pub hosts: &'a Path,
    pub hostname: &'a Path,
    pub resolv_conf: &'a Path,
    /// Pinned network namespace, for `NetworkMode::New`/`None`.
    pub netns: Option<&'a Path>,
    /// Host directory of each named volume, in the order of `cfg.mounts`' volumes.
    pub volume_dirs: &'a [PathBuf],
    /// cgroup path relative to each hierarchy's root.
    pub cgroup: &'a str,
    /// The user as resolved from the image's files at create time, for external runtimes
    /// (berth's own init resolves it again inside the container at start).
    pub user: Option<&'a crate::container::process::User>,
    /// The host directory a shareable IPC namespace's /dev/shm is mounted on.
    pub shm: &'a Path,
}

/// The OCI `linux.resources` entries of the limits (memory, cpu, pids, block I/O): what a container is
/// created with and what an update rewrites.
pub fn limits(r: &Resources) -> Result<serde_json::Map<String, Value>, SpecError> {
    let mut resources = serde_json::Map::new();
    let mut memory = serde_json::Map::new();
    if let Some(mem) = r.memory {
        memory.insert("limit".into(), json!(mem));
    }
    if let Some(v) = r.memory_reservation {
        memory.insert("reservation".into(), json!(v));
    }
    if let Some(v) = r.memory_swap {
        memory.insert("swap".into(), json!(v));
    }
    if let Some(v) = r.memory_swappiness {
        memory.insert("swappiness".into(), json!(v));
    }
    if r.oom_kill_disable {
        memory.insert("disableOOMKiller".into(), json!(true));
    }
    if !memory.is_empty() {
        resources.insert("memory".into(), Value::Object(memory));
    }
    let mut cpu = serde_json::Map::new();
    if let Some(cpus) = r.cpus {
        if !(cpus > 0.0 && cpus < 100_000.0) {
            return Err(SpecError::Cpus(cpus));
        }
        cpu.insert("period".into(), json!(100_000u64));
        cpu.insert("quota".into(), json!((cpus * 100_000.0) as i64));
    }
    if let Some(shares) = r.cpu_shares {
        cpu.insert("shares".into(), json!(shares));
    }
    if let Some(set) = &r.cpuset_cpus {
        cpu.insert("cpus".into(), json!(set));
    }
    if let Some(p) = r.cpu_rt_period {
        cpu.insert("realtimePeriod".into(), json!(p));
    }
    if let Some(rt) = r.cpu_rt_runtime {
        cpu.insert("realtimeRuntime".into(), json!(rt));
    }
    if !cpu.is_empty() {
        resources.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(pids) = r.pids_limit {
        resources.insert("pids".into(), json!({"limit": pids}));
    }
    if !r.block_io.is_empty() {
        resources.insert("blockIO".into(), super::block_io::oci(&r.block_io));
    }
    Ok(resources)
}

/// Builds the OCI config for `cfg`, validated by parsing it back as an `oci_spec` `Spec`.
pub fn build(id: &str, cfg: &ContainerConfig, p: &SpecPaths<'_>) -> Result<Value, SpecError> {
    let caps = effective_caps(cfg)?;
    let mut rlimits = Vec::new();
    for u in &cfg.ulimits {
        let t = rlimit_type(&u.name).ok_or_else(|| SpecError::UnknownUlimit {
            name: u.name.clone(),
        })?;
        if u.soft > u.hard {
            return Err(SpecError::UlimitOrder {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            });
        }
        rlimits.push(json!({"type": t, "soft": u.soft, "hard": u.hard}));
    }
    for key in cfg.sysctls.keys() {
        check_sysctl(key, &cfg.network, &cfg.ipc)?;
    }
    let hostname = cfg.hostname.clone().unwrap_or_else(|| id[..12].to_string());

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", if cfg.privileged { "rw" } else { "ro" }]}),
    ];
    // /dev/shm: the container's own, none, the host's, or the one of the container whose IPC
    // namespace it joins (its source resolved at each start).
    match &cfg.ipc {
        // A shareable one lives on the host (mounted at each start), where a container
        // that joins the namespace can bind it too.
        IpcMode::Shareable => mounts.push(
            json!({"destination": "/dev/shm", "type": "bind", "source": p.shm, "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]}),
        ),
        IpcMode::Private => mounts.push(
            json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", format!("size={}", cfg.shm_size)]}),
        ),
        IpcMode::None => {}
        IpcMode::Host => mounts.push(
            json!({"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]}),
        ),
        IpcMode::Container(id) => mounts.push(
            json!({"destination": "/dev/shm", "type": "bind", "source": super::joined::unresolved(id, "shm"), "options": ["rbind", "rprivate", "nosuid", "noexec", "nodev"]}),
        ),
    }
    for (dest, src) in [
        ("/etc/hosts", p.hosts),
        ("/etc/hostname", p.hostname),
        ("/etc/resolv.conf", p.resolv_conf),
    ] {
        mounts.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    let mut vols = p.volume_dirs.iter();
    // 0: the container's mounts are private; 1: slaves of the host's (a bind asks for
    // slave propagation); 2: the host's own propagation kept (a bind asks for shared).
    let mut root_propagation = 0;
    for m in &cfg.mounts {
        match m {
            MountSpec::Bind {
                source,
                target,
                read_only,
                propagation,
                recursive,
                ..
            } => {
                let prop = propagation.unwrap_or(Propagation::Rprivate);
                root_propagation = root_propagation.max(match prop {
                    Propagation::Shared | Propagation::Rshared => 2,
                    Propagation::Slave | Propagation::Rslave => 1,
                    _ => 0,
                });
                let bind = if *recursive == BindRecursive::Disabled {
                    "bind"
                } else {
                    "rbind"
                };
                let mut o = vec![bind.to_string(), prop.as_str().to_string()];
                if *read_only {
                    o.push("ro".into());
                    // Docker's rule: a read-only rbind is read-only all the way down where the
                    // kernel can make it so (and propagation keeps the submounts private);
                    // `readonly` insists, `writable` keeps the submounts as they are.
                    let private = matches!(prop, Propagation::Rprivate | Propagation::Private);
                    let rro = super::mounts::recursive_read_only_supported();
                    match recursive {
                        BindRecursive::Enabled if rro && private => o.push("rro".into()),
                        BindRecursive::Readonly if rro => o.push("rro".into()),
                        BindRecursive::Readonly => {
                            return Err(SpecError::RecursiveReadOnly {
                                target: target.clone(),
                            });
                        }
                        _ => {}
                    }
                }
                mounts.push(
                    json!({"destination": target, "type": "bind", "source": source, "options": o}),
                );
            }
            MountSpec::Volume {
                target,
                read_only,
                nocopy,
                subpath,
                ..
            } => {
                let mut o = vec!["rbind".to_string(), "rprivate".to_string()];
                if *read_only {
                    o.push("ro".into());
                }
                // berth's own rootfs setup fills empty volumes from the image; this option
                // (no mount flag) tells it not to. External runtimes fill none.
                if *nocopy && cfg.oci_runtime.is_none() {
                    o.push(NOCOPY.into());
                }
                // Resolved inside the volume by berth's own init when it mounts (what a
                // container put there meanwhile cannot lead out of it).
                if let Some(sub) = subpath {
                    if cfg.oci_runtime.is_some() {
                        return Err(SpecError::SubpathExternal);
                    }
                    o.push(format!("{SUBPATH}{}", sub.display()));
                }
                let src = vols.next().cloned().unwrap_or_default();
                mounts.push(
                    json!({"destination": target, "type": "bind", "source": src, "options": o}),
                );
            }
            MountSpec::Tmpfs { target, options } => {
                let mut o: Vec<String> = vec!["nosuid".into(), "nodev".into()];
                o.extend(options.iter().cloned());
                mounts.push(json!({"destination": target, "type": "tmpfs", "source": "tmpfs", "options": o}));
            }
        }
    }

    // Host devices: the node bound at its path (its major and minor are the host's).
    let mut device_rules = Vec::new();
    for d in &cfg.devices {
        device_rules.push(d.rule()?);
        mounts.push(json!({"destination": d.container, "type": "bind", "source": d.host, "options": ["rbind", "rprivate"]}));
    }
    for r in &cfg.device_cgroup_rules {
        device_rules.push(super::devices::parse_rule(r)?);
    }

    // A namespace the container shares with the host is left out: the process stays in
    // the runtime's, which is the host's.
    // One joined from another container carries its path, resolved at each start.
    let host = cfg.host_namespaces;
    let mut namespaces = vec![json!({"type": "mount"})];
    match &cfg.ipc {
        IpcMode::Host => {}
        IpcMode::Container(id) => {
            namespaces.push(json!({"type": "ipc", "path": super::joined::unresolved(id, "ipc")}))
        }
        _ => namespaces.push(json!({"type": "ipc"})),
    }
    match &cfg.pid_from {
        Some(id) => {
            namespaces.push(json!({"type": "pid", "path": super::joined::unresolved(id, "pid")}))
        }
        None if !host.pid => namespaces.push(json!({"type": "pid"})),
        None => {}
    }
    for (kind, shared) in [("uts", host.uts), ("cgroup", host.cgroup)] {
        if !shared {
            namespaces.push(json!({"type": kind}));
        }
    }
    match (&cfg.network, p.netns) {
        (NetworkMode::Host, _) => {}
        (NetworkMode::Join(path), _) => namespaces.push(json!({"type": "network", "path": path})),
        (_, Some(path)) => namespaces.push(json!({"type": "network", "path": path})),
        (_, None) => namespaces.push(json!({"type": "network"})),
    }

    let mut resources = limits(&cfg.resources)?;
    if !cfg.privileged {
        let mut devices = vec![json!({"allow": false, "access": "rwm"})];
        devices.push(json!({"allow": true, "type": "c", "access": "m"}));
        devices.push(json!({"allow": true, "type": "b", "access": "m"}));
        for (major, minor) in [
            (1, 3),
            (1, 5),
            (1, 7),
            (1, 8),
            (1, 9),
            (5, 0),
            (5, 1),
            (5, 2),
        ] {
            devices.push(json!({"allow": true, "type": "c", "major": major, "minor": minor, "access": "rwm"}));
        }
        devices.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
        devices.extend(device_rules);
        resources.insert("devices".into(), Value::Array(devices));
    }

    let mut linux = json!({
        "namespaces": namespaces,
        // Absolute: an external runtime started from inside a cgroup (the shim places runc in
        // this very cgroup) must not nest the path under its own.
        "cgroupsPath": format!("/{}", p.cgroup.trim_start_matches('/')),
        "resources": resources,
        "sysctl": cfg.sysctls,
    });
    match root_propagation {
        1 => linux["rootfsPropagation"] = json!("rslave"),
        2 => linux["rootfsPropagation"] = json!("rshared"),
        _ => {}
    }
    if !cfg.privileged {
        linux["maskedPaths"] = json!(MASKED_PATHS);
        linux["readonlyPaths"] = json!(READONLY_PATHS);
        if !cfg.seccomp_unconfined {
            linux["seccomp"] = default_seccomp();
        }
    }

    let mut spec = json!({
        "ociVersion": "1.0.2",
        "root": {"path": p.rootfs, "readonly": cfg.read_only},
        "hostname": hostname,
        "mounts": mounts,
        "process": {
            "terminal": cfg.tty,
            "user": match p.user {
                Some(u) => json!({"uid": u.uid, "gid": u.gid, "additionalGids": u.groups}),
                None => json!({"uid": 0, "gid": 0}),
            },
            "args": cfg.args,
            "env": cfg.env,
            "cwd": cfg.working_dir.clone().unwrap_or_else(|| PathBuf::from("/")),
            "capabilities": {
                // No inheritable set, as Docker since CVE-2022-24769: file capabilities of
                // a binary must not grant the container's set to a non-root user.
                "bounding": caps, "effective": caps, "permitted": caps, "inheritable": [],
            },
            "rlimits": rlimits,
            "noNewPrivileges": cfg.no_new_privileges && !cfg.privileged,
        },
        "linux": linux,
        "annotations": {"io.berth.container.id": id},
    });
    // The host's UTS namespace keeps the host's names (runc refuses to set them there).
    if host.uts {
        if let Some(o) = spec.as_object_mut() {
            o.remove("hostname");
        }
    } else if let Some(d) = &cfg.domainname {
        spec["domainname"] = json!(d);
    }
    if let Some(adj) = cfg.oom_score_adj {
        spec["process"]["oomScoreAdj"] = json!(adj);
    }
    // The user's annotations beside the runtime's own id, which they cannot replace.
    for (k, v) in &cfg.annotations {
        if k != "io.berth.container.id" {
            spec["annotations"][k] = json!(v);
        }
    }
    serde_json::from_value::<Spec>(spec.clone()).map_err(SpecError::Invalid)?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::config::RootfsSource;

    fn paths<'a>(p: &'a Path) -> SpecPaths<'a> {
        SpecPaths {
            rootfs: p,
            hosts: p,
            hostname: p,
            resolv_conf: p,
            netns: None,
            volume_dirs: &[],
            cgroup: "berth/x",
            user: None,
            shm: p,
        }
    }

    #[test]
    fn default_spec_is_valid_oci_and_has_docker_caps() {
        let cfg = ContainerConfig::new(RootfsSource::Dir("/r".into()), vec!["true".into()]);
        let id = "0123456789abcdef0123";
        let spec = build(id, &cfg, &paths(Path::new("/r"))).expect("spec");
        let caps = spec["process"]["capabilities"]["effective"]
            .as_array()
            .expect("caps")
            .len();
        assert_eq!(caps, DEFAULT_CAPS.len());
        assert_eq!(spec["hostname"], "0123456789ab");
        assert!(spec["linux"]["seccomp"]["syscalls"].is_array());
    }

    #[test]
    fn cap_add_drop_and_privileged() {
        let mut cfg = ContainerConfig::new(RootfsSource::Dir("/r".into()), vec![]);
        cfg.cap_add = vec!["net_admin".into()];
        cfg.cap_drop = vec!["CAP_CHOWN".into(), "kill".into()];
        let set = effective_caps(&cfg).expect("caps");
        assert!(set.contains(&"CAP_NET_ADMIN".to_string()));
        assert!(!set.contains(&"CAP_CHOWN".to_string()));
        assert!(!set.contains(&"CAP_KILL".to_string()));
        cfg.cap_add = vec!["bogus".into()];
        assert!(matches!(
            effective_caps(&cfg),
            Err(SpecError::UnknownCapability { .. })
        ));
    }

    #[test]
    fn sysctls_must_be_namespaced() {
        let own = IpcMode::Private;
        assert!(check_sysctl("net.ipv4.ip_forward", &NetworkMode::New, &own).is_ok());
        assert!(check_sysctl("kernel.shmmax", &NetworkMode::Host, &own).is_ok());
        assert!(check_sysctl("vm.swappiness", &NetworkMode::New, &own).is_err());
        assert!(check_sysctl("net.core.somaxconn", &NetworkMode::Host, &own).is_err());
        for shared in [IpcMode::Host, IpcMode::Container("x".into())] {
            assert!(check_sysctl("kernel.shmmax", &NetworkMode::New, &shared).is_err());
        }
    }
}
