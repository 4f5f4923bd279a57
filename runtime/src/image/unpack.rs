//! Safe layer extraction: a tar stream (plain, gzip or zstd) into one directory, never outside it.
//!
//! Layer archives come from registries and files we do not control, so every path is resolved
//! component by component from an open directory descriptor with `O_NOFOLLOW`: a `..`
//! component is refused, an absolute path is taken relative to the layer root, and an entry whose
//! parent is a symlink (planted by an earlier entry or not) is refused, as is a hardlink whose
//! target is not a file inside the layer. Nothing follows a symlink, so nothing can land outside.
//!
//! Two whiteout modes: [`Whiteouts::Overlay`] keeps each layer in its own directory and turns
//! OCI whiteouts into overlayfs ones (a 0/0 character device, `trusted.overlay.opaque=y`), ready
//! to be a lowerdir; [`Whiteouts::Apply`] applies layers in order onto one directory (deletes
//! what they whiteout), for flattening an image into a plain rootfs.

use std::collections::{HashMap, HashSet};
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use tar::EntryType;

use super::digest::{Digest, HashingReader};

/// The OCI whiteout prefix: `.wh.NAME` deletes NAME from the layers below.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// The OCI opaque marker: the directory holding it hides everything below it.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
/// The overlayfs xattr that marks a directory opaque.
pub const OVERLAY_OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// What went wrong while unpacking, with the entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    /// The destination directory could not be opened.
    #[error("cannot open layer directory {path}")]
    OpenRoot {
        /// The layer directory.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The stream is not a readable tar archive (or its compression is corrupt).
    #[error("cannot read layer archive")]
    Read(#[source] io::Error),
    /// An entry's path contains `..`: it could climb out of the layer.
    #[error("refused tar entry {path:?}: it contains a `..` component")]
    ParentComponent {
        /// The entry's path as written in the archive.
        path: String,
    },
    /// A path component that must be a directory is a symlink (or another non-directory):
    /// following it could write outside the layer.
    #[error("refused tar entry {path:?}: its parent {parent:?} is a symlink or not a directory")]
    ThroughSymlink {
        /// The entry's path as written in the archive.
        path: String,
        /// The component that is not a real directory.
        parent: String,
    },
    /// A hardlink points to something that is not an existing file inside the layer.
    #[error("refused hardlink {path:?} -> {target:?}: the target is not a file in this layer")]
    BadHardlink {
        /// The entry's path.
        path: String,
        /// The link target as written in the archive.
        target: String,
        #[source]
        source: io::Error,
    },
    /// A name contains a NUL byte or a whiteout names nothing.
    #[error("refused tar entry {path:?}: invalid name")]
    BadName {
        /// The entry's path.
        path: String,
    },
    /// An entry type we do not extract (GNU sparse without data, volume labels…).
    #[error("unsupported tar entry type {kind:?} for {path:?}")]
    Unsupported {
        /// The entry's path.
        path: String,
        /// The tar type byte.
        kind: u8,
    },
    /// A system call on an entry failed.
    #[error("cannot {op} {path:?}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The entry's path.
        path: String,
        #[source]
        source: io::Error,
    },
}

/// How OCI whiteouts are written, see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// Each layer in its own directory, whiteouts as overlayfs expects them.
    Overlay,
    /// Layers applied in order onto one directory; whiteouts delete.
    Apply,
}

/// What an unpack produced: the diff id must match the image config's `rootfs.diff_ids`.
#[derive(Debug, Clone)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Size of the uncompressed tar stream.
    pub tar_size: u64,
    /// Number of entries extracted.
    pub entries: u64,
    /// Bytes of regular-file content written.
    pub file_bytes: u64,
}

/// The compression of a layer stream, detected from its first bytes (media types lie).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip (`1f 8b`).
    Gzip,
    /// zstd (`28 b5 2f fd`).
    Zstd,
}

impl Compression {
    /// Detects the compression from the first bytes of a stream.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }
}

/// Wraps `reader` in the decompressor its first bytes call for.
pub fn decompress<'a, R: Read + 'a>(reader: R) -> io::Result<Box<dyn Read + 'a>> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let kind = Compression::detect(buf.fill_buf()?);
    Ok(match kind {
        Compression::None => Box::new(buf),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(buf)?),
    })
}

