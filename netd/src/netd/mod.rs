//! The `Netd` facade: networks, endpoints and published ports, backed by state on disk.
//!
//! Every mutation takes one async lock, so an event-driven reconcile never sees half an
//! attach. Setup validates first and rolls back what it made on failure; teardown keeps going
//! and reports every error it met. The jobs live apart: `networks` (bridges, subnets, the
//! firewall), `endpoints` (attach, planned purely in `attach_plan`, and detach), `published`
//! (ports); reconcile is in [`crate::reconcile`].

mod attach_plan;
mod endpoints;
mod error;
mod networks;
mod own_links;
mod published;
mod removals;
mod requests;

pub(crate) use endpoints::add_link_local;
pub use error::NetdError;
pub use removals::Removed;
pub use requests::{Config, EndpointRequest, HostChange, Ipv6Create, NetworkCreate, check_sysctl};

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rtnetlink::Handle;
use tokio::sync::{Mutex, MutexGuard, watch};

use crate::firewall;
use crate::kernel::Kernel;
use crate::report::ReconcileReport;
use crate::state::{State, StateLock, StateStore};

pub(crate) struct Inner {
    pub(crate) state: State,
    pub(crate) last_egress: BTreeSet<Ipv4Addr>,
    pub(crate) generation: u64,
    pub(crate) last_report: Option<ReconcileReport>,
    pub(crate) recent_repairs: std::collections::VecDeque<crate::report::Repair>,
    /// Subnet conflicts of the latest reconcile (warned about only when they change).
    pub(crate) conflicts: Vec<crate::conflicts::SubnetConflict>,
    /// The endpoints removed lately, for [`Netd::removed_since`].
    pub(crate) removals: removals::Removals,
}

/// berth's network daemon core; share it as `Arc<Netd>`.
pub struct Netd {
    pub(crate) cfg: Config,
    pub(crate) kernel: Kernel,
    pub(crate) store: StateStore,
    pub(crate) inner: Mutex<Inner>,
    pub(crate) changes: watch::Sender<HostChange>,
    pub(crate) hooks: std::sync::Mutex<Vec<ReconcileHook>>,
    pub(crate) table: String,
    pub(crate) fast_path: crate::fastpath::FastPath,
    _lock: StateLock,
}

/// A function run after every reconcile, outside netd's lock (the DNS part re-reads its
/// upstreams here: `netd.on_reconcile(move |_| { let _ = resolv_watcher.refresh(); })`).
pub type ReconcileHook = Arc<dyn Fn(&ReconcileReport) + Send + Sync>;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && n.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
}

impl Netd {
    /// Opens the instance in the calling thread's network namespace (the "host"), loading the
    /// state on disk. It takes the instance lock for its lifetime. Kernel state is not touched
    /// until `reconcile()` or a mutation.
    pub async fn open(cfg: Config) -> Result<Arc<Self>, NetdError> {
        // Each instance names its own table (several may share a process and a namespace);
        // the process-wide name stays set for callers of the table-less firewall functions.
        let table = cfg
            .table
            .clone()
            .unwrap_or_else(|| firewall::TABLE.to_string());
        let _ = firewall::set_table(&table);
        let kernel = Kernel::open().await?;
        let store = StateStore::open(&cfg.root)?;
        let lock = store.lock()?;
        let state = store.load()?;
        let last_egress = store.load_egress().into_iter().collect();
        let (changes, _) = watch::channel(HostChange::default());
        if let Some(dir) = cfg.managers_dir.clone() {
            declare_unmanaged(dir).await;
        }
        let fast_path = crate::fastpath::FastPath::new(cfg.fast_path);
        Ok(Arc::new(Self {
            cfg,
            fast_path,
            kernel,
            store,
            inner: Mutex::new(Inner {
                state,
                last_egress,
                generation: 0,
                last_report: None,
                recent_repairs: std::collections::VecDeque::new(),
                conflicts: Vec::new(),
                removals: removals::Removals::default(),
            }),
            changes,
            hooks: std::sync::Mutex::new(Vec::new()),
            table,
            _lock: lock,
        }))
    }

