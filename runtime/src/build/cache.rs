//! The build cache index: which step results exist, keyed by [`CacheKey`], persisted in one
//! JSON file so the cache survives daemon restarts.
//!
//! It stores no data itself: a layer-making entry names the layer the image store holds. Each
//! entry records its parent's key, so the executor can rebuild a cached step's rootfs (the layers
//! of its lineage), `berth image tree` can show the lineage, and pruning an entry also drops the
//! entries built on it (a child without its parent's layers cannot be used). The last build's
//! hits and misses are kept for `berth image tree`.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use super::plan::CacheKey;

/// Reading or writing the cache index failed.
#[derive(Debug, Error)]
pub enum CacheError {
    /// The index file could not be read or written.
    #[error("build cache index {path}")]
    Io {
        /// The index file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The index file is not valid JSON of the expected shape (the caller may move it aside).
    #[error("build cache index {path} is corrupt")]
    Corrupt {
        /// The index file.
        path: PathBuf,
        /// The parse error.
        #[source]
        source: serde_json::Error,
    },
}

/// One cached step result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// The step's key.
    pub key: CacheKey,
    /// The previous step's key (None for FROM).
    pub parent: Option<CacheKey>,
    /// The instruction, for history and `image tree`.
    pub created_by: String,
    /// The layer the step produced, as the image store names it; None for config-only steps.
    pub layer: Option<String>,
    /// The layer's size in bytes (0 without a layer).
    pub size: u64,
    /// When the entry was made (seconds since the epoch).
    pub created: u64,
    /// When a build last used it.
    pub last_used: u64,
}

/// Whether a step of the last build came from the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepOutcome {
    /// The step's key.
    pub key: CacheKey,
    /// `[3/7] RUN make`.
    pub display: String,
    /// True when the cache had it.
    pub hit: bool,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct OnDisk {
    entries: BTreeMap<CacheKey, CacheEntry>,
    #[serde(default)]
    last_build: Vec<StepOutcome>,
}

/// The cache index of one berth instance.
#[derive(Debug)]
pub struct BuildCache {
    path: PathBuf,
    data: OnDisk,
}

impl BuildCache {
    /// Open the index at `path`; a missing file is an empty cache.
    pub fn open(path: &Path) -> Result<BuildCache, CacheError> {
        let data = match fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| CacheError::Corrupt {
                path: path.to_path_buf(),
                source,
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => OnDisk::default(),
            Err(source) => {
                return Err(CacheError::Io {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        Ok(BuildCache {
            path: path.to_path_buf(),
            data,
        })
    }

    /// Write the index atomically (temporary file, fsync, rename).
    pub fn save(&self) -> Result<(), CacheError> {
        let io = |source| CacheError::Io {
            path: self.path.clone(),
            source,
        };
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let bytes = serde_json::to_vec(&self.data).map_err(|source| CacheError::Corrupt {
            path: self.path.clone(),
            source,
        })?;
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
        fs::rename(&tmp, &self.path).map_err(io)?;
        Ok(())
    }

    /// The entry for a key.
    pub fn get(&self, key: &CacheKey) -> Option<&CacheEntry> {
        self.data.entries.get(key)
    }

    /// Every entry, by key.
    pub fn entries(&self) -> impl Iterator<Item = &CacheEntry> {
        self.data.entries.values()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.data.entries.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.data.entries.is_empty()
    }

    /// Record a step result (replacing an older one with the same key).
    pub fn insert(&mut self, entry: CacheEntry) {
        self.data.entries.insert(entry.key.clone(), entry);
    }

    /// Mark an entry used now.
    pub fn touch(&mut self, key: &CacheKey, now: u64) {
        if let Some(e) = self.data.entries.get_mut(key) {
            e.last_used = now;
        }
    }

    /// The entry and its ancestors, the step itself first, up to the FROM step (or as far as
    /// the cache knows).
    pub fn lineage(&self, key: &CacheKey) -> Vec<&CacheEntry> {
        let mut out = Vec::new();
        let mut cur = self.data.entries.get(key);
        while let Some(e) = cur {
            out.push(e);
            if out.len() > self.data.entries.len() {
                break;
            }
            cur = e.parent.as_ref().and_then(|p| self.data.entries.get(p));
        }
        out
    }

    /// Remove the entries `drop` selects and every entry built on a removed one; returns what
    /// was removed so the image store can release the layers no image uses.
    pub fn prune(&mut self, drop: impl Fn(&CacheEntry) -> bool) -> Vec<CacheEntry> {
        let mut removed: Vec<CacheEntry> = Vec::new();
        let doomed: Vec<CacheKey> = self
            .data
            .entries
            .values()
            .filter(|e| drop(e))
            .map(|e| e.key.clone())
            .collect();
        for k in doomed {
            if let Some(e) = self.data.entries.remove(&k) {
                removed.push(e);
            }
        }
        loop {
            let orphans: Vec<CacheKey> = self
                .data
                .entries
                .values()
                .filter(|e| {
                    e.parent
                        .as_ref()
                        .is_some_and(|p| !self.data.entries.contains_key(p))
                })
                .map(|e| e.key.clone())
                .collect();
            if orphans.is_empty() {
                break;
            }
            for k in orphans {
                if let Some(e) = self.data.entries.remove(&k) {
                    removed.push(e);
                }
            }
        }
        removed
    }

    /// Remember the last build's hits and misses.
    pub fn record_build(&mut self, outcomes: Vec<StepOutcome>) {
        self.data.last_build = outcomes;
    }

    /// The last build's hits and misses.
    pub fn last_build(&self) -> &[StepOutcome] {
        &self.data.last_build
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(key: &str, parent: Option<&str>, layer: Option<&str>, used: u64) -> CacheEntry {
        CacheEntry {
            key: CacheKey(key.into()),
            parent: parent.map(|p| CacheKey(p.into())),
            created_by: format!("step {key}"),
            layer: layer.map(str::to_string),
            size: 10,
            created: used,
            last_used: used,
        }
    }

    #[test]
    fn survives_reopen_and_prunes_descendants() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cache.json");
        let mut c = BuildCache::open(&path).unwrap();
        assert!(c.is_empty());
        c.insert(entry("a", None, None, 1));
        c.insert(entry("b", Some("a"), Some("sha256:l1"), 5));
        c.insert(entry("c", Some("b"), Some("sha256:l2"), 9));
        c.insert(entry("x", None, None, 9));
        c.record_build(vec![StepOutcome {
            key: CacheKey("c".into()),
            display: "[3/3] RUN c".into(),
            hit: true,
        }]);
        c.save().unwrap();

        let mut c = BuildCache::open(&path).unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c.last_build().len(), 1);
        let lineage: Vec<&str> = c
            .lineage(&CacheKey("c".into()))
            .iter()
            .map(|e| e.key.0.as_str())
            .collect();
        assert_eq!(lineage, vec!["c", "b", "a"]);
        // Dropping `b` (old) drops `c` too, which was built on it.
        let removed = c.prune(|e| e.last_used < 6 && e.parent.is_some());
        let mut names: Vec<&str> = removed.iter().map(|e| e.key.0.as_str()).collect();
        names.sort();
        assert_eq!(names, vec!["b", "c"]);
        assert_eq!(c.len(), 2);
    }

    #[test]
    fn corrupt_index_is_an_error_naming_the_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("cache.json");
        fs::write(&path, "{not json").unwrap();
        let e = BuildCache::open(&path).unwrap_err();
        assert!(e.to_string().contains("cache.json is corrupt"));
    }
}
