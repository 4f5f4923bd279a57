//! `GET /containers/{id}/logs`: the container's json-file log, read and followed by the
//! runtime's own reader (the one `berth container logs` prints with), sent as Docker's
//! multiplexed frames (raw bytes for a TTY container), with `stdout`/`stderr` selection,
//! `tail`, `since`/`until` (Unix seconds, as Docker's clients send them) and `timestamps`.
//! `follow` keeps the answer open until the container stops or the client leaves.

use std::io;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_runtime::container::Runtime;
use berth_runtime::container::logs::{self, LogEntry, LogOptions, LogSink};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response};
use tokio::sync::mpsc;

use super::errors::ApiError;
use super::hijack::{self, STDERR, STDOUT};
use super::{Body, Docker, query};

/// A boolean query parameter as Docker reads them (`1`, `true`: on).
pub(super) fn flag(query: &str, key: &str) -> bool {
    query::get(query, key).is_some_and(|v| !matches!(v.as_str(), "" | "0" | "false" | "False"))
}

/// `tail`: a number of lines; `all`, a negative or unreadable number is everything.
fn tail(query: &str) -> Option<usize> {
    query::get(query, "tail").and_then(|t| t.parse::<i64>().ok().and_then(|n| n.try_into().ok()))
}

/// A time as Docker's clients send it: Unix seconds with an optional fraction (`1700000000`,
/// `1700000000.000000001`); 0 is none.
fn unix_time(query: &str, key: &str) -> Result<Option<SystemTime>, ApiError> {
    let Some(v) = query::get(query, key).filter(|v| !v.is_empty()) else {
        return Ok(None);
    };
    let bad = || ApiError::bad_request(format!("invalid value for {key}: {v}"));
    let (secs, frac) = v.split_once('.').unwrap_or((&v, ""));
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let nanos: u32 = format!("{frac:0<9}").parse().map_err(|_| bad())?;
    if secs == 0 && nanos == 0 {
        return Ok(None);
    }
    Ok(Some(
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_nanos(nanos.into()),
    ))
}

/// Hands log entries to the answer as Docker frames them.
pub(super) struct ChannelSink {
    pub(super) tx: mpsc::Sender<Bytes>,
    pub(super) tty: bool,
    pub(super) stdout: bool,
    pub(super) stderr: bool,
}

impl ChannelSink {
    /// The bytes one entry becomes on the wire, if its stream was asked for.
    pub(super) fn encode(&self, e: &LogEntry, opts: &LogOptions) -> Option<Vec<u8>> {
        let stream = if e.stream == "stderr" { STDERR } else { STDOUT };
        if (stream == STDERR && !self.stderr) || (stream == STDOUT && !self.stdout) {
            return None;
        }
        let mut text = Vec::with_capacity(e.log.len() + 32);
        if opts.timestamps {
            text.extend_from_slice(e.time.as_bytes());
            text.push(b' ');
        }
        text.extend_from_slice(e.log.as_bytes());
        Some(if self.tty {
            text
        } else {
            hijack::frame(stream, &text)
        })
    }
}

impl LogSink for ChannelSink {
    fn entry(&mut self, e: &LogEntry, opts: &LogOptions) -> io::Result<()> {
        let Some(bytes) = self.encode(e, opts) else {
            return Ok(());
        };
        self.tx
            .blocking_send(Bytes::from(bytes))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))
    }
}

/// `GET /containers/{id}/logs`.
pub(super) async fn logs(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    let (stdout, stderr) = (flag(query, "stdout"), flag(query, "stderr"));
    if !stdout && !stderr {
        return Err(ApiError::bad_request(
            "Bad parameters: you must choose at least one stream",
        ));
    }
    let opts = LogOptions {
        tail: tail(query),
        timestamps: flag(query, "timestamps"),
        since: unix_time(query, "since")?,
        until: unix_time(query, "until")?,
    };
    let follow = flag(query, "follow");
    let rt: Runtime = docker.rt.clone();
    let w = what.to_string();
    let rec = tokio::task::spawn_blocking(move || super::containers::find(&rt, &w))
        .await
        .map_err(|e| ApiError::internal(format!("worker task failed: {e}")))??;
    let tty = rec.config.tty;
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let rt = docker.rt.clone();
    tokio::task::spawn_blocking(move || {
        let mut sink = ChannelSink {
            tx: tx.clone(),
            tty,
            stdout,
            stderr,
        };
        let mut alive = || !tx.is_closed() && rt.is_running(&rec);
        let follow: Option<&mut dyn FnMut() -> bool> = if follow { Some(&mut alive) } else { None };
        if let Err(err) = logs::print(&rec.log_path(), &opts, &mut sink, follow) {
            tracing::debug!(%err, "a Docker logs stream ended early");
        }
    });
    let body = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(body).boxed());
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static(hijack::content_type(tty, &req)),
    );
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_tails_read_as_dockers_clients_send_them() {
        let t = |q: &str| unix_time(q, "since");
        assert_eq!(t("").ok(), Some(None));
        assert_eq!(t("since=0").ok(), Some(None));
        assert_eq!(
            t("since=10.5").ok().flatten(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_millis(10_500))
        );
        assert_eq!(
            t("since=1.000000001").ok().flatten(),
            Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(1_000_000_001))
        );
        assert!(t("since=soon").is_err());
        assert!(t("since=1.x").is_err());
        assert_eq!(tail("tail=2"), Some(2));
        assert_eq!(tail("tail=all"), None);
        assert_eq!(tail("tail=-1"), None);
    }

    #[test]
    fn entries_are_framed_without_a_tty_and_raw_with_one() {
        let (tx, _rx) = mpsc::channel(1);
        let e = LogEntry {
            log: "err\n".into(),
            stream: "stderr".into(),
            time: "2026-01-01T00:00:00.000000000Z".into(),
        };
        let mut sink = ChannelSink {
            tx,
            tty: false,
            stdout: true,
            stderr: true,
        };
        let plain = LogOptions::default();
        assert_eq!(
            sink.encode(&e, &plain),
            Some(vec![2, 0, 0, 0, 0, 0, 0, 4, b'e', b'r', b'r', b'\n'])
        );
        sink.tty = true;
        let stamped = LogOptions {
            timestamps: true,
            ..LogOptions::default()
        };
        assert_eq!(
            sink.encode(&e, &stamped).as_deref(),
            Some(&b"2026-01-01T00:00:00.000000000Z err\n"[..])
        );
        sink.stderr = false;
        assert_eq!(sink.encode(&e, &plain), None);
    }
}
