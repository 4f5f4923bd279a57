//! Compose keys that lower into the container's create body, observed inside (or on) the
//! running container, end to end as root with the real binary: `deploy.restart_policy`,
//! `devices` and `device_cgroup_rules` (and `container run --device`).

use std::time::{Duration, Instant};

use berth_tests::host::{self, Host};

/// Lines equal to `needle` in a container's log.
fn runs(host: &Host, container: &str, needle: &str) -> usize {
    host.ok(&["container", "logs", container])
        .lines()
        .filter(|l| l.trim() == needle)
        .count()
}

const DEPLOY_RESTART: &str = r#"
name: dr
services:
  crash:
    image: busybox:e2e
    command: ["sh", "-c", "echo run; exit 3"]
    deploy:
      restart_policy: {condition: on-failure, max_attempts: 2}
  never:
    image: busybox:e2e
    command: ["sh", "-c", "echo run; exit 3"]
    deploy:
      restart_policy: {condition: none}
  ignored:
    image: busybox:e2e
    command: ["sh", "-c", "echo run; exit 3"]
    restart: "no"
    deploy:
      restart_policy: {condition: any}
"#;

/// Writes the stack, brings it up detached and checks that `key` was applied, not warned about.
fn up_unwarned(host: &Host, compose: &str, key: &str) {
    std::fs::write(host.stack.join("compose.yaml"), compose).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains(key), "no warning about {key}: {stderr}");
}

/// Without `restart:`, `deploy.restart_policy` is the policy: on-failure with max_attempts
/// 2 runs three times, `none` once; `restart:` when given wins.
#[test_with::root()]
#[test]
fn deploy_restart_policy_is_enforced_when_restart_is_absent() {
    host::require_tools();
    let host = Host::new("dr");
    host.busybox_image();
    up_unwarned(&host, DEPLOY_RESTART, "restart_policy");
    let start = Instant::now();
    while runs(&host, "dr-crash-1", "run") < 3 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&host, "dr-crash-1", "run"), 3, "one run, two restarts");
    assert_eq!(runs(&host, "dr-never-1", "run"), 1, "condition none");
    assert_eq!(runs(&host, "dr-ignored-1", "run"), 1, "restart: wins");
    host.down_clean();
}

/// A compose file with a host device node (`c 42:1`, a major no driver registers, so an open
/// the cgroup allows fails with ENXIO and one it forbids with EPERM).
fn devices_file(node: &str) -> String {
    format!(
        r#"
name: dv
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  dev:
    <<: *quick
    devices: ["{node}:/dev/x42:r"]
    command: ["sh", "-c", "stat -c 'node %t:%T' /dev/x42; cat /dev/x42; echo > /dev/x42; echo done; exec sleep 3600"]
  rules:
    <<: *quick
    device_cgroup_rules: ["c 42:2 r"]
    command: ["sh", "-c", "mknod /tmp/a c 42 2; mknod /tmp/b c 42 3; cat /tmp/a; cat /tmp/b; echo done; exec sleep 3600"]
"#
    )
}

