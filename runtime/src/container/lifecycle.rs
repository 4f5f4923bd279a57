//! A created container's life through its shim: starting it (plain, attached, watched),
//! attaching, resizing, signalling, stopping and waiting for its exit.

use super::*;

/// How a container ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExitInfo {
    pub code: i32,
    pub oom_killed: bool,
}

/// Reads the one-line JSON answer that precedes an attach stream, byte by byte so that no
/// stream data is consumed.
fn read_line_raw(sock: &Path, mut s: &UnixStream) -> Result<(), RuntimeError> {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        match s.read(&mut b) {
            Ok(1) if b[0] == b'\n' => break,
            Ok(1) => line.push(b[0]),
            Ok(_) => {
                return Err(ControlError::Io {
                    path: sock.to_path_buf(),
                    source: io::Error::from(io::ErrorKind::UnexpectedEof),
                }
                .into());
            }
            Err(source) => {
                return Err(ControlError::Io {
                    path: sock.to_path_buf(),
                    source,
                }
                .into());
            }
        }
    }
    match serde_json::from_slice::<Response>(&line) {
        Ok(Response::Ok) => Ok(()),
        Ok(Response::Error { message }) => Err(ControlError::Refused { message }.into()),
        _ => Err(ControlError::Refused {
            message: String::from_utf8_lossy(&line).into_owned(),
        }
        .into()),
    }
}

/// `fd` moved to a close-on-exec fd numbered 10 or above, so that the spawn's `dup2`s onto 3
/// and 4 cannot overwrite one of the fds they copy.
fn high_fd(fd: std::os::fd::OwnedFd) -> io::Result<std::os::fd::OwnedFd> {
    let raw = nix::fcntl::fcntl(&fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10))?;
    // SAFETY: F_DUPFD_CLOEXEC returned a new fd that nothing else owns.
    Ok(unsafe { std::os::fd::FromRawFd::from_raw_fd(raw) })
}

/// The exit report of a container started with [`Runtime::start_watched`].
#[derive(Debug)]
pub struct ExitWatch {
    reader: io::BufReader<fs::File>,
}

impl ExitWatch {
    /// The pipe to poll: readable once the container has exited.
    pub fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        std::os::fd::AsFd::as_fd(self.reader.get_ref())
    }

    /// Blocks until the container exits.
    pub fn wait(mut self) -> Result<ExitInfo, RuntimeError> {
        let mut line = String::new();
        let _ = io::BufRead::read_line(&mut self.reader, &mut line);
        match serde_json::from_str::<StartReport>(&line) {
            Ok(StartReport::Exited {
                exit_code,
                oom_killed,
            }) => Ok(ExitInfo {
                code: exit_code,
                oom_killed,
            }),
            _ => Err(RuntimeError::ShimLost),
        }
    }
}

/// Marker file in a container's dir: its last stop was asked for by a user or the engine.
pub const USER_STOPPED: &str = "stopped-by-user";

impl Runtime {
    /// Starts the container through a new shim and returns the container's host pid once it
    /// has exec'd, or the reason it could not.
    pub fn start(&self, rec: &Record) -> Result<i32, RuntimeError> {
        self.spawn_shim(rec, false, None).map(|(pid, _, _)| pid)
    }

    /// Starts the container with a client attached before it runs (foreground `run -i/-t`):
    /// returns the pid, the exit watch and the attached stream (raw bytes with a tty, Docker's
    /// 8-byte framed stdout/stderr without; writes go to the container's stdin if `stdin`).
    pub fn start_attached(
        &self,
        rec: &Record,
        stdin: bool,
    ) -> Result<(i32, ExitWatch, UnixStream), RuntimeError> {
        let (pid, watch, stream) = self.spawn_shim(rec, true, Some(stdin))?;
        match (watch, stream) {
            (Some(w), Some(s)) => Ok((pid, w, s)),
            _ => Err(RuntimeError::ShimSilent {
                id: rec.id.clone(),
                log: rec.dir.join("shim.log"),
            }),
        }
    }

    /// Attaches to a running container's output (and stdin).
    pub fn attach(&self, rec: &Record, stdin: bool) -> Result<UnixStream, RuntimeError> {
        let s = control::send(
            &rec.socket(),
            &Request::Attach {
                stdin,
                tty: rec.config.tty,
            },
        )?;
        read_line_raw(&rec.socket(), &s)?;
        Ok(s)
    }

    /// Sets the window size of a tty container.
    pub fn resize(&self, rec: &Record, rows: u16, cols: u16) -> Result<(), RuntimeError> {
        control::call(&rec.socket(), &Request::Resize { rows, cols })?;
        Ok(())
    }

