//! Shared fixture of the single-container tests: a throwaway berth instance (own --root/--run in a
//! short temp dir), a busybox-static rootfs, and a leak check that proves nothing of ours is
//! left: no container dir, socket, netns pin, mount, cgroup or process.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_runtime::container::{Runtime, RuntimeConfig};

use crate::berth_bin;
use crate::binary::target_dir;

pub mod build_env;

/// One isolated berth instance; Drop removes every container and checks for leftovers.
pub struct Env {
    /// The short temp dir holding everything of the instance; the leak check looks for its path.
    pub tmp: tempfile::TempDir,
    /// The instance's `--root`.
    pub root: PathBuf,
    /// The instance's `--run`.
    pub run: PathBuf,
    /// A busybox-static rootfs for `container run --rootfs`.
    pub rootfs: PathBuf,
}

fn busybox() -> &'static Path {
    Path::new("/bin/busybox")
}

/// A static helper that makes one syscall (`keyctl`, or the one named by its first argument:
/// `io_uring_setup`) and exits 0 when it got EPERM (1 otherwise), built once per test binary
/// with gcc (in scripts/deps.sh).
pub fn keyctl_probe() -> &'static Path {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        static_c_program(
            "berth-syscall-probe",
            "#include <unistd.h>\n#include <sys/syscall.h>\n#include <errno.h>\n#include <stdio.h>\n\
             #include <string.h>\n#ifndef SYS_io_uring_setup\n#define SYS_io_uring_setup 425\n#endif\n\
             int main(int argc,char**argv){const char*w=argc>1?argv[1]:\"keyctl\";long r;\
             if(strcmp(w,\"io_uring_setup\")==0){unsigned char p[120];memset(p,0,sizeof p);\
             r=syscall(SYS_io_uring_setup,1,p);}else r=syscall(SYS_keyctl,0,0,0,0,0);\
             printf(\"%s=%ld errno=%d\\n\",w,r,r<0?errno:0);return (r<0&&errno==EPERM)?0:1;}\n",
        )
    })
}

/// A static C program built once with gcc (scripts/deps.sh installs it) into cargo's scratch
/// dir for integration tests (`<target>/tmp`), so nothing is left in /tmp; reused while `name`
/// exists.
pub fn static_c_program(name: &str, source: &str) -> PathBuf {
    let dir = target_dir()
        .map(|t| t.join("tmp"))
        .unwrap_or_else(std::env::temp_dir);
    let bin = dir.join(name);
    if bin.exists() {
        return bin;
    }
    fs::create_dir_all(&dir).expect("probe dir");
    // Unique per call: tests of one binary (one pid) may build the same program at once.
    static BUILDS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = BUILDS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tag = format!("{}-{n}", std::process::id());
    let src = dir.join(format!("{name}-{tag}.c"));
    fs::write(&src, source).expect("probe source");
    let tmp_bin = dir.join(format!("{name}-{tag}"));
    let st = Command::new("gcc")
        .args(["-static", "-O2", "-o"])
        .arg(&tmp_bin)
        .arg(&src)
        .status()
        .expect("gcc (scripts/deps.sh installs it)");
    assert!(st.success(), "building {name}");
    let _ = fs::remove_file(&src);
    // Atomic: test binaries running side by side may build it at the same time.
    fs::rename(&tmp_bin, &bin).expect("probe in place");
    bin
}

/// Builds a busybox-static rootfs in `dir` (busybox + its applet links, passwd, group).
pub fn make_rootfs(dir: &Path) {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).expect("bin");
    fs::create_dir_all(dir.join("etc")).expect("etc");
    fs::create_dir_all(dir.join("tmp")).expect("tmp");
    fs::copy(busybox(), bin.join("busybox")).expect("copy busybox (apt busybox-static)");
    let list = Command::new(busybox())
        .arg("--list")
        .output()
        .expect("busybox --list");
    for name in String::from_utf8_lossy(&list.stdout).lines() {
        if name != "busybox" && !name.is_empty() {
            let _ = symlink("busybox", bin.join(name));
        }
    }
    fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .expect("passwd");
    fs::write(
        dir.join("etc/group"),
        "root:x:0:\nnogroup:x:65534:\napp:x:1000:\nstaff:x:50:app\n",
    )
    .expect("group");
}

