//! cgroup limits, with a v1 and a v2 backend. Which one applies is read from the mounts, never
//! assumed: this project's hosts are v1 with a hybrid cgroup2 at /sys/fs/cgroup/unified whose
//! controller list is (almost) empty, other hosts are pure v2.

use std::fs;
use std::io;
use std::os::fd::{OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use oci_spec::runtime::LinuxResources;

use super::cgroup_mounts::{Hierarchies, MountCache};

/// Errors creating, filling or removing a container's cgroup.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("reading the cgroup mounts from /proc/self/mountinfo")]
    Mounts(#[source] io::Error),
    #[error("no cgroup hierarchy is mounted under /sys/fs/cgroup")]
    NoHierarchy,
    #[error(
        "a {what} limit was requested but no cgroup hierarchy offers the {controller:?} controller"
    )]
    MissingController {
        what: &'static str,
        controller: &'static str,
    },
    #[error("creating cgroup {path}")]
    Create {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {value:?} to {path}")]
    Write {
        path: PathBuf,
        value: String,
        #[source]
        source: io::Error,
    },
    #[error("{what} was requested but this host's cgroup has no {file}")]
    NotOnThisHost { what: &'static str, file: PathBuf },
    #[error("{0}")]
    RealtimeBudget(Box<super::realtime::BudgetLeft>),
    #[error("freezing cgroup {path}: its tasks did not all stop within {secs} s")]
    FreezeTimeout { path: PathBuf, secs: u64 },
    #[error("removing cgroup {path}: it still holds processes")]
    Busy {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

const ROOT: &str = "/sys/fs/cgroup";

/// Resource usage of one container, as `stats` shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// CPU time used, in nanoseconds.
    pub cpu_ns: u64,
    /// Memory in use (without inactive page cache), bytes.
    pub memory: u64,
    /// The limit, when one is set.
    pub memory_limit: Option<u64>,
    pub pids: u64,
    pub io_read: u64,
    pub io_write: u64,
}

/// The cgroup of one container, in whichever hierarchy layout the host has.
#[derive(Debug, Clone)]
pub enum Cgroup {
    /// One directory per v1 hierarchy, with the controllers mounted there.
    V1 { dirs: Vec<(Vec<String>, PathBuf)> },
    /// The single directory of the unified hierarchy.
    V2 { dir: PathBuf },
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// v1 hierarchies: (controllers, mount point), from /proc/self/mountinfo, read again only
/// when the mounts at /sys/fs/cgroup may have changed ([`super::cgroup_mounts`]).
fn v1_hierarchies() -> Result<Hierarchies, CgroupError> {
    with_mounts(MountCache::get).map_err(CgroupError::Mounts)
}

fn with_mounts<R>(f: impl FnOnce(&mut MountCache) -> R) -> R {
    static CACHE: std::sync::Mutex<Option<MountCache>> = std::sync::Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    f(cache.get_or_insert_with(|| MountCache::new(ROOT.into(), "/proc/self/mountinfo".into())))
}

/// The v1 hierarchies as a shim takes them ([`seed_v1_hierarchies`]), so that a container
/// start does not read the whole mount table; `None` on a v2 host or when unreadable.
pub fn export_v1_hierarchies() -> Option<String> {
    if is_cgroup2(Path::new(ROOT)) {
        return None;
    }
    with_mounts(MountCache::export)
}

/// Takes hierarchies a starter exported if the mounts at /sys/fs/cgroup are still those
/// they were read with (else they are read from the mount table when first needed).
pub fn seed_v1_hierarchies(exported: &str) {
    with_mounts(|c| c.seed(exported));
}

/// Writes one cgroup file, the error naming the file and the value.
/// Writes "0" to each of `tasks` (from [`Cgroup::self_join_files`]): the calling thread
/// moves itself into each hierarchy. Only plain writes, so a cloned child may call it before
/// exec; it must be the process's only thread, or the others stay where they were.
pub fn join_through(tasks: &[RawFd]) -> nix::Result<()> {
    for fd in tasks {
        // SAFETY: a one-byte write from a static buffer to a caller's fd.
        let n = unsafe { libc::write(*fd, b"0".as_ptr().cast(), 1) };
        if n < 0 {
            return Err(nix::Error::last());
        }
    }
    Ok(())
}

/// Whether the calling process has one thread (a self-move through `tasks` moves one).
fn single_threaded() -> bool {
    fs::read_dir("/proc/self/task").is_ok_and(|d| d.take(2).count() == 1)
}

pub(super) fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(|source| CgroupError::Write {
        path: path.to_path_buf(),
        value: value.to_string(),
        source,
    })
}

fn mkdir(path: &Path) -> Result<bool, CgroupError> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(source) => Err(CgroupError::Create {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// v1 cpuset refuses tasks until cpus/mems are set: copy them from the parent at each level.
fn init_cpuset(dir: &Path) -> Result<(), CgroupError> {
    for f in ["cpuset.cpus", "cpuset.mems"] {
        let mine = fs::read_to_string(dir.join(f)).unwrap_or_default();
        if mine.trim().is_empty()
            && let Some(parent) = dir.parent()
        {
            let val = fs::read_to_string(parent.join(f)).unwrap_or_default();
            write(&dir.join(f), val.trim())?;
        }
    }
    Ok(())
}

fn mkdir_all(base: &Path, rel: &str, cpuset: bool) -> Result<PathBuf, CgroupError> {
    let mut dir = base.to_path_buf();
    for part in rel.split('/').filter(|p| !p.is_empty()) {
        dir.push(part);
        mkdir(&dir)?;
        if cpuset {
            init_cpuset(&dir)?;
        }
    }
    Ok(dir)
}

/// cpu.shares (2..262144) -> cpu.weight (1..10000), the conversion crun and runc use.
fn shares_to_weight(shares: u64) -> u64 {
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

impl Cgroup {
    /// Finds the layout and the directories of `rel` (say `berth/<id>`) without creating them.
    pub fn locate(rel: &str) -> Result<Cgroup, CgroupError> {
        let root = Path::new(ROOT);
        if is_cgroup2(root) {
            return Ok(Cgroup::V2 {
                dir: root.join(rel),
            });
        }
        let dirs: Vec<_> = v1_hierarchies()?
            .into_iter()
            .map(|(c, m)| (c, m.join(rel)))
            .collect();
        if dirs.is_empty() {
            return Err(CgroupError::NoHierarchy);
        }
        Ok(Cgroup::V1 { dirs })
    }

    /// Creates the cgroup `rel` and writes the limits of `res` into it.
    pub fn create(rel: &str, res: Option<&LinuxResources>) -> Result<Cgroup, CgroupError> {
        let cg = Cgroup::locate(rel)?;
        cg.make(rel, res)?;
        Ok(cg)
    }

    /// Creates the directories of a cgroup found by [`Cgroup::locate`] (`rel` is the path
    /// it was located with) and writes the limits of `res`; removes it again on failure.
    /// Split from `locate` so that the shim can clone the container first and make the
    /// cgroup while the container sets up its root.
    pub fn make(&self, rel: &str, res: Option<&LinuxResources>) -> Result<(), CgroupError> {
        // A concurrent removal of the shared parent can race with our mkdir: retry then.
        let mut made = self.create_dirs(rel);
        for _ in 0..5 {
            match &made {
                Err(CgroupError::Create { source, .. })
                    if source.kind() == io::ErrorKind::NotFound =>
                {
                    made = self.create_dirs(rel);
                }
                _ => break,
            }
        }
        let made = made.and_then(|()| match res {
            Some(r) => self.apply(r),
            None => Ok(()),
        });
        if let Err(e) = made {
            let _ = self.remove();
            return Err(e);
        }
        Ok(())
    }

    fn create_dirs(&self, rel: &str) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1 { dirs } => {
                for (ctrls, dir) in dirs {
                    let base = strip_rel(dir, rel);
                    mkdir_all(&base, rel, ctrls.iter().any(|c| c == "cpuset"))?;
                }
            }
            Cgroup::V2 { dir } => {
                let base = strip_rel(dir, rel);
                let avail = fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
                let wanted: Vec<&str> = avail
                    .split_whitespace()
                    .filter(|c| matches!(*c, "cpu" | "cpuset" | "memory" | "pids" | "io"))
                    .collect();
                let mut d = base.clone();
                let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
                for part in parts {
                    for c in &wanted {
                        // Best effort: a controller may be unavailable on this level.
                        let _ = fs::write(d.join("cgroup.subtree_control"), format!("+{c}"));
                    }
                    d.push(part);
                    mkdir(&d)?;
                }
            }
        }
        Ok(())
    }

    /// The directory of a v1 controller (none on v2, or when it is not mounted): the
    /// readers of per-controller files (detailed usage) find them here.
    pub fn v1_dir(&self, ctrl: &str) -> Option<&Path> {
        match self {
            Cgroup::V1 { dirs } => dirs
                .iter()
                .find(|(c, _)| c.iter().any(|x| x == ctrl))
                .map(|(_, d)| d.as_path()),
            Cgroup::V2 { .. } => None,
        }
    }

    /// The directory holding controller `ctrl`'s files, or the error naming `what` needs it.
    pub(super) fn need(
        &self,
        what: &'static str,
        ctrl: &'static str,
    ) -> Result<PathBuf, CgroupError> {
        let missing = CgroupError::MissingController {
            what,
            controller: ctrl,
        };
        match self {
            Cgroup::V1 { .. } => self.v1_dir(ctrl).map(Path::to_path_buf).ok_or(missing),
            Cgroup::V2 { dir } => {
                let probe = match ctrl {
                    "memory" => "memory.max",
                    "cpu" => "cpu.max",
                    "cpuset" => "cpuset.cpus",
                    "io" => "io.max",
                    _ => "pids.max",
                };
                if dir.join(probe).exists() {
                    Ok(dir.clone())
                } else {
                    Err(missing)
                }
            }
        }
    }

    /// Writes the OCI resources into the cgroup files of this backend.
    pub fn apply(&self, r: &LinuxResources) -> Result<(), CgroupError> {
        let v2 = matches!(self, Cgroup::V2 { .. });
        let mem = r.memory().as_ref();
        if let Some(limit) = mem.and_then(|m| m.limit()) {
            let d = self.need("memory", "memory")?;
            // Memory plus swap: what was asked (-1 unlimited), else the limit (no swap).
            let swap = mem.and_then(|m| m.swap()).unwrap_or(limit);
            if v2 {
                write(&d.join("memory.max"), &limit.to_string())?;
                if d.join("memory.swap.max").exists() {
                    let v = if swap < 0 {
                        "max".to_string()
                    } else {
                        (swap - limit).max(0).to_string()
                    };
                    write(&d.join("memory.swap.max"), &v)?;
                }
            } else {
                write(&d.join("memory.limit_in_bytes"), &limit.to_string())?;
                let sw = d.join("memory.memsw.limit_in_bytes");
                if sw.exists() {
                    write(&sw, &swap.to_string())?;
                }
            }
        }
        if let Some(soft) = mem.and_then(|m| m.reservation()) {
            let d = self.need("memory reservation", "memory")?;
            let file = if v2 {
                "memory.low"
            } else {
                "memory.soft_limit_in_bytes"
            };
            write(&d.join(file), &soft.to_string())?;
        }
        if mem.and_then(|m| m.disable_oom_killer()) == Some(true) {
            let d = self.need("disabling the OOM killer", "memory")?;
            let f = d.join("memory.oom_control");
            if v2 || !f.exists() {
                return Err(CgroupError::NotOnThisHost {
                    what: "disabling the OOM killer",
                    file: f,
                });
            }
            write(&f, "1")?;
        }
        if let Some(s) = mem.and_then(|m| m.swappiness())
            && !v2
        {
            let d = self.need("memory swappiness", "memory")?;
            write(&d.join("memory.swappiness"), &s.to_string())?;
        }
        if let Some(cpu) = r.cpu() {
            if let Some(quota) = cpu.quota() {
                let period = cpu.period().unwrap_or(100_000);
                let d = self.need("cpu quota", "cpu")?;
                if v2 {
                    write(&d.join("cpu.max"), &format!("{quota} {period}"))?;
                } else {
                    write(&d.join("cpu.cfs_period_us"), &period.to_string())?;
                    write(&d.join("cpu.cfs_quota_us"), &quota.to_string())?;
                }
            }
            if let Some(shares) = cpu.shares() {
                let d = self.need("cpu shares", "cpu")?;
                if v2 {
                    write(&d.join("cpu.weight"), &shares_to_weight(shares).to_string())?;
                } else {
                    write(&d.join("cpu.shares"), &shares.to_string())?;
                }
            }
            if let Some(cpus) = cpu.cpus() {
                let d = self.need("cpuset", "cpuset")?;
                write(&d.join("cpuset.cpus"), cpus)?;
            }
            let (period, runtime) = (cpu.realtime_period(), cpu.realtime_runtime());
            if period.is_some() || runtime.is_some() {
                self.apply_realtime(period, runtime)?;
            }
        }
        if let Some(pids) = r.pids() {
            let d = self.need("pids", "pids")?;
            let v = if pids.limit() > 0 {
                pids.limit().to_string()
            } else {
                "max".to_string()
            };
            write(&d.join("pids.max"), &v)?;
        }
        if let Some(b) = r.block_io() {
            self.apply_block_io(b)?;
        }
        if let (Some(devs), Some(d)) = (r.devices(), self.v1_dir("devices")) {
            for dev in devs {
                let kind = dev
                    .typ()
                    .map(|t| t.as_str().to_string())
                    .unwrap_or_else(|| "a".into());
                let major = dev.major().map_or("*".to_string(), |m| m.to_string());
                let minor = dev.minor().map_or("*".to_string(), |m| m.to_string());
                let access = dev.access().clone().unwrap_or_else(|| "rwm".into());
                let rule = if kind == "a" {
                    "a".to_string()
                } else {
                    format!("{kind} {major}:{minor} {access}")
                };
                let file = if dev.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                write(&d.join(file), &rule)?;
            }
        }
        Ok(())
    }

    /// Writes a real-time period and runtime (v1 only: v2 has no RT group scheduling), with
    /// the budget of the cgroups above (see [`super::realtime`]).
    fn apply_realtime(&self, period: Option<u64>, runtime: Option<i64>) -> Result<(), CgroupError> {
        let d = self.need("real-time CPU time", "cpu")?;
        let root = match self {
            Cgroup::V1 { .. } => v1_hierarchies()?
                .into_iter()
                .find(|(c, _)| c.iter().any(|x| x == "cpu"))
                .map(|(_, m)| m),
            Cgroup::V2 { .. } => None,
        };
        let Some(root) = root.filter(|_| d.join("cpu.rt_runtime_us").exists()) else {
            return Err(CgroupError::NotOnThisHost {
                what: "real-time CPU time",
                file: d.join("cpu.rt_runtime_us"),
            });
        };
        // -1 (no limit) is the root's alone; a container's runtime is at least 0.
        let runtime = runtime.map(|r| u64::try_from(r).unwrap_or(0));
        super::realtime::set(&root, &d, period, runtime)
    }

    /// The real-time claim of this cgroup, to give back to the cgroups above once it is
    /// removed (`None` when it claims none). Read before an external runtime removes the
    /// cgroup itself.
    pub fn realtime_held(&self) -> Option<super::realtime::Held> {
        let d = self.v1_dir("cpu")?;
        // The common case, no claim, costs one small read (not a mount table's).
        let claim: i64 = fs::read_to_string(d.join("cpu.rt_runtime_us"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if claim <= 0 {
            return None;
        }
        let root = v1_hierarchies()
            .ok()?
            .into_iter()
            .find(|(c, _)| c.iter().any(|x| x == "cpu"))?
            .1;
        super::realtime::Held::of(root, d.to_path_buf())
    }

    /// The files through which a process moves itself into this cgroup without the kernel's
    /// global migration lock: each v1 hierarchy's `tasks`, open for writing. A thread that
    /// writes "0" there moves only itself, which the kernel does without write-locking every
    /// thread group; a move through `cgroup.procs` takes that lock, and its first use after a
    /// quiet spell waits for an RCU grace period (8-12 ms on a cgroup v1 host, the largest
    /// wait of a container start). `None` on v2 (no `tasks` file: the starter moves the
    /// process through `cgroup.procs`).
    pub fn self_join_files(&self) -> Result<Option<Vec<OwnedFd>>, CgroupError> {
        let Cgroup::V1 { dirs } = self else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(dirs.len());
        for (_, d) in dirs {
            let path = d.join("tasks");
            let f = fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .map_err(|source| CgroupError::Write {
                    path,
                    value: "0".into(),
                    source,
                })?;
            out.push(OwnedFd::from(f));
        }
        Ok(Some(out))
    }

    /// Moves the calling process into every hierarchy of the cgroup. A single-threaded
    /// process on v1 writes "0" to each hierarchy's `tasks` file (no grace-period
    /// wait); otherwise its pid goes to `cgroup.procs`, which moves all of its threads.
    pub fn join_self(&self) -> Result<(), CgroupError> {
        match self {
            Cgroup::V1 { dirs } if single_threaded() => {
                for (_, d) in dirs {
                    write(&d.join("tasks"), "0")?;
                }
                Ok(())
            }
            _ => self.add_pid(std::process::id() as i32),
        }
    }

    /// Moves `pid` into every hierarchy of the cgroup.
    pub fn add_pid(&self, pid: i32) -> Result<(), CgroupError> {
        for d in self.dirs() {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    fn dirs(&self) -> Vec<&Path> {
        match self {
            Cgroup::V1 { dirs } => dirs.iter().map(|(_, d)| d.as_path()).collect(),
            Cgroup::V2 { dir } => vec![dir.as_path()],
        }
    }

    /// Whether the kernel's OOM killer has killed a task of this cgroup.
    pub fn oom_killed(&self) -> bool {
        let (file, d) = match self {
            Cgroup::V1 { .. } => ("memory.oom_control", self.v1_dir("memory")),
            Cgroup::V2 { dir } => ("memory.events", Some(dir.as_path())),
        };
        let Some(d) = d else { return false };
        let text = fs::read_to_string(d.join(file)).unwrap_or_default();
        text.lines().any(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|n| n.trim().parse::<u64>().ok())
                .is_some_and(|n| n > 0)
        })
    }

    /// Pids of every task in the cgroup (for `top` and for a forced cleanup).
    pub fn pids(&self) -> Vec<i32> {
        let d = match self {
            Cgroup::V1 { .. } => self
                .v1_dir("pids")
                .or_else(|| self.v1_dir("memory"))
                .or_else(|| self.dirs().first().copied()),
            Cgroup::V2 { dir } => Some(dir.as_path()),
        };
        let Some(d) = d else { return Vec::new() };
        fs::read_to_string(d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Usage counters for `stats`, read from whichever backend holds them.
    pub fn stats(&self) -> CgroupStats {
        let read = |d: Option<&Path>, f: &str| -> Option<u64> {
            fs::read_to_string(d?.join(f)).ok()?.trim().parse().ok()
        };
        let kv = |d: Option<&Path>, f: &str, key: &str| -> Option<u64> {
            let text = fs::read_to_string(d?.join(f)).ok()?;
            text.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok())?
            })
        };
        match self {
            Cgroup::V1 { .. } => {
                let mem = self.v1_dir("memory");
                // v1 counts page cache in usage; Docker subtracts total_inactive_file.
                let usage = read(mem, "memory.usage_in_bytes").unwrap_or(0);
                let inactive = kv(mem, "memory.stat", "total_inactive_file").unwrap_or(0);
                let limit = read(mem, "memory.limit_in_bytes");
                let mut io = (0, 0);
                if let Some(d) = self.v1_dir("blkio")
                    && let Ok(t) = fs::read_to_string(d.join("blkio.throttle.io_service_bytes"))
                {
                    for l in t.lines() {
                        let f: Vec<&str> = l.split_whitespace().collect();
                        match (f.get(1), f.get(2).and_then(|v| v.parse::<u64>().ok())) {
                            (Some(&"Read"), Some(v)) => io.0 += v,
                            (Some(&"Write"), Some(v)) => io.1 += v,
                            _ => {}
                        }
                    }
                }
                CgroupStats {
                    cpu_ns: read(self.v1_dir("cpuacct"), "cpuacct.usage").unwrap_or(0),
                    memory: usage.saturating_sub(inactive),
                    memory_limit: limit.filter(|l| *l < (1 << 62)),
                    pids: read(self.v1_dir("pids"), "pids.current").unwrap_or(0),
                    io_read: io.0,
                    io_write: io.1,
                }
            }
            Cgroup::V2 { dir } => {
                let d = Some(dir.as_path());
                let mut io = (0, 0);
                if let Ok(t) = fs::read_to_string(dir.join("io.stat")) {
                    for tok in t.split_whitespace() {
                        if let Some(v) = tok.strip_prefix("rbytes=") {
                            io.0 += v.parse::<u64>().unwrap_or(0);
                        } else if let Some(v) = tok.strip_prefix("wbytes=") {
                            io.1 += v.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
                CgroupStats {
                    cpu_ns: kv(d, "cpu.stat", "usage_usec").unwrap_or(0) * 1000,
                    memory: read(d, "memory.current").unwrap_or(0),
                    memory_limit: read(d, "memory.max"),
                    pids: read(d, "pids.current").unwrap_or(0),
                    io_read: io.0,
                    io_write: io.1,
                }
            }
        }
    }

    /// The file that freezes the cgroup: `freezer.state` of the v1 freezer hierarchy, or
    /// `cgroup.freeze` of the v2 cgroup (kernel 5.2+).
    fn freezer_file(&self) -> Result<PathBuf, CgroupError> {
        let missing = CgroupError::MissingController {
            what: "pause",
            controller: "freezer",
        };
        let f = match self {
            Cgroup::V1 { .. } => self.v1_dir("freezer").ok_or(missing)?.join("freezer.state"),
            Cgroup::V2 { dir } => dir.join("cgroup.freeze"),
        };
        if f.exists() {
            Ok(f)
        } else {
            Err(CgroupError::MissingController {
                what: "pause",
                controller: "freezer",
            })
        }
    }

    /// Whether the kernel reports every task of the cgroup frozen.
    fn frozen_now(&self, file: &Path) -> bool {
        match self {
            Cgroup::V1 { .. } => fs::read_to_string(file).is_ok_and(|s| s.trim() == "FROZEN"),
            Cgroup::V2 { dir } => fs::read_to_string(dir.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l.trim() == "frozen 1")),
        }
    }

    /// Stops every task of the cgroup (`pause`): they keep their memory and state and get
    /// no CPU until [`Cgroup::thaw`]. Returns once the kernel reports them all frozen; if
    /// that does not happen within a few seconds the cgroup is thawed again and an error
    /// says so.
    pub fn freeze(&self) -> Result<(), CgroupError> {
        let file = self.freezer_file()?;
        let value = match self {
            Cgroup::V1 { .. } => "FROZEN",
            Cgroup::V2 { .. } => "1",
        };
        let secs = 5;
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            // v1 may stay FREEZING while a task is in an uninterruptible sleep: ask again.
            write(&file, value)?;
            if self.frozen_now(&file) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = self.thaw();
                return Err(CgroupError::FreezeTimeout { path: file, secs });
            }
            sleep(Duration::from_millis(5));
        }
    }

    /// Lets the tasks of a frozen cgroup run again (`unpause`); a no-op when not frozen.
    pub fn thaw(&self) -> Result<(), CgroupError> {
        let file = self.freezer_file()?;
        let value = match self {
            Cgroup::V1 { .. } => "THAWED",
            Cgroup::V2 { .. } => "0",
        };
        write(&file, value)
    }

    /// Whether the cgroup is frozen or freezing (`paused` in `ps`); false where there is no
    /// freezer.
    pub fn is_frozen(&self) -> bool {
        let Ok(file) = self.freezer_file() else {
            return false;
        };
        let text = fs::read_to_string(&file).unwrap_or_default();
        match self {
            Cgroup::V1 { .. } => matches!(text.trim(), "FROZEN" | "FREEZING"),
            Cgroup::V2 { .. } => text.trim() == "1",
        }
    }

    /// Whether the cgroup directories exist at all.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|d| d.exists())
    }

    /// Kills what is left inside and removes every directory; a no-op when already gone.
    pub fn remove(&self) -> Result<(), CgroupError> {
        // Frozen tasks cannot act on SIGKILL (v1): let them run so they can die.
        if self.is_frozen() {
            let _ = self.thaw();
        }
        let rt = self.realtime_held();
        let deadline = Instant::now() + Duration::from_secs(3);
        for d in self.dirs() {
            loop {
                if let Some(held) = rt.as_ref().filter(|_| Some(d) == self.v1_dir("cpu")) {
                    held.drop_own();
                }
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(source) => {
                        if Instant::now() > deadline {
                            return Err(CgroupError::Busy {
                                path: d.to_path_buf(),
                                source,
                            });
                        }
                        for pid in fs::read_to_string(d.join("cgroup.procs"))
                            .unwrap_or_default()
                            .lines()
                            .filter_map(|l| l.trim().parse::<i32>().ok())
                        {
                            // SAFETY: kill(2) has no memory-safety preconditions.
                            unsafe { libc::kill(pid, libc::SIGKILL) };
                        }
                        sleep(Duration::from_millis(10));
                    }
                }
            }
            // The shared parent (`berth`) goes when it is empty; another container keeps it.
            if let Some(parent) = d.parent() {
                let _ = fs::remove_dir(parent);
            }
        }
        if let Some(held) = rt {
            held.give_back();
        }
        if let Cgroup::V1 { dirs } = self
            && let Some(rel) = dirs.first().and_then(|(_, d)| v1_parent_rel(d))
        {
            remove_empty_parent_everywhere(Path::new(V1_ROOT), &rel);
        }
        Ok(())
    }
}

/// Where the v1 hierarchies (and a hybrid host's `unified` and `systemd`) are mounted.
const V1_ROOT: &str = "/sys/fs/cgroup";

/// The container's parent relative to its v1 hierarchy (`berth` for
/// `/sys/fs/cgroup/memory/berth/ID`).
fn v1_parent_rel(dir: &Path) -> Option<PathBuf> {
    let rel = dir.strip_prefix(V1_ROOT).ok()?;
    let mut parts = rel.components();
    parts.next()?; // the hierarchy's own directory
    let parent = parts.as_path().parent()?;
    (!parent.as_os_str().is_empty()).then(|| parent.to_path_buf())
}

/// Removes the parent `rel` in every hierarchy under `root` where it is empty. External OCI
/// runtimes (runc, crun) also make the container's cgroup in the named `systemd` and the
/// hybrid `unified` hierarchies, which berth's own layout does not list; their empty parents
/// would otherwise stay behind. A parent still holding a container is left (rmdir fails).
fn remove_empty_parent_everywhere(root: &Path, rel: &Path) {
    for h in fs::read_dir(root).into_iter().flatten().flatten() {
        let _ = fs::remove_dir(h.path().join(rel));
    }
}

fn strip_rel(dir: &Path, rel: &str) -> PathBuf {
    let mut base = dir.to_path_buf();
    for _ in rel.split('/').filter(|p| !p.is_empty()) {
        base.pop();
    }
    base
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containers_v1_parent_is_found_relative_to_its_hierarchy() {
        let p = |d: &str| v1_parent_rel(Path::new(d));
        assert_eq!(p("/sys/fs/cgroup/memory/berth/abc"), Some("berth".into()));
        assert_eq!(p("/sys/fs/cgroup/cpu/a/b/abc"), Some("a/b".into()));
        assert_eq!(p("/sys/fs/cgroup/memory/abc"), None);
        assert_eq!(p("/elsewhere/memory/berth/abc"), None);
    }

    #[test]
    fn empty_parents_go_in_every_hierarchy_and_busy_ones_stay() {
        let root = tempfile::tempdir().expect("tempdir");
        for h in ["memory", "systemd", "unified"] {
            fs::create_dir_all(root.path().join(h).join("berth")).expect("mkdir");
        }
        fs::create_dir_all(root.path().join("systemd/berth/other")).expect("busy");
        remove_empty_parent_everywhere(root.path(), Path::new("berth"));
        assert!(!root.path().join("memory/berth").exists());
        assert!(!root.path().join("unified/berth").exists());
        assert!(root.path().join("systemd/berth/other").exists());
    }

    #[test]
    fn weight_conversion_matches_runc() {
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
    }

    #[test]
    fn strip_rel_finds_the_hierarchy_root() {
        assert_eq!(
            strip_rel(Path::new("/sys/fs/cgroup/memory/berth/abc"), "berth/abc"),
            PathBuf::from("/sys/fs/cgroup/memory")
        );
    }
}
