//! `POST /containers/{id}/wait` and the exits it is answered from.
//!
//! A run Docker's API starts while a client waits for it (attached, as `docker run` and `docker
//! start -a` are, or with a wait open) is started watched: its shim reports the exit on a pipe
//! (even when `--rm` removed the container, which the shim does before it reports), the report
//! lands here and wakes every wait at once, so `docker run --rm` hears of the exit as soon as the
//! shim does instead of at the next look of a poll. A start nobody waits for (`docker run -d`,
//! Compose's) holds no pipe in the daemon. A start, an exit and a removal made through Docker's
//! API all wake the waits; a run not watched (started elsewhere, or before the wait) is waited for
//! through its shim, and a start or removal made elsewhere is seen by looking again after a short
//! pause (1 ms doubling to 50 ms).

use std::collections::HashMap;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use berth_runtime::container::{ExitWatch, Record, Runtime, RuntimeError};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::Frame;
use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;

use super::containers::{blocking, find, runtime_error};
use super::errors::ApiError;
use super::{Body, Docker, query};

/// How long an exit report nobody asked for is kept.
const KEEP: Duration = Duration::from_secs(600);

/// What is known of one container's watched runs.
#[derive(Debug, Default)]
struct Runs {
    /// Watched runs whose exit has not been reported yet.
    watching: u32,
    /// Waits open on the container: a start then is a watched one.
    waits: u32,
    /// The last reported exit: its code and when the report came.
    last: Option<(i32, Instant)>,
}

/// The watched runs of every container, and the signal that wakes the waits.
struct Exits {
    runs: Mutex<HashMap<String, Runs>>,
    changed: watch::Sender<u64>,
}

static EXITS: LazyLock<Exits> = LazyLock::new(|| Exits {
    runs: Mutex::default(),
    changed: watch::Sender::new(0),
});

fn runs() -> MutexGuard<'static, HashMap<String, Runs>> {
    EXITS
        .runs
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Wakes the waits: something they may wait for happened (a start, an exit, a removal).
pub(super) fn changed() {
    EXITS.changed.send_modify(|g| *g = g.wrapping_add(1));
}

/// Starts `rec`: with the attach clients that wait for it, if any (see
/// [`super::attach::start_for_waiting`]), and watched when a client waits for it (its exit is
/// then reported here); plainly otherwise.
pub(super) fn start(rt: &Runtime, rec: &Record) -> Result<i32, RuntimeError> {
    // Counted before the start, so that a wait looking meanwhile knows a report may come.
    let waited = {
        let mut all = runs();
        let r = all.entry(rec.id.clone()).or_default();
        r.watching += 1;
        r.waits > 0
    };
    let started = match super::attach::start_for_waiting(rt, rec) {
        Some(started) => started.map(|(pid, exit)| (pid, Some(exit))),
        None if waited => rt.start_watched(rec).map(|(pid, exit)| (pid, Some(exit))),
        None => rt.start(rec).map(|pid| (pid, None)),
    };
    let result = match started {
        Ok((pid, Some(exit))) => {
            follow(rec.id.clone(), exit);
            Ok(pid)
        }
        // Not watched after all (or not started): no report will come.
        Ok((pid, None)) => {
            reported(&rec.id, None);
            Ok(pid)
        }
        Err(e) => {
            reported(&rec.id, None);
            Err(e)
        }
    };
    changed();
    result
}

/// Records the end of a watched run (`code` when the shim told it) and wakes the waits.
fn reported(id: &str, code: Option<i32>) {
    {
        let mut all = runs();
        all.retain(|_, r| {
            r.watching > 0 || r.waits > 0 || r.last.is_some_and(|(_, at)| at.elapsed() < KEEP)
        });
        let r = all.entry(id.to_string()).or_default();
        r.watching = r.watching.saturating_sub(1);
        if let Some(code) = code {
            r.last = Some((code, Instant::now()));
        }
    }
    changed();
}

/// The exit pipe as the reactor sees it.
struct Pipe(ExitWatch);

