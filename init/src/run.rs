//! The init's life: from the kernel's initial stack to the exit with the child's status.

use core::ffi::CStr;

use syscalls::{Errno, Sysno, syscall};

use crate::message::{Buf, exec_failure};
use crate::{candidates, command_start, exit_code, search_path, take_report_fd};

/// Every signal (the kernel's 64-bit set; SIGKILL and SIGSTOP are never blocked).
const ALL: u64 = !0;
const SIG_SETMASK: usize = 2;
const SIGCHLD: usize = 17;
const F_SETFD: usize = 2;
const FD_CLOEXEC: usize = 1;
const PR_SET_CHILD_SUBREAPER: usize = 36;
const TIOCSPGRP: usize = 0x5410;
const WNOHANG: usize = 1;

/// The bytes of a NUL-terminated string, without the NUL.
///
/// # Safety
/// `p` points to a NUL-terminated string that lives as long as the process.
unsafe fn cstr(p: *const u8) -> &'static [u8] {
    // SAFETY: as the caller promises.
    unsafe { CStr::from_ptr(p.cast()) }.to_bytes()
}

/// Ends the process with `code`.
pub fn exit(code: i32) -> ! {
    loop {
        // SAFETY: exit_group takes an integer and does not return.
        let _ = unsafe { syscall!(Sysno::exit_group, code) };
    }
}

fn write_all(fd: i32, mut data: &[u8]) {
    while !data.is_empty() {
        // SAFETY: the buffer is valid for its length; a bad fd only makes the write fail.
        match unsafe { syscall!(Sysno::write, fd, data.as_ptr(), data.len()) } {
            Ok(0) => return,
            Ok(n) => data = &data[n.min(data.len())..],
            Err(Errno::EINTR) => {}
            Err(_) => return,
        }
    }
}

fn set_mask(set: u64) {
    // SAFETY: changing our own signal mask (8 bytes, the kernel's sigset size).
    let _ = unsafe { syscall!(Sysno::rt_sigprocmask, SIG_SETMASK, &set as *const u64, 0, 8) };
}

/// Runs the init. `sp` is the initial stack pointer: argc, argv, NULL, envp, NULL.
///
/// # Safety
/// `sp` is the stack the kernel handed to the program's entry point, and the process is
/// single-threaded.
pub unsafe fn run(sp: *mut usize) -> ! {
    // Signals are queued from the start (berth execs the init with all of them blocked): a
    // PID 1 drops the ones it neither handles nor blocks.
    set_mask(ALL);
    // SAFETY: the layout of the initial stack (System V ABI).
    let (argc, argv, envp) = unsafe {
        let argc = *sp;
        let argv = sp.add(1).cast::<*const u8>();
        (argc, argv, argv.add(argc + 1).cast_mut())
    };
    // SAFETY: argv holds argc valid strings.
    let args = unsafe { core::slice::from_raw_parts(argv, argc) };
    let start = command_start(args.get(1).map(|&a| unsafe { cstr(a) }));
    if start >= argc {
        write_all(2, b"usage: berth-init [--] COMMAND [ARG]...\n");
        exit(2);
    }
    let mut envc = 0;
    // SAFETY: envp is NULL-terminated.
    while !unsafe { *envp.add(envc) }.is_null() {
        envc += 1;
    }
    // SAFETY: the envp array is ours to rewrite (it lives on our stack).
    let env = unsafe { core::slice::from_raw_parts_mut(envp, envc + 1) };
    let (report, n) = take_report_fd(&mut env[..envc], |e| unsafe { cstr(e) });
    env[n] = core::ptr::null();
    let env = &env[..n];
    if let Some(fd) = report {
        // SAFETY: fcntl on the fd berth left open for us.
        let _ = unsafe { syscall!(Sysno::fcntl, fd, F_SETFD, FD_CLOEXEC) };
    }
    // SAFETY: argument-less and integer-only calls.
    unsafe {
        if syscall!(Sysno::getpid) != Ok(1) {
            // Outside a PID namespace of its own (`--pid host`), orphans still come to us.
            let _ = syscall!(Sysno::prctl, PR_SET_CHILD_SUBREAPER, 1);
        }
    }
    // A fork (clone with only the exit signal): the process is single-threaded, and the
    // child only makes syscalls before it execs or exits.
    // SAFETY: the child gets a copy of our address space and stack.
    match unsafe { syscall!(Sysno::clone, SIGCHLD, 0, 0, 0, 0) } {
        Ok(0) => {
            // SAFETY: argv[start..] is the NULL-terminated command.
            let cmd_argv = unsafe { argv.add(start) };
            let cmd = unsafe { cstr(*cmd_argv) };
            spawn(cmd, cmd_argv, envp, env, report)
        }
        Ok(child) => {
            if let Some(fd) = report {
                // SAFETY: our copy of the report pipe; only the child's exec closes the last.
                let _ = unsafe { syscall!(Sysno::close, fd) };
            }
            forward_and_reap(child)
        }
        Err(e) => {
            let mut m = Buf::<64>::new();
            m.push(b"berth-init: fork: errno ");
            m.push_num(e.into_raw());
            m.push(b"\n");
            write_all(2, m.bytes());
            exit(125)
        }
    }
}

