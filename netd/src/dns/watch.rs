//! Following the host's resolv.conf: when it changes, the upstream list changes, without a
//! restart of anything.
//!
//! resolv.conf is usually replaced by a rename (NetworkManager, systemd-resolved, dhclient),
//! and is often a symlink: a watch on the file's inode goes silent after the first
//! replacement. So we watch the *directories* of the file, of every hop of its symlink chain
//! and of systemd-resolved's upstream file, filter events by file name, debounce, re-read and
//! swap. `refresh()` does the same on demand for the periodic reconcile.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;

use super::resolvconf::{self, HostResolv, HostResolvPaths, ResolvConfError};
use super::upstream::Upstreams;

/// Errors of setting up the watch.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// inotify could not be initialised (limits) or registered with tokio.
    #[error("dns: cannot set up the resolv.conf watch ({op})")]
    Inotify {
        /// What failed.
        op: &'static str,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Watching needs a tokio runtime.
    #[error("dns: the resolv.conf watch must start inside a tokio runtime")]
    NoRuntime,
}

/// An inotify instance tokio can wait on.
pub(super) struct InotifyFd(pub(super) Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Re-reads the host's resolver files and swaps the upstreams when they changed.
#[derive(Debug)]
struct Refresher {
    paths: HostResolvPaths,
    upstreams: Arc<Upstreams>,
    last: Mutex<Option<HostResolv>>,
    /// Asks the watch loop to re-register its directories (one may have appeared since).
    rewatch: tokio::sync::Notify,
}

impl Refresher {
    fn refresh(&self) -> Result<bool, ResolvConfError> {
        let start = Instant::now();
        let host = match resolvconf::load_host(&self.paths) {
            Ok(h) => h,
            Err(e) => {
                // A missing file mid-replacement: keep what we have until the next event.
                tracing::warn!(error = %e, "dns: host resolver config unreadable; keeping the current upstreams");
                return Err(e);
            }
        };
        let changed = self
            .upstreams
            .set(host.conf.nameservers.clone(), host.conf.search.clone());
        if changed {
            tracing::info!(source = %host.source.display(), upstreams = ?host.conf.nameservers, took_us = start.elapsed().as_micros() as u64, "dns upstreams reconciled");
        }
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) = Some(host);
        Ok(changed)
    }

    /// Directories to watch and the file names in them that matter.
    fn watch_set(&self) -> HashMap<PathBuf, HashSet<OsString>> {
        let mut set: HashMap<PathBuf, HashSet<OsString>> = HashMap::new();
        let mut add = |p: &Path| {
            if let (Some(dir), Some(name)) = (p.parent(), p.file_name()) {
                let dir = if dir.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    dir
                };
                set.entry(dir.to_path_buf())
                    .or_default()
                    .insert(name.to_os_string());
            }
        };
        for start in [&self.paths.resolv_conf, &self.paths.systemd_resolv_conf] {
            let mut p = start.clone();
            add(&p);
            for _ in 0..8 {
                let Ok(target) = std::fs::read_link(&p) else {
                    break;
                };
                p = match p.parent() {
                    Some(dir) if target.is_relative() => dir.join(target),
                    _ => target,
                };
                add(&p);
            }
        }
        set
    }
}

/// The running resolv.conf watch; dropping it stops the watch.
#[derive(Debug)]
pub struct ResolvWatcher {
    refresher: Arc<Refresher>,
    task: JoinHandle<()>,
}

impl Drop for ResolvWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ResolvWatcher {
    /// Reads the files once (an unreadable file is logged, not fatal: the watch fixes it when
    /// the file appears), then follows them. `debounce` coalesces bursts of writes.
    pub fn spawn(
        paths: HostResolvPaths,
        upstreams: Arc<Upstreams>,
        debounce: Duration,
    ) -> Result<Self, WatchError> {
        let rt = tokio::runtime::Handle::try_current().map_err(|_| WatchError::NoRuntime)?;
        let refresher = Arc::new(Refresher {
            paths,
            upstreams,
            last: Mutex::new(None),
            rewatch: tokio::sync::Notify::new(),
        });
        let _ = refresher.refresh();
        let inotify =
            Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(|e| {
                WatchError::Inotify {
                    op: "inotify_init",
                    source: e.into(),
                }
            })?;
        let fd = {
            let _g = rt.enter();
            // SAFETY: the Inotify owns its descriptor (an OwnedFd) and lives inside the AsyncFd,
            // so the descriptor stays open and the same for the AsyncFd's whole lifetime.
            unsafe {
                AsyncFd::register_with_interest(InotifyFd(inotify), tokio::io::Interest::READABLE)
            }
            .map_err(|e| WatchError::Inotify {
                op: "register with tokio",
                source: std::io::Error::from(e),
            })?
        };
        let task = rt.spawn(watch_loop(Arc::clone(&refresher), fd, debounce));
        Ok(Self { refresher, task })
    }