/// `devices` binds the host node (its major:minor) and allows it with its permissions only;
/// `device_cgroup_rules` allows what it names and nothing more; `container run --device`
/// does the same as `devices`.
#[test_with::root()]
#[test]
fn devices_and_device_cgroup_rules_are_enforced_inside() {
    host::require_tools();
    let host = Host::new("dv");
    host.busybox_image();
    let node = host.dir.path().join("n42");
    let made = std::process::Command::new("mknod")
        .arg(&node)
        .args(["c", "42", "1"])
        .status()
        .expect("mknod");
    assert!(made.success());
    let node = node.display().to_string();
    std::fs::write(host.stack.join("compose.yaml"), devices_file(&node)).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("devices"), "no warning: {stderr}");

    let dev = host.logs_when_done("dv-dev-1");
    assert!(dev.contains("node 2a:1"), "the host's node: {dev}");
    assert!(
        dev.contains("x42': No such device or address"),
        "read allowed: {dev}"
    );
    assert!(
        dev.contains("x42: Operation not permitted"),
        "write refused by the device cgroup: {dev}"
    );
    let rules = host.logs_when_done("dv-rules-1");
    assert!(
        rules.contains("/tmp/a': No such device or address"),
        "the rule allows 42:2: {rules}"
    );
    assert!(
        rules.contains("/tmp/b': Operation not permitted"),
        "and not 42:3: {rules}"
    );

    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--device",
        &format!("{node}:/dev/x42:r"),
        "busybox:e2e",
        "sh",
        "-c",
        "cat /dev/x42; echo > /dev/x42; true",
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("x42': No such device or address"), "{text}");
    assert!(text.contains("x42: Operation not permitted"), "{text}");
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--device",
        "/etc/hostname",
        "busybox:e2e",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a character or block device"),
        "{:?}",
        out
    );
    host.down_clean();
}

const MODE_MAC: &str = r#"
name: mm
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    mac_address: 02:42:ac:11:00:99
    volumes:
      - type: tmpfs
        target: /scratch
        tmpfs: {size: 1m, mode: 0o1770}
    command: ["sh", "-c", "stat -c 'mode %a' /scratch; cat /sys/class/net/eth0/address; echo done; exec sleep 3600"]
"#;

/// A tmpfs mount's `mode` is its root's permission bits; the service-level `mac_address`
/// is the address of its (first) network's interface.
#[test_with::root()]
#[test]
fn tmpfs_mode_and_service_mac_address_apply() {
    host::require_tools();
    let host = Host::new("mm");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), MODE_MAC).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("mac_address") && !stderr.contains("tmpfs.mode"),
        "no warning: {stderr}"
    );
    let logs = host.logs_when_done("mm-app-1");
    assert!(logs.contains("mode 1770"), "{logs}");
    assert!(logs.contains("02:42:ac:11:00:99"), "{logs}");
    host.down_clean();
}

const MEMORY: &str = r#"
name: me
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    mem_limit: 64m
    mem_reservation: 32m
    memswap_limit: 128m
    mem_swappiness: 10
    command: ["sleep", "3600"]
"#;

/// A container's cgroup file of the memory controller, found by the container's id.
fn memory_file(id: &str, file: &str) -> Option<String> {
    let out = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "6",
            "-type",
            "d",
            "-name",
            id,
        ])
        .output()
        .expect("find");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|d| std::path::Path::new(d).join(file))
        .find(|p| p.exists())
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|s| s.trim().to_string())
}

/// `mem_reservation`, `memswap_limit` and `mem_swappiness` reach the container's memory
/// cgroup (v1: soft limit, memory+swap limit, swappiness; v2: memory.low, swap.max).
#[test_with::root()]
#[test]
fn memory_reservation_swap_and_swappiness_reach_the_cgroup() {
    host::require_tools();
    let host = Host::new("me");
    host.busybox_image();
    up_unwarned(&host, MEMORY, "mem");
    let id = host.ps_ids().into_iter().next().expect("a container");
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.soft_limit_in_bytes").exists();
    if v1 {
        assert_eq!(
            memory_file(&id, "memory.soft_limit_in_bytes").as_deref(),
            Some("33554432")
        );
        assert_eq!(memory_file(&id, "memory.swappiness").as_deref(), Some("10"));
        if std::path::Path::new("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes").exists() {
            assert_eq!(
                memory_file(&id, "memory.memsw.limit_in_bytes").as_deref(),
                Some("134217728")
            );
        }
    } else {
        assert_eq!(memory_file(&id, "memory.low").as_deref(), Some("33554432"));
        if let Some(swap) = memory_file(&id, "memory.swap.max") {
            assert_eq!(swap, "67108864");
        }
    }
    host.down_clean();
}

