//! The DNS keeper: a small process of its own (`berth dns DIR`) that serves every network's
//! gateway from the records the daemon publishes in `DIR` (see [`super::handoff`]), so
//! containers keep resolving each other while the daemon is down (crashed, restarting, or
//! stopped by `system shutdown` with containers still running), as podman's aardvark-dns does.
//!
//! It runs the same [`DnsService`] the daemon would (scoping by source address, per-container
//! upstreams, forwarding) and follows the host's resolv.conf itself. On every rename of
//! `records.json` it swaps the whole table at once and starts or stops servers to match; each
//! line appended to the journal it applies by delta (one endpoint is one change of its table);
//! then it reports in `keeper.json`. It exits when the records list no network (or are deleted), on
//! SIGTERM/SIGINT, and at once when another keeper holds the directory's lock.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use tokio::io::unix::AsyncFd;

use super::handoff::{self, BindFailure, HandoffError, KeeperStatus, RecordsFile};
use super::journal;
use super::watch::InotifyFd;
use super::{
    AnswerConfig, DnsRecords, DnsService, ForwardConfig, HostResolvPaths, ResolvWatcher,
    ServerLimits, Upstreams, WatchError,
};

/// How often the keeper re-reads resolv.conf even without an event (the daemon's reconcile
/// backstop does the same).
const BACKSTOP: Duration = Duration::from_secs(30);

