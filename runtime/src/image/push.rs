//! Registry push over the OCI distribution API v2: each layer blob and the config are checked
//! with `HEAD` and skipped when the repository has them, mounted from another repository of the
//! same registry the image was pulled from when it can, else uploaded (`POST` a session, then
//! one `PUT` with the digest for a stored blob, or a streamed `PATCH` and a closing `PUT` for a
//! layer the store keeps only as a directory); then the image's stored manifest is `PUT` byte
//! for byte, so the registry knows the image by the same digest berth does.
//!
//! Auth, plain HTTP for loopback registries and retries are the pull client's
//! ([`Client::for_push`] asks for `push,pull` tokens).

use super::digest::Digest;
use super::reference::Reference;
use super::registry::{Client, Payload, PullOptions, RegistryError};
use super::store::{ImageStore, Manifest, StoreError, media};

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// What happened to one layer, for progress lines (Docker shows layers by their diff id).
#[derive(Debug, Clone, PartialEq)]
pub enum PushProgress {
    /// The layer is being uploaded (diff id, blob size).
    Pushing(Digest, u64),
    /// The layer was uploaded.
    Pushed(Digest),
    /// The repository already had the layer.
    Exists(Digest),
    /// The registry linked the layer from another repository (the one named).
    Mounted(Digest, String),
}

/// What a push did: what `docker push` prints last.
#[derive(Debug, Clone)]
pub struct PushResult {
    /// The repository pushed to (`registry/repository`).
    pub repository: String,
    /// The tag, or the digest when the reference named no tag.
    pub tag: String,
    /// The manifest digest.
    pub digest: Digest,
    /// The manifest size in bytes.
    pub size: u64,
}

/// How a blob reached the registry.
enum Outcome {
    Exists,
    Mounted(String),
    Pushed,
}

/// Pushes the local image `reference` names to the registry and repository it names.
pub fn push(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
    progress: &(dyn Fn(PushProgress) + Sync),
) -> Result<PushResult> {
    let r: Reference = reference.parse()?;
    let img = store.resolve(reference)?;
    // Blobs stay while we read them: a prune waits for the shared writer lock.
    let _w = store.writer_lock()?;
    let client = Client::for_push(&r, opts)?;
    let manifest_bytes = store
        .blobs()
        .read(&img.record.manifest)
        .map_err(StoreError::from)?;
    let manifest: Manifest =
        serde_json::from_slice(&manifest_bytes).map_err(|e| StoreError::BadDocument {
            what: "manifest",
            digest: img.record.manifest.clone(),
            reason: e.to_string(),
        })?;
    // A repository of this registry the image came from, for cross-repository mounts.
    let mount_from = img.record.repo_digests.iter().find_map(|rd| {
        let name = rd.split_once('@')?.0;
        let src: Reference = name.parse().ok()?;
        (src.registry == r.registry && src.repository != r.repository).then_some(src.repository)
    });
    for (i, desc) in manifest.layers.iter().enumerate() {
        let layer = img.record.layers.get(i);
        let id = layer.map_or_else(|| desc.digest.clone(), |l| l.diff_id.clone());
        let outcome = push_blob(
            &client,
            &desc.digest,
            mount_from.as_deref(),
            !store.blobs().has(&desc.digest),
            &|| {
                if store.blobs().has(&desc.digest) {
                    return Ok(Payload::File(
                        store
                            .blobs()
                            .open_blob(&desc.digest)
                            .map_err(StoreError::from)?,
                    ));
                }
                let l = layer.ok_or_else(|| {
                    StoreError::Blob(super::blobs::BlobError::Missing {
                        digest: desc.digest.clone(),
                    })
                })?;
                Ok(Payload::Stream(store.layer_tar(l)?))
            },
            &|| progress(PushProgress::Pushing(id.clone(), desc.size)),
        )?;
        progress(match outcome {
            Outcome::Exists => PushProgress::Exists(id),
            Outcome::Mounted(from) => PushProgress::Mounted(id, from),
            Outcome::Pushed => PushProgress::Pushed(id),
        });
    }
    let config = &manifest.config.digest;
    push_blob(
        &client,
        config,
        mount_from.as_deref(),
        false,
        &|| {
            Ok(Payload::File(
                store.blobs().open_blob(config).map_err(StoreError::from)?,
            ))
        },
        &|| {},
    )?;
    let tag = r.manifest_ref();
    let url = format!(
        "{}/v2/{}/manifests/{tag}",
        client.base(),
        client.repository()
    );
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| img.record.manifest_media_type.clone());
    let media_type = if media_type.is_empty() {
        media::OCI_MANIFEST.to_owned()
    } else {
        media_type
    };
    let what = format!("{}:{tag}", r.name());
    let resp = client.exchange(
        "PUT",
        &url,
        &[("Content-Type", &media_type)],
        &what,
        &|| Ok(Payload::Bytes(manifest_bytes.clone())),
    )?;
    expect(&client, &resp, &url, &what, &[200, 201])?;
    Ok(PushResult {
        repository: r.name(),
        tag,
        digest: Digest::of_bytes(&manifest_bytes),
        size: manifest_bytes.len() as u64,
    })
}

