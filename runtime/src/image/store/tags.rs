//! The tag index (`tags.json`): naming images, and resolving a reference (tag, name@digest,
//! id or id prefix) to an image.

use super::*;

/// `tags.json`: tag key (`name:tag`) -> image id, and when each tag was last pointed at its
/// image (Docker's `LastTagTime`; Compose's `pull_policy: daily` and the like read it).
#[derive(Debug, Default, Serialize, Deserialize)]
pub(super) struct TagIndex {
    pub(super) tags: BTreeMap<String, Digest>,
    /// Tag key -> seconds since the epoch; a tag written before these times were kept has none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub(super) tagged: BTreeMap<String, u64>,
}

impl ImageStore {
    /// The tag index as on disk (empty when there is none).
    pub(super) fn read_tags(&self) -> Result<TagIndex> {
        let p = self.dir.join("tags.json");
        if !p.exists() {
            return Ok(TagIndex::default());
        }
        self.read_json(&p)
    }

    /// Read-modify-write of the tag index under `tags.lock`; returns what `f` returns.
    pub(super) fn update_tags<T>(&self, f: impl FnOnce(&mut TagIndex) -> T) -> Result<T> {
        let lp = self.dir.join("tags.lock");
        let _l = FileLock::exclusive(&lp).map_err(io_err("lock", &lp))?;
        let mut idx = self.read_tags()?;
        let out = f(&mut idx);
        let TagIndex { tags, tagged } = &mut idx;
        tagged.retain(|k, _| tags.contains_key(k));
        self.write_json(&self.dir.join("tags.json"), &idx)?;
        Ok(out)
    }

    /// Points `reference` (a name with a tag) at image `id`.
    pub fn tag(&self, id: &Digest, reference: &str) -> Result<String> {
        let key = tag_key(reference)?;
        if !self.image_record_path(id).exists() {
            return Err(StoreError::NotFound {
                reference: id.to_string(),
            });
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.update_tags(|t| {
            t.tagged.insert(key.clone(), now);
            t.tags.insert(key.clone(), id.clone())
        })?;
        Ok(key)
    }

    /// When `reference` (a name with a tag) was last tagged, by a pull, build, load or `tag`;
    /// `None` when the tag is missing or was written before these times were recorded.
    pub fn last_tagged(&self, reference: &str) -> Result<Option<std::time::SystemTime>> {
        let key = tag_key(reference)?;
        Ok(self
            .read_tags()?
            .tagged
            .get(&key)
            .map(|s| std::time::UNIX_EPOCH + std::time::Duration::from_secs(*s)))
    }

    /// Finds an image by tag (`nginx`, `nginx:1.25`), by `name@sha256:…` manifest digest, by
    /// full id (`sha256:…`) or by a unique id prefix (at least 4 hex digits).
    pub fn resolve(&self, reference: &str) -> Result<Image> {
        let id = self.resolve_id(reference)?;
        let rec: ImageRecord = self.read_json(&self.image_record_path(&id))?;
        self.load_image(rec)
    }

    /// Like [`resolve`](Self::resolve), returning only the id.
    pub fn resolve_id(&self, reference: &str) -> Result<Digest> {
        let not_found = || StoreError::NotFound {
            reference: reference.to_owned(),
        };
        if let Ok(d) = reference.parse::<Digest>() {
            return if self.image_record_path(&d).exists() {
                Ok(d)
            } else {
                Err(not_found())
            };
        }
        if let Ok(r) = reference.parse::<Reference>() {
            if let Some(d) = &r.digest {
                let want = format!("{}@{d}", r.name());
                for rec in self.records()? {
                    if &rec.manifest == d || rec.repo_digests.contains(&want) {
                        return Ok(rec.id);
                    }
                }
                return Err(not_found());
            }
            if let Some(key) = r.tagged()
                && let Some(id) = self.read_tags()?.tags.get(&key)
            {
                return Ok(id.clone());
            }
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let matches: Vec<Digest> = self
                .records()?
                .into_iter()
                .map(|r| r.id)
                .filter(|id| id.hex().starts_with(hex))
                .collect();
            return match matches.len() {
                0 => Err(not_found()),
                1 => Ok(matches[0].clone()),
                n => Err(StoreError::Ambiguous {
                    prefix: hex.to_owned(),
                    count: n,
                }),
            };
        }
        Err(not_found())
    }
}

/// The tag-index key of `reference` (a name with a tag, not a digest), so a caller can check
/// every name before it tags anything.
pub fn tag_key(reference: &str) -> Result<String> {
    let r: Reference = reference.parse()?;
    Ok(r.tagged().ok_or_else(|| ReferenceError::Invalid {
        value: reference.to_owned(),
        reason: "a tag is needed, not a digest",
    })?)
}

/// Splits a tag-index key into the familiar repository name and the tag.
pub fn split_tag(key: &str) -> (String, String) {
    match key.parse::<Reference>() {
        Ok(r) => (r.familiar_name(), r.tag.unwrap_or_default()),
        Err(_) => (key.to_owned(), String::new()),
    }
}
