//! Image archives: `image load` of `docker save` and OCI archives, and `image save` of one tar
//! that is both (an OCI layout with a Docker `manifest.json` beside it, as Docker 25+ writes),
//! so docker, podman and skopeo all load it (`docker-archive:` and `oci-archive:`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{self, Read, Write};

use serde::{Deserialize, Serialize};

use super::blobs::BlobError;
use super::digest::Digest;
use super::reference::Reference;
use super::store::{
    Descriptor, Image, ImageStore, Index, LayerRef, Manifest, StoreError, media, pick_platform,
    tag_key,
};
use super::unpack::{self, Compression};

/// Load/save failures, with the archive member at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A blob could not be stored (digest mismatch included).
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The archive could not be read or written.
    #[error("cannot {op} image archive")]
    Io {
        /// read / write.
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// The archive is neither a docker-save nor an OCI archive, or a member is missing.
    #[error("not a loadable image archive: {reason}")]
    Format {
        /// What is missing or wrong.
        reason: String,
    },
    /// A JSON member does not parse.
    #[error("invalid {member} in image archive")]
    Json {
        /// The member name.
        member: String,
        #[source]
        source: serde_json::Error,
    },
}

type Result<T, E = ArchiveError> = std::result::Result<T, E>;

/// An image that `load` added.
#[derive(Debug, Clone, Serialize)]
pub struct LoadedImage {
    /// Its id.
    pub id: Digest,
    /// The tags it was given.
    pub tags: Vec<String>,
}

/// One entry of a docker-save `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

const SMALL_MEMBER: u64 = 4 << 20;

fn read_err(source: io::Error) -> ArchiveError {
    ArchiveError::Io { op: "read", source }
}

/// Loads every image of a docker-save or OCI archive (plain or compressed) into the store.
/// Blobs are streamed straight into the blob store (and verified when the archive names them
/// by digest); `default_repo` names OCI entries that carry only a tag. All or nothing: the
/// images are tagged only once every one of them is in, and a failure (truncated archive, bad
/// manifest, corrupt layer, bad tag) removes the images, layers and blobs this load added.
pub fn load<R: Read>(
    store: &ImageStore,
    reader: R,
    default_repo: Option<&str>,
) -> Result<Vec<LoadedImage>> {
    let mut added = Vec::new();
    let out = load_all(store, reader, default_repo, &mut added);
    // The writer lock is released: the clean-up takes the exclusive gc lock.
    if out.is_err()
        && let Err(e) = store.discard_failed(&added)
    {
        tracing::warn!(error = %e, "cleaning up after a failed image load");
    }
    out
}

