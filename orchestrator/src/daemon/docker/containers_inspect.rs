//! `GET /containers/{id}/json` (`docker inspect`): one container in Docker's shape. State and
//! Config come from the runtime's record (the environment and labels as resolved with the
//! image's), `HostConfig` is the one the container was created with over this API (as given)
//! or, for a container berth made otherwise, Docker's empty one with its network mode;
//! networks and ports come from netd.

use std::sync::Arc;
use std::time::SystemTime;

use berth_runtime::container::{Record, State, Status};

use super::containers::{CREATE_BODY_FILE, find};
use super::containers_list::networks;
use super::errors::ApiError;
use super::{Docker, status};
use crate::api::container::ContainerSpec;
use crate::api::mounts::docker_mounts;
use crate::engine::labels;

/// Docker's time format (RFC 3339 with nanoseconds); its zero time when there is none.
fn time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| humantime::format_rfc3339_nanos(t).to_string(),
    )
}

/// `State.Health` (`{Status, FailingStreak, Log}`, only for a container with a check, as
/// the engine's health records have it) and `RestartCount` (the restarts its policy made since
/// the daemon started). The engine is opened for a container with a check (opening it arms
/// the checks); restarts are read only from an engine already open (none ran otherwise).
async fn health_and_restarts(
    docker: &Arc<Docker>,
    rec: &Record,
    st: &State,
    state: &str,
) -> (serde_json::Value, u32) {
    let checked = rec.config.labels.contains_key(labels::HEALTHCHECK);
    let engine = if checked {
        docker.shared.engine().await.ok()
    } else {
        docker.shared.engine.get().cloned()
    };
    let Some(engine) = engine else {
        return (serde_json::Value::Null, 0);
    };
    let restarts = engine.restart_count(&rec.id);
    let running = state == "running" || state == "paused";
    let health = match engine.health_report(rec, st, running) {
        Some(r) => serde_json::json!({
            "Status": r.health.as_str(),
            "FailingStreak": r.failing_streak,
            "Log": r.log.iter().map(|p| serde_json::json!({
                "Start": time(Some(p.start)),
                "End": time(Some(p.end)),
                "ExitCode": p.exit_code,
                "Output": p.output,
            })).collect::<Vec<_>>(),
        }),
        // A checked container that does not run: Docker keeps the last status word.
        None if checked => serde_json::json!({
            "Status": engine.health_of(&rec.id).map_or("unhealthy", |h| h.as_str()),
            "FailingStreak": 0,
            "Log": [],
        }),
        None => serde_json::Value::Null,
    };
    (health, restarts)
}

