//! The foreground side of a container: signals passed on, the terminal in raw mode, and the
//! attach loop between the terminal and the container's stdio.

use super::*;

/// Passes SIGINT/SIGTERM/SIGHUP/SIGQUIT that reach the CLI on to the container (Docker's
/// default `--sig-proxy`), instead of dying and leaving the container running unasked.
pub(super) struct SigProxy {
    pub(super) fd: nix::sys::signalfd::SignalFd,
}

impl SigProxy {
    pub(super) fn new() -> Option<SigProxy> {
        use nix::sys::signal::{SigSet, Signal};
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            mask.add(s);
        }
        mask.thread_block().ok()?;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &mask,
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
        )
        .ok()?;
        Some(SigProxy { fd })
    }

    pub(super) fn forward(&self, rt: &Runtime, rec: &berth_runtime::container::Record) {
        while let Ok(Some(info)) = self.fd.read_signal() {
            let _ = rt.kill(rec, info.ssi_signo as i32);
        }
    }
}

/// Restores the terminal mode when dropped.
pub(super) struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    pub(super) fn enter(on: bool) -> RawMode {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        if !on {
            return RawMode(None);
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Relays our stdin to an attach stream and its output to our stdout/stderr until the
/// container's side closes.
pub(super) fn attach_loop(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    stream: std::os::unix::net::UnixStream,
    stdin: bool,
) -> anyhow::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read;
    use std::os::fd::AsFd;
    let tty = rec.config.tty;
    let input = std::io::stdin();
    let is_term = nix::unistd::isatty(&input).unwrap_or(false);
    if tty && is_term {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes into the struct we own.
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            let _ = rt.resize(rec, ws.ws_row, ws.ws_col);
        }
    }
    let _raw = RawMode::enter(tty && stdin && is_term);
    let proxy = SigProxy::new();
    let mut stdin_open = stdin;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        let mut fds = vec![PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &proxy {
            fds.push(PollFd::new(p.fd.as_fd(), PollFlags::POLLIN));
        }
        let sig_at = fds.len() - 1;
        if stdin_open {
            fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
        }
        poll(&mut fds, PollTimeout::NONE).context("waiting for the container's output")?;
        let s_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let sig_ready = proxy.is_some() && fds[sig_at].revents().is_some_and(|r| !r.is_empty());
        let i_ready = stdin_open
            && fds
                .last()
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        if sig_ready && let Some(p) = &proxy {
            p.forward(rt, rec);
        }
        if s_ready {
            let n = (&stream).read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            if tty {
                out.write_all(&buf[..n])?;
                out.flush()?;
            } else {
                pending.extend_from_slice(&buf[..n]);
                while pending.len() >= 8 {
                    let len = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]])
                        as usize;
                    if pending.len() < 8 + len {
                        break;
                    }
                    let frame: Vec<u8> = pending.drain(..8 + len).collect();
                    if frame[0] == 2 {
                        err.write_all(&frame[8..])?;
                        err.flush()?;
                    } else {
                        out.write_all(&frame[8..])?;
                        out.flush()?;
                    }
                }
            }
        }
        if i_ready {
            let n = nix::unistd::read(&input, &mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                let _ = stream.shutdown(std::net::Shutdown::Write);
            } else if (&stream).write_all(&buf[..n]).is_err() {
                stdin_open = false;
            }
        }
    }
    Ok(())
}
