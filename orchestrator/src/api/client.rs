//! The CLI side of the daemon API, including starting the daemon when nobody answers.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::{API_PREFIX, ErrorBody, SOCKET_NAME};

/// How long the CLI waits for a daemon it started to answer.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a call to the daemon failed; each variant names the socket or route involved.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the berth daemon at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange with the berth daemon failed on {route}")]
    Http {
        route: String,
        #[source]
        source: hyper::Error,
    },
    #[error("the berth daemon answered {status} on {route}: {message}")]
    Status {
        route: String,
        status: StatusCode,
        message: String,
    },
    #[error("cannot decode the daemon's answer on {route}")]
    Decode {
        route: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot start the berth daemon ({exe})")]
    Spawn {
        exe: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the berth daemon did not come up within {secs} s; its log {log} ends with:\n{tail}")]
    StartTimeout {
        secs: u64,
        log: PathBuf,
        tail: String,
    },
}

/// A handle on one berth instance's daemon socket.
#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// A client for the daemon of the instance whose run directory is `run`.
    pub fn new(run: &Path) -> Self {
        Self {
            socket: run.join(SOCKET_NAME),
        }
    }

    /// The socket this client talks to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    async fn send(
        &self,
        method: Method,
        route: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Response<Incoming>, ClientError> {
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ClientError::Connect {
                    path: self.socket.clone(),
                    source,
                })?;
        let http = |source| ClientError::Http {
            route: route.to_string(),
            source,
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::debug!(%err, "daemon connection ended");
            }
        });
        let has_body = body.is_some();
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{API_PREFIX}{route}"))
            .header("host", "berth");
        if has_body {
            req = req.header("content-type", "application/json");
        }
        let req = req
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|_| ClientError::Status {
                route: route.to_string(),
                status: StatusCode::BAD_REQUEST,
                message: "invalid request".into(),
            })?;
        let resp = sender.send_request(req).await.map_err(http)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(http)?.to_bytes();
        let message = serde_json::from_slice::<ErrorBody>(&bytes)
            .map(|b| b.message)
            .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned());
        Err(ClientError::Status {
            route: route.to_string(),
            status,
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        body: Option<Vec<u8>>,
    ) -> Result<T, ClientError> {
        let resp = self.send(method, route, body).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map_err(|source| ClientError::Http {
                route: route.to_string(),
                source,
            })?
            .to_bytes();
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Decode {
            route: route.to_string(),
            source,
        })
    }

    /// GET a route and decode its JSON answer.
    pub async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, ClientError> {
        self.json(Method::GET, route, None).await
    }

    /// POST a JSON body to a route and decode its JSON answer.
    pub async fn post<T: DeserializeOwned>(
        &self,
        route: &str,
        body: &impl serde::Serialize,
    ) -> Result<T, ClientError> {
        let body = serde_json::to_vec(body).map_err(|source| ClientError::Decode {
            route: route.to_string(),
            source,
        })?;
        self.json(Method::POST, route, Some(body)).await
    }

    /// GET an NDJSON stream and hand each decoded item to `each` until it returns false or the
    /// daemon ends the stream.
    pub async fn stream<T: DeserializeOwned>(
        &self,
        route: &str,
        each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        self.stream_with(Method::GET, route, None, each).await
    }

    /// POST a JSON body to a route whose answer is an NDJSON stream (progress while it works);
    /// each decoded item goes to `each` until it returns false or the stream ends.
    pub async fn post_stream<T: DeserializeOwned>(
        &self,
        route: &str,
        body: &impl serde::Serialize,
        each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        let body = serde_json::to_vec(body).map_err(|source| ClientError::Decode {
            route: route.to_string(),
            source,
        })?;
        self.stream_with(Method::POST, route, Some(body), each)
            .await
    }

    async fn stream_with<T: DeserializeOwned>(
        &self,
        method: Method,
        route: &str,
        body: Option<Vec<u8>>,
        mut each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        let mut body = self.send(method, route, body).await?.into_body();
        let mut buf: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|source| ClientError::Http {
                route: route.to_string(),
                source,
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buf.extend_from_slice(&data);
            while let Some(nl) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=nl).collect();
                if line.len() <= 1 {
                    continue;
                }
                let item = serde_json::from_slice(&line).map_err(|source| ClientError::Decode {
                    route: route.to_string(),
                    source,
                })?;
                if !each(item) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// True when a daemon answers on the socket.
    pub async fn ping(&self) -> bool {
        self.send(Method::GET, "/ping", None).await.is_ok()
    }

    /// Returns a client whose daemon answers, starting `berth daemon` for this instance when
    /// nobody does (as the CLI promises: no separate service to set up).
    pub async fn connect_or_start(root: &Path, run: &Path) -> Result<Self, ClientError> {
        let client = Self::new(run);
        if client.ping().await {
            return Ok(client);
        }
        let exe = std::env::current_exe().map_err(|source| ClientError::Spawn {
            exe: PathBuf::from("/proc/self/exe"),
            source,
        })?;
        let log = root.join("daemon.log");
        let spawn_err = |source| ClientError::Spawn {
            exe: exe.clone(),
            source,
        };
        berth_runtime::modes::ensure_root(root).map_err(spawn_err)?;
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(berth_runtime::modes::PRIVATE_FILE)
            .open(&log)
            .map_err(spawn_err)?;
        let log_err = log_file.try_clone().map_err(spawn_err)?;
        let mut cmd = std::process::Command::new(&exe);
        cmd.arg("--root")
            .arg(root)
            .arg("--run")
            .arg(run)
            .arg("daemon")
            .stdin(std::process::Stdio::null())
            .stdout(log_file)
            .stderr(log_err);
        detach(&mut cmd);
        let mut child = cmd.spawn().map_err(spawn_err)?;
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if client.ping().await {
                // The daemon lives on in its own session; reap nothing, forget the handle.
                return Ok(client);
            }
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tail = std::fs::read_to_string(&log)
            .map(|s| {
                let lines: Vec<&str> = s.lines().collect();
                lines[lines.len().saturating_sub(10)..].join("\n")
            })
            .unwrap_or_default();
        Err(ClientError::StartTimeout {
            secs: START_TIMEOUT.as_secs(),
            log,
            tail,
        })
    }
}

/// Puts the daemon in its own session so that the terminal's signals (Ctrl-C of the CLI that
/// started it) and the CLI's exit do not reach it.
fn detach(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid() is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            // Inherit nothing but stdio: a pipe of the caller's shell held open by a
            // long-lived daemon would keep that caller waiting for EOF.
            libc::close_range(3, libc::c_uint::MAX, 0);
            Ok(())
        });
    }
}
