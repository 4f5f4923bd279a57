//! The image store: content-addressed OCI blobs, tags, and layers unpacked once for overlayfs.
//!
//! Layout under `<root>/images` (see [`store`]):
//! `blobs/sha256/<hex>` (manifests, configs, layer archives), `layers/<chain-id hex>.json`
//! (one record per unpacked layer), `l/<16 hex>/` (the unpacked layer, an overlayfs lowerdir),
//! `imagedb/<config hex>.json` (one record per image), `tags.json` (name:tag -> image id),
//! `tmp/` (files being written, renamed into place when complete).

pub mod digest;
pub mod unpack;

pub use digest::Digest;
pub mod blobs;
pub mod lock;
pub mod reference;
pub mod store;

pub use reference::Reference;
pub use store::{Image, ImageStore, NewImage, StoreError};
pub mod archive;
pub mod bootstrap;
pub mod diff;
pub mod registry;
