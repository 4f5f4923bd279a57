//! The smaller container routes of Docker's API, each on the runtime call berth's own CLI
//! makes: `rename` (then the engine's DNS names), `pause`/`unpause` (the cgroup freezer),
//! `export` (the flattened root as a tar, streamed), `changes` (the overlay upper dir) and
//! `prune` (stopped containers, with Docker's `label` and `until` filters).

use std::sync::Arc;
use std::time::SystemTime;

use berth_runtime::container::RuntimeError;
use hyper::{Response, StatusCode};

use super::containers::{blocking, empty, find, name_in_use, runtime_error};
use super::errors::ApiError;
use super::{Body, Docker, blocking_stream, df, json, query};

fn conflict(message: String) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        message,
    }
}

/// `POST /containers/{id}/rename?name=`: 204; 409 when the name is taken.
pub(super) async fn rename(
    docker: &Arc<Docker>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let name = query::get(query, "name").unwrap_or_default();
    let name = name.strip_prefix('/').unwrap_or(&name).to_string();
    if name.is_empty() {
        return Err(ApiError::bad_request(
            "Neither old nor new names may be empty",
        ));
    }
    let rt = docker.rt.clone();
    let w = what.to_string();
    let rec = blocking(move || {
        let rec = find(&rt, &w)?;
        match rt.rename(&rec, &name) {
            Ok(_) => Ok(rec),
            Err(RuntimeError::NameInUse { name, id }) => Err(name_in_use(&name, &id)),
            Err(RuntimeError::BadName(n)) => Err(ApiError::bad_request(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            ))),
            Err(e) => Err(runtime_error(&w, e)),
        }
    })
    .await?;
    // The container's DNS names follow its name, as after berth's own rename.
    if docker.shared.opts.root.join("netd").exists()
        && let Ok(engine) = docker.shared.engine().await
        && let Err(err) = engine.refresh_container_dns(&rec.id).await
    {
        tracing::warn!(%err, "updating a renamed container's DNS names");
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// `POST /containers/{id}/pause` (`freeze`) and `/unpause`: 204; 409 when there is nothing
/// to do, in Docker's words.
pub(super) async fn pause(
    docker: &Arc<Docker>,
    what: &str,
    freeze: bool,
) -> Result<Response<Body>, ApiError> {
    let rt = docker.rt.clone();
    let w = what.to_string();
    blocking(move || {
        let rec = find(&rt, &w)?;
        if !rt.is_running(&rec) {
            return Err(conflict(format!("Container {} is not running", rec.id)));
        }
        let paused = rt.is_paused(&rec);
        if freeze {
            if paused {
                return Err(conflict(format!("Container {} is already paused", rec.id)));
            }
            rt.pause(&rec).map_err(|e| runtime_error(&w, e))?;
        } else {
            if !paused {
                return Err(conflict(format!("Container {} is not paused", rec.id)));
            }
            rt.unpause(&rec).map_err(|e| runtime_error(&w, e))?;
        }
        Ok(empty(StatusCode::NO_CONTENT))
    })
    .await
}

/// `GET /containers/{id}/export`: the flattened root filesystem as a tar, streamed.
pub(super) async fn export(docker: &Arc<Docker>, what: &str) -> Result<Response<Body>, ApiError> {
    let rt = docker.rt.clone();
    let w = what.to_string();
    let rec = blocking(move || find(&rt, &w)).await?;
    let (mut out, body) = blocking_stream::body();
    let rt = docker.rt.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = rt.export(&rec, &mut out) {
            tracing::debug!(err = %crate::api::error::error_chain(&e), "export stream ended");
        }
    });
    let mut resp = Response::new(body);
    if let Ok(v) = "application/x-tar".parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

/// Docker's change kinds: 0 modified, 1 added, 2 deleted.
fn kind(c: char) -> u8 {
    match c {
        'A' => 1,
        'D' => 2,
        _ => 0,
    }
}

