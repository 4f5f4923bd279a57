//! Docker's exec instances: `POST /containers/{id}/exec` makes one, `POST /exec/{id}/start`
//! runs it (detached, or over a hijacked connection: stdin in, multiplexed or raw output out,
//! closed once the process has ended and its exit code is kept), `GET /exec/{id}/json`
//! reports it and `POST /exec/{id}/resize` sizes its terminal.
//!
//! The process runs through the runtime's exec helper ([`Runtime::exec_command`], the one
//! `berth container exec` runs); only the stdio plumbing is the Docker wire's. Instances live
//! in the daemon's memory, as dockerd's do.

use std::collections::HashMap;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use berth_runtime::container::ExecConfig;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::errors::ApiError;
use super::hijack::{self, Client, DetachKeys, STDERR, STDOUT};
use super::{Body, Docker, json, query};

/// The largest exec body read (a real one is a few hundred bytes).
const MAX_BODY: usize = 1 << 20;

/// Docker's exec create body (the fields its clients send).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecCreate {
    attach_stdin: bool,
    attach_stdout: bool,
    attach_stderr: bool,
    detach_keys: String,
    tty: bool,
    env: Option<Vec<String>>,
    cmd: Option<Vec<String>>,
    privileged: bool,
    user: String,
    working_dir: String,
}

/// Docker's exec start body.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct ExecStart {
    detach: bool,
}

/// One exec instance.
#[derive(Debug, Clone)]
struct Instance {
    container: String,
    config: ExecCreate,
    started: bool,
    running: bool,
    exit_code: Option<i32>,
    /// The exec helper's pid; the process itself is its child.
    helper: Option<u32>,
}

/// The daemon's exec instances by id.
static INSTANCES: LazyLock<Mutex<HashMap<String, Instance>>> = LazyLock::new(Default::default);

fn instances() -> std::sync::MutexGuard<'static, HashMap<String, Instance>> {
    INSTANCES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn no_such_exec(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: format!("No such exec instance: {id}"),
    }
}

fn not_running(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        message: format!("container {id} is not running"),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
}

async fn read_body<T: serde::de::DeserializeOwned + Default>(
    body: Incoming,
) -> Result<T, ApiError> {
    use http_body_util::BodyExt;
    let bytes = http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(&bytes).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
}