/// The child: its own process group in the foreground of the terminal (as tini does, so
/// that ^C reaches it once), the signal mask emptied, then the command.
fn spawn(
    cmd: &[u8],
    argv: *const *const u8,
    envp: *const *const u8,
    env: &[*const u8],
    report: Option<i32>,
) -> ! {
    // SAFETY: integer arguments and a pointer to a local; failures (no terminal) are fine.
    unsafe {
        let _ = syscall!(Sysno::setpgid, 0, 0);
        if let Ok(pgrp) = syscall!(Sysno::getpgid, 0) {
            let pgrp = pgrp as i32;
            let _ = syscall!(Sysno::ioctl, 0, TIOCSPGRP, &pgrp as *const i32);
        }
    }
    set_mask(0);
    let path = search_path(env, |e| unsafe { cstr(e) });
    let mut buf = [0u8; 4096];
    let mut last = (Errno::ENOENT, Buf::<512>::new());
    let mut found = false;
    let mut denied: Option<Buf<512>> = None;
    let stop: Option<()> = candidates(cmd, path, &mut buf, |file| {
        // SAFETY: file ends in a NUL; argv and envp are NULL-terminated arrays of strings.
        let e = match unsafe { syscall!(Sysno::execve, file.as_ptr(), argv, envp) } {
            Ok(_) => return None,
            Err(e) => e,
        };
        let mut tried = Buf::new();
        tried.push(&file[..file.len() - 1]);
        match e {
            // The file is there: its interpreter is missing. berth found this file before
            // the init ran, so the search ends here as its own exec would.
            Errno::ENOENT if exists(file) => {
                found = true;
                last = (Errno::ENOENT, tried);
                return Some(());
            }
            Errno::ENOENT | Errno::ENOTDIR => last = (Errno::ENOENT, tried),
            Errno::EACCES => denied = Some(tried),
            other => {
                last = (other, tried);
                return Some(());
            }
        }
        None
    });
    let (errno, tried) = match (stop, denied) {
        (None, Some(d)) => (Errno::EACCES, d),
        _ => last,
    };
    let f = exec_failure(cmd, tried.bytes(), errno.into_raw(), found);
    match report {
        Some(fd) => write_all(fd, f.json().bytes()),
        None => {
            let mut m = Buf::<800>::new();
            m.push(b"berth-init: ");
            m.push(f.message.bytes());
            m.push(b"\n");
            write_all(2, m.bytes());
        }
    }
    exit(f.code)
}

/// Whether `file` (NUL-terminated) names an existing file.
fn exists(file: &[u8]) -> bool {
    const AT_FDCWD: isize = -100;
    const F_OK: usize = 0;
    // SAFETY: file ends in a NUL.
    unsafe { syscall!(Sysno::faccessat, AT_FDCWD, file.as_ptr(), F_OK) }.is_ok()
}

/// PID 1's loop: every signal but SIGCHLD goes to the child; on SIGCHLD every zombie is
/// reaped, and once the child is among them the init exits with its status.
fn forward_and_reap(child: usize) -> ! {
    let all = ALL;
    let mut info = [0u64; 16];
    loop {
        // SAFETY: all signals are blocked; the siginfo buffer is 128 bytes.
        let sig = match unsafe {
            syscall!(
                Sysno::rt_sigtimedwait,
                &all as *const u64,
                info.as_mut_ptr(),
                0,
                8
            )
        } {
            Ok(s) => s,
            Err(_) => continue,
        };
        if sig != SIGCHLD {
            // SAFETY: integer arguments.
            let _ = unsafe { syscall!(Sysno::kill, child, sig) };
            continue;
        }
        let mut code = None;
        loop {
            let mut status: u32 = 0;
            // SAFETY: a pointer to a local for the status.
            match unsafe { syscall!(Sysno::wait4, -1isize, &mut status as *mut u32, WNOHANG, 0) } {
                Ok(0) => break,
                Ok(pid) => {
                    if pid == child {
                        code = Some(exit_code(status));
                    }
                }
                Err(Errno::EINTR) => {}
                Err(_) => break,
            }
        }
        if let Some(c) = code {
            exit(c);
        }
    }
}
