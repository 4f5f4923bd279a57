//! Paths resolved inside a root directory: the one way berth writes into a layer, a container
//! rootfs, a volume or a `cp` destination.
//!
//! A path handed to a writer names something *inside* a root, and the files already there
//! (planted by an image, a build context, a container or an earlier step) must never redirect
//! it outside. Every operation here starts from an open descriptor of the root and resolves the
//! path relative to it:
//!
//! - [`Follow::InRoot`]: a symlink on the way is followed as if the root were `/` (an absolute
//!   target restarts at the root, `..` stops at it), as Docker users expect inside an image.
//! - [`Follow::Never`]: a symlink on the way is an error (`ELOOP`/`ENOTDIR`), for layer archives.
//!
//! The kernel does it with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` (or
//! `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`); where openat2 is missing (`ENOSYS`, Linux < 5.6, or
//! refused by a seccomp filter) a component-by-component walk with `O_NOFOLLOW` does the same.
//! A root can have read-only *lower* layers under it (the overlay a build step writes on): a
//! path missing in the writable root is then looked up in the lowers, topmost first, so a
//! symlink or directory of the image is honoured, and a directory of a lower is recreated in
//! the root with its mode and owner (so /tmp stays 1777). The final component is never
//! followed by a writer: files and links replace what is there. Owner, mode and times are set
//! through the opened descriptor (or `*at` with `AT_SYMLINK_NOFOLLOW`), never a path string.
//!
//! [`Follow::InRoot`]: crate::inroot::Follow::InRoot
//! [`Follow::Never`]: crate::inroot::Follow::Never

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

mod at;
mod tree;

pub use at::*;
use at::{cvt, errno, openat2};
pub use tree::{CopyTreeError, Special, TreeCopy, copy_tree};

/// Symlinks followed in one resolution before it fails with `ELOOP`, as the kernel's limit.
const MAX_HOPS: usize = 40;
/// Open directories kept per root (one per directory a COPY or an archive writes into).
const CACHE_MAX: usize = 512;

/// How a symlink met on the way to a path is treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Follow {
    /// Followed as if the root were `/`.
    InRoot,
    /// Refused with `ELOOP` (a link) or `ENOTDIR` (another non-directory).
    Never,
}

fn key(comps: &[Vec<u8>]) -> Vec<u8> {
    comps.join(&b'/')
}

// ---- a root ---------------------------------------------------------------------------------

/// What the lower layers show at a path the root itself does not have.
enum Lower {
    Absent,
    Dir(libc::stat),
    Symlink(Vec<u8>),
    Other,
}

/// An open directory and its path as resolved inside the root.
type Resolved = (Rc<OwnedFd>, Vec<Vec<u8>>);
/// A resolved path and the root's directory there, if it has one (else only a lower does).
type MaybeResolved = (Option<Rc<OwnedFd>>, Vec<Vec<u8>>);

/// An open root directory (with optional read-only lower layers) and the paths resolved in it.
/// Not `Sync`: each writer opens its own.
pub struct InRoot {
    root: Rc<OwnedFd>,
    path: PathBuf,
    lowers: Vec<(OwnedFd, PathBuf)>,
    follow: Follow,
    /// Open directories by the path asked for and by their resolved path.
    cache: RefCell<HashMap<Vec<u8>, Resolved>>,
}

