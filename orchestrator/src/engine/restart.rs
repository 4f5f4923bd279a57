//! Restart policies, enforced by the daemon: `always`, `unless-stopped` and `on-failure[:N]`
//! restart a container that exits on its own (not one stopped with `stop`/`kill`), with
//! Docker's backoff: 100 ms doubling up to a minute, reset once a run lasted 10 s.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_runtime::container::Status;

use super::labels;
use super::record_cache::SharedRecordCache;
use super::stack::Engine;

/// What a policy label says to do after an exit with `code`, given `restarts` so far.
pub fn wants_restart(policy: &str, code: i32, restarts: u32) -> bool {
    match policy {
        "always" | "unless-stopped" => true,
        "on-failure" => code != 0,
        p => match p.strip_prefix("on-failure:").map(str::parse::<u32>) {
            Some(Ok(max)) => code != 0 && restarts < max,
            _ => false,
        },
    }
}

/// Backoff before restart number `n` (from 0).
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(100u64.saturating_mul(1u64 << n.min(10))).min(Duration::from_secs(60))
}

/// Every how many polls (of 200 ms) the loop reads the state of every container, not only of
/// those with a policy, so that a container whose shim died is settled within seconds even
/// when no one asks about it (see `Runtime::state`).
const SETTLE_EVERY: u32 = 25;

struct Track {
    restarts: u32,
    due: Option<Instant>,
    started: Instant,
}

/// Watches the instance's containers and restarts them per their policy; runs for the
/// daemon's lifetime.
pub async fn run(engine: Arc<Engine>, cache: SharedRecordCache) {
    let mut tracks: HashMap<String, Track> = HashMap::new();
    let mut polls = 0u32;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        polls = polls.wrapping_add(1);
        let sweep = polls.is_multiple_of(SETTLE_EVERY);
        let rt = engine.runtime.clone();
        let cache = cache.clone();
        let Ok(list) = tokio::task::spawn_blocking(move || {
            let mut cache = cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if sweep {
                cache.settle_all(&rt);
            }
            cache
                .list_where(&rt, |r| r.config.labels.contains_key(labels::RESTART))
                .into_iter()
                .map(|(r, s)| {
                    let running = rt.is_running(&r);
                    let manual = rt.stopped_by_user(&r);
                    (r, s, running, manual)
                })
                .collect::<Vec<_>>()
        })
        .await
        else {
            continue;
        };
        tracks.retain(|id, _| {
            let kept = list.iter().any(|(r, ..)| &r.id == id);
            if !kept {
                engine.count_restart(id, true);
            }
            kept
        });
        for (rec, st, running, manual) in list {
            let t = tracks.entry(rec.id.clone()).or_insert(Track {
                restarts: 0,
                due: None,
                started: Instant::now(),
            });
            if running {
                t.due = None;
                if t.started.elapsed() >= Duration::from_secs(10) {
                    t.restarts = 0;
                }
                continue;
            }
            let policy = rec
                .config
                .labels
                .get(labels::RESTART)
                .cloned()
                .unwrap_or_default();
            let code = st.exit_code.unwrap_or(0);
            if manual || st.status != Status::Exited || !wants_restart(&policy, code, t.restarts) {
                continue;
            }
            let due = *t
                .due
                .get_or_insert_with(|| Instant::now() + backoff(t.restarts));
            if Instant::now() < due {
                continue;
            }
            t.due = None;
            t.restarts += 1;
            t.started = Instant::now();
            engine.count_restart(&rec.id, false);
            let rt = engine.runtime.clone();
            let name = rec.config.name.clone();
            let n = t.restarts;
            let again = rec.clone();
            match tokio::task::spawn_blocking(move || rt.start(&rec)).await {
                Ok(Ok(_)) => {
                    tracing::info!(container = %name, %policy, restart = n, "restarted");
                    engine.arm_health(again);
                }
                Ok(Err(err)) => tracing::warn!(container = %name, %err, "restart failed"),
                Err(err) => tracing::warn!(container = %name, %err, "restart task failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_follow_docker() {
        assert!(wants_restart("always", 0, 99));
        assert!(wants_restart("unless-stopped", 0, 0));
        assert!(!wants_restart("on-failure", 0, 0));
        assert!(wants_restart("on-failure", 1, 50));
        assert!(wants_restart("on-failure:2", 1, 1));
        assert!(!wants_restart("on-failure:2", 1, 2));
        assert!(!wants_restart("no", 1, 0));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(0), Duration::from_millis(100));
        assert_eq!(backoff(3), Duration::from_millis(800));
        assert_eq!(backoff(30), Duration::from_secs(60));
    }
}
