//! The host side of a RUN container that a build's options shape: its network mode, extra
//! `/etc/hosts` lines, `/dev/shm`, ulimits and privilege ([`RunOptions`]), and its output
//! heard line by line while it runs ([`BuildEvent`]), as Docker's classic builder streams it.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::build::run_options::RunOptions;
use crate::container::{ExitInfo, Record};

/// What a build reports while a RUN step runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    /// A RUN step's container is about to start.
    RunStarted {
        /// `[3/7] RUN make`.
        display: String,
        /// The container's id.
        container: String,
    },
    /// Output of the running step (stdout and stderr, as they come), whole lines.
    Output(String),
}

/// The options and cache sources of the build under way.
#[derive(Default)]
pub(super) struct PerBuild {
    pub(super) run: RunOptions,
    pub(super) sources: Vec<Image>,
}

impl<'a> Builder<'a> {
    /// Calls `events` as RUN steps start and print (from the builder's thread and from one
    /// that follows the step's output).
    pub fn with_events(mut self, events: &'a (dyn Fn(&BuildEvent) + Sync)) -> Builder<'a> {
        self.events = Some(events);
        self
    }

    /// Takes the request's RUN options and resolves its cache sources (an image that is not
    /// in the store is skipped, as Docker does).
    pub(super) fn begin(&self, req: &BuildRequest) -> Result<(), BuildError> {
        let sources = req
            .cache_from
            .iter()
            .filter_map(|r| match self.store.resolve(r) {
                Ok(img) => Some(img),
                Err(e) => {
                    tracing::info!(image = %r, error = %e, "cache source not in the store, skipped");
                    None
                }
            })
            .collect();
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        *cur = PerBuild {
            run: req.run.clone(),
            sources,
        };
        Ok(())
    }

    /// The network of a RUN step: its own `--network`, else the build's.
    pub(super) fn run_network(&self, step: RunNetworkMode) -> RunNetworkMode {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .run
            .network_for(step)
    }

    /// Applies the build's /dev/shm size, ulimits and privilege to a RUN container.
    pub(super) fn apply_run_options(&self, cfg: &mut ContainerConfig) {
        let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = cur.run.shm_size.filter(|s| *s > 0) {
            cfg.shm_size = s;
        }
        cfg.ulimits.extend(cur.run.ulimits.iter().cloned());
        cfg.privileged |= cur.run.privileged;
    }

    /// Adds the build's extra hosts to the created container's `/etc/hosts` (the runtime wrote
    /// its defaults with the container's hostname; these lines follow them, as in Docker).
    pub(super) fn add_extra_hosts(&self, rec: &Record, display: &str) -> Result<(), BuildError> {
        let lines = self
            .current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .run
            .hosts_lines();
        if lines.is_empty() {
            return Ok(());
        }
        let path = rec.dir.join("hosts");
        let io = |source| BuildError::Io {
            step: display.to_string(),
            op: "writing extra hosts into",
            path: path.clone(),
            source,
        };
        let mut text = fs::read_to_string(&path).map_err(io)?;
        text.push_str(&lines);
        fs::write(&path, text).map_err(io)
    }

    /// Starts a RUN container and waits for it; with a listener, its output is followed from
    /// its log while it runs and handed over line by line.
    pub(super) fn start_and_wait(
        &self,
        rec: &Record,
        display: &str,
    ) -> Result<ExitInfo, RuntimeError> {
        let Some(events) = self.events else {
            self.runtime.start(rec)?;
            return self.runtime.wait(rec);
        };
        events(&BuildEvent::RunStarted {
            display: display.to_string(),
            container: rec.id.clone(),
        });
        let done = AtomicBool::new(false);
        let log = rec.log_path();
        std::thread::scope(|s| {
            let follower = s.spawn(|| {
                let mut f: Option<logs::Follower> = None;
                loop {
                    let finished = done.load(Ordering::Acquire);
                    if f.is_none() && log.exists() {
                        f = Some(logs::Follower::new(&log, true));
                    }
                    if let Some(f) = f.as_mut() {
                        for e in f.poll() {
                            events(&BuildEvent::Output(e.log));
                        }
                    }
                    if finished {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            });
            let res = self.runtime.start(rec).and_then(|_| self.runtime.wait(rec));
            done.store(true, Ordering::Release);
            let _ = follower.join();
            res
        })
    }
}
