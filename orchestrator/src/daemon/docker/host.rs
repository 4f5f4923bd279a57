//! Facts about the host that `/info` and `/version` report, read from the kernel each time
//! (they are cheap, and a constant would lie after a kernel or hostname change).

use std::collections::BTreeSet;
use std::path::Path;

use sha2::Digest;

/// The kernel release (`uname -r`).
pub(super) fn kernel_version() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The machine (`uname -m`, as `docker info` shows it: `x86_64`).
pub(super) fn machine() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.machine().to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The host name.
pub(super) fn hostname() -> String {
    nix::unistd::gethostname()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `PRETTY_NAME` and `VERSION_ID` of `/etc/os-release`.
pub(super) fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release")
        .or_else(|_| std::fs::read_to_string("/usr/lib/os-release"))
        .unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
            .map(|v| v.trim().trim_matches('"').to_string())
            .unwrap_or_default()
    };
    let pretty = field("PRETTY_NAME");
    (
        if pretty.is_empty() {
            "Linux".into()
        } else {
            pretty
        },
        field("VERSION_ID"),
    )
}

/// Total memory in bytes (`MemTotal` of `/proc/meminfo`).
pub(super) fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            let line = t.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        })
        .unwrap_or(0)
}

/// CPUs this process may run on (its affinity mask, as Docker counts them).
pub(super) fn ncpu() -> usize {
    use nix::sched::{CpuSet, sched_getaffinity};
    match sched_getaffinity(nix::unistd::Pid::from_raw(0)) {
        Ok(set) => (0..CpuSet::count())
            .filter(|&i| set.is_set(i).unwrap_or(false))
            .count(),
        Err(_) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    }
}

/// A stable id for this berth instance, shaped as Docker's (a UUID): derived from the
/// machine id and the instance's root, so it needs no state file and differs between two
/// instances on one host.
pub(super) fn engine_id(root: &Path) -> String {
    let machine = std::fs::read_to_string("/etc/machine-id").unwrap_or_default();
    let mut h = sha2::Sha256::new();
    h.update(machine.trim().as_bytes());
    h.update(b"\0");
    h.update(root.as_os_str().as_encoded_bytes());
    let hex = hex::encode(h.finalize());
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The filesystem under `path`, in the words `docker info` uses ("Backing Filesystem").
pub(super) fn backing_fs(path: &Path) -> &'static str {
    use nix::sys::statfs::{
        BTRFS_SUPER_MAGIC, EXT4_SUPER_MAGIC, OVERLAYFS_SUPER_MAGIC, TMPFS_MAGIC, XFS_SUPER_MAGIC,
        statfs,
    };
    let Ok(st) = statfs(path) else {
        return "unknown";
    };
    match st.filesystem_type() {
        t if t == EXT4_SUPER_MAGIC => "extfs",
        t if t == XFS_SUPER_MAGIC => "xfs",
        t if t == BTRFS_SUPER_MAGIC => "btrfs",
        t if t == TMPFS_MAGIC => "tmpfs",
        t if t == OVERLAYFS_SUPER_MAGIC => "overlayfs",
        _ => "unknown",
    }
}

/// The cgroup controllers containers can be limited with (v2's root list, or the v1
/// hierarchies mounted on a v1 or hybrid host).
pub(super) fn cgroup_controllers() -> BTreeSet<String> {
    if let Ok(text) = std::fs::read_to_string("/sys/fs/cgroup/cgroup.controllers") {
        return text.split_whitespace().map(str::to_string).collect();
    }
    ["memory", "cpu", "cpuset", "pids"]
        .into_iter()
        .filter(|c| Path::new("/sys/fs/cgroup").join(c).is_dir())
        .map(str::to_string)
        .collect()
}

/// Whether swap can be limited (v2: `memory.swap.max` exists in some cgroup of ours; v1:
/// `memory.memsw.limit_in_bytes`).
pub(super) fn swap_limit() -> bool {
    let init_slice = Path::new("/sys/fs/cgroup/init.scope/memory.swap.max");
    let system = Path::new("/sys/fs/cgroup/system.slice/memory.swap.max");
    init_slice.exists()
        || system.exists()
        || Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists()
}

/// A 0/1 kernel switch under `/proc/sys` (false when absent, e.g. br_netfilter not loaded).
pub(super) fn sysctl_on(path: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1")
}

/// Open file descriptors of the daemon (`docker info` shows dockerd's in debug mode).
pub(super) fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_id_is_a_stable_uuid_per_root() {
        let a = engine_id(Path::new("/var/lib/berth"));
        assert_eq!(a, engine_id(Path::new("/var/lib/berth")));
        assert_ne!(a, engine_id(Path::new("/tmp/other")));
        let groups: Vec<usize> = a.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
    }

    #[test]
    fn host_facts_are_read() {
        assert!(!kernel_version().is_empty());
        assert!(ncpu() >= 1);
        assert!(mem_total() > 0);
        assert!(!os_release().0.is_empty());
    }
}
