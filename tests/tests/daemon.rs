//! The daemon's lifecycle end to end: the CLI starts it on demand, one daemon per instance, the
//! events stream, and a clean shutdown that leaves no socket or process.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::berth_bin;

/// One isolated berth instance; stops its daemon even when the test fails.
struct Instance {
    _dir: tempfile::TempDir,
    root: PathBuf,
    run: PathBuf,
}

impl Instance {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("root");
        let run = dir.path().join("run");
        Self {
            _dir: dir,
            root,
            run,
        }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(berth_bin());
        cmd.arg("--root")
            .arg(&self.root)
            .arg("--run")
            .arg(&self.run);
        cmd.args(args);
        cmd
    }

    fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("run berth")
    }

    fn daemon_pid(&self) -> Option<i32> {
        std::fs::read_to_string(self.run.join("berth.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let pid = self.daemon_pid();
        let _ = self.cmd(&["system", "shutdown"]).output();
        if let Some(pid) = pid.filter(|p| alive(*p)) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    }
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| s.contains(") Z "))
            .unwrap_or(true)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out: {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn cli_starts_the_daemon_and_one_daemon_serves_an_instance() {
    let inst = Instance::new();
    let out = inst.berth(&["system", "info", "--format", "json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json info");
    assert_eq!(info["root"], inst.root.display().to_string());
    assert_eq!(info["run"], inst.run.display().to_string());
    let pid = info["pid"].as_i64().expect("pid") as i32;
    assert!(alive(pid));

    // A second call reuses the same daemon.
    let again: serde_json::Value =
        serde_json::from_slice(&inst.berth(&["system", "info", "--format", "json"]).stdout)
            .expect("json info");
    assert_eq!(again["pid"].as_i64(), Some(pid as i64));

    // A second daemon for the same run directory refuses, naming the directory.
    let second = inst.berth(&["daemon"]);
    assert!(!second.status.success());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        err.contains("already serves") && err.contains(&inst.run.display().to_string()),
        "{err}"
    );

    let out = inst.berth(&["system", "shutdown"]);
    assert!(out.status.success());
    wait_until("daemon exit", || !alive(pid));
    assert!(!inst.run.join("berth.sock").exists());
    assert!(!inst.run.join("berth.pid").exists());
}

#[test]
fn events_stream_reports_the_daemon_stopping() {
    let inst = Instance::new();
    assert!(inst.berth(&["system", "info"]).status.success());
    let events = inst
        .cmd(&["system", "events", "--format", "json"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn events");
    // Give the stream a moment to subscribe before the event happens.
    std::thread::sleep(Duration::from_millis(300));
    assert!(inst.berth(&["system", "shutdown"]).status.success());
    let out = events.wait_with_output().expect("events output");
    let text = String::from_utf8_lossy(&out.stdout);
    let ev: serde_json::Value = text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .find(|ev: &serde_json::Value| ev["kind"] == "daemon" && ev["action"] == "stop")
        .unwrap_or_else(|| panic!("no daemon stop event in {text:?}"));
    assert!(ev["time"].as_str().is_some_and(|t| t.ends_with('Z')));
}
