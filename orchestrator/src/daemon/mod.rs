//! `berth daemon`: one tokio process per berth instance that owns `<run>/berth.sock`.
//!
//! It owns the instance's engine (runtime, netd, the embedded DNS) and serves the API the CLI
//! speaks. One daemon per run directory, enforced by a lock file, so two CLIs racing to start it
//! cannot end with two daemons.

mod lingering;
mod network_routes;
mod project_routes;
mod routes;
mod watch;
mod watch_routes;

// The Docker Engine API, served on a second socket.
mod docker;

use std::convert::Infallible;
use std::fs::File;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;
use tokio::sync::{Notify, broadcast};

use crate::api::{Event, SOCKET_NAME};

/// Why the daemon could not start or stopped; each variant names the path involved.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("cannot create directory {path}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open the lock file {path}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("another berth daemon already serves {run} (lock {lock} is held)")]
    AlreadyRunning { run: PathBuf, lock: PathBuf },
    #[error("cannot listen on {path}")]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// Where this instance keeps its state and its socket.
#[derive(Debug, Clone)]
pub struct DaemonOptions {
    pub root: PathBuf,
    pub run: PathBuf,
    /// netd's container-to-container fast path (`--no-fast-path` turns it off).
    pub fast_path: bool,
}

/// State shared by every connection of the daemon.
pub(crate) struct Shared {
    pub opts: DaemonOptions,
    pub started: Instant,
    pub started_at: SystemTime,
    pub events: broadcast::Sender<Event>,
    pub shutdown: Notify,
    /// Flips to true when the daemon stops, so open streams end cleanly instead of being cut.
    pub closing: tokio::sync::watch::Sender<bool>,
    /// The engine, opened on first use so a daemon that only answers `info` touches no
    /// network or firewall state.
    pub engine: tokio::sync::OnceCell<Arc<crate::engine::stack::Engine>>,
    /// The container watcher (`watch.rs`), which routes can make look at once.
    pub watcher: watch::Watcher,
}

impl Shared {
    /// The engine, opening it (runtime, image store, netd, DNS) on first use.
    pub async fn engine(&self) -> Result<Arc<crate::engine::stack::Engine>, String> {
        self.engine
            .get_or_try_init(|| async {
                let exe = std::env::current_exe()
                    .map_err(|e| format!("cannot find the berth executable: {e}"))?;
                let engine = crate::engine::stack::Engine::open_with(
                    &self.opts.root,
                    &self.opts.run,
                    exe,
                    self.opts.fast_path,
                )
                .await
                .map_err(|e| crate::api::error::error_chain(&e))?;
                let events = self.events.clone();
                engine.netd.on_reconcile(move |rep| {
                    for ev in reconcile_events(rep) {
                        let _ = events.send(ev);
                    }
                    // A reconcile reads every link and every container's inside: with
                    // hundreds of containers it leaves megabytes of freed chunks behind.
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(crate::engine::memory::give_back());
                    }
                });
                Ok(engine)
            })
            .await
            .cloned()
    }
}

/// The events of one netd reconcile for `GET /v1/events`: each repair (`reconcile repair`),
/// each subnet conflict that appeared (`network conflict`, id = network name) or went
/// (`network conflict-resolved`). A standing conflict is announced once, not per reconcile.
pub(crate) fn reconcile_events(rep: &berth_netd::ReconcileReport) -> Vec<Event> {
    let now = humantime::format_rfc3339_millis(SystemTime::now()).to_string();
    let mut out = Vec::new();
    for r in &rep.repairs {
        out.push(Event {
            time: now.clone(),
            kind: "reconcile".into(),
            action: "repair".into(),
            id: "netd".into(),
            attributes: [
                ("message".to_string(), r.what.clone()),
                ("took_us".to_string(), r.duration.as_micros().to_string()),
            ]
            .into(),
        });
    }
    for (action, list) in [
        ("conflict", &rep.conflicts_new),
        ("conflict-resolved", &rep.conflicts_resolved),
    ] {
        for c in list {
            out.push(Event {
                time: now.clone(),
                kind: "network".into(),
                action: action.into(),
                id: c.network.clone(),
                attributes: [
                    ("subnet".to_string(), c.subnet.clone()),
                    ("host".to_string(), c.host.clone()),
                    ("interface".to_string(), c.interface.clone()),
                    ("message".to_string(), c.to_string()),
                ]
                .into(),
            });
        }
    }
    out
}

