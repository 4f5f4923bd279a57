//! The daemon's routes: one function per route, a match as the router (a handful of routes do
//! not need a framework). The request and reply types are the contract's ([`crate::api`]);
//! the work is the engine's.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};

use super::{Shared, cgroup_mode};
use crate::api::error::error_chain;
use crate::api::project::{
    BuildLine, BuildRequest, ContainerConnect, DownRequest, PsQuery, RenameReply, RmRequest,
    RunRequest, UpRequest,
};
use crate::api::system::{EngineReply, ShutdownReply};
use crate::api::{API_PREFIX, ApiError, ErrorBody, ErrorKind, Info};

pub(super) type Body = BoxBody<Bytes, Infallible>;

#[path = "containers.rs"]
pub(in crate::daemon) mod containers;

fn full(status: StatusCode, content_type: &str, bytes: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

pub(super) fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(bytes) => full(status, "application/json", bytes),
        Err(err) => error(ErrorKind::Internal, &format!("encoding: {err}")),
    }
}

/// The answer to a failed request: the kind's HTTP status, and the kind and message as JSON.
pub(super) fn error(kind: ErrorKind, message: &str) -> Response<Body> {
    let body = ErrorBody {
        kind,
        message: message.to_string(),
    };
    let status = StatusCode::from_u16(kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    full(
        status,
        "application/json",
        serde_json::to_vec(&body).unwrap_or_default(),
    )
}

/// The answer to a request the engine refused or failed.
pub(super) fn api_error(e: &ApiError) -> Response<Body> {
    error(e.kind, &e.message)
}

/// Hands the memory an `up` or `down` freed (plans, records, per-container buffers of 50
/// parallel steps) back to the kernel, so the daemon's RSS follows what it holds, not its
/// busiest moment; ~1 ms, once per such request.
fn trimmed(resp: Response<Body>) -> Response<Body> {
    // SAFETY: malloc_trim only releases free memory of this process's allocator.
    unsafe { libc::malloc_trim(0) };
    resp
}

/// Routes one request.
pub(super) async fn handle(shared: Arc<Shared>, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    let Some(route) = path.strip_prefix(API_PREFIX) else {
        return error(
            ErrorKind::NotFound,
            &format!("unknown API path {path} (this daemon serves {API_PREFIX}/...)"),
        );
    };
    match (req.method(), route) {
        (&Method::GET, "/ping") => full(StatusCode::OK, "text/plain", b"OK".to_vec()),
        (&Method::GET, "/info") => json(StatusCode::OK, &info(&shared)),
        (&Method::GET, "/events") => events(&shared),
        (&Method::POST, "/up") => trimmed(up(&shared, req).await),
        (&Method::POST, "/down") => trimmed(down(&shared, req).await),
        (&Method::POST, "/rm") => rm(&shared, req).await,
        (&Method::POST, "/build") => build(&shared, req).await,
        (&Method::POST, "/run") => run_oneoff(&shared, req).await,
        (&Method::POST, "/project/verb") => super::project_routes::verb(&shared, req).await,
        (&Method::POST, "/project/watch") => super::watch_routes::watch(&shared, req).await,
        (&Method::POST, "/containers/create") => containers::create(&shared, req).await,
        (&Method::GET, "/containers/networks") => containers::networks(&shared).await,
        (&Method::POST, "/container/connect") => container_connect(&shared, req).await,
        (&Method::POST, "/engine") => open_engine(&shared).await,
        (&Method::POST, "/container/rename") => container_rename(&shared, req).await,
        (&Method::POST, "/container/disconnect") => container_disconnect(&shared, req).await,
        (&Method::GET, "/ps") => ps(&shared, req.uri().query().unwrap_or("")).await,
        (&Method::POST, "/shutdown") => {
            shared.shutdown.notify_one();
            json(StatusCode::OK, &ShutdownReply { stopping: true })
        }
        (_, route) if route == "/networks" || route.starts_with("/networks/") => {
            super::network_routes::handle(&shared, req, route).await
        }
        (_, route) => error(
            ErrorKind::NotFound,
            &format!("no route {} {API_PREFIX}{route}", req.method()),
        ),
    }
}

fn info(shared: &Shared) -> Info {
    Info {
        version: env!("CARGO_PKG_VERSION").to_string(),
        pid: std::process::id(),
        root: shared.opts.root.display().to_string(),
        run: shared.opts.run.display().to_string(),
        cgroup: cgroup_mode().to_string(),
        started_at: humantime::format_rfc3339_seconds(shared.started_at).to_string(),
        uptime_secs: shared.started.elapsed().as_secs(),
    }
}

/// `GET /v1/events`: every event from now on, one JSON object per line, until the client leaves.
fn events(shared: &Shared) -> Response<Body> {
    let rx = shared.events.subscribe();
    let closing = shared.closing.subscribe();
    let stream = futures::stream::unfold((rx, closing), |(mut rx, mut closing)| async move {
        loop {
            let received = tokio::select! {
                biased;
                ev = rx.recv() => ev,
                _ = closing.wait_for(|c| *c) => {
                    // Drain what was sent before closing, then end the body.
                    match rx.try_recv() {
                        Ok(ev) => Ok(ev),
                        Err(_) => return None,
                    }
                }
            };
            match received {
                Ok(ev) => {
                    let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                    line.push(b'\n');
                    let frame = Ok::<_, Infallible>(Frame::data(Bytes::from(line)));
                    return Some((frame, (rx, closing)));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(skipped = n, "event stream client too slow");
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    if let Ok(v) = "application/x-ndjson".parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

/// The engine, or the 503 answer that says why it could not be opened.
pub(super) async fn engine(
    shared: &Shared,
) -> Result<Arc<crate::engine::stack::Engine>, Response<Body>> {
    shared
        .engine()
        .await
        .map_err(|msg| error(ErrorKind::Unavailable, &msg))
}

/// Reads a JSON request body.
pub(super) async fn body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = req
        .into_body()
        .collect()
        .await
        .map_err(|e| {
            error(
                ErrorKind::InvalidArgument,
                &format!("reading the request: {e}"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|e| {
        error(
            ErrorKind::InvalidArgument,
            &format!("decoding the request: {e}"),
        )
    })
}

async fn up(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: UpRequest = match body(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let project = r.project.into_project();
    let name = project.name.clone();
    match engine.up(project, r.options).await {
        Ok(outcome) => {
            shared.emit("project", "up", &name);
            json(StatusCode::OK, &outcome)
        }
        Err(e) => error(ErrorKind::InvalidArgument, &error_chain(&e)),
    }
}

async fn down(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: DownRequest = match body(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let project = r.project.into_project();
    let name = project.name.clone();
    match engine.down(project, r.options).await {
        Ok(outcome) => {
            shared.emit("project", "down", &name);
            json(StatusCode::OK, &outcome)
        }
        Err(e) => error(ErrorKind::InvalidArgument, &error_chain(&e)),
    }
}

/// `GET /v1/ps?project=NAME[&all=1]`.
async fn ps(shared: &Shared, query: &str) -> Response<Body> {
    let PsQuery { project, all } = PsQuery::parse(query);
    let Some(project) = project else {
        return error(ErrorKind::InvalidArgument, "ps needs ?project=NAME");
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    json(StatusCode::OK, &engine.ps(&project, all).await)
}

/// `POST /v1/rm`: stop, detach and remove each container (all are tried; the failures are
/// listed).
async fn rm(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: RmRequest = match body(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let mut failures = Vec::new();
    for id in r.ids {
        if let Err(e) = engine.stop_and_remove(&id, true, r.volumes, None).await {
            failures.push(format!("{id}: {e}"));
        }
    }
    json(StatusCode::OK, &failures)
}

/// `POST /v1/run`: creates a one-off container (the CLI starts and attaches it); answers its id.
async fn run_oneoff(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: RunRequest = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match engine
        .create_oneoff(r.project.into_project(), &r.service, r.run)
        .await
    {
        Ok(id) => json(StatusCode::OK, &id),
        Err(e) => error(ErrorKind::InvalidArgument, &e),
    }
}

/// `POST /v1/build`: builds the services' images (those with `build:`) in parallel; answers
/// each finished step as it happens, then the failures.
async fn build(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: BuildRequest = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let project = r.project.into_project();
    let selected = match crate::graph::ServiceGraph::from_project(&project)
        .and_then(|g| g.select(&r.services, !r.with_deps))
    {
        Ok(s) => s,
        Err(e) => return error(ErrorKind::InvalidArgument, &e.to_string()),
    };
    // The answer streams: a line per finished step while the builds run, then the outcome.
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<BuildLine>();
    tokio::spawn(async move {
        let steps = tx.clone();
        let report = move |service: &str, s: &berth_runtime::build::exec::StepReport| {
            let _ = steps.send(BuildLine::Step {
                service: service.to_string(),
                display: s.display.clone(),
                cached: s.cached && !s.from,
                elapsed_ms: s.elapsed_ms as u64,
            });
        };
        let failures = engine
            .build_services(&project, &selected, &r.options, report)
            .await;
        let _ = tx.send(BuildLine::Done { failures });
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let line = rx.recv().await?;
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(bytes))), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    if let Ok(v) = "application/x-ndjson".parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}

/// `POST /v1/container/connect`: attaches a created single container (`berth container run
/// --network NAME -p ...`) to its networks, with DNS names and hosts/resolv.conf; answers the
/// endpoints as `ethN address` lines.
async fn container_connect(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: ContainerConnect = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let id = r.container.clone();
    match engine.connect_container(r).await {
        Ok(lines) => {
            shared.emit("container", "connect", &id);
            json(StatusCode::OK, &lines)
        }
        Err(e) => error(ErrorKind::InvalidArgument, &e),
    }
}

/// `POST /v1/container/disconnect` with a JSON list of container ids that are gone or going:
/// drops their DNS names and endpoints; answers the failures.
async fn container_disconnect(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let ids: Vec<String> = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let mut failures = Vec::new();
    for id in ids {
        if let Some(err) = engine.disconnect_container(&id).await {
            failures.push(err);
        }
    }
    json(StatusCode::OK, &failures)
}

/// `POST /v1/engine`: opens the engine if it is not open yet (restart policies, DNS, the
/// endpoint sweep run from then on), for a single container that needs them.
async fn open_engine(shared: &Shared) -> Response<Body> {
    match engine(shared).await {
        Ok(_) => json(StatusCode::OK, &EngineReply { engine: true }),
        Err(resp) => resp,
    }
}

/// `POST /v1/container/rename` with a container id: its DNS names follow its new name.
async fn container_rename(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let id: String = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match engine.refresh_container_dns(&id).await {
        Ok(()) => json(StatusCode::OK, &RenameReply { renamed: id }),
        Err(e) => error(ErrorKind::InvalidArgument, &e),
    }
}
