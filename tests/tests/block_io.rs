//! Block I/O limits and `oom_kill_disable` reach the container's cgroup, through each front
//! end: Compose's `blkio_config`, `container run --device-read-bps ...` and the Docker API
//! (the docker CLI as the client, `docker inspect` reporting them back). What the host's
//! cgroups lack (block I/O weights without BFQ/CFQ, the OOM switch on cgroup v2) is warned
//! with Docker's words and the key's name.

use std::path::{Path, PathBuf};

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// A block device to limit: the whole disk holding `/` (a partition's parent), else
/// `/dev/loop0` (a loop device is a disk whether or not a file backs it). `(path, "MAJ:MIN")`.
fn disk() -> (String, String) {
    use std::os::unix::fs::MetadataExt;
    let dev = std::fs::metadata("/").map(|m| m.dev()).unwrap_or(0);
    let majmin = format!(
        "{}:{}",
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev)
    );
    let sys = PathBuf::from(format!("/sys/dev/block/{majmin}"));
    let disk = if sys.join("partition").exists() {
        std::fs::canonicalize(&sys)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
    } else {
        std::fs::canonicalize(&sys).ok()
    };
    let from_sys = disk.and_then(|d| {
        let uevent = std::fs::read_to_string(d.join("uevent")).ok()?;
        let name = uevent.lines().find_map(|l| l.strip_prefix("DEVNAME="))?;
        let mm = std::fs::read_to_string(d.join("dev")).ok()?;
        Some((format!("/dev/{name}"), mm.trim().to_string()))
    });
    match from_sys {
        Some((path, mm)) if Path::new(&path).exists() => (path, mm),
        _ => ("/dev/loop0".to_string(), "7:0".to_string()),
    }
}

/// A cgroup file of the process `pid`: `v1` in the v1 hierarchy mounting `controller`, else
/// `v2` in the unified one.
fn cgroup_file(pid: &str, controller: &str, v1: &str, v2: &str) -> String {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let mut path = None;
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, rel) = (parts.next(), parts.next(), parts.next());
        let rel = rel.unwrap_or_default().trim_start_matches('/');
        match ctrl {
            Some(c) if c.split(',').any(|c| c == controller) => {
                path = Some(Path::new("/sys/fs/cgroup").join(c).join(rel).join(v1));
                break;
            }
            Some("") => path = Some(Path::new("/sys/fs/cgroup").join(rel).join(v2)),
            _ => {}
        }
    }
    path.and_then(|p| std::fs::read_to_string(p).ok())
        .unwrap_or_default()
}

fn v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// Whether this host's cgroups have a block I/O weight file (BFQ or CFQ).
fn has_weight() -> bool {
    if v2() {
        return false;
    }
    ["blkio.weight", "blkio.bfq.weight"]
        .iter()
        .any(|f| Path::new("/sys/fs/cgroup/blkio").join(f).exists())
}

/// The throttle `kind` (`read_bps`, `write_iops` ...) of `majmin` in the cgroup of `pid`, as
/// the kernel reports it back.
fn throttle(pid: &str, majmin: &str, kind: &str) -> Option<u64> {
    if v2() {
        let key = match kind {
            "read_bps" => "rbps",
            "write_bps" => "wbps",
            "read_iops" => "riops",
            _ => "wiops",
        };
        let text = cgroup_file(pid, "io", "", "io.max");
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{majmin} ")))?;
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
            .and_then(|v| v.parse().ok())
    } else {
        let file = format!("blkio.throttle.{kind}_device");
        let text = cgroup_file(pid, "blkio", &file, "");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{majmin} ")))
            .and_then(|v| v.trim().parse().ok())
    }
}

/// `oom_kill_disable 1` in the container's memory.oom_control (cgroup v1).
fn oom_disabled(pid: &str) -> bool {
    cgroup_file(pid, "memory", "memory.oom_control", "")
        .lines()
        .any(|l| l == "oom_kill_disable 1")
}

fn weight_warned(stderr: &str, name: &str) -> bool {
    stderr.contains(name) && stderr.contains("does not support Block I/O weight")
}

