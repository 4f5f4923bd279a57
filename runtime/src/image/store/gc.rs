//! Removing images: `image rm`, `prune`, the cleanup after a failed load, and the collection of
//! unreferenced layers and blobs under the exclusive gc lock.

use super::*;

impl ImageStore {
    /// `image rm`: removes a tag, or the image when it is its last name (or it is named by id).
    /// An image used by a container is refused without `force`; with `force` it is untagged but
    /// kept until the container is gone (its layers are under the container's rootfs).
    pub fn remove(&self, reference: &str, force: bool) -> Result<RemoveReport> {
        let id = self.resolve_id(reference)?;
        let tags = self.read_tags()?;
        let my_tags: Vec<String> = tags
            .tags
            .iter()
            .filter(|(_, v)| **v == id)
            .map(|(k, _)| k.clone())
            .collect();
        let mut report = RemoveReport::default();
        let by_tag = reference
            .parse::<Reference>()
            .ok()
            .and_then(|r| r.tagged())
            .filter(|k| my_tags.contains(k));
        let in_use = self.containers_using()?.remove(&id).unwrap_or_default();
        if let Some(key) = by_tag.clone()
            && my_tags.len() > 1
        {
            self.update_tags(|t| t.tags.remove(&key))?;
            report.untagged.push(key);
            return Ok(report);
        }
        if by_tag.is_none() && my_tags.len() > 1 && !force {
            return Err(StoreError::MultipleTags {
                image: id,
                tags: my_tags.join(", "),
            });
        }
        if !in_use.is_empty() && !force {
            return Err(StoreError::InUse {
                image: id,
                containers: in_use.join(", "),
            });
        }
        self.update_tags(|t| t.tags.retain(|_, v| *v != id))?;
        report.untagged = my_tags;
        if !in_use.is_empty() {
            report.kept_in_use.push(id);
            return Ok(report);
        }
        let _g = self.gc_lock()?;
        let p = self.image_record_path(&id);
        fs::remove_file(&p).map_err(io_err("remove", &p))?;
        report.deleted.push(id);
        self.collect(&mut report)?;
        Ok(report)
    }

    /// Undoes a failed load or import: removes the image records in `added` (images this
    /// writer added, none of which existed before) that no tag names and no container uses,
    /// then every layer and blob no image references, as `prune` does. Takes the exclusive gc
    /// lock, so the caller must have released its writer lock.
    pub fn discard_failed(&self, added: &[Digest]) -> Result<()> {
        let _g = self.gc_lock()?;
        let tags = self.read_tags()?;
        let used = self.containers_using()?;
        for id in added {
            if tags.tags.values().any(|t| t == id) || used.contains_key(id) {
                continue;
            }
            let p = self.image_record_path(id);
            fs::remove_file(&p)
                .or_else(ignore_missing)
                .map_err(io_err("remove", &p))?;
        }
        self.collect(&mut RemoveReport::default())
    }

    /// `image prune`: removes dangling images (all unused images with `all`) that no container
    /// uses, then every layer and blob no remaining image references. Without `all`, an
    /// untagged image is dangling only when no kept image descends from it (Docker's rule):
    /// build intermediates of tagged images stay, as they back the build cache, while those of
    /// images that were retagged or removed go.
    pub fn prune(&self, all: bool) -> Result<RemoveReport> {
        let _g = self.gc_lock()?;
        let used = self.containers_using()?;
        let tags = self.read_tags()?;
        let tagged: BTreeSet<&Digest> = tags.tags.values().collect();
        let mut report = RemoveReport::default();
        let mut drop_tags = Vec::new();
        let records = self.records()?;
        let mut ancestors: BTreeSet<Digest> = BTreeSet::new();
        if !all {
            let parent_of: BTreeMap<&Digest, &Digest> = records
                .iter()
                .filter_map(|r| r.parent.as_ref().map(|p| (&r.id, p)))
                .collect();
            for r in &records {
                if !(tagged.contains(&r.id) || used.contains_key(&r.id)) {
                    continue;
                }
                let mut cur = parent_of.get(&r.id).copied();
                while let Some(p) = cur {
                    if !ancestors.insert(p.clone()) {
                        break;
                    }
                    cur = parent_of.get(p).copied();
                }
            }
        }
        for rec in records {
            if used.contains_key(&rec.id)
                || (!all && (tagged.contains(&rec.id) || ancestors.contains(&rec.id)))
            {
                continue;
            }
            let p = self.image_record_path(&rec.id);
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
            if tagged.contains(&rec.id) {
                drop_tags.push(rec.id.clone());
            }
            report.deleted.push(rec.id);
        }
        if !drop_tags.is_empty() {
            let removed = self.update_tags(|t| {
                let gone: Vec<String> = t
                    .tags
                    .iter()
                    .filter(|(_, v)| drop_tags.contains(v))
                    .map(|(k, _)| k.clone())
                    .collect();
                t.tags.retain(|_, v| !drop_tags.contains(v));
                gone
            })?;
            report.untagged = removed;
        }
        self.collect(&mut report)?;
        Ok(report)
    }

    /// Deletes layers and blobs no image record references, and leftovers of interrupted
    /// writes. The caller holds the exclusive gc lock (no writer is running).
    pub(super) fn collect(&self, report: &mut RemoveReport) -> Result<()> {
        let mut keep_chains = BTreeSet::new();
        let mut keep_blobs = BTreeSet::new();
        for rec in self.records()? {
            keep_blobs.insert(rec.manifest.clone());
            keep_blobs.insert(rec.id.clone());
            for l in &rec.layers {
                keep_blobs.insert(l.blob.clone());
                keep_chains.insert(l.chain_id.clone());
            }
        }
        let ld = self.dir.join("layers");
        for e in fs::read_dir(&ld).map_err(io_err("list", &ld))?.flatten() {
            let p = e.path();
            let Some(chain) = p
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|h| Digest::from_hex(h).ok())
            else {
                continue;
            };
            if keep_chains.contains(&chain) {
                continue;
            }
            if let Ok(rec) = self.read_json::<LayerRecord>(&p) {
                let dir = self.layer_dir(&rec);
                fs::remove_dir_all(&dir)
                    .or_else(ignore_missing)
                    .map_err(io_err("remove", &dir))?;
                report.reclaimed += rec.size;
            }
            fs::remove_file(&p)
                .or_else(ignore_missing)
                .map_err(io_err("remove", &p))?;
            report.layers_deleted += 1;
        }
        for d in self.blobs.list()? {
            if !keep_blobs.contains(&d) {
                report.reclaimed += fs::metadata(self.blobs.path(&d))
                    .map(|m| m.len())
                    .unwrap_or(0);
                self.blobs.remove(&d)?;
            }
        }
        // Leftovers of interrupted writers and per-blob lock files (no writer runs, so none
        // is held, while we hold the gc lock).
        for dir in [
            self.dir.join("tmp"),
            self.dir.join("l"),
            self.dir.join("locks"),
        ] {
            let all = dir.ends_with("locks");
            for e in fs::read_dir(&dir).map_err(io_err("list", &dir))?.flatten() {
                if all || e.file_name().to_string_lossy().starts_with(".tmp-") {
                    let p = e.path();
                    let r = if p.is_dir() {
                        fs::remove_dir_all(&p)
                    } else {
                        fs::remove_file(&p)
                    };
                    r.or_else(ignore_missing).map_err(io_err("remove", &p))?;
                }
            }
        }
        Ok(())
    }
}
