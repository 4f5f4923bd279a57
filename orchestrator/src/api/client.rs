//! The CLI side of the daemon API: a typed method per route, and starting the daemon when
//! nobody answers.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
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

use super::network::{
    Network, NetworkConnectRequest, NetworkConnectResponse, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDeleted, NetworkDisconnectRequest, NetworkPruneResponse,
    ReconcileResponse,
};
use super::project::{
    BuildLine, BuildRequest, ContainerConnect, DownRequest, Outcome, PsQuery, PsRow, RenameReply,
    RmRequest, RunRequest, UpRequest,
};
use super::system::{EngineReply, ShutdownReply};
use super::{API_PREFIX, ErrorBody, ErrorKind, Event, Info, SOCKET_NAME, encode_segment};

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
    /// The daemon refused or failed the request: its kind to branch on, its words to print.
    #[error("the berth daemon answered {status} on {route}: {message}")]
    Api {
        route: String,
        status: StatusCode,
        kind: ErrorKind,
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
    /// The daemon ended before it answered; `reason` is its own last word (its error, sent
    /// on a pipe, so that it reaches the user even when its log cannot be written).
    #[error("the berth daemon exited ({status}) before answering: {reason} (log: {log})")]
    StartFailed {
        status: std::process::ExitStatus,
        reason: String,
        log: PathBuf,
    },
}

