//! The image store proper: image records, layers unpacked once by chain id, and the [`Image`]
//! the container executor consumes. Beside it: the OCI wire types (`oci`), the tag index
//! (`tags`), removal and garbage collection (`gc`), commits (`commit`), and what `image ls`,
//! `history` and `tree` show (`listing`).
//!
//! Concurrency: every writer (pull, load, import, commit) holds a shared lock on `gc.lock`
//! while it adds blobs and layers; `rm`/`prune` take it exclusively before collecting, so a
//! collection never deletes what an unfinished writer has just added. The tag index is
//! rewritten under its own exclusive lock (`tags.lock`), read-modify-write, then renamed.
//!
//! "In use": a container uses an image when `<root>/containers/<name>/image-id` holds the
//! image id (`sha256:…`). The container executor writes that file when it creates a container
//! and removes the directory with the container; `image rm` and `image prune` read them.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use oci_spec::image::{Config, ImageConfiguration};
use serde::{Deserialize, Serialize};

use super::blobs::{BlobError, Blobs, unique_suffix, write_atomic};
use super::digest::Digest;
use super::lock::FileLock;
use super::reference::{Reference, ReferenceError};
use super::unpack::{self, Compression, UnpackError, Whiteouts};

/// The file in a container's directory that names the image it uses (see the module doc).
pub const CONTAINER_IMAGE_ID_FILE: &str = "image-id";

/// How long the layer directory names are (hex digits of the chain id): short, because
/// overlayfs takes all lowerdirs in one mount option limited to a page.
const LAYER_DIR_LEN: usize = 16;

mod commit;
mod gc;
mod listing;
mod oci;
mod tags;

pub use listing::{HistoryRow, ImageSummary, ago, human_size};
pub use oci::{Descriptor, Index, Manifest, Platform, host_arch, media, pick_platform};
pub use tags::{split_tag, tag_key};

/// Store failures, with the object at fault.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A blob operation failed (including digest mismatches).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// A layer could not be unpacked.
    #[error("cannot unpack layer {blob}")]
    Unpack {
        /// The layer blob.
        blob: Digest,
        #[source]
        source: UnpackError,
    },
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// No image matches.
    #[error("no such image: {reference}")]
    NotFound {
        /// What was looked up.
        reference: String,
    },
    /// An id prefix matches several images.
    #[error("image id prefix {prefix:?} is ambiguous ({count} images match)")]
    Ambiguous {
        /// The prefix.
        prefix: String,
        /// How many images match.
        count: usize,
    },
    /// An unpacked layer does not hash to the diff id its config announces.
    #[error("layer {blob} unpacks to {actual}, but the image config says {expected}")]
    DiffIdMismatch {
        /// The layer blob.
        blob: Digest,
        /// From the config's rootfs.diff_ids.
        expected: Digest,
        /// What the uncompressed stream hashed to.
        actual: Digest,
    },
    /// A manifest or config document is malformed.
    #[error("invalid {what} {digest}: {reason}")]
    BadDocument {
        /// "manifest", "config" …
        what: &'static str,
        /// The blob.
        digest: Digest,
        /// What is wrong.
        reason: String,
    },
    /// The image is used by containers and `-f` was not given.
    #[error("image {image} is in use by container(s) {containers} (use -f to untag it anyway)")]
    InUse {
        /// The image id.
        image: Digest,
        /// Comma-separated container names.
        containers: String,
    },
    /// Removing by id an image with several tags needs `-f`.
    #[error("image {image} is tagged in several repositories ({tags}); remove by tag or use -f")]
    MultipleTags {
        /// The image id.
        image: Digest,
        /// Its tags.
        tags: String,
    },
    /// A store file could not be read or written.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file at fault.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A directory committed as a layer could not be read.
    #[error("cannot read the layer directory {path}")]
    LayerDir {
        /// The directory.
        path: PathBuf,
        #[source]
        source: super::diff::DiffError,
    },
    /// A store metadata file is not valid JSON.
    #[error("corrupt store file {path}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError + use<> {
    let path = path.to_owned();
    move |source| StoreError::Io { op, path, source }
}

