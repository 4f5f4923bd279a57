//! API version negotiation: the versioned paths (`/v1.51/...`) and the unversioned ones, the
//! range berth answers, the headers every answer carries, `/_ping` and `/version`.
//!
//! Clients negotiate from `/_ping`'s `API-Version` header: the docker CLI and Docker Compose
//! use the lower of theirs and the daemon's, docker-py reads `/version`. berth answers from
//! 1.24 (the oldest dockerd 25 to 28 accept, so Debian 12's docker 20.10 CLI at 1.41 works)
//! to 1.51 (docker 28.3 to 28.5, the newest CLI whose shapes the served routes follow).

use hyper::header::{CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HeaderMap, HeaderValue, PRAGMA};
use hyper::{Method, Response, StatusCode};
use serde::Serialize;

use super::errors::ApiError;
use super::{Body, full, host};

/// The newest API version berth answers; also the one of unversioned paths.
pub(super) const MAX_API: &str = "1.51";
/// The oldest API version berth answers.
pub(super) const MIN_API: &str = "1.24";

/// Splits a path into its API version (none for an unversioned path) and the route; `None`
/// when it has a version prefix Docker's router would not match (`/v1x/info`, `/v1.47`).
pub(super) fn split(path: &str) -> Option<(Option<&str>, &str)> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Some((None, path));
    };
    if !rest.starts_with(|c: char| c.is_ascii_digit()) {
        return Some((None, path)); // `/version`, `/volumes`
    }
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (ver, route) = rest.split_at(end);
    route.starts_with('/').then_some((Some(ver), route))
}

/// Compares two versions as Docker does: dot-separated numbers, a missing or unreadable part
/// counts as 0.
fn compare(a: &str, b: &str) -> std::cmp::Ordering {
    let parts = |v: &str| -> Vec<u64> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    let (a, b) = (parts(a), parts(b));
    let n = a.len().max(b.len());
    (0..n)
        .map(|i| a.get(i).unwrap_or(&0).cmp(b.get(i).unwrap_or(&0)))
        .find(|o| o.is_ne())
        .unwrap_or(std::cmp::Ordering::Equal)
}

/// Refuses a version outside the range with Docker's words and status (400).
pub(super) fn check(asked: Option<&str>) -> Result<(), ApiError> {
    let Some(v) = asked else { return Ok(()) };
    if compare(v, MIN_API).is_lt() {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API}, \
             please upgrade your client to a newer version"
        )));
    }
    if compare(v, MAX_API).is_gt() {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {MAX_API}"
        )));
    }
    Ok(())
}

/// The headers Docker puts on every answer, errors included.
pub(super) fn stamp(headers: &mut HeaderMap) {
    let server = format!("berth/{} (linux)", env!("CARGO_PKG_VERSION"));
    if let Ok(v) = HeaderValue::from_str(&server) {
        headers.insert(hyper::header::SERVER, v);
    }
    headers.insert("API-Version", HeaderValue::from_static(MAX_API));
    headers.insert("OSType", HeaderValue::from_static("linux"));
    headers.insert("Docker-Experimental", HeaderValue::from_static("false"));
}

/// `GET|HEAD /_ping`: `OK`, uncached, with the builder version (1: berth's builder takes the
/// classic build API) and no swarm.
pub(super) fn ping(method: &Method) -> Response<Body> {
    let mut resp = if method == Method::HEAD {
        let mut r = full(StatusCode::OK, "text/plain; charset=utf-8", Vec::new());
        r.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        r
    } else {
        full(StatusCode::OK, "text/plain; charset=utf-8", b"OK".to_vec())
    };
    let h = resp.headers_mut();
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert("Swarm", HeaderValue::from_static("inactive"));
    if !h.contains_key(CONTENT_TYPE) {
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    }
    resp
}

/// The answer of `GET /version`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Version {
    platform: Platform,
    components: Vec<Component>,
    version: String,
    api_version: &'static str,
    #[serde(rename = "MinAPIVersion")]
    min_api_version: &'static str,
    git_commit: &'static str,
    go_version: &'static str,
    os: &'static str,
    arch: &'static str,
    kernel_version: String,
    build_time: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Platform {
    name: &'static str,
}

/// One part of the server, as `docker version` lists them under "Server:".
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Component {
    name: &'static str,
    version: String,
    details: std::collections::BTreeMap<&'static str, String>,
}

/// `GET /version`: berth's version as the engine's, the API range, the host's kernel and
/// architecture (Go's names: `amd64`, `arm64`).
pub(super) fn version() -> Version {
    let kernel = host::kernel_version();
    let arch = berth_runtime::image::store::host_arch();
    let details = [
        ("ApiVersion", MAX_API.to_string()),
        ("MinAPIVersion", MIN_API.to_string()),
        ("Os", "linux".to_string()),
        ("Arch", arch.to_string()),
        ("KernelVersion", kernel.clone()),
        ("Experimental", "false".to_string()),
        ("GitCommit", String::new()),
        ("GoVersion", String::new()),
        ("BuildTime", String::new()),
    ]
    .into();
    Version {
        platform: Platform { name: "berth" },
        components: vec![Component {
            name: "Engine",
            version: env!("CARGO_PKG_VERSION").to_string(),
            details,
        }],
        version: env!("CARGO_PKG_VERSION").to_string(),
        api_version: MAX_API,
        min_api_version: MIN_API,
        git_commit: "",
        go_version: "",
        os: "linux",
        arch,
        kernel_version: kernel,
        build_time: "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_version_and_route_as_docker_routes_them() {
        assert_eq!(split("/v1.47/info"), Some((Some("1.47"), "/info")));
        assert_eq!(split("/info"), Some((None, "/info")));
        assert_eq!(split("/version"), Some((None, "/version")));
        assert_eq!(split("/volumes/x"), Some((None, "/volumes/x")));
        assert_eq!(split("/v1.47"), None);
        assert_eq!(split("/v1x/info"), None);
        assert_eq!(split("/v1.4.7/_ping"), Some((Some("1.4.7"), "/_ping")));
    }

    #[test]
    fn versions_outside_the_range_get_dockers_words() {
        assert!(check(None).is_ok());
        assert!(check(Some("1.24")).is_ok());
        assert!(check(Some("1.41")).is_ok());
        assert!(check(Some("1.51")).is_ok());
        let old = check(Some("1.12")).unwrap_err();
        assert_eq!(old.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            old.message,
            "client version 1.12 is too old. Minimum supported API version is 1.24, \
             please upgrade your client to a newer version"
        );
        let new = check(Some("1.99")).unwrap_err();
        assert_eq!(
            new.message,
            "client version 1.99 is too new. Maximum supported API version is 1.51"
        );
        // 1.9 is older than 1.24 (numbers, not strings).
        assert!(check(Some("1.9")).is_err());
        assert!(check(Some("1.100")).is_err());
    }
}
