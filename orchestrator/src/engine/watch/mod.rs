//! `berth watch`: the daemon follows the services' `develop.watch` rules (inotify through
//! the `notify` crate) and applies each batch of changes to the running containers.
//!
//! Changes are debounced: the first event opens a batch that closes after [`QUIET`] without
//! a new event ([`BURST_QUIET`] once it is large; at the latest [`MAX_BATCH`] after it
//! opened), so a burst of writes (a `git checkout` of a thousand files) is one sync, while a
//! single save is visible in the container a few tens of milliseconds later. [`rules`] is the pure matching of paths to rules, [`sync`] the writes
//! into the containers, [`actions`] restart, exec and rebuild. The watch lives as long as
//! its event channel: when the receiver (the client's stream) is gone, the watcher is dropped.

pub mod actions;
pub mod rules;
pub mod sync;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::api::watch::WatchEvent;
use crate::api::{ApiError, ErrorKind};
use crate::compose::Project;
use crate::engine::stack::Engine;
use rules::{Action, Rule};

/// How long a batch waits for quiet before it is applied.
pub const QUIET: Duration = Duration::from_millis(20);
/// The quiet a batch waits for once it holds [`BURST`] paths: a burst is under way (a
/// checkout, a build writing its output), and a writer descheduled for a moment on a busy
/// machine should not split it into several syncs.
pub const BURST_QUIET: Duration = Duration::from_millis(150);
/// The batch size from which [`BURST_QUIET`] applies.
pub const BURST: usize = 32;
/// The longest a batch stays open under a steady stream of changes.
pub const MAX_BATCH: Duration = Duration::from_secs(2);

/// The rules of the watched services, checked before anything is watched.
pub struct Watch {
    project: Project,
    services: BTreeMap<String, Vec<Rule>>,
}

impl Watch {
    /// Reads the rules of `services` (empty: every service that has some); refuses a bad
    /// rule, an unknown service, or nothing to watch, as the error the route answers.
    pub fn prepare(project: Project, services: &[String]) -> Result<Watch, ApiError> {
        let invalid = |message: String| ApiError {
            kind: ErrorKind::InvalidArgument,
            message,
        };
        let names: Vec<String> = if services.is_empty() {
            project.services.keys().cloned().collect()
        } else {
            services.to_vec()
        };
        let mut by_service = BTreeMap::new();
        for name in names {
            if !project.services.contains_key(&name) {
                return Err(invalid(format!("no such service: {name}")));
            }
            let rules = rules::rules_of(&project, &name).map_err(|e| invalid(e.to_string()))?;
            if rules.is_empty() {
                if !services.is_empty() {
                    return Err(invalid(format!(
                        "service {name} has no develop.watch rules"
                    )));
                }
                continue;
            }
            by_service.insert(name, rules);
        }
        if by_service.is_empty() {
            return Err(invalid(
                "none of the selected services has develop.watch rules: nothing to watch".into(),
            ));
        }
        Ok(Watch {
            project,
            services: by_service,
        })
    }

    /// The host paths to watch: each rule's directory recursively, a file rule's parent
    /// directory alone (editors replace files by renaming, which a watch on the file loses).
    fn roots(&self) -> BTreeMap<PathBuf, RecursiveMode> {
        let mut roots = BTreeMap::new();
        for rule in self.services.values().flatten() {
            if rule.path.is_dir() {
                roots.insert(rule.path.clone(), RecursiveMode::Recursive);
            } else if let Some(parent) = rule.path.parent() {
                roots
                    .entry(parent.to_path_buf())
                    .or_insert(RecursiveMode::NonRecursive);
            }
        }
        roots
    }

    /// Watches until `tx`'s receiver is gone: initial syncs first, then one batch at a time.
    pub async fn run(self, engine: Arc<Engine>, tx: mpsc::UnboundedSender<WatchEvent>) {
        let (etx, mut erx) = mpsc::unbounded_channel::<notify::Result<notify::Event>>();
        let mut watcher = match notify::recommended_watcher(move |ev| {
            let _ = etx.send(ev);
        }) {
            Ok(w) => w,
            Err(e) => {
                let _ = tx.send(WatchEvent::Error {
                    service: String::new(),
                    message: format!("cannot watch: {e}"),
                });
                return;
            }
        };
        for (path, mode) in self.roots() {
            if let Err(e) = watcher.watch(&path, mode) {
                let _ = tx.send(WatchEvent::Error {
                    service: String::new(),
                    message: format!("cannot watch {}: {e}", path.display()),
                });
            }
        }
        for (service, rules) in &self.services {
            let mut paths: Vec<String> =
                rules.iter().map(|r| r.path.display().to_string()).collect();
            paths.dedup();
            let _ = tx.send(WatchEvent::Watching {
                service: service.clone(),
                paths,
            });
        }
        self.initial_syncs(&engine, &tx).await;
        loop {
            let first = tokio::select! {
                _ = tx.closed() => break,
                ev = erx.recv() => ev,
            };
            let Some(first) = first else { break };
            let mut changed = BTreeSet::new();
            collect(first, &mut changed);
            let opened = Instant::now();
            while opened.elapsed() < MAX_BATCH {
                let quiet = if changed.len() >= BURST {
                    BURST_QUIET
                } else {
                    QUIET
                };
                match tokio::time::timeout(quiet, erx.recv()).await {
                    Ok(Some(ev)) => collect(ev, &mut changed),
                    Ok(None) | Err(_) => break,
                }
            }
            if !changed.is_empty() {
                self.dispatch(&engine, &tx, &changed).await;
            }
        }
        drop(watcher);
        tracing::info!(project = %self.project.name, "watch ended");
    }

