//! Where the cgroup v1 hierarchies are mounted (their controllers and mount points under
//! /sys/fs/cgroup), read from the mount table and kept until they may have changed.
//!
//! The mount table grows with the containers (a netns pin each), so reading it for every
//! container operation costs more the more containers there are, while the hierarchies hardly
//! ever change. The table is read again only when both hold: it changed since the last reading
//! (a poll of the open mountinfo file reports `POLLPRI` after any mount or unmount in the
//! namespace), and what is mounted at /sys/fs/cgroup differs (the device and inode of it and
//! of each entry in it: mounting or unmounting a hierarchy there changes those of its mount
//! point). So a look costs one poll while nothing is mounted, a dozen `stat`s after a
//! container's mounts came or went, and a reading only when a hierarchy did.
//!
//! A shim is a new process with nothing cached: its starter hands it the hierarchies with
//! their fingerprint ([`MountCache::export`]), which the shim takes when the fingerprint it
//! takes itself is the same ([`MountCache::seed`]), so a container start does not read the
//! whole mount table either.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read, Seek};
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// v1 hierarchies: (controllers, mount point).
pub(super) type Hierarchies = Vec<(Vec<String>, PathBuf)>;

/// The device and inode of the cgroup root and of each entry in it, by name.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Fingerprint(Vec<(OsString, u64, u64)>);

/// What a starter hands a shim: the hierarchies and the fingerprint they were read with.
#[derive(serde::Serialize, serde::Deserialize)]
struct Handed {
    mounts: Vec<(String, u64, u64)>,
    hierarchies: Vec<(Vec<String>, PathBuf)>,
}

impl Fingerprint {
    fn of(root: &Path) -> io::Result<Self> {
        let m = fs::symlink_metadata(root)?;
        let mut entries = vec![(OsString::new(), m.dev(), m.ino())];
        for e in fs::read_dir(root)? {
            let e = e?;
            // Not followed: a link (`cpu -> cpu,cpuacct`) is itself; a mount point is the
            // root of what is mounted there.
            let m = e.metadata()?;
            entries.push((e.file_name(), m.dev(), m.ino()));
        }
        entries.sort();
        Ok(Self(entries))
    }
}

/// The last reading and what tells whether it still holds.
#[derive(Debug)]
pub(super) struct MountCache {
    root: PathBuf,
    mountinfo: PathBuf,
    last: Option<Reading>,
    /// How many times the table was read.
    readings: u64,
}

#[derive(Debug)]
struct Reading {
    /// Kept open: its poll tells whether the mount table changed since.
    file: File,
    mounts: Option<Fingerprint>,
    hierarchies: Hierarchies,
}

/// Whether the mount table changed since the last poll of `file` (or its opening).
fn table_changed(file: &File) -> bool {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let mut fds = [PollFd::new(file.as_fd(), PollFlags::POLLPRI)];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(_) => fds[0]
            .revents()
            .is_none_or(|r| r.intersects(PollFlags::POLLPRI | PollFlags::POLLERR)),
        // Cannot tell: take it as changed.
        Err(_) => true,
    }
}

impl MountCache {
    /// Hierarchies mounted directly under `root`, as the mount table `mountinfo` lists them.
    pub(super) fn new(root: PathBuf, mountinfo: PathBuf) -> Self {
        Self {
            root,
            mountinfo,
            last: None,
            readings: 0,
        }
    }

    /// The hierarchies, read again only when they may have changed (see the module's doc).
    pub(super) fn get(&mut self) -> io::Result<Hierarchies> {
        if let Some(r) = &self.last {
            if !table_changed(&r.file) {
                return Ok(r.hierarchies.clone());
            }
            // Most changes are a container's mounts: the cgroup mounts stayed as they were.
            if r.mounts.is_some() && Fingerprint::of(&self.root).ok().as_ref() == r.mounts.as_ref()
            {
                return Ok(r.hierarchies.clone());
            }
        }
        let mut file = File::open(&self.mountinfo)?;
        // The poll state starts at the opening: changes from here on show at the next look.
        table_changed(&file);
        // Taken before the table is read, so a mount in between shows as a difference.
        let mounts = Fingerprint::of(&self.root).ok();
        // Read in big pieces: a proc file reports no size to size the buffer by.
        let mut text = String::with_capacity(64 << 10);
        file.read_to_string(&mut text)?;
        file.rewind()?;
        let hierarchies = parse(&text, &self.root);
        self.readings += 1;
        self.last = Some(Reading {
            file,
            mounts,
            hierarchies: hierarchies.clone(),
        });
        Ok(hierarchies)
    }
}

impl MountCache {
    /// The current hierarchies and their fingerprint, for [`MountCache::seed`] in a shim;
    /// `None` when they cannot be read or named (the shim then reads the table itself).
    pub(super) fn export(&mut self) -> Option<String> {
        self.get().ok()?;
        let r = self.last.as_ref()?;
        let mounts = r
            .mounts
            .as_ref()?
            .0
            .iter()
            .map(|(n, dev, ino)| Some((n.to_str()?.to_string(), *dev, *ino)))
            .collect::<Option<Vec<_>>>()?;
        serde_json::to_string(&Handed {
            mounts,
            hierarchies: r.hierarchies.clone(),
        })
        .ok()
    }

    /// Takes the hierarchies a starter exported if what is mounted at the root is still
    /// what they were read with; `false` (nothing taken) otherwise.
    pub(super) fn seed(&mut self, exported: &str) -> bool {
        let Ok(handed) = serde_json::from_str::<Handed>(exported) else {
            return false;
        };
        let Ok(file) = File::open(&self.mountinfo) else {
            return false;
        };
        // Polled before the comparison: a mount after it shows at the next look.
        table_changed(&file);
        let Ok(now) = Fingerprint::of(&self.root) else {
            return false;
        };
        let theirs = Fingerprint(
            handed
                .mounts
                .into_iter()
                .map(|(n, dev, ino)| (OsString::from(n), dev, ino))
                .collect(),
        );
        if now != theirs {
            return false;
        }
        self.last = Some(Reading {
            file,
            mounts: Some(now),
            hierarchies: handed.hierarchies,
        });
        true
    }
}