#[test_with::root()]
#[test]
fn compose_blkio_config_and_oom_kill_disable_reach_the_cgroup() {
    host::require_tools();
    let (dev, majmin) = disk();
    let host = Host::new("bio");
    host.busybox_image();
    let compose = format!(
        r#"
name: bio
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    mem_limit: 64m
    oom_kill_disable: true
    blkio_config:
      weight: 300
      device_read_bps: [{{path: {dev}, rate: 1mb}}]
      device_write_bps: [{{path: {dev}, rate: "2097152"}}]
      device_read_iops: [{{path: {dev}, rate: 120}}]
      device_write_iops: [{{path: {dev}, rate: 60}}]
    command: ["sleep", "3600"]
"#
    );
    std::fs::write(host.stack.join("compose.yaml"), compose).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    // The weight is applied where the host has the file, else warned by key, never both.
    assert_eq!(
        weight_warned(&stderr, "blkio_config.weight"),
        !has_weight(),
        "{stderr}"
    );
    assert!(!stderr.contains("parsed but not supported"), "{stderr}");
    let pid = host.ok(&["container", "inspect", "-f", "{{.State.Pid}}", "bio-app-1"]);
    let pid = pid.trim();
    assert_eq!(throttle(pid, &majmin, "read_bps"), Some(1 << 20));
    assert_eq!(throttle(pid, &majmin, "write_bps"), Some(2 << 20));
    assert_eq!(throttle(pid, &majmin, "read_iops"), Some(120));
    assert_eq!(throttle(pid, &majmin, "write_iops"), Some(60));
    if v2() {
        assert!(
            stderr.contains("oom_kill_disable: Your kernel does not support OomKillDisable"),
            "{stderr}"
        );
    } else {
        assert!(oom_disabled(pid), "memory.oom_control of {pid}");
        assert!(!stderr.contains("OomKillDisable"), "{stderr}");
    }
    host.down_clean();
}

