//! `GET /events`: berth's event bus in Docker's event JSON (`Type`, `Action`, `Actor{ID,
//! Attributes}`, `scope`, `time`, `timeNano`), with Docker's filters and `since`/`until`.
//!
//! From the first Docker API request on, a recorder follows the bus and keeps the last 256
//! events (as dockerd keeps its own), so `docker events --since 10m` replays what happened
//! before the client came. The recorder also makes the daemon's container watcher run from
//! then on (it looks at the containers while anyone listens); a daemon no Docker client ever
//! talked to keeps no history and pays nothing for it.
//!
//! Mapped: container events (with the container's image and labels as attributes, as
//! Docker's carry them, so `label=com.docker.compose.project=x` filters work), network and
//! image and volume events, the daemon's own start and stop. berth's project and reconcile
//! events have no Docker type and are not sent here (`berth system events` shows them).
//! The Docker routes publish image, network and volume events through [`emit`]; the volume
//! mounts and network connections of a container's start and stop are derived here from its
//! `start` and `die`, as Docker reports them around those.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::broadcast;

use super::errors::ApiError;
use super::query::{self, Filters};
use super::{Body, Docker, host};
use crate::api::Event;

/// Events kept for `since`/`until` (dockerd keeps as many).
const KEEP: usize = 256;

/// The filter keys Docker accepts on `/events`.
const ACCEPTED: &[&str] = &[
    "config",
    "container",
    "daemon",
    "event",
    "image",
    "label",
    "network",
    "node",
    "plugin",
    "scope",
    "secret",
    "service",
    "type",
    "volume",
];

/// One event as Docker sends it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub(super) struct Message {
    /// The action again, for clients older than `Action` (container and image events).
    #[serde(skip_serializing_if = "String::is_empty")]
    status: String,
    /// The actor's id again, for the same clients.
    #[serde(skip_serializing_if = "String::is_empty")]
    id: String,
    /// The container's image, for the same clients.
    #[serde(skip_serializing_if = "String::is_empty")]
    from: String,
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Action")]
    action: String,
    #[serde(rename = "Actor")]
    actor: Actor,
    scope: &'static str,
    time: i64,
    #[serde(rename = "timeNano")]
    time_nano: i64,
}

/// What an event is about.
#[derive(Debug, Clone, Serialize, PartialEq)]
struct Actor {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Attributes")]
    attributes: BTreeMap<String, String>,
}

/// What Docker's container events carry beyond berth's: the image and the labels; and the
/// named volumes it mounts (name, destination, read-write) for volume mount/unmount events.
#[derive(Debug, Clone, Default, PartialEq)]
struct ContainerFacts {
    image: String,
    labels: BTreeMap<String, String>,
    volumes: Vec<(String, String, bool)>,
}

/// The history and the live feed of Docker-shaped events.
pub(super) struct Events {
    recording: AtomicBool,
    history: Mutex<VecDeque<Message>>,
    live: broadcast::Sender<Message>,
}

impl Events {
    /// No history yet; nothing recorded until [`Events::start_recording`].
    pub fn new() -> Events {
        Events {
            recording: AtomicBool::new(false),
            history: Mutex::new(VecDeque::with_capacity(KEEP)),
            live: broadcast::channel(1024).0,
        }
    }

    /// Starts the recorder once, on the first Docker API request.
    pub fn start_recording(&self, docker: &Arc<Docker>) {
        if !self.recording.swap(true, Ordering::SeqCst) {
            tokio::spawn(record(docker.clone()));
        }
    }

    /// Open `/events` streams (`NEventsListener` of `/info`).
    pub fn listeners(&self) -> usize {
        self.live.receiver_count()
    }

    fn publish(&self, m: Message) {
        let mut h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        if h.len() == KEEP {
            h.pop_front();
        }
        h.push_back(m.clone());
        // Sent under the lock: a new stream takes its history and its feed at one point.
        let _ = self.live.send(m);
    }

    /// The kept events between `since` and `until` (none when neither is given, as in
    /// Docker), and the feed of those that come after.
    fn subscribe(
        &self,
        since: Option<SystemTime>,
        until: Option<SystemTime>,
    ) -> (Vec<Message>, broadcast::Receiver<Message>) {
        let h = self.history.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.live.subscribe();
        if since.is_none() && until.is_none() {
            return (Vec::new(), rx);
        }
        let lo = since.map_or(i64::MIN, nanos);
        let hi = until.map_or(i64::MAX, nanos);
        let past = h
            .iter()
            .filter(|m| m.time_nano >= lo && m.time_nano <= hi)
            .cloned()
            .collect();
        (past, rx)
    }
}