    /// Like [`Runtime::start`], and also returns a handle that reports the exit, even when
    /// `--rm` removes the container at once (what a foreground `run` needs).
    pub fn start_watched(&self, rec: &Record) -> Result<(i32, ExitWatch), RuntimeError> {
        let (pid, watch, _) = self.spawn_shim(rec, true, None)?;
        match watch {
            Some(w) => Ok((pid, w)),
            None => Err(RuntimeError::ShimSilent {
                id: rec.id.clone(),
                log: rec.dir.join("shim.log"),
            }),
        }
    }

    /// Whether the container's last stop was asked for (`stop`, `kill`), so that a restart
    /// policy leaves it stopped, as Docker does after `docker stop`.
    pub fn stopped_by_user(&self, rec: &Record) -> bool {
        rec.dir.join(USER_STOPPED).exists()
    }

    pub(super) fn mark_user_stop(rec: &Record) {
        let _ = fs::write(rec.dir.join(USER_STOPPED), b"");
    }

    pub(super) fn spawn_shim(
        &self,
        rec: &Record,
        watch: bool,
        attach_stdin: Option<bool>,
    ) -> Result<(i32, Option<ExitWatch>, Option<UnixStream>), RuntimeError> {
        let _ = fs::remove_file(rec.dir.join(USER_STOPPED));
        let st = self.state(rec)?;
        if st.status == Status::Running && self.shim_alive(rec, &st) {
            return Err(RuntimeError::AlreadyRunning { id: rec.id.clone() });
        }
        // The run dir is a tmpfs: after a reboot the pin is gone, make a new (empty) one.
        if let Some(ns) = &rec.netns
            && !namespaces::is_pinned(ns)
        {
            if let Some(parent) = ns.parent() {
                modes::run_dir(&self.cfg.run, parent).map_err(io_err("creating", parent))?;
            }
            namespaces::pin_netns(ns)?;
        }
        self.volumes_ensure_mounted(&rec.volumes)
            .map_err(|e| RuntimeError::Volume(Box::new(e)))?;
        self.resolve_joined(rec)?;
        // Where the shim binds the control socket: only root may reach it.
        modes::run_dir(&self.cfg.run, &rec.run_dir).map_err(io_err("creating", &rec.run_dir))?;
        let spawn_err = |e: io::Error| RuntimeError::SpawnShim {
            exe: self.cfg.shim_exe.clone(),
            source: e,
        };
        let (r, w) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| spawn_err(e.into()))?;
        // A client attached from the start gets one end of a socket pair and the shim the
        // other: no connect to the control socket and no request before the container runs.
        // Both fds the shim gets are moved above 3 and 4, where the spawn copies them.
        let (ours, theirs) = match attach_stdin {
            Some(stdin) => {
                let (a, b) = UnixStream::pair().map_err(spawn_err)?;
                (
                    Some(a),
                    Some((high_fd(b.into()).map_err(spawn_err)?, stdin)),
                )
            }
            None => (None, None),
        };
        let w = high_fd(w).map_err(spawn_err)?;
        let mut starter = crate::spawn::Detached::new(&self.cfg.shim_exe);
        starter
            .arg("shim")
            .arg(&rec.dir)
            .env(shim::SYNC_FD_ENV, "3")
            .env(shim::SYNC_EXIT_ENV, if watch { "1" } else { "0" })
            .fd(w.as_raw_fd(), 3);
        if let Some((fd, stdin)) = &theirs {
            starter
                .env(shim::ATTACH_ENV, format!("4,{}", u8::from(*stdin)))
                .fd(fd.as_raw_fd(), 4);
        }
        if let Some(v) = super::cgroups::export_v1_hierarchies() {
            starter.env(shim::CGROUP_V1_ENV, v);
        }
        // The shim outlives its starter: posix_spawn starts it in a session of its own
        // without copying this (maybe big, multi-threaded) process, the reaper collects its
        // status when it ends, and a starter that dies leaves it to init.
        starter.spawn().map_err(|e| spawn_err(e.into()))?;
        drop(w);
        drop(theirs);
        let mut reader = io::BufReader::new(fs::File::from(r));
        let mut line = String::new();
        let _ = io::BufRead::read_line(&mut reader, &mut line);
        match serde_json::from_str::<StartReport>(&line) {
            Ok(StartReport::Started { pid, .. }) => {
                Ok((pid, watch.then(|| ExitWatch { reader }), ours))
            }
            Ok(StartReport::Failed { code, message }) => {
                if rec.config.auto_remove {
                    remove_files(rec);
                    volumes::remove_anonymous(rec);
                }
                Err(RuntimeError::Start { code, message })
            }
            _ => Err(RuntimeError::ShimSilent {
                id: rec.id.clone(),
                log: rec.dir.join("shim.log"),
            }),
        }
    }

    pub(super) fn shim_alive(&self, rec: &Record, st: &State) -> bool {
        recover::is_shim_of(st.shim_pid, &rec.dir)
    }

    /// Whether the container runs right now (its shim answers).
    pub fn is_running(&self, rec: &Record) -> bool {
        self.state(rec)
            .map(|s| s.status == Status::Running && self.shim_alive(rec, &s))
            .unwrap_or(false)
    }

    /// Sends `signal` to the container's init.
    pub fn kill(&self, rec: &Record, signal: i32) -> Result<(), RuntimeError> {
        Self::mark_user_stop(rec);
        if !self.is_running(rec) {
            return Err(RuntimeError::Start {
                code: 125,
                message: format!("container {} is not running", rec.config.name),
            });
        }
        control::call(&rec.socket(), &Request::Kill { signal })?;
        Ok(())
    }

    /// Stops the container: its stop signal, then SIGKILL after `timeout` seconds (the
    /// container's own stop timeout when `None`). Returns how it ended.
    pub fn stop(
        &self,
        rec: &Record,
        timeout: Option<u64>,
    ) -> Result<Option<ExitInfo>, RuntimeError> {
        match self.stop_begin(rec, timeout)? {
            Some(waiter) => Ok(Some(self.finish_wait(rec, waiter)?)),
            None => Ok(None),
        }
    }

    /// The first half of [`Runtime::stop`]: asks the shim to stop the container and returns
    /// the connection on which its exit will be told (`None` when it is not running). A caller
    /// with an event loop waits for that connection to be readable without holding a thread
    /// for the stop's whole grace period, then calls [`Runtime::finish_wait`].
    pub fn stop_begin(
        &self,
        rec: &Record,
        timeout: Option<u64>,
    ) -> Result<Option<std::os::unix::net::UnixStream>, RuntimeError> {
        Self::mark_user_stop(rec);
        if !self.is_running(rec) {
            return Ok(None);
        }
        // A paused container could not act on the stop signal (nor on SIGKILL under v1).
        if self.is_paused(rec) {
            let _ = self.unpause(rec);
        }
        let waiter = match control::send(&rec.socket(), &Request::Wait) {
            Ok(w) => w,
            // It exited between the check and the connect.
            Err(ControlError::Connect { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // A refusal here means the container is exiting already: the wait tells how.
        let _ = control::call(
            &rec.socket(),
            &Request::Stop {
                signal: rec.config.stop_signal,
                timeout: timeout.unwrap_or(rec.config.stop_timeout),
            },
        );
        Ok(Some(waiter))
    }

    pub(super) fn read_exit(
        &self,
        rec: &Record,
        waiter: std::os::unix::net::UnixStream,
    ) -> Result<ExitInfo, RuntimeError> {
        match control::read_response(&rec.socket(), waiter) {
            Ok(Response::Exited {
                exit_code,
                oom_killed,
            }) => Ok(ExitInfo {
                code: exit_code,
                oom_killed,
            }),
            // The shim went away without answering (killed): the state file is the truth.
            _ => {
                let st = self.state(rec)?;
                Ok(ExitInfo {
                    code: st.exit_code.unwrap_or(255),
                    oom_killed: st.oom_killed,
                })
            }
        }
    }

    /// Opens a wait on a running container; `None` when it is not running.
    pub fn wait_handle(
        &self,
        rec: &Record,
    ) -> Result<Option<std::os::unix::net::UnixStream>, RuntimeError> {
        if !self.is_running(rec) {
            return Ok(None);
        }
        match control::send(&rec.socket(), &Request::Wait) {
            Ok(s) => Ok(Some(s)),
            Err(ControlError::Connect { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Blocks until the container exits and returns how it ended.
    pub fn wait(&self, rec: &Record) -> Result<ExitInfo, RuntimeError> {
        match self.wait_handle(rec)? {
            Some(s) => self.finish_wait(rec, s),
            None => {
                let st = self.state(rec)?;
                Ok(ExitInfo {
                    code: st.exit_code.unwrap_or(0),
                    oom_killed: st.oom_killed,
                })
            }
        }
    }

    /// Completes a wait opened with [`Runtime::wait_handle`].
    pub fn finish_wait(
        &self,
        rec: &Record,
        s: std::os::unix::net::UnixStream,
    ) -> Result<ExitInfo, RuntimeError> {
        self.read_exit(rec, s)
    }
}
