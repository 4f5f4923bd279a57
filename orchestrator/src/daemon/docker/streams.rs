//! The router of Docker's streaming container routes: logs, attach, resize and exec (each
//! served from its own file).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::{Method, Request, Response};

use super::errors::ApiError;
use super::{Body, Docker};

/// One streaming route of Docker's API that berth serves.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    Logs(String),
    Attach(String),
    Resize(String),
    ExecCreate(String),
    ExecStart(String),
    ExecInspect(String),
    ExecResize(String),
}

impl Route {
    /// The route `method path` names, if it is one of these.
    pub(super) fn parse(method: &Method, path: &str) -> Option<Route> {
        let segs: Vec<&str> = path.strip_prefix('/')?.split('/').collect();
        let id = |s: &str| (!s.is_empty()).then(|| s.to_string());
        match (method, segs.as_slice()) {
            (&Method::GET, ["containers", c, "logs"]) => id(c).map(Route::Logs),
            (&Method::POST, ["containers", c, "attach"]) => id(c).map(Route::Attach),
            (&Method::POST, ["containers", c, "resize"]) => id(c).map(Route::Resize),
            (&Method::POST, ["containers", c, "exec"]) => id(c).map(Route::ExecCreate),
            (&Method::POST, ["exec", e, "start"]) => id(e).map(Route::ExecStart),
            (&Method::GET, ["exec", e, "json"]) => id(e).map(Route::ExecInspect),
            (&Method::POST, ["exec", e, "resize"]) => id(e).map(Route::ExecResize),
            _ => None,
        }
    }
}

/// Serves one streaming route.
pub(super) async fn serve(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    route: Route,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    match route {
        Route::Logs(c) => super::logs::logs(docker, req, &c, query).await,
        Route::Attach(c) => super::attach::attach(docker, req, &c, query).await,
        Route::Resize(c) => super::attach::resize(docker, &c, query).await,
        Route::ExecCreate(c) => super::exec::create(docker, req, &c).await,
        Route::ExecStart(e) => super::exec::start(docker, req, &e).await,
        Route::ExecInspect(e) => super::exec::inspect(&e).await,
        Route::ExecResize(e) => super::exec::resize(&e, query).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streaming_routes_parse_and_others_do_not() {
        let p = Route::parse;
        assert_eq!(
            p(&Method::GET, "/containers/x/logs"),
            Some(Route::Logs("x".into()))
        );
        assert_eq!(
            p(&Method::POST, "/exec/ab/start"),
            Some(Route::ExecStart("ab".into()))
        );
        assert_eq!(
            p(&Method::GET, "/exec/ab/json"),
            Some(Route::ExecInspect("ab".into()))
        );
        assert_eq!(p(&Method::POST, "/containers//attach"), None);
        assert_eq!(p(&Method::GET, "/containers/x/attach"), None);
        assert_eq!(p(&Method::POST, "/containers/x/start"), None);
    }
}
