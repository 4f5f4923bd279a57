//! Healthchecks follow a container across runs that the daemon did not start itself:
//! `berth start` and `berth restart` drive the runtime directly, and the daemon used to keep
//! no check for the new run (`ps` showed no health, `up --wait` passed at once, a dependent's
//! `service_healthy` waited forever). Found by the ZooKeeper example's leader stop/start.

use berth_tests::host::{self, Host};

use std::time::{Duration, Instant};

const STACK: &str = r#"
name: healthruns
services:
  web:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      timeout: 5s
"#;

fn health(host: &Host) -> (String, serde_json::Value) {
    let rows = host.ps();
    assert_eq!(rows.len(), 1, "{rows:?}");
    (
        rows[0]["status"].as_str().unwrap_or_default().to_string(),
        rows[0]["health"].clone(),
    )
}

/// Polls until the running container reports `healthy`; while it runs it must always report
/// some health (`starting` before its first check), never none.
fn becomes_healthy(host: &Host, after: &str) {
    let start = Instant::now();
    loop {
        let (status, h) = health(host);
        if status == "running" {
            assert!(h.is_string(), "{after}: running without health: {h}");
            if h == "healthy" {
                return;
            }
            assert_eq!(h, "starting", "{after}");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{after}: not healthy after 30 s ({status}, {h})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test_with::root()]
#[test]
fn start_and_restart_outside_the_daemon_rearm_the_healthcheck() {
    host::require_tools();
    let host = Host::new("hruns");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    host.ok(&["up", "-d", "--wait", "--wait-timeout", "60"]);
    assert_eq!(health(&host).1, "healthy");
    let id = host.ps()[0]["id"].as_str().unwrap_or_default().to_string();

    host.ok(&["stop", "web"]);
    let (status, h) = health(&host);
    assert_ne!(status, "running");
    assert!(h.is_null(), "a stopped container has no health: {h}");

    host.ok(&["start", "web"]);
    becomes_healthy(&host, "start");
    host.ok(&["restart", "web"]);
    becomes_healthy(&host, "restart");

    host.ok(&["down"]);
    let leaks = host.leaks(&[id]);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

const HUNG_CHECK: &str = r#"
name: hunghealth
services:
  web:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "sh", "-c", "sleep 7391; true"]
      interval: 30s
      timeout: 1s
      retries: 1
"#;

/// The host pids whose command line is the hung check's (`sh -c 'sleep 7391; true'`) or its
/// child's (`sleep 7391`).
fn hung_checks() -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let cmd = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        if cmd.contains("sleep 7391") {
            found.push(format!("{} {cmd}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

/// A check that overruns its timeout is marked failed and killed, its child too, as Docker
/// kills the probe's exec: none of its processes is left in the container.
#[test_with::root()]
#[test_with::executable(docker)]
#[test]
fn a_check_past_its_timeout_is_killed() {
    host::require_tools();
    let host = Host::new("hhung");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), HUNG_CHECK).expect("compose");
    host.ok(&["up", "-d"]);
    let id = host.ps()[0]["id"].as_str().unwrap_or_default().to_string();
    let start = Instant::now();
    while health(&host).1 != "unhealthy" {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "not unhealthy after 30 s: {:?}",
            health(&host)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // The next check is 30 s away: whatever runs `sleep 7391` now is the first one, left.
    let start = Instant::now();
    let mut left = hung_checks();
    while !left.is_empty() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        left = hung_checks();
    }
    let docker = berth_tests::docker::Docker::new(&host);
    let log = docker.ok(&["inspect", "-f", "{{json .State.Health.Log}}", &id]);
    host.ok(&["down"]);
    assert!(left.is_empty(), "the timed-out check still runs: {left:?}");
    assert!(
        log.contains("Health check exceeded timeout (1s)"),
        "inspect shows the timeout: {log}"
    );
    let leaks = host.leaks(&[id]);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}
