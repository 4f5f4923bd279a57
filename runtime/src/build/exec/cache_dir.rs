//! A build cache kept in a directory (`--cache-to type=local,dest=DIR`, `--cache-from
//! type=local,src=DIR`, Compose `build.cache_to`/`cache_from`): what lets another berth
//! instance (a fresh `--root`, a CI runner) serve a build's steps from the cache.
//!
//! The directory holds `berth-cache.json` (the cache entries of the exported build's steps:
//! key, parent key, instruction, and the id of the image each step made) and `images.tar`
//! (those images, one archive that is both an OCI layout and a docker-save archive, each
//! layer once). An import loads the archive into the store (all or nothing) and adds the
//! entries whose images it then holds to the instance's cache index, so the build's own
//! lookup hits them; an image id is its config's digest, the same in every store. The keys
//! are berth's, so the format is berth's own (not BuildKit's cache layout). Both files are
//! written under temporary names and renamed: an interrupted export leaves the last one.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{BuildError, Builder};
use crate::build::cache::{BuildCache, CacheEntry};
use crate::build::plan::CacheKey;

/// The index file of a cache directory.
const INDEX: &str = "berth-cache.json";
/// The images of a cache directory.
const IMAGES: &str = "images.tar";

/// Where `--cache-from` finds cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSource {
    /// A local image whose history may serve (Docker's classic `--cache-from IMAGE`).
    Image(String),
    /// A directory a `--cache-to type=local,dest=DIR` wrote.
    Dir(PathBuf),
}

/// The fields of a `type=...,key=value` cache spec.
fn fields(spec: &str) -> Result<Vec<(&str, &str)>, String> {
    spec.split(',')
        .filter(|f| !f.is_empty())
        .map(|f| {
            f.split_once('=')
                .ok_or_else(|| format!("{spec:?}: {f:?} is not key=value"))
        })
        .collect()
}

/// Reads a `--cache-from` value: `IMAGE`, `type=registry,ref=IMAGE` (the local image of that
/// name: berth does not fetch cache from registries) or `type=local,src=DIR`.
pub fn parse_cache_from(spec: &str) -> Result<CacheSource, String> {
    if !spec.contains('=') {
        return Ok(CacheSource::Image(spec.to_string()));
    }
    let f = fields(spec)?;
    let get = |k: &str| f.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
    match (get("type"), get("ref"), get("src")) {
        (Some("registry"), Some(r), _) if !r.is_empty() => Ok(CacheSource::Image(r.to_string())),
        (Some("local"), _, Some(d)) if !d.is_empty() => Ok(CacheSource::Dir(PathBuf::from(d))),
        (Some("local"), _, _) => Err(format!("{spec:?}: type=local needs src=DIR")),
        _ => Err(format!(
            "{spec:?}: berth takes cache from local images (IMAGE, type=registry,ref=IMAGE) and directories (type=local,src=DIR)"
        )),
    }
}

/// Reads a `--cache-to` value: `type=local,dest=DIR` (`mode=min|max` accepted: every step of
/// the build is exported either way). Other exporters are refused by name.
pub fn parse_cache_to(spec: &str) -> Result<PathBuf, String> {
    let f = fields(spec)?;
    let mut dest = None;
    for (k, v) in &f {
        match *k {
            "type" if *v == "local" => {}
            "type" => {
                return Err(format!(
                    "{spec:?}: type={v} is not supported; berth exports cache to a directory (type=local,dest=DIR)"
                ));
            }
            "dest" => dest = Some(PathBuf::from(v)),
            "mode" if *v == "min" || *v == "max" => {}
            other => return Err(format!("{spec:?}: unexpected key {other:?}")),
        }
    }
    if !f.iter().any(|(k, _)| *k == "type") {
        return Err(format!("{spec:?}: give type=local,dest=DIR"));
    }
    dest.filter(|d| !d.as_os_str().is_empty())
        .ok_or_else(|| format!("{spec:?}: type=local needs dest=DIR"))
}

