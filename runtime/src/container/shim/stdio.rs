//! The container's stdin, stdout and stderr: the pipes or pty the container gets, and the
//! moving of its output into the log and to attached clients, and of their input to it.

use std::fs;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::Duration;

use super::{Shim, ShimError, pipe, sys};
use crate::container::oci_runtime;
use crate::container::record::Record;

/// One output of the container the shim reads.
pub(super) enum Output {
    Pipe { fd: OwnedFd, stream: &'static str },
}

/// The container's stdio as the spawn needs it, and the shim's ends of it.
pub(super) struct Stdio {
    /// stdin, stdout, stderr of the container's process (or of the external runtime).
    pub(super) fds: [RawFd; 3],
    /// The child's ends: closed in the shim once the child holds them.
    pub(super) child_side: Vec<OwnedFd>,
    /// The shim's read ends with their partial line.
    pub(super) outputs: Vec<(Output, Vec<u8>)>,
    /// Write end of a `-i` container's stdin pipe (no tty).
    pub(super) stdin_w: Option<OwnedFd>,
    /// The pty slave the init makes the container's controlling terminal.
    pub(super) console: Option<PathBuf>,
    /// An external runtime with a tty: what the runtime itself says when it fails.
    pub(super) runtime_err: Option<OwnedFd>,
    /// An external runtime with a tty: where it sends the pty master.
    pub(super) console_listener: Option<UnixListener>,
}

impl Stdio {
    /// A pty with `tty`, else three pipes; an external runtime with a tty makes the pty
    /// itself and sends the master here, its own stdio only says what it says when it fails.
    pub(super) fn open(rec: &Record, external: bool) -> Result<Stdio, ShimError> {
        match (rec.config.tty, external) {
            (true, true) => Stdio::external_tty(rec),
            (true, false) => Stdio::pty(),
            (false, _) => Stdio::pipes(rec.config.open_stdin),
        }
    }

    fn external_tty(rec: &Record) -> Result<Stdio, ShimError> {
        let null = fs::File::open("/dev/null").map_err(|source| ShimError::Socket {
            path: "/dev/null".into(),
            source,
        })?;
        let (err_r, err_w) = pipe()?;
        set_nonblock(&err_r);
        let fds = [null.as_raw_fd(), err_w.as_raw_fd(), err_w.as_raw_fd()];
        let path = oci_runtime::console_socket(&rec.run_dir);
        let _ = fs::remove_file(&path);
        let console_listener = UnixListener::bind(&path).map_err(|source| ShimError::Socket {
            path: path.clone(),
            source,
        })?;
        Ok(Stdio {
            fds,
            child_side: vec![OwnedFd::from(null), err_w],
            outputs: Vec::new(),
            stdin_w: None,
            console: None,
            runtime_err: Some(err_r),
            console_listener: Some(console_listener),
        })
    }

    fn pty() -> Result<Stdio, ShimError> {
        let pty = nix::pty::openpty(None, None).map_err(sys("opening a pty"))?;
        let console = Some(nix::unistd::ttyname(&pty.slave).map_err(sys("naming the pty"))?);
        let fd = pty.slave.as_raw_fd();
        set_nonblock(&pty.master);
        Ok(Stdio {
            fds: [fd, fd, fd],
            child_side: vec![pty.slave],
            outputs: vec![(
                Output::Pipe {
                    fd: pty.master,
                    stream: "stdout",
                },
                Vec::new(),
            )],
            stdin_w: None,
            console,
            runtime_err: None,
            console_listener: None,
        })
    }

    fn pipes(open_stdin: bool) -> Result<Stdio, ShimError> {
        let (in_r, in_w) = pipe()?;
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let fds = [in_r.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()];
        set_nonblock(&out_r);
        set_nonblock(&err_r);
        Ok(Stdio {
            fds,
            child_side: vec![in_r, out_w, err_w],
            outputs: vec![
                (
                    Output::Pipe {
                        fd: out_r,
                        stream: "stdout",
                    },
                    Vec::new(),
                ),
                (
                    Output::Pipe {
                        fd: err_r,
                        stream: "stderr",
                    },
                    Vec::new(),
                ),
            ],
            stdin_w: open_stdin.then_some(in_w),
            console: None,
            runtime_err: None,
            console_listener: None,
        })
    }

