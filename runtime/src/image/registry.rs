//! Registry pull over the OCI distribution API v2: manifest (index -> this host's platform),
//! config and layers, each verified against its digest before it is stored; layers downloaded
//! in parallel with retries, and skipped when their blob is already in the store.
//!
//! Auth: anonymous or Basic first; on a `401` with a `Bearer` challenge the token endpoint it
//! names is asked for a pull token (with the user's credentials when there are some, from
//! `~/.docker/config.json`, which `berth login` writes as `docker login` does). Plain HTTP only
//! for loopback registries or those the caller marks insecure.
//!
//! Client: `ureq` (blocking, rustls on ring): the runtime has no async runtime, threads are
//! enough for a handful of parallel layers, and it avoids aws-lc-sys's C build.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::blobs::BlobError;
use super::digest::Digest;
use super::reference::{DEFAULT_REGISTRY, Reference, ReferenceError};
use super::store::{
    Image, ImageStore, Index, Manifest, StoreError, host_arch, media, pick_platform,
};

/// Pull failures, each saying what happened to which registry or object.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The reference does not parse.
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    /// Storing what was downloaded failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A downloaded blob did not match its digest (nothing was stored).
    #[error("{what} from {registry}: {source}")]
    Blob {
        /// "layer", "config" …
        what: &'static str,
        /// The registry.
        registry: String,
        #[source]
        source: BlobError,
    },
    /// The registry has no such repository, tag or digest.
    #[error("{reference}: not found in {registry} (repository, tag or digest does not exist)")]
    NotFound {
        /// The reference.
        reference: String,
        /// The registry.
        registry: String,
    },
    /// Credentials are missing or refused.
    #[error("{registry}: unauthorized for {reference}; `berth login {registry}` if it is private")]
    Unauthorized {
        /// The registry.
        registry: String,
        /// The reference.
        reference: String,
    },
    /// The registry could not be reached.
    #[error(
        "cannot reach registry {registry} ({url}); without a registry use `berth image bootstrap` or `berth image load`"
    )]
    Unreachable {
        /// The registry.
        registry: String,
        /// The URL tried.
        url: String,
        #[source]
        source: ureq::Error,
    },
    /// An upload broke off (the registry keeps no manifest that refers to the blob).
    #[error("upload of {what} to {registry} broke off ({url}); no manifest was pushed, push again")]
    UploadBroken {
        /// "layer sha256:…" or "config sha256:…".
        what: String,
        /// The registry.
        registry: String,
        /// The URL.
        url: String,
        #[source]
        source: Box<ureq::Error>,
    },
    /// A login's credentials were refused; the reason in the registry's words (or the
    /// status it answered).
    #[error("{reason}")]
    LoginRefused {
        /// The registry.
        registry: String,
        /// The status it answered (401 or 403).
        status: u16,
        /// Why, as Docker prints it (`unauthorized: authentication required`).
        reason: String,
    },
    /// Any other HTTP status.
    #[error("{url}: HTTP {status}")]
    Http {
        /// The URL.
        url: String,
        /// Its status.
        status: u16,
    },
    /// A manifest, index or token response is malformed.
    #[error("invalid {what} from {url}: {reason}")]
    Protocol {
        /// "manifest", "token" …
        what: &'static str,
        /// The URL.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// An index has nothing for this host.
    #[error("{reference}: no manifest for linux/{arch} in the image index")]
    NoPlatform {
        /// The reference.
        reference: String,
        /// This host's architecture.
        arch: &'static str,
    },
    /// The credentials file could not be read or written.
    #[error("cannot {op} {path}")]
    Credentials {
        /// read / write.
        op: &'static str,
        /// The file.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

type Result<T, E = RegistryError> = std::result::Result<T, E>;

/// Pull settings.
#[derive(Debug, Clone)]
pub struct PullOptions {
    /// Registries (`host[:port]`) reached over plain HTTP besides loopback ones.
    pub insecure: Vec<String>,
    /// Layers downloaded at once.
    pub parallel: usize,
    /// Attempts per request on network errors and 5xx (with exponential backoff).
    pub attempts: u32,
    /// First backoff delay.
    pub backoff: Duration,
    /// Where credentials are read (default: `$DOCKER_CONFIG/config.json` or
    /// `~/.docker/config.json`).
    pub auth_file: Option<PathBuf>,
}

impl Default for PullOptions {
    fn default() -> Self {
        PullOptions {
            insecure: Vec::new(),
            parallel: 4,
            attempts: 4,
            backoff: Duration::from_millis(300),
            auth_file: None,
        }
    }
}

/// A progress event, for progress bars.
#[derive(Debug, Clone)]
pub enum Progress {
    /// A layer is being downloaded (digest, size).
    Downloading(Digest, u64),
    /// A layer was already in the store.
    Present(Digest),
    /// Bytes of a layer received since the last event.
    Bytes(Digest, u64),
    /// A layer finished downloading.
    Done(Digest),
}

/// Reports bytes as they pass, for progress bars.
struct Counting<'a, R> {
    inner: R,
    digest: &'a Digest,
    progress: &'a (dyn Fn(Progress) + Sync),
}

impl<R: std::io::Read> std::io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n > 0 {
            (self.progress)(Progress::Bytes(self.digest.clone(), n as u64));
        }
        Ok(n)
    }
}

