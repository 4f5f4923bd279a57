//! The end-to-end harness shared by the stack tests: a simulated host (a network namespace)
//! with its own berth instance, a busybox image, and the leak check.
//!
//! Each test runs its berth instance (CLI, daemon, shims, containers) inside a network
//! namespace of its own (entered with `nsenter --net`, so /sys and the cgroup mounts stay the
//! host's), with its own --root/--run. Its bridge, veths, nft table and published ports live
//! and die with that namespace; traffic never leaves it. The guard kills what is left and
//! removes the namespace even when the test fails, and the leak check asserts that `down`
//! itself left nothing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::berth_bin;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Panics naming what is missing. `scripts/deps.sh` installs every tool these tests use, so a
/// missing one is a broken setup, not a reason to pass unrun; root itself is checked by the
/// `#[test_with::root()]` mark on each test, which shows the test as ignored without it.
pub fn require_tools() {
    let mut missing: Vec<&str> = ["ip", "nsenter", "nft", "curl"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !Path::new("/bin/busybox").exists() {
        missing.push("/bin/busybox (busybox-static)");
    }
    assert!(
        missing.is_empty(),
        "missing {missing:?}: run scripts/deps.sh"
    );
}

/// One simulated host: a netns with a berth instance in it.
pub struct Host {
    /// The network namespace's name (`bt-<tag>-<pid>`, under /run/netns).
    pub ns: String,
    /// The temp dir holding everything of the instance; the leak check looks for its path.
    pub dir: tempfile::TempDir,
    /// The instance's `--root` (state, images, containers).
    pub root: PathBuf,
    /// The instance's `--run` (sockets, runtime state).
    pub run: PathBuf,
    /// The working directory berth runs in: where a test writes its compose file.
    pub stack: PathBuf,
}

impl Host {
    /// A fresh namespace (loopback up) and an empty instance; `tag` names the namespace so a
    /// leftover one tells which test made it.
    pub fn new(tag: &str) -> Host {
        let ns = format!("bt-{tag}-{}", std::process::id());
        let ok = Command::new("ip").args(["netns", "add", &ns]).status();
        assert!(ok.is_ok_and(|s| s.success()), "ip netns add {ns}");
        let dir = tempfile::tempdir().expect("tempdir");
        let host = Host {
            root: dir.path().join("root"),
            run: dir.path().join("run"),
            stack: dir.path().join("stack"),
            ns,
            dir,
        };
        host.sh("ip link set lo up");
        std::fs::create_dir_all(&host.stack).expect("stack dir");
        host
    }

    /// Runs a shell command inside the namespace.
    pub fn sh(&self, cmd: &str) -> Output {
        Command::new("timeout")
            .args(["60", "nsenter"])
            .arg(format!("--net=/run/netns/{}", self.ns))
            .args(["sh", "-c", cmd])
            .output()
            .expect("nsenter")
    }

    /// Runs berth inside the namespace, in the stack directory (never longer than 2 minutes:
    /// a hang fails the test instead of blocking the suite).
    pub fn berth(&self, args: &[&str]) -> Output {
        self.berth_within(120, args)
    }

    /// [`Host::berth`] with its own limit, for verbs whose time grows with the data (loading
    /// an example's images is minutes on a loaded 2-core machine, not a hang).
    pub fn berth_within(&self, secs: u32, args: &[&str]) -> Output {
        Command::new("timeout")
            .args([&secs.to_string(), "nsenter"])
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(berth_bin())
            .arg("--root")
            .arg(&self.root)
            .arg("--run")
            .arg(&self.run)
            .args(args)
            .current_dir(&self.stack)
            .output()
            .expect("run berth")
    }

    /// Starts berth in the background, interrupted (SIGINT) after `secs`: for verbs that run
    /// until stopped, such as `logs -f`. Collect with `wait_with_output`.
    pub fn berth_for(&self, secs: u32, args: &[&str]) -> std::process::Child {
        Command::new("timeout")
            .args(["-s", "INT", &secs.to_string(), "nsenter"])
            .arg(format!("--net=/run/netns/{}", self.ns))
            .arg(berth_bin())
            .arg("--root")
            .arg(&self.root)
            .arg("--run")
            .arg(&self.run)
            .args(args)
            .current_dir(&self.stack)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn berth")
    }

    /// Runs berth in the namespace, in the stack directory, with `env` (`KEY=VALUE ...`) in
    /// its environment, which a daemon it starts inherits (a daemon switch given that way);
    /// returns stdout and stderr together, panics with both when it fails.
    pub fn berth_env(&self, env: &str, args: &str) -> String {
        let cmd = format!(
            "{env} {} --root {} --run {} {args}",
            berth_bin().display(),
            self.root.display(),
            self.run.display()
        );
        let o = self.sh(&format!("cd {} && {cmd}", self.stack.display()));
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(o.status.success(), "{cmd}: {text}");
        text
    }

    /// SIGKILLs the instance's daemon, if one runs, and gives it a moment to be gone (the
    /// next command then starts a new one).
    pub fn kill_daemon(&self) {
        let Ok(pid) = std::fs::read_to_string(self.run.join("berth.pid")) else {
            return;
        };
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            std::thread::sleep(std::time::Duration::from_millis(300));
        }
    }

    /// Runs berth and returns stdout and stderr together; panics with both when it fails.
    pub fn ok(&self, args: &[&str]) -> String {
        self.ok_within(120, args)
    }

    /// [`Host::ok`] with its own time limit (see [`Host::berth_within`]).
    pub fn ok_within(&self, secs: u32, args: &[&str]) -> String {
        let out = self.berth_within(secs, args);
        assert!(
            out.status.success(),
            "berth {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    /// A busybox image made from the host's busybox-static, imported as `busybox:e2e`.
    pub fn busybox_image(&self) {
        let rootfs = self.dir.path().join("rootfs");
        let bin = rootfs.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        for d in ["etc", "proc", "sys", "dev", "tmp", "var/www"] {
            std::fs::create_dir_all(rootfs.join(d)).expect("dir");
        }
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("copy busybox");
        for applet in [
            "sh", "sleep", "true", "nslookup", "wget", "httpd", "cat", "echo", "head",
        ] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).expect("symlink");
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").expect("passwd");
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").expect("group");
        std::fs::write(rootfs.join("var/www/index.html"), "hello from web\n").expect("index");
        let tar = self.dir.path().join("rootfs.tar");
        let st = Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(st.success());
        self.ok(&["image", "import", &tar.display().to_string(), "busybox:e2e"]);
    }

    /// Loads the images of `examples/<name>` (built and saved by scripts/prepare-examples.sh,
    /// which scripts/test.sh runs first, so the test itself never needs the network) and
    /// returns the example's compose file, used in place.
    pub fn example(&self, name: &str) -> PathBuf {
        let cache = std::env::var("BERTH_CACHE").unwrap_or_else(|_| "/var/cache/berth-ci".into());
        let tar = Path::new(&cache)
            .join("examples")
            .join(format!("{name}.tar"));
        assert!(
            tar.exists(),
            "{} is missing: run scripts/prepare-examples.sh {name} (scripts/test.sh does)",
            tar.display()
        );
        self.ok_within(
            900,
            &["image", "load", "-q", "-i", &tar.display().to_string()],
        );
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../examples")
            .join(name)
            .join("compose.yaml")
    }

    /// The body of an HTTP GET made from inside the namespace (empty on failure).
    pub fn curl(&self, url: &str) -> String {
        let out = self.sh(&format!("curl -sS --max-time 10 {url}"));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// `ps -a` of the stack in the stack directory, as JSON rows.
    pub fn ps(&self) -> Vec<serde_json::Value> {
        self.ps_of(&[])
    }

    /// The log (stdout and stderr) of `container` once it printed `done`, or after 30 s:
    /// for tests whose container reports what it saw and then idles.
    pub fn logs_when_done(&self, container: &str) -> String {
        let start = std::time::Instant::now();
        loop {
            let out = self.berth(&["container", "logs", container]);
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            if text.contains("done") || start.elapsed() > std::time::Duration::from_secs(30) {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    }

    /// The ids of the project's containers, stopped ones too.
    pub fn ps_ids(&self) -> Vec<String> {
        self.ps()
            .iter()
            .map(|r| r["id"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// `down -t 1`, then checks that no container is listed and nothing of them is left.
    pub fn down_clean(&self) {
        let ids = self.ps_ids();
        self.ok(&["down", "-t", "1"]);
        assert!(self.ps().is_empty());
        let leaks = self.leaks(&ids);
        assert!(leaks.is_empty(), "down left: {leaks:#?}");
    }

    /// `ps -a` as JSON rows, for the stack named by `args` (e.g. `["-f", FILE]`): Compose's
    /// one object per line, read into the short names the tests use (`id`, `name`,
    /// `service`, `image`, `status` the state, `health` null without a check, `exit_code`
    /// null while running, `ports`).
    pub fn ps_of(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let mut all = args.to_vec();
        all.extend(["ps", "-a", "--no-trunc", "--format", "json"]);
        let out = self.ok(&all);
        out.lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| {
                let r: serde_json::Value = serde_json::from_str(l).expect("ps json line");
                let running = r["State"] == "running" || r["State"] == "paused";
                let health = match r["Health"].as_str() {
                    Some("") | None => serde_json::Value::Null,
                    Some(h) => h.into(),
                };
                serde_json::json!({
                    "id": r["ID"],
                    "name": r["Name"],
                    "service": r["Service"],
                    "image": r["Image"],
                    "status": r["State"],
                    "health": health,
                    "exit_code": if running { serde_json::Value::Null } else { r["ExitCode"].clone() },
                    "ports": r["Ports"],
                })
            })
            .collect()
    }

    /// Everything of ours that could outlive `down`, as a list of descriptions.
    pub fn leaks(&self, container_ids: &[String]) -> Vec<String> {
        let mut out = Vec::new();
        let links = String::from_utf8_lossy(&self.sh("ip -o link show").stdout).to_string();
        for l in links.lines() {
            if !l.contains(": lo:") {
                out.push(format!("link: {l}"));
            }
        }
        let tables = String::from_utf8_lossy(&self.sh("nft list tables").stdout).to_string();
        if !tables.trim().is_empty() {
            out.push(format!("nft tables: {tables}"));
        }
        let dir = self.dir.path().display().to_string();
        for m in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
        {
            if m.contains(&dir) {
                out.push(format!("mount: {m}"));
            }
        }
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&dir) && cmdline.contains("shim") {
                out.push(format!("process: {cmdline}"));
            }
        }
        for id in container_ids {
            for ctl in ["memory", "pids", "cpu", "freezer", "unified", "systemd"] {
                let p = format!("/sys/fs/cgroup/{ctl}/berth/{id}");
                if Path::new(&p).exists() {
                    out.push(format!("cgroup: {p}"));
                }
            }
            if self.root.join("containers").join(id).exists() {
                out.push(format!("state: container {id}"));
            }
        }
        out
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        let dir = self.dir.path().display().to_string();
        let _ = self.berth(&["system", "shutdown"]);
        // A test that failed before `down` leaves its containers running, and killing their
        // shims only orphans them (a JVM or a database would run on): kill them by cgroup.
        kill_containers(&self.root);
        // Whatever still runs from this instance: shims, containers' inits, a daemon.
        let _ = Command::new("pkill").args(["-9", "-f", &dir]).status();
        for m in std::fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|m| m.starts_with(&dir))
            .map(String::from)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
        {
            let _ = Command::new("umount").args(["-l", &m]).status();
        }
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

/// Kills every process in the cgroups of the instance's containers and removes the cgroups
/// (every hierarchy: v1 controllers and the unified one).
fn kill_containers(root: &Path) {
    let ids: Vec<String> = std::fs::read_dir(root.join("containers"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    let groups: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|h| ids.iter().map(move |id| h.path().join("berth").join(id)))
        .filter(|g| g.is_dir())
        .collect();
    for g in &groups {
        let procs = std::fs::read_to_string(g.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
    for g in &groups {
        for _ in 0..50 {
            if std::fs::remove_dir(g).is_ok() || !g.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}
