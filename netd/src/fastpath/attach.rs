//! The program on a host-side veth's tcx ingress: attach (after whatever else is there, so
//! other tools' programs keep running), find netd's own among the attached ones, detach.
//! tcx keeps the attachment with the device (no file descriptor or pin to hold) and drops it
//! when the device goes.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::prog::PROG_NAME;
use super::sys::{self, ProgInfo};

/// Attaches `prog` to the ingress of `ifindex`; already attached is fine.
pub fn attach(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    match sys::prog_attach(prog, ifindex, sys::TCX_INGRESS) {
        Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
        r => r,
    }
}

/// Detaches `prog` from the ingress of `ifindex`; not attached is fine.
pub fn detach(prog: BorrowedFd<'_>, ifindex: u32) -> io::Result<()> {
    match sys::prog_detach(prog, ifindex, sys::TCX_INGRESS) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r,
    }
}

/// A fast-path program found on a device.
#[derive(Debug)]
pub struct Found {
    /// A file descriptor holding it.
    pub fd: OwnedFd,
    /// Its id, name and maps.
    pub info: ProgInfo,
}

/// netd's programs on the ingress of `ifindex` (by name), in run order.
pub fn ours_on(ifindex: u32) -> io::Result<Vec<Found>> {
    let mut out = Vec::new();
    for id in sys::prog_query(ifindex, sys::TCX_INGRESS)? {
        let fd = match sys::prog_fd_by_id(id) {
            Ok(fd) => fd,
            // Detached and freed since the query.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let info = sys::prog_info(fd.as_fd())?;
        if info.name == PROG_NAME {
            out.push(Found { fd, info });
        }
    }
    Ok(out)
}
