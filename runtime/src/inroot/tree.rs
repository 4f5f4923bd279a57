//! Copies a tree, read through directory descriptors (never a path string), into an
//! [`InRoot`]: COPY --from and volume seeding. The source's links are copied as links, never
//! followed; the destination resolves inside its root.

use std::ffi::{CStr, OsStr};
use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::InRoot;
use super::at::{
    cname, fchmod, fchown, fstat, list_dir, lstat_at, open_dir_at, open_file_at, readlink_at,
};

/// What a tree copy does with device nodes, fifos and sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Special {
    /// Leaves them out.
    Skip,
    /// Fails with [`CopyTreeError::Special`].
    Refuse,
}

/// Owners and modes of a tree copy.
#[derive(Debug, Clone, Copy)]
pub struct TreeCopy {
    /// One owner for everything, or `None` for the source's.
    pub owner: Option<(u32, u32)>,
    /// Permission bits for everything, or `None` for the source's.
    pub chmod: Option<u32>,
    /// Device nodes, fifos and sockets.
    pub special: Special,
}

/// Why a tree copy failed, with the destination path at fault.
#[derive(Debug, thiserror::Error)]
pub enum CopyTreeError {
    /// A system call failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The destination path inside its root.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A device node, fifo or socket under [`Special::Refuse`].
    #[error("{} is a device, fifo or socket", path.display())]
    Special {
        /// The destination path inside its root.
        path: PathBuf,
    },
}

fn shown(p: &[u8]) -> PathBuf {
    Path::new("/").join(OsStr::from_bytes(p.strip_prefix(b"/").unwrap_or(p)))
}

fn io_err(op: &'static str, p: &[u8]) -> impl FnOnce(io::Error) -> CopyTreeError + use<> {
    let path = shown(p);
    move |source| CopyTreeError::Io { op, path, source }
}

/// Copies `name` under `dir` (the name itself not followed: a link is copied as a link), or
/// with `name` `None` the children of `dir`, to `dst_path` in `dst`.
pub fn copy_tree(
    dir: BorrowedFd<'_>,
    name: Option<&CStr>,
    dst: &InRoot,
    dst_path: &[u8],
    opts: &TreeCopy,
) -> Result<(), CopyTreeError> {
    match name {
        Some(name) => copy_entry(dir, name, dst, dst_path, opts),
        None => copy_children(dir, dst, dst_path, opts),
    }
}

fn copy_children(
    dir: BorrowedFd<'_>,
    dst: &InRoot,
    dst_path: &[u8],
    opts: &TreeCopy,
) -> Result<(), CopyTreeError> {
    let st = fstat(dir).map_err(io_err("reading the source of", dst_path))?;
    let fd = dst
        .mkdir_all(dst_path, 0o755)
        .map_err(io_err("creating", dst_path))?;
    let mut names = list_dir(dir).map_err(io_err("reading the source of", dst_path))?;
    names.sort();
    for n in names {
        let cn = cname(&n).map_err(io_err("reading the source of", dst_path))?;
        let mut child = dst_path.to_vec();
        child.push(b'/');
        child.extend_from_slice(&n);
        copy_entry(dir, &cn, dst, &child, opts)?;
    }
    let (uid, gid) = opts.owner.unwrap_or((st.st_uid, st.st_gid));
    fchown(fd.as_fd(), uid, gid).map_err(io_err("chown", dst_path))?;
    fchmod(fd.as_fd(), opts.chmod.unwrap_or(st.st_mode)).map_err(io_err("chmod", dst_path))
}

fn copy_entry(
    dir: BorrowedFd<'_>,
    name: &CStr,
    dst: &InRoot,
    dst_path: &[u8],
    opts: &TreeCopy,
) -> Result<(), CopyTreeError> {
    let src_err = |op| io_err(op, dst_path);
    let st = lstat_at(dir, name)
        .map_err(src_err("reading the source of"))?
        .ok_or_else(|| src_err("finding the source of")(io::ErrorKind::NotFound.into()))?;
    let (uid, gid) = opts.owner.unwrap_or((st.st_uid, st.st_gid));
    match st.st_mode & libc::S_IFMT {
        libc::S_IFLNK => {
            let t = readlink_at(dir, name).map_err(src_err("reading the source of"))?;
            dst.symlink(dst_path, &t).map_err(src_err("linking"))?;
            dst.lchown(dst_path, uid, gid).map_err(src_err("chown"))
        }
        libc::S_IFDIR => {
            let sub = open_dir_at(dir, name).map_err(src_err("reading the source of"))?;
            copy_children(sub.as_fd(), dst, dst_path, opts)
        }
        libc::S_IFREG => {
            let mut from = open_file_at(dir, name).map_err(src_err("reading the source of"))?;
            let mut to = dst.create_file(dst_path).map_err(src_err("creating"))?;
            io::copy(&mut from, &mut to).map_err(src_err("copying to"))?;
            // Owner first: chown clears set-id bits.
            fchown(to.as_fd(), uid, gid).map_err(src_err("chown"))?;
            fchmod(to.as_fd(), opts.chmod.unwrap_or(st.st_mode)).map_err(src_err("chmod"))
        }
        _ => match opts.special {
            Special::Skip => Ok(()),
            Special::Refuse => Err(CopyTreeError::Special {
                path: shown(dst_path),
            }),
        },
    }
}
