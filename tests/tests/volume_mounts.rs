//! The local driver's mounted volumes (`type`, `o`, `device` beyond the bind form) through
//! each front end: Compose `driver_opts`, `berth volume create -o`, and the Docker API's
//! `DriverOpts` (the docker CLI as the client). A tmpfs volume has the asked size and owner
//! inside the container, keeps its data across a container restart and a daemon restart while
//! the volume lives, and is unmounted when the volume goes. Bad options are refused naming the
//! volume and the option, with nothing left behind; the attacks (a bind through `o`, a
//! relative `device`, a volume name leaving the volumes directory) are refused before any
//! mount.

use std::path::Path;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// The mount points under `dir` (the test instance's temp dir), from this process's table.
fn mounts_under(dir: &Path) -> Vec<String> {
    let d = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&d))
        .map(String::from)
        .collect()
}

/// The filesystem type mounted at `path`, if any.
fn fstype_at(path: &Path) -> Option<String> {
    let p = path.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()?
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(p.as_str()))
        .and_then(|l| l.split(" - ").nth(1))
        .and_then(|post| post.split(' ').next())
        .map(String::from)
}

/// The size column (1K blocks) of `busybox df -k PATH` output.
fn df_kib(out: &str) -> u64 {
    out.lines()
        .nth(1)
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("df output: {out}"))
}

#[test_with::root()]
#[test]
fn compose_tmpfs_volume_has_its_size_and_owner_and_keeps_data_while_it_lives() {
    host::require_tools();
    let host = Host::new("vtmp");
    host.busybox_image();
    std::fs::write(
        host.stack.join("compose.yaml"),
        r#"
name: vt
services:
  app:
    image: busybox:e2e
    network_mode: none
    init: true
    stop_grace_period: 1s
    volumes: ["data:/data"]
    command: ["sleep", "3600"]
volumes:
  data:
    driver_opts: {type: tmpfs, device: tmpfs, o: "size=64m,uid=1000,mode=0750"}
"#,
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("driver_opts"),
        "applied, not warned: {stderr}"
    );
    let data = host.root.join("volumes/vt_data/_data");
    assert_eq!(fstype_at(&data).as_deref(), Some("tmpfs"));

    let df = host.ok(&["exec", "-T", "app", "busybox", "df", "-k", "/data"]);
    assert_eq!(df_kib(&df), 64 * 1024, "{df}");
    let owner = host.ok(&[
        "exec", "-T", "app", "busybox", "stat", "-c", "%u %a", "/data",
    ]);
    assert_eq!(owner.trim(), "1000 750");
    host.ok(&["exec", "-T", "app", "sh", "-c", "echo kept > /data/f"]);

    // A container restart, then a daemon restart: the volume's filesystem stays mounted.
    host.ok(&["restart", "-t", "1", "app"]);
    let f = host.ok(&["exec", "-T", "app", "cat", "/data/f"]);
    assert_eq!(f.trim(), "kept");
    host.ok(&["system", "shutdown"]);
    host.ok(&["restart", "-t", "1", "app"]);
    let f = host.ok(&["exec", "-T", "app", "cat", "/data/f"]);
    assert_eq!(f.trim(), "kept");

    // The host lost the mount (as after a reboot): the next start mounts it again, empty,
    // rather than giving the container the bare directory.
    host.ok(&["stop", "-t", "1", "app"]);
    let st = std::process::Command::new("umount")
        .arg(&data)
        .status()
        .expect("umount");
    assert!(st.success());
    host.ok(&["start", "app"]);
    let df = host.ok(&["exec", "-T", "app", "busybox", "df", "-k", "/data"]);
    assert_eq!(df_kib(&df), 64 * 1024, "{df}");

    let ids: Vec<String> = host
        .ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    host.ok(&["down", "-v", "-t", "1"]);
    assert!(
        mounts_under(host.dir.path()).is_empty(),
        "down -v left mounts"
    );
    assert!(!host.root.join("volumes/vt_data").exists());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn compose_volume_with_an_option_tmpfs_refuses_is_an_error_naming_both() {
    host::require_tools();
    let host = Host::new("vbad");
    host.busybox_image();
    std::fs::write(
        host.stack.join("compose.yaml"),
        r#"
name: vbad
services:
  app:
    image: busybox:e2e
    network_mode: none
    volumes: ["data:/data"]
    command: ["true"]
volumes:
  data:
    driver_opts: {type: tmpfs, device: tmpfs, o: "size=8m,bogus=1"}
"#,
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("volumes.data.driver_opts")
            && err.contains("vbad_data")
            && err.contains("bogus=1"),
        "{err}"
    );
    assert!(!host.root.join("volumes/vbad_data").exists(), "half-made");
    assert!(mounts_under(host.dir.path()).is_empty());
    host.ok(&["down", "-v"]);
}

#[test_with::root()]
#[test]
fn volume_create_o_mounts_and_rm_unmounts_and_attacks_are_refused() {
    host::require_tools();
    let host = Host::new("vcli");
    let made = host.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=8m,noexec",
        "v1",
    ]);
    assert_eq!(made.trim(), "v1");
    let data = host.root.join("volumes/v1/_data");
    assert_eq!(fstype_at(&data).as_deref(), Some("tmpfs"));
    let inspect = host.ok(&["volume", "inspect", "v1"]);
    assert!(inspect.contains("size=8m"), "{inspect}");
    host.ok(&["volume", "rm", "v1"]);
    assert!(fstype_at(&data).is_none());
    assert!(!host.root.join("volumes/v1").exists());

    let refused = |args: &[&str], want: &[&str]| {
        let mut all = vec!["volume", "create"];
        all.extend_from_slice(args);
        let o = host.berth(&all);
        let err = String::from_utf8_lossy(&o.stderr).to_string();
        assert!(!o.status.success(), "{args:?} was accepted");
        for w in want {
            assert!(err.contains(w), "{args:?}: {err}");
        }
        assert!(mounts_under(host.dir.path()).is_empty(), "{args:?} mounted");
    };
    // A bind through `o` would mount the host's /etc on the volume: refused before any mount.
    refused(
        &[
            "-o",
            "type=tmpfs",
            "-o",
            "device=/etc",
            "-o",
            "o=bind",
            "evil",
        ],
        &["volume evil", "o=bind is refused"],
    );
    refused(
        &[
            "-o",
            "type=tmpfs",
            "-o",
            "device=/etc",
            "-o",
            "o=ro,rbind",
            "evil",
        ],
        &["o=rbind is refused"],
    );
    // A device path relative to wherever the daemon runs.
    refused(
        &["-o", "type=ext4", "-o", "device=../../etc", "evil"],
        &["volume evil", "\"../../etc\"", "absolute"],
    );
    // A name that would put the volume (and its mount) outside the volumes directory.
    refused(
        &["-o", "type=tmpfs", "-o", "device=tmpfs", "../../x"],
        &["../../x", "invalid"],
    );
    // An option tmpfs does not know: the kernel's refusal, naming the volume and option.
    refused(
        &[
            "-o",
            "type=tmpfs",
            "-o",
            "device=tmpfs",
            "-o",
            "o=nosuch=1",
            "odd",
        ],
        &["volume odd", "nosuch=1"],
    );
    assert!(!host.root.join("volumes/evil").exists());
    assert!(!host.root.join("volumes/odd").exists());
    assert!(!host.dir.path().join("x").exists());
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_volume_create_with_driver_opts_mounts_tmpfs_and_refuses_a_bind_in_o() {
    host::require_tools();
    let h = Host::new("vdk");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=tmpfs",
        "--opt",
        "o=size=16m",
        "dv",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&docker.ok(&["volume", "inspect", "dv"])).expect("json");
    assert_eq!(inspect[0]["Options"]["type"], "tmpfs", "{inspect}");
    let df = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "dv:/d",
        "busybox:e2e",
        "busybox",
        "df",
        "-k",
        "/d",
    ]);
    assert_eq!(df_kib(&df), 16 * 1024, "{df}");
    docker.ok(&["volume", "rm", "dv"]);
    assert!(mounts_under(h.dir.path()).is_empty());

    let err = docker.fails(&[
        "volume",
        "create",
        "--opt",
        "type=tmpfs",
        "--opt",
        "device=/etc",
        "--opt",
        "o=bind",
        "evil",
    ]);
    assert!(err.contains("o=bind is refused"), "{err}");
    assert!(mounts_under(h.dir.path()).is_empty());
    let ls = docker.ok(&["volume", "ls", "-q"]);
    assert!(!ls.contains("evil"), "{ls}");
    h.berth(&["system", "shutdown"]);
}