/// One unpacked layer, shared by every image whose stack contains it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRecord {
    /// sha256 over the parent chain and this diff: the key.
    pub chain_id: Digest,
    /// sha256 of the uncompressed tar.
    pub diff_id: Digest,
    /// The chain id below, if any.
    pub parent: Option<Digest>,
    /// Directory name under `l/`.
    pub dir: String,
    /// Bytes of file content.
    pub size: u64,
    /// The layer was committed as a directory (a build's COPY): its plain tar, whose digest is
    /// the diff id, is not stored but made again from the directory when something needs it
    /// ([`ImageStore::layer_tar`]: `image save`, flatten).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tar_from_dir: bool,
}

/// A directory a caller fills as a new layer, then hands to [`ImageStore::commit_dir`], which
/// renames it into place instead of copying it: the builder's COPY writes each file once.
/// It lives in the store (`l/.tmp-…`, same file system as the layers) and holds the shared
/// writer lock until committed or dropped, so no `image prune` collects it meanwhile; dropped
/// uncommitted, it is removed.
#[derive(Debug)]
pub struct LayerDraft {
    dir: PathBuf,
    _writer: FileLock,
}

impl LayerDraft {
    /// The directory to fill (overlayfs upper format: whiteouts as 0/0 character devices).
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

impl Drop for LayerDraft {
    fn drop(&mut self) {
        // Gone already when committed (renamed into place).
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A layer as one image references it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerRef {
    /// The (possibly compressed) blob.
    pub blob: Digest,
    /// Its media type.
    pub media_type: String,
    /// Blob size.
    pub blob_size: u64,
    /// Uncompressed digest.
    pub diff_id: Digest,
    /// Chain id (the unpacked directory's key).
    pub chain_id: Digest,
}

/// What the store keeps about an image (`imagedb/<id hex>.json`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageRecord {
    /// The image id: the config digest, as Docker uses.
    pub id: Digest,
    /// The manifest digest (what a registry knows the image by).
    pub manifest: Digest,
    /// The manifest media type.
    pub manifest_media_type: String,
    /// Layers, bottom first.
    pub layers: Vec<LayerRef>,
    /// The image this one was committed on top of (builder, `container commit`).
    #[serde(default)]
    pub parent: Option<Digest>,
    /// When the image entered this store (RFC 3339).
    pub added: String,
    /// `name@digest` for images pulled from a registry.
    #[serde(default)]
    pub repo_digests: Vec<String>,
}

/// Docker's healthcheck extension of the image config (absent from the OCI spec).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`.
    #[serde(default)]
    pub test: Vec<String>,
    /// Nanoseconds between checks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<u64>,
    /// Nanoseconds before a check counts as failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Nanoseconds of grace after start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<u64>,
    /// Nanoseconds between checks during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<u64>,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
}

/// A resolved image: what a container needs to start from it.
#[derive(Debug, Clone)]
pub struct Image {
    /// Image id (config digest).
    pub id: Digest,
    /// Manifest digest.
    pub manifest_digest: Digest,
    /// The parsed OCI config: Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes,
    /// Labels, StopSignal under `config()`; history; rootfs.
    pub config: ImageConfiguration,
    /// The config JSON as stored (for Docker extensions such as Healthcheck, Shell, OnBuild).
    pub raw_config: serde_json::Value,
    /// The store record.
    pub record: ImageRecord,
    /// Tags pointing at this image (`docker.io/library/x:t`).
    pub repo_tags: Vec<String>,
    /// Unpacked content size of each layer, bottom first.
    pub layer_sizes: Vec<u64>,
    dirs: Vec<PathBuf>,
}

impl Image {
    /// Unpacked layer directories, BOTTOM to TOP. overlayfs wants lowerdir= TOP first, so
    /// reverse this when joining with ':'.
    pub fn layer_dirs(&self) -> Vec<PathBuf> {
        self.dirs.clone()
    }

