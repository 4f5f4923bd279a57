//! The primitives [`super::InRoot`] is made of: `openat2`, and system calls on a directory
//! descriptor and one name that never follow that name. Usable on their own by code that
//! walks a tree through descriptors (layer unpack, tree copies).

use std::ffi::{CStr, CString};
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU8, Ordering};

pub(super) fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

pub(super) fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// A C string of a path component (a NUL byte is `EINVAL`).
pub fn cname(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| errno(libc::EINVAL))
}

/// The components of a relative or absolute path: empty and `.` dropped, `..` kept.
pub fn components(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|&b| b == b'/')
        .filter(|c| !c.is_empty() && *c != b".")
        .map(<[u8]>::to_vec)
        .collect()
}

/// 0: not tried yet, 1: works, 2: missing (fall back to the walk).
pub(super) static OPENAT2: AtomicU8 = AtomicU8::new(0);

#[cfg(test)]
thread_local! {
    /// Tests run the fallback walk on their own thread as if openat2 were missing.
    pub(super) static NO_OPENAT2: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(super) fn openat2(
    dir: BorrowedFd<'_>,
    path: &CStr,
    flags: i32,
    resolve: u64,
) -> io::Result<OwnedFd> {
    #[cfg(test)]
    if NO_OPENAT2.with(|c| c.get()) {
        return Err(errno(libc::ENOSYS));
    }
    if OPENAT2.load(Ordering::Relaxed) == 2 {
        return Err(errno(libc::ENOSYS));
    }
    // SAFETY: open_how is plain data; zero is a valid value for every field.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    let mut tries = 0;
    loop {
        // SAFETY: a valid descriptor, a NUL-terminated path and an open_how of the given size.
        let r = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        if r >= 0 {
            OPENAT2.store(1, Ordering::Relaxed);
            // SAFETY: openat2 returned a fresh descriptor that nothing else owns.
            return Ok(unsafe { OwnedFd::from_raw_fd(r as libc::c_int) });
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            // A rename raced the lookup: the kernel asks to try again.
            Some(libc::EAGAIN) if tries < 16 => tries += 1,
            Some(libc::ENOSYS) | Some(libc::EPERM) if OPENAT2.load(Ordering::Relaxed) != 1 => {
                OPENAT2.store(2, Ordering::Relaxed);
                return Err(errno(libc::ENOSYS));
            }
            _ => return Err(e),
        }
    }
}

/// Opens the directory `name` under `dir`; a symlink there is `ELOOP`, a file `ENOTDIR`.
pub fn open_dir_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: openat on a valid descriptor with a NUL-terminated name.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    })?;
    // SAFETY: a fresh descriptor.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Opens the regular file `name` under `dir` for reading; a symlink there is `ELOOP`.
pub fn open_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    // SAFETY: as above.
    let fd = cvt(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            name.as_ptr(),
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NOCTTY,
        )
    })?;
    // SAFETY: a fresh descriptor.
    let f = unsafe { File::from_raw_fd(fd) };
    if !f.metadata()?.is_file() {
        return Err(errno(libc::EINVAL));
    }
    Ok(f)
}

/// `lstat` of `name` under `dir`; `None` when nothing is there.
pub fn lstat_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<libc::stat>> {
    // SAFETY: stat is plain data.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid descriptor, name and out pointer.
    let r = unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r == 0 {
        return Ok(Some(st));
    }
    let e = io::Error::last_os_error();
    if e.raw_os_error() == Some(libc::ENOENT) {
        Ok(None)
    } else {
        Err(e)
    }
}

/// `fstat` of an open descriptor.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: plain data out pointer, valid descriptor.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
    Ok(st)
}

/// Whether a stat is a directory.
pub fn is_dir(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// Whether a stat is a symlink.
pub fn is_symlink(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFLNK
}

/// Whether a stat is an overlayfs whiteout (a 0/0 character device).
pub fn is_whiteout(st: &libc::stat) -> bool {
    st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == 0
}

/// The target of the symlink `name` under `dir`.
pub fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4096];
    // SAFETY: the buffer is writable for its length.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// Creates the directory `name` under `dir` with exactly `mode` (no umask), returning it open.
pub fn mkdir_at(dir: BorrowedFd<'_>, name: &CStr, mode: u32) -> io::Result<OwnedFd> {
    // SAFETY: valid descriptor and name.
    match cvt(unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o700) }) {
        Ok(_) => {
            let fd = open_dir_at(dir, name)?;
            fchmod(fd.as_fd(), mode)?;
            Ok(fd)
        }
        // Made by someone else meanwhile: use it if it is a directory.
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => open_dir_at(dir, name),
        Err(e) => Err(e),
    }
}

