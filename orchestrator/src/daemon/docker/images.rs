//! The image routes of Docker's API: the router, and the routes that name, untag and remove
//! images (tag, remove, prune). They call the image store exactly as berth's `image` CLI does
//! (`ImageStore::tag`, `remove`, `prune`), so both CLIs see and change the same images; only
//! the answers are Docker's (familiar names such as `alpine:latest`, `No such image: X`,
//! Docker's 409 words for an image a container uses).
//!
//! Listing, inspect and history are in `images_list.rs`; save, load and import in
//! `images_archive.rs`; pull in `images_pull.rs`; push in
//! `images_push.rs`.

use std::sync::Arc;

use berth_runtime::image::store::{RemoveReport, StoreError, split_tag, tag_key};
use berth_runtime::image::{ImageStore, Reference};
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::errors::ApiError;
use super::{Body, Docker, json, query};

/// One image route of Docker's API that berth serves.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    List,
    Inspect(String),
    History(String),
    Tag(String),
    Remove(String),
    Prune,
    /// `GET /images/get?names=` and `GET /images/{name}/get` (the name as its one entry).
    Save(Option<String>),
    Load,
    /// `POST /images/create`: pull (`fromImage`) or import (`fromSrc`).
    Create,
    /// `POST /images/{name}/push?tag=`.
    Push(String),
}

impl Route {
    /// The route `method path` names, if berth serves it. Image names hold slashes
    /// (`/images/ghcr.io/a/b:1/json`), so the name is everything between `/images/` and the
    /// route's last word.
    pub(super) fn parse(method: &Method, path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/images/")?;
        match (method, rest) {
            (&Method::GET, "json") => return Some(Route::List),
            (&Method::POST, "prune") => return Some(Route::Prune),
            (&Method::GET, "get") => return Some(Route::Save(None)),
            (&Method::POST, "load") => return Some(Route::Load),
            (&Method::POST, "create") => return Some(Route::Create),
            _ => {}
        }
        let named = |suffix: &str| {
            rest.strip_suffix(suffix)
                .filter(|n| !n.is_empty() && n.split('/').all(|s| !s.is_empty()))
                .map(str::to_string)
        };
        match *method {
            Method::GET => named("/json")
                .map(Route::Inspect)
                .or_else(|| named("/history").map(Route::History))
                .or_else(|| named("/get").map(|n| Route::Save(Some(n)))),
            Method::POST => named("/tag")
                .map(Route::Tag)
                .or_else(|| named("/push").map(Route::Push)),
            Method::DELETE => named("").map(Route::Remove),
            _ => None,
        }
    }
}

/// Serves one image route.
pub(super) async fn serve(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    route: Route,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::List => {
            let q = query.to_string();
            let d = docker.clone();
            blocking(move || super::images_list::list(&d, &q))
                .await
                .map(|l| json(StatusCode::OK, &l))
        }
        Route::Inspect(name) => {
            let d = docker.clone();
            blocking(move || super::images_list::inspect(&d, &name))
                .await
                .map(|i| json(StatusCode::OK, &i))
        }
        Route::History(name) => {
            let d = docker.clone();
            blocking(move || super::images_list::history(&d, &name))
                .await
                .map(|h| json(StatusCode::OK, &h))
        }
        Route::Tag(name) => tag(docker, &name, query).await,
        Route::Remove(name) => remove(docker, &name, query).await,
        Route::Prune => prune(docker, query).await,
        Route::Save(name) => super::images_archive::save(docker, name, query).await,
        Route::Load => super::images_archive::load(docker, req, query).await,
        Route::Push(name) => super::images_push::push(docker, req, &name, query).await,
        Route::Create => {
            if query::get(query, "fromSrc").is_some_and(|s| !s.is_empty()) {
                super::images_archive::import(docker, req, query).await
            } else {
                super::images_pull::pull(docker, req, query).await
            }
        }
    }
}

/// Runs blocking store work off the async threads.
pub(super) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
}

/// The instance's image store (the one berth's CLI opens).
pub(super) fn store(docker: &Docker) -> Result<ImageStore, ApiError> {
    ImageStore::open(&docker.shared.opts.root)
        .map_err(|e| ApiError::internal(format!("opening the image store: {e}")))
}

/// Docker's 404 for an image.
pub(super) fn no_such_image(what: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("No such image: {what}"),
    }
}

/// A store failure in Docker's words and status, `what` being the name the client gave.
pub(super) fn store_error(what: &str, err: StoreError) -> ApiError {
    match err {
        StoreError::NotFound { .. } => no_such_image(what),
        StoreError::Reference(_) => {
            ApiError::bad_request(format!("invalid reference format: {what}"))
        }
        StoreError::Ambiguous { .. } => no_such_image(what),
        err => ApiError::internal(crate::api::error::error_chain(&err)),
    }
}

