//! Docker's hijacked connections (attach, exec start): the HTTP request turns into a raw
//! two-way stream. A client that asks for it (`Connection: Upgrade`, `Upgrade: tcp`, as the
//! docker CLI and docker-py do) gets `101 UPGRADED` and the bare connection; one that does not
//! gets `200` and the output as the body, without stdin (Docker's old form).
//!
//! Without a TTY the output is Docker's multiplexed frames (8-byte header: the stream, 1
//! stdout or 2 stderr, three zero bytes and the big-endian length, then the data); with one it
//! is the terminal's raw bytes.

use std::convert::Infallible;
use std::pin::Pin;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;
use hyper::header::{CONNECTION, CONTENT_TYPE, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::Body;

/// Content type of a multiplexed (framed) stream.
pub(super) const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
/// Content type of a raw (TTY) stream.
pub(super) const RAW: &str = "application/vnd.docker.raw-stream";

/// Stream byte of stdout in a frame header.
pub(super) const STDOUT: u8 = 1;
/// Stream byte of stderr in a frame header.
pub(super) const STDERR: u8 = 2;

/// The content type Docker names a stream with: multiplexed without a TTY from API 1.42 on,
/// raw otherwise (older clients were told raw for both).
pub(super) fn content_type<B>(tty: bool, req: &Request<B>) -> &'static str {
    let asked = super::version::split(req.uri().path())
        .and_then(|(v, _)| v)
        .unwrap_or(super::version::MAX_API);
    let parts: Vec<u64> = asked.split('.').map(|p| p.parse().unwrap_or(0)).collect();
    let new_enough =
        parts.first().copied().unwrap_or(0) > 1 || parts.get(1).copied().unwrap_or(0) >= 42;
    if !tty && new_enough { MULTIPLEXED } else { RAW }
}

/// One frame of a multiplexed stream.
pub(super) fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + data.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// The client's side of a hijacked connection: what it sends (its stdin; none in the
/// non-upgraded form) and where its output goes.
pub(super) struct Client {
    pub(super) input: Option<Pin<Box<dyn AsyncRead + Send>>>,
    pub(super) output: Pin<Box<dyn AsyncWrite + Send>>,
}

/// Answers a request to be hijacked, and spawns `session` with the client once the answer is
/// out (for an upgrade, once hyper hands over the connection).
pub(super) fn hijack<B, F, Fut>(
    mut req: Request<B>,
    content_type: &'static str,
    session: F,
) -> Response<Body>
where
    F: FnOnce(Client) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    if wants_upgrade(&req) {
        let on_upgrade = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let (r, w) = tokio::io::split(TokioIo::new(upgraded));
                    session(Client {
                        input: Some(Box::pin(r)),
                        output: Box::pin(w),
                    })
                    .await;
                }
                Err(err) => tracing::debug!(%err, "a Docker client left before its upgrade"),
            }
        });
        let mut resp = Response::new(Empty::<Bytes>::new().map_err(|e| match e {}).boxed());
        *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        h.insert(UPGRADE, HeaderValue::from_static("tcp"));
        return resp;
    }
    // No upgrade asked: the output is the body, streamed until the session ends.
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    tokio::spawn(session(Client {
        input: None,
        output: Box::pin(ours),
    }));
    let body = futures::stream::unfold(theirs, |mut r| async move {
        let mut buf = vec![0u8; 32 * 1024];
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, Infallible>(Frame::data(Bytes::from(buf))), r))
            }
        }
    });
    let mut resp = Response::new(StreamBody::new(body).boxed());
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// Whether the client asked to take the connection over (`Upgrade: tcp`).
fn wants_upgrade<B>(req: &Request<B>) -> bool {
    let has = |name, want: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(want)))
        })
    };
    has(CONNECTION, "upgrade") && has(UPGRADE, "tcp")
}

/// Writes all of `data` to the client; false once it is gone.
pub(super) async fn send(output: &mut Pin<Box<dyn AsyncWrite + Send>>, data: &[u8]) -> bool {
    output.write_all(data).await.is_ok() && output.flush().await.is_ok()
}

/// The detach sequence of an attach or exec with stdin: Docker's `detachKeys` (`ctrl-p,ctrl-q`
/// by default; letters, `ctrl-X`, `ctrl-@`, `ctrl-[` ... separated by commas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct DetachKeys {
    keys: Vec<u8>,
    matched: usize,
}

impl DetachKeys {
    /// Docker's default, ctrl-p ctrl-q.
    pub(super) fn default_keys() -> DetachKeys {
        DetachKeys {
            keys: vec![16, 17],
            matched: 0,
        }
    }

    /// Parses Docker's form; an empty one is the default.
    pub(super) fn parse(spec: &str) -> Result<DetachKeys, String> {
        if spec.is_empty() {
            return Ok(DetachKeys::default_keys());
        }
        let mut keys = Vec::new();
        for part in spec.split(',') {
            let key = if let Some(c) = part.strip_prefix("ctrl-") {
                match c.as_bytes() {
                    [b @ b'a'..=b'z'] => b - b'a' + 1,
                    [b'@'] => 0,
                    [b @ b'['..=b'_'] => b - b'@',
                    _ => return Err(format!("Unknown character: '{part}'")),
                }
            } else if part.len() == 1 {
                part.as_bytes()[0]
            } else {
                return Err(format!("Unknown character: '{part}'"));
            };
            keys.push(key);
        }
        Ok(DetachKeys { keys, matched: 0 })
    }

    /// Passes input through: the bytes to forward now (a partial match is held back until it
    /// turns out not to be one) and whether the whole sequence was typed.
    pub(super) fn scan(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    return (out, true);
                }
                continue;
            }
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = 1;
                if self.keys.len() == 1 {
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_carry_stream_and_big_endian_length() {
        assert_eq!(
            frame(STDERR, b"hi\n"),
            vec![2, 0, 0, 0, 0, 0, 0, 3, b'h', b'i', b'\n']
        );
        assert_eq!(frame(STDOUT, &[0u8; 300])[..8], [1, 0, 0, 0, 0, 0, 1, 44]);
    }

    #[test]
    fn detach_keys_parse_and_hold_back_partial_matches() {
        let mut d = DetachKeys::parse("").expect("default");
        assert_eq!(d, DetachKeys::default_keys());
        assert_eq!(d.scan(b"ab\x10"), (b"ab".to_vec(), false));
        assert_eq!(d.scan(b"c"), (b"\x10c".to_vec(), false));
        assert_eq!(d.scan(b"x\x10\x11y"), (b"x".to_vec(), true));
        let mut d = DetachKeys::parse("ctrl-a,q").expect("parse");
        assert_eq!(d.scan(b"\x01\x01q"), (b"\x01".to_vec(), true));
        assert!(DetachKeys::parse("ctrl-é").is_err());
        assert!(DetachKeys::parse("ab").is_err());
    }
}