const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Where `docker login` keeps credentials (and so does `berth login`).
pub fn default_auth_file() -> PathBuf {
    if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
        return PathBuf::from(d).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker/config.json")
}

/// The key Docker uses for a registry in config.json.
fn auth_key(registry: &str) -> String {
    if registry == DEFAULT_REGISTRY {
        "https://index.docker.io/v1/".to_owned()
    } else {
        registry.to_owned()
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: serde_json::Map<String, serde_json::Value>,
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

/// The (user, password) stored for `registry`, if any.
pub fn credentials(file: &std::path::Path, registry: &str) -> Result<Option<(String, String)>> {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(RegistryError::Credentials {
                op: "read",
                path: file.to_owned(),
                source,
            });
        }
    };
    let cfg: DockerConfig =
        serde_json::from_str(&text).map_err(|e| RegistryError::Credentials {
            op: "parse",
            path: file.to_owned(),
            source: io::Error::new(io::ErrorKind::InvalidData, e),
        })?;
    let key = auth_key(registry);
    let entry = cfg.auths.get(&key).or_else(|| {
        cfg.auths
            .iter()
            .find(|(k, _)| {
                k.trim_start_matches("https://")
                    .trim_start_matches("http://")
                    .trim_end_matches('/')
                    == registry
            })
            .map(|(_, v)| v)
    });
    let Some(auth) = entry.and_then(|e| e.get("auth")).and_then(|a| a.as_str()) else {
        return Ok(None);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    Ok(decoded.and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned()))))
}

/// Stores (or with `None` removes) credentials for `registry`, keeping the file's other keys.
pub fn store_credentials(
    file: &std::path::Path,
    registry: &str,
    creds: Option<(&str, &str)>,
) -> Result<bool> {
    let err = |op, source| RegistryError::Credentials {
        op,
        path: file.to_owned(),
        source,
    };
    let mut cfg: DockerConfig = match std::fs::read_to_string(file) {
        Ok(t) => serde_json::from_str(&t)
            .map_err(|e| err("parse", io::Error::new(io::ErrorKind::InvalidData, e)))?,
        Err(e) if e.kind() == io::ErrorKind::NotFound => DockerConfig::default(),
        Err(e) => return Err(err("read", e)),
    };
    let key = auth_key(registry);
    let changed = match creds {
        Some((u, p)) => {
            let auth = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
            cfg.auths.insert(key, serde_json::json!({ "auth": auth }));
            true
        }
        None => cfg.auths.remove(&key).is_some(),
    };
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).map_err(|e| err("create", e))?;
    }
    let bytes = serde_json::to_vec_pretty(&cfg)
        .map_err(|e| err("serialise", io::Error::new(io::ErrorKind::InvalidData, e)))?;
    let tmp = file.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).map_err(|e| err("write", e))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| err("chmod", e))?;
    std::fs::rename(&tmp, file).map_err(|e| err("rename", e))?;
    Ok(changed)
}

/// A `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq)]
pub struct Challenge {
    /// `Bearer` or `Basic`.
    pub scheme: String,
    /// Its parameters (realm, service, scope).
    pub params: HashMap<String, String>,
}