/// Unpacks a (possibly compressed) layer tar into `dest`, which must exist. A compressed
/// stream is decompressed on a second thread while this one writes files, as `tar -xz` pipes
/// through gzip.
pub fn unpack_layer<R: Read + Send>(
    reader: R,
    dest: &Path,
    mode: Whiteouts,
) -> Result<UnpackStats, UnpackError> {
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let kind = Compression::detect(buf.fill_buf().map_err(UnpackError::Read)?);
    if kind == Compression::None {
        return unpack_plain(buf, dest, mode);
    }
    std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<io::Result<Vec<u8>>>(16);
        s.spawn(move || {
            let mut dec: Box<dyn Read> = match kind {
                Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buf)),
                _ => match zstd::stream::read::Decoder::with_buffer(buf) {
                    Ok(d) => Box::new(d),
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                },
            };
            loop {
                let mut chunk = vec![0u8; 256 * 1024];
                let mut filled = 0;
                // Fill the chunk (decoders return small reads) to keep channel traffic low.
                let res = loop {
                    match dec.read(&mut chunk[filled..]) {
                        Ok(0) => break Ok(()),
                        Ok(n) => {
                            filled += n;
                            if filled == chunk.len() {
                                break Ok(());
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => break Err(e),
                    }
                };
                if let Err(e) = res {
                    let _ = tx.send(Err(e));
                    return;
                }
                if filled == 0 {
                    return;
                }
                chunk.truncate(filled);
                if tx.send(Ok(chunk)).is_err() {
                    return; // the unpacker stopped (error): stop decompressing
                }
            }
        });
        unpack_plain(
            ChannelReader {
                rx,
                cur: Vec::new(),
                pos: 0,
            },
            dest,
            mode,
        )
    })
}

/// Reads the chunks a decompression thread sends.
struct ChannelReader {
    rx: std::sync::mpsc::Receiver<io::Result<Vec<u8>>>,
    cur: Vec<u8>,
    pos: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.cur = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

fn unpack_plain<R: Read>(
    plain: R,
    dest: &Path,
    mode: Whiteouts,
) -> Result<UnpackStats, UnpackError> {
    let hashed = HashingReader::new(plain);
    let mut archive = tar::Archive::new(hashed);
    let mut u = Unpacker::new(dest, mode)?;
    let entries = archive.entries().map_err(UnpackError::Read)?;
    for entry in entries {
        let mut entry = entry.map_err(UnpackError::Read)?;
        u.entry(&mut entry)?;
    }
    u.finish()?;
    let (diff_id, tar_size) = archive.into_inner().finish().map_err(UnpackError::Read)?;
    tracing::debug!(dest = %dest.display(), %diff_id, entries = u.entries, bytes = u.file_bytes, "layer unpacked");
    Ok(UnpackStats {
        diff_id,
        tar_size,
        entries: u.entries,
        file_bytes: u.file_bytes,
    })
}

/// Splits an archive path into safe components: leading `/` and `.` dropped, `..` refused.
pub fn clean_path(raw: &[u8]) -> Result<Vec<Vec<u8>>, UnpackError> {
    let mut out = Vec::new();
    for comp in raw.split(|&b| b == b'/') {
        match comp {
            b"" | b"." => {}
            b".." => {
                return Err(UnpackError::ParentComponent { path: lossy(raw) });
            }
            c if c.contains(&0) => return Err(UnpackError::BadName { path: lossy(raw) }),
            c => out.push(c.to_vec()),
        }
    }
    Ok(out)
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn cstr(b: &[u8], path: &[u8]) -> Result<CString, UnpackError> {
    CString::new(b).map_err(|_| UnpackError::BadName { path: lossy(path) })
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Opens an existing directory `name` under `dir` without following a symlink.
fn open_dir_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<OwnedFd> {
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: openat returned a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn lstat_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<Option<libc::stat>> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        Ok(Some(st))
    } else {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ENOENT) {
            Ok(None)
        } else {
            Err(e)
        }
    }
}

fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Removes `name` under `dir` whatever it is, a directory tree included, without following
/// symlinks.
fn remove_at(dir: BorrowedFd<'_>, name: &CString) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let sub = open_dir_at(dir, name)?;
        clear_dir(sub.as_fd(), |_| false)?;
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })?;
    } else {
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
    }
    Ok(())
}

/// Removes every child of `dir` for which `keep` is false.
fn clear_dir(dir: BorrowedFd<'_>, keep: impl Fn(&[u8]) -> bool) -> io::Result<()> {
    for name in list_dir(dir)? {
        if keep(&name) {
            continue;
        }
        let c = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))?;
        remove_at(dir, &c)?;
    }
    Ok(())
}

