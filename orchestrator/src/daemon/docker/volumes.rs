//! Docker's volume routes: list (filters), inspect, create, remove and prune, on the runtime's
//! volume calls that `berth volume` makes (`volume_create`, `volume_list`, `volume_inspect`,
//! `volume_remove`, `volume_prune_where`); only the wire is Docker's: its `Volume` shape, its
//! status codes and words, and its prune rule (API 1.42 on: anonymous volumes only unless
//! `all=true`).

use std::collections::BTreeMap;
use std::sync::Arc;

use berth_runtime::container::volumes::{VolumeError, VolumeInfo};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::errors::ApiError;
use super::networks::{bool_filter, until_secs};
use super::query::{self, Filters};
use super::{Body, Docker, json};

/// The largest request body read (a real one is well under a KiB).
const MAX_BODY: usize = 1 << 20;

/// One volume route of Docker's API.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    List,
    Create,
    Prune,
    Inspect(String),
    Remove(String),
}

impl Route {
    /// The route `method path` names, if it is a volume route berth serves.
    pub(super) fn parse(method: &Method, path: &str) -> Option<Route> {
        if path == "/volumes" && method == Method::GET {
            return Some(Route::List);
        }
        let rest = path.strip_prefix("/volumes/")?;
        let segs: Vec<&str> = rest.split('/').collect();
        let name = |s: &str| (!s.is_empty()).then(|| crate::api::decode_segment(s));
        match (method, segs.as_slice()) {
            (&Method::POST, ["create"]) => Some(Route::Create),
            (&Method::POST, ["prune"]) => Some(Route::Prune),
            (&Method::GET, [v]) => name(v).map(Route::Inspect),
            (&Method::DELETE, [v]) => name(v).map(Route::Remove),
            _ => None,
        }
    }
}

/// Serves one volume route.
pub(super) async fn serve(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    route: Route,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::List => list(docker, query).await,
        Route::Inspect(name) => {
            let rt = docker.rt.clone();
            let v =
                blocking(move || rt.volume_inspect(&name).map_err(|e| volume_error(&e))).await?;
            Ok(json(StatusCode::OK, &volume(&v)))
        }
        Route::Create => create(docker, req).await,
        Route::Remove(name) => remove(docker, &name, query).await,
        Route::Prune => {
            let before_1_42 = super::version::split(req.uri().path())
                .and_then(|(v, _)| v)
                .and_then(|v| v.strip_prefix("1.")?.parse::<u64>().ok())
                .is_some_and(|minor| minor < 42);
            prune(docker, query, before_1_42).await
        }
    }
}

/// Runs blocking runtime work off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
}

/// A runtime volume failure in Docker's status and words.
fn volume_error(e: &VolumeError) -> ApiError {
    let (status, message) = match e {
        VolumeError::NotFound(n) => (StatusCode::NOT_FOUND, format!("get {n}: no such volume")),
        VolumeError::InUse { name, containers } => {
            // `NAME (id12)` of each user: Docker names them by id.
            let ids: Vec<&str> = containers
                .iter()
                .map(|c| {
                    c.rsplit_once(" (")
                        .map_or(c.as_str(), |(_, id)| id.trim_end_matches(')'))
                })
                .collect();
            (
                StatusCode::CONFLICT,
                format!("remove {name}: volume is in use - [{}]", ids.join(", ")),
            )
        }
        VolumeError::BadDevice(_) => (StatusCode::BAD_REQUEST, e.to_string()),
        // A refused option, or one the filesystem refused at the mount: the request's.
        VolumeError::Mount(_) => (StatusCode::BAD_REQUEST, crate::api::error::error_chain(e)),
        VolumeError::BadName(n) => (
            StatusCode::BAD_REQUEST,
            format!(
                "create {n}: \"{n}\" includes invalid characters for a local volume name, only \
                 \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host \
                 directory, use absolute path"
            ),
        ),
        e => (
            StatusCode::INTERNAL_SERVER_ERROR,
            crate::api::error::error_chain(e),
        ),
    };
    ApiError { status, message }
}

/// A volume in Docker's `Volume` shape.
fn volume(v: &VolumeInfo) -> serde_json::Value {
    serde_json::json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.meta.created,
        "Labels": v.meta.labels,
        "Scope": "local",
        "Options": (!v.meta.options.is_empty()).then_some(&v.meta.options),
    })
}

/// Whether a volume passes Docker's volume filters (values of one key: any; keys: all;
/// `label`: all).
fn matches(v: &VolumeInfo, f: &Filters) -> Result<bool, ApiError> {
    let any =
        |key: &str, ok: &dyn Fn(&str) -> bool| f.get(key).is_none_or(|s| s.iter().any(|x| ok(x)));
    for d in f.get("driver").into_iter().flatten() {
        if d != "local" {
            return Ok(false);
        }
    }
    let dangling = match f.get("dangling").and_then(|s| s.iter().next()) {
        Some(d) => Some(bool_filter("dangling", d)?),
        None => None,
    };
    Ok(any("name", &|n| v.name.contains(n))
        && f.get("label")
            .is_none_or(|s| s.iter().all(|l| v.has_label(l)))
        && dangling.is_none_or(|d| d == v.dangling()))
}

/// `GET /volumes?filters=`: `{Volumes, Warnings}`.
async fn list(docker: &Arc<Docker>, query: &str) -> Result<Response<Body>, ApiError> {
    let f = query::filters(query, &["name", "label", "dangling", "driver"])?;
    let rt = docker.rt.clone();
    let all = blocking(move || Ok(rt.volume_list())).await?;
    let mut out = Vec::new();
    for v in &all {
        if matches(v, &f)? {
            out.push(volume(v));
        }
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "Volumes": out, "Warnings": [] }),
    ))
}

