//! `POST /v1/project/watch`: the route of `berth watch`. The rules are checked before the
//! answer starts (a bad rule is an ordinary error answer); then the engine's watch runs in
//! its own task and its events stream as NDJSON. The watch ends with the stream: when the
//! client leaves (Ctrl-C), the body is dropped and with it the receiver the watch checks.
//! A blank line every second keeps writing to the connection, so a client that vanished
//! without closing cleanly is noticed too (the client skips blank lines).

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::{Frame, Incoming};

use super::Shared;
use super::routes::{Body, api_error, body, engine};
use crate::api::watch::{WatchEvent, WatchRequest};
use crate::engine::watch::Watch;

/// How often an idle watch stream writes a blank line.
const KEEPALIVE: Duration = Duration::from_secs(1);

/// `POST /v1/project/watch` with a [`WatchRequest`]: a stream of [`WatchEvent`] lines.
pub(super) async fn watch(shared: &Shared, req: hyper::Request<Incoming>) -> Response<Body> {
    let r: WatchRequest = match body(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    let w = match Watch::prepare(r.project.into_project(), &r.services) {
        Ok(w) => w,
        Err(e) => return api_error(&e),
    };
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<WatchEvent>();
    tokio::spawn(w.run(engine, tx));
    let closing = shared.closing.subscribe();
    let tick = tokio::time::interval(KEEPALIVE);
    let stream = futures::stream::unfold(
        (rx, closing, tick),
        |(mut rx, mut closing, mut tick)| async move {
            let bytes = tokio::select! {
                ev = rx.recv() => {
                    let ev = ev?;
                    let mut line = serde_json::to_vec(&ev).unwrap_or_default();
                    line.push(b'\n');
                    line
                }
                _ = tick.tick() => b"\n".to_vec(),
                _ = closing.wait_for(|c| *c) => return None,
            };
            let frame = Ok::<_, Infallible>(Frame::data(Bytes::from(bytes)));
            Some((frame, (rx, closing, tick)))
        },
    );
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    if let Ok(v) = "application/x-ndjson".parse() {
        resp.headers_mut().insert("content-type", v);
    }
    resp
}