/// `POST /containers/{id}/exec`: 201 `{Id}`; 409 when the container does not run.
pub(super) async fn create(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    what: &str,
) -> Result<Response<Body>, ApiError> {
    let config: ExecCreate = read_body(req.into_body()).await?;
    if config.cmd.as_ref().is_none_or(|c| c.is_empty()) {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    DetachKeys::parse(&config.detach_keys).map_err(ApiError::bad_request)?;
    let rt = docker.rt.clone();
    let w = what.to_string();
    let rec = blocking(move || {
        let rec = super::containers::find(&rt, &w)?;
        if !rt.is_running(&rec) {
            return Err(not_running(&rec.id));
        }
        Ok(rec)
    })
    .await?;
    if config.privileged && !rec.config.privileged {
        return Err(ApiError::bad_request(
            "berth cannot run Privileged exec processes in a container that is not privileged",
        ));
    }
    let id = new_id();
    let mut all = instances();
    // Instances of containers that are gone go with them.
    let rt = &docker.rt;
    all.retain(|_, i| i.running || rt.resolve(&i.container).is_ok());
    all.insert(
        id.clone(),
        Instance {
            container: rec.id,
            config,
            started: false,
            running: false,
            exit_code: None,
            helper: None,
        },
    );
    Ok(json(StatusCode::CREATED, &serde_json::json!({ "Id": id })))
}

/// A fresh 64-hex-digit id, as Docker's.
fn new_id() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = f.read_exact(&mut bytes);
    }
    // Never two alike even without /dev/urandom: the time and a counter go in too.
    static COUNT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for (i, b) in t
        .to_le_bytes()
        .iter()
        .chain(n.to_le_bytes().iter())
        .enumerate()
    {
        bytes[i] ^= b;
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `POST /exec/{id}/start`: 200 without a body when detached, else the hijacked stream.
pub(super) async fn start(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    id: &str,
) -> Result<Response<Body>, ApiError> {
    let instance = instances()
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_exec(id))?;
    let content_type = hijack::content_type(instance.config.tty, &req);
    let (parts, body) = req.into_parts();
    let start: ExecStart = read_body(body).await?;
    claim(id)?;
    let rt = docker.rt.clone();
    let c = instance.container.clone();
    let rec = blocking(move || {
        let rec = super::containers::find(&rt, &c)?;
        if !rt.is_running(&rec) {
            return Err(not_running(&rec.id));
        }
        Ok(rec)
    })
    .await
    .inspect_err(|_| unclaim(id))?;
    let c = &instance.config;
    let exec = ExecConfig {
        args: c.cmd.clone().unwrap_or_default(),
        env: c.env.clone().unwrap_or_default(),
        user: Some(c.user.clone()).filter(|u| !u.is_empty()),
        working_dir: Some(c.working_dir.clone())
            .filter(|w| !w.is_empty())
            .map(Into::into),
        tty: c.tty,
        interactive: c.attach_stdin && !start.detach,
        detach: false,
    };
    let cmd = docker.rt.exec_command(&rec, &exec).map_err(|_| {
        unclaim(id);
        not_running(&rec.id)
    })?;
    let attached = !start.detach;
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(if exec.interactive {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(if attached && c.attach_stdout {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stderr(if attached && c.attach_stderr {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .kill_on_drop(false);
    let child = cmd.spawn().map_err(|e| {
        unclaim(id);
        ApiError::internal(format!("running the exec helper: {e}"))
    })?;
    if let Some(i) = instances().get_mut(id) {
        i.running = true;
        i.helper = child.id();
    }
    let id = id.to_string();
    if !attached {
        tokio::spawn(async move {
            let mut child = child;
            finish(&id, child.wait().await.ok());
        });
        return Ok(super::full(StatusCode::OK, "application/json", Vec::new()));
    }
    let keys = DetachKeys::parse(&c.detach_keys).unwrap_or_else(|_| DetachKeys::default_keys());
    let tty = c.tty;
    Ok(hijack::hijack(
        Request::from_parts(parts, ()),
        content_type,
        move |client| session(id, child, client, tty, keys),
    ))
}

/// Marks an instance started: Docker's 409 when it was (running or done).
fn claim(id: &str) -> Result<(), ApiError> {
    let mut all = instances();
    let i = all.get_mut(id).ok_or_else(|| no_such_exec(id))?;
    if i.started {
        let how = if i.exit_code.is_some() {
            "has already run"
        } else {
            "is already running"
        };
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("Error: Exec command {id} {how}"),
        });
    }
    i.started = true;
    Ok(())
}

/// Undoes [`claim`] for a start that did not happen.
fn unclaim(id: &str) {
    if let Some(i) = instances().get_mut(id) {
        i.started = false;
    }
}

/// Records how an exec process ended.
fn finish(id: &str, status: Option<std::process::ExitStatus>) {
    use std::os::unix::process::ExitStatusExt;
    let code = status.map_or(126, |s| {
        s.code().unwrap_or_else(|| 128 + s.signal().unwrap_or(0))
    });
    if let Some(i) = instances().get_mut(id) {
        i.running = false;
        i.exit_code = Some(code);
    }
}

/// Relays one attached exec: the client's input to the process, its output to the client;
/// the connection closes once the process has ended (its exit code kept first) or the client
/// typed the detach keys.
async fn session(
    id: String,
    mut child: tokio::process::Child,
    mut client: Client,
    tty: bool,
    mut keys: DetachKeys,
) {
    let (tx, mut rx) = mpsc::channel::<Vec<u8>>(64);
    let mut readers = Vec::new();
    for (out, stream) in [
        (
            child
                .stdout
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            STDOUT,
        ),
        (
            child
                .stderr
                .take()
                .map(|o| Box::new(o) as Box<dyn tokio::io::AsyncRead + Send + Unpin>),
            STDERR,
        ),
    ] {
        let Some(mut out) = out else { continue };
        let tx = tx.clone();
        readers.push(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match out.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let data = if tty {
                            buf[..n].to_vec()
                        } else {
                            hijack::frame(stream, &buf[..n])
                        };
                        if tx.send(data).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }));
    }
    drop(tx);
    let (detach_tx, mut detached) = tokio::sync::oneshot::channel::<()>();
    if let (Some(mut stdin), Some(mut input)) = (child.stdin.take(), client.input.take()) {
        tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (pass, detach) = keys.scan(&buf[..n]);
                        if stdin.write_all(&pass).await.is_err() {
                            break;
                        }
                        if detach {
                            let _ = detach_tx.send(());
                            return;
                        }
                    }
                }
            }
            // The client's input ended: the process's stdin ends too.
            drop(stdin);
            std::future::pending::<()>().await;
        });
    }
    let id2 = id.clone();
    let waiter = tokio::spawn(async move {
        let status = child.wait().await.ok();
        for r in readers {
            let _ = r.await;
        }
        finish(&id2, status);
    });
    let relay = async {
        while let Some(data) = rx.recv().await {
            if !hijack::send(&mut client.output, &data).await {
                return;
            }
        }
        let _ = waiter.await;
    };
    tokio::select! {
        _ = relay => {}
        _ = &mut detached => {}
    }
    let _ = client.output.shutdown().await;
}