impl Env {
    /// A fresh instance with a busybox rootfs at `self.rootfs`.
    #[allow(
        clippy::new_without_default,
        reason = "making one creates an instance on the machine, not a default value"
    )]
    pub fn new() -> Env {
        // /tmp keeps socket paths short (108-byte limit).
        let tmp = tempfile::Builder::new()
            .prefix("bt")
            .tempdir_in("/tmp")
            .expect("tempdir");
        let root = tmp.path().join("root");
        let run = tmp.path().join("run");
        let rootfs = tmp.path().join("rootfs");
        make_rootfs(&rootfs);
        fs::copy(keyctl_probe(), rootfs.join("bin/kc")).expect("probe");
        Env {
            tmp,
            root,
            run,
            rootfs,
        }
    }

    /// The library API on this instance.
    pub fn runtime(&self) -> Runtime {
        let mut cfg = RuntimeConfig::new(
            self.root.clone(),
            self.run.clone(),
            berth_bin().to_path_buf(),
        );
        cfg.cgroup_parent = self.cgroup_parent();
        Runtime::new(cfg)
    }

    /// This instance's own cgroup parent (`berth-test-<tempdir name>`).
    pub fn cgroup_parent(&self) -> String {
        let name = self
            .tmp
            .path()
            .file_name()
            .map(|n| n.to_string_lossy().into_owned());
        format!("berth-test-{}", name.unwrap_or_default())
    }

    /// `berth --root .. --run .. ARGS`, with a timeout so a bug cannot hang the suite.
    /// These instances share the host's network namespace, so `container run|create` without
    /// a network option gets `--network none` (the product's default, `bridge`, would make a
    /// bridge and an nft table on the host; the tests in their own namespaces cover it).
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut args: Vec<&str> = args.to_vec();
        let networked = args
            .iter()
            .any(|a| a.starts_with("--network") || a.starts_with("--net=") || *a == "--net");
        if args.len() >= 2
            && args[0] == "container"
            && matches!(args[1], "run" | "create")
            && !networked
        {
            args.insert(2, "--network=none");
        }
        let mut c = Command::new("timeout");
        c.arg("60")
            .arg(berth_bin())
            .arg("--root")
            .arg(&self.root)
            .arg("--run")
            .arg(&self.run)
            .args(&args)
            .env("BERTH_CGROUP_PARENT", self.cgroup_parent())
            .stdin(Stdio::null());
        c
    }

    /// Runs `berth ARGS` and returns its output.
    pub fn berth(&self, args: &[&str]) -> Output {
        self.cmd(args).output().expect("running berth")
    }

    /// `berth container run --rm --rootfs ROOTFS EXTRA... -- CMD...`
    pub fn run(&self, opts: &[&str], cmd: &[&str]) -> Output {
        let rootfs = self.rootfs.display().to_string();
        let mut args = vec!["container", "run", "--rootfs", rootfs.as_str()];
        args.extend_from_slice(opts);
        args.extend_from_slice(cmd);
        self.berth(&args)
    }

    /// The ids of the containers this instance still knows (not the dirs of removed ones
    /// still being deleted, `.removing-ID`: a `--rm` run's shim deletes its files after it
    /// has reported the exit).
    pub fn container_ids(&self) -> Vec<String> {
        self.container_entries()
            .into_iter()
            .filter(|n| !n.starts_with('.'))
            .collect()
    }

    /// Every entry of the containers dir, removed ones still being deleted included.
    fn container_entries(&self) -> Vec<String> {
        fs::read_dir(self.root.join("containers"))
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits until `f` holds (or panics after `secs`).
    pub fn eventually(&self, secs: u64, what: &str, mut f: impl FnMut() -> bool) {
        let end = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < end {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("timed out waiting for: {what}");
    }

    /// What of this instance is still on the machine (empty when clean).
    pub fn leaks(&self) -> Vec<String> {
        let mut out = Vec::new();
        let tmp = self.tmp.path().display().to_string();
        for id in self.container_entries() {
            out.push(format!("container dir {id}"));
        }
        for sub in ["c", "netns"] {
            if let Ok(rd) = fs::read_dir(self.run.join(sub)) {
                for e in rd.flatten() {
                    out.push(format!("run/{sub}/{}", e.file_name().to_string_lossy()));
                }
            }
        }
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mounts.lines().filter(|l| l.contains(&tmp)) {
            out.push(format!("mount: {l}"));
        }
        for pid in procs_mentioning(&tmp) {
            out.push(format!("process {pid}"));
        }
        let parent = self.cgroup_parent();
        for h in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let d = h.path().join(&parent);
            if d.exists() {
                out.push(format!("cgroup {}", d.display()));
            }
        }
        out
    }

    /// Asserts that nothing is left, waiting a little for shims that are finishing. The
    /// instance's daemon (it makes every container) is stopped first: it is the instance's,
    /// not a leak, and what it leaves once stopped is.
    pub fn assert_clean(&self) {
        if self.run.join("berth.sock").exists() {
            let _ = self.berth(&["system", "shutdown"]);
        }
        let end = Instant::now() + Duration::from_secs(5);
        loop {
            let leaks = self.leaks();
            if leaks.is_empty() {
                return;
            }
            if Instant::now() > end {
                panic!("left behind: {leaks:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Env {
    /// Removes this instance's (empty) cgroup dirs in every hierarchy, including those an
    /// external runtime made and left (runc keeps the parents).
    pub fn sweep_cgroups(&self) {
        let parent = self.cgroup_parent();
        for h in fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            let d = h.path().join(&parent);
            for c in fs::read_dir(&d).into_iter().flatten().flatten() {
                if c.path().is_dir() {
                    let _ = fs::remove_dir(c.path());
                }
            }
            let _ = fs::remove_dir(&d);
        }
    }
}

/// Pids whose command line or cwd mentions `needle` (shims, containers, helpers).
pub fn procs_mentioning(needle: &str) -> Vec<i32> {
    let me = std::process::id() as i32;
    let mut out = Vec::new();
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let root = fs::read_link(format!("/proc/{pid}/root")).unwrap_or_default();
        if String::from_utf8_lossy(&cmd).contains(needle)
            || root.display().to_string().contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// True when a cgroup dir for container `id` of `env` exists in any hierarchy.
pub fn cgroup_exists(env: &Env, id: &str) -> bool {
    let parent = env.cgroup_parent();
    fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .any(|h| h.path().join(&parent).join(id).exists())
}

impl Drop for Env {
    fn drop(&mut self) {
        let rt = self.runtime();
        for (rec, _) in rt.list() {
            let _ = rt.remove(&rec, true);
        }
        let tmp = self.tmp.path().display().to_string();
        for pid in procs_mentioning(&tmp) {
            // SAFETY: kill(2) on a pid we found running our own test paths.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        self.sweep_cgroups();
        let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mounts.lines() {
            if let Some(mp) = l.split(' ').nth(4)
                && mp.contains(&tmp)
            {
                let _ = nix::mount::umount2(mp, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// stdout as a String.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as a String.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