const OOM: &str = r#"
name: oo
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    oom_score_adj: 345
    command: ["sh", "-c", "echo adj $$(cat /proc/self/oom_score_adj); echo done; exec sleep 3600"]
"#;

/// `oom_score_adj` (and `container run --oom-score-adj`) is the container process's.
/// Positive values only: lowering one needs CAP_SYS_RESOURCE, which a test host may lack.
#[test_with::root()]
#[test]
fn oom_score_adj_is_the_container_processes() {
    host::require_tools();
    let host = Host::new("oo");
    host.busybox_image();
    up_unwarned(&host, OOM, "oom_score_adj");
    let logs = host.logs_when_done("oo-app-1");
    assert!(logs.contains("adj 345"), "{logs}");
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--oom-score-adj",
        "77",
        "busybox:e2e",
        "cat",
        "/proc/self/oom_score_adj",
    ]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "77", "{out:?}");
    host.down_clean();
}

const GROUPS: &str = r#"
name: ga
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    group_add: [mail, "4242"]
    volumes: ["./group:/etc/group:ro"]
    command: ["sh", "-c", "echo groups $$(id -G) names $$(id -Gn); echo done; exec sleep 3600"]
"#;

/// `group_add` (and `container run --group-add`) are supplementary groups of the process:
/// a name from the container's /etc/group and a bare number.
#[test_with::root()]
#[test]
fn group_add_gives_the_process_its_groups() {
    host::require_tools();
    let host = Host::new("ga");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), GROUPS).expect("compose");
    // The name resolves in the container's own group file.
    std::fs::write(host.stack.join("group"), "root:x:0:\nmail:x:8:\n").expect("group");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("group_add"), "no warning: {stderr}");
    let logs = host.logs_when_done("ga-app-1");
    let line = logs
        .lines()
        .find(|l| l.starts_with("groups "))
        .unwrap_or_default();
    assert!(line.split_whitespace().any(|t| t == "4242"), "{logs}");
    assert!(line.split_whitespace().any(|t| t == "8"), "{logs}");
    assert!(line.split_whitespace().any(|t| t == "mail"), "{logs}");
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--group-add",
        "4243",
        "busybox:e2e",
        "sh",
        "-c",
        "id -G",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.split_whitespace().any(|t| t == "4243"), "{out:?}");
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--group-add",
        "no-such-group",
        "busybox:e2e",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no-such-group"),
        "{out:?}"
    );
    host.down_clean();
}

/// `cgroup_parent` (and `container run --cgroup-parent`) is where the container's cgroup is
/// made; `..` is refused.
#[test_with::root()]
#[test]
fn cgroup_parent_places_the_container_cgroup() {
    host::require_tools();
    let host = Host::new("cp");
    host.busybox_image();
    let parent = format!("berth-test-cp-{}", std::process::id());
    let file = format!(
        "name: cp\nservices:\n  app:\n    image: busybox:e2e\n    init: true\n    stop_grace_period: 1s\n    network_mode: none\n    cgroup_parent: {parent}\n    command: [sleep, \"3600\"]\n"
    );
    up_unwarned(&host, &file, "cgroup_parent");
    let id = host.ps_ids().into_iter().next().expect("a container");
    let out = std::process::Command::new("find")
        .args([
            "/sys/fs/cgroup",
            "-maxdepth",
            "4",
            "-type",
            "d",
            "-name",
            &id,
        ])
        .output()
        .expect("find");
    let dirs = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(!dirs.trim().is_empty(), "the container's cgroup exists");
    assert!(
        dirs.lines()
            .all(|d| d.ends_with(&format!("/{parent}/{id}"))),
        "{dirs}"
    );
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--cgroup-parent",
        "../escape",
        "busybox:e2e",
        "true",
    ]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cgroup parent"),
        "{out:?}"
    );
    host.down_clean();
    // The parent stays after the container, as with Docker: the test removes its own.
    for d in dirs.lines() {
        if let Some(p) = std::path::Path::new(d).parent() {
            let _ = std::fs::remove_dir(p);
        }
    }
}

