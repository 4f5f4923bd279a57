//! What the CLI does when the reader of its output goes away (`berth ps | head -1`): it ends
//! quietly, killed by SIGPIPE as `ls`, `cat` or the Docker CLI are, instead of panicking in
//! `println!` or printing an error about a broken pipe.
//!
//! SIGPIPE itself stays ignored (Rust's default), so that a write to a socket whose peer is
//! gone (the daemon, a container's stdin) is an error berth reports; only a closed stdout
//! ends the process. That is decided by asking the kernel whether stdout's reader is gone
//! (POLLERR on the write end of a pipe or socket with no reader), not by the error's kind.

use std::os::fd::BorrowedFd;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

/// Installs the CLI's panic hook: a panic while stdout's reader is gone (`println!` failing
/// with EPIPE) ends the process quietly; any other panic is reported as before. Not for the
/// daemon or the shim, whose output is a log.
pub fn install() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        exit_if_stdout_closed();
        default(info);
    }));
}

/// Whether the reader of stdout is gone (a pipe or socket whose other end is closed).
pub fn stdout_closed() -> bool {
    // SAFETY: fd 1 stays open for the life of the process; it is only polled here.
    let fd = unsafe { BorrowedFd::borrow_raw(libc::STDOUT_FILENO) };
    let mut fds = [PollFd::new(fd, PollFlags::empty())];
    match poll(&mut fds, PollTimeout::ZERO) {
        Ok(n) if n > 0 => fds[0]
            .revents()
            .is_some_and(|r| r.intersects(PollFlags::POLLERR)),
        _ => false,
    }
}

/// Ends the process as a write to a closed pipe does by default (killed by SIGPIPE, status
/// 141 in a shell) when stdout's reader is gone; returns otherwise.
pub fn exit_if_stdout_closed() {
    if !stdout_closed() {
        return;
    }
    // SAFETY: restoring the default disposition and raising the signal for this process
    // touches no memory; the process ends here.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        libc::raise(libc::SIGPIPE);
    }
    std::process::exit(128 + libc::SIGPIPE);
}
