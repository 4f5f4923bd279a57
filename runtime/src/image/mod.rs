//! The image store: content-addressed OCI blobs, tags, and layers unpacked once for overlayfs.
//!
//! # Contract with the container executor and the engine
//!
//! ```no_run
//! # fn f() -> Result<(), berth_runtime::image::StoreError> {
//! use berth_runtime::image::ImageStore;
//! let store = ImageStore::open(std::path::Path::new("/var/lib/berth"))?; // uses <root>/images
//! let img = store.resolve("nginx:1.25")?;          // tag, name@sha256:…, id or id prefix
//! let cfg = img.runtime_config();                   // Env, Cmd, Entrypoint, WorkingDir, User …
//! let hc = img.healthcheck();                       // Docker's HEALTHCHECK extension
//! let lowers = img.layer_dirs();                    // BOTTOM to TOP; reverse for lowerdir=
//! # Ok(()) }
//! ```
//!
//! - A container that uses an image writes the image id (`sha256:…`) into
//!   `<root>/containers/<name>/image-id` ([`store::CONTAINER_IMAGE_ID_FILE`]); `image rm`
//!   refuses such an image without `-f`, and `image prune` keeps it.
//! - New images (builder steps, `container commit`): [`ImageStore::commit`] takes a layer tar
//!   (or none, for a metadata-only step), the parent id and a [`NewImage`];
//!   [`diff::write_upper_diff`] turns an overlayfs upper dir into that tar, and
//!   [`bootstrap::commit_rootfs_dir`] a whole rootfs dir. [`ImageStore::commit_dir`] takes a
//!   [`store::LayerDraft`] (a directory in the store the caller filled, as the builder's COPY
//!   does) and renames it into place as the layer: its tar is hashed for the diff id but not
//!   stored, and [`ImageStore::layer_tar`] makes it again, checked against that digest, when
//!   `image save` or flatten need it.
//!
//! # Layout under `<root>/images`
//!
//! `blobs/sha256/<hex>` (manifests, configs, layer archives, verified on write),
//! `layers/<chain-id hex>.json` (one record per unpacked layer), `l/<16 hex>/` (the unpacked
//! layer: an overlayfs lowerdir, short so that many fit in one mount option),
//! `imagedb/<config hex>.json` (one record per image), `tags.json` (name:tag -> image id, under
//! `tags.lock`), `gc.lock` (shared by writers, exclusive for rm/prune), `locks/` (per-blob
//! and per-layer locks: concurrent pulls of one blob download it once), `tmp/` (files being
//! written, renamed into place when complete).

pub mod analyze;
pub mod archive;
pub mod blobs;
pub mod bootstrap;
pub mod diff;
pub mod digest;
pub mod distribution;
pub mod lock;
pub mod login;
pub mod push;
pub mod reference;
pub mod registry;
pub mod squash;
pub mod store;
pub mod unpack;

pub use digest::Digest;
pub use reference::Reference;
pub use store::{Image, ImageStore, NewImage, StoreError};
