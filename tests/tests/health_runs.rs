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
