//! Collecting the exit status of children that outlive the call that started them (the
//! shims [`crate::spawn::Detached`] starts), so that none lingers as a zombie.
//!
//! One thread per process waits in `epoll` on a pidfd per child: a pidfd turns readable
//! when its process ends, and `waitid(P_PIDFD)` then collects that child's status and no
//! other. Nothing here waits for "any child" (`waitpid(-1)`), so the statuses of children
//! that others wait for (std's and tokio's `Child`) are never taken from them. On a kernel
//! without pidfds (before 5.3) a child gets a thread of its own, blocked in `waitpid` on it.

use std::collections::HashMap;
use std::os::fd::{AsFd, FromRawFd, OwnedFd};
use std::sync::{Mutex, OnceLock, PoisonError};

use nix::errno::Errno;
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::wait::{Id, WaitPidFlag};
use nix::unistd::Pid;

/// The process's reaper: the epoll set and the pidfds in it, by token.
struct Reaper {
    epoll: Epoll,
    watched: Mutex<Watched>,
}

#[derive(Default)]
struct Watched {
    next: u64,
    fds: HashMap<u64, OwnedFd>,
}

static REAPER: OnceLock<Option<Reaper>> = OnceLock::new();

/// Collects `pid`'s exit status once it ends. `pid` must be a child of this process that
/// nobody else waits for and that has not been waited for yet (so its pid is not reused).
pub fn reap_when_done(pid: i32) {
    let pidfd = pidfd_open(pid);
    match (reaper(), pidfd) {
        (Some(r), Ok(fd)) => match r.watch(fd) {
            Ok(()) => {}
            Err(e) => {
                tracing::debug!(pid, error = %e, "watching a child's pidfd; waiting in a thread");
                wait_in_thread(pid);
            }
        },
        (_, Err(e)) => {
            tracing::debug!(pid, error = %e, "no pidfd for a child; waiting in a thread");
            wait_in_thread(pid);
        }
        (None, Ok(_)) => wait_in_thread(pid),
    }
}

fn reaper() -> Option<&'static Reaper> {
    REAPER
        .get_or_init(|| {
            let epoll = match Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC) {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, "creating the reaper's epoll");
                    return None;
                }
            };
            Some(Reaper {
                epoll,
                watched: Mutex::new(Watched::default()),
            })
        })
        .as_ref()
        .filter(|r| r.started())
}

impl Reaper {
    fn lock(&self) -> std::sync::MutexGuard<'_, Watched> {
        self.watched.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the thread once; false when it could not be started.
    fn started(&'static self) -> bool {
        static STARTED: OnceLock<bool> = OnceLock::new();
        *STARTED.get_or_init(|| {
            std::thread::Builder::new()
                .name("berth-reaper".into())
                .spawn(move || self.run())
                .map_err(|e| tracing::warn!(error = %e, "starting the reaper thread"))
                .is_ok()
        })
    }

    fn watch(&self, fd: OwnedFd) -> nix::Result<()> {
        let mut w = self.lock();
        let token = w.next;
        w.next += 1;
        // Added under the lock: the thread finds the token as soon as the event can fire.
        self.epoll
            .add(fd.as_fd(), EpollEvent::new(EpollFlags::EPOLLIN, token))?;
        w.fds.insert(token, fd);
        Ok(())
    }

    fn run(&self) {
        let mut events = vec![EpollEvent::empty(); 64];
        loop {
            let n = match self.epoll.wait(&mut events, EpollTimeout::NONE) {
                Ok(n) => n,
                Err(Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "the reaper's epoll_wait failed");
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    continue;
                }
            };
            for ev in &events[..n] {
                let Some(fd) = self.lock().fds.remove(&ev.data()) else {
                    continue;
                };
                let _ = self.epoll.delete(fd.as_fd());
                // Readable means ended: this returns at once with the child's status.
                while let Err(Errno::EINTR) =
                    nix::sys::wait::waitid(Id::PIDFd(fd.as_fd()), WaitPidFlag::WEXITED)
                {
                }
            }
        }
    }
}

fn pidfd_open(pid: i32) -> nix::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let fd = Errno::result(fd)?;
    // SAFETY: the syscall returned a new fd that nothing else owns; pidfds are close-on-exec.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

fn wait_in_thread(pid: i32) {
    let spawned =
        std::thread::Builder::new()
            .name("berth-reap".into())
            .spawn(move || {
                while let Err(Errno::EINTR) = nix::sys::wait::waitpid(Pid::from_raw(pid), None) {}
            });
    if let Err(e) = spawned {
        tracing::warn!(pid, error = %e, "no thread to wait for a child: it will stay a zombie until this process ends");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// The state letter of `pid` in /proc (`Z` for a zombie), or None once it is gone.
    fn state(pid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        stat.rsplit_once(')')?.1.trim_start().chars().next()
    }

    #[test]
    fn an_ended_child_is_collected_and_others_are_left_to_their_waiters() {
        let mut other = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .expect("sleep");
        let mut ours = Vec::new();
        for _ in 0..3 {
            let pid = crate::spawn::Detached::new("sleep")
                .arg("0.2")
                .spawn()
                .expect("spawn");
            ours.push(pid);
        }
        let limit = Instant::now() + Duration::from_secs(10);
        while ours.iter().any(|p| state(*p).is_some()) {
            assert!(
                Instant::now() < limit,
                "not collected: {:?}",
                ours.iter().map(|p| (p, state(*p))).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // std's child kept its status for its own wait.
        let st = other.wait().expect("wait");
        assert!(st.success(), "{st:?}");
    }
}
