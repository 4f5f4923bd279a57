//! The container routes of Docker's API that make and drive containers: create, start, stop,
//! kill, restart and remove (wait is `wait.rs`'s). They go through the engine's create
//! ([`crate::engine::stack::Engine::create_container`], the same body berth's own API takes) and
//! the runtime calls berth's CLI makes (`start_watched`, `stop`, `kill`, `remove`), so the
//! Docker wire adds no second copy of either; only the answers are Docker's (status codes,
//! `No such container: X`, 304 for a start or stop that has nothing to do).

use std::sync::Arc;

use berth_runtime::container::{Record, Runtime, RuntimeError};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::errors::ApiError;
use super::{Body, Docker, json, query};
use crate::api::ErrorKind;
use crate::api::container::ContainerSpec;

/// The body a container was created with over Docker's API, kept beside its record so that
/// inspect can answer its `HostConfig` as it was given.
pub(super) const CREATE_BODY_FILE: &str = "docker-create.json";

/// The largest create body read (a real one is a few KiB); a larger one is refused unread.
const MAX_CREATE_BODY: usize = 4 << 20;

/// One container route of Docker's API that berth serves.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Create,
    List,
    Inspect(String),
    Start(String),
    Stop(String),
    Restart(String),
    Kill(String),
    Wait(String),
    Remove(String),
    /// `GET|HEAD|PUT /containers/{id}/archive` (the method tells which).
    Archive(Method, String),
    Top(String),
    Stats(String),
    Rename(String),
    Pause(String),
    Unpause(String),
    Update(String),
    Export(String),
    Changes(String),
    Prune,
}

impl Route {
    /// The route `method path` names, if berth serves it.
    pub(super) fn parse(method: &Method, path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/containers/")?;
        let segs: Vec<&str> = rest.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match (method, segs.as_slice()) {
            (&Method::POST, ["create"]) => Some(Route::Create),
            (&Method::GET, ["json"]) => Some(Route::List),
            (&Method::GET, [c, "json"]) => id(c).map(Route::Inspect),
            (&Method::POST, [c, "start"]) => id(c).map(Route::Start),
            (&Method::POST, [c, "stop"]) => id(c).map(Route::Stop),
            (&Method::POST, [c, "restart"]) => id(c).map(Route::Restart),
            (&Method::POST, [c, "kill"]) => id(c).map(Route::Kill),
            (&Method::POST, [c, "wait"]) => id(c).map(Route::Wait),
            (&Method::DELETE, [c]) => id(c).map(Route::Remove),
            (&Method::GET | &Method::HEAD | &Method::PUT, [c, "archive"]) => {
                id(c).map(|c| Route::Archive(method.clone(), c))
            }
            (&Method::GET, [c, "top"]) => id(c).map(Route::Top),
            (&Method::GET, [c, "stats"]) => id(c).map(Route::Stats),
            (&Method::POST, [c, "rename"]) => id(c).map(Route::Rename),
            (&Method::POST, [c, "pause"]) => id(c).map(Route::Pause),
            (&Method::POST, [c, "unpause"]) => id(c).map(Route::Unpause),
            (&Method::POST, [c, "update"]) => id(c).map(Route::Update),
            (&Method::GET, [c, "export"]) => id(c).map(Route::Export),
            (&Method::GET, [c, "changes"]) => id(c).map(Route::Changes),
            (&Method::POST, ["prune"]) => Some(Route::Prune),
            _ => None,
        }
    }
}

