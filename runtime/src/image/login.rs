//! Logging in to a registry: the credentials checked against its `/v2/` (`berth login`, and
//! Docker's `POST /auth` for `docker login`), the registry's own reason when it refuses them.

use std::path::PathBuf;

use serde::Deserialize;

use super::reference::Reference;
use super::registry::{
    Client, Payload, PullOptions, RegistryError, default_auth_file, store_credentials,
};

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Checks that the registry answers and accepts `client`'s credentials: a refusal carries
/// the registry's reason.
fn check(client: &Client) -> Result<()> {
    let url = format!("{}/v2/", client.base());
    let refused = |status: u16, reason: String| RegistryError::LoginRefused {
        registry: client.registry().to_owned(),
        status,
        reason,
    };
    let mut resp = match client.exchange("GET", &url, &[], "/v2/", &|| Ok(Payload::Empty)) {
        Err(RegistryError::Unauthorized { .. }) => {
            return Err(refused(
                401,
                format!("login attempt to {url} failed with status: 401 Unauthorized"),
            ));
        }
        other => other?,
    };
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    if code != 401 && code != 403 {
        return Err(RegistryError::Http { url, status: code });
    }
    let body = resp
        .body_mut()
        .with_config()
        .limit(64 << 10)
        .read_to_vec()
        .unwrap_or_default();
    let reason = registry_reason(&body).unwrap_or_else(|| {
        format!(
            "login attempt to {url} failed with status: {code} {}",
            status.canonical_reason().unwrap_or_default()
        )
    });
    Err(refused(code, reason))
}

/// The first error of a registry's error body (`{"errors":[{"code","message"}]}`) as Docker
/// prints it: the code in lower case with spaces, then the message.
fn registry_reason(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        code: String,
        #[serde(default)]
        message: String,
    }
    let e: Errors = serde_json::from_slice(body).ok()?;
    let first = e.errors.into_iter().next()?;
    let code = first.code.to_lowercase().replace('_', " ");
    Some(if first.message.is_empty() {
        code
    } else {
        format!("{code}: {}", first.message)
    })
}

/// Checks `user`/`password` against `registry` (`host[:port]`) without storing them: what
/// `docker login` asks a daemon to do (the client keeps the credentials itself).
pub fn verify_login(registry: &str, user: &str, password: &str, opts: &PullOptions) -> Result<()> {
    let r: Reference = format!("{registry}/berth-login-check").parse()?;
    check(&Client::new(&r, opts)?.with_credentials(user, password))
}

/// `berth login`: checks the credentials against the registry, then stores them where
/// `docker login` does.
pub fn login(registry: &str, user: &str, password: &str, opts: &PullOptions) -> Result<PathBuf> {
    verify_login(registry, user, password, opts)?;
    let r: Reference = format!("{registry}/berth-login-check").parse()?;
    let file = opts.auth_file.clone().unwrap_or_else(default_auth_file);
    store_credentials(&file, &r.registry, Some((user, password)))?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_error_bodies_read_as_docker_prints_them() {
        let body = br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":null}]}"#;
        assert_eq!(
            registry_reason(body).as_deref(),
            Some("unauthorized: authentication required")
        );
        assert_eq!(
            registry_reason(br#"{"errors":[{"code":"DENIED"}]}"#).as_deref(),
            Some("denied")
        );
        assert_eq!(registry_reason(b"<html>"), None);
    }
}
