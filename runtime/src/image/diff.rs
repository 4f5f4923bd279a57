//! An overlayfs upper directory as an OCI layer diff: the inverse of the unpacker's overlay
//! mode. `container commit` and the builder turn what a container changed into a layer with it:
//! whiteout devices (0/0 char) become `.wh.NAME`, opaque directories get `.wh..wh..opq`.
//!
//! Commit a stopped or paused container (as Docker pauses it): the walk reads paths in the
//! upper directory and a process changing it meanwhile would make the diff inconsistent.

use std::collections::HashMap;
use std::ffi::CString;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use super::unpack::{OPAQUE_MARKER, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX};

/// Failures while writing a diff, with the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading the upper directory or writing the tar failed.
    #[error("cannot {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The path.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DiffError + use<> {
    let path = path.to_owned();
    move |source| DiffError::Io { op, path, source }
}

fn xattrs(path: &Path) -> io::Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut names = vec![0u8; 4096];
    // SAFETY: buffers sized as passed.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let e = io::Error::last_os_error();
        return if e.raw_os_error() == Some(libc::ENOTSUP) {
            Ok(Vec::new())
        } else {
            Err(e)
        };
    }
    names.truncate(n as usize);
    let mut out = Vec::new();
    for name in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        let key = String::from_utf8_lossy(name).into_owned();
        let cn = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        let mut val = vec![0u8; 65536];
        let m =
            unsafe { libc::lgetxattr(c.as_ptr(), cn.as_ptr(), val.as_mut_ptr().cast(), val.len()) };
        if m < 0 {
            continue;
        }
        val.truncate(m as usize);
        out.push((key, val));
    }
    Ok(out)
}

fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(meta.mode() & 0o7777);
    h.set_uid(meta.uid() as u64);
    h.set_gid(meta.gid() as u64);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_size(0);
    h
}

/// Writes the changes recorded in overlayfs `upper` as an OCI layer tar to `w`.
pub fn write_upper_diff<W: Write>(upper: &Path, w: W) -> Result<W, DiffError> {
    let mut b = tar::Builder::new(w);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    walk(upper, upper, &mut b, &mut links)?;
    b.into_inner().map_err(io_err("finish tar for", upper))
}

fn walk<W: Write>(
    root: &Path,
    dir: &Path,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), String>,
) -> Result<(), DiffError> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .map_err(io_err("list", dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(io_err("list", dir))?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let rel = path
            .strip_prefix(root)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        let meta = fs::symlink_metadata(&path).map_err(io_err("stat", &path))?;
        let ft = meta.file_type();
        let werr = io_err("write tar entry for", &path);
        if ft.is_char_device() && meta.rdev() == 0 {
            let parent = Path::new(&rel)
                .parent()
                .map(|p| p.to_string_lossy().into_owned())
                .unwrap_or_default();
            let wh = if parent.is_empty() {
                format!("{WHITEOUT_PREFIX}{}", name.to_string_lossy())
            } else {
                format!("{parent}/{WHITEOUT_PREFIX}{}", name.to_string_lossy())
            };
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_mode(0o644);
            b.append_data(&mut h, wh, io::empty()).map_err(werr)?;
            continue;
        }
        let attrs: Vec<(String, Vec<u8>)> = xattrs(&path)
            .map_err(io_err("read xattrs of", &path))?
            .into_iter()
            .filter(|(k, _)| !k.starts_with("trusted.overlay."))
            .collect();
        if !attrs.is_empty() {
            let pax: Vec<(String, Vec<u8>)> = attrs
                .iter()
                .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.clone()))
                .collect();
            b.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(io_err("write xattrs of", &path))?;
        }
        if ft.is_dir() {
            let mut h = header(&meta, tar::EntryType::Directory);
            b.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
            let opaque = xattrs(&path)
                .map_err(io_err("read xattrs of", &path))?
                .iter()
                .any(|(k, v)| k == OVERLAY_OPAQUE_XATTR && v == b"y");
            if opaque {
                let mut h = header(&meta, tar::EntryType::Regular);
                h.set_mode(0o644);
                b.append_data(&mut h, format!("{rel}/{OPAQUE_MARKER}"), io::empty())
                    .map_err(io_err("write opaque marker for", &path))?;
            }
            walk(root, &path, b, links)?;
        } else if ft.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err("read link", &path))?;
            let mut h = header(&meta, tar::EntryType::Symlink);
            b.append_link(&mut h, &rel, target).map_err(werr)?;
        } else if ft.is_file() {
            if meta.nlink() > 1 {
                let key = (meta.dev(), meta.ino());
                if let Some(first) = links.get(&key) {
                    let mut h = header(&meta, tar::EntryType::Link);
                    b.append_link(&mut h, &rel, first).map_err(werr)?;
                    continue;
                }
                links.insert(key, rel.clone());
            }
            let f = fs::File::open(&path).map_err(io_err("open", &path))?;
            let mut h = header(&meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            b.append_data(&mut h, &rel, f).map_err(werr)?;
        } else {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else if ft.is_block_device() {
                tar::EntryType::Block
            } else if ft.is_fifo() {
                tar::EntryType::Fifo
            } else {
                tracing::debug!(path = %path.display(), "socket skipped in diff");
                continue;
            };
            let mut h = header(&meta, kind);
            let dev = meta.rdev();
            h.set_device_major(libc::major(dev))
                .map_err(io_err("write device of", &path))?;
            h.set_device_minor(libc::minor(dev))
                .map_err(io_err("write device of", &path))?;
            b.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
        }
    }
    Ok(())
}
