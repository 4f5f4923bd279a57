//! `POST /images/create?fromImage=&tag=` (`docker pull`): `registry::pull`, the call `berth
//! image pull` makes, with its progress as Docker's JSON stream (`Pulling fs layer`,
//! `Downloading` with `progressDetail`, `Pull complete`, `Already exists`, then `Digest:` and
//! `Status: Downloaded newer image for X` or `Image is up to date for X`). A reference the
//! registry does not have is Docker's 404 before any of the stream; the `X-Registry-Auth`
//! header's credentials are used for this pull only (written to a private temporary Docker
//! config the pull reads, never to the daemon's own).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use berth_runtime::image::registry::{self, Progress, PullOptions, RegistryError};
use berth_runtime::image::{Image, Reference};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::errors::ApiError;
use super::images::{familiar, store};
use super::images_stream::streamed;
use super::{Body, Docker, query};

/// What the pulling thread reports.
enum Msg {
    Progress(Value),
    Done(Box<Result<Image, RegistryError>>, bool),
}

/// The reference `fromImage` and `tag` name together (`tag` may be a digest).
fn reference(q: &str) -> Result<String, ApiError> {
    let image = query::get(q, "fromImage").unwrap_or_default();
    let tag = query::get(q, "tag").unwrap_or_default();
    let r = if tag.is_empty() {
        image
    } else if tag.starts_with("sha256:") {
        format!("{image}@{tag}")
    } else {
        format!("{image}:{tag}")
    };
    r.parse::<Reference>()
        .map_err(|_| ApiError::bad_request(format!("invalid reference format: {r}")))?;
    Ok(r)
}

/// The credentials of an `X-Registry-Auth` header (base64url JSON), if it carries any.
pub(super) fn credentials(header: Option<&str>) -> Option<(String, String)> {
    let raw = header?.trim();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(raw.trim_end_matches('='))
        .or_else(|_| base64::engine::general_purpose::STANDARD.decode(raw))
        .ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    let s = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let (user, password) = (s("username"), s("password"));
    if !user.is_empty() {
        return Some((user, password));
    }
    // The `auth` field is `user:password` in standard base64, as in config.json.
    let auth = base64::engine::general_purpose::STANDARD
        .decode(s("auth"))
        .ok()?;
    let auth = String::from_utf8(auth).ok()?;
    auth.split_once(':')
        .map(|(u, p)| (u.to_string(), p.to_string()))
}

/// Options whose credentials are the `X-Registry-Auth` header's, written to a Docker config of
/// this request's own (kept while the returned directory lives), never to the daemon's.
pub(super) fn header_auth(
    creds: Option<&(String, String)>,
    registry_host: &str,
) -> (PullOptions, Option<tempfile::TempDir>) {
    let mut opts = PullOptions::default();
    let Some((user, password)) = creds else {
        return (opts, None);
    };
    let Ok(dir) = tempfile::tempdir() else {
        return (opts, None);
    };
    let file = dir.path().join("config.json");
    if registry::store_credentials(&file, registry_host, Some((user, password))).is_ok() {
        opts.auth_file = Some(file);
    }
    (opts, Some(dir))
}

/// One progress event in Docker's words (the layer id is its short digest).
fn progress_json(p: Progress, totals: &Mutex<HashMap<String, (u64, u64)>>) -> Option<Value> {
    let Ok(mut totals) = totals.lock() else {
        return None;
    };
    Some(match p {
        Progress::Present(d) => {
            json!({"status": "Already exists", "progressDetail": {}, "id": d.short()})
        }
        Progress::Downloading(d, size) => {
            totals.insert(d.to_string(), (0, size));
            json!({"status": "Pulling fs layer", "progressDetail": {}, "id": d.short()})
        }
        Progress::Bytes(d, n) => {
            let e = totals.entry(d.to_string()).or_insert((0, 0));
            e.0 += n;
            json!({"status": "Downloading",
                   "progressDetail": {"current": e.0, "total": e.1},
                   "id": d.short()})
        }
        Progress::Done(d) => {
            json!({"status": "Pull complete", "progressDetail": {}, "id": d.short()})
        }
    })
}