/// Makes sure the repository has blob `d`: HEAD, else a mount, else an upload.
fn push_blob(
    client: &Client,
    d: &Digest,
    mount_from: Option<&str>,
    streamed: bool,
    body: &dyn Fn() -> Result<Payload>,
    starting: &dyn Fn(),
) -> Result<Outcome> {
    let repo = client.repository();
    let what = format!("{}/{repo} blob {d}", client.registry());
    let url = format!("{}/v2/{repo}/blobs/{d}", client.base());
    let head = client.exchange("HEAD", &url, &[], &what, &|| Ok(Payload::Empty))?;
    if head.status().is_success() {
        return Ok(Outcome::Exists);
    }
    let mut start = format!("{}/v2/{repo}/blobs/uploads/", client.base());
    if let Some(from) = mount_from {
        start.push_str(&format!("?mount={d}&from={from}"));
    }
    let resp = client.exchange("POST", &start, &[], &what, &|| {
        Ok(Payload::Bytes(Vec::new()))
    })?;
    if resp.status().as_u16() == 201
        && let Some(from) = mount_from
    {
        return Ok(Outcome::Mounted(from.to_owned()));
    }
    expect(client, &resp, &start, &what, &[202])?;
    let session = location(client, &resp, &start)?;
    starting();
    let broken = |e: RegistryError| match e {
        RegistryError::Unreachable {
            registry,
            url,
            source,
        } => RegistryError::UploadBroken {
            what: format!("blob {d}"),
            registry,
            url,
            source: Box::new(source),
        },
        other => other,
    };
    let octet = [("Content-Type", "application/octet-stream")];
    let put_url = if streamed {
        // Length unknown until the tar is made: one chunked PATCH, then a PUT that closes it.
        let resp = client
            .exchange("PATCH", &session, &octet, &what, body)
            .map_err(broken)?;
        expect(client, &resp, &session, &what, &[202, 204])?;
        with_digest(&location(client, &resp, &session)?, d)
    } else {
        with_digest(&session, d)
    };
    let resp = if streamed {
        client.exchange("PUT", &put_url, &octet, &what, &|| {
            Ok(Payload::Bytes(Vec::new()))
        })
    } else {
        client.exchange("PUT", &put_url, &octet, &what, body)
    }
    .map_err(broken)?;
    expect(client, &resp, &put_url, &what, &[201, 204])?;
    Ok(Outcome::Pushed)
}

/// Fails unless the status is one of `ok`, with the registry's words for 401/403.
fn expect(
    client: &Client,
    resp: &ureq::http::Response<ureq::Body>,
    url: &str,
    what: &str,
    ok: &[u16],
) -> Result<()> {
    let status = resp.status().as_u16();
    if ok.contains(&status) {
        return Ok(());
    }
    if status == 401 || status == 403 {
        return Err(RegistryError::Unauthorized {
            registry: client.registry().to_owned(),
            reference: what.to_owned(),
        });
    }
    Err(RegistryError::Http {
        url: url.to_owned(),
        status,
    })
}

/// The upload session URL a response names (absolute or relative to the registry).
fn location(client: &Client, resp: &ureq::http::Response<ureq::Body>, url: &str) -> Result<String> {
    let loc = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| RegistryError::Protocol {
            what: "upload session",
            url: url.to_owned(),
            reason: "no Location header".into(),
        })?;
    Ok(
        if loc.starts_with("http://") || loc.starts_with("https://") {
            loc.to_owned()
        } else {
            format!("{}{loc}", client.base())
        },
    )
}

/// `url` with `digest=d` added to its query.
fn with_digest(url: &str, d: &Digest) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}digest={d}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_joins_the_session_query() {
        let d = Digest::of_bytes(b"x");
        assert_eq!(
            with_digest("http://r/v2/a/blobs/uploads/u?_state=s", &d),
            format!("http://r/v2/a/blobs/uploads/u?_state=s&digest={d}")
        );
        assert_eq!(
            with_digest("http://r/u", &d),
            format!("http://r/u?digest={d}")
        );
    }
}