/// The names in a directory, read through a duplicate of its descriptor.
fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    let dup = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    let dp = unsafe { libc::fdopendir(dup) };
    if dp.is_null() {
        let e = io::Error::last_os_error();
        unsafe { libc::close(dup) };
        return Err(e);
    }
    unsafe { libc::rewinddir(dp) };
    let mut names = Vec::new();
    loop {
        let ent = unsafe { libc::readdir64(dp) };
        if ent.is_null() {
            break;
        }
        let name = unsafe { std::ffi::CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    unsafe { libc::closedir(dp) };
    Ok(names)
}

fn set_times_at(dir: BorrowedFd<'_>, name: &CString, mtime: i64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })?;
    Ok(())
}

fn set_times_fd(fd: BorrowedFd<'_>, mtime: i64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), times.as_ptr()) })?;
    Ok(())
}

fn fsetxattr(fd: BorrowedFd<'_>, name: &CString, value: &[u8]) -> io::Result<()> {
    cvt(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })?;
    Ok(())
}

/// The metadata of one entry, PAX overrides applied.
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
    xattrs: Vec<(CString, Vec<u8>)>,
}

struct Unpacker {
    root: Rc<OwnedFd>,
    mode: Whiteouts,
    /// Open directories by their cleaned path, so consecutive entries in one directory cost one
    /// `openat`. Cleared whenever a directory is removed.
    dirs: HashMap<Vec<Vec<u8>>, Rc<OwnedFd>>,
    /// Directory mtimes are set last: creating children changes them.
    dir_times: Vec<(Vec<Vec<u8>>, i64)>,
    /// Paths this layer created (Apply mode: an opaque marker keeps them).
    created: HashSet<Vec<Vec<u8>>>,
    entries: u64,
    file_bytes: u64,
}

const DIR_CACHE_MAX: usize = 256;

impl Unpacker {
    fn new(dest: &Path, mode: Whiteouts) -> Result<Self, UnpackError> {
        let root = File::open(dest)
            .and_then(|f| {
                if f.metadata()?.is_dir() {
                    Ok(OwnedFd::from(f))
                } else {
                    Err(io::Error::from_raw_os_error(libc::ENOTDIR))
                }
            })
            .map_err(|source| UnpackError::OpenRoot {
                path: dest.to_owned(),
                source,
            })?;
        Ok(Unpacker {
            root: Rc::new(root),
            mode,
            dirs: HashMap::new(),
            dir_times: Vec::new(),
            created: HashSet::new(),
            entries: 0,
            file_bytes: 0,
        })
    }

