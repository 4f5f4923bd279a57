//! One run of a healthcheck inside its container, keeping what the check printed: Docker
//! shows each probe's output (stdout and stderr as one text, its first 4 KiB) in inspect's
//! `State.Health.Log`, where users read why a check fails. A check that overruns its timeout
//! is killed (its process group inside the container, then the exec helper), as Docker kills
//! the probe's exec: a hung check must not pile up a process per interval.

use std::io::Read;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use berth_runtime::container::{ExecConfig, Record, Runtime};

/// The most output a probe keeps (Docker's limit); more is cut and marked with `...`.
pub const MAX_OUTPUT: usize = 4096;

/// How long the output may still flow once the check exited (a child it left behind may
/// hold the pipe open; its later output is not the check's).
const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(1);

/// What one probe gave: its exit code and its output (stdout and stderr interleaved as
/// written, at most [`MAX_OUTPUT`] bytes, `...` after a cut).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub exit_code: i32,
    pub output: String,
}

/// The first [`MAX_OUTPUT`] bytes written, and whether more came.
#[derive(Default)]
struct Kept {
    bytes: Vec<u8>,
    cut: bool,
}

impl Kept {
    fn push(&mut self, data: &[u8]) {
        let room = MAX_OUTPUT.saturating_sub(self.bytes.len());
        let keep = room.min(data.len());
        self.bytes.extend_from_slice(&data[..keep]);
        if keep < data.len() {
            self.cut = true;
        }
    }

    fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.cut {
            out.push_str("...");
        }
        out
    }
}

/// Runs the check `args` once inside `rec` (no stdin, no terminal), stdout and stderr on one
/// pipe as Docker gathers them. Past `timeout` the check is killed and the answer is Docker's
/// `Health check exceeded timeout (T)`.
pub fn run(
    runtime: &Runtime,
    rec: &Record,
    args: Vec<String>,
    timeout: Duration,
) -> Result<Outcome, String> {
    let mut cmd = runtime
        .exec_command(
            rec,
            &ExecConfig {
                args,
                env: Vec::new(),
                user: None,
                working_dir: None,
                tty: false,
                interactive: false,
                detach: false,
            },
        )
        .map_err(|e| e.to_string())?;
    let (mut reader, writer) = std::io::pipe().map_err(|e| format!("output pipe: {e}"))?;
    let writer_err = writer
        .try_clone()
        .map_err(|e| format!("output pipe: {e}"))?;
    cmd.stdin(Stdio::null()).stdout(writer).stderr(writer_err);
    let spawned = cmd.spawn();
    // The command holds the pipe's write ends: gone, the reader sees the end of output.
    drop(cmd);
    let mut child = spawned.map_err(|e| format!("starting the check: {e}"))?;
    let kept = Arc::new(Mutex::new(Kept::default()));
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let k = kept.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => k
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(&buf[..n]),
            }
        }
        let _ = done_tx.send(());
    });
    let helper = child.id();
    let (exited_tx, exited_rx) = std::sync::mpsc::channel::<()>();
    // Sleeps until the check ends or its time is up; then kills it.
    let watchdog = std::thread::spawn(move || match exited_rx.recv_timeout(timeout) {
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            kill_check(helper);
            true
        }
        _ => false,
    });
    let status = child.wait();
    let _ = exited_tx.send(());
    let timed_out = watchdog.join().unwrap_or(false);
    let status = status.map_err(|e| format!("waiting for the check: {e}"))?;
    if timed_out {
        return Err(format!(
            "Health check exceeded timeout ({})",
            go_duration(timeout)
        ));
    }
    let _ = done_rx.recv_timeout(DRAIN_AFTER_EXIT);
    use std::os::unix::process::ExitStatusExt;
    let exit_code = status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
    let output = kept.lock().unwrap_or_else(PoisonError::into_inner).text();
    Ok(Outcome { exit_code, output })
}

/// Kills an overrunning check: the exec helper `helper` is stopped first (so that it cannot
/// fork the check meanwhile), then the process group of each child it forked (the check is a
/// session and group leader inside the container, its own children in its group), then the
/// helper itself.
fn kill_check(helper: u32) {
    use nix::sys::signal::{Signal, kill, killpg};
    use nix::unistd::Pid;
    let Ok(pid) = i32::try_from(helper) else {
        return;
    };
    let helper = Pid::from_raw(pid);
    let _ = kill(helper, Signal::SIGSTOP);
    for child in children(pid) {
        let _ = killpg(Pid::from_raw(child), Signal::SIGKILL);
        let _ = kill(Pid::from_raw(child), Signal::SIGKILL);
    }
    let _ = kill(helper, Signal::SIGKILL);
}

/// The children of process `pid` (from `/proc/PID/task/*/children`).
fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// A duration as Go prints it (`30s`, `1m30s`, `500ms`): Docker's words for a probe that
/// overran its timeout name it so.
pub fn go_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        out.push_str(&format!("{m}m"));
    }
    let frac = d.subsec_nanos();
    if frac == 0 {
        out.push_str(&format!("{s}s"));
    } else {
        let f = format!("{:09}", frac);
        out.push_str(&format!("{s}.{}s", f.trim_end_matches('0')));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_at_4_kib_and_marked() {
        let mut k = Kept::default();
        k.push(b"hello\n");
        assert_eq!(k.text(), "hello\n");
        k.push(&[b'x'; MAX_OUTPUT]);
        let t = k.text();
        assert!(t.ends_with("x..."));
        assert_eq!(t.len(), MAX_OUTPUT + 3);
    }

    #[test]
    fn durations_read_as_go_prints_them() {
        assert_eq!(go_duration(Duration::from_secs(30)), "30s");
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
    }
}
