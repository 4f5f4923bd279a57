//! A full disk, end to end as root: the instance's `--root` and `--run` live on a small tmpfs of
//! the test's own, which the test fills with a file of zeros at chosen moments. What users rely
//! on: a container never runs on unsupervised (no shim, nobody to stop or remove it), one whose
//! log fills the disk runs on and can still be stopped and removed, the errors name the file
//! and say "No space left on device", and `rm -f` / `down` leave nothing behind once space is
//! freed. The instance runs in a network namespace of its own (harness in `berth_tests::host`).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use berth_tests::host::{self, Host};

/// A small tmpfs of the test's own, unmounted when dropped (even when the test fails). Made
/// before the [`Host`] that lives on it, so that the host's own clean-up (its containers
/// killed by cgroup) runs first.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let st = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("mount");
        assert!(st.success(), "mount tmpfs on {}", dir.path().display());
        SmallDisk { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn filler(&self) -> PathBuf {
        self.path().join("filler")
    }

    /// Fills what is left of the disk with one file of zeros.
    fn fill(&self) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.filler())
            .expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
        // The last blocks a partial chunk could not take.
        while f.write(&chunk[..512]).is_ok_and(|n| n > 0) {}
        assert_eq!(self.available(), 0, "the disk is full");
    }

    /// Gives the filler's space back.
    fn free(&self) {
        let _ = std::fs::remove_file(self.filler());
    }

    fn available(&self) -> u64 {
        nix::sys::statvfs::statvfs(self.path())
            .map(|s| s.blocks_available() * s.fragment_size())
            .unwrap_or(0)
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // The host's clean-up ran first; what it could not know of by its own dir's path (a
        // DNS keeper of networks a failed test never removed, a shim) still names this disk.
        let path = self.path().display().to_string();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&path) {
                // SAFETY: a signal to a process of this test's own instance.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

/// A host whose instance lives on `disk`, with the busybox image imported.
fn host_on(tag: &str, disk: &SmallDisk) -> Host {
    host::require_tools();
    let mut h = Host::new(tag);
    h.root = disk.path().join("root");
    h.run = disk.path().join("run");
    h.busybox_image();
    h
}

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The container's state file as JSON.
fn state(h: &Host, id: &str) -> serde_json::Value {
    let data =
        std::fs::read(h.root.join("containers").join(id).join("state.json")).expect("state.json");
    serde_json::from_slice(&data).expect("state json")
}

fn alive(pid: i32) -> bool {
    pid > 0
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().next())
                .is_some_and(|st| !matches!(st, "Z" | "X"))
        })
}

fn within(secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    check()
}

/// The processes in the container's cgroups (any hierarchy).
fn cgroup_procs(id: &str) -> Vec<String> {
    std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join("berth").join(id).join("cgroup.procs"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|s| s.lines().map(String::from).collect::<Vec<_>>())
        .collect()
}

/// Everything of the instance left behind: the host's own leak check, plus the processes
/// and mounts that name the small disk (the host's check looks for its temp dir's path).
fn leaks(h: &Host, disk: &SmallDisk, ids: &[String]) -> Vec<String> {
    let mut out = h.leaks(ids);
    let path = disk.path().display().to_string();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&path) && cmdline.contains(" shim ") {
            out.push(format!("process: {cmdline}"));
        }
    }
    for m in std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
    {
        let point = m.split(' ').nth(4).unwrap_or_default();
        if m.contains(&path) && point != path {
            out.push(format!("mount: {m}"));
        }
    }
    for id in ids {
        let procs = cgroup_procs(id);
        if !procs.is_empty() {
            out.push(format!("processes of {id}: {procs:?}"));
        }
    }
    out
}