impl AsRawFd for Pipe {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

/// Waits for the exit report of a run on the daemon's reactor (no thread per running
/// container), then records it. Once no wait is open on the container any more (the `docker
/// run -d` that opened one has left), the pipe is let go: a later wait goes through the shim.
fn follow(id: String, exit: ExitWatch) {
    tokio::spawn(async move {
        // SAFETY: the pipe's fd is owned by the `ExitWatch` inside, open and the same until
        // `into_inner` hands it back (or the `AsyncFd` is dropped with it).
        let registered = unsafe { AsyncFd::register_with_interest(Pipe(exit), Interest::READABLE) };
        let exit = match registered {
            Ok(fd) => {
                let mut rx = EXITS.changed.subscribe();
                loop {
                    tokio::select! {
                        // Readable once the report is in (one write) or the shim is gone (EOF).
                        _ = fd.readable() => break,
                        _ = rx.changed() => {
                            if runs().get(&id).is_none_or(|r| r.waits == 0) {
                                reported(&id, None);
                                return;
                            }
                        }
                    }
                }
                fd.into_inner().0
            }
            Err(e) => e.into_parts().0.0,
        };
        let code = tokio::task::spawn_blocking(move || exit.wait())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|e| e.code);
        tracing::debug!(%id, ?code, "exit reported");
        reported(&id, code);
    });
}

/// The exit code of the container's last watched run if it was reported after `since`, and
/// whether a run's report is still to come.
fn since(id: &str, since: Instant) -> (Option<i32>, bool) {
    runs().get(id).map_or((None, false), |r| {
        let code = r.last.filter(|(_, at)| *at >= since).map(|(c, _)| c);
        (code, r.watching > 0)
    })
}

/// An open wait, counted while it lasts (however it ends: answered, or its client gone).
struct Open(String);

impl Open {
    fn new(id: &str) -> Open {
        runs().entry(id.to_string()).or_default().waits += 1;
        Open(id.to_string())
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let mut all = runs();
        if let Some(r) = all.get_mut(&self.0) {
            r.waits = r.waits.saturating_sub(1);
            if r.waits == 0 && r.watching == 0 && r.last.is_none() {
                all.remove(&self.0);
            }
        }
        drop(all);
        // A watch nobody waits on any more lets its pipe go.
        changed();
    }
}

/// The pauses between two looks at a change made outside Docker's API: 1 ms doubling to
/// 50 ms, so that a short run is seen at once while a long wait costs no more than a look
/// every 50 ms.
#[derive(Debug)]
struct Backoff(Duration);

impl Default for Backoff {
    fn default() -> Self {
        Backoff(Duration::from_millis(1))
    }
}

impl Backoff {
    fn next(&mut self) -> Duration {
        let d = self.0;
        self.0 = (self.0 * 2).min(Duration::from_millis(50));
        d
    }
}

/// What a wait waits for (Docker's `condition`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Condition {
    /// The container is not running (at once when it is not).
    NotRunning,
    /// A run that ends after the wait began.
    NextExit,
    /// The container is gone.
    Removed,
}

impl Condition {
    fn parse(s: &str) -> Result<Condition, ApiError> {
        match s {
            "" | "not-running" => Ok(Condition::NotRunning),
            "next-exit" => Ok(Condition::NextExit),
            "removed" => Ok(Condition::Removed),
            _ => Err(ApiError::bad_request(format!("invalid condition: \"{s}\""))),
        }
    }
}

/// What a look on disk found of a container.
#[derive(Debug, Clone, Copy)]
struct Look {
    exists: bool,
    running: bool,
    /// The exit code its state holds.
    code: Option<i32>,
}

async fn look(rt: &Runtime, rec: &Record) -> Result<Look, ApiError> {
    let (rt, rec) = (rt.clone(), rec.clone());
    blocking(move || {
        let st = rt.state(&rec).ok();
        Ok(Look {
            exists: rec.dir.exists(),
            running: rt.is_running(&rec),
            code: st.and_then(|s| s.exit_code),
        })
    })
    .await
}

/// Blocks (off the async threads) until a run started elsewhere ends.
async fn through_shim(rt: &Runtime, rec: &Record) -> Result<i32, ApiError> {
    let (rt, rec) = (rt.clone(), rec.clone());
    blocking(move || {
        rt.wait(&rec)
            .map(|e| e.code)
            .map_err(|e| runtime_error(&rec.id, e))
    })
    .await
}

/// Until the next wake-up, or `pause` when a change made elsewhere must be looked for.
async fn pause(rx: &mut watch::Receiver<u64>, pause: Option<Duration>) {
    match pause {
        Some(d) => {
            let _ = tokio::time::timeout(d, rx.changed()).await;
        }
        None => {
            let _ = rx.changed().await;
        }
    }
}