/// Serves one container route.
pub(super) async fn serve(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    route: Route,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::Create => create(docker, req, query).await,
        Route::List => super::containers_list::list(docker, query)
            .await
            .map(|l| json(StatusCode::OK, &l)),
        Route::Inspect(c) => super::containers_inspect::inspect(docker, &c)
            .await
            .map(|i| json(StatusCode::OK, &i)),
        Route::Start(c) => start(docker, &c).await,
        Route::Stop(c) => stop(docker, &c, query).await,
        Route::Restart(c) => restart(docker, &c, query).await,
        Route::Kill(c) => kill(docker, &c, query).await,
        Route::Wait(c) => super::wait::wait(docker, &c, query).await,
        Route::Remove(c) => remove(docker, &c, query).await,
        Route::Archive(m, c) => super::containers_archive::serve(docker, req, &m, &c, query).await,
        Route::Top(c) => super::containers_top::top(docker, &c, query).await,
        Route::Stats(c) => super::containers_stats::stats(docker, &c, query).await,
        Route::Rename(c) => super::containers_misc::rename(docker, &c, query).await,
        Route::Pause(c) => super::containers_misc::pause(docker, &c, true).await,
        Route::Unpause(c) => super::containers_misc::pause(docker, &c, false).await,
        Route::Update(c) => super::containers_update::update(docker, req, &c).await,
        Route::Export(c) => super::containers_misc::export(docker, &c).await,
        Route::Changes(c) => super::containers_misc::changes(docker, &c).await,
        Route::Prune => super::containers_misc::prune(docker, query).await,
    }
}

/// An answer without a body (204 done, 304 nothing to do).
pub(super) fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    resp
}

/// Runs blocking runtime work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
}

/// A runtime failure in Docker's words and status.
pub(super) fn runtime_error(what: &str, err: RuntimeError) -> ApiError {
    match err {
        RuntimeError::NotFound(_) => no_such_container(what),
        RuntimeError::Ambiguous(_) => {
            ApiError::bad_request(format!("multiple IDs found with provided prefix: {what}"))
        }
        // The process could not be started (no such executable, bad user...): the request's.
        RuntimeError::Start { message, .. } => ApiError::bad_request(message),
        err => ApiError::internal(crate::api::error::error_chain(&err)),
    }
}

fn no_such_container(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("No such container: {what}"),
    }
}

/// The container `what` names: full id, unique id prefix or name (Docker's `/name` too).
pub(super) fn find(rt: &Runtime, what: &str) -> Result<Record, ApiError> {
    let name = what.strip_prefix('/').unwrap_or(what);
    rt.resolve(name).map_err(|e| runtime_error(what, e))
}

/// `POST /containers/create?name=`: Docker's body as berth's spec, made by the engine.
async fn create(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let name = query::get(query, "name").unwrap_or_default();
    let name = name.strip_prefix('/').unwrap_or(&name).to_string();
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_CREATE_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "config cannot be empty in order to create a container",
        ));
    }
    let spec: ContainerSpec = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let engine = docker
        .shared
        .engine()
        .await
        .map_err(|m| ApiError::internal(format!("the engine is unavailable: {m}")))?;
    // Docker's answers for a taken name and a missing image, before any work.
    let (e, n, s) = (engine.clone(), name.clone(), spec.clone());
    blocking(move || {
        if !n.is_empty()
            && let Ok(rec) = e.runtime.resolve(&n)
            && rec.config.name == n
        {
            return Err(name_in_use(&n, &rec.id));
        }
        // A legacy link names an existing container, as dockerd requires.
        for l in &s.host_config.links {
            let target = l.split(':').next().unwrap_or(l).trim_start_matches('/');
            if e.runtime.resolve(target).is_err() {
                return Err(ApiError::bad_request(format!(
                    "could not get container for {target}"
                )));
            }
        }
        if s.rootfs.is_none()
            && let Err(berth_runtime::image::store::StoreError::NotFound { .. }) =
                e.images.resolve_id(&s.image)
        {
            return Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!("No such image: {}", s.image),
            });
        }
        Ok(())
    })
    .await?;
    let created = engine
        .create_container(name.clone(), spec)
        .await
        .map_err(|e| match e.kind {
            ErrorKind::Conflict => ApiError {
                status: StatusCode::CONFLICT,
                message: e.message,
            },
            ErrorKind::NotFound => ApiError {
                status: StatusCode::NOT_FOUND,
                message: e.message,
            },
            ErrorKind::InvalidArgument => ApiError::bad_request(e.message),
            _ => ApiError::internal(e.message),
        })?;
    // Kept for inspect; a container without it answers what its record holds.
    let rt = docker.rt.clone();
    let id = created.id.clone();
    let _ = blocking(move || {
        let rec = find(&rt, &id)?;
        std::fs::write(rec.dir.join(CREATE_BODY_FILE), &bytes)
            .map_err(|e| ApiError::internal(e.to_string()))
    })
    .await;
    Ok(json(
        StatusCode::CREATED,
        &serde_json::json!({ "Id": created.id, "Warnings": created.warnings }),
    ))
}

