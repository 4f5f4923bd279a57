//! Which image a container runs, recorded in its directory: the id (so `image rm` and the
//! store's collection know the image is in use) and the reference the user gave (shown by
//! `ps`). Written only here, so callers never reach into a container's directory.

use std::fs;

use super::{Record, Runtime, RuntimeError, io_err};
use crate::image::store::CONTAINER_IMAGE_ID_FILE;

/// File in a container's directory holding the image reference as the user gave it.
pub const IMAGE_REF_FILE: &str = "image-ref";

impl Runtime {
    /// Records that `rec` runs image `id`, asked for as `reference` (empty: not recorded).
    pub fn record_image(
        &self,
        rec: &Record,
        id: &str,
        reference: &str,
    ) -> Result<(), RuntimeError> {
        let p = rec.dir.join(CONTAINER_IMAGE_ID_FILE);
        fs::write(&p, id).map_err(io_err("writing the image id", &p))?;
        if !reference.is_empty() {
            let p = rec.dir.join(IMAGE_REF_FILE);
            fs::write(&p, reference).map_err(io_err("writing the image reference", &p))?;
        }
        Ok(())
    }

    /// The image reference `rec` was created from, when recorded.
    pub fn image_reference(&self, rec: &Record) -> Option<String> {
        fs::read_to_string(rec.dir.join(IMAGE_REF_FILE)).ok()
    }
}