    /// The value of overlayfs's `lowerdir=` option for this image: the layer directories TOP
    /// first, joined by ':'. The whole mount option must fit in a page (4096 bytes), which the
    /// short layer directory names keep true up to about a hundred layers.
    pub fn lowerdir(&self) -> String {
        let dirs: Vec<String> = self
            .dirs
            .iter()
            .rev()
            .map(|d| d.display().to_string())
            .collect();
        dirs.join(":")
    }

    /// The runtime defaults (Env, Cmd …), if the config has any.
    pub fn runtime_config(&self) -> Option<&Config> {
        self.config.config().as_ref()
    }

    /// Docker's HEALTHCHECK, read from the raw config.
    pub fn healthcheck(&self) -> Option<Healthcheck> {
        let v = self.raw_config.get("config")?.get("Healthcheck")?;
        serde_json::from_value(v.clone()).ok()
    }

    /// Unpacked size of all layers.
    pub fn size(&self) -> u64 {
        self.layer_sizes.iter().sum()
    }
}

/// What a new image committed on top of a parent gets (builder, `container commit`, import).
#[derive(Debug, Clone, Default)]
pub struct NewImage {
    /// Runtime config (Env, Cmd …); its rootfs and history are filled in by the store.
    pub config: Config,
    /// Docker HEALTHCHECK, stored as the `Healthcheck` extension.
    pub healthcheck: Option<Healthcheck>,
    /// The history line (`created_by`), e.g. the Dockerfile instruction.
    pub created_by: String,
    /// A comment for the history line.
    pub comment: Option<String>,
}

/// What `prune`/`rm` removed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RemoveReport {
    /// Tags removed.
    pub untagged: Vec<String>,
    /// Image ids removed.
    pub deleted: Vec<Digest>,
    /// Layers removed (chain ids).
    pub layers_deleted: usize,
    /// Bytes of unpacked layers and blobs freed.
    pub reclaimed: u64,
    /// Images kept because containers use them.
    pub kept_in_use: Vec<Digest>,
}

/// The image store under `<root>/images`.
#[derive(Debug, Clone)]
pub struct ImageStore {
    root: PathBuf,
    dir: PathBuf,
    blobs: Blobs,
}

/// A commit's new layer.
enum NewLayer<'a> {
    /// None: a metadata-only step.
    None,
    /// A tar stream (plain or compressed), stored as a blob and unpacked.
    Tar(&'a mut dyn Read),
    /// A filled directory, adopted as the layer.
    Dir(LayerDraft),
    /// A layer the store already holds on this parent (a build's cache source).
    Existing(LayerRef),
}

/// What [`ImageStore::adopt_draft`] tells the manifest.
struct AdoptedLayer {
    diff_id: Digest,
    tar_size: u64,
}

/// RFC 3339 timestamp of now, seconds precision.
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

impl ImageStore {
    /// Opens the store of the berth instance rooted at `root`, creating its directories.
    pub fn open(root: &Path) -> Result<ImageStore> {
        let dir = root.join("images");
        for sub in ["layers", "l", "imagedb"] {
            let p = dir.join(sub);
            crate::modes::root_dir(root, &p).map_err(io_err("create", &p))?;
        }
        let blobs = Blobs::open(&dir)?;
        Ok(ImageStore {
            root: root.to_owned(),
            dir,
            blobs,
        })
    }

    /// The blob area (for sources that stream blobs in: pull, load).
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// `<root>/images`.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Held by every writer while it adds content, see the module doc.
    pub fn writer_lock(&self) -> Result<FileLock> {
        let p = self.dir.join("gc.lock");
        FileLock::shared(&p).map_err(io_err("lock", &p))
    }

    fn gc_lock(&self) -> Result<FileLock> {
        let p = self.dir.join("gc.lock");
        FileLock::exclusive(&p).map_err(io_err("lock", &p))
    }

    fn read_json<T: for<'de> Deserialize<'de>>(&self, path: &Path) -> Result<T> {
        let bytes = fs::read(path).map_err(io_err("read", path))?;
        serde_json::from_slice(&bytes).map_err(|source| StoreError::Corrupt {
            path: path.to_owned(),
            source,
        })
    }

