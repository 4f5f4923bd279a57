//! The routes of the project verbs on existing containers: `POST /v1/project/verb` runs one
//! verb (`start`, `stop`, `restart`, `kill`, `pause`, `unpause`, `rm`) as a plan of the
//! engine and answers what it did.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::Shared;
use super::routes::{Body, body, engine, error, json};
use crate::api::ErrorKind;
use crate::api::error::error_chain;
use crate::api::project::VerbRequest;

/// `POST /v1/project/verb` with a [`VerbRequest`]: answers a
/// [`crate::api::project::VerbOutcome`].
pub(super) async fn verb(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: VerbRequest = match body(req).await {
        Ok(r) => r,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match engine
        .run_verb(r.project.into_project(), r.services, r.verb)
        .await
    {
        Ok(outcome) => json(StatusCode::OK, &outcome),
        Err(e) => error(ErrorKind::InvalidArgument, &error_chain(&e)),
    }
}