/// Creates a new regular file `name` under `dir` (mode 0600 until the caller sets it),
/// replacing a file, symlink or other non-directory there; a directory there is `EISDIR`.
pub fn create_file_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<File> {
    let open = || {
        // SAFETY: valid descriptor and name.
        cvt(unsafe {
            libc::openat(
                dir.as_raw_fd(),
                name.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC,
                0o600 as libc::c_uint,
            )
        })
    };
    let fd = match open() {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            // SAFETY: valid descriptor and name; unlink never follows the name.
            cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
            open()?
        }
        r => r?,
    };
    // SAFETY: a fresh descriptor.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Creates the symlink `name -> target` under `dir`, replacing a non-directory there.
pub fn symlink_at(dir: BorrowedFd<'_>, name: &CStr, target: &[u8]) -> io::Result<()> {
    let t = cname(target)?;
    // SAFETY: valid descriptor and strings.
    let link = || cvt(unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) });
    match link() {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => {
            match lstat_at(dir, name)? {
                Some(st) if is_dir(&st) => return Err(errno(libc::EISDIR)),
                _ => {}
            }
            // SAFETY: as above.
            cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
            link().map(drop)
        }
        r => r.map(drop),
    }
}

/// Owner of `name` under `dir` itself (a symlink is not followed).
pub fn chown_at(dir: BorrowedFd<'_>, name: &CStr, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: valid descriptor and name.
    cvt(unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// Owner of an open file or directory.
pub fn fchown(fd: BorrowedFd<'_>, uid: u32, gid: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    cvt(unsafe { libc::fchown(fd.as_raw_fd(), uid, gid) }).map(drop)
}

/// Permission bits of an open file or directory (after any chown: chown clears set-id bits).
pub fn fchmod(fd: BorrowedFd<'_>, mode: u32) -> io::Result<()> {
    // SAFETY: a valid descriptor.
    cvt(unsafe { libc::fchmod(fd.as_raw_fd(), mode & 0o7777) }).map(drop)
}

fn times(mtime: i64) -> [libc::timespec; 2] {
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    [ts, ts]
}

/// atime and mtime of `name` under `dir` itself (a symlink is not followed).
pub fn set_times_at(dir: BorrowedFd<'_>, name: &CStr, mtime: i64) -> io::Result<()> {
    let t = times(mtime);
    // SAFETY: valid descriptor, name and two timespecs.
    cvt(unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            t.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .map(drop)
}

/// atime and mtime of an open file or directory.
pub fn set_times_fd(fd: BorrowedFd<'_>, mtime: i64) -> io::Result<()> {
    let t = times(mtime);
    // SAFETY: valid descriptor and two timespecs.
    cvt(unsafe { libc::futimens(fd.as_raw_fd(), t.as_ptr()) }).map(drop)
}

/// The names in a directory (without `.` and `..`), read through a duplicate of its descriptor.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<Vec<u8>>> {
    // SAFETY: F_DUPFD_CLOEXEC on a valid descriptor.
    let dup = cvt(unsafe { libc::fcntl(dir.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 0) })?;
    // SAFETY: fdopendir takes the duplicate; closedir closes it.
    let dp = unsafe { libc::fdopendir(dup) };
    if dp.is_null() {
        let e = io::Error::last_os_error();
        // SAFETY: fdopendir failed, so the duplicate is still ours.
        unsafe { libc::close(dup) };
        return Err(e);
    }
    // SAFETY: dp is a valid DIR* until closedir.
    unsafe { libc::rewinddir(dp) };
    let mut names = Vec::new();
    loop {
        // SAFETY: as above; the entry is valid until the next readdir.
        let ent = unsafe { libc::readdir64(dp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated.
        let name = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) }.to_bytes();
        if name != b"." && name != b".." {
            names.push(name.to_vec());
        }
    }
    // SAFETY: closes the DIR* and the duplicate.
    unsafe { libc::closedir(dp) };
    Ok(names)
}

/// Removes `name` under `dir` whatever it is, a directory tree included, never following a
/// symlink.
pub fn remove_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let Some(st) = lstat_at(dir, name)? else {
        return Ok(());
    };
    if is_dir(&st) {
        let sub = open_dir_at(dir, name)?;
        clear_dir(sub.as_fd(), |_| false)?;
        // SAFETY: valid descriptor and name.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) })?;
    } else {
        // SAFETY: as above.
        cvt(unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) })?;
    }
    Ok(())
}

/// Removes every child of `dir` for which `keep` is false.
pub fn clear_dir(dir: BorrowedFd<'_>, keep: impl Fn(&[u8]) -> bool) -> io::Result<()> {
    for name in list_dir(dir)? {
        if keep(&name) {
            continue;
        }
        remove_at(dir, &cname(&name)?)?;
    }
    Ok(())
}