#[test_with::root()]
#[test]
fn container_run_flags_limit_block_io_and_refuse_a_bad_weight() {
    host::require_tools();
    let (dev, majmin) = disk();
    let host = Host::new("biocli");
    host.busybox_image();
    let out = host.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "lim",
        "--network",
        "none",
        "--blkio-weight",
        "500",
        "--device-read-bps",
        &format!("{dev}:3mb"),
        "--device-write-iops",
        &format!("{dev}:70"),
        "--oom-kill-disable",
        "busybox:e2e",
        "sleep",
        "300",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        weight_warned(&stderr, "HostConfig.BlkioWeight"),
        !has_weight(),
        "{stderr}"
    );
    // No memory limit: Docker's warning that the host may run out of memory.
    if !v2() {
        assert!(
            stderr.contains("OOM killer is disabled for the container, but no memory limit"),
            "{stderr}"
        );
    }
    let pid = host.ok(&["container", "inspect", "-f", "{{.State.Pid}}", "lim"]);
    let pid = pid.trim();
    assert_eq!(throttle(pid, &majmin, "read_bps"), Some(3 << 20));
    assert_eq!(throttle(pid, &majmin, "write_iops"), Some(70));
    if !v2() {
        assert!(oom_disabled(pid), "memory.oom_control of {pid}");
    }
    host.ok(&["container", "rm", "-f", "lim"]);

    // Docker's range and a path that is no block device are refused, naming the field.
    let bad = host.berth(&[
        "container",
        "run",
        "--rm",
        "--blkio-weight",
        "5",
        "busybox:e2e",
        "true",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("HostConfig.BlkioWeight") && err.contains("10 to 1000"),
        "{err}"
    );
    let bad = host.berth(&[
        "container",
        "run",
        "--rm",
        "--device-read-bps",
        "/dev/null:1mb",
        "busybox:e2e",
        "true",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("/dev/null is not a block device"), "{err}");
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_run_block_io_flags_apply_and_inspect_reports_them() {
    host::require_tools();
    let (dev, majmin) = disk();
    let h = Host::new("biodk");
    h.busybox_image();
    let docker = Docker::new(&h);
    let out = docker.run(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "none",
        "-m",
        "64m",
        "--oom-kill-disable",
        "--blkio-weight",
        "300",
        "--device-read-bps",
        &format!("{dev}:1mb"),
        "--device-write-bps",
        &format!("{dev}:2mb"),
        "--device-read-iops",
        &format!("{dev}:10"),
        "--device-write-iops",
        &format!("{dev}:20"),
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    // The docker CLI prints the create response's warnings.
    assert_eq!(
        stderr.contains("does not support Block I/O weight"),
        !has_weight(),
        "{stderr}"
    );
    let pid = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "x"]);
    let pid = pid.trim();
    assert_eq!(throttle(pid, &majmin, "read_bps"), Some(1 << 20));
    assert_eq!(throttle(pid, &majmin, "write_bps"), Some(2 << 20));
    assert_eq!(throttle(pid, &majmin, "read_iops"), Some(10));
    assert_eq!(throttle(pid, &majmin, "write_iops"), Some(20));
    if !v2() {
        assert!(oom_disabled(pid), "memory.oom_control of {pid}");
    }
    let inspect: serde_json::Value =
        serde_json::from_str(&docker.ok(&["inspect", "x"])).expect("inspect json");
    let hc = &inspect[0]["HostConfig"];
    assert_eq!(hc["BlkioWeight"], 300, "{hc}");
    assert_eq!(hc["OomKillDisable"], true, "{hc}");
    assert_eq!(hc["BlkioDeviceReadBps"][0]["Path"], dev.as_str(), "{hc}");
    assert_eq!(hc["BlkioDeviceReadBps"][0]["Rate"], 1 << 20, "{hc}");
    assert_eq!(hc["BlkioDeviceWriteBps"][0]["Rate"], 2 << 20, "{hc}");
    assert_eq!(hc["BlkioDeviceReadIOps"][0]["Rate"], 10, "{hc}");
    assert_eq!(hc["BlkioDeviceWriteIOps"][0]["Rate"], 20, "{hc}");
    docker.ok(&["rm", "-f", "x"]);
}

/// `docker update --blkio-weight`: Docker's range is refused naming the field; a weight is
/// written into the running cgroup's weight file where the host has one (BFQ/CFQ, or v2's
/// io.weight), and elsewhere the update answers Docker's warning and leaves the weight as it
/// was, in the cgroup and in `inspect`.
#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_update_blkio_weight_applies_or_warns_as_the_host_allows() {
    host::require_tools();
    let h = Host::new("biou");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "u",
        "--network",
        "none",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let err = docker.fails(&["update", "--blkio-weight", "5", "u"]);
    assert!(
        err.contains("HostConfig.BlkioWeight") && err.contains("10 to 1000"),
        "{err}"
    );
    let out = docker.run(&["update", "--blkio-weight", "400", "u"]);
    // The docker CLI prints an update's warnings on stdout, after the container's name.
    let printed =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{printed}");
    let pid = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "u"]);
    let pid = pid.trim();
    let weight = if v2() {
        cgroup_file(pid, "io", "", "io.bfq.weight") + &cgroup_file(pid, "io", "", "io.weight")
    } else {
        cgroup_file(pid, "blkio", "blkio.bfq.weight", "")
            + &cgroup_file(pid, "blkio", "blkio.weight", "")
    };
    let inspect: serde_json::Value =
        serde_json::from_str(&docker.ok(&["inspect", "u"])).expect("inspect json");
    if has_weight() {
        assert!(!printed.contains("does not support"), "{printed}");
        assert!(weight.contains("400"), "weight file: {weight:?}");
        assert_eq!(inspect[0]["HostConfig"]["BlkioWeight"], 400);
    } else {
        // This host (no BFQ, no CFQ): the docker CLI prints the update's warning.
        assert!(
            printed.contains("HostConfig.BlkioWeight")
                && printed.contains("does not support Block I/O weight"),
            "{printed}"
        );
        assert!(weight.is_empty(), "no weight file, yet: {weight:?}");
        assert_eq!(inspect[0]["HostConfig"]["BlkioWeight"], 0);
    }
    docker.ok(&["rm", "-f", "u"]);
    h.berth(&["system", "shutdown"]);
}