const NAMESPACES: &str = r#"
name: ns
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  shared:
    <<: *quick
    pid: host
    uts: host
    cgroup: host
    command: ["sh", "-c", "for n in pid uts cgroup; do echo $$n $$(readlink /proc/self/ns/$$n); done; echo host $$(hostname); echo done; exec sleep 3600"]
  own:
    <<: *quick
    cgroup: private
    domainname: example.test
    annotations: {com.example.team: storage}
    deploy:
      resources:
        reservations: {memory: 32m}
    command: ["sh", "-c", "for n in pid uts cgroup; do echo $$n $$(readlink /proc/self/ns/$$n); done; echo domain $$(cat /proc/sys/kernel/domainname); echo done; exec sleep 3600"]
"#;

/// The host's namespace link of kind `ns`, as the container prints it (`pid:[4026531836]`).
fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .expect("host namespace")
        .display()
        .to_string()
}

/// `pid: host`, `uts: host` and `cgroup: host` put the container in the host's namespaces
/// (`private` and unset: its own); `domainname` is its UTS namespace's; `annotations` are the
/// runtime spec's and inspect's; `deploy.resources.reservations.memory` is the cgroup's soft
/// limit. `container run --pid/--uts/--cgroupns/--domainname/--annotation` do the same.
#[test_with::root()]
#[test]
fn namespaces_domainname_annotations_and_reservations_apply() {
    host::require_tools();
    let host = Host::new("ns");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), NAMESPACES).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for key in [
        "pid",
        "uts",
        "cgroup",
        "domainname",
        "annotations",
        "reservations",
    ] {
        assert!(!stderr.contains(key), "no warning about {key}: {stderr}");
    }
    let shared = host.logs_when_done("ns-shared-1");
    let own = host.logs_when_done("ns-own-1");
    for ns in ["pid", "uts", "cgroup"] {
        let line = format!("{ns} {}", host_ns(ns));
        assert!(shared.lines().any(|l| l == line), "{line} in {shared}");
        assert!(!own.lines().any(|l| l == line), "{line} not in {own}");
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
    let line = format!("host {}", hostname.trim());
    assert!(shared.lines().any(|l| l == line), "{line} in {shared}");
    assert!(own.lines().any(|l| l == "domain example.test"), "{own}");

    let inspect = host.ok(&["container", "inspect", "ns-own-1"]);
    let doc: serde_json::Value = serde_json::from_str(&inspect).expect("inspect json");
    assert_eq!(
        doc[0]["HostConfig"]["Annotations"]["com.example.team"], "storage",
        "{inspect}"
    );
    let id = doc[0]["Id"].as_str().expect("id").to_string();
    let dir = doc[0]["Paths"]["Dir"].as_str().expect("dir").to_string();
    let bundle = std::fs::read_to_string(std::path::Path::new(&dir).join("config.json"))
        .expect("the bundle's config.json");
    let bundle: serde_json::Value = serde_json::from_str(&bundle).expect("bundle json");
    assert_eq!(bundle["annotations"]["com.example.team"], "storage");
    let v1 = std::path::Path::new("/sys/fs/cgroup/memory/memory.soft_limit_in_bytes").exists();
    let file = if v1 {
        "memory.soft_limit_in_bytes"
    } else {
        "memory.low"
    };
    assert_eq!(memory_file(&id, file).as_deref(), Some("33554432"));

    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        "host",
        "--uts",
        "host",
        "--cgroupns",
        "host",
        "busybox:e2e",
        "sh",
        "-c",
        "for n in pid uts cgroup; do echo $n $(readlink /proc/self/ns/$n); done",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    for ns in ["pid", "uts", "cgroup"] {
        let line = format!("{ns} {}", host_ns(ns));
        assert!(stdout.lines().any(|l| l == line), "{line} in {out:?}");
    }
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--domainname",
        "run.test",
        "busybox:e2e",
        "cat",
        "/proc/sys/kernel/domainname",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "run.test",
        "{out:?}"
    );
    host.down_clean();
}

