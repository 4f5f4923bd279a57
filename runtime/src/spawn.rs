//! Starting a long-lived process in its own session without copying the caller's address
//! space.
//!
//! The daemon starts a shim per container. A `fork` of the daemon copies its page tables,
//! which grow with its memory (tens of MB with hundreds of containers), so every start would
//! cost more the bigger the stack. `posix_spawn` (glibc clones with `CLONE_VM | CLONE_VFORK`)
//! copies nothing: the new process borrows the caller's memory until it execs. What std's
//! `Command` would need a `pre_exec` closure for (a new session, fds on fixed numbers) is
//! asked of `posix_spawn` itself here.
//!
//! The process is the caller's direct child; [`crate::reaper`] collects its exit status
//! when it ends, so it never lingers as a zombie, and nothing ties its life to the caller's
//! (no parent-death signal): a caller killed leaves it running, adopted by init.

use std::ffi::{CString, OsStr, OsString};
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::RawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Why a [`Detached`] process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// An argument, variable or the program path holds a NUL byte, which exec cannot pass.
    #[error("{what} holds a NUL byte: {value:?}")]
    Nul { what: &'static str, value: OsString },
    /// Preparing the spawn attributes or file actions failed (out of memory, bad fd).
    #[error("posix_spawn: {what}")]
    Setup {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// Two fd copies clash: `fd` is both copied and overwritten.
    #[error("fd {fd} is both copied and the target of another copy")]
    FdClash { fd: RawFd },
    /// The kernel or the exec refused the program (not found, not executable, no memory).
    #[error("starting {program}")]
    Exec {
        program: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl From<SpawnError> for io::Error {
    fn from(e: SpawnError) -> io::Error {
        match e {
            SpawnError::Exec { source, .. } | SpawnError::Setup { source, .. } => source,
            e @ (SpawnError::Nul { .. } | SpawnError::FdClash { .. }) => {
                io::Error::new(io::ErrorKind::InvalidInput, e)
            }
        }
    }
}

/// A process to start in a new session: stdin, stdout and stderr on `/dev/null`, every
/// signal at its default disposition and none blocked, the caller's environment plus the
/// variables set here, and the given fds copied onto fixed numbers.
#[derive(Debug, Clone)]
pub struct Detached {
    program: PathBuf,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    fds: Vec<(RawFd, RawFd)>,
}

impl Detached {
    /// A process that will run `program` (searched in `PATH` when it has no slash, as
    /// `Command` does); its `argv[0]` is `program`.
    pub fn new(program: impl AsRef<Path>) -> Self {
        let program = program.as_ref().to_path_buf();
        Detached {
            args: vec![program.clone().into_os_string()],
            program,
            env: Vec::new(),
            fds: Vec::new(),
        }
    }

    /// Appends an argument.
    pub fn arg(&mut self, a: impl AsRef<OsStr>) -> &mut Self {
        self.args.push(a.as_ref().to_os_string());
        self
    }

    /// Sets `key` in the new process's environment (over the caller's value, if any).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Self {
        let key = key.as_ref().to_os_string();
        self.env.retain(|(k, _)| *k != key);
        self.env.push((key, value.as_ref().to_os_string()));
        self
    }

    /// Makes the caller's fd `from` the new process's fd `to` (`from` may be close-on-exec;
    /// the copy is not). The copies are made after stdio is set to `/dev/null`, in order; a
    /// `from` that is another entry's `to` is refused by [`Detached::spawn`], since that copy
    /// would overwrite the source first.
    pub fn fd(&mut self, from: RawFd, to: RawFd) -> &mut Self {
        self.fds.push((from, to));
        self
    }

    /// Starts the process and hands it to [`crate::reaper`]; returns its pid once it has
    /// exec'd (an exec failure is this call's error).
    pub fn spawn(&self) -> Result<i32, SpawnError> {
        for (i, &(from, _)) in self.fds.iter().enumerate() {
            if self
                .fds
                .iter()
                .enumerate()
                .any(|(j, &(_, to))| j != i && to == from)
            {
                return Err(SpawnError::FdClash { fd: from });
            }
        }
        let program = cstring("the program path", self.program.as_os_str())?;
        let args = self
            .args
            .iter()
            .map(|a| cstring("an argument", a))
            .collect::<Result<Vec<_>, _>>()?;
        let env = self.environment()?;
        let mut argv: Vec<*mut libc::c_char> = args.iter().map(|a| a.as_ptr().cast_mut()).collect();
        argv.push(std::ptr::null_mut());
        let mut envp: Vec<*mut libc::c_char> = env.iter().map(|e| e.as_ptr().cast_mut()).collect();
        envp.push(std::ptr::null_mut());

        let mut actions = FileActions::new()?;
        let null = c"/dev/null";
        actions.open(0, null, libc::O_RDONLY)?;
        actions.open(1, null, libc::O_WRONLY)?;
        actions.open(2, null, libc::O_WRONLY)?;
        for &(from, to) in &self.fds {
            actions.dup2(from, to)?;
        }
        // Only what is handed over: a descriptor the caller holds without close-on-exec (a
        // shell's redirection around `berth run`) would otherwise live on in the shim.
        let first_unused = self.fds.iter().map(|&(_, to)| to + 1).max().unwrap_or(3);
        actions.close_from(first_unused.max(3))?;
        let mut attr = Attr::new()?;
        attr.detach()?;

        let mut pid: libc::pid_t = 0;
        // SAFETY: every pointer is valid for the call: the program, argv and envp are
        // NUL-terminated strings kept alive above, each array ends with a null pointer, and
        // the attributes and file actions are initialised and outlive the call.
        let rc = unsafe {
            libc::posix_spawnp(
                &mut pid,
                program.as_ptr(),
                actions.as_ptr(),
                attr.as_ptr(),
                argv.as_ptr(),
                envp.as_ptr(),
            )
        };
        if rc != 0 {
            return Err(SpawnError::Exec {
                program: self.program.clone(),
                source: io::Error::from_raw_os_error(rc),
            });
        }
        crate::reaper::reap_when_done(pid);
        Ok(pid)
    }

    /// The caller's environment with this process's variables set over it.
    fn environment(&self) -> Result<Vec<CString>, SpawnError> {
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| !self.env.iter().any(|(ours, _)| ours == k))
            .collect();
        vars.extend(self.env.iter().cloned());
        vars.into_iter()
            .map(|(k, v)| {
                let mut kv = k.into_vec();
                kv.push(b'=');
                kv.extend(v.into_vec());
                cstring("an environment variable", OsStr::from_bytes(&kv))
            })
            .collect()
    }
}

fn cstring(what: &'static str, s: &OsStr) -> Result<CString, SpawnError> {
    CString::new(s.as_bytes()).map_err(|_| SpawnError::Nul {
        what,
        value: s.to_os_string(),
    })
}

fn check(what: &'static str, rc: libc::c_int) -> Result<(), SpawnError> {
    if rc == 0 {
        Ok(())
    } else {
        Err(SpawnError::Setup {
            what,
            source: io::Error::from_raw_os_error(rc),
        })
    }
}

/// `posix_spawn_file_actions_t`, destroyed on drop.
struct FileActions(Box<libc::posix_spawn_file_actions_t>);

impl FileActions {
    fn new() -> Result<Self, SpawnError> {
        let mut raw = Box::new(MaybeUninit::<libc::posix_spawn_file_actions_t>::uninit());
        // SAFETY: init writes a valid object into the (boxed, so unmoving) storage.
        check("initialising file actions", unsafe {
            libc::posix_spawn_file_actions_init(raw.as_mut_ptr())
        })?;
        // SAFETY: initialised just above.
        Ok(FileActions(unsafe { raw.assume_init() }))
    }

    fn as_ptr(&self) -> *const libc::posix_spawn_file_actions_t {
        &*self.0
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawn_file_actions_t {
        &mut *self.0
    }

    fn open(
        &mut self,
        fd: RawFd,
        path: &std::ffi::CStr,
        flags: libc::c_int,
    ) -> Result<(), SpawnError> {
        // SAFETY: the actions are initialised; glibc copies the path.
        check("adding an open", unsafe {
            libc::posix_spawn_file_actions_addopen(self.as_mut_ptr(), fd, path.as_ptr(), flags, 0)
        })
    }

    fn close_from(&mut self, fd: RawFd) -> Result<(), SpawnError> {
        // SAFETY: the actions are initialised.
        check("adding a close of every fd from", unsafe {
            libc::posix_spawn_file_actions_addclosefrom_np(self.as_mut_ptr(), fd)
        })
    }

    fn dup2(&mut self, from: RawFd, to: RawFd) -> Result<(), SpawnError> {
        // SAFETY: the actions are initialised.
        check("adding a dup2", unsafe {
            libc::posix_spawn_file_actions_adddup2(self.as_mut_ptr(), from, to)
        })
    }
}

impl Drop for FileActions {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawn_file_actions_destroy(self.as_mut_ptr()) };
    }
}

