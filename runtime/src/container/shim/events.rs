//! The shim's life after the start: one poll loop over the signalfd, the control socket,
//! the container's outputs and the attached clients, until the container exits; then the
//! exit is recorded and reported.

use std::fs;
use std::os::fd::AsFd;
use std::time::{Duration, Instant, SystemTime};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::Signal;
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

use super::clients::send;
use super::{Output, Shim, StartReport, Status, chain, report};
use crate::container::control::Response;
use crate::container::oci_runtime;

impl Shim {
    /// Serves the container until it exits and its output is drained, then records the exit.
    pub(super) fn run(&mut self) {
        while self.exit.is_none() {
            self.step(None);
        }
        // The init is gone, so is its pid namespace: outputs reach EOF soon.
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.outputs.is_empty() && Instant::now() < deadline {
            self.step(Some(deadline));
        }
        self.flush_partial();
        // The output is all out: attached clients (`docker run`, `run -i`) see its end now
        // rather than once the exit's bookkeeping (removal, report, cgroup and netns
        // teardown) is done and the shim exits.
        self.attached.clear();
        self.finish();
    }

    /// One poll round: input, stop deadline, output, signals, new clients, in that order.
    fn step(&mut self, until: Option<Instant>) {
        let wake = [self.stop_deadline, until].into_iter().flatten().min();
        let timeout = match wake {
            Some(t) => {
                let ms = t.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::try_from(ms.min(60_000) as i32).unwrap_or(PollTimeout::NONE)
            }
            None => PollTimeout::NONE,
        };
        let (sig_ready, lis_ready, out_ready) = {
            let mut fds = vec![
                PollFd::new(self.sigfd.as_fd(), PollFlags::POLLIN),
                PollFd::new(self.listener.as_fd(), PollFlags::POLLIN),
            ];
            for (Output::Pipe { fd, .. }, _) in &self.outputs {
                fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
            }
            let n_out = self.outputs.len();
            for a in &self.attached {
                let ev = if a.stdin {
                    PollFlags::POLLIN
                } else {
                    PollFlags::empty()
                };
                fds.push(PollFd::new(a.s.as_fd(), ev));
            }
            if poll(&mut fds, timeout).is_err() {
                return;
            }
            let ready = |f: &PollFd| f.revents().is_some_and(|r| !r.is_empty());
            let in_ready: Vec<PollFlags> = fds[2 + n_out..]
                .iter()
                .map(|f| f.revents().unwrap_or(PollFlags::empty()))
                .collect();
            (
                ready(&fds[0]),
                ready(&fds[1]),
                (
                    fds[2..2 + n_out].iter().map(ready).collect::<Vec<_>>(),
                    in_ready,
                ),
            )
        };
        let (out_ready, in_ready) = out_ready;
        for i in (0..in_ready.len()).rev() {
            let r = in_ready[i];
            if r.contains(PollFlags::POLLIN) && self.attached[i].stdin {
                self.read_input(i);
            }
            // Gone for good (not just a half-close of its input): forget it, or poll would
            // keep reporting the hang-up.
            if r.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                let a = self.attached.remove(i);
                if a.stdin && !self.rec.config.tty {
                    self.stdin_w = None;
                }
            }
        }
        if let Some(t) = self.stop_deadline
            && Instant::now() >= t
        {
            tracing::info!(id = %self.rec.id, "grace period over, sending SIGKILL");
            let _ = nix::sys::signal::kill(self.pid, Signal::SIGKILL);
            self.stop_deadline = None;
        }
        let mut closed = Vec::new();
        for (i, r) in out_ready.iter().enumerate() {
            if *r && self.read_output(i) {
                closed.push(i);
            }
        }
        for i in closed.into_iter().rev() {
            self.flush_one(i);
            self.outputs.remove(i);
        }
        if sig_ready {
            self.handle_signals();
        }
        if lis_ready {
            while let Ok((s, _)) = self.listener.accept() {
                self.handle_client(s);
            }
        }
    }

    /// Reaps children (the container's exit) and passes stop signals on to the container.
    fn handle_signals(&mut self) {
        while let Ok(Some(info)) = self.sigfd.read_signal() {
            let sig = info.ssi_signo as i32;
            if sig == libc::SIGCHLD {
                loop {
                    match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                        Ok(WaitStatus::Exited(p, code)) if p == self.pid => {
                            self.exit = Some((code, None));
                        }
                        Ok(WaitStatus::Signaled(p, s, _)) if p == self.pid => {
                            self.exit = Some((128 + s as i32, Some(s as i32)));
                        }
                        Ok(WaitStatus::StillAlive) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
            } else if let Ok(s) = Signal::try_from(sig) {
                // The shim was asked to stop: pass it on to the container.
                let _ = nix::sys::signal::kill(self.pid, s);
            }
        }
    }

    /// Records the exit (status, OOM), removes what the exit leaves, answers the waiters.
    fn finish(&mut self) {
        let (code, sig) = self.exit.unwrap_or((255, None));
        let oom = self.cgroup.oom_killed();
        let code = if oom && sig == Some(libc::SIGKILL) {
            137
        } else {
            code
        };
        let auto_remove = self.rec.config.auto_remove;
        // The container's mounts go before anything that may reuse what they hold (a restart
        // mounting the same upper dir, its anonymous volumes' removal); only a `--rm` run
        // without anonymous volumes leaves that teardown until after its report.
        if !auto_remove || !self.rec.config.anonymous_volumes.is_empty() {
            self.mnt_ns = None;
        }
        // The external runtime's record (runc: and its cgroup dirs) goes once the OOM counter
        // is read, before anyone hears of the exit: the same id may run again at once.
        // runc removes the cgroup with its record: its real-time claim is read first, to
        // go back to the cgroups above it.
        let rt_held = self.external.and_then(|_| self.cgroup.realtime_held());
        if let Some(ort) = self.external
            && let Err(e) = ort.delete(&oci_runtime::state_root(&self.rec.run_dir), &self.rec.id)
        {
            tracing::warn!(error = %e, "deleting the container from the runtime");
        }
        if let Some(held) = rt_held {
            held.give_back();
        }
        // A container that may start again (restart policy, `start`) gets a fresh cgroup at
        // the same path: this one must be gone before the exit is known, or a later removal
        // here would find (and kill) the next run's processes.
        if !auto_remove && let Err(e) = self.cgroup.remove() {
            tracing::warn!(error = %chain(&e), "removing the container cgroup");
        }
        // A shareable container's /dev/shm is cleared when it stops, as Docker unmounts it:
        // the next start mounts a fresh one (joiners still running keep their own bind).
        crate::container::joined::unmount_shm(&self.rec.dir);
        self.state.status = Status::Exited;
        self.state.pid = 0;
        self.state.shim_pid = 0;
        self.state.exit_code = Some(code);
        self.state.exit_signal = sig;
        self.state.oom_killed = oom;
        self.state.finished_at = Some(SystemTime::now());
        if !auto_remove && let Err(e) = self.state.save_exit(&self.rec.state_path()) {
            tracing::warn!(error = %chain(&e), "recording the container's exit");
        }
        // No new clients from here on; serve those already queued (their `wait` is answered
        // below with everyone else's).
        let _ = fs::remove_file(self.rec.socket());
        while let Ok((s, _)) = self.listener.accept() {
            self.handle_client(s);
        }
        tracing::info!(id = %self.rec.id, code, oom, "container exited");
        // `--rm`: the container (name, dir, anonymous volumes) is gone before anyone hears
        // of the exit, so a waiter never sees it (a reader that opened the log keeps its
        // file handle); the deletion of its renamed-aside files and the kernel-side teardown
        // wait until after the report.
        let retired = auto_remove.then(|| {
            let doomed = crate::container::retire_record(&self.rec);
            crate::container::volumes::remove_anonymous(&self.rec);
            doomed
        });
        let resp = Response::Exited {
            exit_code: code,
            oom_killed: oom,
        };
        for w in self.waiters.drain(..) {
            send(w, &resp);
        }
        report(
            self.exit_report.take().as_ref(),
            &StartReport::Exited {
                exit_code: code,
                oom_killed: oom,
            },
        );
        // The rest of `--rm` after the report: unmounting the netns pin waits for an RCU
        // grace period, the cgroup rmdirs take one call per v1 hierarchy and deleting files
        // may wait on the disk, ~1-10 ms that a foreground `run --rm` no longer waits for.
        // Nothing can reuse any of them: the id is gone.
        if let Some(doomed) = retired {
            self.mnt_ns = None;
            if let Err(e) = self.cgroup.remove() {
                tracing::warn!(error = %chain(&e), "removing the container cgroup");
            }
            if let Some(ns) = &self.rec.netns {
                crate::container::namespaces::unpin_netns(ns);
            }
            let _ = fs::remove_dir_all(doomed);
        }
    }
}