    fn write_json<T: Serialize>(&self, path: &Path, v: &T) -> Result<()> {
        let bytes = serde_json::to_vec_pretty(v).map_err(|source| StoreError::Corrupt {
            path: path.to_owned(),
            source,
        })?;
        write_atomic(self.blobs.tmp_dir(), path, &bytes).map_err(io_err("write", path))
    }

    fn layer_record_path(&self, chain: &Digest) -> PathBuf {
        self.dir
            .join("layers")
            .join(format!("{}.json", chain.hex()))
    }

    fn image_record_path(&self, id: &Digest) -> PathBuf {
        self.dir.join("imagedb").join(format!("{}.json", id.hex()))
    }

    /// The unpacked directory of a layer.
    pub fn layer_dir(&self, rec: &LayerRecord) -> PathBuf {
        self.dir.join("l").join(&rec.dir)
    }

    /// The layer record for a chain id, if that layer is unpacked.
    pub fn layer(&self, chain: &Digest) -> Result<Option<LayerRecord>> {
        let p = self.layer_record_path(chain);
        if !p.exists() {
            return Ok(None);
        }
        let rec: LayerRecord = self.read_json(&p)?;
        Ok(self.layer_dir(&rec).is_dir().then_some(rec))
    }

    /// Unpacks the layer blob on top of `parent` (a chain id) unless that chain is already
    /// unpacked. With `diff_id` known (from a config) the work is skipped when present and the
    /// result is verified; without it (commit, import) it is computed.
    pub fn ensure_layer(
        &self,
        parent: Option<&Digest>,
        blob: &Digest,
        diff_id: Option<&Digest>,
    ) -> Result<LayerRecord> {
        if let Some(d) = diff_id
            && let Some(rec) = self.layer(&Digest::chain(parent, d))?
        {
            return Ok(rec);
        }
        let l = self.dir.join("l");
        let tmp = l.join(format!(".tmp-{}", unique_suffix()));
        fs::create_dir(&tmp).map_err(io_err("create", &tmp))?;
        let res = (|| {
            let f = self.blobs.open_blob(blob)?;
            let stats = unpack::unpack_layer(f, &tmp, Whiteouts::Overlay).map_err(|source| {
                StoreError::Unpack {
                    blob: blob.clone(),
                    source,
                }
            })?;
            if let Some(expected) = diff_id
                && expected != &stats.diff_id
            {
                return Err(StoreError::DiffIdMismatch {
                    blob: blob.clone(),
                    expected: expected.clone(),
                    actual: stats.diff_id,
                });
            }
            Ok(stats)
        })();
        let stats = match res {
            Ok(s) => s,
            Err(e) => {
                let _ = fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let chain = Digest::chain(parent, &stats.diff_id);
        let _guard = self.blobs.lock(&chain)?;
        if let Some(rec) = self.layer(&chain)? {
            let _ = fs::remove_dir_all(&tmp);
            return Ok(rec);
        }
        let rec = LayerRecord {
            chain_id: chain.clone(),
            diff_id: stats.diff_id.clone(),
            parent: parent.cloned(),
            dir: String::new(),
            size: stats.file_bytes,
            tar_from_dir: false,
        };
        let rec = self.install_layer(&tmp, rec)?;
        tracing::info!(chain = %chain, dir = %self.layer_dir(&rec).display(), size = rec.size, "layer unpacked");
        Ok(rec)
    }

    /// Renames the filled directory `tmp` into place as the layer `rec` describes (its `dir`
    /// is chosen here) and writes the record. The caller holds the chain's lock and has checked
    /// that the chain is not there yet.
    fn install_layer(&self, tmp: &Path, mut rec: LayerRecord) -> Result<LayerRecord> {
        let chain = rec.chain_id.clone();
        rec.dir = chain.hex()[..LAYER_DIR_LEN].to_owned();
        if self.dir_claimed_by_other(&rec.dir, &chain)? {
            // Two chains sharing a 16-digit prefix: this one takes a longer name.
            rec.dir = chain.hex()[..LAYER_DIR_LEN + 16].to_owned();
        }
        let dst = self.layer_dir(&rec);
        if dst.exists() {
            // A leftover without a record (crash between rename and record): replace it.
            fs::remove_dir_all(&dst).map_err(io_err("remove stale layer", &dst))?;
        }
        fs::rename(tmp, &dst).map_err(io_err("rename layer into", &dst))?;
        self.write_json(&self.layer_record_path(&chain), &rec)?;
        Ok(rec)
    }

    /// A fresh directory to fill as a layer and pass to [`Self::commit_dir`].
    pub fn layer_draft(&self) -> Result<LayerDraft> {
        let writer = self.writer_lock()?;
        let dir = self.dir.join("l").join(format!(".tmp-{}", unique_suffix()));
        fs::create_dir(&dir).map_err(io_err("create", &dir))?;
        Ok(LayerDraft {
            dir,
            _writer: writer,
        })
    }

    /// The plain (uncompressed) tar of one of an image's layers, for `image save` and
    /// flatten: the stored blob, or for a layer committed as a directory
    /// ([`LayerRecord::tar_from_dir`]) the tar made again from it, checked against the diff id
    /// as it streams (a changed directory is a read error, never a wrong archive). Compressed
    /// blobs are returned as stored.
    pub fn layer_tar(&self, layer: &LayerRef) -> Result<Box<dyn Read + Send>> {
        match self.blobs.open_blob(&layer.blob) {
            Ok(f) => return Ok(Box::new(f)),
            Err(BlobError::Missing { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let missing = || {
            StoreError::Blob(BlobError::Missing {
                digest: layer.blob.clone(),
            })
        };
        if layer.blob != layer.diff_id {
            return Err(missing());
        }
        let rec = self.layer(&layer.chain_id)?.ok_or_else(missing)?;
        if !rec.tar_from_dir || rec.diff_id != layer.diff_id {
            return Err(missing());
        }
        let dir = self.layer_dir(&rec);
        let r = super::diff::DiffReader::start(&dir, Some(layer.diff_id.clone()))
            .map_err(io_err("start the tar writer for", &dir))?;
        Ok(Box::new(r))
    }

    /// Whether a layer record of another chain uses directory `dir` (checked only when the
    /// directory exists, so the common case costs one stat).
    fn dir_claimed_by_other(&self, dir: &str, chain: &Digest) -> Result<bool> {
        if !self.dir.join("l").join(dir).exists() {
            return Ok(false);
        }
        let ld = self.dir.join("layers");
        for e in fs::read_dir(&ld).map_err(io_err("list", &ld))?.flatten() {
            if let Ok(rec) = self.read_json::<LayerRecord>(&e.path())
                && rec.dir == dir
                && &rec.chain_id != chain
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Registers an image whose manifest, config and layer blobs are all stored: unpacks the
    /// layers (once per chain), checks the diff ids, writes the image record.
    pub fn add_image(
        &self,
        manifest_digest: &Digest,
        parent: Option<&Digest>,
        repo_digest: Option<String>,
    ) -> Result<Image> {
        let _w = self.writer_lock()?;
        let bytes = self.blobs.read(manifest_digest)?;
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| StoreError::BadDocument {
                what: "manifest",
                digest: manifest_digest.clone(),
                reason: e.to_string(),
            })?;
        let config_bytes = self.blobs.read(&manifest.config.digest)?;
        let config_digest = Digest::of_bytes(&config_bytes);
        let config = parse_config(&config_bytes, &config_digest)?;
        let diff_ids = diff_ids(&config, &config_digest)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(StoreError::BadDocument {
                what: "manifest",
                digest: manifest_digest.clone(),
                reason: format!(
                    "{} layers but the config lists {} diff ids",
                    manifest.layers.len(),
                    diff_ids.len()
                ),
            });
        }
        let mut layers = Vec::new();
        let mut chain: Option<Digest> = None;
        for (desc, diff) in manifest.layers.iter().zip(&diff_ids) {
            let rec = self.ensure_layer(chain.as_ref(), &desc.digest, Some(diff))?;
            layers.push(LayerRef {
                blob: desc.digest.clone(),
                media_type: desc.media_type.clone(),
                blob_size: desc.size,
                diff_id: diff.clone(),
                chain_id: rec.chain_id.clone(),
            });
            chain = Some(rec.chain_id);
        }
        let path = self.image_record_path(&config_digest);
        let mut repo_digests = Vec::new();
        let mut old_parent = None;
        if path.exists()
            && let Ok(old) = self.read_json::<ImageRecord>(&path)
        {
            // The same config again (a re-pull, a load): keep what was known about it.
            repo_digests = old.repo_digests;
            old_parent = old.parent;
        }
        if let Some(rd) = repo_digest
            && !repo_digests.contains(&rd)
        {
            repo_digests.push(rd);
        }
        let rec = ImageRecord {
            id: config_digest.clone(),
            manifest: manifest_digest.clone(),
            manifest_media_type: manifest
                .media_type
                .clone()
                .unwrap_or_else(|| media::OCI_MANIFEST.to_owned()),
            layers,
            parent: parent.cloned().or(old_parent),
            added: now_rfc3339(),
            repo_digests,
        };
        self.write_json(&path, &rec)?;
        tracing::info!(id = %config_digest, manifest = %manifest_digest, "image added");
        self.load_image(rec)
    }

    /// Records that a registry knows image `id` as `repo_digest` (`name@sha256:…`), as a
    /// push learns it: the image can then be pinned by that digest without pushing again.
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &str) -> Result<()> {
        let _w = self.writer_lock()?;
        let path = self.image_record_path(id);
        let mut rec: ImageRecord = self.read_json(&path)?;
        if !rec.repo_digests.iter().any(|d| d == repo_digest) {
            rec.repo_digests.push(repo_digest.to_string());
            self.write_json(&path, &rec)?;
        }
        Ok(())
    }

    fn load_image(&self, record: ImageRecord) -> Result<Image> {
        let config_bytes = self.blobs.read(&record.id)?;
        let config = parse_config(&config_bytes, &record.id)?;
        let raw_config =
            serde_json::from_slice(&config_bytes).map_err(|e| StoreError::BadDocument {
                what: "config",
                digest: record.id.clone(),
                reason: e.to_string(),
            })?;
        let mut dirs = Vec::new();
        let mut sizes = Vec::new();
        for l in &record.layers {
            let rec = self
                .layer(&l.chain_id)?
                .ok_or_else(|| StoreError::NotFound {
                    reference: format!("layer {} of image {}", l.chain_id, record.id),
                })?;
            dirs.push(self.layer_dir(&rec));
            sizes.push(rec.size);
        }
        let tags = self.read_tags()?;
        let repo_tags = tags
            .tags
            .iter()
            .filter(|(_, id)| **id == record.id)
            .map(|(t, _)| t.clone())
            .collect();
        Ok(Image {
            id: record.id.clone(),
            manifest_digest: record.manifest.clone(),
            config,
            raw_config,
            record,
            repo_tags,
            dirs,
            layer_sizes: sizes,
        })
    }

    fn records(&self) -> Result<Vec<ImageRecord>> {
        let d = self.dir.join("imagedb");
        let mut out = Vec::new();
        for e in fs::read_dir(&d).map_err(io_err("list", &d))? {
            let e = e.map_err(io_err("list", &d))?;
            let p = e.path();
            if p.extension().is_some_and(|x| x == "json") {
                out.push(self.read_json(&p)?);
            }
        }
        Ok(out)
    }
}

fn ignore_missing(e: io::Error) -> io::Result<()> {
    if e.kind() == io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

fn parse_config(bytes: &[u8], digest: &Digest) -> Result<ImageConfiguration> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::BadDocument {
        what: "config",
        digest: digest.clone(),
        reason: e.to_string(),
    })
}

fn diff_ids(config: &ImageConfiguration, digest: &Digest) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|s| {
            s.parse::<Digest>().map_err(|e| StoreError::BadDocument {
                what: "config",
                digest: digest.clone(),
                reason: e.to_string(),
            })
        })
        .collect()
}