    /// The shim's ends, which the container must not inherit.
    pub(super) fn shim_side(&self) -> impl Iterator<Item = RawFd> + '_ {
        self.outputs
            .iter()
            .map(|(Output::Pipe { fd, .. }, _)| fd.as_raw_fd())
            .chain(self.stdin_w.as_ref().map(|w| w.as_raw_fd()))
    }
}

/// How many chunks one output is read for in one poll round. A container that writes as
/// fast as the shim reads (all the faster once its log refuses lines: a full disk) would
/// otherwise keep the shim in one read loop, deaf to its control socket and signals: no
/// stop, no kill, no removal. The rest is read in the next round.
const READS_PER_ROUND: usize = 16;

impl Shim {
    /// Reads what is available, up to [`READS_PER_ROUND`] chunks; true at EOF.
    pub(super) fn read_output(&mut self, i: usize) -> bool {
        let mut chunk = [0u8; 16384];
        for _ in 0..READS_PER_ROUND {
            let (Output::Pipe { fd, stream }, buf) = &mut self.outputs[i];
            match nix::unistd::read(&*fd, &mut chunk) {
                Ok(0) => return true,
                Ok(n) => {
                    buf.extend_from_slice(&chunk[..n]);
                    let fresh = buf[buf.len() - n..].to_vec();
                    let stream = *stream;
                    self.forward(stream, &fresh);
                    let (_, buf) = &mut self.outputs[i];
                    while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buf.drain(..=pos).collect();
                        let _ = self.log.write(stream, &line);
                    }
                    if buf.len() >= 16384 {
                        let data = std::mem::take(buf);
                        let _ = self.log.write(stream, &data);
                    }
                }
                Err(nix::Error::EAGAIN) => return false,
                Err(nix::Error::EINTR) => {}
                // A pty master reads EIO once the slave side is gone.
                Err(_) => return true,
            }
        }
        false
    }

    /// Copies fresh output to every attached client; drops the ones that fail.
    fn forward(&mut self, stream: &str, data: &[u8]) {
        if self.attached.is_empty() {
            return;
        }
        let mut framed = Vec::with_capacity(data.len() + 8);
        framed.push(if stream == "stderr" { 2 } else { 1 });
        framed.extend_from_slice(&[0, 0, 0]);
        framed.extend_from_slice(&(data.len() as u32).to_be_bytes());
        framed.extend_from_slice(data);
        self.attached.retain_mut(|a| {
            let _ = a.s.set_nonblocking(false);
            let bytes = if a.framed { &framed[..] } else { data };
            let ok = a.s.write_all(bytes).is_ok();
            let _ = a.s.set_nonblocking(true);
            ok
        });
    }

    /// Moves an attached client's input to the container's stdin.
    pub(super) fn read_input(&mut self, i: usize) {
        let mut buf = [0u8; 8192];
        let n = match (&self.attached[i].s).read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(_) => 0,
        };
        if n == 0 {
            // Input ended: a pipe stdin gets EOF; the client keeps receiving output.
            self.attached[i].stdin = false;
            if !self.rec.config.tty {
                self.stdin_w = None;
            }
            return;
        }
        let target = if self.rec.config.tty {
            self.outputs.first().map(|(Output::Pipe { fd, .. }, _)| fd)
        } else {
            self.stdin_w.as_ref()
        };
        if let Some(fd) = target {
            let mut data = &buf[..n];
            while !data.is_empty() {
                match nix::unistd::write(fd, data) {
                    Ok(w) => data = &data[w..],
                    Err(nix::Error::EAGAIN) | Err(nix::Error::EINTR) => {
                        std::thread::sleep(Duration::from_millis(1))
                    }
                    Err(_) => break,
                }
            }
        }
    }

    pub(super) fn flush_one(&mut self, i: usize) {
        let (Output::Pipe { stream, .. }, buf) = &mut self.outputs[i];
        if !buf.is_empty() {
            let data = std::mem::take(buf);
            let stream = *stream;
            let _ = self.log.write(stream, &data);
        }
    }

    pub(super) fn flush_partial(&mut self) {
        for i in 0..self.outputs.len() {
            self.flush_one(i);
        }
    }
}

/// Sets O_NONBLOCK: the event loop reads only what poll said is there.
pub(super) fn set_nonblock(fd: &OwnedFd) {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    if let Ok(bits) = fcntl(fd, FcntlArg::F_GETFL) {
        let _ = fcntl(
            fd,
            FcntlArg::F_SETFL(OFlag::from_bits_truncate(bits) | OFlag::O_NONBLOCK),
        );
    }
}