impl InRoot {
    /// Opens `path` (which the caller trusts: it names the root) as a root.
    pub fn open(path: &Path, follow: Follow) -> io::Result<InRoot> {
        let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| errno(libc::EINVAL))?;
        // SAFETY: openat with AT_FDCWD and a NUL-terminated path.
        let fd = cvt(unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        })?;
        Ok(InRoot {
            // SAFETY: a fresh descriptor.
            root: Rc::new(unsafe { OwnedFd::from_raw_fd(fd) }),
            path: path.to_path_buf(),
            lowers: Vec::new(),
            follow,
            cache: RefCell::new(HashMap::new()),
        })
    }

    /// Adds read-only layers under the root, `lowers` bottom first (the overlay order of
    /// [`crate::image::Image::layer_dirs`]).
    pub fn with_lowers(mut self, lowers: &[PathBuf]) -> io::Result<InRoot> {
        for l in lowers.iter().rev() {
            let r = InRoot::open(l, Follow::Never)?;
            let fd = Rc::try_unwrap(r.root).map_err(|_| errno(libc::EBUSY))?;
            self.lowers.push((fd, l.clone()));
        }
        Ok(self)
    }

    /// The root's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root directory's descriptor.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.root.as_fd()
    }

    /// Forgets the open directories (after something was removed or replaced).
    pub fn forget(&self) {
        self.cache.borrow_mut().clear();
    }

    fn remember(&self, k: Vec<u8>, fd: Rc<OwnedFd>, resolved: Vec<Vec<u8>>) {
        let mut c = self.cache.borrow_mut();
        if c.len() >= CACHE_MAX {
            c.clear();
        }
        c.insert(k, (fd, resolved));
    }

    /// Opens the directory at `path` (relative to the root; a leading `/` is the root),
    /// following symlinks by the root's policy, the last component included. With `create`,
    /// missing directories are made with that mode (a lower layer's directory is made with its
    /// own mode and owner). Errors: `ENOENT`, `ENOTDIR`, and `ELOOP` under [`Follow::Never`].
    pub fn dir(&self, path: &[u8], create: Option<u32>) -> io::Result<Rc<OwnedFd>> {
        self.dir_comps(&components(path), create)
    }

    /// [`InRoot::dir`] of a path already split into components.
    pub fn dir_comps(&self, comps: &[Vec<u8>], create: Option<u32>) -> io::Result<Rc<OwnedFd>> {
        Ok(self.resolve_dir(comps, create)?.0)
    }

    fn resolve_dir(&self, comps: &[Vec<u8>], create: Option<u32>) -> io::Result<Resolved> {
        if comps.is_empty() {
            return Ok((self.root.clone(), Vec::new()));
        }
        let k = key(comps);
        if let Some(hit) = self.cache.borrow().get(&k) {
            return Ok(hit.clone());
        }
        let resolve = match self.follow {
            Follow::InRoot => libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
            Follow::Never => {
                libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS
            }
        };
        // With lowers the walk looks at every layer; without, the kernel resolves.
        let fast = (self.lowers.is_empty()
            && (self.follow == Follow::InRoot || !comps.iter().any(|c| c == b"..")))
        .then(|| cname(&k))
        .transpose()?
        .map(|c| {
            openat2(
                self.root.as_fd(),
                &c,
                libc::O_RDONLY | libc::O_DIRECTORY,
                resolve,
            )
        });
        match fast {
            Some(Ok(fd)) => {
                let fd = Rc::new(fd);
                self.remember(k, fd.clone(), comps.to_vec());
                return Ok((fd, comps.to_vec()));
            }
            // ENOENT with `create`: the walk makes what is missing; ENOSYS: no openat2 here.
            Some(Err(e)) if e.raw_os_error() == Some(libc::ENOSYS) => {}
            Some(Err(e)) if e.raw_os_error() == Some(libc::ENOENT) && create.is_some() => {}
            // ELOOP under Never is RESOLVE_NO_SYMLINKS; EXDEV a `..` out of the root.
            Some(Err(e)) => return Err(e),
            None => {}
        }
        let (fd, resolved) = self.walk(comps, create)?;
        self.remember(k, fd.clone(), resolved.clone());
        if resolved.as_slice() != comps {
            self.remember(key(&resolved), fd.clone(), resolved.clone());
        }
        Ok((fd, resolved))
    }

    /// The directory at a resolved path (every component a real directory of the root).
    fn reopen(&self, resolved: &[Vec<u8>]) -> io::Result<Rc<OwnedFd>> {
        if resolved.is_empty() {
            return Ok(self.root.clone());
        }
        if let Some((fd, _)) = self.cache.borrow().get(&key(resolved)) {
            return Ok(fd.clone());
        }
        let mut cur = self.root.clone();
        for c in resolved {
            cur = Rc::new(open_dir_at(cur.as_fd(), &cname(c)?)?);
        }
        Ok(cur)
    }

    /// The topmost lower layer that has `resolved/name`: its directory there and the entry.
    fn lower_find(
        &self,
        resolved: &[Vec<u8>],
        name: &CStr,
    ) -> io::Result<Option<(OwnedFd, libc::stat)>> {
        'layers: for (fd, _) in &self.lowers {
            let mut cur = fd.try_clone()?;
            for c in resolved {
                match open_dir_at(cur.as_fd(), &cname(c)?) {
                    Ok(f) => cur = f,
                    Err(_) => continue 'layers,
                }
            }
            if let Some(st) = lstat_at(cur.as_fd(), name)? {
                return Ok(Some((cur, st)));
            }
        }
        Ok(None)
    }

    /// What the lower layers show at `resolved/name`.
    fn lower(&self, resolved: &[Vec<u8>], name: &[u8]) -> io::Result<Lower> {
        let cn = cname(name)?;
        Ok(match self.lower_find(resolved, &cn)? {
            None => Lower::Absent,
            Some((_, st)) if is_whiteout(&st) => Lower::Absent,
            Some((_, st)) if is_dir(&st) => Lower::Dir(st),
            Some((d, st)) if is_symlink(&st) => Lower::Symlink(readlink_at(d.as_fd(), &cn)?),
            Some(_) => Lower::Other,
        })
    }

    /// The component-by-component resolution (the fallback for openat2, and the overlay
    /// lookups): returns the directory and its path as resolved inside the root.
    fn walk(&self, comps: &[Vec<u8>], create: Option<u32>) -> io::Result<Resolved> {
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut cur = self.root.clone();
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        let mut splice = |target: Vec<u8>,
                          queue: &mut VecDeque<Vec<u8>>,
                          cur: &mut Rc<OwnedFd>,
                          resolved: &mut Vec<Vec<u8>>|
         -> io::Result<()> {
            hops += 1;
            if hops > MAX_HOPS || self.follow == Follow::Never {
                return Err(errno(libc::ELOOP));
            }
            if target.starts_with(b"/") {
                resolved.clear();
                *cur = self.root.clone();
            }
            for c in components(&target).into_iter().rev() {
                queue.push_front(c);
            }
            Ok(())
        };
        while let Some(c) = queue.pop_front() {
            if c == b".." {
                if resolved.pop().is_some() {
                    cur = self.reopen(&resolved)?;
                }
                continue;
            }
            let cn = cname(&c)?;
            match lstat_at(cur.as_fd(), &cn)? {
                Some(st) if is_dir(&st) => {
                    cur = Rc::new(open_dir_at(cur.as_fd(), &cn)?);
                }
                Some(st) if is_symlink(&st) => {
                    let t = readlink_at(cur.as_fd(), &cn)?;
                    splice(t, &mut queue, &mut cur, &mut resolved)?;
                    continue;
                }
                Some(_) => return Err(errno(libc::ENOTDIR)),
                None => {
                    let lower = if self.lowers.is_empty() {
                        Lower::Absent
                    } else {
                        self.lower(&resolved, &c)?
                    };
                    cur = match (lower, create) {
                        (Lower::Symlink(t), _) => {
                            splice(t, &mut queue, &mut cur, &mut resolved)?;
                            continue;
                        }
                        (Lower::Other, _) => return Err(errno(libc::ENOTDIR)),
                        (_, None) => return Err(errno(libc::ENOENT)),
                        (Lower::Dir(st), Some(_)) => {
                            let fd = mkdir_at(cur.as_fd(), &cn, st.st_mode)?;
                            fchown(fd.as_fd(), st.st_uid, st.st_gid)?;
                            fchmod(fd.as_fd(), st.st_mode)?;
                            Rc::new(fd)
                        }
                        (Lower::Absent, Some(mode)) => Rc::new(mkdir_at(cur.as_fd(), &cn, mode)?),
                    };
                }
            }
            resolved.push(c);
        }
        Ok((cur, resolved))
    }

    /// The directory holding `path` (created as needed with `create`) and the last component,
    /// never resolved; `None` when `path` names the root (or ends in `..`).
    pub fn parent(
        &self,
        path: &[u8],
        create: Option<u32>,
    ) -> io::Result<(Rc<OwnedFd>, Option<CString>)> {
        let comps = components(path);
        match comps.split_last() {
            Some((last, parent)) if last.as_slice() != b".." => {
                Ok((self.dir_comps(parent, create)?, Some(cname(last)?)))
            }
            Some(_) => Ok((self.dir_comps(&comps, create)?, None)),
            None => Ok((self.root.clone(), None)),
        }
    }

    /// What is at `path` in the root or, missing there, in the lowers (the last component not
    /// followed); `None` when nothing is.
    pub fn lstat(&self, path: &[u8]) -> io::Result<Option<libc::stat>> {
        let comps = components(path);
        let Some((last, parent)) = comps.split_last() else {
            return fstat(self.root.as_fd()).map(Some);
        };
        if last.as_slice() == b".." {
            return self
                .dir_comps(&comps, None)
                .and_then(|d| fstat(d.as_fd()))
                .map(Some);
        }
        let cn = cname(last)?;
        let (dir, resolved) = match self.resolve_dir_or_lower(parent)? {
            Some(x) => x,
            None => return Ok(None),
        };
        if let Some(d) = dir
            && let Some(st) = lstat_at(d.as_fd(), &cn)?
        {
            return Ok(Some(st));
        }
        match self.lower_stat(&resolved, last)? {
            Some(st) if is_whiteout(&st) => Ok(None),
            other => Ok(other),
        }
    }

    /// The root's directory at `comps` if it has one, and the resolved path: a directory only
    /// a lower layer has is resolved without creating it. `None` when it does not exist.
    fn resolve_dir_or_lower(&self, comps: &[Vec<u8>]) -> io::Result<Option<MaybeResolved>> {
        match self.resolve_dir(comps, None) {
            Ok((fd, r)) => return Ok(Some((Some(fd), r))),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && !self.lowers.is_empty() => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
            Err(e) => return Err(e),
        }
        // Resolve through the lowers only: a path with a lower-only directory on the way.
        let mut queue: VecDeque<Vec<u8>> = comps.iter().cloned().collect();
        let mut resolved: Vec<Vec<u8>> = Vec::new();
        let mut hops = 0;
        while let Some(c) = queue.pop_front() {
            if c == b".." {
                resolved.pop();
                continue;
            }
            let upper = match self.reopen(&resolved) {
                Ok(d) => lstat_at(d.as_fd(), &cname(&c)?)?.map(|st| (d, st)),
                Err(_) => None,
            };
            let link = match upper {
                Some((_, st)) if is_dir(&st) => None,
                Some((d, st)) if is_symlink(&st) => Some(readlink_at(d.as_fd(), &cname(&c)?)?),
                Some(_) => return Ok(None),
                None => match self.lower(&resolved, &c)? {
                    Lower::Dir(_) => None,
                    Lower::Symlink(t) => Some(t),
                    Lower::Absent | Lower::Other => return Ok(None),
                },
            };
            if let Some(t) = link {
                hops += 1;
                if hops > MAX_HOPS || self.follow == Follow::Never {
                    return Err(errno(libc::ELOOP));
                }
                if t.starts_with(b"/") {
                    resolved.clear();
                }
                for x in components(&t).into_iter().rev() {
                    queue.push_front(x);
                }
                continue;
            }
            resolved.push(c);
        }
        let dir = self.reopen(&resolved).ok();
        Ok(Some((dir, resolved)))
    }

    /// Whether `path` is a directory, links (the last one too) followed inside the root and
    /// the lowers.
    pub fn is_dir(&self, path: &[u8]) -> bool {
        matches!(self.resolve_dir_or_lower(&components(path)), Ok(Some(_)))
    }

    fn lower_stat(&self, resolved: &[Vec<u8>], name: &[u8]) -> io::Result<Option<libc::stat>> {
        Ok(self.lower_find(resolved, &cname(name)?)?.map(|(_, st)| st))
    }

    /// Opens the regular file at `path` for reading, following symlinks inside the root (the
    /// last one too) and, with lowers, in the layers below.
    pub fn open_file(&self, path: &[u8]) -> io::Result<File> {
        let mut comps = components(path);
        for _ in 0..MAX_HOPS {
            let Some((last, parent)) = comps.split_last() else {
                return Err(errno(libc::EISDIR));
            };
            let cn = cname(last)?;
            let Some((dir, resolved)) = self.resolve_dir_or_lower(parent)? else {
                return Err(errno(libc::ENOENT));
            };
            let here = match &dir {
                Some(d) => lstat_at(d.as_fd(), &cn)?.map(|st| (d.as_ref().try_clone(), st)),
                None => None,
            };
            let (d, st) = match here {
                Some((d, st)) => (d?, st),
                None => match self.lower_find(&resolved, &cn)? {
                    Some((_, st)) if is_whiteout(&st) => return Err(errno(libc::ENOENT)),
                    Some(x) => x,
                    None => return Err(errno(libc::ENOENT)),
                },
            };
            if !is_symlink(&st) {
                return open_file_at(d.as_fd(), &cn);
            }
            if self.follow == Follow::Never {
                return Err(errno(libc::ELOOP));
            }
            let t = readlink_at(d.as_fd(), &cn)?;
            comps = self.relink(&resolved, &t);
        }
        Err(errno(libc::ELOOP))
    }

    fn relink(&self, resolved: &[Vec<u8>], target: &[u8]) -> Vec<Vec<u8>> {
        let mut out = if target.starts_with(b"/") {
            Vec::new()
        } else {
            resolved.to_vec()
        };
        out.extend(components(target));
        out
    }

    /// An `O_PATH` descriptor of what is at `path`, links (the last one too) followed inside
    /// the root: a mount target.
    pub fn open_path(&self, path: &[u8]) -> io::Result<OwnedFd> {
        let mut comps = components(path);
        for _ in 0..MAX_HOPS {
            let Some((last, parent)) = comps.split_last() else {
                return self.root.try_clone();
            };
            if last.as_slice() == b".." {
                return self.dir_comps(&comps, None)?.try_clone();
            }
            let (dir, resolved) = self.resolve_dir(parent, None)?;
            let cn = cname(last)?;
            match lstat_at(dir.as_fd(), &cn)? {
                Some(st) if is_symlink(&st) => {
                    if self.follow == Follow::Never {
                        return Err(errno(libc::ELOOP));
                    }
                    let t = readlink_at(dir.as_fd(), &cn)?;
                    comps = self.relink(&resolved, &t);
                }
                Some(_) => {
                    // SAFETY: openat on a valid descriptor with a NUL-terminated name.
                    let fd = cvt(unsafe {
                        libc::openat(
                            dir.as_raw_fd(),
                            cn.as_ptr(),
                            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                        )
                    })?;
                    // SAFETY: a fresh descriptor.
                    return Ok(unsafe { OwnedFd::from_raw_fd(fd) });
                }
                None => return Err(errno(libc::ENOENT)),
            }
        }
        Err(errno(libc::ELOOP))
    }

    /// Makes sure something is at `path`, links (the last one too) followed inside the root:
    /// when nothing is, an empty file is created there (parents made with mode 0755). A mount
    /// point for a file; what exists is never replaced.
    pub fn ensure_file(&self, path: &[u8]) -> io::Result<()> {
        let mut comps = components(path);
        for _ in 0..MAX_HOPS {
            let Some((last, parent)) = comps.split_last() else {
                return Ok(());
            };
            if last.as_slice() == b".." {
                return self.dir_comps(&comps, None).map(drop);
            }
            let (dir, resolved) = self.resolve_dir(parent, Some(0o755))?;
            let cn = cname(last)?;
            match lstat_at(dir.as_fd(), &cn)? {
                Some(st) if is_symlink(&st) => {
                    if self.follow == Follow::Never {
                        return Err(errno(libc::ELOOP));
                    }
                    let t = readlink_at(dir.as_fd(), &cn)?;
                    comps = self.relink(&resolved, &t);
                }
                Some(_) => return Ok(()),
                None => {
                    // SAFETY: openat on a valid descriptor with a NUL-terminated name.
                    let fd = cvt(unsafe {
                        libc::openat(
                            dir.as_raw_fd(),
                            cn.as_ptr(),
                            libc::O_WRONLY
                                | libc::O_CREAT
                                | libc::O_EXCL
                                | libc::O_NOFOLLOW
                                | libc::O_CLOEXEC,
                            0o644 as libc::c_uint,
                        )
                    })?;
                    // SAFETY: a fresh descriptor, closed here.
                    drop(unsafe { OwnedFd::from_raw_fd(fd) });
                    return Ok(());
                }
            }
        }
        Err(errno(libc::ELOOP))
    }

    /// Makes every directory of `path` (following links inside the root) and returns the last.
    pub fn mkdir_all(&self, path: &[u8], mode: u32) -> io::Result<Rc<OwnedFd>> {
        self.dir(path, Some(mode))
    }

    /// Creates a new regular file at `path` (its parents made with mode 0755), replacing a
    /// non-directory there. The file starts with mode 0600: set owner, then mode, on it.
    pub fn create_file(&self, path: &[u8]) -> io::Result<File> {
        let (dir, name) = self.parent(path, Some(0o755))?;
        let name = name.ok_or_else(|| errno(libc::EISDIR))?;
        create_file_at(dir.as_fd(), &name)
    }

    /// Creates the symlink `path -> target` (never resolved here), replacing a non-directory.
    pub fn symlink(&self, path: &[u8], target: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(path, Some(0o755))?;
        let name = name.ok_or_else(|| errno(libc::EEXIST))?;
        symlink_at(dir.as_fd(), &name, target)
    }

    /// Owner of what is at `path` itself (a link's own owner).
    pub fn lchown(&self, path: &[u8], uid: u32, gid: u32) -> io::Result<()> {
        match self.parent(path, None)? {
            (dir, Some(name)) => chown_at(dir.as_fd(), &name, uid, gid),
            (dir, None) => fchown(dir.as_fd(), uid, gid),
        }
    }

    /// Removes what is at `path` (a directory with its contents; a link itself).
    pub fn remove_all(&self, path: &[u8]) -> io::Result<()> {
        let (dir, name) = self.parent(path, None)?;
        let name = name.ok_or_else(|| errno(libc::EBUSY))?;
        let r = remove_at(dir.as_fd(), &name);
        self.forget();
        r
    }

    /// Renames `from` to `to`, both inside the root (neither last component followed).
    pub fn rename(&self, from: &[u8], to: &[u8]) -> io::Result<()> {
        let (fdir, fname) = self.parent(from, None)?;
        let (tdir, tname) = self.parent(to, None)?;
        let (fname, tname) = match (fname, tname) {
            (Some(a), Some(b)) => (a, b),
            _ => return Err(errno(libc::EBUSY)),
        };
        // SAFETY: valid descriptors and names.
        cvt(unsafe {
            libc::renameat(
                fdir.as_raw_fd(),
                fname.as_ptr(),
                tdir.as_raw_fd(),
                tname.as_ptr(),
            )
        })?;
        self.forget();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn with_and_without_openat2(f: impl Fn()) {
        f();
        NO_OPENAT2.with(|c| c.set(true));
        f();
        NO_OPENAT2.with(|c| c.set(false));
    }

    #[test]
    fn links_are_followed_inside_the_root_never_out() {
        with_and_without_openat2(|| {
            let host = tempfile::tempdir().expect("tmp");
            let d = tempfile::tempdir().expect("tmp");
            let r = d.path();
            fs::create_dir_all(r.join("a")).expect("mkdir");
            symlink(host.path(), r.join("a/abs")).expect("link");
            symlink("../../../../..", r.join("a/up")).expect("link");
            symlink("loop", r.join("loop")).expect("link");
            let root = InRoot::open(r, Follow::InRoot).expect("root");
            let mut f = root.create_file(b"/a/abs/x").expect("create");
            io::Write::write_all(&mut f, b"in").expect("write");
            let hs = host.path().to_str().expect("utf-8");
            assert_eq!(
                fs::read_to_string(r.join(&hs[1..]).join("x")).expect("r"),
                "in"
            );
            root.create_file(b"a/up/y").expect("create");
            assert!(r.join("y").is_file());
            assert!(root.mkdir_all(b"a/up/../../z/w", 0o755).is_ok());
            assert!(r.join("z/w").is_dir());
            assert_eq!(
                root.dir(b"loop/x", Some(0o755))
                    .err()
                    .and_then(|e| e.raw_os_error()),
                Some(libc::ELOOP)
            );
            // A link as the last component of a file is replaced, not followed.
            root.symlink(b"a/l", hs.as_bytes()).expect("link");
            root.create_file(b"a/l").expect("replace");
            assert!(fs::symlink_metadata(r.join("a/l")).expect("l").is_file());
            assert_eq!(fs::read_dir(host.path()).expect("host").count(), 0);
            let never = InRoot::open(r, Follow::Never).expect("root");
            assert!(never.dir(b"a/abs", Some(0o755)).is_err());
            assert!(never.dir(b"a/up/q", Some(0o755)).is_err());
            assert!(fs::read_dir(host.path()).expect("host").next().is_none());
        });
    }

    #[test]
    fn mount_points_open_files_and_dirs_in_the_root() {
        with_and_without_openat2(|| {
            let d = tempfile::tempdir().expect("tmp");
            let r = d.path();
            fs::create_dir_all(r.join("etc")).expect("mkdir");
            fs::write(r.join("etc/hosts"), "x").expect("w");
            symlink("/etc/hosts", r.join("hl")).expect("link");
            let root = InRoot::open(r, Follow::InRoot).expect("root");
            root.open_path(b"/etc/hosts").expect("file");
            root.open_path(b"/hl").expect("through a link");
            root.open_path(b"/etc").expect("dir");
            assert_eq!(
                root.open_path(b"/etc/resolv.conf")
                    .err()
                    .and_then(|e| e.raw_os_error()),
                Some(libc::ENOENT)
            );
            root.ensure_file(b"/etc/resolv.conf").expect("create");
            root.open_path(b"/etc/resolv.conf").expect("file");
            root.ensure_file(b"/new/dir/f")
                .expect("create with parents");
            // A dangling link: its target is made, inside the root.
            symlink("/made/here", r.join("dangling")).expect("link");
            root.ensure_file(b"/dangling").expect("through the link");
            assert!(r.join("made/here").is_file());
        });
    }

    #[test]
    fn lowers_show_through_and_their_dirs_are_recreated() {
        with_and_without_openat2(|| {
            let d = tempfile::tempdir().expect("tmp");
            let (lo, up) = (d.path().join("lo"), d.path().join("up"));
            fs::create_dir_all(lo.join("usr/lib")).expect("mkdir");
            fs::create_dir_all(lo.join("tmp")).expect("mkdir");
            fs::set_permissions(
                lo.join("tmp"),
                std::os::unix::fs::PermissionsExt::from_mode(0o1777),
            )
            .expect("chmod");
            symlink("usr/lib", lo.join("lib")).expect("link");
            fs::create_dir_all(lo.join("etc")).expect("mkdir");
            fs::write(lo.join("etc/passwd"), "root:x:0:0\n").expect("w");
            fs::create_dir(&up).expect("mkdir");
            let root = InRoot::open(&up, Follow::InRoot)
                .expect("root")
                .with_lowers(std::slice::from_ref(&lo))
                .expect("lowers");
            root.create_file(b"/lib/x/f").expect("create");
            assert!(up.join("usr/lib/x/f").is_file());
            assert!(!up.join("lib").exists());
            root.create_file(b"/tmp/t").expect("create");
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                fs::metadata(up.join("tmp"))
                    .expect("tmp")
                    .permissions()
                    .mode()
                    & 0o7777,
                0o1777
            );
            let mut s = String::new();
            io::Read::read_to_string(&mut root.open_file(b"/etc/passwd").expect("open"), &mut s)
                .expect("read");
            assert_eq!(s, "root:x:0:0\n");
            assert!(!up.join("etc").exists(), "a read creates nothing");
            assert!(
                root.lstat(b"/lib")
                    .expect("lstat")
                    .is_some_and(|st| is_symlink(&st))
            );
            assert!(root.lstat(b"/nope").expect("lstat").is_none());
            fs::remove_dir_all(d.path()).ok();
        });
    }
}
