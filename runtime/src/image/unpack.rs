//! Safe layer extraction: a tar stream (plain, gzip or zstd) into one directory, never outside it.
//!
//! Layer archives come from registries and files we do not control, so every path is resolved
//! inside the layer root by [`crate::inroot`] ([`Follow::Never`]): a `..` component is refused,
//! an absolute path is taken relative to the layer root, and an entry whose parent is a symlink
//! (planted by an earlier entry or not) is refused, as is a hardlink whose target is not a file
//! inside the layer. Nothing follows a symlink, so nothing can land outside. The same extractor
//! serves ADD and `cp` ([`unpack_into`]) with [`Follow::InRoot`]: a link on the way is followed
//! as if the root were `/`, never out of it.
//!
//! Two whiteout modes: [`Whiteouts::Overlay`] keeps each layer in its own directory and turns
//! OCI whiteouts into overlayfs ones (a 0/0 character device, `trusted.overlay.opaque=y`), ready
//! to be a lowerdir; [`Whiteouts::Apply`] applies layers in order onto one directory (deletes
//! what they whiteout), for flattening an image into a plain rootfs.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::rc::Rc;

use crate::inroot::{
    Follow, InRoot, clear_dir, fchmod, fchown, is_dir, lstat_at, remove_at, set_times_at,
    set_times_fd,
};

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
    /// An entry would replace a directory with a non-directory or the reverse, and the
    /// extraction keeps kinds.
    #[error("cannot overwrite {} {path} with {}", if *dir { "directory" } else { "non-directory" }, if *dir { "non-directory" } else { "directory" })]
    KindChange { path: String, dir: bool },
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
    /// Not a layer (ADD, `cp`): `.wh.` names are ordinary files.
    Keep,
}

/// Whose files an extraction makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// The owners the archive names (layers, ADD).
    Keep,
    /// One owner for everything (ADD `--chown`).
    Set(u32, u32),
    /// The caller's (`cp` onto the host): no chown, no xattrs, no device nodes.
    Caller,
}

/// Where and how [`unpack_into`] extracts.
#[derive(Debug, Clone)]
pub struct Extract {
    /// How whiteouts are treated.
    pub whiteouts: Whiteouts,
    /// Whose the files become.
    pub owners: Owners,
    /// The directory inside the root the archive's paths are relative to.
    pub into: Vec<u8>,
    /// The archive's first component renamed (`cp a newname`).
    pub rename_top: Option<(Vec<u8>, Vec<u8>)>,
    /// Refuse to replace a directory with a non-directory or the reverse (Docker's
    /// `noOverwriteDirNonDir`); otherwise the archive's entry wins.
    pub keep_kinds: bool,
}

impl Extract {
    /// A layer's extraction into the root itself.
    pub fn layer(whiteouts: Whiteouts) -> Extract {
        Extract {
            whiteouts,
            owners: Owners::Keep,
            into: Vec::new(),
            rename_top: None,
            keep_kinds: false,
        }
    }
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
    let tree = InRoot::open(dest, Follow::Never).map_err(|source| UnpackError::OpenRoot {
        path: dest.to_owned(),
        source,
    })?;
    unpack_into(reader, &tree, &Extract::layer(mode))
}

/// Unpacks a (possibly compressed) tar into `tree` as `opts` say; paths resolve by the
/// tree's [`Follow`] policy, inside it.
pub fn unpack_into<R: Read + Send>(
    reader: R,
    tree: &InRoot,
    opts: &Extract,
) -> Result<UnpackStats, UnpackError> {
    let mode = opts;
    let mut buf = BufReader::with_capacity(256 * 1024, reader);
    let kind = Compression::detect(buf.fill_buf().map_err(UnpackError::Read)?);
    if kind == Compression::None {
        return unpack_plain(buf, tree, mode);
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
            tree,
            mode,
        )
    })
}

/// [`unpack_into`] of a plain (never compressed) tar stream: what `cp` sends.
pub fn unpack_tar_into<R: Read>(
    reader: R,
    tree: &InRoot,
    opts: &Extract,
) -> Result<UnpackStats, UnpackError> {
    unpack_plain(reader, tree, opts)
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
    tree: &InRoot,
    opts: &Extract,
) -> Result<UnpackStats, UnpackError> {
    let dest = tree.path();
    let hashed = HashingReader::new(plain);
    let mut archive = tar::Archive::new(hashed);
    let mut u = Unpacker::new(tree, opts)?;
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

struct Unpacker<'a> {
    tree: &'a InRoot,
    mode: Whiteouts,
    owners: Owners,
    /// Components of [`Extract::into`], put before every entry's path.
    into: Vec<Vec<u8>>,
    rename_top: Option<(Vec<u8>, Vec<u8>)>,
    keep_kinds: bool,
    /// Directory mtimes are set last: creating children changes them.
    dir_times: Vec<(Vec<Vec<u8>>, i64)>,
    /// Paths this layer created (Apply mode: an opaque marker keeps them).
    created: HashSet<Vec<Vec<u8>>>,
    entries: u64,
    file_bytes: u64,
}