fn load_all<R: Read>(
    store: &ImageStore,
    reader: R,
    default_repo: Option<&str>,
    added: &mut Vec<Digest>,
) -> Result<Vec<LoadedImage>> {
    let _w = store.writer_lock()?;
    let before: BTreeSet<Digest> = store.list()?.into_iter().map(|i| i.id).collect();
    let plain = unpack::decompress(reader).map_err(read_err)?;
    let mut archive = tar::Archive::new(plain);
    let mut small: HashMap<String, Vec<u8>> = HashMap::new();
    let mut stored: HashMap<String, Digest> = HashMap::new();
    let mut aliases: HashMap<String, String> = HashMap::new();
    for entry in archive.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let raw = entry.path_bytes().into_owned();
        let Ok(comps) = unpack::clean_path(&raw) else {
            continue;
        };
        let path = String::from_utf8_lossy(&comps.join(&b'/')).into_owned();
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let named = path
                    .strip_prefix("blobs/sha256/")
                    .and_then(|h| Digest::from_hex(h).ok());
                if let Some(d) = named {
                    store.blobs().put_verified(&mut entry, &d)?;
                    stored.insert(path, d);
                } else if entry.size() <= SMALL_MEMBER {
                    let mut buf = Vec::new();
                    entry.read_to_end(&mut buf).map_err(read_err)?;
                    small.insert(path, buf);
                } else {
                    let (d, _) = store.blobs().put(&mut entry)?;
                    stored.insert(path, d);
                }
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let base = if entry.header().entry_type() == tar::EntryType::Symlink {
                    comps[..comps.len().saturating_sub(1)].join(&b'/')
                } else {
                    Vec::new()
                };
                let joined = [base, target].join(&b'/');
                // Resolve `..` lexically inside the archive.
                let mut out: Vec<&[u8]> = Vec::new();
                for c in joined.split(|&b| b == b'/') {
                    match c {
                        b"" | b"." => {}
                        b".." => {
                            out.pop();
                        }
                        c => out.push(c),
                    }
                }
                aliases.insert(path, String::from_utf8_lossy(&out.join(&b'/')).into_owned());
            }
            _ => {}
        }
    }
    let mut m = Members {
        store,
        small,
        stored,
        aliases,
        before,
        added,
    };
    let named = if let Some(bytes) = m.small.get("manifest.json").cloned() {
        load_docker(&mut m, &bytes)?
    } else if let Some(bytes) = m.small.get("index.json").cloned() {
        load_oci(&mut m, &bytes, default_repo)?
    } else {
        return Err(ArchiveError::Format {
            reason: "neither manifest.json (docker save) nor index.json (OCI layout) found".into(),
        });
    };
    for (_, names) in &named {
        for n in names {
            tag_key(n)?;
        }
    }
    let mut out = Vec::new();
    for (id, names) in named {
        let mut tags = Vec::new();
        for n in names {
            tags.push(store.tag(&id, &n)?);
        }
        out.push(LoadedImage { id, tags });
    }
    Ok(out)
}

struct Members<'a> {
    store: &'a ImageStore,
    small: HashMap<String, Vec<u8>>,
    stored: HashMap<String, Digest>,
    aliases: HashMap<String, String>,
    /// Images the store had before this load.
    before: BTreeSet<Digest>,
    /// Images this load added (removed again if it fails).
    added: &'a mut Vec<Digest>,
}

impl Members<'_> {
    /// Registers the image of a stored manifest, remembering it when it is new.
    fn add_image(&mut self, manifest: &Digest) -> Result<Image> {
        let img = self.store.add_image(manifest, None, None)?;
        if !self.before.contains(&img.id) {
            self.added.push(img.id.clone());
        }
        Ok(img)
    }

    /// The blob for an archive member, storing small members on demand.
    fn blob(&mut self, path: &str) -> Result<Digest> {
        let mut p = path.trim_start_matches("./").to_owned();
        for _ in 0..16 {
            match self.aliases.get(&p) {
                Some(t) => p = t.clone(),
                None => break,
            }
        }
        if let Some(d) = self.stored.get(&p) {
            return Ok(d.clone());
        }
        if let Some(b) = self.small.get(&p) {
            let d = self.store.blobs().put_bytes(b)?;
            self.stored.insert(p, d.clone());
            return Ok(d);
        }
        Err(ArchiveError::Format {
            reason: format!("member {path} is missing"),
        })
    }
}

fn layer_media_type(store: &ImageStore, d: &Digest) -> Result<&'static str> {
    let mut f = store.blobs().open_blob(d)?;
    let mut head = [0u8; 4];
    let n = f.read(&mut head).map_err(read_err)?;
    Ok(match Compression::detect(&head[..n]) {
        Compression::None => media::OCI_LAYER,
        Compression::Gzip => media::OCI_LAYER_GZIP,
        Compression::Zstd => media::OCI_LAYER_ZSTD,
    })
}

/// Images of a load with the names they are to be given once all are in.
type Named = Vec<(Digest, Vec<String>)>;

