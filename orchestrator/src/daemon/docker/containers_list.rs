//! `GET /containers/json` (`docker ps`): the instance's containers in Docker's summary shape,
//! newest first, with Docker's `all`, `limit` and `filters` (label, name, status, id,
//! ancestor, network). Networks and published ports come from netd, as berth's own `ls` reads
//! them; the rest from the runtime's records.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use berth_runtime::container::{NetworkMode, Record};

use super::errors::ApiError;
use super::query::{self, Filters};
use super::{Docker, status};
use crate::api::container::ContainerNetworks;
use crate::api::mounts::docker_mounts;
use crate::engine::labels;

/// The filters `docker ps --filter` takes that berth answers.
const FILTERS: &[&str] = &[
    "label", "name", "status", "id", "ancestor", "network", "health",
];

/// What netd holds of every container's networks, by id; nothing (and no engine opened) on an
/// instance that never made a network.
pub(super) async fn networks(docker: &Docker) -> BTreeMap<String, ContainerNetworks> {
    if !docker.shared.opts.root.join("netd").exists() {
        return BTreeMap::new();
    }
    match docker.shared.engine().await {
        Ok(engine) => crate::daemon::routes::containers::by_container(&engine.netd.state().await),
        Err(err) => {
            tracing::warn!(%err, "reading the containers' networks");
            BTreeMap::new()
        }
    }
}

