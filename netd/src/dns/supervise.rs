//! The daemon's side of the DNS keeper: publishes the records, starts the keeper when a
//! network needs it, and starts a new one the moment it dies.
//!
//! Every change of the daemon's [`DnsRecords`] (and of the listen addresses) is written at
//! once as a new generation of `records.json`; the keeper reloads it on the rename.
//! Publishing starts paused, so a restarted daemon first rebuilds its whole table from netd
//! and only then replaces the keeper's (which kept answering meanwhile) in one write.
//!
//! The keeper is found by its lock (`F_GETLK` names the holder, so a keeper that outlived a
//! daemon is adopted by the next one) and watched through a pidfd: its exit wakes the
//! supervisor, which starts the next keeper while names are still in the file. The daemon
//! holds copies of the keeper's sockets (pidfd_getfd) and hands them to the next keeper
//! (inherited, listed in `BERTH_DNS_FDS`): queries sent meanwhile wait in the socket buffers
//! instead of being refused. Network
//! creation waits until the keeper reports that it serves the new generation, so a server is
//! listening before the first container of the network starts, as with in-process servers.

use std::collections::{BTreeMap, VecDeque};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use tokio::io::unix::AsyncFd;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::handoff::{self, HandoffError, KeeperStatus, PublishedNetwork, RecordsFile};
use super::journal;
use super::records::{Change, DnsRecords};
use crate::listeners::OwnSocket;

/// How the daemon starts its keeper.
#[derive(Debug, Clone)]
pub struct KeeperConfig {
    /// The keeper's directory (`<run>/dns`).
    pub dir: PathBuf,
    /// The program to run (the berth binary).
    pub program: PathBuf,
    /// Its arguments (`dns DIR`).
    pub args: Vec<OsString>,
}

/// Errors of setting up the link to the keeper.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The keeper's directory or files.
    #[error(transparent)]
    Files(#[from] HandoffError),
    /// Supervision is a tokio task.
    #[error("dns keeper supervision must start inside a tokio runtime")]
    NoRuntime,
}

/// Where the daemon is with publishing.
#[derive(Debug, Default)]
struct Published {
    listen: BTreeMap<String, Vec<SocketAddr>>,
    generation: u64,
    host_epoch: u64,
    /// Networks in the last file written.
    networks: usize,
    /// False until the daemon's table is complete.
    live: bool,
    /// The next generation must carry the whole table (the changes alone do not say it).
    whole: bool,
    /// The listen addresses and host epoch the keeper was last told.
    listen_sent: BTreeMap<String, Vec<SocketAddr>>,
    epoch_sent: u64,
    /// Writes `records.json` and its journal.
    writer: journal::Writer,
}

/// The daemon's link to its keeper.
#[derive(Debug)]
pub(super) struct Link {
    cfg: KeeperConfig,
    records: Arc<DnsRecords>,
    lock: std::fs::File,
    state: Mutex<Published>,
    wake: Notify,
    /// The keeper's sockets, exempt from netd's host-port check in this process.
    own: Mutex<BTreeMap<u64, OwnSocket>>,
    /// Copies of the keeper's sockets (pidfd_getfd): they outlive a killed keeper, so queries
    /// wait in their buffers and the next keeper serves on them.
    held: Mutex<Vec<Held>>,
    /// Keepers this process started and has not reaped, newest last.
    children: Mutex<Vec<Pid>>,
}

/// A copy of one of the keeper's sockets.
#[derive(Debug)]
struct Held {
    addr: SocketAddr,
    inode: u64,
    fd: OwnedFd,
}

/// How long network creation waits for the keeper.
const READY_TIMEOUT: Duration = Duration::from_secs(5);
/// A keeper that dies this often in [`CRASH_SPAN`] is restarted only once a second.
const CRASH_LIMIT: usize = 10;
const CRASH_SPAN: Duration = Duration::from_secs(10);

