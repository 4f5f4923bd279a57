//! A served connection's socket that reads what the client still sends before it closes.
//!
//! hyper closes a connection whose request body the answer left unread (an early refusal: an
//! unknown route, a 501, a 404 before the body was parsed). A client that writes its head and
//! its body in two writes (Go's, so the docker CLI's) may then write the body into a socket
//! already closed: it gets EPIPE ("broken pipe") instead of the answer, which sits unread in
//! its buffer. So when the server is done with the socket it shuts down its own side (the
//! answer is complete) and reads, for a bounded time and amount, until the client closes.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::UnixStream;

/// How long a closing connection waits for the client to finish and close.
const LINGER: Duration = Duration::from_secs(2);
/// How much a closing connection reads and throws away at most.
const LINGER_BYTES: usize = 4 << 20;

/// A Unix stream served by hyper that lingers when dropped (see the module's doc).
pub(crate) struct Lingering(Option<UnixStream>);

impl Lingering {
    pub(crate) fn new(stream: UnixStream) -> Self {
        Self(Some(stream))
    }

    fn stream(&mut self) -> io::Result<&mut UnixStream> {
        self.0
            .as_mut()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl AsyncRead for Lingering {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_read(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl AsyncWrite for Lingering {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_write(cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_flush(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.stream() {
            Ok(s) => Pin::new(s).poll_shutdown(cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(mut stream) = self.0.take() else {
            return;
        };
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let _ = stream.shutdown().await;
            let _ = tokio::time::timeout(LINGER, async {
                let mut buf = vec![0u8; 64 << 10];
                let mut read = 0;
                while read < LINGER_BYTES {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => read += n,
                    }
                }
            })
            .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The client's second write, after the server dropped the connection, still lands, and the
    /// client then reads EOF once the server's side is shut.
    #[tokio::test]
    async fn a_dropped_connection_takes_the_clients_late_write() {
        let (server, mut client) = UnixStream::pair().expect("pair");
        let mut served = Lingering::new(server);
        served.write_all(b"answer").await.expect("answer");
        drop(served);
        tokio::task::yield_now().await;
        client.write_all(&[7u8; 1 << 20]).await.expect("late write");
        let mut got = Vec::new();
        client.read_to_end(&mut got).await.expect("read");
        assert_eq!(got, b"answer");
    }
}
