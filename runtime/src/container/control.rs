//! The shim's control socket: one JSON request line, one JSON response line per connection.
//! `wait` keeps the connection open until the container exits, so a waiter needs no polling.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::State;

/// Errors talking to a shim.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("connecting to the shim at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("talking to the shim at {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the shim at {path} sent an unreadable answer")]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("the shim refused: {message}")]
    Refused { message: String },
}

/// What a client asks.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    Status,
    Kill {
        signal: i32,
    },
    /// Send `signal`, then SIGKILL after `timeout` seconds.
    Stop {
        signal: i32,
        timeout: u64,
    },
    Wait,
    /// Switch this connection to a live output stream (raw with a tty, framed without);
    /// with `stdin`, what the client writes goes to the container's stdin.
    Attach {
        stdin: bool,
        tty: bool,
    },
    /// Set the tty's window size.
    Resize {
        rows: u16,
        cols: u16,
    },
}

/// What the shim answers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Response {
    Ok,
    State { state: Box<State> },
    Exited { exit_code: i32, oom_killed: bool },
    Error { message: String },
}

/// Sends a request and returns the stream, for a caller that wants to wait on it itself.
pub fn send(sock: &Path, req: &Request) -> Result<UnixStream, ControlError> {
    let mut s = UnixStream::connect(sock).map_err(|source| ControlError::Connect {
        path: sock.to_path_buf(),
        source,
    })?;
    let mut line = serde_json::to_vec(req).map_err(|e| ControlError::Io {
        path: sock.to_path_buf(),
        source: io::Error::other(e),
    })?;
    line.push(b'\n');
    s.write_all(&line).map_err(|source| ControlError::Io {
        path: sock.to_path_buf(),
        source,
    })?;
    Ok(s)
}

/// Reads one response from a stream made by [`send`].
pub fn read_response(sock: &Path, s: UnixStream) -> Result<Response, ControlError> {
    let mut line = String::new();
    BufReader::new(s)
        .read_line(&mut line)
        .map_err(|source| ControlError::Io {
            path: sock.to_path_buf(),
            source,
        })?;
    if line.is_empty() {
        return Err(ControlError::Io {
            path: sock.to_path_buf(),
            source: io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the shim closed the connection",
            ),
        });
    }
    let resp: Response = serde_json::from_str(&line).map_err(|source| ControlError::Parse {
        path: sock.to_path_buf(),
        source,
    })?;
    if let Response::Error { message } = resp {
        return Err(ControlError::Refused { message });
    }
    Ok(resp)
}

/// One request, one answer, with a timeout (none for `wait`).
pub fn call(sock: &Path, req: &Request) -> Result<Response, ControlError> {
    let s = send(sock, req)?;
    if *req != Request::Wait {
        let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    }
    read_response(sock, s)
}