    /// Re-reads now (the reconcile loop's backstop); returns whether the upstreams changed.
    /// Also re-registers the directory watches, in case a watched directory appeared late
    /// (systemd-resolved started after berth).
    pub fn refresh(&self) -> Result<bool, ResolvConfError> {
        self.refresher.rewatch.notify_one();
        self.refresher.refresh()
    }

    /// The host's effective resolver config as last read: its search domains and options go
    /// into containers' resolv.conf.
    pub fn host(&self) -> Option<HostResolv> {
        self.refresher
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CLOSE_WRITE
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_CREATE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_ATTRIB)
    .union(AddWatchFlags::IN_ONLYDIR);

/// Makes the kernel watches match the refresher's current watch set.
fn rewatch(
    inotify: &Inotify,
    refresher: &Refresher,
    watches: &mut HashMap<PathBuf, (WatchDescriptor, HashSet<OsString>)>,
) {
    let want = refresher.watch_set();
    watches.retain(|dir, (wd, _)| {
        let keep = want.contains_key(dir);
        if !keep {
            let _ = inotify.rm_watch(*wd);
        }
        keep
    });
    for (dir, names) in want {
        match inotify.add_watch(&dir, DIR_EVENTS) {
            Ok(wd) => {
                watches.insert(dir, (wd, names));
            }
            Err(e) => {
                watches.remove(&dir);
                tracing::debug!(dir = %dir.display(), error = %e, "dns: cannot watch directory (yet)");
            }
        }
    }
}

async fn watch_loop(refresher: Arc<Refresher>, fd: AsyncFd<InotifyFd>, debounce: Duration) {
    let mut watches = HashMap::new();
    rewatch(&fd.get_ref().0, &refresher, &mut watches);
    loop {
        let read = tokio::select! {
            r = read_relevant(&fd, &watches) => r,
            () = refresher.rewatch.notified() => {
                rewatch(&fd.get_ref().0, &refresher, &mut watches);
                continue;
            }
        };
        let relevant = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "dns: resolv.conf watch read error");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        if !relevant {
            continue;
        }
        // Debounce: let a burst (write tmp, rename, chmod) finish, swallow its other events.
        tokio::time::sleep(debounce).await;
        drain(&fd);
        let _ = refresher.refresh();
        rewatch(&fd.get_ref().0, &refresher, &mut watches);
    }
}

fn is_relevant(
    events: &[nix::sys::inotify::InotifyEvent],
    watches: &HashMap<PathBuf, (WatchDescriptor, HashSet<OsString>)>,
) -> bool {
    events.iter().any(|ev| {
        if ev.mask.intersects(
            AddWatchFlags::IN_Q_OVERFLOW
                | AddWatchFlags::IN_IGNORED
                | AddWatchFlags::IN_DELETE_SELF,
        ) {
            return true;
        }
        match &ev.name {
            Some(name) => watches
                .values()
                .any(|(wd, names)| *wd == ev.wd && names.contains(name)),
            None => true,
        }
    })
}

async fn read_relevant(
    fd: &AsyncFd<InotifyFd>,
    watches: &HashMap<PathBuf, (WatchDescriptor, HashSet<OsString>)>,
) -> std::io::Result<bool> {
    loop {
        let mut guard = fd.readable().await?;
        match guard.try_io(|inner| {
            inner
                .get_ref()
                .0
                .read_events()
                .map_err(std::io::Error::from)
        }) {
            Ok(Ok(events)) => return Ok(is_relevant(&events, watches)),
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => continue,
        }
    }
}

fn drain(fd: &AsyncFd<InotifyFd>) {
    while fd.get_ref().0.read_events().is_ok() {}
}
