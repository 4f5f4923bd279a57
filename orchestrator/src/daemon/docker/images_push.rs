//! `POST /images/{name}/push?tag=` (`docker push`): `push::push`, the call `berth image push`
//! makes, with its progress as Docker's JSON stream (`The push refers to repository [...]`,
//! per layer `Preparing`, `Pushing`, then `Pushed`, `Layer already exists` or `Mounted from`,
//! then `TAG: digest: sha256:… size: N` and an `aux` record with Tag, Digest and Size). Errors
//! after the stream has begun are Docker's `errorDetail` lines; the `X-Registry-Auth` header's
//! credentials serve this push only, as they do a pull.

use std::sync::Arc;

use berth_runtime::image::Reference;
use berth_runtime::image::push::{self, PushProgress};
use berth_runtime::image::registry::RegistryError;
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::{Value, json};

use super::errors::ApiError;
use super::images::store;
use super::images_pull::{credentials, header_auth};
use super::images_stream::streamed;
use super::{Body, Docker, query};

/// One progress event in Docker's words (layers by their short diff id).
fn progress_json(p: &PushProgress) -> Value {
    let (status, id) = match p {
        PushProgress::Pushing(d, _) => ("Pushing".to_string(), d),
        PushProgress::Pushed(d) => ("Pushed".to_string(), d),
        PushProgress::Exists(d) => ("Layer already exists".to_string(), d),
        PushProgress::Mounted(d, from) => (format!("Mounted from {from}"), d),
    };
    json!({"status": status, "progressDetail": {}, "id": id.short()})
}

/// `POST /images/{name}/push?tag=`.
pub(super) async fn push(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    name: &str,
    q: &str,
) -> Result<Response<Body>, ApiError> {
    let tag = query::get(q, "tag").filter(|t| !t.is_empty());
    let local = match &tag {
        Some(t) => format!("{name}:{t}"),
        None => name.to_string(),
    };
    let parsed: Reference = local
        .parse()
        .map_err(|_| ApiError::bad_request(format!("invalid reference format: {local}")))?;
    let creds = credentials(
        req.headers()
            .get("X-Registry-Auth")
            .and_then(|v| v.to_str().ok()),
    );
    let store = store(docker)?;
    let (out, resp) = streamed("application/json");
    let d = docker.clone();
    tokio::task::spawn_blocking(move || {
        let (opts, _dir) = header_auth(creds.as_ref(), &parsed.registry);
        out.json(&json!({"status": format!(
            "The push refers to repository [{}]",
            parsed.name()
        )}));
        if store.resolve(&local).is_err() {
            let message = format!("An image does not exist locally with the tag: {local}");
            out.json(&json!({"errorDetail": {"message": message}, "error": message}));
            return;
        }
        let show = |p: PushProgress| {
            if let PushProgress::Pushing(d, _) = &p {
                out.json(&json!({"status": "Preparing", "progressDetail": {}, "id": d.short()}));
            }
            out.json(&progress_json(&p));
        };
        match push::push(&store, &local, &opts, &show) {
            Ok(res) => {
                let shown = super::images::familiar_ref(&local);
                super::events::image_event(&d, "push", &shown, &parsed.familiar_name());
                out.json(&json!({"status": format!(
                    "{}: digest: {} size: {}",
                    res.tag, res.digest, res.size
                )}));
                out.json(&json!({"progressDetail": {}, "aux": {
                    "Tag": res.tag, "Digest": res.digest.to_string(), "Size": res.size
                }}));
            }
            Err(e) => {
                let message = error_message(&e);
                out.json(&json!({"errorDetail": {"message": message}, "error": message}));
            }
        }
    });
    Ok(resp)
}

/// The error line of a failed push.
fn error_message(e: &RegistryError) -> String {
    crate::api::error::error_chain(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::image::Digest;

    #[test]
    fn progress_is_in_dockers_words() {
        let d = Digest::of_bytes(b"layer");
        let v = progress_json(&PushProgress::Exists(d.clone()));
        assert_eq!(v["status"], "Layer already exists");
        assert_eq!(v["id"], d.short());
        let v = progress_json(&PushProgress::Mounted(d, "t/a".into()));
        assert_eq!(v["status"], "Mounted from t/a");
    }
}
