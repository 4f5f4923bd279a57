//! The `/v1/networks...` routes (Docker's paths and shapes): decode the typed request, run
//! the engine's network work on the daemon's netd (it holds netd's lock), keep the DNS
//! listeners in step with the networks, answer the typed reply or the kinded error.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};

use super::Shared;
use super::routes::{Body, api_error, body, engine, error, json};
use crate::api::network::{NetworkConnectRequest, NetworkCreateRequest, NetworkDisconnectRequest};
use crate::api::{ErrorKind, decode_segment};
use crate::engine::networks;
use crate::engine::stack::Engine;

/// One network route, as the path after `/v1` names it (`/networks...`).
pub(super) async fn handle(shared: &Shared, req: Request<Incoming>, route: &str) -> Response<Body> {
    let method = req.method().clone();
    let rest = route.strip_prefix("/networks").unwrap_or_default();
    let parts: Vec<&str> = rest.split('/').skip(1).collect();
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match (&method, parts.as_slice()) {
        (&Method::GET, []) | (&Method::GET, [""]) => {
            json(StatusCode::OK, &networks::list(&engine.netd).await)
        }
        (&Method::POST, ["create"]) => {
            let r: NetworkCreateRequest = match body(req).await {
                Ok(r) => r,
                Err(resp) => return resp,
            };
            changing(
                &engine,
                StatusCode::CREATED,
                networks::create(&engine.netd, r),
            )
            .await
        }
        (&Method::POST, ["prune"]) => {
            let out = changing(&engine, StatusCode::OK, async {
                Ok(networks::prune(&engine.netd).await)
            });
            out.await
        }
        (&Method::POST, ["reconcile"]) => {
            json(StatusCode::OK, &networks::reconcile(&engine.netd).await)
        }
        (&Method::GET, [name]) => {
            match networks::inspect(&engine.netd, &decode_segment(name)).await {
                Ok(n) => json(StatusCode::OK, &n),
                Err(e) => api_error(&e),
            }
        }
        (&Method::DELETE, [name]) => {
            let name = decode_segment(name);
            changing(
                &engine,
                StatusCode::OK,
                networks::remove(&engine.netd, &name),
            )
            .await
        }
        (&Method::POST, [name, "connect"]) => {
            let r: NetworkConnectRequest = match body(req).await {
                Ok(r) => r,
                Err(resp) => return resp,
            };
            let name = decode_segment(name);
            changing(
                &engine,
                StatusCode::OK,
                networks::connect(&engine.netd, &name, r),
            )
            .await
        }
        (&Method::POST, [name, "disconnect"]) => {
            let r: NetworkDisconnectRequest = match body(req).await {
                Ok(r) => r,
                Err(resp) => return resp,
            };
            let name = decode_segment(name);
            let done = async {
                networks::disconnect(&engine.netd, &name, r)
                    .await
                    .map(|()| serde_json::json!({}))
            };
            changing(&engine, StatusCode::OK, done).await
        }
        _ => error(
            ErrorKind::NotFound,
            &format!("no route {method} /v1{route}"),
        ),
    }
}

/// Runs a route that may add or remove networks, then starts or stops the embedded DNS
/// listeners of the networks that came or went.
async fn changing<T: serde::Serialize>(
    engine: &Arc<Engine>,
    ok: StatusCode,
    work: impl Future<Output = Result<T, crate::api::ApiError>>,
) -> Response<Body> {
    let before = engine.network_names().await;
    let out = work.await;
    engine.sync_dns(&before).await;
    match out {
        Ok(v) => json(ok, &v),
        Err(e) => api_error(&e),
    }
}