impl Link {
    /// Opens the directory and continues its generation count; publishing is paused.
    pub(super) fn open(
        cfg: KeeperConfig,
        records: Arc<DnsRecords>,
    ) -> Result<Arc<Self>, LinkError> {
        handoff::prepare_dir(&cfg.dir)?;
        let lock = handoff::open_lock(&cfg.dir)?;
        // Generations go on from the last table (or what the keeper says it serves, if that
        // is unreadable), so the keeper's report of an old one is never taken for ours.
        let (last_journal, last_generation, host_epoch) = journal::latest(&cfg.dir);
        let served = handoff::read_json::<KeeperStatus>(&cfg.dir, handoff::STATUS)
            .ok()
            .flatten()
            .map_or(0, |s| s.generation);
        let state = Published {
            generation: last_generation.max(served),
            host_epoch,
            writer: journal::Writer::after(last_journal),
            ..Default::default()
        };
        let link = Arc::new(Self {
            cfg,
            records: records.clone(),
            lock,
            state: Mutex::new(state),
            wake: Notify::new(),
            own: Mutex::new(BTreeMap::new()),
            held: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
        });
        let weak: Weak<Self> = Arc::downgrade(&link);
        records.log_changes();
        records.set_on_change(move || {
            if let Some(link) = weak.upgrade() {
                link.publish();
            }
        });
        Ok(link)
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Published> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the changes of the table as the next generation, one journal line (the whole
    /// table when a change is not expressible or the journal outgrew its base); nothing while
    /// paused.
    pub(super) fn publish(&self) -> Option<u64> {
        let mut st = self.state();
        // Taken under the state lock, so generations go out in the order the changes were made.
        let changes = self.records.take_changes();
        if !st.live {
            return None;
        }
        st.networks = self.records.network_count();
        let mut whole = st.whole || changes.iter().any(|c| matches!(c, Change::Whole));
        if !whole {
            let ops = self.ops(&mut st, changes);
            if ops.is_empty() && st.epoch_sent == st.host_epoch {
                return Some(st.generation);
            }
            let delta = journal::Delta {
                generation: st.generation + 1,
                host_epoch: st.host_epoch,
                ops,
            };
            match st.writer.append_delta(&self.cfg.dir, &delta) {
                Ok(true) => {
                    st.generation += 1;
                    st.epoch_sent = st.host_epoch;
                    return Some(self.published(st));
                }
                Ok(false) => whole = true,
                Err(err) => {
                    tracing::warn!(%err, "dns: records journal not appended; writing them whole");
                    whole = true;
                }
            }
        }
        debug_assert!(whole);
        st.generation += 1;
        let networks: Vec<PublishedNetwork> = self
            .records
            .export()
            .into_iter()
            .map(|(scope, endpoints)| PublishedNetwork {
                listen: st.listen.get(&scope.id).cloned().unwrap_or_default(),
                scope,
                endpoints,
            })
            .collect();
        st.networks = networks.len();
        st.listen_sent = networks
            .iter()
            .map(|n| (n.scope.id.clone(), n.listen.clone()))
            .collect();
        st.epoch_sent = st.host_epoch;
        let file = RecordsFile {
            generation: st.generation,
            journal: 0,
            host_epoch: st.host_epoch,
            networks,
        };
        match st.writer.publish_whole(&self.cfg.dir, file) {
            Ok(()) => st.whole = false,
            Err(err) => {
                st.whole = true;
                tracing::error!(%err, "dns: records not published to the keeper");
            }
        }
        Some(self.published(st))
    }

    /// Wakes the supervisor once a generation is out; returns it.
    fn published(&self, st: std::sync::MutexGuard<'_, Published>) -> u64 {
        let generation = st.generation;
        let wanted = st.networks > 0;
        drop(st);
        if wanted {
            self.wake.notify_one();
        }
        generation
    }

    /// The journal operations of `changes`, with the listen addresses that changed.
    fn ops(&self, st: &mut Published, changes: Vec<Change>) -> Vec<journal::Op> {
        let mut ops = Vec::with_capacity(changes.len());
        for c in changes {
            match c {
                Change::Network(scope) => {
                    let listen = st.listen.get(&scope.id).cloned().unwrap_or_default();
                    st.listen_sent.insert(scope.id.clone(), listen.clone());
                    ops.push(journal::Op::Network { scope, listen });
                }
                Change::NetworkGone(id) => {
                    st.listen_sent.remove(&id);
                    ops.push(journal::Op::NetworkGone { id });
                }
                Change::Endpoint { network, endpoint } => ops.push(journal::Op::Endpoint {
                    network,
                    endpoint: Arc::unwrap_or_clone(endpoint),
                }),
                Change::EndpointGone { network, id } => {
                    ops.push(journal::Op::EndpointGone { network, id })
                }
                Change::Whole => {}
            }
        }
        // Listen addresses changed without a change of the table.
        let moved: Vec<(String, Vec<SocketAddr>)> = st
            .listen
            .iter()
            .filter(|(id, addrs)| st.listen_sent.get(*id).is_some_and(|sent| sent != *addrs))
            .map(|(id, addrs)| (id.clone(), addrs.clone()))
            .collect();
        for (id, listen) in moved {
            if let Some(scope) = self.records.network(&id) {
                st.listen_sent.insert(id, listen.clone());
                ops.push(journal::Op::Network { scope, listen });
            }
        }
        ops
    }

    /// Starts publishing (the daemon's table is complete) and writes the table.
    pub(super) fn go_live(&self) {
        {
            let mut st = self.state();
            st.live = true;
            st.whole = true;
        }
        self.publish();
        self.wake.notify_one();
    }

    pub(super) fn add_listen(&self, network: &str, addr: SocketAddr) {
        let mut st = self.state();
        let list = st.listen.entry(network.to_string()).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
    }

    pub(super) fn remove_listen(&self, network: &str) -> bool {
        let addrs = self.state().listen.remove(network).unwrap_or_default();
        // The network's address must be free for whatever comes next.
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|h| !addrs.contains(&h.addr));
        !addrs.is_empty()
    }

    pub(super) fn listen(&self, network: &str) -> Vec<SocketAddr> {
        self.state()
            .listen
            .get(network)
            .cloned()
            .unwrap_or_default()
    }

    /// Asks the keeper to re-read resolv.conf and forget failed upstreams.
    pub(super) fn host_changed(&self) {
        self.state().host_epoch += 1;
        self.publish();
    }

    fn wanted(&self) -> bool {
        let st = self.state();
        st.live && st.networks > 0
    }

    /// Reaps the keepers this process started that have exited.
    fn reap(&self) {
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|pid| {
                matches!(
                    waitpid(*pid, Some(WaitPidFlag::WNOHANG)),
                    Ok(WaitStatus::StillAlive)
                )
            });
    }

