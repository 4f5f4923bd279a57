//! Swarm routes on a node that is not part of a swarm, which a berth node never is: Docker's
//! 503 answers, whose words clients match (`docker node ls`, Portainer's swarm probe), so they
//! read "no swarm here" rather than "unknown route". Joining or making a swarm stays a 501
//! naming the route (`unserved.rs`): berth cannot become one.

use hyper::{Method, StatusCode};

use super::errors::ApiError;
use super::unserved;

/// Docker's words for a cluster route asked of a node that manages no swarm.
const NOT_A_MANAGER: &str = "This node is not a swarm manager. Use \"docker swarm init\" or \
    \"docker swarm join\" to connect this node to swarm and try again.";

/// Docker's words for leaving a swarm the node is not in.
const NOT_IN_A_SWARM: &str = "This node is not part of a swarm";

/// The routes answered as by a node outside any swarm (patterns as in `unserved.rs`).
const ROUTES: &[(&str, &str)] = &[
    ("GET", "/swarm"),
    ("POST", "/swarm/update"),
    ("GET", "/swarm/unlockkey"),
    ("POST", "/swarm/unlock"),
    ("GET", "/nodes"),
    ("GET", "/nodes/{}"),
    ("DELETE", "/nodes/{}"),
    ("POST", "/nodes/{}/update"),
    ("GET", "/services"),
    ("POST", "/services/create"),
    ("GET", "/services/{}"),
    ("DELETE", "/services/{}"),
    ("POST", "/services/{}/update"),
    ("GET", "/services/{}/logs"),
    ("GET", "/tasks"),
    ("GET", "/tasks/{}"),
    ("GET", "/tasks/{}/logs"),
    ("GET", "/secrets"),
    ("POST", "/secrets/create"),
    ("GET", "/secrets/{}"),
    ("DELETE", "/secrets/{}"),
    ("POST", "/secrets/{}/update"),
    ("GET", "/configs"),
    ("POST", "/configs/create"),
    ("GET", "/configs/{}"),
    ("DELETE", "/configs/{}"),
    ("POST", "/configs/{}/update"),
];

/// Docker's 503 for `method route` when it is a swarm route a non-swarm node answers so.
pub(super) fn not_in_swarm(method: &Method, route: &str) -> Option<ApiError> {
    let message = if method == Method::POST && route == "/swarm/leave" {
        NOT_IN_A_SWARM
    } else if ROUTES
        .iter()
        .any(|(m, p)| *m == method.as_str() && unserved::matches(p, route))
    {
        NOT_A_MANAGER
    } else {
        return None;
    };
    Some(ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: message.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_routes_are_503_making_a_swarm_is_not() {
        for (m, r) in [
            (Method::GET, "/swarm"),
            (Method::GET, "/nodes"),
            (Method::GET, "/services/web/logs"),
            (Method::DELETE, "/secrets/s1"),
            (Method::GET, "/configs"),
            (Method::GET, "/tasks"),
        ] {
            let e = not_in_swarm(&m, r).expect(r);
            assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
            assert!(e.message.starts_with("This node is not a swarm manager."));
        }
        let leave = not_in_swarm(&Method::POST, "/swarm/leave").expect("leave");
        assert_eq!(leave.message, NOT_IN_A_SWARM);
        assert!(not_in_swarm(&Method::POST, "/swarm/init").is_none());
        assert!(not_in_swarm(&Method::POST, "/swarm/join").is_none());
        assert!(not_in_swarm(&Method::GET, "/nodes/a/b").is_none());
    }
}