/// Why the keeper could not run.
#[derive(Debug, thiserror::Error)]
pub enum KeeperError {
    /// Its directory or files.
    #[error(transparent)]
    Files(#[from] HandoffError),
    /// Watching the directory.
    #[error("dns keeper: cannot watch {dir}")]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Following resolv.conf.
    #[error(transparent)]
    Resolv(#[from] WatchError),
    /// The async runtime.
    #[error("dns keeper: cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// Runs the keeper of `dir` until it has nothing to serve; returns at once when another
/// keeper runs there.
pub fn run(dir: &Path) -> Result<(), KeeperError> {
    // One thread serves every network: one malloc arena is enough and keeps the RSS small.
    // SAFETY: mallopt only tunes this process's allocator, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(KeeperError::Runtime)?;
    rt.block_on(serve(dir))
}

/// What the keeper serves now.
struct Keeper {
    dir: PathBuf,
    dns: DnsService,
    resolv: ResolvWatcher,
    listen: BTreeMap<String, Vec<SocketAddr>>,
    failed: Vec<BindFailure>,
    host_epoch: Option<u64>,
}

impl Keeper {
    /// Serves `file`: the whole table swapped at once, servers started or stopped to match.
    fn apply(&mut self, file: RecordsFile) {
        let want: BTreeMap<String, Vec<SocketAddr>> = file
            .networks
            .iter()
            .map(|n| (n.scope.id.clone(), n.listen.clone()))
            .collect();
        // Servers of networks that went, or whose gateway changed, stop first.
        for (id, addrs) in &self.listen {
            if want.get(id) != Some(addrs) {
                self.dns.stop_network(id);
            }
        }
        let scopes: Vec<_> = file.networks.iter().map(|n| n.scope.clone()).collect();
        let errors = self.dns.records().replace_all(
            file.networks
                .into_iter()
                .map(|n| (n.scope, n.endpoints))
                .collect(),
        );
        for err in errors {
            tracing::warn!(%err, "dns keeper: record left out");
        }
        self.failed.clear();
        for scope in scopes {
            let listen = want.get(&scope.id).cloned().unwrap_or_default();
            self.start(&scope, &listen);
        }
        self.listen = want;
        self.served(file.generation, file.host_epoch);
    }

    /// Serves the journal's `ops` by delta (each endpoint added or removed alone). `false`,
    /// with nothing done, when one moves a served network's listen address: then the table is
    /// taken whole.
    fn apply_ops(&mut self, ops: Vec<journal::Op>, generation: u64, host_epoch: u64) -> bool {
        let moves_a_server = ops.iter().any(|op| {
            matches!(op, journal::Op::Network { scope, listen }
                if self.listen.get(&scope.id).is_some_and(|l| l != listen))
        });
        if moves_a_server {
            return false;
        }
        let records = Arc::clone(self.dns.records());
        for op in ops {
            match op {
                journal::Op::Network { scope, listen } => {
                    if self.listen.contains_key(&scope.id) {
                        records.add_network(scope);
                        continue;
                    }
                    records.add_network(scope.clone());
                    self.start(&scope, &listen);
                    self.listen.insert(scope.id, listen);
                }
                journal::Op::NetworkGone { id } => {
                    self.dns.stop_network(&id);
                    self.listen.remove(&id);
                    self.failed.retain(|f| f.network != id);
                }
                journal::Op::Endpoint { network, endpoint } => {
                    if let Err(err) = records.add_endpoint(&network, endpoint) {
                        tracing::warn!(%err, "dns keeper: record left out");
                    }
                }
                journal::Op::EndpointGone { network, id } => {
                    records.remove_endpoint(&network, &id);
                }
            }
        }
        self.served(generation, host_epoch);
        true
    }

    /// Starts the servers of a network the keeper did not serve.
    fn start(&mut self, scope: &super::NetworkScope, listen: &[SocketAddr]) {
        for addr in listen {
            if let Err(err) = self.dns.start_network(scope.clone(), *addr) {
                tracing::warn!(network = %scope.id, %addr, %err, "dns keeper: server not started");
                self.failed.push(BindFailure {
                    network: scope.id.clone(),
                    addr: *addr,
                    error: crate::report::chain(&err),
                });
            }
        }
    }

    /// Reports `generation` as served (and follows a new host epoch).
    fn served(&mut self, generation: u64, host_epoch: u64) {
        if self.host_epoch.is_some_and(|e| e != host_epoch) {
            self.host_changed();
        }
        self.host_epoch = Some(host_epoch);
        let status = KeeperStatus {
            pid: std::process::id(),
            generation,
            listening: self.dns.listeners(),
            failed: self.failed.clone(),
        };
        if let Err(err) = handoff::write_json(&self.dir, handoff::STATUS, &status) {
            tracing::warn!(%err, "dns keeper: status not written");
        }
        tracing::debug!(generation, "dns keeper: records loaded");
    }

    fn host_changed(&self) {
        if let Err(err) = self.resolv.refresh() {
            tracing::warn!(%err, "dns keeper: re-reading the host's resolv.conf");
        }
        self.dns.upstreams().reset_health();
    }
}

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_MOVED_TO
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_ONLYDIR);

fn watch_dir(dir: &Path) -> Result<AsyncFd<InotifyFd>, KeeperError> {
    let err = |source: nix::Error| KeeperError::Watch {
        dir: dir.to_path_buf(),
        source: source.into(),
    };
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).map_err(err)?;
    inotify.add_watch(dir, DIR_EVENTS).map_err(err)?;
    // SAFETY: the Inotify owns its descriptor and lives inside the AsyncFd, so the descriptor
    // stays open and the same for the AsyncFd's whole lifetime.
    unsafe { AsyncFd::register_with_interest(InotifyFd(inotify), tokio::io::Interest::READABLE) }
        .map_err(|e| KeeperError::Watch {
            dir: dir.to_path_buf(),
            source: std::io::Error::from(e),
        })
}

/// Waits until `records.json` was replaced or removed or its journal written, or the
/// directory went (`false`).
async fn records_event(fd: &AsyncFd<InotifyFd>) -> std::io::Result<bool> {
    loop {
        let mut guard = fd.readable().await?;
        let events = match guard.try_io(|inner| {
            inner
                .get_ref()
                .0
                .read_events()
                .map_err(std::io::Error::from)
        }) {
            Ok(r) => r?,
            Err(_would_block) => continue,
        };
        let mut relevant = false;
        for ev in events {
            if ev
                .mask
                .intersects(AddWatchFlags::IN_DELETE_SELF | AddWatchFlags::IN_IGNORED)
            {
                return Ok(false);
            }
            relevant |= ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW)
                || ev.name.as_deref().is_some_and(journal::is_records_file);
        }
        if relevant {
            return Ok(true);
        }
    }
}

