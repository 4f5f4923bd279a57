//! The daemon API, the one contract between the CLI and the daemon: HTTP/1.1 over
//! `<run>/berth.sock`, JSON bodies, NDJSON for streams.
//!
//! HTTP keeps the socket inspectable with `curl --unix-socket`. Every request, reply and error
//! type of the daemon's routes lives here, by subject, so the daemon and the CLI cannot drift
//! apart; [`client`] has a typed method per route. Where Docker's Engine API has a route for
//! the same thing, its shapes and field names are used ([`network`]), so a Docker-compatible
//! API can serve the same types.

pub mod bridge_options;
pub mod client;
pub mod container;
pub mod error;
pub mod mounts;
pub mod network;
pub mod project;
pub mod system;
pub mod watch;

pub use error::{ApiError, ErrorBody, ErrorKind};
pub use system::{Event, Info};

/// Path prefix of every route, so a later incompatible API can live beside this one.
pub const API_PREFIX: &str = "/v1";

/// File name of the daemon's socket inside the run directory.
pub const SOCKET_NAME: &str = "berth.sock";

/// A name made safe to be one path segment or query value: every byte but letters, digits and
/// `-._~` as `%XX` (a network key may hold anything the user typed).
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The name a path segment or query value stands for ([`encode_segment`] undone; a `%` not
/// followed by two hex digits stays as it is).
pub fn decode_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip() {
        for s in ["app_net-1.x", "a/b c?d&e=%", "ünï", ""] {
            let e = encode_segment(s);
            assert!(!e.contains(['/', '?', '&', ' ']), "{e}");
            assert_eq!(decode_segment(&e), s);
        }
        assert_eq!(decode_segment("%zz%4"), "%zz%4");
    }
}