/// Waits until `condition` holds for `rec`; the exit code to answer.
async fn until(
    rt: &Runtime,
    rec: &Record,
    condition: Condition,
    began: Instant,
) -> Result<i32, ApiError> {
    let mut backoff = Backoff::default();
    let mut code = None;
    loop {
        // Subscribed before the look: a change after it wakes the pause below.
        let mut rx = EXITS.changed.subscribe();
        let (exited, watched) = since(&rec.id, began);
        let now = look(rt, rec).await?;
        code = exited.or(now.code).or(code);
        match condition {
            Condition::NotRunning => {
                if !now.running {
                    return Ok(code.unwrap_or(0));
                }
                if !watched {
                    return through_shim(rt, rec).await;
                }
                pause(&mut rx, None).await;
            }
            Condition::NextExit => {
                if let Some(c) = exited {
                    return Ok(c);
                }
                if !now.exists {
                    return Ok(0);
                }
                if now.running && !watched {
                    return through_shim(rt, rec).await;
                }
                pause(&mut rx, (!watched).then(|| backoff.next())).await;
            }
            Condition::Removed => {
                if !now.exists && !watched {
                    return Ok(code.unwrap_or(0));
                }
                if now.exists && now.running && !watched {
                    code = Some(through_shim(rt, rec).await?);
                    continue;
                }
                // A watched run's report comes after its `--rm` removal: it wakes this.
                pause(&mut rx, (!watched).then(|| backoff.next())).await;
            }
        }
    }
}

/// `POST /containers/{id}/wait?condition=`: answers 200 at once (Docker's clients wait for
/// the headers before they start the container) and, once the container is not running
/// (`not-running`, the default), has run and exited (`next-exit`) or is gone (`removed`), the
/// body `{"StatusCode": N}`.
pub(super) async fn wait(
    docker: &Arc<Docker>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let condition = Condition::parse(&query::get(query, "condition").unwrap_or_default())?;
    let began = Instant::now();
    let rt = docker.rt.clone();
    let w = what.to_string();
    let rec = blocking(move || find(&rt, &w)).await?;
    // Counted before the answer's head goes out: the client's start may follow at once.
    let open = Open::new(&rec.id);
    let rt = docker.rt.clone();
    let outcome = async move {
        let _open = open;
        let waited = until(&rt, &rec, condition, began).await;
        let ms = began.elapsed().as_secs_f64() * 1000.0;
        tracing::debug!(id = %rec.id, ?condition, ms, "Docker wait answered");
        let body = match waited {
            Ok(code) => serde_json::json!({ "StatusCode": code }),
            Err(e) => serde_json::json!({ "StatusCode": -1, "Error": { "Message": e.message } }),
        };
        let mut bytes = serde_json::to_vec(&body).unwrap_or_default();
        bytes.push(b'\n');
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from(bytes)))
    };
    let mut resp = Response::new(StreamBody::new(futures::stream::once(outcome)).boxed());
    if let Ok(v) = "application/json".parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_parse_as_dockers() {
        assert_eq!(Condition::parse("").ok(), Some(Condition::NotRunning));
        assert_eq!(
            Condition::parse("not-running").ok(),
            Some(Condition::NotRunning)
        );
        assert_eq!(
            Condition::parse("next-exit").ok(),
            Some(Condition::NextExit)
        );
        assert_eq!(Condition::parse("removed").ok(), Some(Condition::Removed));
        assert!(Condition::parse("gone").is_err());
    }

    #[test]
    fn backoff_doubles_up_to_fifty_ms() {
        let mut b = Backoff::default();
        let got: Vec<u64> = (0..8).map(|_| b.next().as_millis() as u64).collect();
        assert_eq!(got, [1, 2, 4, 8, 16, 32, 50, 50]);
    }

    #[test]
    fn reports_are_seen_by_waits_that_began_before_them() {
        let id = "wait-test-container";
        let before = Instant::now();
        runs().entry(id.into()).or_default().watching += 1;
        assert_eq!(since(id, before), (None, true));
        reported(id, Some(3));
        assert_eq!(since(id, before), (Some(3), false));
        assert_eq!(
            since(id, Instant::now() + Duration::from_secs(1)),
            (None, false)
        );
        assert_eq!(since("another", before), (None, false));
    }

    #[test]
    fn open_waits_are_counted_until_dropped() {
        let id = "wait-test-open";
        let waits = || runs().get(id).map_or(0, |r| r.waits);
        let a = Open::new(id);
        let b = Open::new(id);
        assert_eq!(waits(), 2);
        drop(a);
        assert_eq!(waits(), 1);
        drop(b);
        assert_eq!(waits(), 0);
    }
}