/// The sockets the daemon handed over (`BERTH_DNS_FDS`): open socket descriptors only,
/// made close-on-exec again.
fn handed_over() -> Vec<OwnedFd> {
    let list = std::env::var(handoff::FDS_ENV).unwrap_or_default();
    let mut fds = Vec::new();
    for n in list.split(',').filter_map(|n| n.trim().parse::<i32>().ok()) {
        if n <= 2 || fds.iter().any(|f: &OwnedFd| f.as_raw_fd() == n) {
            continue;
        }
        // SAFETY: fstat on a number only reads; a closed number fails with EBADF.
        let is_socket = nix::sys::stat::fstat(unsafe { BorrowedFd::borrow_raw(n) })
            .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK);
        if !is_socket {
            continue;
        }
        // SAFETY: the descriptor is open (fstat succeeded), was inherited for us and nothing
        // else in this process owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(n) };
        let _ = nix::fcntl::fcntl(
            &fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        );
        fds.push(fd);
    }
    if !fds.is_empty() {
        tracing::info!(
            sockets = fds.len(),
            "dns keeper: serving on sockets handed over"
        );
    }
    fds
}

async fn serve(dir: &Path) -> Result<(), KeeperError> {
    let lock = handoff::open_lock(dir)?;
    if !handoff::try_lock(&lock) {
        tracing::info!(dir = %dir.display(), "dns keeper: another keeper serves this directory");
        return Ok(());
    }
    let events = watch_dir(dir)?;
    let upstreams = Arc::new(Upstreams::new(vec![], vec![], ForwardConfig::default()));
    let resolv = ResolvWatcher::spawn(
        HostResolvPaths::default(),
        upstreams.clone(),
        Duration::from_millis(50),
    )?;
    let mut keeper = Keeper {
        dir: dir.to_path_buf(),
        dns: DnsService::new(
            Arc::new(DnsRecords::new()),
            upstreams,
            AnswerConfig::default(),
            ServerLimits::default(),
        ),
        resolv,
        listen: BTreeMap::new(),
        failed: Vec::new(),
        host_epoch: None,
    };
    keeper.dns.take_over(handed_over());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(KeeperError::Runtime)?;
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(KeeperError::Runtime)?;
    let mut backstop = tokio::time::interval(BACKSTOP);
    backstop.tick().await;
    tracing::info!(dir = %dir.display(), pid = std::process::id(), "dns keeper started");
    let mut reader = journal::Reader::default();
    loop {
        match reader.read(dir) {
            Ok(Some((file, changed))) if !file.networks.is_empty() => {
                if changed {
                    let (generation, host_epoch) = (file.generation, file.host_epoch);
                    let applied = match reader.take_ops() {
                        Some(ops) => keeper.apply_ops(ops, generation, host_epoch),
                        None => false,
                    };
                    if !applied && let Some(file) = reader.table() {
                        keeper.apply(file.clone());
                    }
                    keeper.dns.release_unused_sockets();
                }
            }
            Ok(_) => {
                tracing::info!("dns keeper: no network left to serve");
                break;
            }
            // Kept serving what it has; the next write brings a good file.
            Err(err) => tracing::warn!(%err, "dns keeper: records unreadable"),
        }
        let go_on = loop {
            tokio::select! {
                ev = records_event(&events) => break ev.unwrap_or_else(|err| {
                    tracing::warn!(%err, "dns keeper: watch failed");
                    false
                }),
                _ = backstop.tick() => {
                    if let Err(err) = keeper.resolv.refresh() {
                        tracing::debug!(%err, "dns keeper: re-reading the host's resolv.conf");
                    }
                }
                _ = term.recv() => break false,
                _ = int.recv() => break false,
            }
        };
        if !go_on {
            break;
        }
    }
    let _ = std::fs::remove_file(dir.join(handoff::STATUS));
    drop(keeper);
    drop(lock);
    tracing::info!("dns keeper stopped");
    Ok(())
}
