//! `POST /containers/{id}/attach` and `POST /containers/{id}/resize`: a client joins the
//! container's stdio over a hijacked connection through the shim's own attach (the one
//! `berth container attach` and `run -i` use), which frames stdout/stderr as Docker does.
//!
//! Docker's clients attach *before* they start the container (`docker run`, `docker start
//! -a`): such a client waits here, and the start route starts the container with it attached
//! before the process runs ([`start_for_waiting`], the runtime's `start_attached`), so no
//! output of a short-lived container is lost.

use std::collections::HashMap;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use berth_runtime::container::logs::{self, LogOptions};
use berth_runtime::container::{ExitWatch, Record, Runtime, RuntimeError};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

use super::errors::ApiError;
use super::hijack::{self, Client, DetachKeys, STDERR, STDOUT};
use super::logs::{ChannelSink, flag};
use super::{Body, Docker};

/// A client waiting for a container to start.
struct Waiting {
    /// Tells this client from the others in the queue.
    token: u64,
    stdin: bool,
    tx: oneshot::Sender<UnixStream>,
}

/// Attach clients waiting for their container to start, by container id.
static WAITING: LazyLock<Mutex<HashMap<String, Vec<Waiting>>>> = LazyLock::new(Default::default);

fn waiting() -> std::sync::MutexGuard<'static, HashMap<String, Vec<Waiting>>> {
    WAITING
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Starts `rec` with the attach clients that wait for it: the first one attached before the
/// process runs, the others right after. Returns the pid and the run's exit watch; `None` when
/// no client waits (a plain start).
pub(super) fn start_for_waiting(
    rt: &Runtime,
    rec: &Record,
) -> Option<Result<(i32, ExitWatch), RuntimeError>> {
    let mut clients: Vec<Waiting> = waiting().remove(&rec.id)?;
    clients.retain(|w| !w.tx.is_closed());
    if clients.is_empty() {
        return None;
    }
    let first = clients.remove(0);
    let (pid, exit, stream) = match rt.start_attached(rec, first.stdin) {
        Ok(started) => started,
        Err(e) => return Some(Err(e)),
    };
    let _ = first.tx.send(stream);
    for w in clients {
        if let Ok(s) = rt.attach(rec, w.stdin) {
            let _ = w.tx.send(s);
        }
    }
    Some(Ok((pid, exit)))
}

/// Docker's 409 for a container that does not run.
fn not_running(id: &str) -> ApiError {
    ApiError {
        status: StatusCode::CONFLICT,
        message: format!("container {id} is not running"),
    }
}

async fn find(docker: &Arc<Docker>, what: &str) -> Result<(Record, bool), ApiError> {
    let rt = docker.rt.clone();
    let w = what.to_string();
    tokio::task::spawn_blocking(move || {
        let rec = super::containers::find(&rt, &w)?;
        let running = rt.is_running(&rec);
        Ok((rec, running))
    })
    .await
    .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
}

/// What the client asked to attach to.
struct Wants {
    stdin: bool,
    stdout: bool,
    stderr: bool,
    logs: bool,
    stream: bool,
    keys: DetachKeys,
}

/// `POST /containers/{id}/attach?stream=&stdin=&stdout=&stderr=&logs=&detachKeys=`.
pub(super) async fn attach(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let keys = super::query::get(query, "detachKeys").unwrap_or_default();
    let keys = DetachKeys::parse(&keys).map_err(ApiError::bad_request)?;
    let (rec, running) = find(docker, what).await?;
    let wants = Wants {
        stdin: flag(query, "stdin") && rec.config.open_stdin,
        stdout: flag(query, "stdout"),
        stderr: flag(query, "stderr"),
        logs: flag(query, "logs"),
        stream: flag(query, "stream"),
        keys,
    };
    // A client attaching before the start waits for it; it is registered before the answer
    // goes out, so the start that follows finds it.
    let waiter = (wants.stream && !running).then(|| {
        static TOKENS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let token = TOKENS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        waiting().entry(rec.id.clone()).or_default().push(Waiting {
            token,
            stdin: wants.stdin,
            tx,
        });
        (token, rx)
    });
    let content_type = hijack::content_type(rec.config.tty, &req);
    let rt = docker.rt.clone();
    Ok(hijack::hijack(req, content_type, move |client| {
        session(rt, rec, wants, waiter, client)
    }))
}

/// One attach: the log so far if asked, then the live stream until the container's output
/// ends, the client leaves or types the detach keys.
async fn session(
    rt: Runtime,
    rec: Record,
    mut wants: Wants,
    waiter: Option<(u64, oneshot::Receiver<UnixStream>)>,
    mut client: Client,
) {
    let tty = rec.config.tty;
    if wants.logs && !replay(&rec, &wants, tty, &mut client).await {
        return;
    }
    if wants.stream
        && let Some(shim) = shim_stream(&rt, &rec, wants.stdin, waiter).await
    {
        relay(shim, &mut wants, tty, &mut client).await;
    }
    let _ = client.output.shutdown().await;
}

/// Sends the stored log (the streams asked for); false once the client is gone.
async fn replay(rec: &Record, wants: &Wants, tty: bool, client: &mut Client) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let path = rec.log_path();
    let (stdout, stderr) = (wants.stdout, wants.stderr);
    tokio::task::spawn_blocking(move || {
        let mut sink = ChannelSink {
            tx,
            tty,
            stdout,
            stderr,
        };
        let _ = logs::print(&path, &LogOptions::default(), &mut sink, None);
    });
    while let Some(data) = rx.recv().await {
        if !hijack::send(&mut client.output, &data).await {
            return false;
        }
    }
    true
}

