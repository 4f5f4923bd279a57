//! Mount options of Compose's long volume syntax, observed inside (and around) the running
//! containers, end to end as root with the real binary: `bind.propagation` and
//! `volume.subpath` (with the attacks on the latter: `..` and links that point out).

use std::path::Path;
use std::process::Command;

use berth_tests::host::{self, Host};

/// `down -v` (the tests' volumes go too), then the leak check.
fn down_clean(host: &Host) {
    let ids = host.ps_ids();
    host.ok(&["down", "-t", "1", "-v"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

fn run(cmd: &str, args: &[&str]) -> bool {
    Command::new(cmd)
        .args(args)
        .status()
        .is_ok_and(|s| s.success())
}

/// Unmounts everything mounted at or below `dir` on the host, deepest first.
fn unmount_below(dir: &Path) {
    let dir = dir.display().to_string();
    let mut points: Vec<String> = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .filter(|m| m.starts_with(&dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.len()));
    for p in points {
        run("umount", &["-l", &p]);
    }
}

fn propagation_file(source: &str) -> String {
    let wait = "for i in $$(seq 100); do [ -f /mnt/s/sub/hello ] && break; sleep 0.1; done; echo seen $$(cat /mnt/s/sub/hello 2>/dev/null); echo done; exec sleep 3600";
    format!(
        r#"
name: pg
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  slave:
    <<: *quick
    volumes:
      - {{type: bind, source: {source}, target: /mnt/s, bind: {{propagation: rslave}}}}
    command: ["sh", "-c", "{wait}"]
  private:
    <<: *quick
    volumes:
      - {{type: bind, source: {source}, target: /mnt/s, bind: {{propagation: rprivate}}}}
    command: ["sh", "-c", "{wait}"]
  shared:
    <<: *quick
    privileged: true
    volumes:
      - {{type: bind, source: {source}, target: /mnt/s, bind: {{propagation: rshared}}}}
    command: ["sh", "-c", "mkdir -p /mnt/s/fromc && mount -t tmpfs tmpfs /mnt/s/fromc && echo c > /mnt/s/fromc/file; echo done; exec sleep 3600"]
"#
    )
}

/// `bind.propagation`: with `rslave` a mount the host makes below the bound directory after
/// the start shows inside, with `rprivate` it does not; with `rshared` a mount the container
/// makes there shows on the host.
#[test_with::root()]
#[test]
fn bind_propagation_carries_mounts_as_asked() {
    host::require_tools();
    let host = Host::new("pg");
    host.busybox_image();
    let src = host.dir.path().join("prop");
    std::fs::create_dir_all(&src).expect("source");
    let s = src.display().to_string();
    // A shared mount of its own, whatever the host's / is.
    assert!(run("mount", &["--bind", &s, &s]));
    assert!(run("mount", &["--make-shared", &s]));
    std::fs::write(host.stack.join("compose.yaml"), propagation_file(&s)).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || stderr.contains("propagation") {
        unmount_below(&src);
        panic!("up: {stderr}");
    }
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).expect("sub");
    assert!(run(
        "mount",
        &["-t", "tmpfs", "tmpfs", &sub.display().to_string()]
    ));
    std::fs::write(sub.join("hello"), "hi\n").expect("hello");
    let slave = host.logs_when_done("pg-slave-1");
    let private = host.logs_when_done("pg-private-1");
    let shared = host.logs_when_done("pg-shared-1");
    let from_container = std::fs::read_to_string(src.join("fromc/file")).unwrap_or_default();
    down_clean_mounts(&host, &src);
    assert!(slave.lines().any(|l| l == "seen hi"), "{slave}");
    assert!(private.lines().any(|l| l.trim() == "seen"), "{private}");
    assert!(shared.contains("done"), "{shared}");
    assert_eq!(
        from_container.trim(),
        "c",
        "the container's mount on the host"
    );
}

/// `down`, then the test's own mounts, then the leak check.
fn down_clean_mounts(host: &Host, src: &Path) {
    let ids = host.ps_ids();
    host.ok(&["down", "-t", "1"]);
    unmount_below(src);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

const SUBPATH: &str = r#"
name: sp
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  seed:
    <<: *quick
    volumes: [data:/v]
    command: ["sh", "-c", "mkdir -p /v/sub /v/etc && echo inside > /v/sub/f && echo volume-etc > /v/etc/marker && ln -s /etc /v/out && ln -s ../../../../.. /v/up"]
  sub:
    <<: *quick
    depends_on: {seed: {condition: service_completed_successfully}}
    volumes:
      - {type: volume, source: data, target: /mnt, volume: {subpath: sub}}
    command: ["sh", "-c", "echo f $$(cat /mnt/f); echo done; exec sleep 3600"]
  abs:
    <<: *quick
    depends_on: {seed: {condition: service_completed_successfully}}
    volumes:
      - {type: volume, source: data, target: /mnt, volume: {subpath: out}}
    command: ["sh", "-c", "echo marker $$(cat /mnt/marker); ls /mnt/passwd 2>/dev/null && echo host-etc; echo done; exec sleep 3600"]
  rel:
    <<: *quick
    depends_on: {seed: {condition: service_completed_successfully}}
    volumes:
      - {type: volume, source: data, target: /mnt, volume: {subpath: up}}
    command: ["sh", "-c", "echo ls $$(ls /mnt | tr '\\n' ' '); echo done; exec sleep 3600"]
volumes:
  data:
"#;

/// `volume.subpath` mounts that directory of the volume; a link in the volume that points
/// out (to `/etc`, or up with `..`) resolves inside the volume, never to the host's files.
#[test_with::root()]
#[test]
fn volume_subpath_mounts_a_directory_inside_the_volume() {
    host::require_tools();
    let host = Host::new("sp");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), SUBPATH).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("subpath"), "no warning: {stderr}");
    let sub = host.logs_when_done("sp-sub-1");
    assert!(sub.lines().any(|l| l == "f inside"), "{sub}");
    let abs = host.logs_when_done("sp-abs-1");
    assert!(abs.lines().any(|l| l == "marker volume-etc"), "{abs}");
    assert!(!abs.contains("host-etc"), "{abs}");
    let rel = host.logs_when_done("sp-rel-1");
    let listed = rel
        .lines()
        .find_map(|l| l.strip_prefix("ls "))
        .unwrap_or_default()
        .to_string();
    let mut names: Vec<&str> = listed.split_whitespace().collect();
    names.sort();
    assert_eq!(
        names,
        ["etc", "out", "sub", "up"],
        "the volume's root: {rel}"
    );
    down_clean(&host);
}

