//! Single-container routes: `POST /v1/containers/create` takes "a container to create"
//! (Docker's create body) and answers its id; the client starts and attaches it.

use super::*;
use crate::api::container::CreateContainer;

/// `POST /v1/containers/create`: translates, creates and connects the container.
pub(super) async fn create(shared: &Shared, req: Request<Incoming>) -> Response<Body> {
    let r: CreateContainer = match body(req).await {
        Ok(c) => c,
        Err(resp) => return resp,
    };
    let engine = match engine(shared).await {
        Ok(e) => e,
        Err(resp) => return resp,
    };
    match engine.create_container(r.name, r.spec).await {
        Ok(created) => json(StatusCode::CREATED, &created),
        Err(e) => error(StatusCode::BAD_REQUEST, &e),
    }
}