    /// A receiver that sees a new value after every reconcile (host NIC change or backstop);
    /// the DNS part re-reads its upstreams on each.
    pub fn host_changes(&self) -> watch::Receiver<HostChange> {
        self.changes.subscribe()
    }

    /// Registers a hook run after every reconcile (event-driven, backstop or explicit), for
    /// callers that prefer a callback to `host_changes()`. Keep it short: it runs on the
    /// reconcile task.
    pub fn on_reconcile(&self, hook: impl Fn(&ReconcileReport) + Send + Sync + 'static) {
        self.hooks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(Arc::new(hook));
    }

    /// The report of the latest reconcile (event-driven, backstop or explicit).
    pub async fn last_report(&self) -> Option<ReconcileReport> {
        self.inner.lock().await.last_report.clone()
    }

    /// The latest repairs of all reconciles, oldest first (at most 256): the event log a
    /// `berth events` stream can show.
    pub async fn recent_repairs(&self) -> Vec<crate::report::Repair> {
        self.inner
            .lock()
            .await
            .recent_repairs
            .iter()
            .cloned()
            .collect()
    }

    /// A snapshot of the desired state.
    pub async fn state(&self) -> State {
        self.inner.lock().await.state.clone()
    }

    /// The host-namespace netlink handle (for inspection in tools and tests).
    pub fn host_handle(&self) -> &Handle {
        self.kernel.host()
    }

    pub(crate) async fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().await
    }
    /// Runs the watch loop (until the task is dropped or a new subscription cannot be made):
    /// reconcile after each debounced burst of host link/address/route events, and every
    /// `backstop` regardless.
    pub async fn run(self: Arc<Self>, backstop: Duration) -> Result<(), NetdError> {
        let mut w = crate::watch::Watcher::start(self.kernel.worker()).await?;
        let mut tick = tokio::time::interval(backstop);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                c = w.next_change(Duration::from_millis(15), Duration::from_millis(150)) => {
                    match c {
                        Some(change) => {
                            tracing::debug!(?change.kinds, "host network changed");
                            // Only netd's own links: every attach and detach announces its
                            // veth so. A look at just those links tells whether one needs
                            // repair; if so, reconcile, at most once per interval (a burst
                            // would otherwise hold netd's lock through the whole burst).
                            if change.own_links_only() {
                                if !self.own_links_need_repair(&change.own_links).await {
                                    continue;
                                }
                                tokio::time::sleep_until(last + crate::watch::OWN_LINK_INTERVAL)
                                    .await;
                            }
                        }
                        None => {
                            // The subscription ended (socket error, overrun): subscribe again
                            // and reconcile, since events may have been lost.
                            tracing::warn!("rtnetlink event subscription ended; subscribing again");
                            w = crate::watch::Watcher::start(self.kernel.worker()).await?;
                        }
                    }
                }
                _ = tick.tick() => {}
            }
            // The first tick fires at once: a (re)started netd reconciles before anything else.
            // reconcile() logs each repair as an event.
            let _ = self.reconcile().await;
            last = tokio::time::Instant::now();
        }
    }
}

/// Declares berth's links unmanaged under `dir` (off the async threads: it may run reload
/// commands). A failure is logged, not returned: networking works without it, only a host
/// network manager may then grab berth's links.
async fn declare_unmanaged(dir: PathBuf) {
    let d = dir.clone();
    match tokio::task::spawn_blocking(move || crate::unmanaged::declare(&d)).await {
        Ok(Ok(changed)) if !changed.is_empty() => {
            tracing::info!(dir = %dir.display(), files = ?changed, "declared berth's links unmanaged for the host's network managers");
        }
        Ok(Ok(_)) => {}
        Ok(Err(err)) => {
            tracing::warn!(err = %crate::report::chain(&err), "cannot declare berth's links unmanaged: a host network manager may take them over");
        }
        Err(err) => tracing::warn!(%err, "declaring berth's links unmanaged"),
    }
}