impl<'a> Unpacker<'a> {
    fn new(tree: &'a InRoot, opts: &Extract) -> Result<Self, UnpackError> {
        let into = clean_path(&opts.into)?;
        Ok(Unpacker {
            tree,
            mode: opts.whiteouts,
            owners: opts.owners,
            into,
            rename_top: opts.rename_top.clone(),
            keep_kinds: opts.keep_kinds,
            dir_times: Vec::new(),
            created: HashSet::new(),
            entries: 0,
            file_bytes: 0,
        })
    }

    /// An archive path's components inside the root: [`Extract::into`] first, the top one
    /// renamed as asked.
    fn place(&self, mut comps: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        if let Some((from, to)) = &self.rename_top
            && comps.first() == Some(from)
        {
            comps[0] = to.clone();
        }
        let mut out = self.into.clone();
        out.extend(comps);
        out
    }

    /// Opens (creating when `create`) the directory at `comps` (already placed) inside the
    /// root, by the root's [`Follow`] policy.
    fn dir(
        &mut self,
        comps: &[Vec<u8>],
        raw: &[u8],
        create: bool,
    ) -> Result<Rc<OwnedFd>, UnpackError> {
        self.tree
            .dir_comps(comps, create.then_some(0o755))
            .map_err(|source| match source.raw_os_error() {
                Some(libc::ELOOP) | Some(libc::ENOTDIR) | Some(libc::EXDEV) => {
                    UnpackError::ThroughSymlink {
                        path: lossy(raw),
                        parent: lossy(&comps.join(&b'/')),
                    }
                }
                _ => UnpackError::Io {
                    op: "open directory",
                    path: lossy(raw),
                    source,
                },
            })
    }

    fn chown_fd(&self, fd: BorrowedFd<'_>, meta: &Meta) -> io::Result<()> {
        match self.owners {
            Owners::Keep => fchown(fd, meta.uid, meta.gid),
            Owners::Set(u, g) => fchown(fd, u, g),
            Owners::Caller => Ok(()),
        }
    }

    fn chown_at(&self, dir: BorrowedFd<'_>, name: &CString, meta: &Meta) -> io::Result<()> {
        match self.owners {
            Owners::Keep => crate::inroot::chown_at(dir, name, meta.uid, meta.gid),
            Owners::Set(u, g) => crate::inroot::chown_at(dir, name, u, g),
            Owners::Caller => Ok(()),
        }
    }

    /// Owner, mode (after the owner: chown clears set-id bits) and xattrs on an open file or dir.
    fn apply_fd_meta(
        &self,
        fd: BorrowedFd<'_>,
        meta: &Meta,
        raw: &[u8],
    ) -> Result<(), UnpackError> {
        let io_err = |op: &'static str| {
            let path = lossy(raw);
            move |source| UnpackError::Io { op, path, source }
        };
        self.chown_fd(fd, meta).map_err(io_err("chown"))?;
        fchmod(fd, meta.mode).map_err(io_err("chmod"))?;
        if self.owners == Owners::Caller {
            return Ok(());
        }
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
        let archived = clean_path(&raw)?;
        let meta = self.meta(entry, &raw)?;
        self.entries += 1;
        if archived.is_empty() {
            // The archive's root directory itself: a layer takes its metadata; an extraction
            // into a directory leaves that directory as it is.
            if kind == EntryType::Directory && self.into.is_empty() {
                self.apply_fd_meta(self.tree.fd(), &meta, &raw)?;
                self.dir_times.push((Vec::new(), meta.mtime));
            }
            return Ok(());
        }
        let comps = self.place(archived);
        let Some((name, parent)) = comps.split_last() else {
            return Ok(());
        };

        // Whiteouts (layers only).
        if self.mode == Whiteouts::Keep {
            // Ordinary names.
        } else if name.as_slice() == OPAQUE_MARKER.as_bytes() {
            return self.opaque(parent, &raw);
        } else if let Some(target) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
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
        if self.keep_kinds
            && let Some(st) = &existing
            && is_dir(st) != (kind == EntryType::Directory)
        {
            return Err(UnpackError::KindChange {
                path: lossy(&raw),
                dir: is_dir(st),
            });
        }
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
            self.apply_fd_meta(fd.as_fd(), &meta, &raw)?;
            self.dir_times.push((comps, meta.mtime));
            return Ok(());
        }
        if let Some(st) = existing {
            let pfd = self.dir(parent, &raw, true)?;
            remove_at(pfd.as_fd(), &cname).map_err(io_err("replace"))?;
            if is_dir(&st) {
                self.tree.forget();
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
                self.apply_fd_meta(file.as_fd(), &meta, &raw)?;
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
                self.chown_at(pfd, &cname, &meta).map_err(io_err("chown"))?;
                set_times_at(pfd.as_fd(), &cname, meta.mtime).map_err(io_err("set times on"))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                self.hardlink(parent, &cname, &target, &raw)?;
            }
            EntryType::Char | EntryType::Block if self.owners == Owners::Caller => {
                tracing::warn!(path = %lossy(&raw), "device node not copied");
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
                self.chown_at(pfd, &cname, &meta).map_err(io_err("chown"))?;
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
        let tcomps = self
            .place(clean_path(target).map_err(|_| bad(io::Error::from_raw_os_error(libc::EXDEV)))?);
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
            Whiteouts::Keep => Ok(()),
        };
        if mode == Whiteouts::Apply {
            self.tree.forget();
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
            self.chown_at(pfd, &ctarget, meta)
                .map_err(io_err("chown"))?;
        }
        self.tree.forget();
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