fn load_docker(m: &mut Members<'_>, bytes: &[u8]) -> Result<Named> {
    let entries: Vec<DockerEntry> =
        serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
            member: "manifest.json".into(),
            source,
        })?;
    let mut out = Vec::new();
    for e in entries {
        let config = m.blob(&e.config)?;
        let config_size = std::fs::metadata(m.store.blobs().path(&config))
            .map(|x| x.len())
            .unwrap_or(0);
        let mut layers = Vec::new();
        for l in &e.layers {
            let d = m.blob(l)?;
            let size = std::fs::metadata(m.store.blobs().path(&d))
                .map(|x| x.len())
                .unwrap_or(0);
            layers.push(Descriptor {
                media_type: layer_media_type(m.store, &d)?.into(),
                digest: d,
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: media::OCI_CONFIG.into(),
                digest: config,
                size: config_size,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers,
        };
        let mbytes = serde_json::to_vec(&manifest).map_err(|source| ArchiveError::Json {
            member: "manifest".into(),
            source,
        })?;
        let md = m.store.blobs().put_bytes(&mbytes)?;
        let img = m.add_image(&md)?;
        out.push((img.id, e.repo_tags.unwrap_or_default()));
    }
    Ok(out)
}

fn load_oci(m: &mut Members<'_>, bytes: &[u8], default_repo: Option<&str>) -> Result<Named> {
    let index: Index = serde_json::from_slice(bytes).map_err(|source| ArchiveError::Json {
        member: "index.json".into(),
        source,
    })?;
    let mut out = Vec::new();
    for desc in &index.manifests {
        let mut d = desc.clone();
        // Nested index (multi-platform): take this host's platform.
        if d.media_type == media::OCI_INDEX || d.media_type == media::DOCKER_LIST {
            let inner: Index =
                serde_json::from_slice(&m.store.blobs().read(&d.digest)?).map_err(|source| {
                    ArchiveError::Json {
                        member: d.digest.to_string(),
                        source,
                    }
                })?;
            d = pick_platform(&inner)
                .cloned()
                .ok_or_else(|| ArchiveError::Format {
                    reason: format!(
                        "index {} has no manifest for linux/{}",
                        d.digest,
                        super::store::host_arch()
                    ),
                })?;
        }
        let img = m.add_image(&d.digest)?;
        let full = desc.annotations.get("io.containerd.image.name").cloned();
        let refname = desc
            .annotations
            .get("org.opencontainers.image.ref.name")
            .cloned();
        let name = match (full, refname) {
            (Some(f), _) => Some(f),
            // A full reference, or only a tag that needs a repository name.
            (None, Some(r)) if r.contains('/') || r.contains(':') => Some(r),
            (None, Some(tag)) => default_repo.map(|repo| format!("{repo}:{tag}")),
            (None, None) => None,
        };
        out.push((img.id, name.into_iter().collect()));
    }
    Ok(out)
}

/// Writes the images named by `refs` as one archive that is both an OCI layout and a
/// docker-save archive.
pub fn save<W: Write>(store: &ImageStore, refs: &[String], w: W) -> Result<()> {
    let mut b = tar::Builder::new(w);
    let mut blobs: Vec<Digest> = Vec::new();
    // Layers apart: a layer committed as a directory has no stored blob until asked for.
    let mut layers: Vec<LayerRef> = Vec::new();
    let mut index = Index {
        schema_version: 2,
        media_type: Some(media::OCI_INDEX.into()),
        manifests: Vec::new(),
    };
    let mut docker = Vec::new();
    for r in refs {
        let img = store.resolve(r)?;
        let msize = std::fs::metadata(store.blobs().path(&img.manifest_digest))
            .map(|x| x.len())
            .unwrap_or(0);
        // Tag names: the reference itself when it is a tag, else the image's tags.
        let names: Vec<Reference> = match r.parse::<Reference>() {
            Ok(x) if x.tagged().is_some_and(|k| img.repo_tags.contains(&k)) => vec![x],
            _ => img
                .repo_tags
                .iter()
                .filter_map(|t| t.parse().ok())
                .collect(),
        };
        if names.is_empty() {
            index.manifests.push(Descriptor {
                media_type: img.record.manifest_media_type.clone(),
                digest: img.manifest_digest.clone(),
                size: msize,
                platform: None,
                annotations: BTreeMap::new(),
            });
        }
        for n in &names {
            let mut ann = BTreeMap::new();
            ann.insert("io.containerd.image.name".to_owned(), n.to_string());
            ann.insert(
                "org.opencontainers.image.ref.name".to_owned(),
                n.tag.clone().unwrap_or_default(),
            );
            index.manifests.push(Descriptor {
                media_type: img.record.manifest_media_type.clone(),
                digest: img.manifest_digest.clone(),
                size: msize,
                platform: None,
                annotations: ann,
            });
        }
        docker.push(DockerEntry {
            config: format!("blobs/sha256/{}", img.id.hex()),
            repo_tags: Some(
                names
                    .iter()
                    .map(|n| {
                        format!(
                            "{}:{}",
                            n.familiar_name(),
                            n.tag.clone().unwrap_or_default()
                        )
                    })
                    .collect(),
            ),
            layers: img
                .record
                .layers
                .iter()
                .map(|l| format!("blobs/sha256/{}", l.blob.hex()))
                .collect(),
        });
        for d in [&img.manifest_digest, &img.id] {
            if !blobs.contains(d) {
                blobs.push(d.clone());
            }
        }
        for l in &img.record.layers {
            if !blobs.contains(&l.blob) && !layers.iter().any(|x: &LayerRef| x.blob == l.blob) {
                layers.push(l.clone());
            }
        }
    }
    let werr = |source| ArchiveError::Io {
        op: "write",
        source,
    };
    let add_bytes = |b: &mut tar::Builder<W>, path: &str, data: &[u8]| -> Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path).map_err(werr)?;
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, data).map_err(werr)
    };
    add_bytes(&mut b, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let mut dir = tar::Header::new_ustar();
    dir.set_entry_type(tar::EntryType::Directory);
    dir.set_mode(0o755);
    dir.set_size(0);
    for p in ["blobs/", "blobs/sha256/"] {
        dir.set_path(p).map_err(werr)?;
        dir.set_cksum();
        b.append(&dir, io::empty()).map_err(werr)?;
    }
    for d in &blobs {
        let f = store.blobs().open_blob(d)?;
        let len = f.metadata().map_err(read_err)?.len();
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("blobs/sha256/{}", d.hex()))
            .map_err(werr)?;
        h.set_size(len);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, f).map_err(werr)?;
    }
    for l in &layers {
        let mut h = tar::Header::new_ustar();
        h.set_path(format!("blobs/sha256/{}", l.blob.hex()))
            .map_err(werr)?;
        h.set_size(l.blob_size);
        h.set_mode(0o644);
        h.set_cksum();
        // The reader checks the digest at its end: a layer that no longer matches fails the
        // save instead of writing a wrong blob (its length is checked by the digest too).
        let mut r = store.layer_tar(l)?;
        let mut counted = (&mut r).take(l.blob_size + 1);
        b.append(&h, &mut counted).map_err(werr)?;
        if counted.limit() != 1 {
            return Err(werr(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "layer {} is not the {} bytes its manifest says",
                    l.blob, l.blob_size
                ),
            )));
        }
    }
    let ij = serde_json::to_vec(&index).map_err(|source| ArchiveError::Json {
        member: "index.json".into(),
        source,
    })?;
    add_bytes(&mut b, "index.json", &ij)?;
    let mj = serde_json::to_vec(&docker).map_err(|source| ArchiveError::Json {
        member: "manifest.json".into(),
        source,
    })?;
    add_bytes(&mut b, "manifest.json", &mj)?;
    b.into_inner().map_err(werr)?.flush().map_err(werr)?;
    Ok(())
}
