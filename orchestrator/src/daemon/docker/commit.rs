//! `POST /commit?container=&repo=&tag=&comment=&author=&changes=&pause=` (`docker commit`):
//! `Runtime::commit`, the call `berth container commit` makes, with the container frozen while
//! its changes are read when it runs and `pause` is not off (as Docker and berth's CLI do).
//! 201 `{"Id": "sha256:…"}`.

use std::sync::Arc;

use berth_runtime::container::commit::{CommitError, CommitOptions};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::errors::ApiError;
use super::images::{blocking, optional_reference, store, store_error};
use super::{Body, Docker, json, query};

/// The largest config body read (clients send `null` or a small object).
const MAX_BODY: usize = 1 << 20;

/// `POST /commit`.
pub(super) async fn commit(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let container = query::get(q, "container").unwrap_or_default();
    if container.is_empty() {
        return Err(ApiError::bad_request("container is required (container=)"));
    }
    let reference = optional_reference(q)?;
    let nonempty = |k: &str| query::get(q, k).filter(|v| !v.is_empty());
    let opts = CommitOptions {
        changes: query::pairs(q)
            .into_iter()
            .filter(|(k, v)| k == "changes" && !v.trim().is_empty())
            .map(|(_, v)| v)
            .collect(),
        message: nonempty("comment"),
        author: nonempty("author"),
        reference,
    };
    // Docker's body is a container config to merge; berth takes `changes` for that and
    // refuses a config rather than dropping it.
    let body = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let v: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
        let empty = v.is_null() || v.as_object().is_some_and(|m| m.values().all(is_unset));
        if !empty {
            return Err(ApiError::bad_request(
                "berth's commit applies `changes` (Dockerfile instructions), not a container \
                 config body",
            ));
        }
    }
    let pause = query::get(q, "pause").is_none_or(|v| !matches!(v.as_str(), "0" | "false"));
    let d = docker.clone();
    blocking(move || {
        let rt = &d.rt;
        let rec = super::containers::find(rt, &container)?;
        let store = store(&d)?;
        let freeze = pause && rt.is_running(&rec) && !rt.is_paused(&rec);
        if freeze {
            rt.pause(&rec)
                .map_err(|e| ApiError::internal(format!("pausing {container}: {e}")))?;
        }
        let committed = rt.commit(&store, &rec, &opts);
        if freeze && let Err(e) = rt.unpause(&rec) {
            tracing::warn!(%e, "unpausing a container after a commit");
        }
        let img = committed.map_err(|e| match e {
            CommitError::Store(s) => store_error(&container, s),
            e @ (CommitError::Change { .. } | CommitError::NotFromImage { .. }) => {
                ApiError::bad_request(crate::api::error::error_chain(&e))
            }
            e => ApiError::internal(crate::api::error::error_chain(&e)),
        })?;
        Ok(json(
            StatusCode::CREATED,
            &serde_json::json!({ "Id": img.id.to_string() }),
        ))
    })
    .await
}

/// A config value that asks for nothing (what clients fill an unused config with).
fn is_unset(v: &serde_json::Value) -> bool {
    match v {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => !b,
        serde_json::Value::String(s) => s.is_empty(),
        serde_json::Value::Array(a) => a.is_empty(),
        serde_json::Value::Object(o) => o.is_empty(),
        serde_json::Value::Number(n) => n.as_f64() == Some(0.0),
    }
}
