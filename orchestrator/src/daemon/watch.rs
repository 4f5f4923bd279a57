//! Container events for `GET /v1/events`: while someone listens, the daemon compares the
//! instance's containers every 200 ms and publishes what changed (create, start, die, pause,
//! unpause, destroy, health_status). Watching the state on disk rather than hooking each call
//! site catches every change, whoever made it: the CLI's own verbs drive the runtime
//! directly, the daemon's `up`/`down`, restart policies, a process that died by itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_runtime::container::{Runtime, Status};

use super::Shared;
use crate::api::Event;
use crate::engine::labels;

/// What the watcher remembers of one container between two looks.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    state: &'static str,
    exit_code: Option<i32>,
    health: Option<&'static str>,
    attributes: BTreeMap<String, String>,
}

fn look(rt: &Runtime) -> HashMap<String, Seen> {
    rt.list()
        .into_iter()
        .map(|(rec, st)| {
            let running = rt.is_running(&rec);
            let state = if running && rt.is_paused(&rec) {
                "paused"
            } else if running {
                "running"
            } else if st.status == Status::Created {
                "created"
            } else {
                "exited"
            };
            let l = &rec.config.labels;
            let mut attributes = BTreeMap::new();
            attributes.insert("name".to_string(), rec.config.name.clone());
            for (key, label) in [
                ("project", labels::PROJECT),
                ("service", labels::SERVICE),
                ("number", labels::NUMBER),
            ] {
                if let Some(v) = l.get(label) {
                    attributes.insert(key.to_string(), v.clone());
                }
            }
            let seen = Seen {
                state,
                exit_code: st.exit_code,
                health: None,
                attributes,
            };
            (rec.id, seen)
        })
        .collect()
}

/// The events that lead from `before` to `now` for one container.
fn changes(before: Option<&Seen>, now: Option<&Seen>) -> Vec<(&'static str, Option<i32>)> {
    match (before, now) {
        (None, None) => vec![],
        (None, Some(n)) => {
            let mut v = vec![("create", None)];
            match n.state {
                "running" => v.push(("start", None)),
                "paused" => v.extend([("start", None), ("pause", None)]),
                "exited" => v.extend([("start", None), ("die", n.exit_code)]),
                _ => {}
            }
            v
        }
        (Some(b), None) => {
            let mut v = Vec::new();
            if matches!(b.state, "running" | "paused") {
                v.push(("die", None));
            }
            v.push(("destroy", None));
            v
        }
        (Some(b), Some(n)) => match (b.state, n.state) {
            (x, y) if x == y => {
                // Exited again between two looks (a quick restart): its code changed.
                if x == "exited" && b.exit_code != n.exit_code {
                    vec![("start", None), ("die", n.exit_code)]
                } else {
                    vec![]
                }
            }
            ("paused", "running") => vec![("unpause", None)],
            ("running", "paused") => vec![("pause", None)],
            (_, "running") => vec![("start", None)],
            (_, "paused") => vec![("start", None), ("pause", None)],
            ("paused" | "running", "exited") => vec![("die", n.exit_code)],
            (_, "exited") => vec![("start", None), ("die", n.exit_code)],
            _ => vec![],
        },
    }
}

fn event(id: &str, action: &str, seen: &Seen, exit_code: Option<i32>) -> Event {
    let mut attributes = seen.attributes.clone();
    if let Some(c) = exit_code {
        attributes.insert("exitCode".to_string(), c.to_string());
    }
    Event {
        time: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        kind: "container".into(),
        action: action.into(),
        id: id.to_string(),
        attributes,
    }
}

/// The container watcher's memory of the last look, shared by its 200 ms loop and by the
/// routes that publish an event a container's change must precede (a network destroyed right
/// after its last container was removed reports the disconnect first, as Docker does).
#[derive(Default)]
pub(crate) struct Watcher {
    last: tokio::sync::Mutex<Option<HashMap<String, Seen>>>,
}

impl Watcher {
    /// Looks at the containers now and publishes what changed since the last look.
    pub(crate) async fn look_now(&self, shared: &Shared) {
        let mut last = self.last.lock().await;
        if shared.events.receiver_count() == 0 {
            *last = None;
            return;
        }
        let exe = std::env::current_exe().unwrap_or_else(|_| "berth".into());
        let rt = Runtime::new(crate::engine::stack::runtime_config(
            &shared.opts.root,
            &shared.opts.run,
            exe,
        ));
        let Ok(mut now) = tokio::task::spawn_blocking(move || look(&rt)).await else {
            return;
        };
        if let Some(engine) = shared.engine.get() {
            for (id, seen) in now.iter_mut() {
                if matches!(seen.state, "running" | "paused") {
                    seen.health = engine.health_of(id).map(|h| h.as_str());
                }
            }
        }
        let Some(before) = last.take() else {
            *last = Some(now); // the first look after a listener came is the baseline
            return;
        };
        let mut ids: Vec<&String> = before.keys().chain(now.keys()).collect();
        ids.sort();
        ids.dedup();
        for id in ids {
            let (b, n) = (before.get(id), now.get(id));
            let Some(seen) = n.or(b) else { continue };
            for (action, code) in changes(b, n) {
                let _ = shared.events.send(event(id, action, seen, code));
            }
            if let Some(h) = n.and_then(|n| n.health)
                && b.and_then(|b| b.health) != Some(h)
            {
                let _ = shared
                    .events
                    .send(event(id, &format!("health_status: {h}"), seen, None));
            }
        }
        *last = Some(now);
    }
}

/// Runs for the daemon's lifetime; does nothing while no event stream is open.
pub(super) async fn run(shared: Arc<Shared>) {
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        shared.watcher.look_now(&shared).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: &'static str, code: Option<i32>) -> Seen {
        Seen {
            state,
            exit_code: code,
            health: None,
            attributes: BTreeMap::new(),
        }
    }

    #[test]
    fn transitions_become_docker_actions() {
        let acts = |b: Option<Seen>, n: Option<Seen>| -> Vec<&'static str> {
            changes(b.as_ref(), n.as_ref())
                .into_iter()
                .map(|(a, _)| a)
                .collect()
        };
        assert_eq!(acts(None, Some(seen("running", None))), ["create", "start"]);
        assert_eq!(
            acts(Some(seen("running", None)), Some(seen("exited", Some(3)))),
            ["die"]
        );
        assert_eq!(
            acts(Some(seen("running", None)), Some(seen("paused", None))),
            ["pause"]
        );
        assert_eq!(
            acts(Some(seen("paused", None)), Some(seen("running", None))),
            ["unpause"]
        );
        assert_eq!(acts(Some(seen("exited", Some(0))), None), ["destroy"]);
        assert_eq!(
            acts(Some(seen("exited", Some(1))), Some(seen("exited", Some(2)))),
            ["start", "die"]
        );
        assert!(acts(Some(seen("running", None)), Some(seen("running", None))).is_empty());
    }
}
