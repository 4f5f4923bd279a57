//! Container records for the daemon's pollers (restart policies, healthcheck arming), which
//! look at every container several times a second: the list `Runtime::list` gives, narrowed to
//! the records the pollers care for (a predicate given once: a restart policy or a healthcheck
//! label). A container's `berth.json` is parsed again only when the file changed (inode, size
//! or mtime), and only the kept records are held in memory and have their states read.
//!
//! Which containers to look at again comes from inotify: a watch on the containers directory
//! (a container made or removed) and one on each container's directory (its `berth.json`
//! replaced), so a poll costs the changes since the last one, not a `stat` per container. When
//! inotify cannot follow (no watch left, its queue overflowed) the poll stats every record, as
//! a directory scan does.
//!
//! The same watches see each container's `state.json` replaced, which drives the settle sweep
//! ([`RecordCache::settle_all`]): a container whose state changed is looked at again, and of
//! the others only the running ones, by their shim's `/proc` stat (pid and start time as seen
//! once), not by reading their state and their shim's command line every time.

use std::collections::{HashMap, HashSet};
use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_runtime::container::{LiveShim, Record, Runtime, ShimLook, State};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};

/// What identifies one version of a `berth.json` (written by temp file and rename).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_ns: i64,
}

impl Stamp {
    fn of(path: &Path) -> Option<Self> {
        let m = std::fs::metadata(path).ok()?;
        Some(Self {
            ino: m.ino(),
            len: m.len(),
            mtime: m.mtime(),
            mtime_ns: m.mtime_nsec(),
        })
    }
}

/// One cache shared by the pollers (each poll locks it for its listing).
pub type SharedRecordCache = std::sync::Arc<std::sync::Mutex<RecordCache>>;

/// The records last parsed, by container directory name: `None` for a record the pollers do
/// not care for (only its stamp is kept, to see it change).
pub struct RecordCache {
    dir: PathBuf,
    keep: fn(&Record) -> bool,
    seen: HashMap<OsString, (Stamp, Option<Record>)>,
    /// Follows the directories; `None` until set up (or after it failed: scans then).
    watch: Option<Watch>,
    /// Set when a watch could not be added: inotify is not tried again.
    unwatchable: bool,
    /// Running containers whose shim was alive at the last look, for the settle sweep.
    shims: HashMap<OsString, LiveShim>,
    /// Containers whose state changed (or that appeared) since the last settle sweep.
    unsettled: HashSet<OsString>,
    /// The next settle sweep looks at every container (at first, and after the watch lost
    /// track).
    settle_whole: bool,
}

/// The containers directory and each container's directory under inotify.
struct Watch {
    fd: Inotify,
    top: WatchDescriptor,
    dirs: HashMap<WatchDescriptor, OsString>,
    by_name: HashMap<OsString, WatchDescriptor>,
}

/// What the events since the last poll say to look at again.
enum Dirty {
    All,
    /// Containers whose record changed (or that came or went), and those whose state did.
    Names {
        records: HashSet<OsString>,
        states: HashSet<OsString>,
    },
}

/// A container's state file, replaced (temp file and rename) on every change.
const STATE_FILE: &str = "state.json";

const TOP_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);
const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

impl Watch {
    fn new(dir: &Path) -> nix::Result<Self> {
        let fd = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
        let top = fd.add_watch(dir, TOP_EVENTS)?;
        Ok(Self {
            fd,
            top,
            dirs: HashMap::new(),
            by_name: HashMap::new(),
        })
    }

    /// Watches the directory of container `name` (once).
    fn add(&mut self, dir: &Path, name: &OsStr) -> nix::Result<()> {
        if self.by_name.contains_key(name) {
            return Ok(());
        }
        let wd = self.fd.add_watch(&dir.join(name), DIR_EVENTS)?;
        self.dirs.insert(wd, name.to_os_string());
        self.by_name.insert(name.to_os_string(), wd);
        Ok(())
    }

    fn forget(&mut self, name: &OsStr) {
        if let Some(wd) = self.by_name.remove(name) {
            self.dirs.remove(&wd);
            let _ = self.fd.rm_watch(wd);
        }
    }