    async fn initial_syncs(&self, engine: &Arc<Engine>, tx: &mpsc::UnboundedSender<WatchEvent>) {
        for (service, rules) in &self.services {
            for rule in rules.iter().filter(|r| r.initial_sync && r.action.syncs()) {
                let batch = sync::initial(rule);
                if !batch.is_empty() {
                    self.sync(engine, tx, service, rule, batch).await;
                }
            }
        }
    }

    /// Applies one batch of changed host paths: each rule that follows some of them runs its
    /// action once.
    async fn dispatch(
        &self,
        engine: &Arc<Engine>,
        tx: &mpsc::UnboundedSender<WatchEvent>,
        changed: &BTreeSet<PathBuf>,
    ) {
        for (service, rules) in &self.services {
            for rule in rules {
                let rels: BTreeSet<PathBuf> =
                    changed.iter().filter_map(|p| rule.matches(p)).collect();
                if rels.is_empty() {
                    continue;
                }
                let _ = tx.send(WatchEvent::Syncing {
                    service: service.clone(),
                    action: rule.action.as_str().to_string(),
                    changes: rels.len(),
                });
                if rule.action.syncs() {
                    let batch = sync::plan(rule, &rels);
                    if !self.sync(engine, tx, service, rule, batch).await {
                        continue;
                    }
                }
                self.after_sync(engine, tx, service, rule).await;
            }
        }
    }

    /// Writes `batch` into every running container of `service`; false when it failed.
    async fn sync(
        &self,
        engine: &Arc<Engine>,
        tx: &mpsc::UnboundedSender<WatchEvent>,
        service: &str,
        rule: &Rule,
        batch: sync::Batch,
    ) -> bool {
        let started = Instant::now();
        let (e, r, p, s) = (
            engine.clone(),
            rule.clone(),
            self.project.name.clone(),
            service.to_string(),
        );
        let b = batch.clone();
        let done = tokio::task::spawn_blocking(move || {
            let recs = actions::running(&e, &p, &s);
            if recs.is_empty() {
                return Err(format!("no running container of service {s} to sync to"));
            }
            for rec in &recs {
                sync::apply(&e.runtime, rec, &r, &b)?;
            }
            Ok(())
        })
        .await
        .unwrap_or_else(|e| Err(format!("the sync task failed: {e}")));
        match done {
            Ok(()) => {
                let _ = tx.send(WatchEvent::Synced {
                    service: service.to_string(),
                    copied: batch.copies.len(),
                    deleted: batch.deletes.len(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                });
                true
            }
            Err(message) => {
                let _ = tx.send(WatchEvent::Error {
                    service: service.to_string(),
                    message,
                });
                false
            }
        }
    }

    async fn after_sync(
        &self,
        engine: &Arc<Engine>,
        tx: &mpsc::UnboundedSender<WatchEvent>,
        service: &str,
        rule: &Rule,
    ) {
        let svc = service.to_string();
        let fail = |message: String| WatchEvent::Error {
            service: svc.clone(),
            message,
        };
        match rule.action {
            Action::Sync => {}
            Action::Restart | Action::SyncRestart => {
                let ev = match actions::restart(engine, &self.project, service).await {
                    Ok(()) => WatchEvent::Restarted {
                        service: svc.clone(),
                    },
                    Err(m) => fail(m),
                };
                let _ = tx.send(ev);
            }
            Action::SyncExec => {
                let Some(cmd) = rule.exec.clone() else { return };
                let (e, p) = (engine.clone(), self.project.name.clone());
                let s = svc.clone();
                let results = tokio::task::spawn_blocking(move || {
                    actions::running(&e, &p, &s)
                        .iter()
                        .map(|rec| (rec.config.name.clone(), actions::exec(&e, rec, &cmd)))
                        .collect::<Vec<_>>()
                })
                .await
                .unwrap_or_default();
                for (container, r) in results {
                    let ev = match r {
                        Ok(code) => WatchEvent::Exec {
                            service: svc.clone(),
                            container,
                            code,
                        },
                        Err(m) => fail(m),
                    };
                    let _ = tx.send(ev);
                }
            }
            Action::Rebuild => {
                let ev = match actions::rebuild(engine, &self.project, service).await {
                    Ok(()) => WatchEvent::Rebuilt {
                        service: svc.clone(),
                    },
                    Err(m) => fail(m),
                };
                let _ = tx.send(ev);
            }
        }
    }
}

/// Adds the paths of one watcher event to the batch (reads and opens are not changes: the
/// sync itself reads the files).
fn collect(ev: notify::Result<notify::Event>, changed: &mut BTreeSet<PathBuf>) {
    let Ok(ev) = ev else { return };
    if matches!(ev.kind, EventKind::Access(_) | EventKind::Other) {
        return;
    }
    changed.extend(ev.paths);
}