/// `posix_spawnattr_t`, destroyed on drop.
struct Attr(Box<libc::posix_spawnattr_t>);

impl Attr {
    fn new() -> Result<Self, SpawnError> {
        let mut raw = Box::new(MaybeUninit::<libc::posix_spawnattr_t>::uninit());
        // SAFETY: init writes a valid object into the (boxed, so unmoving) storage.
        check("initialising attributes", unsafe {
            libc::posix_spawnattr_init(raw.as_mut_ptr())
        })?;
        // SAFETY: initialised just above.
        Ok(Attr(unsafe { raw.assume_init() }))
    }

    fn as_ptr(&self) -> *const libc::posix_spawnattr_t {
        &*self.0
    }

    fn as_mut_ptr(&mut self) -> *mut libc::posix_spawnattr_t {
        &mut *self.0
    }

    /// A new session, no signal blocked, and every signal's disposition back to the default
    /// (the caller may ignore some, as Rust programs ignore SIGPIPE; handlers are reset by
    /// exec anyway).
    ///
    /// The default set has every bit set, not `sigfillset`'s: glibc's leaves out the two
    /// signals it keeps for itself (32 and 33), and its posix_spawn sets those to ignored in
    /// the child unless asked for their default; an ignored signal stays ignored through
    /// exec, down to the container's processes.
    fn detach(&mut self) -> Result<(), SpawnError> {
        let mut empty = MaybeUninit::<libc::sigset_t>::uninit();
        let mut all = MaybeUninit::<libc::sigset_t>::uninit();
        // SAFETY: sigemptyset initialises `empty`; `all` is plain bits, every one set; the
        // attributes are initialised and copy the sets.
        unsafe {
            libc::sigemptyset(empty.as_mut_ptr());
            all.as_mut_ptr().write_bytes(0xff, 1);
            check(
                "setting the signal mask",
                libc::posix_spawnattr_setsigmask(self.as_mut_ptr(), empty.as_ptr()),
            )?;
            check(
                "setting default signals",
                libc::posix_spawnattr_setsigdefault(self.as_mut_ptr(), all.as_ptr()),
            )?;
        }
        // SETSID is a `c_short` in libc, the other two `c_int`; the flags fit a short.
        let flags = libc::POSIX_SPAWN_SETSID
            | libc::POSIX_SPAWN_SETSIGMASK as libc::c_short
            | libc::POSIX_SPAWN_SETSIGDEF as libc::c_short;
        // SAFETY: the attributes are initialised.
        check("setting the flags", unsafe {
            libc::posix_spawnattr_setflags(self.as_mut_ptr(), flags)
        })
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: initialised in `new`, destroyed once.
        unsafe { libc::posix_spawnattr_destroy(self.as_mut_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_detached_child_runs_in_its_own_session_with_default_signals_the_fds_and_env_asked() {
        let (r, w) = std::io::pipe().expect("pipe");
        let pid = Detached::new("/bin/sh")
            .arg("-c")
            .arg(concat!(
                "s=/proc/$$; echo \"$(cut -d' ' -f6 $s/stat) $BERTH_SPAWN_TEST ",
                "$(readlink $s/fd/0) $(readlink $s/fd/1) $(readlink $s/fd/2)\" >&5; ",
                "exec grep -E '^Sig(Blk|Ign)' /proc/self/status >&5"
            ))
            .env("BERTH_SPAWN_TEST", "yes")
            .fd(std::os::fd::AsRawFd::as_raw_fd(&w), 5)
            .spawn()
            .expect("spawn");
        drop(w);
        let mut out = String::new();
        std::io::Read::read_to_string(&mut { r }, &mut out).expect("read");
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines.first().copied().unwrap_or_default(),
            format!("{pid} yes /dev/null /dev/null /dev/null"),
            "session id, env and stdio: {out}"
        );
        // Read by the process that replaced the shell (a shell waiting for a child blocks
        // every signal meanwhile). This test process ignores SIGPIPE (every Rust program
        // does); the child must not, nor glibc's own two signals, which its posix_spawn
        // ignores unless told otherwise.
        assert_eq!(
            &lines[1..],
            ["SigBlk:\t0000000000000000", "SigIgn:\t0000000000000000"],
            "{out}"
        );
    }

    #[test]
    fn the_child_gets_only_the_fds_handed_over() {
        // A descriptor of ours without close-on-exec, as a caller's shell would leave one.
        let stray = std::fs::File::open("/dev/null").expect("open");
        let raw = nix::fcntl::fcntl(&stray, nix::fcntl::FcntlArg::F_DUPFD(40)).expect("dup");
        let (r, w) = std::io::pipe().expect("pipe");
        Detached::new("/bin/sh")
            .arg("-c")
            .arg("ls /proc/self/fd >&5")
            .fd(std::os::fd::AsRawFd::as_raw_fd(&w), 5)
            .spawn()
            .expect("spawn");
        drop(w);
        // SAFETY: closing the duplicate made above, which nothing else owns.
        unsafe { libc::close(raw) };
        let mut out = String::new();
        std::io::Read::read_to_string(&mut { r }, &mut out).expect("read");
        let mut fds: Vec<i32> = out.lines().filter_map(|l| l.trim().parse().ok()).collect();
        fds.sort_unstable();
        // 0-2, the handed fd 5, and the directory `ls` reads (3).
        assert_eq!(fds, [0, 1, 2, 3, 5], "{out}");
    }

    #[test]
    fn clashing_fd_copies_are_refused() {
        let e = Detached::new("true")
            .fd(5, 3)
            .fd(3, 4)
            .spawn()
            .expect_err("must fail");
        assert!(matches!(e, SpawnError::FdClash { fd: 3 }), "{e:?}");
    }

    #[test]
    fn a_missing_program_is_an_error_not_a_child() {
        let e = Detached::new("/nonexistent/berth-spawn-test")
            .spawn()
            .expect_err("must fail");
        assert!(
            matches!(&e, SpawnError::Exec { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
            "{e:?}"
        );
    }
}