/// The exported entries.
#[derive(Serialize, Deserialize)]
struct Index {
    entries: Vec<CacheEntry>,
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> BuildError {
    let path = path.to_path_buf();
    move |source| BuildError::Io {
        step: "build cache directory".into(),
        op,
        path,
        source,
    }
}

fn cache_err(dir: &Path, message: String) -> BuildError {
    BuildError::CacheDir {
        dir: dir.to_path_buf(),
        message,
    }
}

impl Builder<'_> {
    /// Loads each directory's images and adds its entries to the cache index. A directory
    /// without a cache is an error naming it (a typo would otherwise build from scratch).
    pub(super) fn import_cache_dirs(&self, dirs: &[PathBuf]) -> Result<usize, BuildError> {
        let mut added = 0;
        for dir in dirs {
            let index_path = dir.join(INDEX);
            let text = fs::read(&index_path).map_err(|e| {
                cache_err(
                    dir,
                    format!("reading {INDEX}: {e} (a directory written by --cache-to type=local,dest=DIR)"),
                )
            })?;
            let index: Index = serde_json::from_slice(&text)
                .map_err(|e| cache_err(dir, format!("{INDEX}: {e}")))?;
            let images = dir.join(IMAGES);
            let file = fs::File::open(&images).map_err(io_err("opening", &images))?;
            crate::image::archive::load(self.store, std::io::BufReader::new(file), None)
                .map_err(|e| cache_err(dir, format!("loading {IMAGES}: {e}")))?;
            let usable: Vec<CacheEntry> = index
                .entries
                .into_iter()
                .filter(|e| {
                    e.layer
                        .as_deref()
                        .is_some_and(|id| self.store.resolve(id).is_ok())
                })
                .collect();
            added += usable.len();
            self.update_cache(|c| {
                for e in usable {
                    if c.get(&e.key).is_none() {
                        c.insert(e);
                    }
                }
            })?;
        }
        Ok(added)
    }

    /// Writes the entries of `keys` (this build's steps) and their images to `dest`.
    pub(super) fn export_cache_dir(
        &self,
        dest: &Path,
        cache: &BuildCache,
        keys: &[CacheKey],
    ) -> Result<(), BuildError> {
        let entries: Vec<CacheEntry> = keys.iter().filter_map(|k| cache.get(k).cloned()).collect();
        let mut ids: Vec<String> = Vec::new();
        for e in &entries {
            if let Some(id) = &e.layer
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        fs::create_dir_all(dest).map_err(io_err("creating", dest))?;
        let tmp_images = dest.join(format!(".{IMAGES}.tmp"));
        let file = fs::File::create(&tmp_images).map_err(io_err("creating", &tmp_images))?;
        let mut w = std::io::BufWriter::new(file);
        crate::image::archive::save(self.store, &ids, &mut w)
            .map_err(|e| cache_err(dest, format!("writing {IMAGES}: {e}")))?;
        let file = w
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_err("writing", &tmp_images))?;
        file.sync_all().map_err(io_err("syncing", &tmp_images))?;
        let json = serde_json::to_vec_pretty(&Index { entries }).map_err(BuildError::Config)?;
        let tmp_index = dest.join(format!(".{INDEX}.tmp"));
        fs::write(&tmp_index, json).map_err(io_err("writing", &tmp_index))?;
        let images = dest.join(IMAGES);
        fs::rename(&tmp_images, &images).map_err(io_err("renaming", &images))?;
        let index = dest.join(INDEX);
        fs::rename(&tmp_index, &index).map_err(io_err("renaming", &index))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_read_as_buildx() {
        assert_eq!(
            parse_cache_from("app:1"),
            Ok(CacheSource::Image("app:1".into()))
        );
        assert_eq!(
            parse_cache_from("type=registry,ref=app:2"),
            Ok(CacheSource::Image("app:2".into()))
        );
        assert_eq!(
            parse_cache_from("type=local,src=/c"),
            Ok(CacheSource::Dir("/c".into()))
        );
        assert!(parse_cache_from("type=gha").is_err());
        assert!(parse_cache_from("type=local").is_err());
        assert_eq!(
            parse_cache_to("type=local,dest=/c,mode=max"),
            Ok(PathBuf::from("/c"))
        );
        assert!(parse_cache_to("type=inline").is_err_and(|e| e.contains("type=inline")));
        assert!(parse_cache_to("type=local").is_err());
        assert!(parse_cache_to("dest=/c").is_err());
        assert!(parse_cache_to("type=local,dest=/c,compression=zstd").is_err());
    }
}