/// Docker's 409 for a name another container holds.
pub(super) fn name_in_use(name: &str, id: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        message: format!(
            "Conflict. The container name \"/{name}\" is already in use by container \"{id}\". \
             You have to remove (or rename) that container to be able to reuse that name."
        ),
    }
}

/// `POST /containers/{id}/start`: 204, or 304 when it runs already.
async fn start(docker: &Arc<Docker>, what: &str) -> Result<Response<Body>, ApiError> {
    let rt = docker.rt.clone();
    let what = what.to_string();
    blocking(move || {
        let rec = find(&rt, &what)?;
        if rt.is_running(&rec) {
            return Ok(empty(StatusCode::NOT_MODIFIED));
        }
        // Docker's clients attach before they start: started with them attached, and watched.
        match super::wait::start(&rt, &rec) {
            Ok(_) => Ok(empty(StatusCode::NO_CONTENT)),
            Err(RuntimeError::AlreadyRunning { .. }) => Ok(empty(StatusCode::NOT_MODIFIED)),
            Err(e) => Err(runtime_error(&what, e)),
        }
    })
    .await
}

/// The `t` parameter of stop and restart: seconds before SIGKILL (negative: the container's
/// own stop timeout).
fn timeout(query: &str) -> Result<Option<u64>, ApiError> {
    match query::get(query, "t").filter(|t| !t.is_empty()) {
        None => Ok(None),
        Some(t) => t
            .parse::<i64>()
            .map(|t| u64::try_from(t).ok())
            .map_err(|_| ApiError::bad_request(format!("invalid value for t: {t}"))),
    }
}

/// `POST /containers/{id}/stop?t=`: 204, or 304 when it is not running.
async fn stop(docker: &Arc<Docker>, what: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let t = timeout(query)?;
    let rt = docker.rt.clone();
    let what = what.to_string();
    blocking(move || {
        let rec = find(&rt, &what)?;
        if !rt.is_running(&rec) {
            return Ok(empty(StatusCode::NOT_MODIFIED));
        }
        rt.stop(&rec, t).map_err(|e| runtime_error(&what, e))?;
        Ok(empty(StatusCode::NO_CONTENT))
    })
    .await
}

/// `POST /containers/{id}/restart?t=`: stops it if it runs, then starts it (as berth's CLI).
async fn restart(
    docker: &Arc<Docker>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let t = timeout(query)?;
    let rt = docker.rt.clone();
    let what = what.to_string();
    blocking(move || {
        let rec = find(&rt, &what)?;
        rt.stop(&rec, t).map_err(|e| runtime_error(&what, e))?;
        super::wait::start(&rt, &rec).map_err(|e| runtime_error(&what, e))?;
        Ok(empty(StatusCode::NO_CONTENT))
    })
    .await
}

/// `POST /containers/{id}/kill?signal=`: 204; 409 when it is not running.
async fn kill(docker: &Arc<Docker>, what: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let signal = match query::get(query, "signal").filter(|s| !s.is_empty()) {
        None => libc::SIGKILL,
        Some(s) => crate::engine::translate::parse_signal(&s)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid signal: {s}")))?,
    };
    let rt = docker.rt.clone();
    let what = what.to_string();
    blocking(move || {
        let rec = find(&rt, &what)?;
        if !rt.is_running(&rec) {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                message: format!(
                    "Cannot kill container: {what}: container {} is not running",
                    rec.id
                ),
            });
        }
        rt.kill(&rec, signal).map_err(|e| runtime_error(&what, e))?;
        Ok(empty(StatusCode::NO_CONTENT))
    })
    .await
}