/// Env var naming the fd on which a daemon started by the CLI writes why it could not start.
pub const DAEMON_REPORT_FD_ENV: &str = "BERTH_DAEMON_REPORT_FD";

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
            .map_err(|_| ClientError::Api {
                route: route.to_string(),
                status: StatusCode::BAD_REQUEST,
                kind: ErrorKind::InvalidArgument,
                message: "invalid request".into(),
            })?;
        let resp = sender.send_request(req).await.map_err(http)?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.into_body().collect().await.map_err(http)?.to_bytes();
        let (kind, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            // A body without a kind (Docker's shape) keeps the kind its status tells.
            Ok(b) if b.kind == ErrorKind::Internal => {
                (ErrorKind::from_status(status.as_u16()), b.message)
            }
            Ok(b) => (b.kind, b.message),
            Err(_) => (
                ErrorKind::from_status(status.as_u16()),
                String::from_utf8_lossy(&bytes).into_owned(),
            ),
        };
        Err(ClientError::Api {
            route: route.to_string(),
            status,
            kind,
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

    /// GET a route and decode its JSON answer (the typed methods below are the interface;
    /// this is for routes still being moved to one).
    pub(crate) async fn get<T: DeserializeOwned>(&self, route: &str) -> Result<T, ClientError> {
        self.json(Method::GET, route, None).await
    }

    /// POST a JSON body to a route and decode its JSON answer (as [`Client::get`]).
    pub(crate) async fn post<T: DeserializeOwned>(
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
    pub(crate) async fn stream<T: DeserializeOwned>(
        &self,
        route: &str,
        each: impl FnMut(T) -> bool,
    ) -> Result<(), ClientError> {
        self.stream_with(Method::GET, route, None, each).await
    }

    /// POST a JSON body to a route whose answer is an NDJSON stream (progress while it works);
    /// each decoded item goes to `each` until it returns false or the stream ends.
    pub(crate) async fn post_stream<T: DeserializeOwned>(
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

    /// DELETE a route and decode its JSON answer.
    async fn delete<T: DeserializeOwned>(&self, route: &str) -> Result<T, ClientError> {
        self.json(Method::DELETE, route, None).await
    }

    /// True when a daemon answers on the socket (`GET /v1/ping`).
    pub async fn ping(&self) -> bool {
        self.send(Method::GET, "/ping", None).await.is_ok()
    }

    /// `GET /v1/info`: which instance answered and how it runs.
    pub async fn info(&self) -> Result<Info, ClientError> {
        self.get("/info").await
    }

    /// `GET /v1/events`: every event from now on, to `each` until it returns false or the
    /// daemon stops.
    pub async fn events(&self, each: impl FnMut(Event) -> bool) -> Result<(), ClientError> {
        self.stream("/events", each).await
    }

    /// `POST /v1/shutdown`: the daemon stops once it has answered.
    pub async fn shutdown(&self) -> Result<ShutdownReply, ClientError> {
        self.post("/shutdown", &serde_json::json!({})).await
    }

    /// `POST /v1/engine`: opens the engine (restart policies, DNS, the endpoint sweep).
    pub async fn open_engine(&self) -> Result<EngineReply, ClientError> {
        self.post("/engine", &serde_json::json!({})).await
    }

    /// `POST /v1/up`: converges the project; the plan run and its failures.
    pub async fn up(&self, req: &UpRequest) -> Result<Outcome, ClientError> {
        self.post("/up", req).await
    }

    /// `POST /v1/down`: stops and removes the project's containers (and what the options say).
    pub async fn down(&self, req: &DownRequest) -> Result<Outcome, ClientError> {
        self.post("/down", req).await
    }

    /// `GET /v1/ps?project=NAME&all=0|1`: the project's containers.
    pub async fn ps(&self, project: &str, all: bool) -> Result<Vec<PsRow>, ClientError> {
        let q = PsQuery {
            project: Some(project.to_string()),
            all,
        };
        self.get(&format!("/ps?{}", q.to_query())).await
    }

    /// `POST /v1/rm`: stops, detaches and removes each container; the failures.
    pub async fn rm(&self, req: &RmRequest) -> Result<Vec<String>, ClientError> {
        self.post("/rm", req).await
    }

    /// `POST /v1/run`: creates a one-off container of a service; its id.
    pub async fn run(&self, req: &RunRequest) -> Result<String, ClientError> {
        self.post("/run", req).await
    }

    /// `POST /v1/build`: builds the services' images, each finished step and then the outcome
    /// to `each` as they come.
    pub async fn build(
        &self,
        req: &BuildRequest,
        each: impl FnMut(BuildLine) -> bool,
    ) -> Result<(), ClientError> {
        self.post_stream("/build", req, each).await
    }

    /// `POST /v1/project/watch`: follows the services' `develop.watch` rules, each event to
    /// `each` until it returns false or the stream ends; dropping the stream ends the watch.
    pub async fn watch(
        &self,
        req: &super::watch::WatchRequest,
        each: impl FnMut(super::watch::WatchEvent) -> bool,
    ) -> Result<(), ClientError> {
        self.post_stream("/project/watch", req, each).await
    }

    /// `POST /v1/container/connect`: attaches a created container to its networks; the
    /// endpoints as `ethN address` lines.
    pub async fn container_connect(
        &self,
        req: &ContainerConnect,
    ) -> Result<Vec<String>, ClientError> {
        self.post("/container/connect", req).await
    }

    /// `POST /v1/container/disconnect`: drops the DNS names and endpoints of containers that
    /// are gone or going; the failures.
    pub async fn container_disconnect(&self, ids: &[String]) -> Result<Vec<String>, ClientError> {
        self.post("/container/disconnect", &ids).await
    }

    /// `POST /v1/container/rename`: the container's DNS names follow its new name.
    pub async fn container_rename(&self, id: &str) -> Result<RenameReply, ClientError> {
        self.post("/container/rename", &id).await
    }

    /// `GET /v1/networks`: every network.
    pub async fn network_list(&self) -> Result<Vec<Network>, ClientError> {
        self.get("/networks").await
    }

    /// `GET /v1/networks/{name}`: one network by name, id or id prefix.
    pub async fn network_inspect(&self, name: &str) -> Result<Network, ClientError> {
        self.get(&format!("/networks/{}", encode_segment(name)))
            .await
    }

    /// `POST /v1/networks/create`.
    pub async fn network_create(
        &self,
        req: &NetworkCreateRequest,
    ) -> Result<NetworkCreateResponse, ClientError> {
        self.post("/networks/create", req).await
    }

    /// `DELETE /v1/networks/{name}`.
    pub async fn network_remove(&self, name: &str) -> Result<NetworkDeleted, ClientError> {
        self.delete(&format!("/networks/{}", encode_segment(name)))
            .await
    }

    /// `POST /v1/networks/prune`: removes every network without endpoints.
    pub async fn network_prune(&self) -> Result<NetworkPruneResponse, ClientError> {
        self.post("/networks/prune", &serde_json::json!({})).await
    }

    /// `POST /v1/networks/{name}/connect`.
    pub async fn network_connect(
        &self,
        network: &str,
        req: &NetworkConnectRequest,
    ) -> Result<NetworkConnectResponse, ClientError> {
        self.post(
            &format!("/networks/{}/connect", encode_segment(network)),
            req,
        )
        .await
    }

    /// `POST /v1/networks/{name}/disconnect`.
    pub async fn network_disconnect(
        &self,
        network: &str,
        req: &NetworkDisconnectRequest,
    ) -> Result<(), ClientError> {
        let _: serde_json::Value = self
            .post(
                &format!("/networks/{}/disconnect", encode_segment(network)),
                req,
            )
            .await?;
        Ok(())
    }

    /// `POST /v1/networks/reconcile`: repairs kernel state from the recorded networks.
    pub async fn network_reconcile(&self) -> Result<ReconcileResponse, ClientError> {
        self.post("/networks/reconcile", &serde_json::json!({}))
            .await
    }

    /// Returns a client whose daemon answers, starting `berth daemon` for this instance when
    /// nobody does (as the CLI promises: no separate service to set up).
    pub async fn connect_or_start(root: &Path, run: &Path) -> Result<Self, ClientError> {
        let client = Self::new(run);
        // A daemon that accepts a connection serves the request that follows: a bare connect
        // tells as much as a ping without its round trip through the daemon.
        if std::os::unix::net::UnixStream::connect(&client.socket).is_ok() {
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
        let (report_r, report_w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
        cmd.env(DAEMON_REPORT_FD_ENV, DAEMON_REPORT_FD.to_string());
        detach(&mut cmd, report_w.as_raw_fd());
        let mut child = cmd.spawn().map_err(spawn_err)?;
        drop(report_w);
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if client.ping().await {
                // The daemon lives on in its own session; reap nothing, forget the handle.
                return Ok(client);
            }
            if let Ok(Some(status)) = child.try_wait() {
                let mut reason = String::new();
                let _ =
                    std::io::Read::read_to_string(&mut std::fs::File::from(report_r), &mut reason);
                if reason.trim().is_empty() {
                    reason = format!("see its log {}", log.display());
                }
                return Err(ClientError::StartFailed {
                    status,
                    reason: reason.trim().to_string(),
                    log,
                });
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

impl ClientError {
    /// The kind of a refusal by the daemon; `None` when the daemon was not reached or its
    /// answer not read.
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ClientError::Api { kind, .. } => Some(*kind),
            _ => None,
        }
    }

    /// What the user reads: the daemon's own words for a refusal, else the whole error.
    pub fn message(&self) -> String {
        match self {
            ClientError::Api { message, .. } => message.clone(),
            other => super::error::error_chain(other),
        }
    }
}

/// The daemon's fd for [`DAEMON_REPORT_FD_ENV`].
const DAEMON_REPORT_FD: RawFd = 3;

/// Puts the daemon in its own session so that the terminal's signals (Ctrl-C of the CLI that
/// started it) and the CLI's exit do not reach it; `report` becomes its fd 3.
fn detach(cmd: &mut std::process::Command, report: RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid(), dup2(), fcntl() and close_range() are async-signal-safe and touch no
    // memory of the parent.
    unsafe {
        cmd.pre_exec(move || {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if report == DAEMON_REPORT_FD {
                libc::fcntl(report, libc::F_SETFD, 0);
            } else if libc::dup2(report, DAEMON_REPORT_FD) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // Inherit nothing but stdio and the report pipe: a pipe of the caller's shell
            // held open by a long-lived daemon would keep that caller waiting for EOF.
            libc::close_range(DAEMON_REPORT_FD as libc::c_uint + 1, libc::c_uint::MAX, 0);
            Ok(())
        });
    }
}

/// In a daemon started by the CLI: the pipe on which it tells why it could not start,
/// taken out of the environment (nothing the daemon starts inherits it) and closed on exec.
pub fn take_daemon_report() -> Option<OwnedFd> {
    let fd: RawFd = std::env::var(DAEMON_REPORT_FD_ENV).ok()?.parse().ok()?;
    // SAFETY: called first thing in `main`, before any thread exists that could read the
    // environment concurrently.
    unsafe { std::env::remove_var(DAEMON_REPORT_FD_ENV) };
    // SAFETY: F_GETFD only asks whether the fd is open.
    if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
        return None;
    }
    // SAFETY: the starting CLI handed this fd to us for this purpose alone.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let _ = nix::fcntl::fcntl(
        &owned,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Some(owned)
}