#[test_with::root()]
#[test]
fn a_start_on_a_full_disk_fails_naming_the_state_file_and_leaves_nothing_running() {
    let disk = SmallDisk::mount("32m");
    let h = host_on("dfstart", &disk);
    // berth's init is installed under the root on its first use: done before the disk fills.
    h.ok(&[
        "container",
        "run",
        "--rm",
        "--init",
        "--network",
        "none",
        "busybox:e2e",
        "true",
    ]);
    let id = h
        .ok(&[
            "container",
            "create",
            "--init",
            "--network",
            "none",
            "--name",
            "full",
            "busybox:e2e",
            "sleep",
            "3600",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "container id: {id}");
    disk.fill();
    let out = h.berth(&["container", "start", "full"]);
    let said = text(&out);
    assert!(!out.status.success(), "start on a full disk: {said}");
    assert!(
        said.contains(&format!("{id}/state.json")) && said.contains("No space left on device"),
        "the error names the state file and the cause: {said}"
    );
    // Nothing of the container runs: no process in its cgroup, none unsupervised.
    assert!(
        within(5, || cgroup_procs(&id).is_empty()),
        "the container's processes run on after its start failed: {:?}",
        cgroup_procs(&id)
    );
    disk.free();
    let st = h.ok(&["container", "inspect", "-f", "{{.State.Status}}", "full"]);
    assert_ne!(st.trim(), "running", "inspect: {st}");
    h.ok(&["container", "rm", "-f", "full"]);
    let left = leaks(&h, &disk, &[id]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test_with::root()]
#[test]
fn a_container_whose_log_fills_the_disk_runs_on_stops_and_keeps_a_whole_log() {
    let disk = SmallDisk::mount("32m");
    let h = host_on("dflog", &disk);
    let id = h
        .ok(&[
            "container",
            "run",
            "-d",
            "--network",
            "none",
            "--name",
            "chatty",
            "busybox:e2e",
            "sh",
            "-c",
            "i=0; while :; do i=$((i+1)); echo line$i; done",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "container id: {id}");
    std::thread::sleep(Duration::from_millis(500));
    disk.fill();
    // Lines go on being refused for a while.
    std::thread::sleep(Duration::from_secs(2));
    let st = state(&h, &id);
    let (shim, pid) = (
        st["shim_pid"].as_i64().unwrap_or(0) as i32,
        st["pid"].as_i64().unwrap_or(0) as i32,
    );
    assert!(
        alive(shim) && alive(pid),
        "shim {shim} and container {pid} run on while the disk is full: {st}"
    );
    // Stopped through its shim, on the full disk, in the time a stop takes.
    let started = Instant::now();
    let out = h.berth_within(30, &["container", "stop", "-t", "1", "chatty"]);
    assert!(
        out.status.success(),
        "stop on a full disk ({:?}): {}",
        started.elapsed(),
        text(&out)
    );
    assert!(!alive(pid), "the container {pid} was stopped");
    // Its exit is recorded as what it was, not as a shim that died.
    let st = state(&h, &id);
    assert_eq!(st["status"], "exited", "{st}");
    assert!(st["error"].is_null(), "{st}");
    disk.free();
    // Every line that reached the log is whole: a refused line left no half behind.
    let dir = h.root.join("containers").join(&id);
    let mut lines = 0;
    for name in ["log.json", "log.json.1", "log.json.2"] {
        let Ok(data) = std::fs::read(dir.join(name)) else {
            continue;
        };
        for (n, l) in data.split(|b| *b == b'\n').enumerate() {
            if l.is_empty() {
                continue;
            }
            lines += 1;
            assert!(
                serde_json::from_slice::<serde_json::Value>(l).is_ok(),
                "{name} line {n} is torn: {:?}",
                String::from_utf8_lossy(&l[..l.len().min(200)])
            );
        }
    }
    assert!(lines > 0, "the log has lines");
    h.ok(&["container", "rm", "-f", "chatty"]);
    let left = leaks(&h, &disk, &[id]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

/// What a script's clean-up does (`system shutdown`, then `kill -9` of whatever names the
/// instance's dir, which matches the shims and not the containers), and then nobody ever
/// reads the instance again: its containers must not run on.
#[test_with::root()]
#[test]
fn a_container_dies_with_its_shim_even_when_nobody_looks() {
    let disk = SmallDisk::mount("32m");
    let h = host_on("dfshim", &disk);
    let mut ids = Vec::new();
    let mut pids = Vec::new();
    for (name, user) in [("reaped", None), ("plain", Some("1000"))] {
        let mut args = vec!["container", "run", "-d", "--network", "none"];
        match user {
            Some(u) => args.extend(["--user", u]),
            None => args.push("--init"),
        }
        args.extend(["--name", name, "busybox:e2e", "sleep", "3600"]);
        let id = h.ok(&args).trim().to_string();
        assert_eq!(id.len(), 64, "container id: {id}");
        let st = state(&h, &id);
        let (shim, pid) = (
            st["shim_pid"].as_i64().unwrap_or(0) as i32,
            st["pid"].as_i64().unwrap_or(0) as i32,
        );
        assert!(alive(shim) && alive(pid), "{name}: {st}");
        ids.push(id);
        pids.push((name, shim, pid));
    }
    h.ok(&["system", "shutdown"]);
    for (_, shim, _) in &pids {
        // SAFETY: a signal to this test's own container's shim.
        assert_eq!(unsafe { libc::kill(*shim, libc::SIGKILL) }, 0);
    }
    for (name, _, pid) in &pids {
        assert!(
            within(5, || !alive(*pid)),
            "{name}: the container {pid} runs on without its shim"
        );
    }
    for id in &ids {
        assert!(
            within(5, || cgroup_procs(id).is_empty()),
            "processes of {id} run on: {:?}",
            cgroup_procs(id)
        );
    }
    // Settled when looked at again: the exit is told, the cgroup goes with `rm -f`.
    let st = h.ok(&["container", "inspect", "-f", "{{.State.Status}}", "reaped"]);
    assert_eq!(st.trim(), "exited");
    h.ok(&["container", "rm", "-f", "reaped", "plain"]);
    let left = leaks(&h, &disk, &ids);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

#[test_with::root()]
#[test]
fn a_daemon_that_cannot_start_on_a_full_disk_says_which_file() {
    let disk = SmallDisk::mount("32m");
    let h = host_on("dfdaemon", &disk);
    h.ok(&["system", "shutdown"]);
    assert!(
        within(10, || !h.run.join("berth.sock").exists()
            || std::os::unix::net::UnixStream::connect(
                h.run.join("berth.sock")
            )
            .is_err()),
        "the daemon stopped"
    );
    disk.fill();
    let out = h.berth_within(30, &["network", "ls"]);
    let said = text(&out);
    assert!(
        !out.status.success(),
        "a verb of the daemon's with no daemon able to start: {said}"
    );
    assert!(
        said.contains("berth.pid") && said.contains("No space left on device"),
        "the error names the file and the cause: {said}"
    );
    disk.free();
    h.ok(&["network", "ls"]);
    let left = leaks(&h, &disk, &[]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}

const STACK: &str = r#"
name: dfup
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  a:
    <<: *quick
  b:
    <<: *quick
  c:
    <<: *quick
"#;

#[test_with::root()]
#[test]
fn compose_up_on_a_full_disk_says_why_and_down_leaves_nothing() {
    let disk = SmallDisk::mount("32m");
    let h = host_on("dfup", &disk);
    std::fs::write(h.stack.join("compose.yaml"), STACK).expect("compose");
    h.ok(&["up", "-d", "a"]);
    disk.fill();
    let out = h.berth(&["up", "-d"]);
    let said = text(&out);
    assert!(!out.status.success(), "up on a full disk: {said}");
    assert!(
        said.contains(&h.root.display().to_string()) && said.contains("No space left on device"),
        "the errors name the path and the cause: {said}"
    );
    // Nothing runs that berth does not know of.
    let known: Vec<String> = h.ps_ids();
    for e in std::fs::read_dir("/sys/fs/cgroup/pids/berth")
        .into_iter()
        .flatten()
        .flatten()
    {
        let id = e.file_name().to_string_lossy().into_owned();
        let ours = h.root.join("containers").join(&id).exists();
        assert!(
            !ours || known.contains(&id),
            "a container of this instance runs unlisted: {id}"
        );
    }
    disk.free();
    h.ok(&["up", "-d"]);
    assert_eq!(h.ps().len(), 3, "{:?}", h.ps());
    h.down_clean();
    let left = leaks(&h, &disk, &[]);
    assert!(left.is_empty(), "left behind: {left:#?}");
}
