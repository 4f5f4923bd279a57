//! `POST /build/prune` (`docker builder prune`): berth's `builder prune` (the runtime's
//! `Builder::prune_report`: the build cache, the intermediate images only it held, `RUN
//! --mount=type=cache` directories and build scratch), answered as Docker's
//! `{CachesDeleted, SpaceReclaimed}`.

use std::sync::Arc;

use berth_runtime::build::exec::Builder;
use hyper::{Response, StatusCode};

use super::errors::ApiError;
use super::{Body, Docker, images, json, query};

/// Space limits a prune could keep to; berth's prune frees everything, so a non-zero one
/// is refused by name rather than ignored.
const LIMITS: &[&str] = &[
    "keep-storage",
    "reserved-space",
    "max-used-space",
    "min-free-space",
];

/// `POST /build/prune?all=&filters=`.
pub(super) async fn prune(docker: &Arc<Docker>, q: &str) -> Result<Response<Body>, ApiError> {
    // No filter narrows berth's prune: any key is Docker's 400 naming it.
    query::filters(q, &[])?;
    for key in LIMITS {
        if let Some(v) = query::get(q, key).filter(|v| !v.is_empty() && v != "0") {
            return Err(ApiError::bad_request(format!(
                "berth's build cache prune frees everything; {key}={v} cannot be kept to"
            )));
        }
    }
    let store = images::store(docker)?;
    let rt = docker.rt.clone();
    let root = docker.shared.opts.root.clone();
    let report = tokio::task::spawn_blocking(move || {
        Builder::new(&store, &rt, &root)
            .prune_report()
            .map_err(|e| ApiError::internal(crate::api::error::error_chain(&e)))
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))??;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "CachesDeleted": report.entries,
            "SpaceReclaimed": report.reclaimed,
        }),
    ))
}
