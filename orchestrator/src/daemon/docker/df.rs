//! `GET /system/df`: the disk the instance's images, containers and volumes take, measured in
//! the store (image layers as unpacked, each container's writable layer, each volume's data).

use crate::engine::status_text::image_of;
use std::collections::{BTreeMap, HashSet};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_runtime::image::ImageStore;
use serde::Serialize;

use super::errors::ApiError;
use super::{Docker, query, status};

/// The answer of `GET /system/df`; a part not asked for with `type` is null, as in Docker.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DiskUsage {
    layers_size: u64,
    images: Option<Vec<ImageUsage>>,
    containers: Option<Vec<ContainerUsage>>,
    volumes: Option<Vec<VolumeUsage>>,
    build_cache: Option<Vec<serde_json::Value>>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageUsage {
    id: String,
    parent_id: String,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
    created: i64,
    size: u64,
    shared_size: u64,
    virtual_size: u64,
    labels: BTreeMap<String, String>,
    containers: usize,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ContainerUsage {
    id: String,
    names: Vec<String>,
    image: String,
    #[serde(rename = "ImageID")]
    image_id: String,
    command: String,
    created: i64,
    ports: Vec<serde_json::Value>,
    size_rw: u64,
    size_root_fs: u64,
    labels: BTreeMap<String, String>,
    state: &'static str,
    status: String,
    mounts: Vec<serde_json::Value>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct VolumeUsage {
    name: String,
    driver: &'static str,
    mountpoint: String,
    created_at: String,
    labels: BTreeMap<String, String>,
    scope: &'static str,
    options: BTreeMap<String, String>,
    usage_data: UsageData,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct UsageData {
    size: u64,
    ref_count: usize,
}

/// The parts `type=` asks for (all without it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parts {
    images: bool,
    containers: bool,
    volumes: bool,
    build_cache: bool,
}

fn parts(query: &str) -> Result<Parts, ApiError> {
    let types: Vec<String> = query::pairs(query)
        .into_iter()
        .filter(|(k, _)| k == "type")
        .map(|(_, v)| v)
        .collect();
    if types.is_empty() {
        return Ok(Parts {
            images: true,
            containers: true,
            volumes: true,
            build_cache: true,
        });
    }
    let mut p = Parts {
        images: false,
        containers: false,
        volumes: false,
        build_cache: false,
    };
    for t in types {
        match t.as_str() {
            "image" => p.images = true,
            "container" => p.containers = true,
            "volume" => p.volumes = true,
            "build-cache" => p.build_cache = true,
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown object type: {other}"
                )));
            }
        }
    }
    Ok(p)
}

/// `GET /system/df[?type=image&type=container...]`.
pub(super) async fn df(docker: &Arc<Docker>, query: &str) -> Result<DiskUsage, ApiError> {
    let parts = parts(query)?;
    let d = docker.clone();
    tokio::task::spawn_blocking(move || measure(&d, parts))
        .await
        .map_err(|e| ApiError::internal(format!("measuring disk usage: {e}")))?
}

fn measure(docker: &Docker, parts: Parts) -> Result<DiskUsage, ApiError> {
    let root = &docker.shared.opts.root;
    let store = ImageStore::open(root)
        .map_err(|e| ApiError::internal(format!("opening the image store: {e}")))?;
    let (layers_size, images, image_sizes) = images(&store)?;
    let containers = parts.containers.then(|| containers(docker, &image_sizes));
    let volumes = parts.volumes.then(|| volumes(docker));
    Ok(DiskUsage {
        layers_size,
        images: parts.images.then_some(images),
        containers,
        volumes,
        build_cache: parts
            .build_cache
            .then(|| build_cache(&store, root))
            .transpose()?,
    })
}

