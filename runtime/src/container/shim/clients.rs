//! The control socket's clients: the one-line JSON requests (status, kill, stop, wait,
//! resize) and the clients that attach to the container's stdio.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::{Output, Shim};
use crate::container::control::{Request, Response};

/// One attached client.
pub(super) struct Attached {
    pub(super) s: UnixStream,
    /// Its input goes to the container's stdin.
    pub(super) stdin: bool,
    /// Without a tty, output is framed as Docker's: [stream, 0, 0, 0, len u32 BE] + data.
    pub(super) framed: bool,
}

/// Reads one request line, leaving what follows it in the socket; None if it is not one.
fn parse_request(s: &UnixStream) -> Option<Request> {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    // Read byte by byte up to the newline, so that raw input after it stays in the socket.
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match (&*s).read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            _ => return None,
        }
        if line.len() > 4096 {
            return None;
        }
    }
    serde_json::from_slice(&line).ok()
}

/// The client the starter attached with the start (foreground `run -i/-t`, Docker's attach
/// before start): its end of a socket pair, attached before the container runs so that no
/// output is lost, with no connect to the control socket and no request to answer.
pub(super) fn preattached(s: UnixStream, stdin: bool, tty: bool) -> Attached {
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_nonblocking(true);
    Attached {
        s,
        stdin,
        framed: !tty,
    }
}

fn attach_client(s: UnixStream, stdin: bool, tty: bool) -> Option<Attached> {
    send_ref(&s, &Response::Ok);
    Some(preattached(s, stdin, tty))
}

impl Shim {
    /// Answers one request; `attach` and `wait` keep the client for later.
    pub(super) fn handle_client(&mut self, s: UnixStream) {
        let resp = match parse_request(&s) {
            None => Response::Error {
                message: "bad request".into(),
            },
            Some(Request::Attach { stdin, tty }) => {
                if self.exit.is_none()
                    && let Some(a) = attach_client(s, stdin, tty)
                {
                    self.attached.push(a);
                }
                return;
            }
            Some(Request::Resize { rows, cols }) => self.resize(rows, cols),
            Some(Request::Status) => Response::State {
                state: Box::new(self.state.clone()),
            },
            Some(Request::Kill { signal }) => self.signal(signal),
            Some(Request::Stop { signal, timeout }) => {
                let r = self.signal(signal);
                if r == Response::Ok {
                    self.stop_deadline = Some(Instant::now() + Duration::from_secs(timeout));
                }
                r
            }
            Some(Request::Wait) => {
                self.waiters.push(s);
                return;
            }
        };
        send(s, &resp);
    }

    fn resize(&self, rows: u16, cols: u16) -> Response {
        let Some((Output::Pipe { fd, .. }, _)) =
            self.outputs.first().filter(|_| self.rec.config.tty)
        else {
            return Response::Error {
                message: "the container has no tty".into(),
            };
        };
        let ws = libc::winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCSWINSZ reads the struct we own.
        unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCSWINSZ, &ws) };
        Response::Ok
    }

    fn signal(&self, sig: i32) -> Response {
        match Signal::try_from(sig) {
            Ok(s) => match nix::sys::signal::kill(self.pid, s) {
                Ok(()) => Response::Ok,
                Err(e) => Response::Error {
                    message: format!("sending {s} to the container: {e}"),
                },
            },
            Err(_) => Response::Error {
                message: format!("unknown signal {sig}"),
            },
        }
    }
}

/// Sends one JSON line.
pub(super) fn send(s: UnixStream, resp: &Response) {
    send_ref(&s, resp);
}

fn send_ref(mut s: &UnixStream, resp: &Response) {
    if let Ok(mut data) = serde_json::to_vec(resp) {
        data.push(b'\n');
        let _ = s.set_nonblocking(false);
        let _ = s.write_all(&data);
    }
}
