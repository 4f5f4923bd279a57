//! The routes of Docker's Engine API (1.51) that berth does not serve yet: they answer 501
//! naming the route, so that a client stops with a clear message; any other path is Docker's
//! 404 `page not found`.
//!
//! A pattern's `{}` is one path segment; `{*}` is one or more (image and plugin names hold
//! slashes: `/images/library/alpine:3/json`).

use hyper::Method;

const ROUTES: &[(&str, &str)] = &[
    // Containers.
    ("GET", "/containers/{}/attach/ws"),
    ("GET", "/containers/{}/checkpoints"),
    ("POST", "/containers/{}/checkpoints"),
    ("DELETE", "/containers/{}/checkpoints/{}"),
    // Images and builds.
    ("POST", "/build/cancel"),
    ("GET", "/images/search"),
    // Networks.
    // Volumes.
    ("PUT", "/volumes/{}"),
    // System.
    ("POST", "/session"),
    ("POST", "/grpc"),
    // Making or joining a swarm (the other swarm routes answer as outside one: swarm.rs).
    ("POST", "/swarm/init"),
    ("POST", "/swarm/join"),
    // Plugins.
    ("GET", "/plugins"),
    ("GET", "/plugins/privileges"),
    ("POST", "/plugins/pull"),
    ("POST", "/plugins/create"),
    ("GET", "/plugins/{*}/json"),
    ("DELETE", "/plugins/{*}"),
    ("POST", "/plugins/{*}/enable"),
    ("POST", "/plugins/{*}/disable"),
    ("POST", "/plugins/{*}/upgrade"),
    ("POST", "/plugins/{*}/push"),
    ("POST", "/plugins/{*}/set"),
];

/// Whether `method route` is a route of Docker's API.
pub(super) fn is_docker_route(method: &Method, route: &str) -> bool {
    ROUTES
        .iter()
        .any(|(m, pattern)| *m == method.as_str() && matches(pattern, route))
}

/// Matches a path against a pattern segment by segment.
pub(super) fn matches(pattern: &str, path: &str) -> bool {
    let pat: Vec<&str> = pattern.split('/').collect();
    let seg: Vec<&str> = path.split('/').collect();
    fn go(pat: &[&str], seg: &[&str]) -> bool {
        match (pat.first(), seg.first()) {
            (None, None) => true,
            (Some(&"{*}"), Some(s)) if !s.is_empty() => {
                // One or more segments, then the rest of the pattern.
                (1..=seg.len())
                    .any(|n| seg[..n].iter().all(|s| !s.is_empty()) && go(&pat[1..], &seg[n..]))
            }
            (Some(&"{}"), Some(s)) => !s.is_empty() && go(&pat[1..], &seg[1..]),
            (Some(p), Some(s)) => p == s && go(&pat[1..], &seg[1..]),
            _ => false,
        }
    }
    go(&pat, &seg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_routes_are_known_others_are_not() {
        assert!(is_docker_route(&Method::GET, "/containers/abc/checkpoints"));
        assert!(is_docker_route(&Method::GET, "/containers/abc/attach/ws"));
        assert!(is_docker_route(
            &Method::POST,
            "/plugins/ghcr.io/a/b:1/push"
        ));
        assert!(is_docker_route(&Method::POST, "/swarm/init"));
        assert!(!is_docker_route(&Method::GET, "/swarm"));
        assert!(!is_docker_route(&Method::GET, "/containers/abc/attach"));
        assert!(!is_docker_route(&Method::GET, "/containers//json"));
        assert!(!is_docker_route(&Method::GET, "/nope"));
        assert!(!is_docker_route(&Method::GET, "/images//json"));
        assert!(!is_docker_route(&Method::POST, "/containers/abc/logs"));
    }
}