/// Publishes an image, network or volume event on berth's bus, as the Docker route that made
/// the change reports it (berth's `system events` sees it too; the recorder gives it Docker's
/// shape). `attributes` are Docker's for that action (`name`, `type`, `container`, `driver`).
pub(super) fn emit(
    docker: &Docker,
    kind: &str,
    action: &str,
    id: &str,
    attributes: &[(&str, &str)],
) {
    let _ = docker.shared.events.send(Event {
        time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        kind: kind.to_string(),
        action: action.to_string(),
        id: id.to_string(),
        attributes: attributes
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    });
}

/// An image event as Docker's image service logs it: the actor is `id` (an image id, or the
/// reference for pull and push) and `name` its name.
pub(super) fn image_event(docker: &Docker, action: &str, id: &str, name: &str) {
    emit(docker, "image", action, id, &[("name", name)]);
}

fn nanos(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos().min(i64::MAX as u128) as i64)
}

/// Follows the daemon's bus for the daemon's life, keeping what Docker clients can see.
async fn record(docker: Arc<Docker>) {
    let mut rx = docker.shared.events.subscribe();
    let mut closing = docker.shared.closing.subscribe();
    let root = docker.shared.opts.root.clone();
    let daemon_id = host::engine_id(&root);
    let mut facts: HashMap<String, ContainerFacts> = HashMap::new();
    // The networks (id, name) each running container was connected to.
    let mut attached: HashMap<String, Vec<(String, String)>> = HashMap::new();
    loop {
        let received = tokio::select! {
            r = rx.recv() => r,
            _ = closing.wait_for(|c| *c) => {
                // The daemon's last events (its stop) were sent before closing.
                while let Ok(ev) = rx.try_recv() {
                    if let Some(m) = to_docker(&ev, None, &daemon_id) {
                        docker.events.publish(m);
                    }
                }
                return;
            }
        };
        let ev = match received {
            Ok(ev) => ev,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(skipped = n, "Docker event recorder too slow");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if ev.kind == "container" && !facts.contains_key(&ev.id) {
            let dir = root.join("containers").join(&ev.id);
            if let Ok(Some(f)) = tokio::task::spawn_blocking(move || container_facts(&dir)).await {
                facts.insert(ev.id.clone(), f);
            }
        }
        track_connections(&ev, &mut attached);
        let m = to_docker(&ev, facts.get(&ev.id), &daemon_id);
        let mut before = Vec::new();
        let mut after = Vec::new();
        if ev.kind == "container" && ev.action == "start" {
            let nets = container_networks(&docker, &ev.id).await;
            before = start_events(&ev.id, facts.get(&ev.id), &nets);
            attached.insert(ev.id.clone(), nets);
        }
        if ev.kind == "container" && ev.action == "die" {
            let nets = attached.remove(&ev.id).unwrap_or_default();
            after = die_events(&ev.id, facts.get(&ev.id), &nets);
        }
        if ev.kind == "container" && ev.action == "destroy" {
            facts.remove(&ev.id);
            attached.remove(&ev.id);
        }
        let derived = |list: Vec<Event>| {
            list.into_iter()
                .filter_map(|e| to_docker(&e, None, &daemon_id))
                .collect::<Vec<_>>()
        };
        for m in derived(before).into_iter().chain(m).chain(derived(after)) {
            docker.events.publish(m);
        }
    }
}

/// The image and labels of a container from its record (none once it is removed).
fn container_facts(dir: &Path) -> Option<ContainerFacts> {
    let rec = berth_runtime::container::Record::load(dir).ok()?;
    let read = |f: &str| {
        std::fs::read_to_string(dir.join(f))
            .ok()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let image = read("image-ref")
        .or_else(|| rec.config.labels.get(crate::engine::labels::IMAGE).cloned())
        .or_else(|| read(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE))
        .unwrap_or_default();
    let volumes = rec
        .config
        .mounts
        .iter()
        .filter_map(|m| match m {
            berth_runtime::container::config::MountSpec::Volume {
                name,
                target,
                read_only,
                ..
            } => Some((name.clone(), target.display().to_string(), !read_only)),
            _ => None,
        })
        .collect();
    Some(ContainerFacts {
        image,
        labels: rec.config.labels,
        volumes,
    })
}

/// The networks (id, name) netd has the container on.
async fn container_networks(docker: &Docker, id: &str) -> Vec<(String, String)> {
    let Some(n) = super::containers_list::networks(docker).await.remove(id) else {
        return Vec::new();
    };
    n.names
        .iter()
        .map(|name| {
            let net_id = n.settings["Networks"][name.as_str()]["NetworkID"]
                .as_str()
                .unwrap_or(name)
                .to_string();
            (net_id, name.clone())
        })
        .collect()
}

/// Keeps the connections of running containers current as the network routes change them.
fn track_connections(ev: &Event, attached: &mut HashMap<String, Vec<(String, String)>>) {
    if ev.kind != "network" {
        return;
    }
    let (Some(c), Some(name)) = (ev.attributes.get("container"), ev.attributes.get("name")) else {
        return;
    };
    match ev.action.as_str() {
        "connect" => attached
            .entry(c.clone())
            .or_default()
            .push((ev.id.clone(), name.clone())),
        "disconnect" => {
            if let Some(list) = attached.get_mut(c) {
                list.retain(|(id, _)| *id != ev.id);
            }
        }
        _ => {}
    }
}

fn derived(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)], at: &str) -> Event {
    Event {
        time: at.to_string(),
        kind: kind.to_string(),
        action: action.to_string(),
        id: id.to_string(),
        attributes: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// What Docker reports as a container starts, before its `start`: each named volume mounted
/// and each network connected.
fn start_events(
    container: &str,
    facts: Option<&ContainerFacts>,
    nets: &[(String, String)],
) -> Vec<Event> {
    let at = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let mut out = Vec::new();
    for (name, dest, rw) in facts.map(|f| f.volumes.as_slice()).unwrap_or_default() {
        out.push(derived(
            "volume",
            "mount",
            name,
            &[
                ("container", container),
                ("destination", dest),
                ("driver", "local"),
                ("propagation", ""),
                ("read/write", if *rw { "true" } else { "false" }),
            ],
            &at,
        ));
    }
    for (id, name) in nets {
        out.push(derived(
            "network",
            "connect",
            id,
            &[("container", container), ("name", name), ("type", "bridge")],
            &at,
        ));
    }
    out
}

/// What Docker reports after a container dies: each network disconnected, each volume
/// unmounted.
fn die_events(
    container: &str,
    facts: Option<&ContainerFacts>,
    nets: &[(String, String)],
) -> Vec<Event> {
    let at = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let mut out = Vec::new();
    for (id, name) in nets {
        out.push(derived(
            "network",
            "disconnect",
            id,
            &[("container", container), ("name", name), ("type", "bridge")],
            &at,
        ));
    }
    for (name, _, _) in facts.map(|f| f.volumes.as_slice()).unwrap_or_default() {
        out.push(derived(
            "volume",
            "unmount",
            name,
            &[("container", container), ("driver", "local")],
            &at,
        ));
    }
    out
}

/// berth's event in Docker's shape; `None` for kinds Docker has no type for.
fn to_docker(ev: &Event, facts: Option<&ContainerFacts>, daemon_id: &str) -> Option<Message> {
    let when = humantime::parse_rfc3339_weak(&ev.time)
        .or_else(|_| humantime::parse_rfc3339(&ev.time))
        .unwrap_or_else(|_| SystemTime::now());
    let time_nano = nanos(when);
    let mut attributes = BTreeMap::new();
    let (kind, id, legacy) = match ev.kind.as_str() {
        "container" => {
            // berth's own "connect" names no network: Docker's is a network event.
            if ev.action == "connect" {
                return None;
            }
            if let Some(f) = facts {
                attributes.extend(f.labels.clone());
                if !f.image.is_empty() {
                    attributes.insert("image".to_string(), f.image.clone());
                }
            }
            for (k, v) in &ev.attributes {
                match k.as_str() {
                    // The compose labels are there under their own keys already.
                    "project" | "service" | "number" if facts.is_some() => {}
                    _ => {
                        attributes.insert(k.clone(), v.clone());
                    }
                }
            }
            ("container", ev.id.clone(), true)
        }
        "network" | "image" | "volume" => {
            attributes.extend(ev.attributes.clone());
            attributes
                .entry("name".to_string())
                .or_insert_with(|| ev.id.clone());
            (ev.kind.as_str(), ev.id.clone(), ev.kind == "image")
        }
        "daemon" => {
            attributes.insert("name".to_string(), host::hostname());
            ("daemon", daemon_id.to_string(), false)
        }
        _ => return None,
    };
    let (status, legacy_id, from) = if legacy {
        (
            ev.action.clone(),
            id.clone(),
            attributes.get("image").cloned().unwrap_or_default(),
        )
    } else {
        Default::default()
    };
    Some(Message {
        status,
        id: legacy_id,
        from,
        kind: kind.to_string(),
        action: ev.action.clone(),
        actor: Actor { id, attributes },
        scope: "local",
        time: time_nano / 1_000_000_000,
        time_nano,
    })
}

/// Whether an event passes Docker's event filters (every key given must match).
fn matches(f: &Filters, m: &Message) -> bool {
    let exact = |key: &str, v: &str| f.get(key).is_none_or(|s| s.is_empty() || s.contains(v));
    let fuzzy_name = |key: &str| {
        let Some(values) = f.get(key).filter(|s| !s.is_empty()) else {
            return true;
        };
        if m.kind != key {
            return false;
        }
        let name = m.actor.attributes.get("name").map_or("", String::as_str);
        values
            .iter()
            .any(|v| m.actor.id.starts_with(v.as_str()) || name == v)
    };
    let event_ok = f.get("event").is_none_or(|s| {
        let base = m.action.split(':').next().unwrap_or("");
        s.is_empty() || s.contains(&m.action) || s.contains(base)
    });
    let image_ok = f.get("image").is_none_or(|s| {
        let attr = if m.kind == "image" { "name" } else { "image" };
        let name = m.actor.attributes.get(attr).map_or("", String::as_str);
        let strip = |r: &str| -> String {
            match r.rsplit_once(':') {
                Some((repo, tag)) if !tag.contains('/') => repo.to_string(),
                _ => r.to_string(),
            }
        };
        s.is_empty()
            || [m.actor.id.as_str(), name]
                .into_iter()
                .any(|c| !c.is_empty() && (s.contains(c) || s.contains(&strip(c))))
    });
    let labels_ok = f.get("label").is_none_or(|s| {
        s.iter().all(|l| match l.split_once('=') {
            Some((k, v)) => m.actor.attributes.get(k).is_some_and(|a| a == v),
            None => m.actor.attributes.contains_key(l),
        })
    });
    event_ok
        && exact("type", &m.kind)
        && exact("scope", m.scope)
        && [
            "container",
            "network",
            "volume",
            "daemon",
            "plugin",
            "node",
            "service",
            "secret",
            "config",
        ]
        .into_iter()
        .all(fuzzy_name)
        && image_ok
        && labels_ok
}

/// A `since`/`until` value: seconds since the epoch, with an optional fraction (the docker
/// CLI sends `1700000000.000000000`, docker-py whole seconds).
fn timestamp(query: &str, key: &str) -> Result<Option<SystemTime>, ApiError> {
    let Some(raw) = query::get(query, key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request(format!("invalid value for {key}: {raw:?}"));
    let (secs, frac) = raw.split_once('.').unwrap_or((&raw, ""));
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        digits.parse().map_err(|_| bad())?
    };
    UNIX_EPOCH
        .checked_add(Duration::new(secs, nanos))
        .map(Some)
        .ok_or_else(bad)
}

/// `GET /events[?since=&until=&filters=]`: the kept events in the range, then (unless
/// `until` is past) the new ones as they come, until `until`, the client leaves or the
/// daemon stops; one JSON document per line.
pub(super) fn stream(docker: &Arc<Docker>, query: &str) -> Result<Response<Body>, ApiError> {
    let filters = query::filters(query, ACCEPTED)?;
    let since = timestamp(query, "since")?;
    let until = timestamp(query, "until")?;
    if let (Some(s), Some(u)) = (since, until)
        && u < s
    {
        return Err(ApiError::bad_request(format!(
            "`since` time ({}) cannot be after `until` time ({})",
            query::get(query, "since").unwrap_or_default(),
            query::get(query, "until").unwrap_or_default()
        )));
    }
    let now = SystemTime::now();
    let (past, rx) = docker.events.subscribe(since, until);
    let past: VecDeque<Message> = past.into_iter().filter(|m| matches(&filters, m)).collect();
    let only_past = until.is_some_and(|u| u <= now);
    let deadline = until.map(|u| Instant::now() + u.duration_since(now).unwrap_or_default());
    let closing = docker.shared.closing.subscribe();
    struct State {
        past: VecDeque<Message>,
        rx: Option<broadcast::Receiver<Message>>,
        filters: Filters,
        deadline: Option<Instant>,
        closing: tokio::sync::watch::Receiver<bool>,
    }
    let state = State {
        past,
        rx: (!only_past).then_some(rx),
        filters,
        deadline,
        closing,
    };
    let body = futures::stream::unfold(state, |mut st| async move {
        let m = match st.past.pop_front() {
            Some(m) => m,
            None => loop {
                let rx = st.rx.as_mut()?;
                let deadline = st.deadline;
                let until = async move {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d.into()).await,
                        None => std::future::pending().await,
                    }
                };
                let got = tokio::select! {
                    r = rx.recv() => r,
                    _ = until => return None,
                    _ = st.closing.wait_for(|c| *c) => return None,
                };
                match got {
                    Ok(m) if matches(&st.filters, &m) => break m,
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "Docker event stream client too slow");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            },
        };
        let mut line = serde_json::to_vec(&m).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), st))
    });
    let mut resp = Response::new(StreamBody::new(body).boxed());
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        Event {
            time: "2026-01-02T03:04:05.678Z".into(),
            kind: kind.into(),
            action: action.into(),
            id: id.into(),
            attributes: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    fn facts() -> ContainerFacts {
        ContainerFacts {
            image: "busybox:e2e".into(),
            labels: [
                ("com.docker.compose.project".to_string(), "shop".to_string()),
                ("tier".to_string(), "web".to_string()),
            ]
            .into(),
            volumes: Vec::new(),
        }
    }

    #[test]
    fn container_events_carry_dockers_fields() {
        let e = ev(
            "container",
            "die",
            "abc123",
            &[("name", "web-1"), ("exitCode", "3"), ("project", "shop")],
        );
        let m = to_docker(&e, Some(&facts()), "uuid").expect("mapped");
        let v = serde_json::to_value(&m).expect("json");
        assert_eq!(v["Type"], "container");
        assert_eq!(v["Action"], "die");
        assert_eq!(v["status"], "die");
        assert_eq!(v["id"], "abc123");
        assert_eq!(v["from"], "busybox:e2e");
        assert_eq!(v["scope"], "local");
        assert_eq!(v["Actor"]["ID"], "abc123");
        let a = &v["Actor"]["Attributes"];
        assert_eq!(a["name"], "web-1");
        assert_eq!(a["exitCode"], "3");
        assert_eq!(a["image"], "busybox:e2e");
        assert_eq!(a["com.docker.compose.project"], "shop");
        assert!(a.get("project").is_none(), "{a}");
        assert_eq!(v["time"], 1767323045);
        assert_eq!(v["timeNano"], 1767323045678000000i64);
    }

    #[test]
    fn only_kinds_docker_has_are_sent() {
        assert!(to_docker(&ev("project", "up", "shop", &[]), None, "u").is_none());
        assert!(to_docker(&ev("reconcile", "repair", "netd", &[]), None, "u").is_none());
        assert!(to_docker(&ev("container", "connect", "abc", &[]), None, "u").is_none());
        let d = to_docker(&ev("daemon", "start", "42", &[]), None, "uuid").expect("daemon");
        assert_eq!((d.kind.as_str(), d.actor.id.as_str()), ("daemon", "uuid"));
        assert!(d.status.is_empty());
        let n = to_docker(&ev("network", "conflict", "app", &[]), None, "u").expect("network");
        assert_eq!(n.actor.attributes["name"], "app");
    }

    fn filters(json: &str) -> Filters {
        query::filters(&format!("filters={json}"), ACCEPTED).expect("filters")
    }

    #[test]
    fn filters_match_as_dockers() {
        let e = ev(
            "container",
            "health_status: healthy",
            "abc123",
            &[("name", "web-1")],
        );
        let m = to_docker(&e, Some(&facts()), "u").expect("mapped");
        assert!(matches(&Filters::new(), &m));
        assert!(matches(&filters(r#"{"type":["container"]}"#), &m));
        assert!(!matches(&filters(r#"{"type":["network"]}"#), &m));
        assert!(matches(&filters(r#"{"event":["health_status"]}"#), &m));
        assert!(!matches(&filters(r#"{"event":["start"]}"#), &m));
        assert!(matches(&filters(r#"{"container":["abc"]}"#), &m));
        assert!(matches(&filters(r#"{"container":["web-1"]}"#), &m));
        assert!(!matches(&filters(r#"{"container":["web"]}"#), &m));
        assert!(matches(&filters(r#"{"label":["tier"]}"#), &m));
        assert!(matches(
            &filters(r#"{"label":["com.docker.compose.project=shop","tier=web"]}"#),
            &m
        ));
        assert!(!matches(&filters(r#"{"label":["tier=db"]}"#), &m));
        assert!(matches(&filters(r#"{"image":["busybox"]}"#), &m));
        assert!(matches(&filters(r#"{"image":["busybox:e2e"]}"#), &m));
        assert!(!matches(&filters(r#"{"image":["alpine"]}"#), &m));
        assert!(!matches(&filters(r#"{"network":["app"]}"#), &m));
        assert!(matches(&filters(r#"{"scope":["local"]}"#), &m));
    }

    #[test]
    fn a_start_mounts_and_connects_and_a_death_undoes_it() {
        let f = ContainerFacts {
            volumes: vec![("data".into(), "/data".into(), false)],
            ..facts()
        };
        let nets = [("n1id".to_string(), "app".to_string())];
        let up: Vec<Message> = start_events("c1", Some(&f), &nets)
            .iter()
            .filter_map(|e| to_docker(e, None, "u"))
            .collect();
        let shape: Vec<(&str, &str, &str)> = up
            .iter()
            .map(|m| (m.kind.as_str(), m.action.as_str(), m.actor.id.as_str()))
            .collect();
        assert_eq!(
            shape,
            [("volume", "mount", "data"), ("network", "connect", "n1id")]
        );
        assert_eq!(up[0].actor.attributes["read/write"], "false");
        assert_eq!(up[0].actor.attributes["container"], "c1");
        assert_eq!(up[1].actor.attributes["name"], "app");
        assert!(up.iter().all(|m| m.status.is_empty()), "no legacy fields");
        let down: Vec<String> = die_events("c1", Some(&f), &nets)
            .iter()
            .map(|e| format!("{} {}", e.kind, e.action))
            .collect();
        assert_eq!(down, ["network disconnect", "volume unmount"]);
        let m = filters(r#"{"volume":["data"],"event":["mount"]}"#);
        assert!(matches(&m, &up[0]) && !matches(&m, &up[1]));
        let mut attached = HashMap::new();
        track_connections(
            &ev(
                "network",
                "connect",
                "n2",
                &[("container", "c1"), ("name", "db")],
            ),
            &mut attached,
        );
        track_connections(
            &ev(
                "network",
                "disconnect",
                "n2",
                &[("container", "c1"), ("name", "db")],
            ),
            &mut attached,
        );
        assert_eq!(attached.get("c1").map(Vec::len), Some(0));
    }

    #[test]
    fn timestamps_read_as_the_clients_send_them() {
        let t = |q: &str| timestamp(q, "since");
        assert_eq!(t("").ok(), Some(None));
        let secs = |s: u64, n: u32| Some(Some(UNIX_EPOCH + Duration::new(s, n)));
        assert_eq!(t("since=1700000000").ok(), secs(1_700_000_000, 0));
        assert_eq!(
            t("since=1700000000.000000500").ok(),
            secs(1_700_000_000, 500)
        );
        assert_eq!(
            t("since=1700000000.5").ok(),
            secs(1_700_000_000, 500_000_000)
        );
        assert!(t("since=yesterday").is_err());
        assert!(t("since=1.x").is_err());
        assert!(t("since=-5").is_err());
    }

    #[test]
    fn history_keeps_the_last_events_and_answers_ranges() {
        let events = Events::new();
        for i in 0..(KEEP as i64 + 10) {
            let mut m = to_docker(&ev("daemon", "start", "1", &[]), None, "u").expect("m");
            m.time_nano = i * 1_000_000_000;
            m.time = i;
            events.publish(m);
        }
        let at = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        let (none, _) = events.subscribe(None, None);
        assert!(none.is_empty());
        let (all, _) = events.subscribe(Some(at(0)), None);
        assert_eq!(all.len(), KEEP);
        assert_eq!(all[0].time, 10);
        let (some, _) = events.subscribe(Some(at(100)), Some(at(109)));
        assert_eq!(some.len(), 10);
    }
}