/// Docker's `VolumeCreateOptions`, the part berth reads.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    driver: Option<String>,
    #[serde(default)]
    driver_opts: Option<BTreeMap<String, String>>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    cluster_volume_spec: Option<serde_json::Value>,
}

/// `POST /volumes/create`: 201 with the volume; a name that exists answers that volume, as
/// Docker's local driver does; an empty name is generated (and the volume anonymous, as
/// dockerd 23 on marks it). `DriverOpts` `type=none,o=bind,device=DIR` bind a host directory,
/// as compose's `driver_opts` do; other `type`/`o`/`device` options are the local driver's
/// mount (a refusal names the volume and the option).
async fn create(docker: &Arc<Docker>, req: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    let b: CreateBody = if bytes.iter().all(u8::is_ascii_whitespace) {
        CreateBody::default()
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
    };
    let driver = b.driver.unwrap_or_default();
    if !matches!(driver.as_str(), "" | "local") {
        return Err(ApiError::bad_request(format!(
            "volume driver \"{driver}\" is not supported by berth (only \"local\")"
        )));
    }
    let opts = b.driver_opts.unwrap_or_default();
    let device = crate::compose::bind_device(&opts).map(std::path::PathBuf::from);
    if b.cluster_volume_spec.is_some_and(|c| !c.is_null()) {
        return Err(ApiError::bad_request(
            "ClusterVolumeSpec is not supported by berth (no swarm)",
        ));
    }
    let name = b.name.filter(|n| !n.is_empty());
    let labels = b.labels.unwrap_or_default();
    let rt = docker.rt.clone();
    let (v, made) = blocking(move || {
        if let Some(n) = &name
            && let Ok(v) = rt.volume_inspect(n)
        {
            return Ok((v, false));
        }
        match device {
            Some(d) => rt.volume_create_bound(name.as_deref(), labels, opts, &d),
            None if !opts.is_empty() => rt.volume_create_mounted(name.as_deref(), labels, opts),
            None => rt.volume_create(name.as_deref(), labels, name.is_none()),
        }
        .map(|v| (v, true))
        .map_err(|e| volume_error(&e))
    })
    .await?;
    if made {
        super::events::emit(docker, "volume", "create", &v.name, &[("driver", "local")]);
    }
    Ok(json(StatusCode::CREATED, &volume(&v)))
}

/// `DELETE /volumes/{name}?force=`: 204; 409 in use; 404 unknown (204 with `force`).
async fn remove(docker: &Arc<Docker>, name: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let force = query::get(query, "force")
        .is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False"));
    let rt = docker.rt.clone();
    let name = name.to_string();
    let n = name.clone();
    let removed = blocking(move || match rt.volume_remove(&n) {
        Ok(()) => Ok(true),
        Err(VolumeError::NotFound(_)) if force => Ok(false),
        Err(e) => Err(volume_error(&e)),
    })
    .await?;
    if removed {
        super::events::emit(docker, "volume", "destroy", &name, &[("driver", "local")]);
    }
    Ok(super::containers::empty(StatusCode::NO_CONTENT))
}

/// `POST /volumes/prune?filters=`: unused volumes passing `label`/`label!` go; from API 1.42
/// only anonymous ones unless `all=true` (older clients prune every unused one).
async fn prune(
    docker: &Arc<Docker>,
    query: &str,
    before_1_42: bool,
) -> Result<Response<Body>, ApiError> {
    let f = query::filters(query, &["label", "label!", "all", "until"])?;
    let all = match f.get("all").and_then(|s| s.iter().next()) {
        Some(a) => bool_filter("all", a)?,
        None => before_1_42,
    };
    if let Some(u) = f.get("until").and_then(|s| s.iter().next()) {
        until_secs(u)?;
        return Err(ApiError::bad_request(
            "invalid filter 'until': volumes cannot be pruned by age",
        ));
    }
    let rt = docker.rt.clone();
    let gone = blocking(move || {
        rt.volume_prune_where(|v| {
            (all || v.meta.anonymous)
                && f.get("label")
                    .is_none_or(|s| s.iter().all(|l| v.has_label(l)))
                && !f
                    .get("label!")
                    .is_some_and(|s| s.iter().any(|l| v.has_label(l)))
        })
        .map_err(|e| volume_error(&e))
    })
    .await?;
    for v in &gone {
        super::events::emit(docker, "volume", "destroy", v, &[("driver", "local")]);
    }
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "VolumesDeleted": gone, "SpaceReclaimed": 0 }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_routes_parse() {
        let p = Route::parse;
        assert_eq!(p(&Method::GET, "/volumes"), Some(Route::List));
        assert_eq!(p(&Method::POST, "/volumes/create"), Some(Route::Create));
        assert_eq!(p(&Method::POST, "/volumes/prune"), Some(Route::Prune));
        assert_eq!(
            p(&Method::DELETE, "/volumes/v1"),
            Some(Route::Remove("v1".into()))
        );
        assert_eq!(p(&Method::PUT, "/volumes/v1"), None);
    }

    #[test]
    fn in_use_names_the_containers_by_id() {
        let e = volume_error(&VolumeError::InUse {
            name: "v1".into(),
            containers: vec!["a (0123456789ab)".into()],
        });
        assert_eq!(e.status, StatusCode::CONFLICT);
        assert_eq!(e.message, "remove v1: volume is in use - [0123456789ab]");
    }
}