/// A subpath that climbs out of the volume is refused by name before anything is made
/// (compose and `container run --mount ...,volume-subpath=`).
#[test_with::root()]
#[test]
fn volume_subpath_out_of_the_volume_is_refused() {
    host::require_tools();
    let host = Host::new("so");
    host.busybox_image();
    let file = r#"
name: so
services:
  up:
    image: busybox:e2e
    network_mode: none
    volumes:
      - {type: volume, source: data, target: /mnt, volume: {subpath: ../..}}
    command: ["ls", "/mnt"]
volumes:
  data:
"#;
    std::fs::write(host.stack.join("compose.yaml"), file).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("Subpath") && stderr.contains("leads out of the volume"),
        "{stderr}"
    );
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        "type=volume,src=so-v,dst=/mnt,volume-subpath=a/../../b",
        "busybox:e2e",
        "ls",
        "/mnt",
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("leads out of the volume"), "{stderr}");
    assert!(host.ps().is_empty());
    down_clean(&host);
    host.berth(&["volume", "rm", "so-v"]);
}

/// `propagation: rshared` on a source that is not on a shared mount is refused before
/// anything is made, in Docker's words (nothing would propagate), through Compose and
/// through `container run -v`.
#[test_with::root()]
#[test]
fn shared_propagation_needs_a_shared_source_mount() {
    host::require_tools();
    let host = Host::new("pgx");
    host.busybox_image();
    let src = host.dir.path().join("private");
    std::fs::create_dir_all(&src).expect("source");
    let s = src.display().to_string();
    // A private mount of its own, whatever the host's / is.
    assert!(run("mount", &["--bind", &s, &s]));
    assert!(run("mount", &["--make-private", &s]));
    let compose = format!(
        "name: pgx\nservices:\n  app:\n    image: busybox:e2e\n    network_mode: none\n    \
         volumes:\n      - {{type: bind, source: {s}, target: /mnt/s, bind: {{propagation: rshared}}}}\n    \
         command: [\"true\"]\n"
    );
    std::fs::write(host.stack.join("compose.yaml"), compose).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let up = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("path {s} is mounted on {s} but it is not a shared mount");
    let ids = host.ps_ids();
    let cli = host.berth(&[
        "container",
        "run",
        "--rm",
        "-v",
        &format!("{s}:/mnt/s:rshared"),
        "busybox:e2e",
        "true",
    ]);
    let cli_err = String::from_utf8_lossy(&cli.stderr).to_string();
    host.ok(&["down", "-t", "1"]);
    unmount_below(&src);
    assert!(!out.status.success() && up.contains(&want), "{up}");
    assert!(ids.is_empty(), "nothing made: {ids:?}");
    assert!(
        !cli.status.success() && cli_err.contains(&want),
        "{cli_err}"
    );
    assert!(cli_err.contains("HostConfig.Binds[0]"), "{cli_err}");
}