/// Mounting again at a container's start lands on the volume's own `_data` directory only:
/// when that has been swapped for a link (to a host directory), the start fails naming the
/// volume and nothing is mounted where the link points.
#[test_with::root()]
#[test]
fn a_remount_never_follows_a_link_out_of_the_volume() {
    host::require_tools();
    let host = Host::new("vlink");
    host.busybox_image();
    host.ok(&[
        "volume",
        "create",
        "-o",
        "type=tmpfs",
        "-o",
        "device=tmpfs",
        "-o",
        "o=size=4m",
        "lv",
    ]);
    host.ok(&[
        "container",
        "create",
        "--name",
        "c",
        "--network",
        "none",
        "-v",
        "lv:/d",
        "busybox:e2e",
        "true",
    ]);
    let data = host.root.join("volumes/lv/_data");
    let st = std::process::Command::new("umount")
        .arg(&data)
        .status()
        .expect("umount");
    assert!(st.success());
    let elsewhere = host.dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).expect("dir");
    std::fs::remove_dir(&data).expect("rmdir _data");
    std::os::unix::fs::symlink(&elsewhere, &data).expect("link");
    let o = host.berth(&["container", "start", "c"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "started through a link");
    assert!(err.contains("volume lv"), "{err}");
    assert!(fstype_at(&elsewhere).is_none(), "mounted through the link");
    host.ok(&["container", "rm", "c"]);
    assert!(
        mounts_under(host.dir.path()).is_empty(),
        "{:?}",
        mounts_under(host.dir.path())
    );
}