/// The shim's attach stream: at once for a running container; for one not started yet, the
/// one its start hands over (or, should something else start it, a plain attach then).
async fn shim_stream(
    rt: &Runtime,
    rec: &Record,
    stdin: bool,
    waiter: Option<(u64, oneshot::Receiver<UnixStream>)>,
) -> Option<UnixStream> {
    if let Some((token, mut rx)) = waiter {
        loop {
            tokio::select! {
                s = &mut rx => return s.ok(),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            let (r, rec2) = (rt.clone(), rec.clone());
            let started = tokio::task::spawn_blocking(move || r.is_running(&rec2))
                .await
                .unwrap_or(false);
            if started {
                // Started elsewhere: leave the queue, unless the start is handing over now.
                let still_queued = waiting().get_mut(&rec.id).is_some_and(|q| {
                    let before = q.len();
                    q.retain(|w| w.token != token);
                    q.len() != before
                });
                if !still_queued {
                    return rx.await.ok();
                }
                break;
            }
            if !rec.dir.exists() {
                // Removed before it ever started: nothing to attach to, no queue to keep.
                waiting().remove(&rec.id);
                return None;
            }
        }
    }
    let (r, rec2) = (rt.clone(), rec.clone());
    tokio::task::spawn_blocking(move || r.attach(&rec2, stdin).ok())
        .await
        .ok()
        .flatten()
}

/// Relays the shim's stream to the client (only the streams asked for) and the client's
/// input to it, until the container's output ends or the client detaches.
async fn relay(shim: UnixStream, wants: &mut Wants, tty: bool, client: &mut Client) {
    if shim.set_nonblocking(true).is_err() {
        return;
    }
    let Ok(shim) = tokio::net::UnixStream::from_std(shim) else {
        return;
    };
    let (mut from_shim, mut to_shim) = shim.into_split();
    let (detach_tx, mut detached) = oneshot::channel::<()>();
    let input = if wants.stdin {
        client.input.take()
    } else {
        None
    };
    let mut keys = wants.keys.clone();
    // Without input the write half is kept to the end: dropping it would shut the socket's
    // write side, which the shim reads as the client leaving.
    let mut idle_writer = None;
    let pump = match input {
        None => {
            idle_writer = Some(to_shim);
            None
        }
        Some(mut input) => Some(tokio::spawn(async move {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match input.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        let (pass, detach) = keys.scan(&buf[..n]);
                        if to_shim.write_all(&pass).await.is_err() {
                            return;
                        }
                        if detach {
                            let _ = detach_tx.send(());
                            return;
                        }
                    }
                }
            }
            // The client's input ended: so does the container's stdin.
            let _ = to_shim.shutdown().await;
            std::future::pending::<()>().await;
        })),
    };
    let mut filter = FrameFilter::new(tty, wants.stdout, wants.stderr);
    let out = async {
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match from_shim.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    let data = filter.push(&buf[..n]);
                    if !data.is_empty() && !hijack::send(&mut client.output, &data).await {
                        return;
                    }
                }
            }
        }
    };
    tokio::select! {
        _ = out => {}
        _ = &mut detached => {}
    }
    if let Some(p) = pump {
        p.abort();
    }
    drop(idle_writer);
}

/// Keeps the frames of the streams asked for (all bytes with a TTY, or when both are).
struct FrameFilter {
    pass_all: bool,
    stdout: bool,
    stderr: bool,
    pending: Vec<u8>,
}

impl FrameFilter {
    fn new(tty: bool, stdout: bool, stderr: bool) -> FrameFilter {
        FrameFilter {
            pass_all: stdout && (tty || stderr),
            stdout,
            stderr,
            pending: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8]) -> Vec<u8> {
        if self.pass_all {
            return data.to_vec();
        }
        self.pending.extend_from_slice(data);
        let mut out = Vec::new();
        while self.pending.len() >= 8 {
            let p = &self.pending;
            let len = u32::from_be_bytes([p[4], p[5], p[6], p[7]]) as usize;
            if p.len() < 8 + len {
                break;
            }
            let keep = match p[0] {
                STDOUT => self.stdout,
                STDERR => self.stderr,
                _ => false,
            };
            if keep {
                out.extend_from_slice(&p[..8 + len]);
            }
            self.pending.drain(..8 + len);
        }
        out
    }
}

/// `POST /containers/{id}/resize?h=&w=`: sizes a TTY container's terminal (nothing to do
/// without one); 409 when it does not run.
pub(super) async fn resize(
    docker: &Arc<Docker>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let (rows, cols) = super::exec::size(query)?;
    let (rec, running) = find(docker, what).await?;
    if !running {
        return Err(not_running(&rec.id));
    }
    if rec.config.tty {
        let rt = docker.rt.clone();
        tokio::task::spawn_blocking(move || rt.resize(&rec, rows, cols))
            .await
            .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))?
            .map_err(|e| ApiError::internal(crate::api::error::error_chain(&e)))?;
    }
    Ok(super::full(StatusCode::OK, "text/plain", Vec::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_of_streams_not_asked_for_are_dropped() {
        let mut both = FrameFilter::new(false, true, true);
        assert_eq!(both.push(&[2, 0, 0]), vec![2, 0, 0]);
        let mut out = FrameFilter::new(false, true, false);
        let mut wire = hijack::frame(STDERR, b"err\n");
        wire.extend(hijack::frame(STDOUT, b"out\n"));
        // Split mid-header: nothing until a whole frame is in.
        assert!(out.push(&wire[..5]).is_empty());
        assert_eq!(out.push(&wire[5..]), hijack::frame(STDOUT, b"out\n"));
        let mut tty = FrameFilter::new(true, true, false);
        assert_eq!(tty.push(b"raw"), b"raw".to_vec());
    }
}