const VOLUMES_FROM: &str = r#"
name: vf
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  data:
    <<: *quick
    volumes: ["/shared", "named:/named"]
    command: ["sh", "-c", "echo anon > /shared/f; echo named > /named/f; echo done; exec sleep 3600"]
  reader:
    <<: *quick
    depends_on: [data]
    volumes_from: ["data:ro"]
    command: ["sh", "-c", "sleep 1; cat /shared/f /named/f; touch /shared/w || echo read-only; echo done; exec sleep 3600"]
  writer:
    <<: *quick
    volumes_from: [data]
    command: ["sh", "-c", "sleep 1; cat /shared/f; touch /named/w && echo wrote; echo done; exec sleep 3600"]
volumes:
  named: {}
"#;

/// `volumes_from` mounts the volumes (anonymous and named) of the other service's container,
/// read-only with `:ro`, as they are without; `container run --volumes-from` does the same.
#[test_with::root()]
#[test]
fn volumes_from_shares_the_other_containers_volumes() {
    host::require_tools();
    let host = Host::new("vf");
    host.busybox_image();
    up_unwarned(&host, VOLUMES_FROM, "volumes_from");
    let reader = host.logs_when_done("vf-reader-1");
    for line in ["anon", "named", "read-only"] {
        assert!(reader.lines().any(|l| l == line), "{line} in {reader}");
    }
    let writer = host.logs_when_done("vf-writer-1");
    for line in ["anon", "wrote"] {
        assert!(writer.lines().any(|l| l == line), "{line} in {writer}");
    }
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--volumes-from",
        "vf-data-1:ro",
        "busybox:e2e",
        "sh",
        "-c",
        "cat /shared/f /named/f; test -e /named/w && echo seen",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        ["anon", "named", "seen"],
        "{out:?}"
    );
    host.down_clean();
}

const OWNED_FILES: &str = r#"
name: of
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    secrets:
      - {source: token, uid: "1234", gid: "5678", mode: 0400}
      - {source: plain, target: plain}
    configs:
      - {source: conf, target: /etc/app.conf, mode: 0640}
    command: ["sh", "-c", "stat -c '%n %u %g %a' /run/secrets/token /run/secrets/plain /etc/app.conf; cat /run/secrets/token /etc/app.conf; echo done; exec sleep 3600"]
secrets:
  token: {file: ./token.txt}
  plain: {file: ./plain.txt}
configs:
  conf: {file: ./app.conf}
"#;

