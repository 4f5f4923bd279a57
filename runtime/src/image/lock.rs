//! Advisory file locks (flock): how concurrent berth processes share one store safely.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;

/// A held flock; released when dropped (the descriptor is closed).
#[derive(Debug)]
pub struct FileLock {
    _file: File,
}

impl FileLock {
    /// Blocks until an exclusive lock on `path` (created if missing) is held.
    pub fn exclusive(path: &Path) -> io::Result<FileLock> {
        Self::take(path, libc::LOCK_EX)
    }

    /// Blocks until a shared lock on `path` is held.
    pub fn shared(path: &Path) -> io::Result<FileLock> {
        Self::take(path, libc::LOCK_SH)
    }

    fn take(path: &Path, op: libc::c_int) -> io::Result<FileLock> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        loop {
            // SAFETY: flock on a descriptor we own.
            let r = unsafe { libc::flock(file.as_raw_fd(), op) };
            if r == 0 {
                return Ok(FileLock { _file: file });
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }
}
