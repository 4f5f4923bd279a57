//! Container records for the daemon's pollers (restart policies, healthcheck arming), which
//! look at every container several times a second: the same list as `Runtime::list`, but a
//! container's `berth.json` is parsed again only when the file changed (inode, size or mtime),
//! so a poll of a large instance reads the containers' small state files, not every record.

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

/// The records last parsed, by container directory name.
pub struct RecordCache {
    dir: PathBuf,
    seen: HashMap<OsString, (Stamp, Record)>,
}

impl RecordCache {
    /// For the instance at `root`.
    pub fn new(root: &Path) -> Self {
        Self {
            dir: root.join("containers"),
            seen: HashMap::new(),
        }
    }

    /// A cache for the instance at `root`, to share between pollers.
    pub fn shared(root: &Path) -> SharedRecordCache {
        std::sync::Arc::new(std::sync::Mutex::new(Self::new(root)))
    }

    /// Every container with its state (settled as `Runtime::state` does), oldest first.
    pub fn list(&mut self, rt: &Runtime) -> Vec<(Record, State)> {
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
                    Ok(rec) => rec,
                    Err(_) => continue,
                },
            };
            if let Ok(st) = rt.state(&rec) {
                out.push((rec.clone(), st));
            }
            next.insert(name, (stamp, rec));
        }
        self.seen = next;
        out.sort_by_key(|(_, s)| s.created_at);
        out
    }
}