/// A stored tag key (`docker.io/library/alpine:latest`) as Docker shows it (`alpine:latest`).
pub(super) fn familiar(key: &str) -> String {
    let (repo, tag) = split_tag(key);
    if tag.is_empty() {
        repo
    } else {
        format!("{repo}:{tag}")
    }
}

/// A repo digest (`docker.io/library/alpine@sha256:…`) as Docker shows it.
pub(super) fn familiar_digest(d: &str) -> String {
    match d.split_once('@') {
        Some((name, digest)) => match name.parse::<Reference>() {
            Ok(r) => format!("{}@{digest}", r.familiar_name()),
            Err(_) => d.to_string(),
        },
        None => d.to_string(),
    }
}

/// A boolean query parameter as Docker reads them (`1`, `true`; absent, `0`, `false`: off).
pub(super) fn flag(query: &str, key: &str) -> bool {
    query::get(query, key).is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False"))
}

/// An answer without a body.
pub(super) fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
    *resp.status_mut() = status;
    resp
}

/// The image a `repo=&tag=` query names (commit's and import's target), if it names one.
pub(super) fn optional_reference(q: &str) -> Result<Option<String>, ApiError> {
    let repo = query::get(q, "repo").unwrap_or_default();
    if repo.is_empty() {
        return Ok(None);
    }
    reference_of(&repo, &query::get(q, "tag").unwrap_or_default()).map(Some)
}

/// `REPO` and `TAG` as one reference (`TAG` defaults to `latest`, a digest-free repo).
pub(super) fn reference_of(repo: &str, tag: &str) -> Result<String, ApiError> {
    let r = if tag.is_empty() {
        repo.to_string()
    } else {
        format!("{repo}:{tag}")
    };
    tag_key(&r).map_err(|_| ApiError::bad_request(format!("invalid reference format: {r}")))?;
    Ok(r)
}

/// `POST /images/{name}/tag?repo=&tag=`: 201.
async fn tag(docker: &Arc<Docker>, name: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let repo = query::get(query, "repo").unwrap_or_default();
    if repo.is_empty() {
        return Err(ApiError::bad_request("repository name (repo) is required"));
    }
    if repo.contains('@') {
        return Err(ApiError::bad_request(
            "refusing to create a tag with a digest reference",
        ));
    }
    let target = reference_of(&repo, &query::get(query, "tag").unwrap_or_default())?;
    let d = docker.clone();
    let name = name.to_string();
    blocking(move || {
        let store = store(&d)?;
        let id = store.resolve_id(&name).map_err(|e| store_error(&name, e))?;
        store
            .tag(&id, &target)
            .map_err(|e| store_error(&target, e))?;
        super::events::image_event(&d, "tag", id.as_str(), &familiar_ref(&target));
        Ok(empty(StatusCode::CREATED))
    })
    .await
}

/// A reference as Docker's events name it (`busybox:1`, `ghcr.io/a/b:2`).
pub(super) fn familiar_ref(reference: &str) -> String {
    tag_key(reference)
        .map(|k| familiar(&k))
        .unwrap_or_else(|_| reference.to_string())
}

/// Docker's events of a removal: `untag` per name taken away (the actor is the image), then
/// `delete` per image deleted.
fn removal_events(
    docker: &Docker,
    image: Option<&berth_runtime::image::Digest>,
    rep: &RemoveReport,
) {
    if let Some(id) = image {
        for _ in &rep.untagged {
            super::events::image_event(docker, "untag", id.as_str(), id.as_str());
        }
    }
    for d in &rep.deleted {
        super::events::image_event(docker, "delete", d.as_str(), d.as_str());
    }
}

/// Docker's `[{"Untagged": …}, {"Deleted": …}]` of a removal.
fn report_items(rep: &RemoveReport) -> Vec<serde_json::Value> {
    let mut items: Vec<serde_json::Value> = rep
        .untagged
        .iter()
        .map(|t| serde_json::json!({ "Untagged": familiar(t) }))
        .collect();
    items.extend(
        rep.deleted
            .iter()
            .map(|d| serde_json::json!({ "Deleted": d.to_string() })),
    );
    items
}

/// `DELETE /images/{name}?force=&noprune=`: what was untagged and deleted; Docker's 409 when
/// a container uses the image or it has several names and is named by id.
async fn remove(docker: &Arc<Docker>, name: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let force = flag(query, "force");
    let d = docker.clone();
    let name = name.to_string();
    blocking(move || {
        let store = store(&d)?;
        let id = store.resolve_id(&name).ok();
        let rep = store.remove(&name, force).map_err(|e| match e {
            StoreError::InUse { image, containers } => {
                let running = containers
                    .split(", ")
                    .any(|c| d.rt.resolve(c).is_ok_and(|rec| d.rt.is_running(&rec)));
                in_use(&name, &image, &containers, running)
            }
            StoreError::MultipleTags { image, .. } => ApiError {
                status: StatusCode::CONFLICT,
                message: format!(
                    "conflict: unable to delete {} (must be forced) - image is referenced in \
                     multiple repositories",
                    image.short()
                ),
            },
            e => store_error(&name, e),
        })?;
        removal_events(&d, id.as_ref(), &rep);
        Ok(json(StatusCode::OK, &report_items(&rep)))
    })
    .await
}