/// Parses `Bearer realm="…",service="…",scope="…"`.
pub fn parse_challenge(h: &str) -> Option<Challenge> {
    let (scheme, rest) = h.trim().split_once(' ').unwrap_or((h.trim(), ""));
    let mut params = HashMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let (k, after) = s.split_once('=')?;
        let after = after.trim_start();
        let (v, tail) = if let Some(q) = after.strip_prefix('"') {
            let end = q.find('"')?;
            (&q[..end], &q[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            (&after[..end], &after[end..])
        };
        params.insert(k.trim().to_ascii_lowercase(), v.to_owned());
        s = tail.trim_start().trim_start_matches(',').trim_start();
    }
    Some(Challenge {
        scheme: scheme.to_owned(),
        params,
    })
}

/// A client for one registry and repository.
pub struct Client {
    agent: ureq::Agent,
    registry: String,
    repository: String,
    base: String,
    creds: Option<(String, String)>,
    auth: Mutex<Option<String>>,
    opts: PullOptions,
    /// The access a token is asked for when the challenge names no scope.
    actions: &'static str,
}

/// A request body, made again for each attempt.
pub(crate) enum Payload {
    /// No body.
    Empty,
    /// Bytes in memory (a manifest).
    Bytes(Vec<u8>),
    /// A stored blob (its length is sent).
    File(std::fs::File),
    /// A stream of unknown length (sent chunked).
    Stream(Box<dyn io::Read + Send>),
}

fn is_loopback(host: &str) -> bool {
    let h = host
        .rsplit_once(':')
        .map(|(h, p)| {
            if p.chars().all(|c| c.is_ascii_digit()) {
                h
            } else {
                host
            }
        })
        .unwrap_or(host);
    h == "localhost" || h.starts_with("127.") || h == "[::1]"
}

impl Client {
    /// A client for `r`'s registry and repository.
    pub fn new(r: &Reference, opts: &PullOptions) -> Result<Client> {
        let host = if r.registry == DEFAULT_REGISTRY {
            "registry-1.docker.io".to_owned()
        } else {
            r.registry.clone()
        };
        let plain = is_loopback(&host) || opts.insecure.iter().any(|i| i == &r.registry);
        let base = format!("{}://{host}", if plain { "http" } else { "https" });
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_recv_response(Some(Duration::from_secs(60)))
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let auth_file = opts.auth_file.clone().unwrap_or_else(default_auth_file);
        let creds = credentials(&auth_file, &r.registry)?;
        Ok(Client {
            agent,
            registry: r.registry.clone(),
            repository: r.repository.clone(),
            base,
            creds,
            auth: Mutex::new(None),
            opts: opts.clone(),
            actions: "pull",
        })
    }

    /// A client that asks for `push,pull` access, for pushing to `r`'s repository.
    pub fn for_push(r: &Reference, opts: &PullOptions) -> Result<Client> {
        let mut c = Client::new(r, opts)?;
        c.actions = "push,pull";
        Ok(c)
    }

    /// The registry's base URL (`http[s]://host[:port]`).
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// The registry (`host[:port]`).
    pub(crate) fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path.
    pub(crate) fn repository(&self) -> &str {
        &self.repository
    }

    fn current_auth(&self) -> Option<String> {
        self.auth.lock().ok().and_then(|a| a.clone())
    }

    /// GET with auth, the token dance on 401, retries on network errors and 5xx; any other
    /// failure status is an error.
    fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let headers: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        let resp = self.exchange("GET", url, &headers, what, &|| Ok(Payload::Empty))?;
        match resp.status().as_u16() {
            401 | 403 => Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reference: what.to_owned(),
            }),
            404 => Err(RegistryError::NotFound {
                reference: what.to_owned(),
                registry: self.registry.clone(),
            }),
            _ if resp.status().is_success() => Ok(resp),
            status => Err(RegistryError::Http {
                url: url.to_owned(),
                status,
            }),
        }
    }

    /// One request with auth (the token dance on the first 401), retried on network errors,
    /// 5xx and 429 with a fresh body from `body`. Every other status is the caller's to judge
    /// (a 401 here means the credentials were refused).
    pub(crate) fn exchange(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        what: &str,
        body: &dyn Fn() -> Result<Payload>,
    ) -> Result<ureq::http::Response<ureq::Body>> {
        let mut delay = self.opts.backoff;
        let mut attempt = 0;
        let mut authed_once = false;
        loop {
            attempt += 1;
            let mut req = ureq::http::Request::builder().method(method).uri(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            if let Some(h) = self.current_auth() {
                req = req.header("Authorization", &h);
            }
            let sent = match body()? {
                Payload::Empty => req.body(()).map(|r| self.agent.run(r)),
                Payload::Bytes(b) => req.body(b).map(|r| self.agent.run(r)),
                Payload::File(f) => req.body(f).map(|r| self.agent.run(r)),
                Payload::Stream(s) => req
                    .body(ureq::SendBody::from_owned_reader(s))
                    .map(|r| self.agent.run(r)),
            };
            let sent = sent.map_err(|e| RegistryError::Protocol {
                what: "request",
                url: url.to_owned(),
                reason: e.to_string(),
            })?;
            match sent {
                Ok(resp) if resp.status().as_u16() == 401 && !authed_once => {
                    authed_once = true;
                    let challenge = resp
                        .headers()
                        .get("www-authenticate")
                        .and_then(|v| v.to_str().ok())
                        .and_then(parse_challenge);
                    let Some(ch) = challenge else {
                        return Err(RegistryError::Unauthorized {
                            registry: self.registry.clone(),
                            reference: what.to_owned(),
                        });
                    };
                    let header = self.authenticate(&ch)?;
                    if let Ok(mut a) = self.auth.lock() {
                        *a = Some(header);
                    }
                    attempt -= 1;
                    continue;
                }
                Ok(resp) if resp.status().is_server_error() || resp.status().as_u16() == 429 => {
                    if attempt >= self.opts.attempts {
                        return Err(RegistryError::Http {
                            url: url.to_owned(),
                            status: resp.status().as_u16(),
                        });
                    }
                    tracing::warn!(%url, status = resp.status().as_u16(), attempt, "registry error, retrying");
                }
                Ok(resp) => return Ok(resp),
                Err(e) => {
                    if attempt >= self.opts.attempts {
                        return Err(RegistryError::Unreachable {
                            registry: self.registry.clone(),
                            url: url.to_owned(),
                            source: e,
                        });
                    }
                    tracing::warn!(%url, error = %e, attempt, "registry unreachable, retrying");
                }
            }
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
    }

    /// Answers a challenge: Basic with the stored credentials, or a Bearer token from the realm.
    fn authenticate(&self, ch: &Challenge) -> Result<String> {
        let basic = self.creds.as_ref().map(|(u, p)| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )
        });
        if ch.scheme.eq_ignore_ascii_case("basic") {
            return basic.ok_or_else(|| RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reference: self.repository.clone(),
            });
        }
        let realm = ch
            .params
            .get("realm")
            .cloned()
            .ok_or_else(|| RegistryError::Protocol {
                what: "auth challenge",
                url: self.base.clone(),
                reason: "Bearer challenge without realm".into(),
            })?;
        let scope = ch
            .params
            .get("scope")
            .cloned()
            .unwrap_or_else(|| format!("repository:{}:{}", self.repository, self.actions));
        let mut req = self.agent.get(&realm).query("scope", &scope);
        if let Some(service) = ch.params.get("service") {
            req = req.query("service", service);
        }
        if let Some(b) = &basic {
            req = req.header("Authorization", b);
        }
        let mut resp = req.call().map_err(|source| RegistryError::Unreachable {
            registry: self.registry.clone(),
            url: realm.clone(),
            source,
        })?;
        if !resp.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: self.registry.clone(),
                reference: self.repository.clone(),
            });
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let body = resp
            .body_mut()
            .with_config()
            .limit(1 << 20)
            .read_to_vec()
            .map_err(|source| RegistryError::Unreachable {
                registry: self.registry.clone(),
                url: realm.clone(),
                source,
            })?;
        let t: Token = serde_json::from_slice(&body).map_err(|e| RegistryError::Protocol {
            what: "token",
            url: realm.clone(),
            reason: e.to_string(),
        })?;
        let token = t
            .token
            .or(t.access_token)
            .ok_or_else(|| RegistryError::Protocol {
                what: "token",
                url: realm.clone(),
                reason: "no token in response".into(),
            })?;
        Ok(format!("Bearer {token}"))
    }

    /// Fetches a manifest or index by tag or digest: (bytes, digest, media type). A digest
    /// reference is verified.
    pub fn manifest(&self, reference: &str) -> Result<(Vec<u8>, Digest, String)> {
        let url = format!("{}/v2/{}/manifests/{reference}", self.base, self.repository);
        let what = format!("{}/{}:{reference}", self.registry, self.repository);
        let mut resp = self.get(&url, Some(ACCEPT), &what)?;
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_owned();
        let bytes = resp
            .body_mut()
            .with_config()
            .limit(8 << 20)
            .read_to_vec()
            .map_err(|source| RegistryError::Unreachable {
                registry: self.registry.clone(),
                url: url.clone(),
                source,
            })?;
        let digest = Digest::of_bytes(&bytes);
        if let Ok(want) = reference.parse::<Digest>()
            && want != digest
        {
            return Err(RegistryError::Blob {
                what: "manifest",
                registry: self.registry.clone(),
                source: BlobError::Mismatch {
                    expected: want,
                    actual: digest,
                    size: bytes.len() as u64,
                },
            });
        }
        let media_type = if ct.is_empty() || ct == "application/json" {
            serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| {
                    v.get("mediaType")
                        .and_then(|m| m.as_str())
                        .map(str::to_owned)
                })
                .unwrap_or_else(|| media::OCI_MANIFEST.to_owned())
        } else {
            ct
        };
        Ok((bytes, digest, media_type))
    }

    /// Streams a blob into the store, verified; retried as a whole on failure.
    pub fn fetch_blob(
        &self,
        store: &ImageStore,
        d: &Digest,
        what: &'static str,
        progress: &(dyn Fn(Progress) + Sync),
    ) -> Result<()> {
        let _lock = store
            .blobs()
            .lock(d)
            .map_err(|source| RegistryError::Blob {
                what,
                registry: self.registry.clone(),
                source,
            })?;
        if store.blobs().has(d) {
            return Ok(());
        }
        let url = format!("{}/v2/{}/blobs/{d}", self.base, self.repository);
        let mut attempt = 0;
        let mut delay = self.opts.backoff;
        loop {
            attempt += 1;
            let resp = self.get(&url, None, &format!("{what} {d}"))?;
            let reader = Counting {
                inner: resp.into_body().into_reader(),
                digest: d,
                progress,
            };
            match store.blobs().put_verified(reader, d) {
                Ok(_) => return Ok(()),
                Err(BlobError::Io { source, .. }) if attempt < self.opts.attempts => {
                    tracing::warn!(%url, error = %source, attempt, "blob download broke off, retrying");
                }
                Err(source) => {
                    return Err(RegistryError::Blob {
                        what,
                        registry: self.registry.clone(),
                        source,
                    });
                }
            }
            std::thread::sleep(delay);
            delay = delay.saturating_mul(2);
        }
    }

    /// The client with `user`/`password` as its credentials (a login's, not the file's).
    pub(crate) fn with_credentials(mut self, user: &str, password: &str) -> Client {
        self.creds = Some((user.to_owned(), password.to_owned()));
        self
    }
}