impl Shared {
    /// Publishes an event to every `GET /v1/events` stream (none listening is fine).
    pub fn emit(&self, kind: &str, action: &str, id: &str) {
        let _ = self.events.send(Event {
            time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            kind: kind.into(),
            action: action.into(),
            id: id.into(),
            attributes: Default::default(),
        });
    }
}

/// How cgroups are mounted here: the executor needs a v1 or a v2 backend, and this host is hybrid.
pub fn cgroup_mode() -> &'static str {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "v2"
    } else if Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists() {
        "hybrid"
    } else {
        "v1"
    }
}

/// Makes the root or run dir (`make`: with its mode, see `berth_runtime::modes`).
fn mkdir(path: &Path, make: fn(&Path) -> std::io::Result<()>) -> Result<(), DaemonError> {
    make(path).map_err(|source| DaemonError::CreateDir {
        path: path.to_path_buf(),
        source,
    })
}

/// Narrows the modes of a root or run dir made by an older berth (no path from a user who is
/// not root into a container's files, configs, volumes or logs), and says what it changed.
fn repair_modes(opts: &DaemonOptions) {
    let r = berth_runtime::modes::repair(&opts.root, &opts.run);
    for (path, old, new) in &r.tightened {
        tracing::debug!(path = %path.display(), old = format!("{old:o}"), new = format!("{new:o}"), "state mode tightened");
    }
    for (path, err) in &r.failed {
        tracing::warn!(path = %path.display(), %err, "cannot tighten the mode of a state path");
    }
    let took_us = r.took.as_micros() as u64;
    if r.tightened.is_empty() {
        tracing::debug!(checked = r.checked, took_us, "state modes checked");
    } else {
        tracing::info!(
            checked = r.checked,
            tightened = r.tightened.len(),
            took_us,
            "state modes tightened"
        );
    }
}

/// Takes the instance lock; held for the daemon's whole life (released when the process ends).
fn lock_instance(run: &Path) -> Result<Flock<File>, DaemonError> {
    let path = run.join("berth.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(berth_runtime::modes::PRIVATE_FILE)
        .open(&path)
        .map_err(|source| DaemonError::Lock {
            path: path.clone(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| DaemonError::AlreadyRunning {
        run: run.to_path_buf(),
        lock: path,
    })
}

/// Runs the daemon until SIGTERM, SIGINT or `POST /v1/shutdown`.
pub fn run(opts: DaemonOptions) -> Result<(), DaemonError> {
    // glibc gives each thread that allocates its own arena (up to 8 per core), and a burst of
    // blocking-pool threads (50 creates at once) leaves each arena holding freed memory. Two
    // arenas serve a 2-worker runtime; the blocking threads mostly wait on the kernel.
    // SAFETY: mallopt only tunes this process's allocator, before any other thread exists.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 2) };
    // A `down` of hundreds of containers runs dozens of blocking stops at once; the pollers'
    // blocking calls a few times a second then wake the idle threads in turn, so with tokio's
    // 10 s keep-alive none ever idles long enough to end and each keeps its stack's pages.
    // Ended after 2 s idle, the pool shrinks back to what the steady load needs.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_keep_alive(std::time::Duration::from_secs(2))
        .enable_all()
        .build()
        .map_err(DaemonError::Runtime)?;
    let result = rt.block_on(serve(opts));
    // Do not wait for blocking work still in flight (a stuck runtime call must not keep a
    // stopped daemon alive and holding the instance's locks).
    rt.shutdown_timeout(std::time::Duration::from_secs(2));
    result
}

async fn serve(opts: DaemonOptions) -> Result<(), DaemonError> {
    mkdir(&opts.root, berth_runtime::modes::ensure_root)?;
    mkdir(&opts.run, berth_runtime::modes::ensure_run)?;
    let _lock = lock_instance(&opts.run)?;
    repair_modes(&opts);
    let sock = opts.run.join(SOCKET_NAME);
    // The lock proves no live daemon owns a leftover socket: remove it.
    let _ = std::fs::remove_file(&sock);
    // A socket takes its mode from the umask: born 0600, so that no one else connects before
    // the chmod below (no other thread of ours makes files yet).
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&sock);
    nix::sys::stat::umask(mask);
    let listener = listener.map_err(|source| DaemonError::Listen {
        path: sock.clone(),
        source,
    })?;
    std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        DaemonError::Listen {
            path: sock.clone(),
            source,
        }
    })?;
    let docker = docker::bind(&opts.run)?;
    let pid_file = opts.run.join("berth.pid");
    std::fs::write(&pid_file, format!("{}\n", std::process::id())).map_err(|source| {
        DaemonError::Write {
            path: pid_file.clone(),
            source,
        }
    })?;

    let (events, _) = broadcast::channel(1024);
    let shared = Arc::new(Shared {
        opts: opts.clone(),
        started: Instant::now(),
        started_at: SystemTime::now(),
        events,
        shutdown: Notify::new(),
        closing: tokio::sync::watch::Sender::new(false),
        engine: tokio::sync::OnceCell::new(),
        watcher: watch::Watcher::default(),
    });
    tracing::info!(root = %opts.root.display(), run = %opts.run.display(), "berth daemon listening");
    shared.emit("daemon", "start", &std::process::id().to_string());

    // An instance with containers gets its engine at once, so restart policies and DNS
    // answers resume right after a daemon restart, before any CLI call.
    if opts.root.join("containers").is_dir() {
        let shared = shared.clone();
        tokio::spawn(async move {
            if let Err(err) = shared.engine().await {
                tracing::error!(%err, "opening the engine");
            }
        });
    }
    tokio::spawn(watch::run(shared.clone()));
    tokio::spawn(docker::serve(shared.clone(), docker));
    let mut sigterm = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut sigint = signal(tokio::signal::unix::SignalKind::interrupt())?;
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, Infallible>(routes::handle(shared, req).await) }
                    });
                    if let Err(err) = http1::Builder::new()
                        .serve_connection(TokioIo::new(lingering::Lingering::new(stream)), svc)
                        .await
                    {
                        tracing::debug!(%err, "API connection ended with an error");
                    }
                });
            }
            _ = shared.shutdown.notified() => break,
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    tracing::info!("berth daemon stopping");
    shared.emit("daemon", "stop", &std::process::id().to_string());
    shared.closing.send_replace(true);
    // Let open streams send their last lines and the end of their bodies, and netd finish
    // deleting the host veths of containers removed just before.
    let settle = async {
        if let Some(engine) = shared.engine.get() {
            engine.netd.settle().await;
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        tokio::join!(
            tokio::time::sleep(std::time::Duration::from_millis(100)),
            settle
        )
    })
    .await;
    let _ = std::fs::remove_file(&sock);
    let _ = std::fs::remove_file(docker::socket(&opts.run));
    let _ = std::fs::remove_file(&pid_file);
    Ok(())
}