    /// The running keeper, started if needed; `None` while no network needs one.
    fn ensure(&self) -> Option<Pid> {
        if !self.wanted() {
            return None;
        }
        if let Some(pid) = handoff::lock_holder(&self.lock) {
            return Some(Pid::from_raw(pid));
        }
        // A keeper just started may not hold the lock yet: do not start a second one.
        self.reap();
        if let Some(pid) = self
            .children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
        {
            return Some(*pid);
        }
        self.spawn()
    }

    fn spawn(&self) -> Option<Pid> {
        // Held until the child has exec'd: no copy closes (and its number gets reused)
        // between listing the numbers and the child keeping them.
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let fds: Vec<i32> = held
            .iter()
            .map(|h| std::os::fd::AsRawFd::as_raw_fd(&h.fd))
            .collect();
        let list = fds.iter().map(i32::to_string).collect::<Vec<_>>().join(",");
        let log = self.cfg.dir.join("keeper.log");
        // Keep the log of the last keepers only.
        if std::fs::metadata(&log).is_ok_and(|m| m.len() > 1 << 20) {
            let _ = std::fs::remove_file(&log);
        }
        let stderr = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log)
            .map(std::process::Stdio::from)
            .unwrap_or_else(|_| std::process::Stdio::null());
        let mut child = std::process::Command::new(&self.cfg.program);
        child
            .args(&self.cfg.args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .env(handoff::FDS_ENV, list)
            // Its own process group: a signal to the daemon's group (Ctrl-C of a daemon run
            // by hand) must not take the names down.
            .process_group(0);
        // SAFETY: the closure only calls fcntl, which is async-signal-safe, on descriptors
        // this process holds open (the `held` lock keeps them) and allocates nothing.
        let child = unsafe {
            child.pre_exec(move || {
                for &fd in &fds {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            })
        }
        .spawn();
        drop(held);
        match child {
            Ok(child) => {
                let pid = Pid::from_raw(child.id() as i32);
                tracing::info!(%pid, "dns keeper started");
                self.children
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(pid);
                Some(pid)
            }
            Err(err) => {
                tracing::error!(program = %self.cfg.program.display(), %err, "dns keeper not started");
                None
            }
        }
    }

    /// Takes the keeper's report as the current one: exempts its sockets here.
    fn adopt(&self, status: &KeeperStatus) {
        let inodes: Vec<u64> = status
            .listening
            .iter()
            .flat_map(|l| l.inodes.iter().copied())
            .collect();
        let mut own = self.own.lock().unwrap_or_else(PoisonError::into_inner);
        own.retain(|ino, _| inodes.contains(ino));
        for ino in &inodes {
            own.entry(*ino).or_insert_with(|| OwnSocket::adopt(*ino));
        }
        drop(own);
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.retain(|h| inodes.contains(&h.inode));
        let missing: Vec<(SocketAddr, u64, i32)> = status
            .listening
            .iter()
            .flat_map(|l| {
                l.inodes
                    .iter()
                    .zip(&l.fds)
                    .map(move |(ino, fd)| (l.addr, *ino, *fd))
            })
            .filter(|(_, ino, _)| !held.iter().any(|h| h.inode == *ino))
            .collect();
        if missing.is_empty() {
            return;
        }
        let pidfd = match pidfd_open(Pid::from_raw(status.pid as i32)) {
            Ok(p) => p,
            Err(err) => {
                tracing::debug!(%err, "dns keeper gone before its sockets were copied");
                return;
            }
        };
        for (addr, inode, target) in missing {
            match pidfd_getfd(&pidfd, target) {
                // The inode proves it is the socket the keeper reported (not a reused pid).
                Ok(fd) if nix::sys::stat::fstat(&fd).is_ok_and(|st| st.st_ino == inode) => {
                    held.push(Held { addr, inode, fd });
                }
                Ok(_) => tracing::debug!(%addr, "dns keeper socket changed before it was copied"),
                Err(err) => {
                    tracing::debug!(%addr, %err, "dns keeper socket not copied (a new keeper binds again)");
                }
            }
        }
    }

    /// Whether the keeper `pid` runs another file than the one this daemon would start (the
    /// binary was replaced by an upgrade since it started): the records format may differ.
    fn runs_other_binary(&self, pid: Pid) -> bool {
        use std::os::unix::fs::MetadataExt;
        let (Ok(running), Ok(ours)) = (
            std::fs::metadata(format!("/proc/{pid}/exe")),
            std::fs::metadata(&self.cfg.program),
        ) else {
            return false;
        };
        (running.dev(), running.ino()) != (ours.dev(), ours.ino())
    }

    /// The keeper's report if it is from `pid` (or any, when `None`) and serves `generation`
    /// or later.
    fn status(&self, pid: Option<Pid>, generation: u64) -> Option<KeeperStatus> {
        let st: KeeperStatus = handoff::read_json(&self.cfg.dir, handoff::STATUS).ok()??;
        let from = pid.is_none_or(|p| p.as_raw() as u32 == st.pid);
        (from && st.generation >= generation).then(|| {
            self.adopt(&st);
            st
        })
    }

    /// Makes sure a keeper serves the current generation: starts one if needed and waits (a
    /// few milliseconds; at most [`READY_TIMEOUT`]) for its report. `None` while paused or on
    /// timeout.
    pub(super) fn sync(&self) -> Option<KeeperStatus> {
        let generation = {
            let st = self.state();
            if !st.live {
                return None;
            }
            st.generation
        };
        let started = Instant::now();
        let deadline = started + READY_TIMEOUT;
        self.ensure();
        for round in 1u32.. {
            if let Some(st) = self.status(None, generation) {
                self.wake.notify_one();
                tracing::debug!(
                    generation,
                    waited_us = started.elapsed().as_micros() as u64,
                    "dns keeper serves the new network"
                );
                return Some(st);
            }
            if Instant::now() > deadline {
                tracing::warn!(
                    generation,
                    "dns keeper did not report within {READY_TIMEOUT:?}"
                );
                return None;
            }
            std::thread::sleep(Duration::from_millis(2));
            // The keeper may have been on its way out (its last file had no network): look
            // again now and then, starting the next one if it is gone.
            if round % 10 == 0 {
                self.ensure();
            }
        }
        None
    }
}

fn pidfd_open(pid: Pid) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn pidfd_getfd(pidfd: &OwnedFd, target: i32) -> std::io::Result<OwnedFd> {
    let raw = std::os::fd::AsRawFd::as_raw_fd(pidfd);
    // SAFETY: pidfd_getfd takes a pidfd, a descriptor number in that process and flags, and
    // returns a new descriptor (close-on-exec) or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, raw, target, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the descriptor was just returned to us and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Keeps a keeper running while a network needs one: starts it, waits for its exit on a
/// pidfd, starts the next at once (once a second when it keeps crashing).
async fn supervise(link: Arc<Link>) {
    let mut exits: VecDeque<Instant> = VecDeque::new();
    loop {
        link.reap();
        let Some(pid) = link.ensure() else {
            link.wake.notified().await;
            continue;
        };
        // SAFETY: the OwnedFd lives inside the AsyncFd, so the descriptor stays open and the
        // same for the AsyncFd's whole lifetime.
        let fd = match pidfd_open(pid).and_then(|fd| {
            unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
                .map_err(std::io::Error::from)
        }) {
            Ok(fd) => fd,
            Err(_) => {
                // Gone between the lock check and here: look again.
                tokio::time::sleep(Duration::from_millis(5)).await;
                continue;
            }
        };
        let mut adopted = false;
        loop {
            tokio::select! {
                r = fd.readable() => {
                    if let Ok(mut guard) = r {
                        guard.retain_ready();
                    }
                    break;
                }
                () = tokio::time::sleep(Duration::from_millis(20)), if !adopted => {
                    adopted = link.status(Some(pid), 0).is_some();
                    // Its sockets are copied now: a keeper of an older berth (upgraded
                    // since) gives way to one of ours without closing port 53.
                    if adopted && link.runs_other_binary(pid) {
                        tracing::info!(%pid, "dns keeper runs another berth binary: replacing it");
                        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
                    }
                }
            }
        }
        tracing::info!(%pid, "dns keeper exited");
        let now = Instant::now();
        exits.push_back(now);
        while exits
            .front()
            .is_some_and(|t| now.duration_since(*t) > CRASH_SPAN)
        {
            exits.pop_front();
        }
        if exits.len() > CRASH_LIMIT {
            tracing::error!(
                "dns keeper exited {} times in {CRASH_SPAN:?}; see {}",
                exits.len(),
                link.cfg.dir.join("keeper.log").display()
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// Starts the supervision task.
pub(super) fn spawn_supervisor(link: &Arc<Link>) -> Result<JoinHandle<()>, LinkError> {
    let rt = tokio::runtime::Handle::try_current().map_err(|_| LinkError::NoRuntime)?;
    Ok(rt.spawn(supervise(Arc::clone(link))))
}