/// `GET /containers/{id}/changes`: `[{Path, Kind}]` against the image.
pub(super) async fn changes(docker: &Arc<Docker>, what: &str) -> Result<Response<Body>, ApiError> {
    let rt = docker.rt.clone();
    let w = what.to_string();
    let list = blocking(move || {
        let rec = find(&rt, &w)?;
        rt.changes(&rec)
            .map_err(|e| ApiError::internal(crate::api::error::error_chain(&e)))
    })
    .await?;
    let list: Vec<_> = list
        .iter()
        .map(|c| serde_json::json!({"Path": c.path, "Kind": kind(c.kind)}))
        .collect();
    Ok(json(StatusCode::OK, &list))
}

/// An `until` value: a Unix time (`1700000000`, `1700000000.5`) or an RFC 3339 one, or a
/// duration before now (`10m`, `24h`), as Docker reads it.
fn until(v: &str) -> Result<SystemTime, ApiError> {
    let bad = || ApiError::bad_request(format!("invalid filter 'until={v}'"));
    if let Ok(secs) = v.parse::<f64>() {
        return SystemTime::UNIX_EPOCH
            .checked_add(std::time::Duration::from_secs_f64(secs.max(0.0)))
            .ok_or_else(bad);
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(v) {
        return Ok(t);
    }
    humantime::parse_duration(v)
        .ok()
        .and_then(|d| SystemTime::now().checked_sub(d))
        .ok_or_else(bad)
}

/// Whether a label filter value (`k` or `k=v`) matches.
fn label_matches(labels: &std::collections::BTreeMap<String, String>, v: &str) -> bool {
    match v.split_once('=') {
        Some((k, val)) => labels.get(k).is_some_and(|x| x == val),
        None => labels.contains_key(v),
    }
}

/// `POST /containers/prune?filters=`: removes every container that is not running (and
/// matches `label`, `label!` and `until`); `{ContainersDeleted, SpaceReclaimed}`.
pub(super) async fn prune(docker: &Arc<Docker>, query: &str) -> Result<Response<Body>, ApiError> {
    let filters = query::filters(query, &["label", "label!", "until"])?;
    let before = match filters.get("until").and_then(|s| s.iter().next()) {
        Some(v) => Some(until(v)?),
        None => None,
    };
    let rt = docker.rt.clone();
    let removed = blocking(move || {
        let mut removed = Vec::new();
        for (rec, st) in rt.list() {
            if rt.is_running(&rec) {
                continue;
            }
            let labels = &rec.config.labels;
            let wanted = filters
                .get("label")
                .is_none_or(|s| s.iter().all(|v| label_matches(labels, v)))
                && filters
                    .get("label!")
                    .is_none_or(|s| !s.iter().any(|v| label_matches(labels, v)))
                && before.is_none_or(|t| st.created_at < t);
            if !wanted {
                continue;
            }
            let size = df::du(&rec.dir.join("upper"));
            match rt.remove(&rec, false) {
                Ok(()) => removed.push((rec.id.clone(), size)),
                Err(e) => tracing::warn!(container = %rec.config.name, %e, "prune: not removed"),
            }
        }
        Ok(removed)
    })
    .await?;
    super::wait::changed();
    if docker.shared.opts.root.join("netd").exists()
        && let Ok(engine) = docker.shared.engine().await
    {
        for (id, _) in &removed {
            if let Some(err) = engine.disconnect_container(id).await {
                tracing::warn!(%err, "detaching a pruned container from its networks");
            }
        }
    }
    let space: u64 = removed.iter().map(|(_, s)| s).sum();
    let ids: Option<Vec<&String>> =
        (!removed.is_empty()).then(|| removed.iter().map(|(id, _)| id).collect());
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"ContainersDeleted": ids, "SpaceReclaimed": space}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_takes_unix_rfc3339_and_durations() {
        let t = until("1700000000").ok();
        assert_eq!(
            t,
            Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
        );
        assert!(until("2024-01-01T00:00:00Z").is_ok());
        assert!(until("10m").is_ok_and(|t| t < SystemTime::now()));
        assert!(until("soon").is_err());
    }

    #[test]
    fn change_kinds_are_dockers() {
        assert_eq!((kind('C'), kind('A'), kind('D')), (0, 1, 2));
    }
}
