//! Committing layers and images: a tar stream or a filled layer directory on a parent, as the
//! builder, `container commit` and `image import` do, and flattening an image to a directory.

use super::*;

/// The layers, diff ids and history a new layer goes on top of.
#[derive(Default)]
struct Stack {
    layer_descs: Vec<Descriptor>,
    diff_ids: Vec<String>,
    history: Vec<oci_spec::image::History>,
    chain: Option<Digest>,
}

impl ImageStore {
    /// Commits a new image: `layer` (a tar stream, plain or compressed; None for a
    /// metadata-only step) on top of `parent`, with `new`'s runtime config. The builder and
    /// `container commit` use this; `image import` is a commit without parent.
    pub fn commit(
        &self,
        layer: Option<&mut dyn Read>,
        parent: Option<&Digest>,
        new: NewImage,
    ) -> Result<Image> {
        self.commit_extended(layer, parent, new, &serde_json::Map::new())
    }

    /// [`Self::commit`] with Docker's extensions of the runtime config that the OCI schema
    /// lacks (`Shell`, ...), written into the config's `config` object as given, so that
    /// images built FROM this one inherit them as they do with Docker.
    pub fn commit_extended(
        &self,
        layer: Option<&mut dyn Read>,
        parent: Option<&Digest>,
        new: NewImage,
        extensions: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Image> {
        let layer = match layer {
            Some(r) => NewLayer::Tar(r),
            None => NewLayer::None,
        };
        self.commit_layer(layer, parent, new, extensions)
    }

    /// [`Self::commit_extended`] of a layer given as a filled [`LayerDraft`]: the tar is hashed
    /// (for the diff id) but not written, and the directory becomes the layer as it is, so
    /// each byte is written once. The manifest names the plain tar (digest = diff id), which
    /// [`Self::layer_tar`] makes again on demand. A layer the store already has (the same
    /// chain: same files, modes, owners and mtimes) is kept and the draft removed.
    pub fn commit_dir(
        &self,
        draft: LayerDraft,
        parent: Option<&Digest>,
        new: NewImage,
        extensions: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Image> {
        self.commit_layer(NewLayer::Dir(draft), parent, new, extensions)
    }

    /// [`Self::commit_extended`] reusing a layer another image already has on the same parent
    /// chain (a build's `--cache-from` hit): nothing is written but the config and manifest.
    pub fn commit_reused(
        &self,
        layer: Option<&LayerRef>,
        parent: Option<&Digest>,
        new: NewImage,
        extensions: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Image> {
        let layer = match layer {
            Some(l) => NewLayer::Existing(l.clone()),
            None => NewLayer::None,
        };
        self.commit_layer(layer, parent, new, extensions)
    }

    /// [`Self::commit_dir`] on an explicit stack of layers (the bottom of an image being
    /// squashed) rather than a parent image: `base` are the layers kept, `history` their
    /// history entries; `top` holds top-level config keys to keep (author, os, architecture
    /// ...). The image has no parent.
    pub fn commit_dir_on(
        &self,
        draft: LayerDraft,
        base: &[LayerRef],
        history: Vec<oci_spec::image::History>,
        new: NewImage,
        extensions: &serde_json::Map<String, serde_json::Value>,
        top: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Image> {
        let _w = self.writer_lock()?;
        let stack = Stack {
            layer_descs: base
                .iter()
                .map(|l| Descriptor {
                    media_type: l.media_type.clone(),
                    digest: l.blob.clone(),
                    size: l.blob_size,
                    platform: None,
                    annotations: BTreeMap::new(),
                })
                .collect(),
            diff_ids: base.iter().map(|l| l.diff_id.to_string()).collect(),
            history,
            chain: base.last().map(|l| l.chain_id.clone()),
        };
        self.commit_on(NewLayer::Dir(draft), stack, None, new, extensions, top)
    }

    pub(super) fn commit_layer(
        &self,
        layer: NewLayer<'_>,
        parent: Option<&Digest>,
        new: NewImage,
        extensions: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Image> {
        let _w = self.writer_lock()?;
        let parent_img = parent.map(|p| self.resolve(p.as_str())).transpose()?;
        let mut stack = Stack::default();
        if let Some(p) = &parent_img {
            let m: Manifest = serde_json::from_slice(&self.blobs.read(&p.manifest_digest)?)
                .map_err(|e| StoreError::BadDocument {
                    what: "manifest",
                    digest: p.manifest_digest.clone(),
                    reason: e.to_string(),
                })?;
            stack.layer_descs = m.layers;
            stack.diff_ids = p.config.rootfs().diff_ids().clone();
            stack.history = p.config.history().clone().unwrap_or_default();
            stack.chain = p.record.layers.last().map(|l| l.chain_id.clone());
        }
        self.commit_on(
            layer,
            stack,
            parent,
            new,
            extensions,
            &serde_json::Map::new(),
        )
    }

    /// Writes the config and manifest of `layer` on `stack` and registers the image. The
    /// caller holds the writer lock.
    fn commit_on(
        &self,
        layer: NewLayer<'_>,
        stack: Stack,
        parent: Option<&Digest>,
        new: NewImage,
        extensions: &serde_json::Map<String, serde_json::Value>,
        top: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<Image> {
        let Stack {
            mut layer_descs,
            mut diff_ids,
            mut history,
            chain,
        } = stack;
        let mut entry = oci_spec::image::HistoryBuilder::default()
            .created(now_rfc3339())
            .created_by(new.created_by.clone());
        if let Some(c) = &new.comment {
            entry = entry.comment(c.clone());
        }
        if let NewLayer::Dir(draft) = layer {
            let adopted = self.adopt_draft(draft, chain.as_ref())?;
            layer_descs.push(Descriptor {
                media_type: media::OCI_LAYER.into(),
                digest: adopted.diff_id.clone(),
                size: adopted.tar_size,
                platform: None,
                annotations: BTreeMap::new(),
            });
            diff_ids.push(adopted.diff_id.to_string());
        } else if let NewLayer::Tar(r) = layer {
            let (blob, size) = self.blobs.put(r)?;
            let head = {
                let mut f = self.blobs.open_blob(&blob)?;
                let mut b = [0u8; 4];
                let n = f
                    .read(&mut b)
                    .map_err(io_err("read", &self.blobs.path(&blob)))?;
                Compression::detect(&b[..n])
            };
            // An uncompressed tar's digest is its diff id: a layer the store already has
            // (a --no-cache rebuild of unchanged files) is then found without unpacking it.
            let known_diff = (head == Compression::None).then_some(&blob);
            let rec = self.ensure_layer(chain.as_ref(), &blob, known_diff)?;
            let mt = match head {
                Compression::None => media::OCI_LAYER,
                Compression::Gzip => media::OCI_LAYER_GZIP,
                Compression::Zstd => media::OCI_LAYER_ZSTD,
            };
            layer_descs.push(Descriptor {
                media_type: mt.into(),
                digest: blob,
                size,
                platform: None,
                annotations: BTreeMap::new(),
            });
            diff_ids.push(rec.diff_id.to_string());
        } else if let NewLayer::Existing(l) = layer {
            layer_descs.push(Descriptor {
                media_type: l.media_type,
                digest: l.blob,
                size: l.blob_size,
                platform: None,
                annotations: BTreeMap::new(),
            });
            diff_ids.push(l.diff_id.to_string());
        } else {
            entry = entry.empty_layer(true);
        }
        history.push(entry.build().map_err(|e| StoreError::BadDocument {
            what: "history",
            digest: Digest::of_bytes(b""),
            reason: e.to_string(),
        })?);
        let mut cfg = ImageConfiguration::default();
        cfg.set_created(Some(now_rfc3339()));
        cfg.set_config(Some(new.config));
        cfg.set_history(Some(history));
        cfg.rootfs_mut().set_diff_ids(diff_ids);
        let mut value = serde_json::to_value(&cfg).map_err(|e| StoreError::BadDocument {
            what: "config",
            digest: Digest::of_bytes(b""),
            reason: e.to_string(),
        })?;
        if let (Some(h), Some(obj)) = (
            &new.healthcheck,
            value.get_mut("config").and_then(|c| c.as_object_mut()),
        ) && let Ok(hv) = serde_json::to_value(h)
        {
            obj.insert("Healthcheck".into(), hv);
        }
        if let Some(obj) = value.get_mut("config").and_then(|c| c.as_object_mut()) {
            for (k, v) in extensions {
                obj.insert(k.clone(), v.clone());
            }
        }
        if let Some(obj) = value.as_object_mut() {
            for (k, v) in top {
                if !matches!(k.as_str(), "config" | "rootfs" | "history" | "created") {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        let config_bytes = serde_json::to_vec(&value).map_err(|e| StoreError::BadDocument {
            what: "config",
            digest: Digest::of_bytes(b""),
            reason: e.to_string(),
        })?;
        let config_digest = self.blobs.put_bytes(&config_bytes)?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(media::OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: media::OCI_CONFIG.into(),
                digest: config_digest,
                size: config_bytes.len() as u64,
                platform: None,
                annotations: BTreeMap::new(),
            },
            layers: layer_descs,
        };
        let mbytes = serde_json::to_vec(&manifest).map_err(|e| StoreError::BadDocument {
            what: "manifest",
            digest: Digest::of_bytes(b""),
            reason: e.to_string(),
        })?;
        let mdigest = self.blobs.put_bytes(&mbytes)?;
        // Still under the writer lock (shared locks nest): a prune must not collect the blobs
        // just written before the record that references them exists.
        self.add_image(&mdigest, parent, None)
    }

    /// Hashes a filled draft and installs it as the layer on `parent` (or finds that layer
    /// already there and drops the draft).
    pub(super) fn adopt_draft(
        &self,
        draft: LayerDraft,
        parent: Option<&Digest>,
    ) -> Result<AdoptedLayer> {
        let t0 = std::time::Instant::now();
        let sum = crate::image::diff::summarize_dir(draft.path()).map_err(|source| {
            StoreError::LayerDir {
                path: draft.path().to_owned(),
                source,
            }
        })?;
        tracing::debug!(diff_id = %sum.diff_id, tar_size = sum.tar_size, ms = t0.elapsed().as_millis() as u64, "layer directory hashed");
        let chain = Digest::chain(parent, &sum.diff_id);
        let _guard = self.blobs.lock(&chain)?;
        if self.layer(&chain)?.is_none() {
            let rec = LayerRecord {
                chain_id: chain.clone(),
                diff_id: sum.diff_id.clone(),
                parent: parent.cloned(),
                dir: String::new(),
                size: sum.file_bytes,
                tar_from_dir: true,
            };
            let rec = self.install_layer(draft.path(), rec)?;
            tracing::info!(chain = %chain, dir = %self.layer_dir(&rec).display(), size = rec.size, "layer committed from its directory");
        }
        drop(draft);
        Ok(AdoptedLayer {
            diff_id: sum.diff_id,
            tar_size: sum.tar_size,
        })
    }

    /// Applies the image's layers in order onto `dest` (whiteouts delete): one plain rootfs
    /// directory, for exports and for runtimes that cannot stack overlay lowers.
    pub fn flatten(&self, image: &Image, dest: &Path) -> Result<()> {
        for l in &image.record.layers {
            let f = self.layer_tar(l)?;
            unpack::unpack_layer(f, dest, Whiteouts::Apply).map_err(|source| {
                StoreError::Unpack {
                    blob: l.blob.clone(),
                    source,
                }
            })?;
        }
        Ok(())
    }

    /// `image import`: a plain rootfs tar (optionally compressed) as a one-layer image.
    /// A tar that cannot be read to its end (truncated, not a tar) leaves nothing behind.
    pub fn import(&self, tar: &mut dyn Read, source: &str, config: Config) -> Result<Image> {
        let new = NewImage {
            config,
            healthcheck: None,
            created_by: format!("berth image import {source}"),
            comment: Some("imported".into()),
        };
        let out = self.commit(Some(tar), None, new);
        if out.is_err()
            && let Err(e) = self.discard_failed(&[])
        {
            tracing::warn!(error = %e, "cleaning up after a failed import");
        }
        out
    }
}
