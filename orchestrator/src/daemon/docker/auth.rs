//! `POST /auth` (`docker login`, docker-py's `login`): the credentials are checked against the
//! registry with the client berth's own `berth login` uses (`login::verify_login`); as on
//! Docker, the daemon keeps nothing (the client stores what it logged in with).

use std::sync::Arc;

use berth_runtime::image::login;
use berth_runtime::image::registry::{PullOptions, RegistryError};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::errors::ApiError;
use super::{Body, Docker, json};

/// The most a login body may hold.
const MAX_BODY: usize = 64 << 10;

/// Docker's `AuthConfig`, as the clients send it.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthConfig {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    /// `user:password` in base64, the config file's form.
    #[serde(default)]
    auth: String,
    /// Ignored by Docker since 1.11, still sent by some clients.
    #[serde(default)]
    #[allow(dead_code)]
    email: String,
    #[serde(default)]
    serveraddress: String,
    #[serde(default)]
    identitytoken: String,
    #[serde(default)]
    registrytoken: String,
}

/// The registry host of a login's `serveraddress` as Docker reads it: no scheme, no path;
/// Docker Hub's addresses (and none) are `docker.io`.
fn registry_host(server: &str) -> String {
    let s = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    let host = s.split('/').next().unwrap_or_default();
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" | "docker.io" => "docker.io".into(),
        h => h.to_string(),
    }
}

/// The user and password of a body: given apart, or in its `auth` field.
fn credentials(c: &AuthConfig) -> Result<(String, String), ApiError> {
    if !c.identitytoken.is_empty() || !c.registrytoken.is_empty() {
        let field = if c.identitytoken.is_empty() {
            "registrytoken"
        } else {
            "identitytoken"
        };
        return Err(ApiError::bad_request(format!(
            "berth logs in with a username and password, not an {field}"
        )));
    }
    if c.username.is_empty() && !c.auth.is_empty() {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(c.auth.trim())
            .map_err(|e| ApiError::bad_request(format!("invalid auth field: {e}")))?;
        let text = String::from_utf8(raw)
            .map_err(|_| ApiError::bad_request("invalid auth field: not UTF-8"))?;
        let (u, p) = text
            .split_once(':')
            .ok_or_else(|| ApiError::bad_request("invalid auth field: no user:password"))?;
        return Ok((u.to_string(), p.to_string()));
    }
    if c.username.is_empty() {
        return Err(ApiError::bad_request("Username cannot be empty"));
    }
    Ok((c.username.clone(), c.password.clone()))
}

/// `POST /auth`: 200 `{Status: "Login Succeeded"}`, 401 with the registry's reason.
pub(super) async fn auth(
    _docker: &Arc<Docker>,
    req: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    let config: AuthConfig = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let (user, password) = credentials(&config)?;
    let host = registry_host(&config.serveraddress);
    let checked = tokio::task::spawn_blocking(move || {
        login::verify_login(&host, &user, &password, &PullOptions::default())
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?;
    match checked {
        Ok(()) => Ok(json(
            StatusCode::OK,
            &serde_json::json!({"Status": "Login Succeeded", "IdentityToken": ""}),
        )),
        Err(RegistryError::LoginRefused { reason, .. }) => Err(ApiError {
            status: StatusCode::UNAUTHORIZED,
            message: reason,
        }),
        Err(e @ RegistryError::Reference(_)) => Err(ApiError::bad_request(e.to_string())),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_addresses_read_as_docker_reads_them() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host(""), "docker.io");
        assert_eq!(registry_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("127.0.0.1:5000/"), "127.0.0.1:5000");
        assert_eq!(registry_host("ghcr.io"), "ghcr.io");
    }

    #[test]
    fn credentials_come_apart_or_from_auth() {
        let c: AuthConfig = serde_json::from_str(r#"{"auth":"dTpwOnc="}"#).expect("json");
        assert_eq!(credentials(&c).expect("creds"), ("u".into(), "p:w".into()));
        let c: AuthConfig =
            serde_json::from_str(r#"{"username":"a","password":"b"}"#).expect("json");
        assert_eq!(credentials(&c).expect("creds"), ("a".into(), "b".into()));
        let c: AuthConfig = serde_json::from_str(r#"{"identitytoken":"t"}"#).expect("json");
        assert!(credentials(&c).is_err());
        assert!(serde_json::from_str::<AuthConfig>(r#"{"colour":"red"}"#).is_err());
    }
}
