//! The Docker Engine API on `<run>/docker.sock`, so that the docker CLI, Docker Compose and
//! docker-py drive berth as they drive dockerd (`export DOCKER_HOST=$(berth system
//! docker-host)`).
//!
//! The same daemon, the same event bus and the same state as berth's own API; only the wire
//! differs: Docker's paths (`/v1.51/info`, or unversioned), its headers, its JSON shapes and its
//! errors (`{"message": ...}` with Docker's status codes). A route of Docker's API that berth
//! does not serve yet answers 501 naming it, never a pretended success; a path Docker does not
//! have is Docker's 404 `page not found`.

mod attach;
mod auth;
mod blocking_stream;
mod build;
mod build_prune;
mod commit;
mod containers;
mod containers_archive;
mod containers_inspect;
mod containers_list;
mod containers_misc;
mod containers_stats;
mod containers_top;
mod containers_update;
mod df;
mod distribution;
mod errors;
mod events;
mod exec;
mod hijack;
mod host;
mod images;
mod images_archive;
mod images_list;
mod images_pull;
mod images_push;
mod images_stream;
mod logs;
mod name_filter;
mod networks;
mod query;
mod status;
mod streams;
mod swarm;
mod system;
mod unserved;
mod version;
mod volumes;
mod wait;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;

use super::{DaemonError, Shared};
use errors::ApiError;

/// File name of the Docker API socket inside the run directory (Docker's is `docker.sock`).
pub(super) const SOCKET_NAME: &str = "docker.sock";

/// The body of every answer: whole JSON documents or streams.
type Body = BoxBody<Bytes, Infallible>;

/// The Docker API socket of the instance whose run directory is `run`.
pub(super) fn socket(run: &Path) -> PathBuf {
    run.join(SOCKET_NAME)
}

/// Binds `<run>/docker.sock` as Docker binds its own: mode 0660, owned by the daemon's user
/// (root), never reachable by anyone else, not even between bind and chmod.
pub(super) fn bind(run: &Path) -> Result<UnixListener, DaemonError> {
    let path = socket(run);
    let listen_err = |source| DaemonError::Listen {
        path: path.clone(),
        source,
    };
    // The caller holds the instance lock: a leftover socket belongs to no live daemon.
    let _ = std::fs::remove_file(&path);
    let mask = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(&path);
    nix::sys::stat::umask(mask);
    let listener = listener.map_err(listen_err)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).map_err(listen_err)?;
    Ok(listener)
}

/// What every Docker API connection shares: the daemon's state and the event history.
struct Docker {
    shared: Arc<Shared>,
    events: events::Events,
    /// The instance's containers, read as the engine reads them.
    rt: berth_runtime::container::Runtime,
}

/// Accepts Docker API connections until the daemon closes.
pub(super) async fn serve(shared: Arc<Shared>, listener: UnixListener) {
    let exe = std::env::current_exe().unwrap_or_else(|_| "berth".into());
    let rt = berth_runtime::container::Runtime::new(crate::engine::stack::runtime_config(
        &shared.opts.root,
        &shared.opts.run,
        exe,
    ));
    let docker = Arc::new(Docker {
        events: events::Events::new(),
        shared,
        rt,
    });
    let mut closing = docker.shared.closing.subscribe();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = closing.wait_for(|c| *c) => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let docker = docker.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let docker = docker.clone();
                async move { Ok::<_, Infallible>(handle(docker, req).await) }
            });
            if let Err(err) = http1::Builder::new()
                .title_case_headers(true)
                .serve_connection(TokioIo::new(super::lingering::Lingering::new(stream)), svc)
                .with_upgrades()
                .await
            {
                tracing::debug!(%err, "Docker API connection ended with an error");
            }
        });
    }
}

/// Answers one request: the version of the path is checked first (as Docker's middleware
/// does), then the route; every answer carries the version headers.
async fn handle(docker: Arc<Docker>, req: Request<Incoming>) -> Response<Body> {
    // Events are recorded from the first Docker client on, so `--since` finds them.
    docker.events.start_recording(&docker);
    let (began, method) = (std::time::Instant::now(), req.method().clone());
    let path = req.uri().path().to_string();
    let mut resp = match version::split(&path) {
        None => ApiError::page_not_found().response(),
        Some((asked, route)) => match version::check(asked) {
            Err(e) => e.response(),
            Ok(()) => route_to(&docker, req, route)
                .await
                .unwrap_or_else(ApiError::response),
        },
    };
    version::stamp(resp.headers_mut());
    // The request log (`RUST_LOG=berth::daemon::docker=debug`): until the answer's head.
    let ms = began.elapsed().as_secs_f64() * 1000.0;
    tracing::debug!(%method, path, status = resp.status().as_u16(), ms, "Docker API");
    resp
}

/// The router: Docker's method and path (without the version) to the function serving it.
async fn route_to(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    route: &str,
) -> Result<Response<Body>, ApiError> {
    let query = req.uri().query().unwrap_or("").to_string();
    if let Some(c) = containers::Route::parse(req.method(), route) {
        return containers::serve(docker, req, c, &query).await;
    }
    if let Some(s) = streams::Route::parse(req.method(), route) {
        return streams::serve(docker, req, s, &query).await;
    }
    if let Some(i) = images::Route::parse(req.method(), route) {
        return images::serve(docker, req, i, &query).await;
    }
    if let Some(n) = networks::Route::parse(req.method(), route) {
        return networks::serve(docker, req, n, &query).await;
    }
    if let Some(v) = volumes::Route::parse(req.method(), route) {
        return volumes::serve(docker, req, v, &query).await;
    }
    if let Some(no_swarm) = swarm::not_in_swarm(req.method(), route) {
        return Err(no_swarm);
    }
    match (req.method(), route) {
        (&Method::POST, "/build") => return build::build(docker, req, &query).await,
        (&Method::POST, "/commit") => return commit::commit(docker, req, &query).await,
        (&Method::POST, "/auth") => return auth::auth(docker, req).await,
        (&Method::POST, "/build/prune") => return build_prune::prune(docker, &query).await,
        (&Method::GET, r) if distribution::name_of(r).is_some() => {
            let name = distribution::name_of(r).unwrap_or_default().to_string();
            return distribution::inspect(docker, req, &name).await;
        }
        _ => {}
    }
    match (req.method(), route) {
        (&Method::GET | &Method::HEAD, "/_ping") => Ok(version::ping(req.method())),
        (&Method::GET, "/version") => Ok(json(StatusCode::OK, &version::version())),
        (&Method::GET, "/info") => system::info(docker).await.map(|i| json(StatusCode::OK, &i)),
        (&Method::GET, "/system/df") => df::df(docker, &query)
            .await
            .map(|d| json(StatusCode::OK, &d)),
        (&Method::GET, "/events") => events::stream(docker, &query),
        (method, route) if unserved::is_docker_route(method, route) => {
            Err(ApiError::not_implemented(method, route))
        }
        _ => Err(ApiError::page_not_found()),
    }
}

/// A whole JSON answer, as Docker's encoder writes it (one document and a newline).
fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_vec(value) {
        Ok(mut bytes) => {
            bytes.push(b'\n');
            full(status, "application/json", bytes)
        }
        Err(err) => ApiError::internal(format!("encoding the answer: {err}")).response(),
    }
}

fn full(status: StatusCode, content_type: &str, bytes: Vec<u8>) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(bytes)).boxed());
    *resp.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    resp
}