/// `GET /exec/{id}/json`.
pub(super) async fn inspect(id: &str) -> Result<Response<Body>, ApiError> {
    let inst = instances()
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_exec(id))?;
    let pid = if inst.running {
        inst.helper.and_then(process_of).unwrap_or(0)
    } else {
        0
    };
    let c = &inst.config;
    let cmd = c.cmd.clone().unwrap_or_default();
    let body = Inspect {
        id: id.to_string(),
        running: inst.running,
        exit_code: inst.exit_code,
        process_config: ProcessConfig {
            tty: c.tty,
            entrypoint: cmd.first().cloned().unwrap_or_default(),
            arguments: cmd.iter().skip(1).cloned().collect(),
            privileged: c.privileged,
            user: c.user.clone(),
        },
        open_stdin: c.attach_stdin,
        open_stderr: c.attach_stderr,
        open_stdout: c.attach_stdout,
        can_remove: false,
        container_id: inst.container.clone(),
        detach_keys: c.detach_keys.clone(),
        pid,
    };
    Ok(json(StatusCode::OK, &body))
}

/// Docker's exec inspect answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspect {
    #[serde(rename = "ID")]
    id: String,
    running: bool,
    exit_code: Option<i32>,
    process_config: ProcessConfig,
    open_stdin: bool,
    open_stderr: bool,
    open_stdout: bool,
    can_remove: bool,
    #[serde(rename = "ContainerID")]
    container_id: String,
    detach_keys: String,
    pid: i32,
}

#[derive(Debug, Serialize)]
struct ProcessConfig {
    tty: bool,
    entrypoint: String,
    arguments: Vec<String>,
    privileged: bool,
    user: String,
}

/// The exec'd process: the helper's child (the helper forks into the container).
fn process_of(helper: u32) -> Option<i32> {
    let children =
        std::fs::read_to_string(format!("/proc/{helper}/task/{helper}/children")).ok()?;
    children.split_whitespace().next()?.parse().ok()
}