/// `DELETE /containers/{id}?force=&v=`: 204; 409 when it runs and `force` is not set. Its
/// endpoints and DNS names go with it, and its anonymous volumes with `v`.
async fn remove(docker: &Arc<Docker>, what: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let force = flag(query, "force");
    let volumes = flag(query, "v");
    let rt = docker.rt.clone();
    let w = what.to_string();
    let rec = blocking(move || {
        let rec = find(&rt, &w)?;
        if !force && rt.is_running(&rec) {
            return Err(ApiError {
                status: StatusCode::CONFLICT,
                message: format!(
                    "cannot remove container \"/{}\": container is running: stop the container \
                     before removing or force remove",
                    rec.config.name
                ),
            });
        }
        rt.remove(&rec, force).map_err(|e| runtime_error(&w, e))?;
        Ok(rec)
    })
    .await?;
    // A wait for its removal answers now.
    super::wait::changed();
    if docker.shared.opts.root.join("netd").exists()
        && let Ok(engine) = docker.shared.engine().await
        && let Some(err) = engine.disconnect_container(&rec.id).await
    {
        tracing::warn!(%err, "detaching a removed container from its networks");
    }
    if volumes {
        let rt = docker.rt.clone();
        blocking(
            move || match rt.remove_anonymous_volumes(&rec).into_iter().next() {
                Some(e) => Err(ApiError::internal(e.to_string())),
                None => Ok(()),
            },
        )
        .await?;
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A boolean query parameter as Docker reads them (`1`, `true`; absent, `0`, `false`: off).
pub(super) fn flag(query: &str, key: &str) -> bool {
    query::get(query, key).is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_routes_parse_and_others_do_not() {
        let p = Route::parse;
        assert_eq!(p(&Method::POST, "/containers/create"), Some(Route::Create));
        assert_eq!(p(&Method::GET, "/containers/json"), Some(Route::List));
        assert_eq!(
            p(&Method::GET, "/containers/web/json"),
            Some(Route::Inspect("web".into()))
        );
        assert_eq!(
            p(&Method::POST, "/containers/ab12/stop"),
            Some(Route::Stop("ab12".into()))
        );
        assert_eq!(
            p(&Method::DELETE, "/containers/web"),
            Some(Route::Remove("web".into()))
        );
        assert_eq!(p(&Method::GET, "/containers/web/logs"), None);
        assert_eq!(p(&Method::POST, "/containers//start"), None);
        assert_eq!(p(&Method::GET, "/containers/create"), None);
    }

    #[test]
    fn docker_client_defaults_ask_for_nothing() {
        let body = serde_json::json!({"HostConfig": {
            "ConsoleSize": [0, 0], "MemorySwappiness": -1, "PidsLimit": 0, "Memory": 0,
        }});
        let spec: ContainerSpec = serde_json::from_value(body).expect("spec");
        assert!(spec.check_supported().is_ok());
        let body = serde_json::json!({"HostConfig": {"CpusetMems": "0", "PidsLimit": 5}});
        let spec: Result<ContainerSpec, _> = serde_json::from_value(body);
        assert!(spec.is_ok_and(|s| s.check_supported().is_err()));
    }

    #[test]
    fn query_flags_and_timeouts_read_as_dockers() {
        assert!(flag("force=1", "force"));
        assert!(flag("force=true&v=0", "force"));
        assert!(!flag("force=0", "force"));
        assert!(!flag("v=1", "force"));
        assert_eq!(timeout("t=3").ok(), Some(Some(3)));
        assert_eq!(timeout("t=-1").ok(), Some(None));
        assert_eq!(timeout("").ok(), Some(None));
        assert!(timeout("t=soon").is_err());
    }
}
