//! `builder prune` (berth's own and Docker's `POST /build/prune`): the build cache forgotten,
//! the intermediate images only it held removed, and the scratch space of builds (`RUN
//! --mount=type=cache` directories, unpacked contexts, temporary files) freed, with the
//! bytes each gave back.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::{BUILD_LABEL, BuildError, Builder};

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