    /// The containers named by the events queued since the last call.
    fn drain(&mut self) -> Dirty {
        let mut names = HashSet::new();
        let mut states = HashSet::new();
        loop {
            let events = match self.fd.read_events() {
                Ok(ev) => ev,
                Err(nix::errno::Errno::EAGAIN) => {
                    return Dirty::Names {
                        records: names,
                        states,
                    };
                }
                Err(_) => return Dirty::All,
            };
            if events.is_empty() {
                return Dirty::Names {
                    records: names,
                    states,
                };
            }
            for ev in events {
                if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                    return Dirty::All;
                }
                if ev.wd == self.top {
                    if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        return Dirty::All;
                    }
                    if let Some(n) = ev.name {
                        names.insert(n);
                    }
                } else if let Some(name) = self.dirs.get(&ev.wd) {
                    let record = ev.name.as_deref() == Some(OsStr::new(Record::FILE));
                    if record || ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        names.insert(name.clone());
                    } else if ev.name.as_deref() == Some(OsStr::new(STATE_FILE)) {
                        states.insert(name.clone());
                    }
                }
            }
        }
    }
}

impl RecordCache {
    /// For the instance at `root`, holding the records `keep` says yes to.
    pub fn new(root: &Path, keep: fn(&Record) -> bool) -> Self {
        Self {
            dir: root.join("containers"),
            keep,
            seen: HashMap::new(),
            watch: None,
            unwatchable: false,
            shims: HashMap::new(),
            unsettled: HashSet::new(),
            settle_whole: true,
        }
    }

    /// A cache for the instance at `root`, to share between pollers.
    pub fn shared(root: &Path, keep: fn(&Record) -> bool) -> SharedRecordCache {
        std::sync::Arc::new(std::sync::Mutex::new(Self::new(root, keep)))
    }

    /// The kept containers that `wanted` also says yes to, with their states (settled as
    /// `Runtime::state` does), oldest first. Only those have their state read and their
    /// record copied.
    pub fn list_where(
        &mut self,
        rt: &Runtime,
        wanted: impl Fn(&Record) -> bool,
    ) -> Vec<(Record, State)> {
        self.refresh();
        let mut out = Vec::new();
        for (_, rec) in self.seen.values() {
            if let Some(rec) = rec.as_ref().filter(|r| wanted(r))
                && let Ok(st) = rt.state(rec)
            {
                out.push((rec.clone(), st));
            }
        }
        out.sort_by_key(|(_, s)| s.created_at);
        out
    }

    /// Brings `seen` up to date: the containers the events name, or all of them.
    fn refresh(&mut self) {
        if self.watch.is_none() && !self.unwatchable {
            // Set up before the scan, so that nothing written meanwhile is missed.
            self.watch = Watch::new(&self.dir).ok();
            self.settle_whole = true;
            self.scan();
            return;
        }
        match self.watch.as_mut().map(Watch::drain) {
            Some(Dirty::Names { records, states }) => {
                self.unsettled.extend(states);
                for name in records {
                    self.unsettled.insert(name.clone());
                    self.look(name);
                }
            }
            Some(Dirty::All) => {
                // The watch lost track: start over with a fresh one.
                self.watch = None;
                self.refresh();
            }
            None => self.scan(),
        }
    }