/// `POST /exec/{id}/resize?h=&w=`: sizes the process's terminal (nothing to do without one).
pub(super) async fn resize(id: &str, query: &str) -> Result<Response<Body>, ApiError> {
    let (rows, cols) = size(query)?;
    let inst = instances()
        .get(id)
        .cloned()
        .ok_or_else(|| no_such_exec(id))?;
    if !inst.config.tty {
        return Ok(super::full(StatusCode::OK, "text/plain", Vec::new()));
    }
    let Some(helper) = inst.helper.filter(|_| inst.running) else {
        return Err(ApiError {
            status: StatusCode::CONFLICT,
            message: format!("Exec {id} is not running"),
        });
    };
    blocking(move || {
        // The client sizes right after the start: the helper may not have forked yet.
        for _ in 0..20 {
            if let Some(pid) = process_of(helper)
                && set_size(&format!("/proc/{pid}/fd/0"), rows, cols)
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(ApiError::internal(format!(
            "the terminal of exec {} cannot be resized",
            inst.container
        )))
    })
    .await?;
    Ok(super::full(StatusCode::OK, "text/plain", Vec::new()))
}

/// Sets the window size of the terminal at `path` (a pty's either end).
fn set_size(path: &str, rows: u16, cols: u16) -> bool {
    use std::os::unix::fs::OpenOptionsExt;
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(path)
    else {
        return false;
    };
    let ws = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads the struct we own; a non-terminal answers ENOTTY.
    unsafe { libc::ioctl(f.as_raw_fd(), libc::TIOCSWINSZ, &ws) == 0 }
}

/// `h` and `w` of a resize, as Docker reads them.
pub(super) fn size(query: &str) -> Result<(u16, u16), ApiError> {
    let get = |k: &str| -> Result<u16, ApiError> {
        let v = query::get(query, k).unwrap_or_default();
        v.parse().map_err(|_| {
            ApiError::bad_request(format!("strconv.Atoi: parsing \"{v}\": invalid syntax"))
        })
    };
    Ok((get("h")?, get("w")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockers_exec_body_reads_with_nulls_and_unknown_fields() {
        let body = serde_json::json!({
            "AttachStdin": false, "AttachStdout": true, "AttachStderr": true,
            "ConsoleSize": [24, 80], "Tty": true, "Env": null, "Cmd": ["sh", "-c", "true"],
            "User": "1:1", "WorkingDir": "/tmp", "DetachKeys": "ctrl-a,q", "Privileged": false,
        });
        let c: ExecCreate = serde_json::from_value(body).expect("exec body");
        assert!(c.tty && c.attach_stdout && !c.attach_stdin);
        assert_eq!(c.cmd.as_deref().map(<[String]>::len), Some(3));
        assert_eq!((c.user.as_str(), c.working_dir.as_str()), ("1:1", "/tmp"));
        assert!(c.env.is_none());
    }

    #[test]
    fn resize_sizes_read_as_dockers() {
        assert_eq!(size("h=24&w=80").ok(), Some((24, 80)));
        assert!(size("h=24").is_err());
        assert!(size("h=-1&w=80").is_err());
    }

    #[test]
    fn a_started_exec_is_not_started_twice() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert_ne!(id, new_id());
        instances().insert(
            id.clone(),
            Instance {
                container: "c".into(),
                config: ExecCreate::default(),
                started: false,
                running: false,
                exit_code: None,
                helper: None,
            },
        );
        assert!(claim(&id).is_ok());
        let again = claim(&id).err().map(|e| e.message).unwrap_or_default();
        assert!(again.ends_with("is already running"), "{again}");
        finish(&id, None);
        let done = claim(&id).err().map(|e| e.message).unwrap_or_default();
        assert!(done.ends_with("has already run"), "{done}");
        assert_eq!(instances().get(&id).and_then(|i| i.exit_code), Some(126));
        instances().remove(&id);
        assert_eq!(
            claim(&id).err().map(|e| e.status),
            Some(StatusCode::NOT_FOUND)
        );
    }
}
