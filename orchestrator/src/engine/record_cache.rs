//! Container records for the daemon's pollers (restart policies, healthcheck arming), which
//! look at every container several times a second: the list `Runtime::list` gives, narrowed to
//! the records the pollers care for (a predicate given once: a restart policy or a healthcheck
//! label). A container's `berth.json` is parsed again only when the file changed (inode, size
//! or mtime), only the kept records are held in memory and only their states are read, so a
//! poll of a large instance costs a `stat` per container and memory only for the few kept.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use berth_runtime::container::{Record, Runtime, State};

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
}

impl RecordCache {
    /// For the instance at `root`, holding the records `keep` says yes to.
    pub fn new(root: &Path, keep: fn(&Record) -> bool) -> Self {
        Self {
            dir: root.join("containers"),
            keep,
            seen: HashMap::new(),
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
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            self.seen.clear();
            return out;
        };
        let mut next = HashMap::with_capacity(self.seen.len());
        for e in rd.flatten() {
            let name = e.file_name();
            // Dot entries are removals under way.
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            let path = e.path();
            let Some(stamp) = Stamp::of(&path.join(Record::FILE)) else {
                continue;
            };
            let rec = match self.seen.remove(&name) {
                Some((s, rec)) if s == stamp => rec,
                _ => match Record::load(&path) {
                    Ok(rec) => Some(rec).filter(self.keep),
                    Err(_) => continue,
                },
            };
            if let Some(rec) = rec.as_ref().filter(|r| wanted(r))
                && let Ok(st) = rt.state(rec)
            {
                out.push((rec.clone(), st));
            }
            next.insert(name, (stamp, rec));
        }
        self.seen = next;
        out.sort_by_key(|(_, s)| s.created_at);
        out
    }

    /// Reads the state of every container, kept or not, so that one whose shim died is
    /// settled (its leftovers killed, the exit recorded) even when no one asks about it: the
    /// slow sweep beside the pollers' frequent looks at the few they care for.
    pub fn settle_all(&self, rt: &Runtime) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in rd.flatten() {
            let name = e.file_name();
            if name.as_encoded_bytes().starts_with(b".") {
                continue;
            }
            match self.seen.get(&name) {
                Some((_, Some(rec))) => {
                    let _ = rt.state(rec);
                }
                _ => {
                    if let Ok(rec) = Record::load(&e.path()) {
                        let _ = rt.state(&rec);
                    }
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
}
