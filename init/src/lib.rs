//! berth's container init, the PID 1 of a container run with `--init` (Compose `init: true`),
//! as Docker's docker-init (tini) is: it starts the command as its child, forwards every
//! signal it receives to it, reaps every zombie re-parented to it, and exits with the
//! child's status (128 + the signal when a signal killed it).
//!
//! It runs with the container's user, capabilities and seccomp filter already applied, so
//! it needs nothing but the syscalls it makes. `no_std`, no allocator, no libc: a few KiB
//! static file shared by every container through the page cache, a few private pages each.
//!
//! berth passes the fd of its start report pipe in `BERTH_INIT_REPORT_FD` (removed from the
//! child's environment): when the command cannot be executed the failure goes there as
//! `{"code":N,"message":"..."}` (what berth's own executor sends) and the start fails as it
//! would without `--init`; its end of file tells berth the command was executed.

#![cfg_attr(not(test), no_std)]

mod message;
mod run;

pub use message::{Failure, exec_failure};
pub use run::{exit, run};

/// The environment entry that carries the report fd (`NAME=FD`).
pub const REPORT_ENV: &[u8] = b"BERTH_INIT_REPORT_FD=";

/// The search path when the environment has none (Docker's default PATH).
pub const DEFAULT_PATH: &[u8] = b"/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The exit code for a raw wait status: the exit status, or 128 + the terminating signal.
pub fn exit_code(status: u32) -> i32 {
    let sig = (status & 0x7f) as i32;
    if sig == 0 {
        ((status >> 8) & 0xff) as i32
    } else {
        128 + sig
    }
}

/// Where the command starts in `argv`, given its second entry: after `--` when that comes
/// first (`docker-init -- cmd`).
pub fn command_start(second: Option<&[u8]>) -> usize {
    if second == Some(b"--".as_slice()) {
        2
    } else {
        1
    }
}

/// Finds `REPORT_ENV` in `env` (each entry's bytes given by `bytes`), removes it (shifting
/// the rest down) and returns the parsed fd with the new length.
pub fn take_report_fd<'a, T: Copy>(
    env: &mut [T],
    bytes: impl Fn(T) -> &'a [u8],
) -> (Option<i32>, usize) {
    let Some(i) = env.iter().position(|&e| bytes(e).starts_with(REPORT_ENV)) else {
        return (None, env.len());
    };
    let fd = parse_fd(&bytes(env[i])[REPORT_ENV.len()..]);
    env[i..].rotate_left(1);
    (fd, env.len() - 1)
}

fn parse_fd(s: &[u8]) -> Option<i32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut n = 0i32;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n * 10 + i32::from(c - b'0');
    }
    Some(n)
}

/// The value of `PATH` in `env`, or the default.
pub fn search_path<'a, T: Copy>(env: &[T], bytes: impl Fn(T) -> &'a [u8]) -> &'a [u8] {
    env.iter()
        .find_map(|&e| bytes(e).strip_prefix(b"PATH="))
        .unwrap_or(DEFAULT_PATH)
}

/// Calls `f` with each file `cmd` may name, with its NUL, built in `buf`, as execvp(3) tries them:
/// `cmd` itself when it holds a `/`, else `cmd` in each dir of `path` (empty = current dir).
/// Stops at the first `Some` of `f`. Too long candidates are skipped.
pub fn candidates<T>(
    cmd: &[u8],
    path: &[u8],
    buf: &mut [u8],
    mut f: impl FnMut(&[u8]) -> Option<T>,
) -> Option<T> {
    if cmd.contains(&b'/') {
        return join(buf, b"", cmd).and_then(&mut f);
    }
    for dir in path.split(|&c| c == b':') {
        let dir = if dir.is_empty() { b".".as_slice() } else { dir };
        if let Some(r) = join(buf, dir, cmd).and_then(&mut f) {
            return Some(r);
        }
    }
    None
}

/// `dir/name\0` (or `name\0` with no dir) in `buf`, NUL included.
fn join<'b>(buf: &'b mut [u8], dir: &[u8], name: &[u8]) -> Option<&'b [u8]> {
    let sep = usize::from(!dir.is_empty() && !dir.ends_with(b"/"));
    let len = dir.len() + sep + name.len();
    if len + 1 > buf.len() || name.contains(&0) {
        return None;
    }
    buf[..dir.len()].copy_from_slice(dir);
    if sep == 1 {
        buf[dir.len()] = b'/';
    }
    buf[dir.len() + sep..len].copy_from_slice(name);
    buf[len] = 0;
    Some(&buf[..=len])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(3 << 8), 3);
        assert_eq!(exit_code(255 << 8), 255);
        assert_eq!(exit_code(15), 143);
        assert_eq!(exit_code(9 | 0x80), 137); // core dumped
    }

    #[test]
    fn the_command_follows_a_leading_double_dash() {
        assert_eq!(command_start(Some(b"--")), 2);
        assert_eq!(command_start(Some(b"sleep")), 1);
        assert_eq!(command_start(None), 1);
    }

    #[test]
    fn the_report_fd_is_taken_out_of_the_environment() {
        let mut env: Vec<&[u8]> = vec![b"A=1", b"BERTH_INIT_REPORT_FD=7", b"PATH=/bin"];
        let (fd, n) = take_report_fd(&mut env, |e| e);
        assert_eq!((fd, n), (Some(7), 2));
        assert_eq!(&env[..n], &[b"A=1".as_slice(), b"PATH=/bin"]);
        let mut env: Vec<&[u8]> = vec![b"BERTH_INIT_REPORT_FD=x"];
        assert_eq!(take_report_fd(&mut env, |e| e), (None, 0));
        let mut env: Vec<&[u8]> = vec![b"A=1"];
        assert_eq!(take_report_fd(&mut env, |e| e), (None, 1));
    }

    #[test]
    fn candidates_follow_execvp() {
        let mut buf = [0u8; 64];
        let mut seen = Vec::new();
        let r: Option<()> = candidates(b"sh", b"/usr/bin::/bin/", &mut buf, |p| {
            seen.push(String::from_utf8(p[..p.len() - 1].to_vec()).unwrap());
            None
        });
        assert!(r.is_none());
        assert_eq!(seen, ["/usr/bin/sh", "./sh", "/bin/sh"]);
        let got = candidates(b"./run", b"/bin", &mut buf, |p| Some(p.to_vec()));
        assert_eq!(got.as_deref(), Some(b"./run\0".as_slice()));
        let mut small = [0u8; 4];
        assert!(candidates(b"sh", b"/usr/bin", &mut small, |_| Some(())).is_none());
        assert_eq!(search_path(&[b"X=1".as_slice()], |e| e), DEFAULT_PATH);
        assert_eq!(search_path(&[b"PATH=/x".as_slice()], |e| e), b"/x");
    }
}
