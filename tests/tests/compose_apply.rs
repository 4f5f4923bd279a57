//! Compose keys that lower into the container's create body, observed inside (or on) the
//! running container, end to end as root with the real binary: `deploy.restart_policy`,
//! `devices` and `device_cgroup_rules` (and `container run --device`).

use std::time::{Duration, Instant};

use berth_tests::host::{self, Host};

fn ids(host: &Host) -> Vec<String> {
    host.ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn down_clean(host: &Host) {
    let ids = ids(host);
    host.ok(&["down", "-t", "1"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

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

/// Without `restart:`, `deploy.restart_policy` is the policy: on-failure with max_attempts
/// 2 runs three times, `none` once; `restart:` when given wins.
#[test_with::root()]
#[test]
fn deploy_restart_policy_is_enforced_when_restart_is_absent() {
    host::require_tools();
    let host = Host::new("dr");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), DEPLOY_RESTART).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("restart_policy"), "no warning: {stderr}");
    let start = Instant::now();
    while runs(&host, "dr-crash-1", "run") < 3 && start.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(runs(&host, "dr-crash-1", "run"), 3, "one run, two restarts");
    assert_eq!(runs(&host, "dr-never-1", "run"), 1, "condition none");
    assert_eq!(runs(&host, "dr-ignored-1", "run"), 1, "restart: wins");
    down_clean(&host);
}
