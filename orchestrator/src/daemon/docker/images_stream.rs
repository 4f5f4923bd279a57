//! Bridges between hyper's async bodies and the image store's blocking readers and writers:
//! a request body read as `std::io::Read` (load, import, build contexts) and an answer body
//! fed by a `std::io::Write` or by JSON lines (save, progress streams), so archives of any
//! size pass through without being held in memory.

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::Response;
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;

use super::Body;

/// A request body read from blocking code: chunks arrive through a channel a task fills.
pub(super) struct BodyReader {
    rx: mpsc::Receiver<Result<Bytes, String>>,
    cur: Bytes,
}

impl BodyReader {
    /// Starts reading `body` (on the current tokio runtime).
    pub(super) fn new(body: Incoming) -> BodyReader {
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let item = match frame {
                    Ok(f) => match f.into_data() {
                        Ok(d) => Ok(d),
                        Err(_) => continue,
                    },
                    Err(e) => Err(e.to_string()),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        BodyReader {
            rx,
            cur: Bytes::new(),
        }
    }
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(io::Error::other(e)),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        let _ = self.cur.split_to(n);
        Ok(n)
    }
}

/// The sending end of a streamed answer, for blocking code.
pub(super) struct Sender(mpsc::Sender<Bytes>);

impl Sender {
    /// Sends one JSON document and a newline (Docker's progress streams); false once the client
    /// has gone.
    pub(super) fn json(&self, v: &serde_json::Value) -> bool {
        let mut b = serde_json::to_vec(v).unwrap_or_default();
        b.push(b'\n');
        self.0.blocking_send(Bytes::from(b)).is_ok()
    }
}

impl io::Write for Sender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A 200 answer of `content_type` whose body is what the returned sender sends.
pub(super) fn streamed(content_type: &str) -> (Sender, Response<Body>) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let mut resp = Response::new(StreamBody::new(stream).boxed());
    if let Ok(v) = content_type.parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    (Sender(tx), resp)
}