/// A time as Unix seconds.
pub(super) fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `GET /containers/json?all=&limit=&filters=`.
pub(super) async fn list(
    docker: &Arc<Docker>,
    query: &str,
) -> Result<Vec<serde_json::Value>, ApiError> {
    let filters = query::filters(query, FILTERS)?;
    let all = query::get(query, "all").is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let limit = query::get(query, "limit")
        .and_then(|l| l.parse::<i64>().ok())
        .filter(|l| *l > 0);
    let nets = networks(docker).await;
    let rt = docker.rt.clone();
    // Health is the engine's; an engine not yet open has run no check.
    let engine = docker.shared.engine.get().cloned();
    let rows = tokio::task::spawn_blocking(move || {
        let now = SystemTime::now();
        let mut rows: Vec<(SystemTime, serde_json::Value)> = Vec::new();
        for (rec, st) in rt.list() {
            let state = status::state(&rt, &rec, &st);
            let (image, image_id) =
                crate::engine::status_text::image_of(&rec.dir, &rec.config.labels);
            let net = nets.get(&rec.id);
            let running = matches!(state, "running" | "paused");
            let health = engine
                .as_ref()
                .filter(|_| running && rec.config.labels.contains_key(labels::HEALTHCHECK))
                .and_then(|e| e.health_report(&rec, &st, running))
                .map(|r| r.health.as_str());
            let row = Row {
                rec: &rec,
                state,
                image: &image,
                image_id: &image_id,
                networks: net.map(|n| n.names.as_slice()).unwrap_or_default(),
                health,
            };
            // Docker lists running (and paused) containers unless all, a limit or a status
            // filter asks for more.
            let everything = all || limit.is_some() || filters.contains_key("status");
            if !everything && !matches!(state, "running" | "paused") {
                continue;
            }
            if !row.matches(&filters) {
                continue;
            }
            let mut ports = Vec::new();
            for p in net.map(|n| n.ports.as_slice()).unwrap_or_default() {
                for (host, cont) in p.pairs() {
                    ports.push(serde_json::json!({
                        "IP": p.host_ip.map_or_else(|| "0.0.0.0".to_string(), |i| i.to_string()),
                        "PrivatePort": cont,
                        "PublicPort": host,
                        "Type": p.protocol.as_str(),
                    }));
                }
            }
            let settings = net
                .map(|n| n.settings["Networks"].clone())
                .unwrap_or_else(|| serde_json::json!({}));
            rows.push((
                st.created_at,
                serde_json::json!({
                    "Id": rec.id,
                    "Names": [format!("/{}", rec.config.name)],
                    "Image": image,
                    "ImageID": image_id,
                    "Command": rec.config.args.join(" "),
                    "Created": unix(st.created_at),
                    "Ports": ports,
                    "Labels": rec.config.labels,
                    "State": state,
                    "Status": with_health(status::status_line(state, &st, now), health),
                    "HostConfig": { "NetworkMode": network_mode(&rec, net) },
                    "NetworkSettings": { "Networks": settings },
                    "Mounts": docker_mounts(&rt, &rec),
                }),
            ));
        }
        rows.sort_by_key(|r| std::cmp::Reverse(r.0));
        let mut rows: Vec<serde_json::Value> = rows.into_iter().map(|(_, v)| v).collect();
        if let Some(l) = limit {
            rows.truncate(l as usize);
        }
        rows
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?;
    Ok(rows)
}

/// Docker's `HostConfig.NetworkMode` of a container: its first bridge network, else its
/// runtime mode.
fn network_mode(rec: &Record, net: Option<&ContainerNetworks>) -> String {
    match net.and_then(|n| n.names.first()) {
        Some(n) => n.clone(),
        None => match &rec.config.network {
            NetworkMode::Host => "host".into(),
            NetworkMode::Join(_) => "container".into(),
            NetworkMode::None | NetworkMode::New => "none".into(),
        },
    }
}

/// Docker's status line with the health a running container's check reports:
/// `Up 3 minutes (healthy)`, `Up 2 seconds (health: starting)`.
fn with_health(line: String, health: Option<&str>) -> String {
    match health {
        Some("starting") => format!("{line} (health: starting)"),
        Some(h) => format!("{line} ({h})"),
        None => line,
    }
}

/// What the filters look at in one container.
struct Row<'a> {
    rec: &'a Record,
    state: &'a str,
    image: &'a str,
    image_id: &'a str,
    networks: &'a [String],
    /// The running container's health; `None` without a check (Docker's `none`).
    health: Option<&'a str>,
}

impl Row<'_> {
    /// Docker's rule: every key must match, any of a key's values will do.
    fn matches(&self, filters: &Filters) -> bool {
        filters.iter().all(|(key, values)| {
            values.is_empty() || values.iter().any(|v| self.matches_one(key, v))
        })
    }

    fn matches_one(&self, key: &str, v: &str) -> bool {
        match key {
            "label" => match v.split_once('=') {
                Some((k, val)) => self.rec.config.labels.get(k).is_some_and(|x| x == val),
                None => self.rec.config.labels.contains_key(v),
            },
            "name" => super::name_filter::matches(v, &self.rec.config.name),
            "status" => self.state == v,
            "id" => self.rec.id.starts_with(v),
            "ancestor" => {
                let bare = |s: &str| s.strip_prefix("sha256:").unwrap_or(s).to_string();
                self.image == v
                    || self.image.strip_suffix(":latest") == Some(v)
                    || (!v.is_empty() && bare(self.image_id).starts_with(&bare(v)))
            }
            "network" => self.networks.iter().any(|n| n == v),
            "health" => self.health.unwrap_or("none") == v,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::container::{ContainerConfig, RootfsSource};

    fn record(name: &str, labels: &[(&str, &str)]) -> Record {
        let mut config = ContainerConfig::new(RootfsSource::Dir("/".into()), vec!["sh".into()]);
        config.name = name.into();
        config.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Record {
            id: "abc123".into(),
            dir: "/nonexistent".into(),
            run_dir: "/nonexistent".into(),
            config,
            cgroup: "/nonexistent".into(),
            netns: None,
            volumes: Vec::new(),
        }
    }

    #[test]
    fn filters_read_as_dockers() {
        let rec = record("web-1", &[("k", "v"), ("tier", "front")]);
        let nets = ["front".to_string()];
        let row = Row {
            rec: &rec,
            state: "running",
            image: "busybox:latest",
            image_id: "sha256:feed",
            networks: &nets,
            health: Some("healthy"),
        };
        let f = |s: &str| query::filters(&format!("filters={s}"), FILTERS).unwrap_or_default();
        assert!(row.matches(&f(r#"{"label":["k=v"]}"#)));
        assert!(row.matches(&f(r#"{"label":["tier"]}"#)));
        assert!(!row.matches(&f(r#"{"label":["k=w"]}"#)));
        assert!(row.matches(&f(r#"{"name":["web"],"status":["running"]}"#)));
        assert!(!row.matches(&f(r#"{"name":["web"],"status":["exited"]}"#)));
        assert!(row.matches(&f(r#"{"status":["exited","running"]}"#)));
        assert!(row.matches(&f(r#"{"id":["abc"]}"#)));
        assert!(row.matches(&f(r#"{"ancestor":["busybox"]}"#)));
        assert!(row.matches(&f(r#"{"ancestor":["feed"]}"#)));
        assert!(row.matches(&f(r#"{"network":["front"]}"#)));
        assert!(!row.matches(&f(r#"{"network":["back"]}"#)));
        assert!(row.matches(&f(r#"{"health":["healthy"]}"#)));
        assert!(!row.matches(&f(r#"{"health":["none"]}"#)));
        assert_eq!(
            with_health("Up 2 seconds".into(), Some("starting")),
            "Up 2 seconds (health: starting)"
        );
        assert_eq!(
            with_health("Up 1 second".into(), Some("healthy")),
            "Up 1 second (healthy)"
        );
        assert_eq!(with_health("Exited (0)".into(), None), "Exited (0)");
    }
}
