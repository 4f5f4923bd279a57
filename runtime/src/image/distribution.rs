//! What a registry says of an image without pulling it (Docker's `GET
//! /distribution/{name}/json`, which `docker service create` and Portainer ask): the
//! descriptor of the manifest or index a name resolves to, and the platforms it serves.

use super::digest::Digest;
use super::reference::Reference;
use super::registry::{Client, Payload, PullOptions, RegistryError};
use super::store::{Index, Manifest, Platform, media};

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// The registry's answer for one name.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// The media type of what the name resolves to (a manifest or an index).
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    /// Every platform an index lists, or the one a manifest's config names.
    pub platforms: Vec<Platform>,
}

/// The os, architecture and variant of an image config.
#[derive(serde::Deserialize)]
struct ConfigPlatform {
    #[serde(default)]
    architecture: String,
    #[serde(default)]
    os: String,
    #[serde(default)]
    variant: Option<String>,
}

/// A manifest's config blob read whole (a few KiB; at most 4 MiB taken).
fn config_blob(client: &Client, digest: &Digest) -> Result<Vec<u8>> {
    let url = format!(
        "{}/v2/{}/blobs/{digest}",
        client.base(),
        client.repository()
    );
    let what = format!("{}/{}@{digest}", client.registry(), client.repository());
    let mut resp = client.exchange("GET", &url, &[], &what, &|| Ok(Payload::Empty))?;
    match resp.status().as_u16() {
        401 | 403 => {
            return Err(RegistryError::Unauthorized {
                registry: client.registry().to_owned(),
                reference: what,
            });
        }
        404 => {
            return Err(RegistryError::NotFound {
                reference: what,
                registry: client.registry().to_owned(),
            });
        }
        s if !(200..300).contains(&s) => return Err(RegistryError::Http { url, status: s }),
        _ => {}
    }
    let bytes = resp
        .body_mut()
        .with_config()
        .limit(4 << 20)
        .read_to_vec()
        .map_err(|source| RegistryError::Unreachable {
            registry: client.registry().to_owned(),
            url: url.clone(),
            source,
        })?;
    if Digest::of_bytes(&bytes) != *digest {
        return Err(RegistryError::Protocol {
            what: "config",
            url,
            reason: format!("content does not match {digest}"),
        });
    }
    Ok(bytes)
}

/// Asks the registry of `reference` what it serves under that name.
pub fn inspect(reference: &str, opts: &PullOptions) -> Result<Distribution> {
    let r: Reference = reference.parse()?;
    let client = Client::new(&r, opts)?;
    let (bytes, digest, media_type) = client.manifest(&r.manifest_ref())?;
    let malformed = |what: &'static str, e: serde_json::Error| RegistryError::Protocol {
        what,
        url: r.to_string(),
        reason: e.to_string(),
    };
    let platforms = if media_type == media::OCI_INDEX || media_type == media::DOCKER_LIST {
        let index: Index =
            serde_json::from_slice(&bytes).map_err(|e| malformed("image index", e))?;
        index
            .manifests
            .into_iter()
            .filter_map(|m| m.platform)
            .collect()
    } else {
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| malformed("manifest", e))?;
        let config = config_blob(&client, &manifest.config.digest)?;
        let p: ConfigPlatform =
            serde_json::from_slice(&config).map_err(|e| malformed("image config", e))?;
        vec![Platform {
            architecture: p.architecture,
            os: p.os,
            variant: p.variant.filter(|v| !v.is_empty()),
        }]
    };
    Ok(Distribution {
        media_type,
        digest,
        size: bytes.len() as u64,
        platforms,
    })
}
