//! `image squash`: an image's layers (all of them, or those above a kept base) merged into one
//! layer, the image's whole config kept and the history saying what was squashed.
//!
//! The merge reads the store's unpacked layer directories (overlayfs format) bottom to top and
//! applies each onto one [`LayerDraft`], as overlayfs would show them stacked: a later file
//! replaces an earlier one, a whiteout deletes, an opaque directory hides what was below it. With
//! a kept base the result is itself an overlay layer over that base: a deletion of something the
//! base has becomes a whiteout, and a directory that replaced something (a file, a whiteout, an
//! opaque one) is marked opaque so the base's directory does not show through again.
//!
//! Every read goes through a directory descriptor of the layer and every write through one of
//! the draft ([`crate::inroot`]'s `*at` primitives, never following the last component): a
//! symlink an earlier layer planted (say `/evil -> /etc`) is replaced, never followed, when a
//! later layer puts a directory at its path, so nothing lands outside the draft.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::inroot::{
    self, Follow, InRoot, cname, create_file_at, fchmod, fchown, list_dir, lstat_at, mkdir_at,
    open_dir_at, open_file_at, readlink_at, remove_at, set_times_at, set_times_fd, symlink_at,
};

use super::diff::xattrs;
use super::store::{Image, ImageStore, LayerRef, NewImage, StoreError};
use super::unpack::OVERLAY_OPAQUE_XATTR;

/// Why a squash failed, with the layer or path at fault.
#[derive(Debug, thiserror::Error)]
pub enum SquashError {
    /// A store operation failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// `--from` names no layer of the image.
    #[error("{image} has no layer {layer:?} (give an index from 0 to {last}, or a diff id)")]
    NoSuchLayer {
        /// The image.
        image: String,
        /// What was asked for.
        layer: String,
        /// The highest index.
        last: usize,
    },
    /// Nothing above the kept layers.
    #[error("{image}: no layers above layer {keep} to squash")]
    Nothing {
        /// The image.
        image: String,
        /// Layers kept.
        keep: usize,
    },
    /// A layer directory could not be read or the draft written.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path (a layer directory, or a path inside the squashed layer).
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> SquashError + use<> {
    let path = path.to_owned();
    move |source| SquashError::Io { op, path, source }
}

/// What a squash produced.
#[derive(Debug, Clone)]
pub struct Squashed {
    /// The new image.
    pub image: Image,
    /// Layers merged into its top layer.
    pub merged: usize,
    /// Unpacked size of the original image.
    pub size_before: u64,
}

/// How many layers to keep under the squashed one for `--from LAYER`: `LAYER` is a 0-based
/// index (bottom first) or a diff id (or a prefix of its hex, 12 digits or more), and it and
/// the layers below it are kept.
pub fn keep_for(image: &Image, layer: &str) -> Result<usize, SquashError> {
    let n = image.record.layers.len();
    let found = if let Ok(i) = layer.parse::<usize>() {
        (i < n).then_some(i)
    } else {
        let hex = layer.strip_prefix("sha256:").unwrap_or(layer);
        (hex.len() >= 12)
            .then(|| {
                image
                    .record
                    .layers
                    .iter()
                    .position(|l| l.diff_id.hex().starts_with(hex))
            })
            .flatten()
    };
    found
        .map(|i| i + 1)
        .ok_or_else(|| SquashError::NoSuchLayer {
            image: image.id.short().to_owned(),
            layer: layer.to_owned(),
            last: n.saturating_sub(1),
        })
}

/// The number of bottom layers `image` shares with `base` (same chain ids): what a build added
/// over its FROM image is everything above them.
pub fn shared_layers(image: &Image, base: &Image) -> usize {
    image
        .record
        .layers
        .iter()
        .zip(&base.record.layers)
        .take_while(|(a, b)| a.chain_id == b.chain_id)
        .count()
}

/// Squashes the layers of `image` above its `keep` bottom ones into one. The config (runtime
/// config with Docker's extensions such as Healthcheck, and author, os, architecture) is kept
/// as it is; the history keeps the entries of the kept layers and replaces the rest with one
/// entry, `created_by`, whose comment lists what was squashed. The new image is not tagged.
pub fn squash(
    store: &ImageStore,
    image: &Image,
    keep: usize,
    created_by: &str,
) -> Result<Squashed, SquashError> {
    let layers = &image.record.layers;
    if keep >= layers.len() {
        return Err(SquashError::Nothing {
            image: image.id.short().to_owned(),
            keep,
        });
    }
    let dirs = image.layer_dirs();
    let draft = store.layer_draft()?;
    let merged = layers.len() - keep;
    {
        let root: OwnedFd = fs::File::open(draft.path())
            .map_err(io_err("open", draft.path()))?
            .into();
        let base = Base::open(&dirs[..keep])?;
        for dir in &dirs[keep..] {
            let src: OwnedFd = fs::File::open(dir).map_err(io_err("open", dir))?.into();
            let mut m = Merge {
                layer: dir,
                base: &base,
                links: HashMap::new(),
            };
            m.dir(src.as_fd(), root.as_fd(), &[])?;
        }
    }
    let (history, comment) = split_history(image, keep);
    let raw = &image.raw_config;
    let extensions = raw
        .get("config")
        .and_then(|c| c.as_object())
        .cloned()
        .unwrap_or_default();
    let top = raw.as_object().cloned().unwrap_or_default();
    let new = NewImage {
        config: image.runtime_config().cloned().unwrap_or_default(),
        healthcheck: image.healthcheck(),
        created_by: created_by.to_owned(),
        comment: Some(comment),
    };
    let kept: Vec<LayerRef> = layers[..keep].to_vec();
    let out = store.commit_dir_on(draft, &kept, history, new, &extensions, &top)?;
    tracing::info!(from = %image.id, to = %out.id, merged, keep, "image squashed");
    Ok(Squashed {
        image: out,
        merged,
        size_before: image.size(),
    })
}

/// The history entries of the kept layers (up to the one that made the `keep`-th layer), and
/// the comment of the squash entry listing what the other entries did.
fn split_history(image: &Image, keep: usize) -> (Vec<oci_spec::image::History>, String) {
    let all = image.config.history().clone().unwrap_or_default();
    let mut cut = 0;
    let mut seen = 0;
    if keep > 0 {
        for (i, h) in all.iter().enumerate() {
            if !h.empty_layer().unwrap_or(false) {
                seen += 1;
                if seen == keep {
                    cut = i + 1;
                    break;
                }
            }
        }
    }
    let squashed: Vec<String> = all[cut..]
        .iter()
        .filter_map(|h| h.created_by().clone())
        .collect();
    let n = image.record.layers.len() - keep;
    let comment = format!(
        "squashed {n} layer(s) of {}: {}",
        image.id.short(),
        squashed.join(" | ")
    );
    (all[..cut].to_vec(), comment)
}

/// The kept layers, asked whether they show a path (a deletion above them then needs a
/// whiteout in the squashed layer).
struct Base {
    layers: Vec<InRoot>,
}

impl Base {
    fn open(dirs: &[PathBuf]) -> Result<Base, SquashError> {
        let layers = dirs
            .iter()
            .rev()
            .map(|d| InRoot::open(d, Follow::Never).map_err(io_err("open", d)))
            .collect::<Result<_, _>>()?;
        Ok(Base { layers })
    }