    /// Looks at every container directory.
    fn scan(&mut self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            self.seen.clear();
            self.watch = None;
            return;
        };
        let mut present = HashSet::with_capacity(self.seen.len());
        for e in rd.flatten() {
            let name = e.file_name();
            present.insert(name.clone());
            self.look(name);
        }
        self.seen.retain(|name, _| present.contains(name));
        if let Some(w) = self.watch.as_mut() {
            let gone: Vec<OsString> = w
                .by_name
                .keys()
                .filter(|n| !present.contains(*n))
                .cloned()
                .collect();
            for n in gone {
                w.forget(&n);
            }
        }
    }

    /// Looks at one container directory: watched, its record parsed again if it changed,
    /// forgotten if it is gone.
    fn look(&mut self, name: OsString) {
        // Dot entries are removals under way.
        let path = self.dir.join(&name);
        if name.as_encoded_bytes().starts_with(b".") || !path.is_dir() {
            self.seen.remove(&name);
            if let Some(w) = self.watch.as_mut() {
                w.forget(&name);
            }
            return;
        }
        if let Some(w) = self.watch.as_mut()
            && w.add(&self.dir, &name).is_err()
        {
            // Out of watches: every poll scans from now on.
            self.watch = None;
            self.unwatchable = true;
        }
        let Some(stamp) = Stamp::of(&path.join(Record::FILE)) else {
            self.seen.remove(&name);
            return;
        };
        if self.seen.get(&name).is_some_and(|(s, _)| *s == stamp) {
            return;
        }
        match Record::load(&path) {
            Ok(rec) => {
                let rec = Some(rec).filter(self.keep);
                self.seen.insert(name, (stamp, rec));
            }
            Err(_) => {
                self.seen.remove(&name);
            }
        }
    }

    /// Settles every container whose shim died (its leftovers killed, the exit recorded) even
    /// when no one asks about it: the slow sweep beside the pollers' frequent looks at the few
    /// they care for. A container whose state changed since the last sweep has its state read
    /// again; of the others, only the running ones are looked at, by their shim's `/proc`
    /// stat. Every container's state is read when inotify cannot say what changed (at first,
    /// after an overflow, without watches). A record is read only for a shim that is gone.
    pub fn settle_all(&mut self, rt: &Runtime) {
        self.refresh();
        if self.watch.is_none() || self.settle_whole {
            self.settle_whole = self.watch.is_none();
            self.unsettled.clear();
            self.shims.clear();
            let Ok(rd) = std::fs::read_dir(&self.dir) else {
                return;
            };
            for e in rd.flatten() {
                self.settle_one(rt, e.file_name());
            }
            return;
        }
        for name in std::mem::take(&mut self.unsettled) {
            self.settle_one(rt, name);
        }
        let dead: Vec<OsString> = self
            .shims
            .iter()
            .filter(|(_, shim)| !shim.lives())
            .map(|(name, _)| name.clone())
            .collect();
        for name in dead {
            self.settle_one(rt, name);
        }
    }

    /// Looks at the shim of one container: kept in `shims` while it lives, the container
    /// settled when it is gone.
    fn settle_one(&mut self, rt: &Runtime, name: OsString) {
        self.shims.remove(&name);
        if name.as_encoded_bytes().starts_with(b".") {
            return;
        }
        let path = self.dir.join(&name);
        match berth_runtime::container::look_at_shim(&path) {
            ShimLook::NotRunning => {}
            ShimLook::Lives(shim) => {
                self.shims.insert(name, shim);
            }
            ShimLook::Gone => {
                let settled = match self.seen.get(&name) {
                    Some((_, Some(rec))) => rt.state(rec),
                    _ => match Record::load(&path) {
                        Ok(rec) => rt.state(&rec),
                        Err(_) => return,
                    },
                };
                // Still running (its shim answered on its socket after all): looked at
                // again next time.
                if settled.is_ok_and(|st| st.status == berth_runtime::container::Status::Running) {
                    self.unsettled.insert(name);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::container::{ContainerConfig, RootfsSource};

    const POLICY: &str = crate::engine::labels::RESTART;

    /// Writes a created container `id` with `labels` into `root`.
    fn put(root: &Path, id: &str, labels: &[(&str, &str)]) {
        let dir = root.join("containers").join(id);
        std::fs::create_dir_all(&dir).expect("container dir");
        let mut config = ContainerConfig::new(RootfsSource::Dir("/".into()), vec!["sh".into()]);
        config.name = id.into();
        config.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let rec = Record {
            id: id.into(),
            dir: dir.clone(),
            run_dir: root.join("run").join(id),
            config,
            cgroup: format!("berth-test/{id}"),
            netns: None,
            volumes: Vec::new(),
        };
        let tmp = dir.join(".berth.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&rec).expect("json")).expect("record");
        std::fs::rename(&tmp, dir.join(Record::FILE)).expect("rename");
        State::new(id, id).save(&rec.state_path()).expect("state");
    }

    #[test]
    fn holds_and_lists_only_kept_records_and_sees_a_rewrite() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let rt = Runtime::new(crate::engine::stack::runtime_config(
            root,
            &root.join("run"),
            "/nonexistent/berth".into(),
        ));
        put(root, "plain", &[]);
        put(root, "kept", &[(POLICY, "always")]);
        let mut cache = RecordCache::new(root, |r| r.config.labels.contains_key(POLICY));
        let ids = |l: Vec<(Record, State)>| l.into_iter().map(|(r, _)| r.id).collect::<Vec<_>>();
        assert_eq!(ids(cache.list_where(&rt, |_| true)), ["kept"]);
        assert_eq!(cache.seen.len(), 2, "both stamped");
        assert_eq!(
            cache.seen.values().filter(|(_, r)| r.is_some()).count(),
            1,
            "only the kept record held"
        );
        assert!(cache.list_where(&rt, |_| false).is_empty());
        // A record rewritten with the label (say `update --restart`) is seen at the next poll.
        put(root, "plain", &[(POLICY, "on-failure")]);
        let mut now = ids(cache.list_where(&rt, |_| true));
        now.sort();
        assert_eq!(now, ["kept", "plain"]);
        // A removed container is forgotten.
        std::fs::remove_dir_all(root.join("containers").join("kept")).expect("rm");
        assert_eq!(ids(cache.list_where(&rt, |_| true)), ["plain"]);
        assert_eq!(cache.seen.len(), 1);
        cache.settle_all(&rt);
    }

    #[test]
    fn events_bring_new_rewritten_and_removed_records_without_a_scan() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        std::fs::create_dir_all(root.join("containers")).expect("containers dir");
        let rt = Runtime::new(crate::engine::stack::runtime_config(
            root,
            &root.join("run"),
            "/nonexistent/berth".into(),
        ));
        let mut cache = RecordCache::new(root, |r| r.config.labels.contains_key(POLICY));
        assert!(cache.list_where(&rt, |_| true).is_empty());
        let watch = cache
            .watch
            .as_ref()
            .expect("an inotify watch on the containers dir");
        assert!(watch.by_name.is_empty());
        let ids = |l: Vec<(Record, State)>| l.into_iter().map(|(r, _)| r.id).collect::<Vec<_>>();
        // Made after the first poll: only an event can bring it.
        put(root, "late", &[(POLICY, "always")]);
        assert_eq!(ids(cache.list_where(&rt, |_| true)), ["late"]);
        assert_eq!(cache.watch.as_ref().map(|w| w.by_name.len()), Some(1));
        // A rewrite without the label drops it; one with the label brings it back.
        put(root, "late", &[]);
        assert!(cache.list_where(&rt, |_| true).is_empty());
        put(root, "late", &[(POLICY, "no")]);
        assert_eq!(ids(cache.list_where(&rt, |_| true)), ["late"]);
        // A removal (renamed away first, as the runtime does) forgets it and its watch.
        let c = root.join("containers");
        std::fs::rename(c.join("late"), c.join(".removing-late")).expect("rename");
        assert!(cache.list_where(&rt, |_| true).is_empty());
        assert!(cache.seen.is_empty());
        assert_eq!(cache.watch.as_ref().map(|w| w.by_name.len()), Some(0));
    }

    /// A process whose command line reads as the shim of `dir` (`shim DIR`), as
    /// `Runtime::state` checks; a shell that stays (two commands), so the line stays.
    fn fake_shim(dir: &Path) -> std::process::Child {
        let child = std::process::Command::new("/bin/sh")
            .args(["-c", "sleep 60; true", "shim"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn sh");
        // The spawn returns once the exec has begun, before the kernel has set up the new
        // command line: /proc/<pid>/cmdline reads empty for a moment.
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let t0 = std::time::Instant::now();
        while std::fs::read(&cmdline).map_or(true, |c| c.is_empty())
            && t0.elapsed() < std::time::Duration::from_secs(5)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        child
    }

    /// Writes `dir`'s state as running under shim `pid`.
    fn running(dir: &Path, pid: u32) {
        let mut st = State::load(&dir.join("state.json")).expect("state");
        st.status = berth_runtime::container::Status::Running;
        st.shim_pid = pid as i32;
        st.save(&dir.join("state.json")).expect("save state");
    }

    fn exit_code(dir: &Path) -> Option<i32> {
        State::load(&dir.join("state.json"))
            .expect("state")
            .exit_code
    }

    #[test]
    fn settles_a_dead_shim_and_a_state_that_changed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let rt = Runtime::new(crate::engine::stack::runtime_config(
            root,
            &root.join("run"),
            "/nonexistent/berth".into(),
        ));
        put(root, "one", &[]);
        put(root, "two", &[(POLICY, "always")]);
        let one = root.join("containers").join("one");
        let two = root.join("containers").join("two");
        let mut shim_one = fake_shim(&one);
        let mut shim_two = fake_shim(&two);
        running(&one, shim_one.id());
        running(&two, shim_two.id());
        let mut cache = RecordCache::new(root, |r| r.config.labels.contains_key(POLICY));
        // The first sweep reads everything: both shims live and are followed.
        cache.settle_all(&rt);
        assert_eq!(cache.shims.len(), 2);
        assert!(!cache.settle_whole, "followed by inotify from here on");
        // A shim killed outright: seen by its /proc stat alone, its container settled.
        shim_one.kill().expect("kill");
        shim_one.wait().expect("reap");
        cache.settle_all(&rt);
        assert_eq!(
            exit_code(&one),
            Some(137),
            "a dead shim's container is settled"
        );
        assert_eq!(cache.shims.len(), 1);
        // A state rewritten to name another shim, one already dead (a restart whose shim
        // died at once): seen by the state's change, not by the shim followed before.
        let mut dead = std::process::Command::new("/bin/true")
            .spawn()
            .expect("spawn true");
        let dead_pid = dead.id();
        dead.wait().expect("reap");
        running(&two, dead_pid);
        cache.settle_all(&rt);
        assert_eq!(exit_code(&two), Some(137), "a changed state is settled");
        assert!(cache.shims.is_empty());
        shim_two.kill().expect("kill");
        shim_two.wait().expect("reap");
        cache.settle_all(&rt);
        assert!(cache.unsettled.is_empty() && cache.shims.is_empty());
    }
}
