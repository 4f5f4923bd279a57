//! `builder prune` (berth's own and Docker's `POST /build/prune`): the build cache forgotten,
//! the intermediate images only it held removed, and the scratch space of builds (`RUN
//! --mount=type=cache` directories, unpacked contexts, temporary files) freed, with the
//! bytes each gave back; and the records of what a prune would free (Docker's `system df`).

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use std::time::UNIX_EPOCH;

use super::super::cache::{BuildCache, CacheError};
use super::{BUILD_LABEL, BuildError, Builder, builder_dir};
use crate::image::ImageStore;

/// One record of the build cache, as Docker's `system df` lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRecord {
    /// A step's cache key, or a cache mount's directory name.
    pub id: String,
    /// The previous step's key.
    pub parent: Option<String>,
    /// Docker's record types: `regular` for a step, `exec.cachemount` for a cache mount.
    pub kind: &'static str,
    /// The step's instruction, or the mount's id.
    pub description: String,
    /// Its layer belongs to a tagged image (a prune keeps it).
    pub shared: bool,
    pub size: u64,
    /// Seconds since the epoch.
    pub created: u64,
    pub last_used: u64,
}

/// The build cache of the instance at `root`: each step's entry, then each cache mount.
pub fn cache_records(store: &ImageStore, root: &Path) -> Result<Vec<CacheRecord>, CacheError> {
    let dir = builder_dir(root);
    let cache = BuildCache::open(&dir.join("cache.json"))?;
    let mut out: Vec<CacheRecord> = cache
        .entries()
        .map(|e| {
            let tagged = e.layer.as_deref().is_some_and(|id| {
                store
                    .resolve(id)
                    .map_or(true, |img| !img.repo_tags.is_empty())
            });
            CacheRecord {
                id: e.key.to_string(),
                parent: e.parent.as_ref().map(ToString::to_string),
                kind: "regular",
                description: e.created_by.clone(),
                shared: tagged,
                size: e.size,
                created: e.created,
                last_used: e.last_used,
            }
        })
        .collect();
    let mounts = dir.join("cache-mounts");
    for entry in fs::read_dir(&mounts).into_iter().flatten().flatten() {
        let mtime = entry
            .metadata()
            .ok()
            .and_then(|m| m.modified().ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let name = entry.file_name().to_string_lossy().into_owned();
        out.push(CacheRecord {
            description: format!("cache mount {name}"),
            id: name,
            parent: None,
            kind: "exec.cachemount",
            shared: false,
            size: du(&entry.path(), &mut HashSet::new()),
            created: mtime,
            last_used: mtime,
        });
    }
    Ok(out)
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// The keys of the cache entries forgotten.
    pub entries: Vec<String>,
    /// Bytes given back: intermediate images' layers and the builds' scratch directories.
    pub reclaimed: u64,
}

/// Bytes of the files under `path` (symlinks not followed, hard links once).
fn du(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if meta.is_dir() {
        return fs::read_dir(path)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| du(&e.path(), seen))
            .sum();
    }
    if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
        return 0;
    }
    meta.len()
}

impl Builder<'_> {
    /// `builder prune`: forgets every cache entry and removes the intermediate images only the
    /// cache held (untagged, unused by containers), the RUN containers of builds that were
    /// killed, and the scratch files; tagged images and their layers stay.
    /// Returns the number of entries dropped and the bytes reclaimed.
    pub fn prune(&self) -> Result<(usize, u64), BuildError> {
        let r = self.prune_report()?;
        Ok((r.entries.len(), r.reclaimed))
    }

    /// [`Builder::prune`], naming the entries forgotten.
    pub fn prune_report(&self) -> Result<PruneReport, BuildError> {
        let mut removed = Vec::new();
        self.update_cache(|c| {
            removed = c.prune(|_| true);
            c.record_build(Vec::new());
        })?;
        let mut reclaimed = 0;
        for e in &removed {
            let Some(id) = e.layer.as_deref() else {
                continue;
            };
            let Ok(img) = self.store.resolve(id) else {
                continue;
            };
            if !img.repo_tags.is_empty() {
                continue;
            }
            match self.store.remove(id, false) {
                Ok(rep) => reclaimed += rep.reclaimed,
                Err(e) => tracing::debug!(image = id, error = %e, "kept a cached image"),
            }
        }
        for (rec, _) in self.runtime.list() {
            if rec.config.labels.contains_key(BUILD_LABEL)
                && let Err(e) = self.runtime.remove(&rec, true)
            {
                tracing::warn!(container = %rec.id, error = %e, "removing a left-over build container");
            }
        }
        let mut seen = HashSet::new();
        for scratch in ["tmp", "contexts", "cache-mounts"] {
            let dir = self.dir.join(scratch);
            let size = du(&dir, &mut seen);
            match fs::remove_dir_all(&dir) {
                Ok(()) => reclaimed += size,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => tracing::warn!(dir = %dir.display(), error = %e, "pruning build scratch"),
            }
        }
        Ok(PruneReport {
            entries: removed.iter().map(|e| e.key.to_string()).collect(),
            reclaimed,
        })
    }
}
