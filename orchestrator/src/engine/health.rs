//! Healthchecks: a task per container runs the check inside it (through the runtime's exec)
//! and keeps the status that `depends_on: service_healthy`, `ps` and `--wait` read.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use berth_runtime::container::{Record, Runtime, State};
use berth_runtime::image::Image;

use crate::api::container::HealthConfig;
use crate::compose::Project;

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

/// One run of a container: its init's host pid and start time. A check's verdict belongs to
/// the run it was made on; a container stopped and started again (by `berth start`, `restart`
/// or a policy) is a new run, `starting` until checked again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunId {
    pid: i32,
    started_at: Option<SystemTime>,
}

impl RunId {
    /// The run a container's state describes (meaningful while it runs).
    pub fn of(st: &State) -> RunId {
        RunId {
            pid: st.pid,
            started_at: st.started_at,
        }
    }
}

/// How many check results a container keeps (Docker keeps five).
const KEPT_PROBES: usize = 5;

/// One check's result, as Docker's `State.Health.Log` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub start: SystemTime,
    pub end: SystemTime,
    /// The check's exit code; -1 when it could not run or overran its timeout.
    pub exit_code: i64,
    /// What it printed (stdout and stderr, the first 4 KiB), or why it gave no verdict.
    pub output: String,
}

/// What inspect shows of a container's health: its status, the failures in a row and the
/// last checks' results, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    pub health: Health,
    pub failing_streak: u64,
    pub log: Vec<Probe>,
}

#[derive(Debug, Clone)]
struct Entry {
    run: RunId,
    health: Health,
    failing_streak: u64,
    log: std::collections::VecDeque<Probe>,
}

/// Current health of every checked container, by container id, with the run it is about.
#[derive(Debug, Default)]
pub struct HealthBook {
    map: Mutex<HashMap<String, Entry>>,
}

impl HealthBook {
    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The container's last recorded health, whatever run it was about.
    pub fn get(&self, id: &str) -> Option<Health> {
        self.entries().get(id).map(|e| e.health)
    }

    /// The health of the container's current run, as `ps`, `--wait` and `service_healthy`
    /// need it: none when it is not running or has no check; `starting` for a run no check
    /// loop has looked at yet (never the verdict on an earlier run).
    pub fn current(&self, rec: &Record, st: &State, running: bool) -> Option<Health> {
        let checked = rec.config.labels.contains_key(super::labels::HEALTHCHECK);
        self.of_current_run(&rec.id, running.then(|| RunId::of(st)), checked)
    }

    /// [`HealthBook::current`] for the run `run` (none: not running) of a container.
    fn of_current_run(&self, id: &str, run: Option<RunId>, checked: bool) -> Option<Health> {
        let run = run.filter(|_| checked)?;
        Some(self.of(id, run).unwrap_or(Health::Starting))
    }

    /// Takes the checking of `run` for a new loop; false when a loop already has it.
    fn claim(&self, id: &str, run: RunId) -> bool {
        let mut map = self.entries();
        if map.get(id).is_some_and(|e| e.run == run) {
            return false;
        }
        map.insert(
            id.to_string(),
            Entry {
                run,
                health: Health::Starting,
                failing_streak: 0,
                log: Default::default(),
            },
        );
        true
    }

    /// Keeps a check's result on `run` and the failures in a row so far.
    fn probed(&self, id: &str, run: RunId, probe: Probe, failing_streak: u64) {
        if let Some(e) = self.entries().get_mut(id).filter(|e| e.run == run) {
            if e.log.len() == KEPT_PROBES {
                e.log.pop_front();
            }
            e.log.push_back(probe);
            e.failing_streak = failing_streak;
        }
    }

    /// [`HealthBook::current`] with the streak and the last results of the current run.
    pub fn report(&self, rec: &Record, st: &State, running: bool) -> Option<HealthReport> {
        let health = self.current(rec, st, running)?;
        let run = RunId::of(st);
        let entries = self.entries();
        let entry = entries.get(&rec.id).filter(|e| e.run == run);
        Some(HealthReport {
            health,
            failing_streak: entry.map_or(0, |e| e.failing_streak),
            log: entry
                .map(|e| e.log.iter().cloned().collect())
                .unwrap_or_default(),
        })
    }