    /// Opens (creating when `create`) the directory at `comps`, never through a symlink.
    /// The descriptor is shared with the cache, so it stays valid when the cache is cleared.
    fn dir(
        &mut self,
        comps: &[Vec<u8>],
        raw: &[u8],
        create: bool,
    ) -> Result<Rc<OwnedFd>, UnpackError> {
        if comps.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some(fd) = self.dirs.get(comps) {
            return Ok(fd.clone());
        }
        if self.dirs.len() >= DIR_CACHE_MAX {
            self.dirs.clear();
        }
        // Start from the deepest cached ancestor.
        let mut start = 0;
        let mut cur = self.root.clone();
        for i in (1..comps.len()).rev() {
            if let Some(fd) = self.dirs.get(&comps[..i]) {
                start = i;
                cur = fd.clone();
                break;
            }
        }
        for i in start..comps.len() {
            let name = cstr(&comps[i], raw)?;
            let parent = cur.as_fd();
            let fd = match open_dir_at(parent, &name) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    cvt(unsafe { libc::mkdirat(parent.as_raw_fd(), name.as_ptr(), 0o755) })
                        .map_err(|source| UnpackError::Io {
                            op: "create directory",
                            path: lossy(raw),
                            source,
                        })?;
                    open_dir_at(parent, &name).map_err(|source| UnpackError::Io {
                        op: "open directory",
                        path: lossy(raw),
                        source,
                    })?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(UnpackError::ThroughSymlink {
                        path: lossy(raw),
                        parent: lossy(&comps[..=i].join(&b'/')),
                    });
                }
                Err(source) => {
                    return Err(UnpackError::Io {
                        op: "open directory",
                        path: lossy(raw),
                        source,
                    });
                }
            };
            let fd = Rc::new(fd);
            self.dirs.insert(comps[..=i].to_vec(), fd.clone());
            cur = fd;
        }
        Ok(cur)
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw = entry.path_bytes().into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            EntryType::XGlobalHeader
                | EntryType::XHeader
                | EntryType::GNULongName
                | EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let comps = clean_path(&raw)?;
        let meta = self.meta(entry, &raw)?;
        self.entries += 1;

        let Some((name, parent)) = comps.split_last() else {
            // The archive's root directory itself: take its metadata.
            if kind == EntryType::Directory {
                let root = self.root.clone();
                apply_fd_meta(root.as_fd(), &meta, &raw)?;
                self.dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        };

        // Whiteouts.
        if name.as_slice() == OPAQUE_MARKER.as_bytes() {
            return self.opaque(parent, &raw);
        }
        if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if target.is_empty() || target == b"." || target == b".." {
                return Err(UnpackError::BadName { path: lossy(&raw) });
            }
            return self.whiteout(parent, target, &meta, &raw);
        }

        let cname = cstr(name, &raw)?;
        let mode = self.mode;
        if mode == Whiteouts::Apply {
            self.created.insert(comps.clone());
        }
        let io_err = |op: &'static str| {
            let path = lossy(&raw);
            move |source| UnpackError::Io { op, path, source }
        };

        // Directories are merged with an existing one; anything else replaces what is there.
        let existing = {
            let pfd = self.dir(parent, &raw, true)?;
            lstat_at(pfd.as_fd(), &cname).map_err(io_err("inspect"))?
        };
        if kind == EntryType::Directory {
            if let Some(st) = existing
                && !is_dir(&st)
            {
                let pfd = self.dir(parent, &raw, true)?;
                remove_at(pfd.as_fd(), &cname).map_err(io_err("replace"))?;
            }
            if existing.is_none() || existing.as_ref().is_some_and(|st| !is_dir(st)) {
                let pfd = self.dir(parent, &raw, true)?;
                cvt(unsafe { libc::mkdirat(pfd.as_raw_fd(), cname.as_ptr(), 0o700) })
                    .map_err(io_err("create directory"))?;
            }
            let fd = self.dir(&comps, &raw, false)?;
            apply_fd_meta(fd.as_fd(), &meta, &raw)?;
            self.dir_times.push((comps, meta.mtime));
            return Ok(());
        }
        if let Some(st) = existing {
            let pfd = self.dir(parent, &raw, true)?;
            remove_at(pfd.as_fd(), &cname).map_err(io_err("replace"))?;
            if is_dir(&st) {
                self.dirs.clear();
            }
        }
        let pfd = self.dir(parent, &raw, true)?;
        let pfd = pfd.as_fd();
        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                let fd = cvt(unsafe {
                    libc::openat(
                        pfd.as_raw_fd(),
                        cname.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600 as libc::c_uint,
                    )
                })
                .map_err(io_err("create file"))?;
                // SAFETY: a fresh descriptor from openat.
                let mut file = unsafe { File::from_raw_fd(fd) };
                let n = io::copy(entry, &mut file).map_err(io_err("write file"))?;
                self.file_bytes += n;
                apply_fd_meta(file.as_fd(), &meta, &raw)?;
                set_times_fd(file.as_fd(), meta.mtime).map_err(io_err("set times on"))?;
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let ctarget = cstr(&target, &raw)?;
                cvt(unsafe { libc::symlinkat(ctarget.as_ptr(), pfd.as_raw_fd(), cname.as_ptr()) })
                    .map_err(io_err("create symlink"))?;
                cvt(unsafe {
                    libc::fchownat(
                        pfd.as_raw_fd(),
                        cname.as_ptr(),
                        meta.uid,
                        meta.gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .map_err(io_err("chown"))?;
                set_times_at(pfd.as_fd(), &cname, meta.mtime).map_err(io_err("set times on"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                self.hardlink(parent, &cname, &target, &raw)?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                let ftype = match kind {
                    EntryType::Char => libc::S_IFCHR,
                    EntryType::Block => libc::S_IFBLK,
                    _ => libc::S_IFIFO,
                };
                let major = entry.header().device_major().ok().flatten().unwrap_or(0);
                let minor = entry.header().device_minor().ok().flatten().unwrap_or(0);
                let dev = libc::makedev(major, minor);
                cvt(unsafe {
                    libc::mknodat(
                        pfd.as_raw_fd(),
                        cname.as_ptr(),
                        ftype | (meta.mode & 0o7777),
                        dev,
                    )
                })
                .map_err(io_err("create device node"))?;
                cvt(unsafe {
                    libc::fchownat(
                        pfd.as_raw_fd(),
                        cname.as_ptr(),
                        meta.uid,
                        meta.gid,
                        libc::AT_SYMLINK_NOFOLLOW,
                    )
                })
                .map_err(io_err("chown"))?;
                cvt(unsafe {
                    libc::fchmodat(pfd.as_raw_fd(), cname.as_ptr(), meta.mode & 0o7777, 0)
                })
                .map_err(io_err("chmod"))?;
                set_times_at(pfd.as_fd(), &cname, meta.mtime).map_err(io_err("set times on"))?;
            }
            other => {
                return Err(UnpackError::Unsupported {
                    path: lossy(&raw),
                    kind: other.as_byte(),
                });
            }
        }
        Ok(())
    }

    fn hardlink(
        &mut self,
        parent: &[Vec<u8>],
        cname: &CString,
        target: &[u8],
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let bad = |source: io::Error| UnpackError::BadHardlink {
            path: lossy(raw),
            target: lossy(target),
            source,
        };
        let tcomps =
            clean_path(target).map_err(|_| bad(io::Error::from_raw_os_error(libc::EXDEV)))?;
        let Some((tname, tparent)) = tcomps.split_last() else {
            return Err(bad(io::Error::from_raw_os_error(libc::EISDIR)));
        };
        let ctname = cstr(tname, raw)?;
        // Resolve the target's directory without following symlinks (and without creating it).
        let tfd = match self.dir(tparent, target, false) {
            Ok(fd) => fd,
            Err(UnpackError::ThroughSymlink { .. }) => {
                return Err(bad(io::Error::from_raw_os_error(libc::ELOOP)));
            }
            Err(UnpackError::Io { source, .. }) => return Err(bad(source)),
            Err(e) => return Err(e),
        };
        match lstat_at(tfd.as_fd(), &ctname).map_err(bad)? {
            Some(st) if !is_dir(&st) => {}
            Some(_) => return Err(bad(io::Error::from_raw_os_error(libc::EISDIR))),
            None => return Err(bad(io::Error::from_raw_os_error(libc::ENOENT))),
        }
        let pfd = self.dir(parent, raw, true)?;
        // No AT_SYMLINK_FOLLOW: a link to a symlink links the symlink itself, as tar does.
        cvt(unsafe {
            libc::linkat(
                tfd.as_raw_fd(),
                ctname.as_ptr(),
                pfd.as_raw_fd(),
                cname.as_ptr(),
                0,
            )
        })
        .map_err(bad)?;
        Ok(())
    }

    fn opaque(&mut self, parent: &[Vec<u8>], raw: &[u8]) -> Result<(), UnpackError> {
        let mode = self.mode;
        let created: HashSet<Vec<u8>> = if mode == Whiteouts::Apply {
            self.created
                .iter()
                .filter(|p| p.len() == parent.len() + 1 && p.starts_with(parent))
                .filter_map(|p| p.last().cloned())
                .collect()
        } else {
            HashSet::new()
        };
        let fd = self.dir(parent, raw, true)?;
        let res = match mode {
            Whiteouts::Overlay => {
                let name = CString::new(OVERLAY_OPAQUE_XATTR)
                    .map_err(|_| UnpackError::BadName { path: lossy(raw) })?;
                fsetxattr(fd.as_fd(), &name, b"y")
            }
            Whiteouts::Apply => clear_dir(fd.as_fd(), |n| created.contains(n)),
        };
        if mode == Whiteouts::Apply {
            self.dirs.retain(|k, _| k.len() <= parent.len());
        }
        res.map_err(|source| UnpackError::Io {
            op: "mark opaque",
            path: lossy(raw),
            source,
        })
    }

    fn whiteout(
        &mut self,
        parent: &[Vec<u8>],
        target: &[u8],
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let ctarget = cstr(target, raw)?;
        let mode = self.mode;
        let pfd = self.dir(parent, raw, true)?;
        let pfd = pfd.as_fd();
        let io_err = |op: &'static str| {
            let path = lossy(raw);
            move |source| UnpackError::Io { op, path, source }
        };
        remove_at(pfd, &ctarget).map_err(io_err("remove whited-out"))?;
        if mode == Whiteouts::Overlay {
            cvt(unsafe {
                libc::mknodat(
                    pfd.as_raw_fd(),
                    ctarget.as_ptr(),
                    libc::S_IFCHR,
                    libc::makedev(0, 0),
                )
            })
            .map_err(io_err("create whiteout"))?;
            cvt(unsafe {
                libc::fchownat(
                    pfd.as_raw_fd(),
                    ctarget.as_ptr(),
                    meta.uid,
                    meta.gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                )
            })
            .map_err(io_err("chown"))?;
        }
        self.dirs.clear();
        Ok(())
    }

    fn meta<R: Read>(
        &self,
        entry: &mut tar::Entry<'_, R>,
        raw: &[u8],
    ) -> Result<Meta, UnpackError> {
        let h = entry.header();
        // Blank numeric fields read as 0, as Go's archive/tar (which wrote most layers) does.
        let mut meta = Meta {
            mode: h.mode().unwrap_or(0o644),
            uid: h.uid().unwrap_or(0) as u32,
            gid: h.gid().unwrap_or(0) as u32,
            mtime: h.mtime().unwrap_or(0) as i64,
            xattrs: Vec::new(),
        };
        if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? {
            for ext in exts.flatten() {
                let key = ext.key_bytes();
                let val = ext.value_bytes();
                let num = || {
                    std::str::from_utf8(val)
                        .ok()
                        .and_then(|s| s.split('.').next()?.parse::<i64>().ok())
                };
                match key {
                    b"uid" => meta.uid = num().unwrap_or(meta.uid as i64) as u32,
                    b"gid" => meta.gid = num().unwrap_or(meta.gid as i64) as u32,
                    b"mtime" => meta.mtime = num().unwrap_or(meta.mtime),
                    k if k.starts_with(b"SCHILY.xattr.") => {
                        let name = &k[b"SCHILY.xattr.".len()..];
                        // overlayfs trusts its own xattrs (redirects, opaque, metacopy): an
                        // archive must not forge them.
                        if name.starts_with(b"trusted.overlay.") {
                            tracing::warn!(path = %lossy(raw), xattr = %lossy(name), "dropping overlay xattr from archive");
                            continue;
                        }
                        meta.xattrs.push((cstr(name, raw)?, val.to_vec()));
                    }
                    _ => {}
                }
            }
        }
        Ok(meta)
    }

    fn finish(&mut self) -> Result<(), UnpackError> {
        let times = std::mem::take(&mut self.dir_times);
        for (comps, mtime) in times.into_iter().rev() {
            let raw = comps.join(&b'/');
            // A directory removed or replaced later in the stream is simply skipped.
            let Ok(fd) = self.dir(&comps, &raw, false) else {
                continue;
            };
            set_times_fd(fd.as_fd(), mtime).map_err(|source| UnpackError::Io {
                op: "set times on",
                path: lossy(&raw),
                source,
            })?;
        }
        Ok(())
    }
}

