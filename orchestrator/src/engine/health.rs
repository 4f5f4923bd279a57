//! Healthchecks: a task per container runs the check inside it (through the runtime's exec)
//! and keeps the status that `depends_on: service_healthy`, `ps` and `--wait` read.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use berth_runtime::container::{Record, Runtime};
use berth_runtime::image::Image;

use crate::compose::{Project, Service};

/// Docker's health states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
}

impl Health {
    /// The word `ps` shows.
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        }
    }
}

/// Current health of every checked container, by container id.
#[derive(Debug, Default)]
pub struct HealthBook {
    map: Mutex<HashMap<String, Health>>,
}

impl HealthBook {
    /// The container's health, if it has a check.
    pub fn get(&self, id: &str) -> Option<Health> {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
    }

    fn set(&self, id: &str, h: Health) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), h);
    }

    /// Drops a container's status (stopped or removed).
    pub fn forget(&self, id: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }
}

/// A resolved check: what to run and when. Kept as a container label, so that a restarted
/// daemon or a policy restart re-arms it without the project file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Check {
    pub args: Vec<String>,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u64,
    pub start_period: Duration,
    pub start_interval: Duration,
}

fn argv(test: &[String]) -> Option<Vec<String>> {
    match test.first().map(String::as_str) {
        Some("NONE") | None => None,
        Some("CMD") => Some(test[1..].to_vec()).filter(|a| !a.is_empty()),
        Some("CMD-SHELL") => Some(vec!["/bin/sh".into(), "-c".into(), test[1..].join(" ")]),
        // A bare string test is a shell command (the loader normalises it, but be safe).
        Some(_) => Some(vec!["/bin/sh".into(), "-c".into(), test.join(" ")]),
    }
}

impl Check {
    /// The service's healthcheck, falling back to the image's HEALTHCHECK; `None` when
    /// disabled or absent. Defaults are Docker's (30 s interval and timeout, 3 retries).
    pub fn from_service(svc: &Service, image: Option<&Image>) -> Option<Check> {
        let img = image.and_then(|i| i.healthcheck());
        let hc = svc.healthcheck.as_ref();
        if hc.is_some_and(|h| h.disable) {
            return None;
        }
        let test = hc
            .map(|h| h.test.clone())
            .filter(|t| !t.is_empty())
            .or_else(|| img.as_ref().map(|i| i.test.clone()))?;
        let args = argv(&test)?;
        let ns = |v: Option<u64>| v.map(Duration::from_nanos);
        let pick = |svc_v: Option<Duration>, img_v: Option<Duration>, def: u64| {
            svc_v.or(img_v).unwrap_or(Duration::from_secs(def))
        };
        Some(Check {
            args,
            interval: pick(
                hc.and_then(|h| h.interval.as_ref()).map(|d| d.0),
                ns(img.as_ref().and_then(|i| i.interval)),
                30,
            ),
            timeout: pick(
                hc.and_then(|h| h.timeout.as_ref()).map(|d| d.0),
                ns(img.as_ref().and_then(|i| i.timeout)),
                30,
            ),
            retries: hc
                .and_then(|h| h.retries)
                .or(img.as_ref().and_then(|i| i.retries))
                .unwrap_or(3)
                .max(1),
            start_period: pick(
                hc.and_then(|h| h.start_period.as_ref()).map(|d| d.0),
                ns(img.as_ref().and_then(|i| i.start_period)),
                0,
            ),
            start_interval: pick(
                hc.and_then(|h| h.start_interval.as_ref()).map(|d| d.0),
                ns(img.as_ref().and_then(|i| i.start_interval)),
                5,
            ),
        })
    }
}

impl Check {
    /// The check recorded on a container, if any.
    pub fn from_labels(labels: &std::collections::BTreeMap<String, String>) -> Option<Check> {
        serde_json::from_str(labels.get(super::labels::HEALTHCHECK)?).ok()
    }
}

/// True when the service declares a usable healthcheck of its own.
pub fn has_check(project: &Project, service: &str) -> bool {
    project
        .services
        .get(service)
        .and_then(|s| s.healthcheck.as_ref())
        .is_some_and(|h| !h.disable && argv(&h.test).is_some())
}

/// Starts the check loop of a started container; it ends when the container stops.
pub fn spawn(runtime: Runtime, book: std::sync::Arc<HealthBook>, rec: Record, check: Check) {
    book.set(&rec.id, Health::Starting);
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut failures = 0u64;
        loop {
            let in_start = started.elapsed() < check.start_period;
            let wait = if in_start && book.get(&rec.id) == Some(Health::Starting) {
                check.start_interval.min(check.interval)
            } else {
                check.interval
            };
            // The first check runs soon after start, as the start interval says.
            let first = failures == 0 && book.get(&rec.id) == Some(Health::Starting);
            tokio::time::sleep(if first {
                wait.min(Duration::from_millis(500))
            } else {
                wait
            })
            .await;
            if !runtime.is_running(&rec) || book.get(&rec.id).is_none() {
                book.forget(&rec.id);
                return;
            }
            // A paused container cannot answer (the check would freeze with it): its
            // health stays as it was until it runs again.
            if runtime.is_paused(&rec) {
                continue;
            }
            let rt = runtime.clone();
            let r = rec.clone();
            let args = check.args.clone();
            let run = tokio::task::spawn_blocking(move || super::stack::exec_check(&rt, &r, args));
            let ok = matches!(
                tokio::time::timeout(check.timeout, run).await,
                Ok(Ok(Ok(0)))
            );
            if ok {
                failures = 0;
                book.set(&rec.id, Health::Healthy);
            } else if !(in_start && book.get(&rec.id) == Some(Health::Starting)) {
                failures += 1;
                if failures >= check.retries {
                    book.set(&rec.id, Health::Unhealthy);
                }
            }
            tracing::debug!(container = %rec.config.name, ok, failures, "healthcheck");
        }
    });
}