    /// Records a verdict on `run`, unless a newer run's loop owns the entry.
    fn set(&self, id: &str, run: RunId, health: Health) {
        if let Some(e) = self.entries().get_mut(id).filter(|e| e.run == run) {
            e.health = health;
        }
    }

    /// The health recorded for `run`, if the entry is still about it.
    fn of(&self, id: &str, run: RunId) -> Option<Health> {
        self.entries()
            .get(id)
            .filter(|e| e.run == run)
            .map(|e| e.health)
    }

    /// Drops `run`'s entry (its loop ends), leaving a newer run's alone.
    fn end(&self, id: &str, run: RunId) {
        let mut map = self.entries();
        if map.get(id).is_some_and(|e| e.run == run) {
            map.remove(id);
        }
    }

    /// Drops a container's status (stopped or removed).
    pub fn forget(&self, id: &str) {
        self.entries().remove(id);
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
    /// A create body's `Healthcheck` over the image's HEALTHCHECK (Docker's rules: an empty
    /// test and zero durations or retries inherit the image's value, then Docker's defaults
    /// of 30 s interval and timeout and 3 retries); `None` when disabled or absent.
    pub fn from_spec(hc: &HealthConfig, image: Option<&Image>) -> Option<Check> {
        let img = image.and_then(|i| i.healthcheck());
        let test = Some(hc.test.clone())
            .filter(|t| !t.is_empty())
            .or_else(|| img.as_ref().map(|i| i.test.clone()))?;
        let args = argv(&test)?;
        let set = |v: i64| u64::try_from(v).ok().filter(|v| *v > 0);
        let pick = |own: i64, img_v: Option<u64>, def: u64| {
            set(own)
                .or(img_v)
                .map(Duration::from_nanos)
                .unwrap_or(Duration::from_secs(def))
        };
        let img = img.as_ref();
        Some(Check {
            args,
            interval: pick(hc.interval, img.and_then(|i| i.interval), 30),
            timeout: pick(hc.timeout, img.and_then(|i| i.timeout), 30),
            retries: set(hc.retries)
                .or(img.and_then(|i| i.retries))
                .unwrap_or(3)
                .max(1),
            start_period: pick(hc.start_period, img.and_then(|i| i.start_period), 0),
            start_interval: pick(hc.start_interval, img.and_then(|i| i.start_interval), 5),
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

/// Starts the check loop of a started container's current run; it ends when that run ends.
/// Arming a run that already has its loop does nothing, so callers need not coordinate.
pub fn spawn(runtime: Runtime, book: Arc<HealthBook>, rec: Record, check: Check) {
    let Ok(st) = runtime.state(&rec) else {
        return;
    };
    let run = RunId::of(&st);
    if !book.claim(&rec.id, run) {
        return;
    }
    tokio::spawn(async move {
        let started = tokio::time::Instant::now();
        let mut failures = 0u64;
        loop {
            let in_start = started.elapsed() < check.start_period;
            let starting = book.of(&rec.id, run) == Some(Health::Starting);
            let wait = if in_start && starting {
                check.start_interval.min(check.interval)
            } else {
                check.interval
            };
            // The first check runs soon after start, as the start interval says.
            let first = failures == 0 && starting;
            tokio::time::sleep(if first {
                wait.min(Duration::from_millis(500))
            } else {
                wait
            })
            .await;
            let same_run = runtime
                .state(&rec)
                .is_ok_and(|st| RunId::of(&st) == run && runtime.is_running(&rec));
            if !same_run || book.of(&rec.id, run).is_none() {
                book.end(&rec.id, run);
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
            let start = SystemTime::now();
            let timeout = check.timeout;
            // The probe kills itself past its timeout (and says so).
            let exec = tokio::task::spawn_blocking(move || {
                super::health_probe::run(&rt, &r, args, timeout)
            });
            let (exit_code, output) = match exec.await {
                Ok(Ok(o)) => (i64::from(o.exit_code), o.output),
                Ok(Err(why)) => (-1, why),
                Err(join) => (-1, join.to_string()),
            };
            let ok = exit_code == 0;
            if ok {
                failures = 0;
                book.set(&rec.id, run, Health::Healthy);
            } else if !(in_start && book.of(&rec.id, run) == Some(Health::Starting)) {
                failures += 1;
                if failures >= check.retries {
                    book.set(&rec.id, run, Health::Unhealthy);
                }
            }
            let probe = Probe {
                start,
                end: SystemTime::now(),
                exit_code,
                output,
            };
            book.probed(&rec.id, run, probe, failures);
            tracing::debug!(container = %rec.config.name, ok, failures, "healthcheck");
        }
    });
}

/// How often [`watch`] looks for runs without a check loop.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// Arms the check of every running container whose current run has no loop: containers
/// started outside the daemon (`berth start`, `restart`, which drive the runtime directly)
/// get their healthcheck back this way. Runs for the daemon's lifetime.
pub async fn watch(
    runtime: Runtime,
    cache: super::record_cache::SharedRecordCache,
    book: Arc<HealthBook>,
) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let rt = runtime.clone();
        let cache = cache.clone();
        let Ok(running) = tokio::task::spawn_blocking(move || {
            cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .list_where(&rt, |rec| {
                    rec.config.labels.contains_key(super::labels::HEALTHCHECK)
                })
                .into_iter()
                .filter(|(rec, _)| rt.is_running(rec))
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        for (rec, st) in running {
            if book.of(&rec.id, RunId::of(&st)).is_some() {
                continue;
            }
            if let Some(check) = Check::from_labels(&rec.config.labels) {
                tracing::debug!(container = %rec.config.name, "arming the healthcheck of a new run");
                spawn(runtime.clone(), book.clone(), rec, check);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(pid: i32, secs: u64) -> RunId {
        RunId {
            pid,
            started_at: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs)),
        }
    }

    #[test]
    fn a_new_run_is_starting_not_the_last_runs_verdict() {
        let book = HealthBook::default();
        let (first, second) = (run(100, 1), run(200, 2));
        assert_eq!(
            book.of_current_run("c", Some(first), false),
            None,
            "no check"
        );
        assert_eq!(book.of_current_run("c", None, true), None, "not running");
        assert_eq!(
            book.of_current_run("c", Some(first), true),
            Some(Health::Starting),
            "running, checked, no loop yet"
        );
        assert!(book.claim("c", first));
        book.set("c", first, Health::Healthy);
        assert_eq!(
            book.of_current_run("c", Some(first), true),
            Some(Health::Healthy)
        );
        // Stopped and started outside the daemon: the verdict on the first run must not
        // carry over (it did: `up --wait` passed at once and `ps` showed no health).
        assert_eq!(
            book.of_current_run("c", Some(second), true),
            Some(Health::Starting)
        );
        // The same pid started again later is another run too.
        assert_eq!(
            book.of_current_run("c", Some(run(100, 3)), true),
            Some(Health::Starting)
        );
    }

    #[test]
    fn one_loop_per_run_and_old_loops_leave_new_runs_alone() {
        let book = HealthBook::default();
        let (first, second) = (run(100, 1), run(200, 2));
        assert!(book.claim("c", first));
        assert!(!book.claim("c", first), "a second loop for the same run");
        assert!(book.claim("c", second), "the new run gets its loop");
        book.set("c", first, Health::Unhealthy);
        book.end("c", first);
        assert_eq!(
            book.of("c", second),
            Some(Health::Starting),
            "untouched by the old loop"
        );
        book.set("c", second, Health::Healthy);
        assert_eq!(book.get("c"), Some(Health::Healthy));
        book.end("c", second);
        assert_eq!(book.get("c"), None);
    }
}
