//! An overlayfs upper directory as an OCI layer diff: the inverse of the unpacker's overlay
//! mode. `container commit` and the builder turn what a container changed into a layer with it:
//! whiteout devices (0/0 char) become `.wh.NAME`, opaque directories get `.wh..wh..opq`.
//!
//! Commit a stopped or paused container (as Docker pauses it): a process changing the upper
//! directory meanwhile would make the diff inconsistent. It could not make the walk leave the
//! directory: every directory and file is opened from its parent's descriptor without
//! following a symlink ([`crate::inroot`]'s primitives), so a directory swapped for a link to a
//! host path is an error, never read.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use crate::inroot::{self, cname, list_dir, lstat_at, open_dir_at, open_file_at, readlink_at};

use super::digest::{Digest, HashingWriter};
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

/// The xattrs of `name` under `dir` (itself, never a link's target), read through
/// `/proc/self/fd/DIR/NAME` so no path outside the walk's descriptors is named.
pub(crate) fn xattrs(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut p = format!("/proc/self/fd/{}/", dir.as_raw_fd()).into_bytes();
    p.extend_from_slice(name.to_bytes());
    let c = CString::new(p).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
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
        // SAFETY: as above.
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

fn header(st: &libc::stat, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(0);
    h
}

/// Writes the changes recorded in overlayfs `upper` as an OCI layer tar to `w`.
pub fn write_upper_diff<W: Write>(upper: &Path, w: W) -> Result<W, DiffError> {
    Ok(write_upper_diff_counted(upper, w)?.0)
}

/// [`write_upper_diff`], also returning the bytes of regular-file content it wrote (hard
/// links counted once), the size the store records for a layer.
pub fn write_upper_diff_counted<W: Write>(upper: &Path, w: W) -> Result<(W, u64), DiffError> {
    let mut b = tar::Builder::new(w);
    let mut links: HashMap<(u64, u64), String> = HashMap::new();
    let mut file_bytes = 0;
    let root: OwnedFd = fs::File::open(upper).map_err(io_err("open", upper))?.into();
    walk(upper, root.as_fd(), "", &mut b, &mut links, &mut file_bytes)?;
    let w = b.into_inner().map_err(io_err("finish tar for", upper))?;
    Ok((w, file_bytes))
}

/// The identity of a layer directory's tar without writing it anywhere: what a commit of a
/// directory records instead of storing the tar (see [`summarize_dir`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiffSummary {
    /// sha256 of the uncompressed tar (the diff id, and the blob digest of a plain layer).
    pub diff_id: Digest,
    /// Length of the tar.
    pub tar_size: u64,
    /// Bytes of regular-file content (hard links counted once).
    pub file_bytes: u64,
}

/// Hashes the tar [`write_upper_diff`] makes of `upper` without keeping it. The same directory,
/// unchanged, gives the same tar again (sorted walk, no timestamps of its own), which is what
/// lets the store keep a built layer as its directory and make the tar only when asked.
pub fn summarize_dir(upper: &Path) -> Result<DiffSummary, DiffError> {
    // 1 MiB chunks to the hasher; the files themselves are read in the tar writer's chunks.
    let w = io::BufWriter::with_capacity(1 << 20, HashingWriter::new(io::sink()));
    let (w, file_bytes) = write_upper_diff_counted(upper, w)?;
    let h = w
        .into_inner()
        .map_err(|e| io_err("hash the layer tar of", upper)(e.into_error()))?;
    let (diff_id, tar_size, _) = h.finish();
    Ok(DiffSummary {
        diff_id,
        tar_size,
        file_bytes,
    })
}

/// The tar of a directory as a stream that a thread writes through a pipe, checked against
/// the digest it must have: a reader sees an error, never a wrong or short tar, when the
/// directory fails to read or no longer hashes to `expected` (for `image save` and `flatten`
/// of a layer the store keeps only as its directory).
pub struct DiffReader {
    reader: Option<io::BufReader<io::PipeReader>>,
    writer: Option<std::thread::JoinHandle<Result<(), DiffError>>>,
    hasher: Option<HashingWriter<io::Sink>>,
    expected: Option<Digest>,
    dir: PathBuf,
}