/// The cgroup v1 mounts with controllers directly under `root`, from a mountinfo text.
pub(super) fn parse(info: &str, root: &Path) -> Hierarchies {
    let mut out = Vec::new();
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or("");
        let ctrls: Vec<String> = super_opts
            .split(',')
            .filter(|o| {
                matches!(
                    *o,
                    "cpu"
                        | "cpuacct"
                        | "cpuset"
                        | "memory"
                        | "devices"
                        | "freezer"
                        | "blkio"
                        | "pids"
                        | "net_cls"
                        | "net_prio"
                        | "perf_event"
                        | "hugetlb"
                )
            })
            .map(str::to_string)
            .collect();
        let Some(mnt) = pre.split(' ').nth(4).map(Path::new) else {
            continue;
        };
        if !ctrls.is_empty() && mnt.parent() == Some(root) {
            out.push((ctrls, mnt.to_path_buf()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::mount::{MsFlags, mount};

    const INFO: &str = "\
35 24 0:30 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,xattr,name=systemd
40 35 0:35 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:15 - cgroup cgroup rw,cpu,cpuacct
41 35 0:36 / /sys/fs/cgroup/memory rw,nosuid shared:16 - cgroup cgroup rw,memory
42 41 0:36 /x /sys/fs/cgroup/memory/x rw,nosuid shared:16 - cgroup cgroup rw,memory
43 24 0:36 / /sys/fs/cgroupish rw,nosuid shared:16 - cgroup cgroup rw,pids
";

    #[test]
    fn only_hierarchies_with_controllers_right_under_the_root_count() {
        let h = parse(INFO, Path::new("/sys/fs/cgroup"));
        assert_eq!(
            h,
            vec![
                (
                    vec!["cpu".to_string(), "cpuacct".to_string()],
                    PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
                ),
                (
                    vec!["memory".to_string()],
                    PathBuf::from("/sys/fs/cgroup/memory")
                ),
            ]
        );
    }

    /// Runs `f` on a thread of its own in a mount namespace of its own, whose mounts are
    /// private: what it mounts never reaches the host and goes with the thread (a failed
    /// assertion included).
    fn in_own_mount_ns(f: impl FnOnce() + Send + 'static) {
        std::thread::spawn(move || {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).expect("unshare");
            mount(
                None::<&str>,
                "/",
                None::<&str>,
                MsFlags::MS_REC | MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .expect("make / private");
            f();
        })
        .join()
        .expect("thread");
    }

    fn tmpfs(at: &Path) {
        mount(
            Some("tmpfs"),
            at,
            Some("tmpfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount tmpfs");
    }

    #[test_with::root()]
    #[test]
    fn a_shim_takes_the_starters_hierarchies_while_the_mounts_at_the_root_are_the_same() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("cgroup");
        fs::create_dir_all(root.join("pids")).expect("mkdir");
        in_own_mount_ns(move || {
            let info = PathBuf::from("/proc/thread-self/mountinfo");
            let mut starter = MountCache::new(root.clone(), info.clone());
            let exported = starter.export().expect("exported");
            let mut shim = MountCache::new(root.clone(), info.clone());
            assert!(shim.seed(&exported), "same mounts: taken");
            shim.get().expect("look");
            assert_eq!(
                shim.readings, 0,
                "the shim read the table although handed it"
            );
            // A hierarchy mounted since the export: the shim reads for itself.
            tmpfs(&root.join("pids"));
            let mut late = MountCache::new(root.clone(), info);
            assert!(!late.seed(&exported), "mounts changed: refused");
            late.get().expect("look");
            assert_eq!(late.readings, 1);
            assert!(!late.seed("{not json"), "garbage refused");
            nix::mount::umount(&root.join("pids")).expect("umount");
        });
    }

    #[test_with::root()]
    #[test]
    fn the_table_is_read_again_only_when_a_mount_under_the_root_changed() {
        // Made and removed out here, where nothing is mounted on its entries.
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("cgroup");
        let other = tmp.path().join("elsewhere");
        for d in [root.join("memory"), root.join("pids"), other.clone()] {
            fs::create_dir_all(&d).expect("mkdir");
        }
        in_own_mount_ns(move || {
            // This thread's namespace (`/proc/self` is the main thread's).
            let mut cache = MountCache::new(root.clone(), "/proc/thread-self/mountinfo".into());
            cache.get().expect("first reading");
            cache.get().expect("unchanged");
            assert_eq!(cache.readings, 1, "read again with no mount made");
            // A mount elsewhere (a container's netns pin, say): the cgroup root is as it was.
            tmpfs(&other);
            cache.get().expect("after a mount elsewhere");
            assert_eq!(cache.readings, 1, "read again for a mount elsewhere");
            // A mount on an entry of the root (a hierarchy mounted there) is a new reading.
            tmpfs(&root.join("pids"));
            cache.get().expect("after a mount under the root");
            assert_eq!(
                cache.readings, 2,
                "not read again after a mount under the root"
            );
            cache.get().expect("unchanged again");
            assert_eq!(cache.readings, 2);
            // So is an unmount there.
            nix::mount::umount(&root.join("pids")).expect("umount");
            cache.get().expect("after an unmount under the root");
            assert_eq!(
                cache.readings, 3,
                "not read again after an unmount under the root"
            );
            nix::mount::umount(&other).expect("umount");
        });
    }
}