/// The build cache as Docker's records: what `docker builder prune` frees is what is neither
/// in use (berth keeps no cache in use between builds) nor shared with a tagged image.
fn build_cache(store: &ImageStore, root: &Path) -> Result<Vec<serde_json::Value>, ApiError> {
    let records = berth_runtime::build::exec::cache_records(store, root)
        .map_err(|e| ApiError::internal(format!("reading the build cache: {e}")))?;
    let at = |secs: u64| {
        humantime::format_rfc3339_seconds(UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .to_string()
    };
    Ok(records
        .into_iter()
        .map(|r| {
            serde_json::json!({
                "ID": r.id,
                "Parent": r.parent.clone().unwrap_or_default(),
                "Parents": r.parent.into_iter().collect::<Vec<_>>(),
                "Type": r.kind,
                "Description": r.description,
                "InUse": false,
                "Shared": r.shared,
                "Size": r.size,
                "CreatedAt": at(r.created),
                "LastUsedAt": at(r.last_used),
            })
        })
        .collect())
}

/// Each image with its unpacked size and the part of it shared with other images; the size
/// of all distinct layers; each image id's size (for the containers' root size).
#[allow(clippy::type_complexity)]
fn images(store: &ImageStore) -> Result<(u64, Vec<ImageUsage>, BTreeMap<String, u64>), ApiError> {
    let rows = store
        .list()
        .map_err(|e| ApiError::internal(format!("listing images: {e}")))?;
    let users = store.containers_using().unwrap_or_default();
    // Tags by image id, in the listing's order.
    let mut tags: BTreeMap<String, (Option<String>, Vec<String>)> = BTreeMap::new();
    for r in &rows {
        let e = tags.entry(r.id.to_string()).or_default();
        e.0 = r.created.clone();
        if r.repository != "<none>" {
            e.1.push(format!("{}:{}", r.repository, r.tag));
        }
    }
    // Layers of each image (directory, size), and how many images use each layer.
    let mut layers: BTreeMap<String, Vec<(std::path::PathBuf, u64)>> = BTreeMap::new();
    let mut labels: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut uses: BTreeMap<std::path::PathBuf, (usize, u64)> = BTreeMap::new();
    for id in tags.keys() {
        let Ok(img) = store.resolve(id) else { continue };
        let l: Vec<_> = img
            .layer_dirs()
            .into_iter()
            .zip(img.layer_sizes.iter().copied())
            .collect();
        for (dir, size) in &l {
            let u = uses.entry(dir.clone()).or_insert((0, *size));
            u.0 += 1;
        }
        layers.insert(id.clone(), l);
        let l = img.runtime_config().and_then(|c| c.labels().clone());
        labels.insert(id.clone(), l.unwrap_or_default().into_iter().collect());
    }
    let layers_size = uses.values().map(|(_, s)| s).sum();
    let mut out = Vec::new();
    let mut sizes = BTreeMap::new();
    for (id, (created, repo_tags)) in tags {
        let l = layers.get(&id).cloned().unwrap_or_default();
        let size: u64 = l.iter().map(|(_, s)| s).sum();
        let shared: u64 = l
            .iter()
            .filter(|(d, _)| uses.get(d).is_some_and(|u| u.0 > 1))
            .map(|(_, s)| s)
            .sum();
        let labels = labels.remove(&id).unwrap_or_default();
        let containers = users
            .iter()
            .find(|(k, _)| k.to_string() == id)
            .map_or(0, |(_, v)| v.len());
        sizes.insert(id.clone(), size);
        out.push(ImageUsage {
            id,
            parent_id: String::new(),
            repo_tags,
            repo_digests: Vec::new(),
            created: unix(created.as_deref()),
            size,
            shared_size: shared,
            virtual_size: size,
            labels,
            containers,
        });
    }
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    Ok((layers_size, out, sizes))
}

/// Seconds since the epoch of an RFC 3339 time (0 when absent or unreadable).
pub(super) fn unix(created: Option<&str>) -> i64 {
    created
        .and_then(|c| {
            humantime::parse_rfc3339_weak(c.trim_end_matches('Z').split('.').next()?).ok()
        })
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

fn containers(docker: &Docker, image_sizes: &BTreeMap<String, u64>) -> Vec<ContainerUsage> {
    let now = SystemTime::now();
    let mut out: Vec<ContainerUsage> = docker
        .rt
        .list()
        .into_iter()
        .map(|(rec, st)| {
            let state = status::state(&docker.rt, &rec, &st);
            let labels = rec.config.labels.clone();
            let (image, image_id) = image_of(&rec.dir, &labels);
            let size_rw = du(&rec.dir.join("upper"));
            let base = image_sizes.get(&image_id).copied().unwrap_or(0);
            ContainerUsage {
                id: rec.id.clone(),
                names: vec![format!("/{}", rec.config.name)],
                image,
                image_id,
                command: rec.config.args.join(" "),
                created: st
                    .created_at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs() as i64),
                ports: Vec::new(),
                size_rw,
                size_root_fs: size_rw + base,
                labels,
                state,
                status: status::status_line(state, &st, now),
                mounts: Vec::new(),
            }
        })
        .collect();
    out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
    out
}

fn volumes(docker: &Docker) -> Vec<VolumeUsage> {
    docker
        .rt
        .volume_list()
        .into_iter()
        .map(|v| VolumeUsage {
            name: v.name,
            driver: "local",
            mountpoint: v.mountpoint.display().to_string(),
            created_at: v.meta.created,
            labels: v.meta.labels,
            scope: "local",
            options: BTreeMap::new(),
            usage_data: UsageData {
                size: du(&v.mountpoint),
                ref_count: v.used_by.len(),
            },
        })
        .collect()
}

/// Bytes of the files under `path` (symlinks not followed, hard links counted once).
pub(super) fn du(path: &Path) -> u64 {
    fn walk(path: &Path, seen: &mut HashSet<(u64, u64)>) -> u64 {
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return 0;
        };
        if meta.is_dir() {
            return std::fs::read_dir(path)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| walk(&e.path(), seen))
                .sum();
        }
        if meta.nlink() > 1 && !seen.insert((meta.dev(), meta.ino())) {
            return 0;
        }
        meta.len()
    }
    walk(path, &mut HashSet::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn type_selects_the_parts_and_refuses_unknown_ones() {
        let all = parts("").unwrap_or(Parts {
            images: false,
            containers: false,
            volumes: false,
            build_cache: false,
        });
        assert!(all.images && all.containers && all.volumes && all.build_cache);
        let p = parts("type=image&type=volume").ok();
        assert_eq!(
            p,
            Some(Parts {
                images: true,
                containers: false,
                volumes: true,
                build_cache: false
            })
        );
        let e = parts("type=bogus").unwrap_err();
        assert_eq!(e.message, "unknown object type: bogus");
    }

    #[test]
    fn du_counts_files_once_and_follows_no_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("a"), [0u8; 100]).expect("a");
        std::fs::create_dir(dir.path().join("d")).expect("d");
        std::fs::write(dir.path().join("d/b"), [0u8; 50]).expect("b");
        std::fs::hard_link(dir.path().join("a"), dir.path().join("d/a2")).expect("link");
        std::os::unix::fs::symlink("/usr", dir.path().join("s")).expect("symlink");
        let expect = 150 + "/usr".len() as u64;
        assert_eq!(du(dir.path()), expect);
    }

    #[test]
    fn image_times_become_unix_seconds() {
        assert_eq!(unix(Some("1970-01-01T00:01:40Z")), 100);
        assert_eq!(unix(Some("1970-01-01T00:01:40.123456789Z")), 100);
        assert_eq!(unix(None), 0);
        assert_eq!(unix(Some("garbage")), 0);
    }
}