/// Pulls `reference` into `store`: resolves an index to this host's manifest, downloads what is
/// missing (layers in parallel), unpacks, tags. Returns the image.
pub fn pull(
    store: &ImageStore,
    reference: &str,
    opts: &PullOptions,
    progress: &(dyn Fn(Progress) + Sync),
) -> Result<Image> {
    let r: Reference = reference.parse()?;
    let client = Client::new(&r, opts)?;
    let (mut bytes, mut digest, mut mt) = client.manifest(&r.manifest_ref())?;
    if mt == media::OCI_INDEX || mt == media::DOCKER_LIST {
        let index: Index = serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
            what: "image index",
            url: r.to_string(),
            reason: e.to_string(),
        })?;
        let d = pick_platform(&index).ok_or_else(|| RegistryError::NoPlatform {
            reference: r.to_string(),
            arch: host_arch(),
        })?;
        (bytes, digest, mt) = client.manifest(d.digest.as_str())?;
    }
    tracing::info!(reference = %r, manifest = %digest, media_type = %mt, "pulling");
    let manifest: Manifest =
        serde_json::from_slice(&bytes).map_err(|e| RegistryError::Protocol {
            what: "manifest",
            url: r.to_string(),
            reason: e.to_string(),
        })?;
    let _w = store.writer_lock()?;
    client.fetch_blob(store, &manifest.config.digest, "config", &|_| {})?;
    // (parent chain id, diff id) of each layer blob, from the config.
    let mut plan: HashMap<Digest, (Option<Digest>, Digest)> = HashMap::new();
    let config: Option<oci_spec::image::ImageConfiguration> = store
        .blobs()
        .read(&manifest.config.digest)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(cfg) = config {
        let diffs: Vec<Digest> = cfg
            .rootfs()
            .diff_ids()
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        if diffs.len() == manifest.layers.len() {
            let mut chain: Option<Digest> = None;
            for (l, d) in manifest.layers.iter().zip(diffs) {
                let next = Digest::chain(chain.as_ref(), &d);
                plan.insert(l.digest.clone(), (chain.take(), d));
                chain = Some(next);
            }
        }
    }
    let plan = &plan;
    let missing: Vec<_> = manifest
        .layers
        .iter()
        .filter(|l| {
            let have = store.blobs().has(&l.digest);
            if have {
                progress(Progress::Present(l.digest.clone()));
            }
            !have
        })
        .collect();
    let queue = Mutex::new(missing.into_iter());
    let first_error: Mutex<Option<RegistryError>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..opts.parallel.max(1) {
            s.spawn(|| {
                loop {
                    if first_error.lock().map(|e| e.is_some()).unwrap_or(true) {
                        return;
                    }
                    let next = queue.lock().ok().and_then(|mut q| q.next());
                    let Some(layer) = next else { return };
                    progress(Progress::Downloading(layer.digest.clone(), layer.size));
                    let res = client
                        .fetch_blob(store, &layer.digest, "layer", progress)
                        .and_then(|()| {
                            // Unpack right away, in parallel with the other downloads: each layer
                            // has its own directory, keyed by a chain id the config already gives.
                            match plan.get(&layer.digest) {
                                Some((parent, diff)) => store
                                    .ensure_layer(parent.as_ref(), &layer.digest, Some(diff))
                                    .map(|_| ())
                                    .map_err(RegistryError::from),
                                None => Ok(()),
                            }
                        });
                    match res {
                        Ok(()) => progress(Progress::Done(layer.digest.clone())),
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            return;
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    store
        .blobs()
        .put_verified(&bytes[..], &digest)
        .map_err(|source| RegistryError::Blob {
            what: "manifest",
            registry: r.registry.clone(),
            source,
        })?;
    // add_image runs under our writer lock too, so a prune cannot collect the new blobs.
    let img = store.add_image(&digest, None, Some(format!("{}@{digest}", r.name())))?;
    if let Some(tagged) = r.tagged()
        && r.digest.is_none()
    {
        store.tag(&img.id, &tagged)?;
    }
    Ok(store.resolve(img.id.as_str())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bearer_challenges() {
        let c = parse_challenge(r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#).unwrap();
        assert_eq!(c.scheme, "Bearer");
        assert_eq!(c.params["realm"], "https://auth.docker.io/token");
        assert_eq!(c.params["scope"], "repository:library/nginx:pull");
        let b = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(b.scheme, "Basic");
    }

    #[test]
    fn loopback_is_plain_http() {
        assert!(is_loopback("127.0.0.1:5000"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(!is_loopback("ghcr.io"));
    }

    #[test]
    fn credentials_round_trip_in_docker_format() {
        let t = tempfile::tempdir().unwrap();
        let f = t.path().join("config.json");
        std::fs::write(&f, r#"{"credsStore":"x","auths":{}}"#).unwrap();
        store_credentials(&f, "docker.io", Some(("u", "p:w"))).unwrap();
        store_credentials(&f, "localhost:5000", Some(("a", "b"))).unwrap();
        assert_eq!(
            credentials(&f, "docker.io").unwrap(),
            Some(("u".into(), "p:w".into()))
        );
        let text = std::fs::read_to_string(&f).unwrap();
        assert!(text.contains("https://index.docker.io/v1/") && text.contains("credsStore"));
        assert!(store_credentials(&f, "localhost:5000", None).unwrap());
        assert_eq!(credentials(&f, "localhost:5000").unwrap(), None);
    }
}
