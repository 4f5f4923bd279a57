//! `docker save`, `docker load` and `docker import` over the API: `GET /images/get?names=`
//! and `GET /images/{name}/get` stream the archive `berth image save` writes
//! (`archive::save`: a docker-save archive that is also an OCI layout); `POST /images/load`
//! reads one with `archive::load` (as `berth image load`); `POST /images/create?fromSrc=-`
//! makes a one-layer image of a rootfs tar with `ImageStore::import` (as `berth image
//! import`), its `changes` applied by the runtime's Dockerfile-instruction rules (those of
//! `berth container commit --change`; an instruction berth does not apply is refused by name).

use std::sync::Arc;

use berth_runtime::container::commit::apply_changes;
use berth_runtime::image::archive;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use oci_spec::image::Config;

use super::errors::ApiError;
use super::images::{blocking, familiar, optional_reference, store, store_error};
use super::images_stream::{BodyReader, streamed};
use super::{Body, Docker, query};

/// `GET /images/get?names=A&names=B` (or `/images/{name}/get`): every name is resolved first
/// (Docker's 404 before any byte), then the archive streams as it is written.
pub(super) async fn save(
    docker: &Arc<Docker>,
    name: Option<String>,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let names: Vec<String> = match name {
        Some(n) => vec![n],
        None => query::pairs(q)
            .into_iter()
            .filter(|(k, v)| k == "names" && !v.is_empty())
            .map(|(_, v)| v)
            .collect(),
    };
    if names.is_empty() {
        return Err(ApiError::bad_request("no images given to save (names=)"));
    }
    let d = docker.clone();
    let checked = names.clone();
    let store = blocking(move || {
        let store = store(&d)?;
        for n in &checked {
            store.resolve_id(n).map_err(|e| store_error(n, e))?;
        }
        Ok(store)
    })
    .await?;
    let (tx, resp) = streamed("application/x-tar");
    let d = docker.clone();
    tokio::task::spawn_blocking(move || {
        match archive::save(&store, &names, std::io::BufWriter::new(tx)) {
            Ok(_) => {
                for n in &names {
                    if let Ok(id) = store.resolve_id(n) {
                        super::events::image_event(&d, "save", id.as_str(), id.as_str());
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %crate::api::error::error_chain(&e), "docker save ended early")
            }
        }
    });
    Ok(resp)
}

/// `POST /images/load`: the archive in the body; Docker's JSON stream, one
/// `{"stream":"Loaded image: X\n"}` per name (`Loaded image ID:` for an unnamed image), or
/// `{"errorDetail":…,"error":…}` when the archive cannot be loaded (nothing of it is kept).
pub(super) async fn load(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    _q: &str,
) -> Result<Response<Body>, ApiError> {
    let store = {
        let d = docker.clone();
        blocking(move || store(&d)).await?
    };
    let reader = BodyReader::new(req.into_body());
    let (tx, resp) = streamed("application/json");
    let d = docker.clone();
    tokio::task::spawn_blocking(move || match archive::load(&store, reader, None) {
        Ok(loaded) => {
            for l in loaded {
                let id = l.id.to_string();
                super::events::image_event(&d, "load", &id, &id);
                if l.tags.is_empty() {
                    tx.json(
                        &serde_json::json!({ "stream": format!("Loaded image ID: {}\n", l.id) }),
                    );
                }
                for t in l.tags {
                    tx.json(
                        &serde_json::json!({ "stream": format!("Loaded image: {}\n", familiar(&t)) }),
                    );
                }
            }
        }
        Err(e) => {
            let message = crate::api::error::error_chain(&e);
            tx.json(&serde_json::json!({
                "errorDetail": { "message": message },
                "error": message,
            }));
        }
    });
    Ok(resp)
}

/// `POST /images/create?fromSrc=-&repo=&tag=&changes=`: the body is a rootfs tar (plain or
/// compressed); answers Docker's `{"status":"sha256:…"}`.
pub(super) async fn import(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let src = query::get(q, "fromSrc").unwrap_or_default();
    if src != "-" {
        return Err(ApiError::bad_request(format!(
            "berth imports from the request body only (fromSrc=-), not from {src}"
        )));
    }
    if query::get(q, "message").is_some_and(|m| !m.is_empty()) {
        return Err(ApiError::bad_request(
            "berth does not keep an import message (message)",
        ));
    }
    if let Some(p) = query::get(q, "platform").filter(|p| !p.is_empty())
        && p != format!("linux/{}", berth_runtime::image::store::host_arch())
    {
        return Err(ApiError::bad_request(format!(
            "berth imports for this host's platform only, not {p}"
        )));
    }
    let reference = optional_reference(q)?;
    let changes: Vec<String> = query::pairs(q)
        .into_iter()
        .filter(|(k, v)| k == "changes" && !v.trim().is_empty())
        .map(|(_, v)| v)
        .collect();
    let mut config = Config::default();
    apply_changes(&mut config, &changes)
        .map_err(|e| ApiError::bad_request(crate::api::error::error_chain(&e)))?;
    let d = docker.clone();
    let mut reader = BodyReader::new(req.into_body());
    let id = blocking(move || {
        let store = store(&d)?;
        let img = store
            .import(&mut reader, "-", config)
            .map_err(|e| match e {
                berth_runtime::image::StoreError::Io { .. }
                | berth_runtime::image::StoreError::LayerDir { .. }
                | berth_runtime::image::StoreError::Corrupt { .. } => {
                    ApiError::internal(crate::api::error::error_chain(&e))
                }
                e => ApiError::bad_request(crate::api::error::error_chain(&e)),
            })?;
        super::events::image_event(&d, "import", img.id.as_str(), img.id.as_str());
        if let Some(r) = &reference {
            store.tag(&img.id, r).map_err(|e| store_error(r, e))?;
            super::events::image_event(&d, "tag", img.id.as_str(), &super::images::familiar_ref(r));
        }
        Ok(img.id)
    })
    .await?;
    Ok(super::json(
        StatusCode::OK,
        &serde_json::json!({ "status": id.to_string() }),
    ))
}
