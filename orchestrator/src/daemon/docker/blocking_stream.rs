//! Bridges between blocking runtime work (the copy helper's pipes, `export`) and hyper's
//! bodies: a `Write` whose bytes become a streamed answer, and a `Read` fed by a request
//! body, so that a large tar never sits whole in the daemon's memory.

use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use tokio::sync::mpsc;

use super::Body;

/// Chunks in flight between the blocking side and the connection.
const DEPTH: usize = 8;

/// The writing end of a streamed answer; dropping it ends the body.
pub(super) struct BodyWriter(mpsc::Sender<Bytes>);

impl io::Write for BodyWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .blocking_send(Bytes::copy_from_slice(buf))
            .map_err(|_| io::Error::from(io::ErrorKind::BrokenPipe))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A body streamed from what `BodyWriter` is given (in a blocking thread).
pub(super) fn body() -> (BodyWriter, Body) {
    let (tx, rx) = mpsc::channel::<Bytes>(DEPTH);
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let chunk = rx.recv().await?;
        Some((Ok::<_, Infallible>(Frame::data(chunk)), rx))
    });
    (BodyWriter(tx), StreamBody::new(stream).boxed())
}

/// The reading end of a request body, for a blocking thread; a body that fails mid-way
/// reads as an error, never as a short success.
pub(super) struct BodyReader {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    cur: Bytes,
}

impl io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                None => return Ok(0),
                Some(chunk) => self.cur = chunk?,
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur[..n]);
        self.cur = self.cur.slice(n..);
        Ok(n)
    }
}

/// Reads `body` in a task of its own, for a blocking reader.
pub(super) fn reader(mut body: Incoming) -> BodyReader {
    let (tx, rx) = mpsc::channel(DEPTH);
    tokio::spawn(async move {
        while let Some(frame) = body.frame().await {
            let chunk = match frame {
                Ok(f) => match f.into_data() {
                    Ok(d) => Ok(d),
                    Err(_) => continue,
                },
                Err(e) => Err(io::Error::other(e)),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                return;
            }
        }
    });
    BodyReader {
        rx,
        cur: Bytes::new(),
    }
}