/// Secrets' and configs' `uid`, `gid` and `mode` are the mounted file's (a copy of the host
/// file with them; unset ones 0, 0 and 0444); without them the host file itself is bound.
#[test_with::root()]
#[test]
fn secret_and_config_owner_and_mode_apply() {
    use std::os::unix::fs::PermissionsExt;
    host::require_tools();
    let host = Host::new("of");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), OWNED_FILES).expect("compose");
    for (file, content) in [
        ("token.txt", "s3cret\n"),
        ("plain.txt", "plain\n"),
        ("app.conf", "conf\n"),
    ] {
        let p = host.stack.join(file);
        std::fs::write(&p, content).expect("file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    }
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for key in ["uid", "gid", "mode"] {
        assert!(!stderr.contains(key), "no warning about {key}: {stderr}");
    }
    let logs = host.logs_when_done("of-app-1");
    for line in [
        "/run/secrets/token 1234 5678 400",
        "/run/secrets/plain 0 0 644",
        "/etc/app.conf 0 0 640",
        "s3cret",
        "conf",
    ] {
        assert!(logs.lines().any(|l| l == line), "{line} in {logs}");
    }
    host.down_clean();
}

fn hooks_file(out: &str, post_start_exit: u8) -> String {
    format!(
        r#"
name: hk
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    volumes: ["{out}:/out"]
    command: ["sh", "-c", "echo started; exec sleep 3600"]
    post_start:
      - command: ["sh", "-c", "echo post $$(id -u) $$PWD $$HOOK > /out/post; exit {post_start_exit}"]
        user: "1234"
        working_dir: /tmp
        environment: {{HOOK: yes}}
    pre_stop:
      - command: sh -c 'echo pre > /out/pre'
"#
    )
}

/// `post_start` runs in the container after it starts (with its user, working_dir and
/// environment), `pre_stop` before it is stopped; a failing `post_start` fails `up` naming
/// the service.
#[test_with::root()]
#[test]
fn post_start_and_pre_stop_hooks_run_in_the_container() {
    use std::os::unix::fs::PermissionsExt;
    host::require_tools();
    let host = Host::new("hk");
    host.busybox_image();
    let out_dir = host.dir.path().join("out");
    std::fs::create_dir_all(&out_dir).expect("out dir");
    // The post_start hook runs as uid 1234.
    std::fs::set_permissions(&out_dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let out = out_dir.display().to_string();
    std::fs::write(host.stack.join("compose.yaml"), hooks_file(&out, 0)).expect("compose");
    let run = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert!(
        !stderr.contains("post_start") && !stderr.contains("pre_stop"),
        "{stderr}"
    );
    let post = std::fs::read_to_string(out_dir.join("post")).expect("post_start ran");
    assert_eq!(post.trim(), "post 1234 /tmp yes");
    assert!(!out_dir.join("pre").exists());
    host.ok(&["stop", "-t", "1"]);
    let pre = std::fs::read_to_string(out_dir.join("pre")).expect("pre_stop ran");
    assert_eq!(pre.trim(), "pre");
    host.down_clean();

    std::fs::write(host.stack.join("compose.yaml"), hooks_file(&out, 3)).expect("compose");
    let run = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "a failing post_start fails up");
    assert!(
        stderr.contains("service app") && stderr.contains("post_start[0]"),
        "{stderr}"
    );
    host.down_clean();
}

const NOCOPY: &str = r#"
name: nc
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
  command: ["sh", "-c", "echo files $$(ls -A /var/www); echo done; exec sleep 3600"]
services:
  copied:
    <<: *quick
    volumes: ["filled:/var/www"]
  empty:
    <<: *quick
    volumes:
      - {type: volume, source: left, target: /var/www, volume: {nocopy: true}}
volumes:
  filled: {}
  left: {}
"#;

/// A volume is filled from the image's content at its target on first use, unless
/// `volume.nocopy` (and `container run --mount ...,volume-nocopy`, `-v NAME:DST:nocopy`).
#[test_with::root()]
#[test]
fn volume_nocopy_leaves_the_volume_empty() {
    host::require_tools();
    let host = Host::new("nc");
    host.busybox_image();
    up_unwarned(&host, NOCOPY, "nocopy");
    let copied = host.logs_when_done("nc-copied-1");
    assert!(copied.lines().any(|l| l == "files index.html"), "{copied}");
    let empty = host.logs_when_done("nc-empty-1");
    assert!(empty.lines().any(|l| l.trim() == "files"), "{empty}");
    for how in [
        [
            "--mount",
            "type=volume,src=nc-run1,dst=/var/www,volume-nocopy",
        ],
        ["-v", "nc-run2:/var/www:nocopy"],
    ] {
        let mut args = vec!["container", "run", "--rm", "--network", "none"];
        args.extend(how);
        args.extend(["busybox:e2e", "sh", "-c", "echo files $(ls -A /var/www)"]);
        let out = host.berth(&args);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "files",
            "{out:?}"
        );
    }
    host.down_clean();
    for v in ["nc-run1", "nc-run2"] {
        host.berth(&["volume", "rm", v]);
    }
}
