//! `GET /distribution/{name}/json`: what the registry serves under a name, without pulling
//! it (the runtime's `distribution::inspect`, on the pull's registry client and the
//! `X-Registry-Auth` credentials of this request only).

use std::sync::Arc;

use berth_runtime::image::distribution;
use berth_runtime::image::reference::Reference;
use berth_runtime::image::registry::RegistryError;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::errors::ApiError;
use super::images_pull::{credentials, header_auth};
use super::{Body, Docker, json};

/// The name of a `/distribution/{name}/json` route.
pub(super) fn name_of(route: &str) -> Option<&str> {
    route
        .strip_prefix("/distribution/")?
        .strip_suffix("/json")
        .filter(|n| !n.is_empty())
}

/// `GET /distribution/{name}/json`: `{Descriptor, Platforms}`.
pub(super) async fn inspect(
    _docker: &Arc<Docker>,
    req: Request<Incoming>,
    name: &str,
) -> Result<Response<Body>, ApiError> {
    let parsed: Reference = name
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid reference format: {name}")))?;
    let creds = credentials(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let n = name.to_string();
    let found = tokio::task::spawn_blocking(move || {
        let (opts, _dir) = header_auth(creds.as_ref(), &parsed.registry);
        distribution::inspect(&n, &opts)
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?;
    let d = found.map_err(|e| {
        let message = crate::api::error::error_chain(&e);
        match e {
            RegistryError::NotFound { .. } => ApiError {
                status: StatusCode::NOT_FOUND,
                message,
            },
            RegistryError::Unauthorized { .. } => ApiError {
                status: StatusCode::UNAUTHORIZED,
                message,
            },
            RegistryError::Reference(_) => ApiError::bad_request(message),
            _ => ApiError::internal(message),
        }
    })?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "Descriptor": {
                "mediaType": d.media_type,
                "digest": d.digest.to_string(),
                "size": d.size,
            },
            "Platforms": d.platforms,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_hold_slashes_tags_and_digests() {
        assert_eq!(
            name_of("/distribution/127.0.0.1:5000/a/b:1/json"),
            Some("127.0.0.1:5000/a/b:1")
        );
        assert_eq!(name_of("/distribution/busybox/json"), Some("busybox"));
        assert_eq!(name_of("/distribution//json"), None);
        assert_eq!(name_of("/distribution/json"), None);
    }
}
