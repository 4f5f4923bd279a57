//! Compose `runtime: crun|runc`: a service's bundle runs under the named OCI runtime, yet
//! names, logs, exec and `down` behave as with berth's own executor; an unknown runtime is
//! refused naming the service.

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: rt
services:
  web:
    image: busybox:e2e
    runtime: crun
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    stop_grace_period: 1s
  probe:
    image: busybox:e2e
    runtime: runc
    command: ["sh", "-c", "echo probe-started; sleep 3600"]
    stop_grace_period: 1s
    depends_on: [web]
"#;

fn have(tool: &str) -> bool {
    std::process::Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test_with::root()]
#[test]
fn services_run_under_crun_and_runc_and_reach_each_other_by_name() {
    host::require_tools();
    assert!(
        have("crun") && have("runc"),
        "needs crun and runc: run scripts/deps.sh"
    );
    let host = Host::new("rt");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    host.ok(&["up", "-d", "--wait", "--wait-timeout", "60"]);
    let ps = host.ps();
    assert_eq!(ps.len(), 2, "{ps:?}");
    for row in &ps {
        assert_eq!(row["status"], "running", "{row}");
    }
    let got = host.ok(&["exec", "-T", "probe", "wget", "-qO-", "http://web/"]);
    assert!(got.contains("hello from web"), "{got}");
    let mut logs = String::new();
    for _ in 0..20 {
        logs = host.ok(&["logs", "probe"]);
        if logs.contains("probe-started") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    assert!(logs.contains("probe-started"), "{logs}");
    let ids: Vec<String> = ps
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");

    std::fs::write(
        host.stack.join("compose.yaml"),
        STACK.replace("runtime: crun", "runtime: nvidia"),
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("service web") && err.contains("\"nvidia\""),
        "the error names the service and the value: {err}"
    );
    host.berth(&["down"]);
}