/// Owner, mode (after the owner: chown clears set-id bits) and xattrs on an open file or dir.
fn apply_fd_meta(fd: BorrowedFd<'_>, meta: &Meta, raw: &[u8]) -> Result<(), UnpackError> {
    let io_err = |op: &'static str| {
        let path = lossy(raw);
        move |source| UnpackError::Io { op, path, source }
    };
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), meta.uid, meta.gid) }).map_err(io_err("chown"))?;
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), meta.mode & 0o7777) }).map_err(io_err("chmod"))?;
    for (name, value) in &meta.xattrs {
        if let Err(e) = fsetxattr(fd, name, value) {
            if e.raw_os_error() == Some(libc::EOPNOTSUPP) {
                tracing::debug!(path = %lossy(raw), xattr = ?name, "xattr not supported here, skipped");
            } else {
                return Err(UnpackError::Io {
                    op: "set xattr on",
                    path: lossy(raw),
                    source: e,
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_neutralises_and_refuses() {
        assert_eq!(
            clean_path(b"/etc/passwd").unwrap(),
            vec![b"etc".to_vec(), b"passwd".to_vec()]
        );
        assert_eq!(
            clean_path(b"./a//b/.").unwrap(),
            vec![b"a".to_vec(), b"b".to_vec()]
        );
        assert!(clean_path(b"a/../../b").is_err());
        assert!(clean_path(b"..").is_err());
        assert!(clean_path(b"").unwrap().is_empty());
    }

    #[test]
    fn detects_compression() {
        assert_eq!(Compression::detect(&[0x1f, 0x8b, 8]), Compression::Gzip);
        assert_eq!(
            Compression::detect(&[0x28, 0xb5, 0x2f, 0xfd]),
            Compression::Zstd
        );
        assert_eq!(Compression::detect(b"usr/"), Compression::None);
    }
}