/// Docker's 409 for removing an image a container uses: by a name, the repository reference
/// cannot be removed; by id, the image cannot be deleted (not even forced while a container
/// runs it).
fn in_use(
    name: &str,
    image: &berth_runtime::image::Digest,
    containers: &str,
    running: bool,
) -> ApiError {
    let container = containers.split(", ").next().unwrap_or_default();
    let container = &container[..container.len().min(12)];
    let by_id = name
        .strip_prefix("sha256:")
        .unwrap_or(name)
        .bytes()
        .all(|b| b.is_ascii_hexdigit())
        && image
            .hex()
            .starts_with(name.strip_prefix("sha256:").unwrap_or(name));
    let message = if by_id {
        let (force, state) = if running {
            ("cannot be forced", "running")
        } else {
            ("must be forced", "stopped")
        };
        format!(
            "conflict: unable to delete {} ({force}) - image is being used by {state} \
             container {container}",
            image.short()
        )
    } else {
        let shown = name
            .parse::<Reference>()
            .map(|r| format!("{}:{}", r.familiar_name(), r.tag.unwrap_or_default()))
            .unwrap_or_else(|_| name.to_string());
        format!(
            "conflict: unable to remove repository reference \"{shown}\" (must force) - \
             container {container} is using its referenced image {}",
            image.short()
        )
    };
    ApiError {
        status: StatusCode::CONFLICT,
        message,
    }
}

/// `POST /images/prune?filters={"dangling":["false"]}`: dangling images (every unused one
/// with `dangling=false`) and the layers only they used.
async fn prune(docker: &Arc<Docker>, query: &str) -> Result<Response<Body>, ApiError> {
    let filters = query::filters(query, &["dangling"])?;
    let all = match filters.get("dangling") {
        None => false,
        Some(v) if v.len() == 1 => match v.iter().next().map(String::as_str) {
            Some("true" | "1") => false,
            Some("false" | "0") => true,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid filter 'dangling={}'",
                    v.iter().next().cloned().unwrap_or_default()
                )));
            }
        },
        Some(_) => return Err(ApiError::bad_request("invalid filter 'dangling'")),
    };
    let d = docker.clone();
    blocking(move || {
        let store = store(&d)?;
        let rep = store
            .prune(all)
            .map_err(|e| ApiError::internal(crate::api::error::error_chain(&e)))?;
        removal_events(&d, None, &rep);
        super::events::emit(
            &d,
            "image",
            "prune",
            "",
            &[("reclaimed", &rep.reclaimed.to_string())],
        );
        let deleted = report_items(&rep);
        Ok(json(
            StatusCode::OK,
            &serde_json::json!({
                "ImagesDeleted": if deleted.is_empty() { serde_json::Value::Null } else { deleted.into() },
                "SpaceReclaimed": rep.reclaimed,
            }),
        ))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_routes_parse_with_slashes_in_names() {
        let p = Route::parse;
        assert_eq!(p(&Method::GET, "/images/json"), Some(Route::List));
        assert_eq!(
            p(&Method::GET, "/images/alpine:3/json"),
            Some(Route::Inspect("alpine:3".into()))
        );
        assert_eq!(
            p(&Method::GET, "/images/ghcr.io/a/b:1/history"),
            Some(Route::History("ghcr.io/a/b:1".into()))
        );
        assert_eq!(
            p(&Method::POST, "/images/sha256:ab/tag"),
            Some(Route::Tag("sha256:ab".into()))
        );
        assert_eq!(
            p(&Method::DELETE, "/images/library/busybox"),
            Some(Route::Remove("library/busybox".into()))
        );
        assert_eq!(p(&Method::GET, "/images/get"), Some(Route::Save(None)));
        assert_eq!(
            p(&Method::GET, "/images/busybox/get"),
            Some(Route::Save(Some("busybox".into())))
        );
        assert_eq!(p(&Method::POST, "/images/create"), Some(Route::Create));
        assert_eq!(
            p(&Method::POST, "/images/127.0.0.1:5000/x/push"),
            Some(Route::Push("127.0.0.1:5000/x".into()))
        );
        assert_eq!(p(&Method::GET, "/images//json"), None);
        assert_eq!(p(&Method::GET, "/images/search"), None);
    }

    #[test]
    fn names_are_shown_as_docker_shows_them() {
        assert_eq!(familiar("docker.io/library/alpine:latest"), "alpine:latest");
        assert_eq!(familiar("ghcr.io/a/b:1"), "ghcr.io/a/b:1");
        assert_eq!(
            familiar_digest("docker.io/library/alpine@sha256:abc"),
            "alpine@sha256:abc"
        );
        assert!(reference_of("busybox", "t1").is_ok());
        assert!(reference_of("Bad Name", "").is_err());
    }
}