impl DiffReader {
    /// Starts writing the tar of `dir`; with `expected`, the end of the stream is an error
    /// unless everything read hashes to it.
    pub fn start(dir: &Path, expected: Option<Digest>) -> io::Result<DiffReader> {
        let (reader, w) = io::pipe()?;
        {
            use std::os::fd::AsRawFd;
            // A 1 MiB pipe (a hint capped by fs.pipe-max-size): fewer hand-overs between the
            // two threads than the default 64 KiB.
            // SAFETY: fcntl on a pipe fd we own.
            unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20) };
        }
        let upper = dir.to_path_buf();
        let writer = std::thread::Builder::new()
            .name("berth-layer-tar".into())
            .spawn(move || {
                let w = io::BufWriter::with_capacity(1 << 20, w);
                let mut w = write_upper_diff(&upper, w)?;
                w.flush().map_err(io_err("write layer tar for", &upper))
            })?;
        Ok(DiffReader {
            reader: Some(io::BufReader::with_capacity(1 << 20, reader)),
            writer: Some(writer),
            hasher: expected.as_ref().map(|_| HashingWriter::new(io::sink())),
            expected,
            dir: dir.to_path_buf(),
        })
    }

    /// Waits for the writer; its failure (or a panic) becomes an error naming the directory.
    fn join(&mut self) -> io::Result<()> {
        let Some(h) = self.writer.take() else {
            return Ok(());
        };
        match h.join() {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(io::Error::other(error_chain(&e))),
            Err(_) => Err(io::Error::other(format!(
                "the tar writer for {} panicked",
                self.dir.display()
            ))),
        }
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

impl Read for DiffReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(r) = self.reader.as_mut() else {
            return Ok(0);
        };
        let n = r.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.write_all(&buf[..n])?;
        }
        if n == 0 && !buf.is_empty() {
            self.join()?;
            if let (Some(h), Some(expected)) = (self.hasher.take(), self.expected.as_ref()) {
                let (actual, size, _) = h.finish();
                if &actual != expected {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "layer directory {} now makes a tar of {size} bytes hashing to {actual}, not {expected}: it was changed",
                            self.dir.display()
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

impl Drop for DiffReader {
    fn drop(&mut self) {
        // Close the read end first so a writer blocked on a full pipe fails and ends.
        self.reader = None;
        let _ = self.join();
    }
}

fn walk<W: Write>(
    upper: &Path,
    dir: BorrowedFd<'_>,
    dir_rel: &str,
    b: &mut tar::Builder<W>,
    links: &mut HashMap<(u64, u64), String>,
    file_bytes: &mut u64,
) -> Result<(), DiffError> {
    let here = upper.join(dir_rel);
    let mut names = list_dir(dir).map_err(io_err("list", &here))?;
    names.sort();
    for name in names {
        let lossy = String::from_utf8_lossy(&name);
        let rel = if dir_rel.is_empty() {
            lossy.into_owned()
        } else {
            format!("{dir_rel}/{lossy}")
        };
        let path = upper.join(&rel);
        let cn = cname(&name).map_err(io_err("stat", &path))?;
        let Some(st) = lstat_at(dir, &cn).map_err(io_err("stat", &path))? else {
            return Err(io_err("stat", &path)(io::ErrorKind::NotFound.into()));
        };
        let fmt = st.st_mode & libc::S_IFMT;
        let werr = io_err("write tar entry for", &path);
        if inroot::is_whiteout(&st) {
            let wh = match rel.rsplit_once('/') {
                Some((parent, n)) => format!("{parent}/{WHITEOUT_PREFIX}{n}"),
                None => format!("{WHITEOUT_PREFIX}{rel}"),
            };
            let mut h = header(&st, tar::EntryType::Regular);
            h.set_mode(0o644);
            b.append_data(&mut h, wh, io::empty()).map_err(werr)?;
            continue;
        }
        let all = xattrs(dir, &cn).map_err(io_err("read xattrs of", &path))?;
        let opaque = all
            .iter()
            .any(|(k, v)| k == OVERLAY_OPAQUE_XATTR && v == b"y");
        let attrs: Vec<(String, Vec<u8>)> = all
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
        match fmt {
            libc::S_IFDIR => {
                let sub = open_dir_at(dir, &cn).map_err(io_err("open", &path))?;
                let mut h = header(&st, tar::EntryType::Directory);
                b.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
                if opaque {
                    let mut h = header(&st, tar::EntryType::Regular);
                    h.set_mode(0o644);
                    b.append_data(&mut h, format!("{rel}/{OPAQUE_MARKER}"), io::empty())
                        .map_err(io_err("write opaque marker for", &path))?;
                }
                walk(upper, sub.as_fd(), &rel, b, links, file_bytes)?;
            }
            libc::S_IFLNK => {
                let target = readlink_at(dir, &cn).map_err(io_err("read link", &path))?;
                let target = Path::new(
                    <std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(&target),
                );
                let mut h = header(&st, tar::EntryType::Symlink);
                b.append_link(&mut h, &rel, target).map_err(werr)?;
            }
            libc::S_IFREG => {
                if st.st_nlink > 1 {
                    let key = (st.st_dev, st.st_ino);
                    if let Some(first) = links.get(&key) {
                        let mut h = header(&st, tar::EntryType::Link);
                        b.append_link(&mut h, &rel, first).map_err(werr)?;
                        continue;
                    }
                    links.insert(key, rel.clone());
                }
                let f = open_file_at(dir, &cn).map_err(io_err("open", &path))?;
                let len = st.st_size.max(0) as u64;
                let mut h = header(&st, tar::EntryType::Regular);
                h.set_size(len);
                // Read in large chunks (the tar writer copies through an 8 KiB buffer).
                let cap = (len as usize).clamp(8 << 10, 1 << 20);
                let mut data = io::BufReader::with_capacity(cap, f).take(len);
                b.append_data(&mut h, &rel, &mut data).map_err(werr)?;
                if data.limit() != 0 {
                    return Err(io_err("read", &path)(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the file shrank while it was written to the layer",
                    )));
                }
                *file_bytes += len;
            }
            _ => {
                let kind = match fmt {
                    libc::S_IFCHR => tar::EntryType::Char,
                    libc::S_IFBLK => tar::EntryType::Block,
                    libc::S_IFIFO => tar::EntryType::Fifo,
                    _ => {
                        tracing::debug!(path = %path.display(), "socket skipped in diff");
                        continue;
                    }
                };
                let mut h = header(&st, kind);
                let dev = st.st_rdev;
                h.set_device_major(libc::major(dev))
                    .map_err(io_err("write device of", &path))?;
                h.set_device_minor(libc::minor(dev))
                    .map_err(io_err("write device of", &path))?;
                b.append_data(&mut h, &rel, io::empty()).map_err(werr)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar: &[u8]) -> Vec<String> {
        tar::Archive::new(tar)
            .entries()
            .expect("entries")
            .map(|e| {
                e.expect("entry")
                    .path()
                    .expect("path")
                    .display()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn a_failing_or_changed_directory_is_a_read_error_never_a_wrong_tar() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = DiffReader::start(&dir.path().join("missing"), None).expect("start");
        let mut buf = Vec::new();
        let err = s.read_to_end(&mut buf).expect_err("the writer failed");
        assert!(err.to_string().contains("missing"), "{err}");

        fs::create_dir(dir.path().join("d")).expect("mkdir");
        fs::write(dir.path().join("d/f"), "x").expect("write");
        let sum = summarize_dir(dir.path()).expect("summary");
        assert_eq!(sum.file_bytes, 1);
        let mut s = DiffReader::start(dir.path(), Some(sum.diff_id.clone())).expect("start");
        buf.clear();
        s.read_to_end(&mut buf).expect("tar");
        assert_eq!(names(&buf), ["d", "d/f"]);
        assert_eq!(buf.len() as u64, sum.tar_size);
        assert_eq!(Digest::of_bytes(&buf), sum.diff_id);
        // Same directory, same tar (what lets the store keep only the directory).
        assert_eq!(summarize_dir(dir.path()).expect("again"), sum);

        fs::write(dir.path().join("d/f"), "y").expect("write");
        let mut s = DiffReader::start(dir.path(), Some(sum.diff_id)).expect("start");
        buf.clear();
        let err = s.read_to_end(&mut buf).expect_err("changed");
        assert!(err.to_string().contains("was changed"), "{err}");
    }
}
