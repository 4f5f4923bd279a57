//! Namespace helpers: pinning a new network namespace on a bind-mounted file before the
//! container exists (so netd can attach it without racing the container), and joining
//! namespaces by path or pid.

use std::fs;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, setns, unshare};

/// Errors pinning or joining a namespace.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceError {
    #[error("creating the netns pin file {path}")]
    PinFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("creating a new network namespace")]
    Unshare(#[source] nix::Error),
    #[error("bind-mounting the new network namespace on {path}")]
    Bind {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("the netns pinning thread panicked")]
    Thread,
    #[error("opening namespace {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("setting the NIS domain name {name:?}")]
    Domainname {
        name: String,
        #[source]
        source: nix::Error,
    },
    #[error("joining namespace {path}")]
    Join {
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// Creates a new, empty network namespace and keeps it alive as a bind mount on `path`.
/// Runs on a throwaway thread (namespaces are per thread), so it is safe to call from a
/// multi-threaded process.
pub fn pin_netns(path: &Path) -> Result<(), NamespaceError> {
    pin_netns_async(path)?.wait()
}

/// A [`pin_netns`] still running on its thread: the kernel's ~0.5 ms of namespace set-up
/// overlaps whatever the caller does meanwhile. Dropping it waits for the thread, so that a
/// caller that gives up can still remove the pin afterwards.
#[derive(Debug)]
pub struct PendingPin {
    path: PathBuf,
    thread: Option<std::thread::JoinHandle<Result<(), NamespaceError>>>,
}

/// Starts [`pin_netns`] on its own thread; [`PendingPin::wait`] returns its outcome.
pub fn pin_netns_async(path: &Path) -> Result<PendingPin, NamespaceError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|source| NamespaceError::PinFile {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    fs::File::create(path).map_err(|source| NamespaceError::PinFile {
        path: path.to_path_buf(),
        source,
    })?;
    let target = path.to_path_buf();
    let thread = std::thread::spawn(move || -> Result<(), NamespaceError> {
        unshare(CloneFlags::CLONE_NEWNET).map_err(NamespaceError::Unshare)?;
        mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .map_err(|source| NamespaceError::Bind {
            path: target.clone(),
            source,
        })
    });
    Ok(PendingPin {
        path: path.to_path_buf(),
        thread: Some(thread),
    })
}

impl PendingPin {
    /// Waits for the pin; on failure the pin file is gone again.
    pub fn wait(mut self) -> Result<(), NamespaceError> {
        self.join()
    }

    fn join(&mut self) -> Result<(), NamespaceError> {
        let Some(t) = self.thread.take() else {
            return Ok(());
        };
        let res = t.join().map_err(|_| NamespaceError::Thread).and_then(|r| r);
        if res.is_err() {
            let _ = fs::remove_file(&self.path);
        }
        res
    }
}

impl Drop for PendingPin {
    fn drop(&mut self) {
        let _ = self.join();
    }
}

/// Whether `path` is a live namespace pin (nsfs), e.g. still there after a reboot cleared
/// the run dir it lives in.
pub fn is_pinned(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}

/// Unmounts and deletes a pin made by [`pin_netns`]; a no-op when it is gone.
pub fn unpin_netns(path: &Path) {
    let _ = umount2(path, MntFlags::MNT_DETACH);
    let _ = fs::remove_file(path);
}

/// Opens a namespace file (`/proc/PID/ns/net`, a pin) for a later `setns`.
pub fn open_ns(path: &Path) -> Result<OwnedFd, NamespaceError> {
    fs::File::open(path)
        .map(OwnedFd::from)
        .map_err(|source| NamespaceError::Open {
            path: path.to_path_buf(),
            source,
        })
}

/// Joins the namespace behind `fd`.
pub fn join(fd: &OwnedFd, kind: CloneFlags, path: &Path) -> Result<(), NamespaceError> {
    setns(fd, kind).map_err(|source| NamespaceError::Join {
        path: path.to_path_buf(),
        source,
    })
}

/// Sets the NIS domain name of the calling process's UTS namespace (`--domainname`); the
/// container's init calls it beside `sethostname`.
pub fn set_domainname(name: &str) -> Result<(), NamespaceError> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    let rc = unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) };
    if rc != 0 {
        return Err(NamespaceError::Domainname {
            name: name.to_string(),
            source: nix::Error::last(),
        });
    }
    Ok(())
}