/// `POST /images/create?fromImage=&tag=`.
pub(super) async fn pull(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let name = reference(q)?;
    let parsed: Reference = name
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid reference format: {name}")))?;
    if let Some(p) = query::get(q, "platform").filter(|p| !p.is_empty())
        && p != format!("linux/{}", berth_runtime::image::store::host_arch())
    {
        return Err(ApiError::bad_request(format!(
            "berth pulls for this host's platform only, not {p}"
        )));
    }
    let creds = credentials(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let store = store(docker)?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
    let shown = {
        let tag = parsed
            .tag
            .clone()
            .map(|t| format!(":{t}"))
            .or_else(|| parsed.digest.as_ref().map(|d| format!("@{d}")))
            .unwrap_or_else(|| ":latest".into());
        familiar(&format!("{}{tag}", parsed.name()))
    };
    let n = name.clone();
    let d = docker.clone();
    let event_name = shown.clone();
    tokio::task::spawn_blocking(move || {
        let before = store.resolve_id(&n).ok();
        let (opts, _dir) = header_auth(creds.as_ref(), &parsed.registry);
        let totals = Mutex::new(HashMap::new());
        let ptx = Mutex::new(tx.clone());
        let show = |p: Progress| {
            if let (Some(v), Ok(t)) = (progress_json(p, &totals), ptx.lock()) {
                let _ = t.send(Msg::Progress(v));
            }
        };
        let out = registry::pull(&store, &n, &opts, &show);
        if out.is_ok() {
            // Docker's pull event: the reference as the actor, its repository as the name.
            let repo = event_name
                .rsplit_once(['@', ':'])
                .filter(|(_, t)| !t.contains('/'))
                .map_or(event_name.as_str(), |(r, _)| r);
            super::events::image_event(&d, "pull", &event_name, repo);
        }
        let fresh = match &out {
            Ok(img) => before.as_ref() != Some(&img.id),
            Err(_) => false,
        };
        let _ = tx.send(Msg::Done(Box::new(out), fresh));
    });
    // Docker answers a missing image or refused credentials with a status, not a stream: wait
    // for the first sign of the pull before the headers go.
    let first = rx.recv().await;
    if let Some(Msg::Done(out, _)) = &first
        && let Err(e) = out.as_ref()
    {
        return Err(pull_error(&name, e));
    }
    let (out, resp) = streamed("application/json");
    let repo = parsed.repository.clone();
    let what = parsed
        .tag
        .clone()
        .or_else(|| parsed.digest.as_ref().map(|d| d.to_string()))
        .unwrap_or_else(|| "latest".into());
    tokio::task::spawn_blocking(move || {
        out.json(&json!({"status": format!("Pulling from {repo}"), "id": what}));
        let mut next = first;
        while let Some(msg) = next {
            match msg {
                Msg::Progress(v) => {
                    if !out.json(&v) {
                        return;
                    }
                }
                Msg::Done(out_, fresh) => match *out_ {
                    Ok(img) => {
                        out.json(&json!({"status": format!("Digest: {}", img.manifest_digest)}));
                        let status = if fresh {
                            format!("Status: Downloaded newer image for {shown}")
                        } else {
                            format!("Status: Image is up to date for {shown}")
                        };
                        out.json(&json!({ "status": status }));
                        return;
                    }
                    Err(e) => {
                        let message = crate::api::error::error_chain(&e);
                        out.json(&json!({"errorDetail": {"message": message}, "error": message}));
                        return;
                    }
                },
            }
            next = rx.blocking_recv();
        }
    });
    Ok(resp)
}

/// A pull that failed before any progress, with Docker's status.
fn pull_error(name: &str, e: &RegistryError) -> ApiError {
    let message = crate::api::error::error_chain(e);
    match e {
        RegistryError::NotFound { .. } => ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "pull access denied for {name}, repository does not exist or may require \
                 'docker login': {message}"
            ),
        },
        RegistryError::Unauthorized { .. } => ApiError {
            status: StatusCode::UNAUTHORIZED,
            message,
        },
        RegistryError::Reference(_) => ApiError::bad_request(message),
        _ => ApiError::internal(message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_image_and_tag_make_one_reference() {
        assert_eq!(
            reference("fromImage=busybox&tag=1").ok().as_deref(),
            Some("busybox:1")
        );
        assert_eq!(
            reference("fromImage=127.0.0.1:5000/a/b").ok().as_deref(),
            Some("127.0.0.1:5000/a/b")
        );
        assert!(reference("fromImage=Bad+Name").is_err());
    }

    #[test]
    fn registry_auth_headers_give_credentials() {
        let h = base64::engine::general_purpose::URL_SAFE
            .encode(r#"{"username":"u","password":"p","serveraddress":"r"}"#);
        assert_eq!(credentials(Some(&h)), Some(("u".into(), "p".into())));
        let empty = base64::engine::general_purpose::URL_SAFE.encode("{}");
        assert_eq!(credentials(Some(&empty)), None);
        assert_eq!(credentials(Some("not base64!")), None);
        assert_eq!(credentials(None), None);
    }
}
