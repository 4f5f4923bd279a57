//! The rest of the Docker Engine API's container routes, with the real docker CLI as the
//! oracle: `docker cp` both ways (and tars that try to write outside the container), `top`,
//! `stats --no-stream`, `rename`, `pause`/`unpause`, `update`, `export`, `diff`, `container
//! prune` and `ps --filter name=` as Docker's regular expressions.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// `docker ARGS` with `input` on its stdin (`docker cp - x:/dir` reads a tar there).
fn docker_with_input(docker: &Docker, args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = docker
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input);
    }
    child.wait_with_output().expect("docker output")
}

/// A tar of one entry whose name and link target are written as given (the `tar` crate's
/// own setters refuse `..`, which is the point here).
fn raw_tar(name: &str, kind: tar::EntryType, link: &str, data: &[u8]) -> Vec<u8> {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(if kind == tar::EntryType::Directory {
        0o755
    } else {
        0o644
    });
    h.set_size(data.len() as u64);
    h.set_cksum();
    let mut b = tar::Builder::new(Vec::new());
    b.append(&h, data).expect("tar entry");
    b.into_inner().expect("tar")
}

/// Every file under `dir` (none expected).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default()
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cp_copies_both_ways_and_never_writes_outside_the_container() {
    host::require_tools();
    let h = Host::new("dkcp");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&["run", "-d", "--name", "x", "busybox:e2e", "sleep", "600"]);

    // Host to container and back.
    let work = h.dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    let src = work.join("hello.txt");
    std::fs::write(&src, "hello berth\n").expect("host file");
    docker.ok(&["cp", &src.display().to_string(), "x:/tmp/"]);
    let back = work.join("back.txt");
    docker.ok(&["cp", "x:/tmp/hello.txt", &back.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(&back).unwrap_or_default(),
        "hello berth\n"
    );
    // A directory out, into a new host path.
    let out = work.join("etc-out");
    docker.ok(&["cp", "x:/etc/", &out.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(out.join("passwd")).unwrap_or_default(),
        "root:x:0:0:root:/:/bin/sh\n"
    );
    assert!(out.join("hostname").exists(), "{:?}", files_under(&out));
    // A missing path, in Docker's words.
    let err = docker.fails(&["cp", "x:/nope", &work.display().to_string()]);
    assert!(
        err.contains("Could not find the file /nope in container x"),
        "{err}"
    );

    // Escapes: a `../` entry, and a symlink in the container naming a host directory.
    let outside = h.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside dir");
    let up = "../".repeat(12);
    let target = outside.display().to_string();
    let dotdot = format!("{up}{}/dotdot", target.trim_start_matches('/'));
    let r = docker_with_input(
        &docker,
        &["cp", "-", "x:/tmp"],
        &raw_tar(&dotdot, tar::EntryType::Regular, "", b"pwned\n"),
    );
    assert!(!r.status.success(), "a ../ entry was accepted");
    let link = raw_tar("evil", tar::EntryType::Symlink, &target, b"");
    let r = docker_with_input(&docker, &["cp", "-", "x:/"], &link);
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    // Through the link: resolved in the container's root, never the host's. The same path
    // made inside the container is where the file lands.
    let inside = target.trim_start_matches('/').to_string() + "/";
    let r = docker_with_input(
        &docker,
        &["cp", "-", "x:/"],
        &raw_tar(&inside, tar::EntryType::Directory, "", b""),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let r = docker_with_input(
        &docker,
        &["cp", "-", "x:/"],
        &raw_tar("evil/pwned", tar::EntryType::Regular, "", b"pwned\n"),
    );
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
    let landed = work.join("landed");
    docker.ok(&[
        "cp",
        &format!("x:{target}/pwned"),
        &landed.display().to_string(),
    ]);
    assert_eq!(
        std::fs::read_to_string(&landed).unwrap_or_default(),
        "pwned\n"
    );
    // The link's target as the container resolves it (`cp -L` follows it there).
    let followed = work.join("followed");
    docker.ok(&["cp", "-L", "x:/evil", &followed.display().to_string()]);
    assert!(
        followed.join("pwned").is_file(),
        "{:?}",
        files_under(&followed)
    );
    let _ = docker.run(&["cp", &src.display().to_string(), "x:/evil/"]);
    assert!(
        files_under(&outside).is_empty(),
        "written outside the container: {:?}",
        files_under(&outside)
    );

    // docker cp never replaces a directory with a file (noOverwriteDirNonDir).
    let r = docker_with_input(
        &docker,
        &["cp", "-", "x:/"],
        &raw_tar("tmp", tar::EntryType::Regular, "", b"not a dir\n"),
    );
    let err = String::from_utf8_lossy(&r.stderr);
    assert!(!r.status.success(), "a file replaced /tmp");
    assert!(err.contains("cannot overwrite directory"), "{err}");
    docker.ok(&[
        "cp",
        "x:/tmp/hello.txt",
        &work.join("still.txt").display().to_string(),
    ]);

    // A stopped container takes and gives files too.
    docker.ok(&["stop", "-t", "1", "x"]);
    docker.ok(&["cp", &src.display().to_string(), "x:/tmp/again.txt"]);
    let again = work.join("again.txt");
    docker.ok(&["cp", "x:/tmp/again.txt", &again.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(&again).unwrap_or_default(),
        "hello berth\n"
    );
    assert!(files_under(&outside).is_empty());
    docker.ok(&["rm", "-f", "x"]);
}

/// A file of the container's cgroup: `v2` in the unified hierarchy, else `v1` in the
/// hierarchy that mounts `controller`.
fn cgroup_file(pid: &str, controller: &str, v1: &str, v2: &str) -> PathBuf {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next(), parts.next(), parts.next());
        let path = path.unwrap_or_default().trim_start_matches('/');
        match ctrl {
            Some("") => return Path::new("/sys/fs/cgroup").join(path).join(v2),
            Some(c) if c.split(',').any(|c| c == controller) => {
                return Path::new("/sys/fs/cgroup").join(c).join(path).join(v1);
            }
            _ => {}
        }
    }
    PathBuf::from("/nonexistent")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_tops_stats_renames_pauses_updates_exports_diffs_and_prunes() {
    host::require_tools();
    let h = Host::new("dkmore");
    h.busybox_image();
    let docker = Docker::new(&h);
    let id = docker.ok(&["run", "-d", "--name", "a", "busybox:e2e", "sleep", "600"]);
    let id = id.trim().to_string();

    // top: ps's columns, the container's processes only.
    let top = docker.ok(&["top", "a"]);
    let mut lines = top.lines();
    let header = lines.next().unwrap_or_default();
    assert!(header.contains("PID") && header.contains("CMD"), "{top}");
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 1, "{top}");
    assert!(rows[0].ends_with("sleep 600"), "{top}");

    // rename, and Docker's 409 for a taken name.
    docker.ok(&["rename", "a", "b"]);
    assert_eq!(
        docker.ok(&["ps", "--format", "{{.Names}}"]).trim(),
        "b",
        "renamed"
    );
    docker.ok(&["create", "--name", "c", "busybox:e2e", "true"]);
    let err = docker.fails(&["rename", "b", "c"]);
    assert!(err.contains("is already in use"), "{err}");

    // name filters are Docker's regular expressions, with or without the slash.
    for (f, want) in [("name=^/b$", true), ("name=^b$", true), ("name=b", true)] {
        let got = docker.ok(&["ps", "-q", "--filter", f]);
        assert_eq!(got.trim() == &id[..12], want, "--filter {f}: {got}");
    }
    for f in ["name=^/a", "name=^c$", "name=x"] {
        let got = docker.ok(&["ps", "-q", "--filter", f]);
        assert!(got.trim().is_empty(), "--filter {f}: {got}");
    }

    // pause / unpause.
    docker.ok(&["pause", "b"]);
    let st = docker.ok(&["ps", "--format", "{{.Status}}"]);
    assert!(st.contains("(Paused)"), "{st}");
    let p = docker.ok(&["inspect", "-f", "{{.State.Paused}} {{.State.Status}}", "b"]);
    assert_eq!(p.trim(), "true paused");
    let err = docker.fails(&["pause", "b"]);
    assert!(err.contains("is already paused"), "{err}");
    assert!(
        docker.ok(&["top", "b"]).contains("sleep 600"),
        "top of a paused one"
    );
    docker.ok(&["unpause", "b"]);
    let p = docker.ok(&["inspect", "-f", "{{.State.Paused}} {{.State.Status}}", "b"]);
    assert_eq!(p.trim(), "false running");
    let err = docker.fails(&["unpause", "b"]);
    assert!(err.contains("is not paused"), "{err}");

    // update: the record, inspect and the running cgroup.
    docker.ok(&["update", "--memory", "64m", "--restart", "always", "b"]);
    let got = docker.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.Memory}} {{.HostConfig.RestartPolicy.Name}} {{.State.Pid}}",
        "b",
    ]);
    let f: Vec<&str> = got.split_whitespace().collect();
    assert_eq!(f[..2], ["67108864", "always"], "{got}");
    let file = cgroup_file(f[2], "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read(&file), "67108864", "{}", file.display());
    docker.ok(&["update", "--cpus", "0.5", "b"]);
    let v2 = cgroup_file(f[2], "cpu", "cpu.cfs_quota_us", "cpu.max");
    let quota = read(&v2);
    assert!(quota == "50000" || quota == "50000 100000", "{quota}");
    let got = docker.ok(&[
        "inspect",
        "-f",
        "{{.HostConfig.NanoCpus}} {{.HostConfig.Memory}}",
        "b",
    ]);
    assert_eq!(got.trim(), "500000000 67108864");
    let err = docker.fails(&["update", "--cpuset-mems", "0", "b"]);
    assert!(err.contains("CpusetMems"), "{err}");

    // stats: sane numbers, the new limit.
    let stats = docker.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.Name}}|{{.CPUPerc}}|{{.MemUsage}}|{{.PIDs}}",
        "b",
    ]);
    let s: Vec<&str> = stats.trim().split('|').collect();
    assert_eq!(s.len(), 4, "{stats}");
    assert_eq!(s[0], "b", "{stats}");
    let cpu: f64 = s[1].trim_end_matches('%').parse().unwrap_or(-1.0);
    assert!((0.0..=100.0 * 64.0).contains(&cpu), "{stats}");
    assert!(s[2].ends_with("/ 64MiB"), "{stats}");
    assert_eq!(s[3], "1", "{stats}");

    // diff after a write; export as a tar.
    let new = h.dir.path().join("new.txt");
    std::fs::write(&new, "new\n").expect("file");
    docker.ok(&["cp", &new.display().to_string(), "b:/tmp/"]);
    let diff = docker.ok(&["diff", "b"]);
    assert!(diff.lines().any(|l| l == "C /tmp"), "{diff}");
    assert!(diff.lines().any(|l| l == "A /tmp/new.txt"), "{diff}");
    let tarball = h.dir.path().join("b.tar");
    docker.ok(&["export", "-o", &tarball.display().to_string(), "b"]);
    let listing = std::process::Command::new("tar")
        .arg("-tf")
        .arg(&tarball)
        .output()
        .expect("tar -t");
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "bin/busybox")
    );
    assert!(
        listing
            .lines()
            .any(|l| l.trim_start_matches("./") == "tmp/new.txt")
    );

    // The stats stream: a document a second, the second with the first as its precpu.
    let curl = std::process::Command::new("curl")
        .args(["-s", "--max-time", "2.5", "--unix-socket"])
        .arg(&docker.sock)
        .arg("http://docker/v1.47/containers/b/stats")
        .output()
        .expect("curl");
    let docs: Vec<serde_json::Value> = String::from_utf8_lossy(&curl.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    assert!(docs.len() >= 2, "{docs:?}");
    assert_eq!(
        docs[1]["precpu_stats"]["system_cpu_usage"],
        docs[0]["cpu_stats"]["system_cpu_usage"]
    );
    assert!(
        docs[1]["cpu_stats"]["online_cpus"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert_eq!(docs[1]["memory_stats"]["limit"], 67108864);

    // Bad input: Docker's codes and words, and the daemon keeps serving.
    let err = docker.fails(&["top", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");
    let err = docker.fails(&["top", "c"]);
    assert!(err.contains("is not running"), "{err}");
    let err = docker.fails(&["pause", "c"]);
    assert!(err.contains("is not running"), "{err}");
    let err = docker.fails(&["stats", "--no-stream", "nope"]);
    assert!(err.contains("No such container"), "{err}");
    let err = docker.fails(&["rename", "nope", "z"]);
    assert!(err.contains("No such container: nope"), "{err}");
    let curl = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&docker.sock)
        .args([
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
            "-d",
            "{",
            "-w",
            " %{http_code}",
            "http://docker/v1.47/containers/b/update",
        ])
        .output()
        .expect("curl");
    let answer = String::from_utf8_lossy(&curl.stdout);
    assert!(
        answer.contains("invalid JSON") && answer.ends_with(" 400"),
        "{answer}"
    );
    assert_eq!(docker.ok(&["ps", "-q"]).trim(), &id[..12], "still serving");

    // prune: the stopped container goes, the running one stays.
    let c = docker.ok(&["inspect", "-f", "{{.Id}}", "c"]);
    let pruned = docker.ok(&["container", "prune", "-f"]);
    assert!(pruned.contains(c.trim()), "{pruned}");
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert_eq!(docker.ok(&["ps", "-aq"]).trim(), &id[..12]);
    docker.ok(&["rm", "-f", "b"]);
}

const HEALTH_STACK: &str = r#"
name: dkhealth
services:
  good:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  bad:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "sh", "-c", "exit 1"]
      interval: 1s
      retries: 2
"#;

/// Polls `docker inspect -f FORMAT what` until `done` holds (30 s at most).
fn inspect_until(docker: &Docker, what: &str, format: &str, done: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let got = docker.ok(&["inspect", "-f", format, what]);
        if done(got.trim()) {
            return got.trim().to_string();
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(30),
            "{what} {format}: still {got}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_inspect_shows_health_records_and_policy_restarts() {
    host::require_tools();
    let h = Host::new("dkhealth");
    h.busybox_image();
    std::fs::write(h.stack.join("compose.yaml"), HEALTH_STACK).expect("compose");
    h.ok(&["up", "-d"]);
    let docker = Docker::new(&h);
    let id_of = |svc: &str| {
        docker
            .ok(&[
                "ps",
                "-q",
                "--filter",
                &format!("label=com.docker.compose.service={svc}"),
            ])
            .trim()
            .to_string()
    };
    let (good, bad) = (id_of("good"), id_of("bad"));
    let fmt = "{{.State.Health.Status}} {{.State.Health.FailingStreak}} {{len .State.Health.Log}}";
    let got = inspect_until(&docker, &good, fmt, |s| s.starts_with("healthy 0 "));
    assert_ne!(
        got, "healthy 0 0",
        "a healthy verdict comes with its checks"
    );
    let got = inspect_until(&docker, &bad, fmt, |s| s.starts_with("unhealthy"));
    let streak: u64 = got
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(streak >= 2, "{got}");
    let last = docker.ok(&[
        "inspect",
        "-f",
        "{{(index .State.Health.Log 0).ExitCode}}",
        &bad,
    ]);
    assert_eq!(last.trim(), "1");
    // docker ps shows the verdict in its status line and filters on it.
    let st = docker.ok(&[
        "ps",
        "--filter",
        "health=healthy",
        "--format",
        "{{.ID}} {{.Status}}",
    ]);
    assert!(
        st.trim().starts_with(&good[..12])
            && st.trim().ends_with("(healthy)")
            && st.lines().count() == 1,
        "{st}"
    );
    let st = docker.ok(&["ps", "--filter", "health=unhealthy", "-q"]);
    assert_eq!(st.trim(), &bad[..12], "{st}");
    // Without a check, no Health at all (as Docker).
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "plain",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let plain = docker.ok(&["inspect", "-f", "{{json .State}}", "plain"]);
    assert!(!plain.contains("Health"), "{plain}");

    // RestartCount counts what the policy restarted.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "--restart",
        "always",
        "busybox:e2e",
        "sh",
        "-c",
        "exit 3",
    ]);
    inspect_until(&docker, "r", "{{.RestartCount}}", |s| {
        s.parse::<u32>().is_ok_and(|n| n >= 2)
    });
    assert_eq!(
        docker
            .ok(&["inspect", "-f", "{{.RestartCount}}", "plain"])
            .trim(),
        "0"
    );
    docker.ok(&["rm", "-f", "r", "plain"]);
    h.ok(&["down"]);
}