    fn is_empty(&self) -> bool {
        self.layers.is_empty()
    }

    /// Whether the stacked base may show `path`: the topmost layer that has it decides (a
    /// whiteout there hides it). An error reading a layer counts as "may": a whiteout for
    /// something absent is harmless, a missing one would resurrect a file.
    fn shows(&self, path: &[u8]) -> bool {
        for l in &self.layers {
            match l.lstat(path) {
                Ok(Some(st)) => return !inroot::is_whiteout(&st),
                Ok(None) => {}
                Err(_) => return true,
            }
        }
        false
    }
}

/// One layer's merge onto the draft.
struct Merge<'a> {
    layer: &'a Path,
    base: &'a Base,
    /// Hard links of this layer: (dev, ino) -> the draft directory and name of the first copy.
    links: HashMap<(u64, u64), (OwnedFd, CString)>,
}

fn join(rel: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = rel.to_vec();
    p.push(b'/');
    p.extend_from_slice(name);
    p
}

fn shown(rel: &[u8]) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(rel).into_owned())
}

fn proc_path(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    CString::new(p).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Sets the xattrs of `name` under `dir` itself (never a link's target).
fn set_xattrs(dir: BorrowedFd<'_>, name: &CStr, attrs: &[(String, Vec<u8>)]) -> io::Result<()> {
    if attrs.is_empty() {
        return Ok(());
    }
    let p = proc_path(dir, name)?;
    for (k, v) in attrs {
        let k =
            CString::new(k.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: NUL-terminated strings and a buffer of the length passed.
        let r = unsafe { libc::lsetxattr(p.as_ptr(), k.as_ptr(), v.as_ptr().cast(), v.len(), 0) };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

fn mknod_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32, dev: u64) -> io::Result<()> {
    // SAFETY: a valid descriptor and name.
    if unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), mode, dev) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

impl Merge<'_> {
    /// Applies the layer directory `src` (at `rel` in the image) onto the draft's `dst`.
    fn dir(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        rel: &[u8],
    ) -> Result<(), SquashError> {
        let layer = self
            .layer
            .join(shown(rel.strip_prefix(b"/").unwrap_or(rel)));
        let mut names = list_dir(src).map_err(io_err("list", &layer))?;
        names.sort();
        for name in names {
            let path = join(rel, &name);
            let at = shown(&path);
            let cn = cname(&name).map_err(io_err("read", &at))?;
            let st = lstat_at(src, &cn)
                .map_err(io_err("read", &at))?
                .ok_or_else(|| io_err("read", &at)(io::ErrorKind::NotFound.into()))?;
            let there = lstat_at(dst, &cn).map_err(io_err("read the squashed", &at))?;
            if inroot::is_whiteout(&st) {
                if there.is_some() {
                    remove_at(dst, &cn).map_err(io_err("delete", &at))?;
                }
                if !self.base.is_empty() && self.base.shows(&path) {
                    mknod_at(dst, &cn, libc::S_IFCHR, 0)
                        .map_err(io_err("write a whiteout at", &at))?;
                }
                continue;
            }
            let attrs = xattrs(src, &cn).map_err(io_err("read xattrs of", &at))?;
            let opaque = attrs
                .iter()
                .any(|(k, v)| k == OVERLAY_OPAQUE_XATTR && v == b"y");
            let attrs: Vec<(String, Vec<u8>)> = attrs
                .into_iter()
                .filter(|(k, _)| !k.starts_with("trusted.overlay."))
                .collect();
            if inroot::is_dir(&st) {
                let keep_dir = matches!(&there, Some(t) if inroot::is_dir(t)) && !opaque;
                // What was at this path is gone: hide the base's directory there too.
                let hides = opaque || there.as_ref().is_some_and(|t| !inroot::is_dir(t));
                if there.is_some() && !keep_dir {
                    remove_at(dst, &cn).map_err(io_err("replace", &at))?;
                }
                let sub = mkdir_at(dst, &cn, 0o700).map_err(io_err("create", &at))?;
                if hides && !self.base.is_empty() {
                    set_xattrs(dst, &cn, &[(OVERLAY_OPAQUE_XATTR.into(), b"y".to_vec())])
                        .map_err(io_err("mark opaque", &at))?;
                }
                let from = open_dir_at(src, &cn).map_err(io_err("open", &at))?;
                self.dir(from.as_fd(), sub.as_fd(), &path)?;
                fchown(sub.as_fd(), st.st_uid, st.st_gid).map_err(io_err("chown", &at))?;
                fchmod(sub.as_fd(), st.st_mode).map_err(io_err("chmod", &at))?;
                set_xattrs(dst, &cn, &attrs).map_err(io_err("set xattrs of", &at))?;
                set_times_fd(sub.as_fd(), st.st_mtime).map_err(io_err("set times of", &at))?;
                continue;
            }
            if there.as_ref().is_some_and(inroot::is_dir) {
                remove_at(dst, &cn).map_err(io_err("replace", &at))?;
            }
            self.leaf(src, dst, &cn, &st, &at)?;
            set_xattrs(dst, &cn, &attrs).map_err(io_err("set xattrs of", &at))?;
        }
        Ok(())
    }

    /// Copies a non-directory: a file (a hard link of this layer stays one), a link, a device
    /// node or fifo; sockets are left out as the layer tars leave them.
    fn leaf(
        &mut self,
        src: BorrowedFd<'_>,
        dst: BorrowedFd<'_>,
        cn: &CStr,
        st: &libc::stat,
        at: &Path,
    ) -> Result<(), SquashError> {
        let unlink = || {
            // SAFETY: a valid descriptor and name; unlinkat never follows the name.
            let r = unsafe { libc::unlinkat(dst.as_raw_fd(), cn.as_ptr(), 0) };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::NotFound {
                    return Err(e);
                }
            }
            Ok(())
        };
        match st.st_mode & libc::S_IFMT {
            libc::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1
                    && let Some((d, n)) = self.links.get(&key)
                {
                    unlink().map_err(io_err("replace", at))?;
                    // SAFETY: valid descriptors and names; no link is followed (flags 0).
                    let r = unsafe {
                        libc::linkat(d.as_raw_fd(), n.as_ptr(), dst.as_raw_fd(), cn.as_ptr(), 0)
                    };
                    if r == 0 {
                        return Ok(());
                    }
                }
                let mut from = open_file_at(src, cn).map_err(io_err("read", at))?;
                let mut to = create_file_at(dst, cn).map_err(io_err("create", at))?;
                io::copy(&mut from, &mut to).map_err(io_err("copy", at))?;
                fchown(to.as_fd(), st.st_uid, st.st_gid).map_err(io_err("chown", at))?;
                fchmod(to.as_fd(), st.st_mode).map_err(io_err("chmod", at))?;
                set_times_fd(to.as_fd(), st.st_mtime).map_err(io_err("set times of", at))?;
                if st.st_nlink > 1
                    && let Ok(d) = dst.try_clone_to_owned()
                {
                    self.links.insert(key, (d, cn.to_owned()));
                }
                Ok(())
            }
            libc::S_IFLNK => {
                let t = readlink_at(src, cn).map_err(io_err("read link", at))?;
                symlink_at(dst, cn, &t).map_err(io_err("link", at))?;
                inroot::chown_at(dst, cn, st.st_uid, st.st_gid).map_err(io_err("chown", at))?;
                set_times_at(dst, cn, st.st_mtime).map_err(io_err("set times of", at))
            }
            libc::S_IFCHR | libc::S_IFBLK | libc::S_IFIFO => {
                unlink().map_err(io_err("replace", at))?;
                mknod_at(dst, cn, st.st_mode, st.st_rdev).map_err(io_err("create", at))?;
                inroot::chown_at(dst, cn, st.st_uid, st.st_gid).map_err(io_err("chown", at))?;
                set_times_at(dst, cn, st.st_mtime).map_err(io_err("set times of", at))
            }
            _ => Ok(()),
        }
    }
}