fn signal(
    kind: tokio::signal::unix::SignalKind,
) -> Result<tokio::signal::unix::Signal, DaemonError> {
    tokio::signal::unix::signal(kind).map_err(DaemonError::Runtime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconcile_events_carry_repairs_and_conflict_changes_only() {
        let c = berth_netd::SubnetConflict {
            network: "app".into(),
            subnet: "10.201.3.0/24".into(),
            kind: berth_netd::conflicts::ConflictKind::Address,
            host: "10.201.3.57/24".into(),
            interface: "wlan0".into(),
        };
        let rep = berth_netd::ReconcileReport {
            repairs: vec![berth_netd::Repair {
                what: "bridge berth-1 of network app was down: set up".into(),
                duration: std::time::Duration::from_micros(42),
            }],
            conflicts: vec![c.clone()],
            conflicts_new: vec![c.clone()],
            ..Default::default()
        };
        let evs = reconcile_events(&rep);
        assert_eq!(evs.len(), 2, "{evs:?}");
        assert_eq!(
            (evs[0].kind.as_str(), evs[0].action.as_str()),
            ("reconcile", "repair")
        );
        assert_eq!(evs[0].attributes["took_us"], "42");
        assert_eq!(
            (
                evs[1].kind.as_str(),
                evs[1].action.as_str(),
                evs[1].id.as_str()
            ),
            ("network", "conflict", "app")
        );
        assert_eq!(evs[1].attributes["interface"], "wlan0");
        assert!(evs[1].attributes["message"].contains("recreate network app"));
        // A standing conflict (no longer new) is not announced again.
        let standing = berth_netd::ReconcileReport {
            conflicts: vec![c.clone()],
            ..Default::default()
        };
        assert!(reconcile_events(&standing).is_empty());
        let gone = berth_netd::ReconcileReport {
            conflicts_resolved: vec![c],
            ..Default::default()
        };
        assert_eq!(reconcile_events(&gone)[0].action, "conflict-resolved");
    }
}