/// `GET /containers/{id}/json`.
pub(super) async fn inspect(
    docker: &Arc<Docker>,
    what: &str,
) -> Result<serde_json::Value, ApiError> {
    let rt = docker.rt.clone();
    let w = what.to_string();
    let (rec, st, state) = tokio::task::spawn_blocking(move || {
        let rec = find(&rt, &w)?;
        let st = rt
            .state(&rec)
            .map_err(|e| ApiError::internal(crate::api::error::error_chain(&e)))?;
        let state = status::state(&rt, &rec, &st);
        Ok::<_, ApiError>((rec, st, state))
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))??;
    let mut settings = networks(docker)
        .await
        .remove(&rec.id)
        .map(|n| n.settings)
        .unwrap_or_else(|| serde_json::json!({"Networks": {}, "Ports": {}, "IPAddress": ""}));
    // Links given at `network connect`, as Docker reports them on the endpoint.
    if let Some(nets) = settings["Networks"].as_object_mut() {
        for (name, ep) in nets.iter_mut() {
            let links = crate::engine::connect_links::of(&rec, name);
            if !links.is_empty() {
                ep["Links"] = links
                    .iter()
                    .map(|l| format!("{}:{}", l.target, l.alias))
                    .collect();
            }
        }
    }
    // What the container was created with over this API, if it was.
    let given: Option<serde_json::Value> = std::fs::read(rec.dir.join(CREATE_BODY_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let spec: ContainerSpec = given
        .as_ref()
        .and_then(|g| serde_json::from_value(g.clone()).ok())
        .unwrap_or_default();
    // The keys dockerd always reports (clients read them: docker-py's `run` looks at
    // `LogConfig.Type` to fetch the output), under what was given.
    let mut host_config = serde_json::json!({
        "NetworkMode": settings["Networks"]
            .as_object()
            .and_then(|n| n.keys().next().cloned())
            .unwrap_or_else(|| "none".into()),
        "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
        "LogConfig": {"Type": "json-file", "Config": {}},
        "AutoRemove": false,
        "PortBindings": {},
    });
    if let (Some(defaults), Some(serde_json::Value::Object(g))) = (
        host_config.as_object_mut(),
        given.as_ref().and_then(|g| g.get("HostConfig")),
    ) {
        for (k, v) in g {
            if !v.is_null() {
                defaults.insert(k.clone(), v.clone());
            }
        }
    }
    // Legacy links as dockerd reports them: `/TARGET:/NAME/ALIAS`.
    let links = crate::engine::labels::links(&rec.config.labels);
    if !links.is_empty() {
        host_config["Links"] = links
            .iter()
            .map(|l| format!("/{}:/{}/{}", l.target, rec.config.name, l.alias))
            .collect();
    }
    // Annotations are the container's, however it was made (Compose `annotations:` too).
    if !rec.config.annotations.is_empty() {
        host_config["Annotations"] = serde_json::json!(rec.config.annotations);
    }
    // An empty log driver is the daemon's default, which dockerd names.
    if host_config
        .pointer("/LogConfig/Type")
        .and_then(|t| t.as_str())
        == Some("")
    {
        host_config["LogConfig"]["Type"] = serde_json::json!("json-file");
    }
    let (health, restart_count) = health_and_restarts(docker, &rec, &st, state).await;
    let (image, image_id) = crate::engine::status_text::image_of(&rec.dir, &rec.config.labels);
    let args = &rec.config.args;
    let running = state == "running" || state == "paused";
    let cmd = match (&spec.cmd, &spec.entrypoint) {
        (Some(c), _) => serde_json::json!(c),
        (None, None) => serde_json::json!(args),
        (None, Some(_)) => serde_json::Value::Null,
    };
    let mut doc = serde_json::json!({
        "Id": rec.id,
        "Created": time(Some(st.created_at)),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state,
            "Running": running,
            "Paused": state == "paused",
            "Restarting": false,
            "OOMKilled": st.oom_killed,
            "Dead": false,
            "Pid": if running { st.pid } else { 0 },
            "ExitCode": if st.status == Status::Running && running { 0 } else { st.exit_code.unwrap_or(0) },
            "Error": st.error.clone().unwrap_or_default(),
            "StartedAt": time(st.started_at),
            "FinishedAt": time(st.finished_at),
            "Health": health,
        },
        "Image": image_id,
        "Name": format!("/{}", rec.config.name),
        "RestartCount": restart_count,
        "Driver": "overlayfs",
        "Platform": "linux",
        "LogPath": rec.log_path(),
        "HostsPath": rec.dir.join("hosts"),
        "HostConfig": host_config,
        "Mounts": docker_mounts(&docker.rt, &rec),
        "Config": {
            "Hostname": rec.config.hostname.clone().unwrap_or_default(),
            "User": rec.config.user.clone().unwrap_or_default(),
            "Tty": rec.config.tty,
            "OpenStdin": rec.config.open_stdin,
            "Env": rec.config.env,
            "Cmd": cmd,
            "Entrypoint": spec.entrypoint,
            "Image": image,
            "WorkingDir": rec.config.working_dir.clone().unwrap_or_default(),
            "Labels": rec.config.labels,
            "StopTimeout": rec.config.stop_timeout,
        },
        "NetworkSettings": settings,
    });
    // Docker leaves `Health` out for a container without a check.
    if let Some(state) = doc.get_mut("State").and_then(|s| s.as_object_mut())
        && state.get("Health").is_some_and(serde_json::Value::is_null)
    {
        state.remove("Health");
    }
    Ok(doc)
}
