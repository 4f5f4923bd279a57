//! `berth up` / `down` end to end, as root, with the real binary, runtime and netd.
//! The harness (a netns per test, its own --root/--run, leak check) is in `berth_tests::host`.

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: e2e
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 2s
services:
  db:
    <<: *quick
    command: ["sleep", "3600"]
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
  web:
    <<: *quick
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
    ports: ["18080:80"]
    depends_on:
      db: { condition: service_healthy }
"#;

fn ids(ps: &[serde_json::Value]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = ps
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test_with::root()]
#[test]
fn up_resolves_names_publishes_ports_converges_and_down_leaves_nothing() {
    host::require_tools();
    let host = Host::new("up");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");

    let out = host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    assert!(out.contains("every service is running"), "{out}");
    let ps = host.ps();
    assert_eq!(ps.len(), 2, "{ps:?}");
    for row in &ps {
        assert_eq!(row["status"], "running", "{row}");
    }
    let db = ps.iter().find(|r| r["service"] == "db").expect("db row");
    assert_eq!(
        db["health"], "healthy",
        "web started only after db was healthy"
    );

    // By name, no IP anywhere: db reaches web's HTTP server through the embedded DNS.
    let got = host.ok(&[
        "container",
        "exec",
        "e2e-db-1",
        "wget",
        "-qO-",
        "http://web/",
    ]);
    assert!(got.contains("hello from web"), "{got}");
    let got = host.ok(&["container", "exec", "e2e-web-1", "nslookup", "e2e-db-1"]);
    assert!(got.contains("Address: 10."), "{got}");
    // The published port answers on the host's loopback.
    let curl = host.sh("curl -sS --max-time 5 http://127.0.0.1:18080/");
    assert!(
        String::from_utf8_lossy(&curl.stdout).contains("hello from web"),
        "{}",
        String::from_utf8_lossy(&curl.stderr)
    );

    // Converged: a second up does nothing and keeps the same containers.
    let before = ids(&ps);
    let out = host.ok(&["up", "-d"]);
    assert!(out.contains("0 step(s) done"), "{out}");
    assert_eq!(ids(&host.ps()), before);

    // Editing one service recreates that service only.
    let edited = STACK.replace(
        "\"-h\", \"/var/www\"]",
        "\"-h\", \"/var/www\"]\n    environment: { EDITED: \"1\" }",
    );
    std::fs::write(host.stack.join("compose.yaml"), edited).expect("compose");
    host.ok(&["up", "-d"]);
    let after = ids(&host.ps());
    assert_eq!(after[0], before[0], "db kept its container");
    assert_ne!(after[1].1, before[1].1, "web was recreated");

    let all_ids: Vec<String> = before
        .iter()
        .chain(&after)
        .map(|(_, id)| id.clone())
        .collect();
    host.ok(&["down"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&all_ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

const RESTARTS: &str = r#"
name: rp
services:
  crash:
    image: busybox:e2e
    command: ["sh", "-c", "echo run; exit 3"]
    restart: "on-failure:2"
  steady:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    restart: always
"#;

#[test_with::root()]
#[test]
fn restart_policies_are_enforced_and_a_user_stop_is_respected() {
    host::require_tools();
    let host = Host::new("rp");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), RESTARTS).expect("compose");
    host.ok(&["up", "-d"]);

    // on-failure:2 -> the first run and two restarts (backoff 100 ms, 200 ms), then it stays down.
    let runs = |h: &Host| {
        h.ok(&["container", "logs", "rp-crash-1"])
            .lines()
            .filter(|l| l.trim() == "run")
            .count()
    };
    let start = std::time::Instant::now();
    while runs(&host) < 3 && start.elapsed() < std::time::Duration::from_secs(20) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(runs(&host), 3, "one run and exactly two restarts");

    // restart: always keeps running, but a user's stop is respected.
    host.ok(&["container", "stop", "rp-steady-1"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let ps = host.ps();
    let steady = ps
        .iter()
        .find(|r| r["service"] == "steady")
        .expect("steady");
    assert_ne!(
        steady["status"], "running",
        "a stopped container stays stopped: {steady}"
    );

    let ids: Vec<String> = ps
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn a_killed_daemon_loses_nothing() {
    host::require_tools();
    let host = Host::new("kd");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    host.ok(&["up", "--wait", "--wait-timeout", "60"]);
    let before = ids(&host.ps());

    let pid = std::fs::read_to_string(host.run.join("berth.pid")).expect("daemon pid");
    let st = std::process::Command::new("kill")
        .args(["-9", pid.trim()])
        .status()
        .expect("kill");
    assert!(st.success());
    std::thread::sleep(std::time::Duration::from_millis(200));

    // The next call starts a new daemon; containers kept running under their shims.
    let after = host.ps();
    assert_eq!(ids(&after), before, "no container lost or duplicated");
    assert!(after.iter().all(|r| r["status"] == "running"), "{after:?}");
    // Healthchecks are re-armed from the containers' labels.
    let start = std::time::Instant::now();
    loop {
        let ps = host.ps();
        let db = ps.iter().find(|r| r["service"] == "db").expect("db");
        if db["health"] == "healthy" {
            break;
        }
        assert!(
            start.elapsed().as_secs() < 15,
            "db never healthy again: {db}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    // Names answer again from the re-adopted state.
    let got = host.ok(&[
        "container",
        "exec",
        "e2e-db-1",
        "wget",
        "-qO-",
        "http://web/",
    ]);
    assert!(got.contains("hello from web"), "{got}");
    let out = host.ok(&["up", "-d"]);
    assert!(
        out.contains("0 step(s) done"),
        "converged after the restart: {out}"
    );

    let all: Vec<String> = before.iter().map(|(_, id)| id.clone()).collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&all);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn attached_up_streams_prefixed_logs_and_ctrl_c_stops_the_stack() {
    host::require_tools();
    let host = Host::new("at");
    host.busybox_image();
    let stack = r#"
name: at
services:
  talker:
    image: busybox:e2e
    init: true
    stop_grace_period: 2s
    command: ["sh", "-c", "while true; do echo tick; sleep 0.3; done"]
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    // Ctrl-C once the prefixed lines flow (not after a fixed time: a loaded machine may take
    // longer to get there, and a signal before attached mode only kills the CLI).
    let mut up = host.berth_for(300, &["up"]);
    let stdout = up.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut all = String::new();
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("talker-1  | tick") {
                let _ = tx.send(());
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    let ticked = rx.recv_timeout(std::time::Duration::from_secs(60)).is_ok();
    // A second tick, so the stream is seen to follow, not only to replay.
    let ticked = ticked && rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok();
    // One Ctrl-C, to berth itself: `timeout` (the harness's guard around it) would pass a
    // signal on twice, to its child and to its process group, which is a second Ctrl-C (the
    // one that ends the CLI at once) arriving before the first is handled.
    let tp = up.id();
    let berth = std::fs::read_to_string(format!("/proc/{tp}/task/{tp}/children"))
        .ok()
        .and_then(|c| c.split_whitespace().next().and_then(|p| p.parse().ok()))
        .unwrap_or(tp as i32);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(berth),
        nix::sys::signal::Signal::SIGINT,
    );
    let out = up.wait_with_output().expect("attached up");
    let stdout = reader.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        ticked,
        "no prefixed log lines within 60 s: {stdout}\n{stderr}"
    );
    assert!(stderr.contains("Gracefully stopping"), "{stderr}");
    let ps = host.ps();
    assert!(
        ps.iter().all(|r| r["status"] != "running"),
        "Ctrl-C stopped the stack: {ps:?}"
    );
    let ids: Vec<String> = ps
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn run_starts_dependencies_and_a_one_off_container() {
    host::require_tools();
    let host = Host::new("ro");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    // web depends on db (healthy): run starts db first, waits, then the one-off.
    let out = host.ok(&[
        "run",
        "--rm",
        "web",
        "sh",
        "-c",
        "echo one-off; nslookup db",
    ]);
    assert!(
        out.contains("one-off") && out.contains("Address: 10."),
        "{out}"
    );
    let failed = host.berth(&["run", "--rm", "web", "sh", "-c", "exit 7"]);
    assert_eq!(
        failed.status.code(),
        Some(7),
        "the one-off's exit status is berth's"
    );
    let ps = host.ps();
    assert_eq!(ps.len(), 1, "only db runs; one-offs were removed: {ps:?}");
    assert_eq!(ps[0]["service"], "db");
    // A dependency scaled up by hand is started, never scaled back down, by `run`.
    host.ok(&["up", "-d", "--scale", "db=2", "db"]);
    host.ok(&["run", "--rm", "web", "true"]);
    let ps = host.ps();
    assert_eq!(ps.len(), 2, "run kept both db replicas: {ps:?}");
    assert!(ps.iter().all(|r| r["service"] == "db"), "{ps:?}");
    let ids: Vec<String> = ps
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn up_builds_images_and_rebuild_recreates_only_on_change() {
    host::require_tools();
    let host = Host::new("bd");
    host.busybox_image();
    let app = host.stack.join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(
        app.join("Dockerfile"),
        "FROM busybox:e2e\nRUN echo built > /built.txt\nCOPY hello.txt /hello.txt\n",
    )
    .expect("Dockerfile");
    std::fs::write(app.join("hello.txt"), "first\n").expect("hello");
    let stack = r#"
name: bd
services:
  app:
    build: ./app
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    host.ok(&["up", "-d"]);
    let got = host.ok(&["exec", "-T", "app", "cat", "/built.txt", "/hello.txt"]);
    assert!(got.contains("built") && got.contains("first"), "{got}");
    let first = ids(&host.ps());

    // Rebuilding an unchanged context hits the cache: same image, nothing recreated.
    let out = host.ok(&["up", "-d", "--build"]);
    assert!(out.contains("0 step(s) done"), "{out}");
    assert_eq!(ids(&host.ps()), first);

    // A changed file reruns the COPY: new image, the container is recreated.
    std::fs::write(app.join("hello.txt"), "second\n").expect("hello");
    host.ok(&["up", "-d", "--build"]);
    let second = ids(&host.ps());
    assert_ne!(second, first, "recreated for the new image");
    let got = host.ok(&["exec", "-T", "app", "cat", "/hello.txt"]);
    assert!(got.contains("second"), "{got}");

    let all: Vec<String> = first
        .iter()
        .chain(&second)
        .map(|(_, id)| id.clone())
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&all);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
    let containers = std::fs::read_dir(host.root.join("containers"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(containers, 0, "no build container left behind");
}

#[test_with::root()]
#[test]
fn links_aliases_extra_hosts_secrets_and_configs_reach_the_container() {
    host::require_tools();
    let host = Host::new("lnk");
    host.busybox_image();
    let stack = r#"
name: lnk
x-s: &s
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  command: ["sleep", "300"]
services:
  db:
    <<: *s
  web:
    <<: *s
    links: ["db:database"]
    dns: [127.0.0.54]
    cpu_quota: 50000
    logging:
      driver: json-file
      options: { max-size: 1m, max-file: "2" }
    extra_hosts:
      - "static.test=10.9.9.9"
      - "gw.test:host-gateway"
    secrets: [db_pw]
    configs:
      - source: app_conf
        target: /etc/app.conf
secrets:
  db_pw:
    file: ./pw.txt
configs:
  app_conf:
    file: ./app.conf
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    std::fs::write(host.stack.join("pw.txt"), "s3cret\n").expect("secret");
    std::fs::write(host.stack.join("app.conf"), "mode=test\n").expect("config");
    // web's `dns:` server: dnsmasq on a loopback address of the simulated host (netd forwards
    // from the host's namespace).
    let pid_file = host.stack.join("dnsmasq.pid");
    let dm = host.sh(&format!(
        "dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
         --listen-address=127.0.0.54 --port=53 --address=/upstream.test/10.77.0.7 \
         --pid-file={}",
        pid_file.display()
    ));
    assert!(dm.status.success(), "dnsmasq: {dm:?}");
    host.ok(&["up", "-d"]);
    // A compose file written for --link: the alias resolves to the linked service.
    let answers = |name: &str| -> Vec<String> {
        let out = host.ok(&["exec", "-T", "web", "nslookup", name]);
        out.split("Name:")
            .skip(1)
            .flat_map(|a| a.lines().filter_map(|l| l.strip_prefix("Address:")))
            .map(|a| a.trim().to_string())
            .collect()
    };
    let db = answers("db");
    assert!(!db.is_empty(), "db does not resolve");
    assert_eq!(answers("database"), db);
    // The alias is web's alone, as with Docker's links: db itself does not know it.
    let o = host.berth(&["exec", "-T", "db", "nslookup", "database"]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        !o.status.success() || !text.split("Name:").skip(1).any(|a| a.contains("Address")),
        "database resolves for db too: {text}"
    );
    // `dns:` makes that server web's upstream; the project's names still resolve (above).
    let mut up = Vec::new();
    for _ in 0..20 {
        let o = host.berth(&["exec", "-T", "web", "nslookup", "-type=a", "upstream.test"]);
        up = String::from_utf8_lossy(&o.stdout)
            .split("Name:")
            .skip(1)
            .flat_map(|a| a.lines().filter_map(|l| l.strip_prefix("Address:")))
            .map(|a| a.trim().to_string())
            .collect();
        if !up.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    if let Ok(pid) = std::fs::read_to_string(&pid_file) {
        let _ = host.sh(&format!("kill {}", pid.trim()));
    }
    assert_eq!(up, ["10.77.0.7"], "web's dns: server answers upstream.test");
    // cpu_quota (over the default 100 ms period) and logging options reach the container.
    let inspect = host.ok(&["container", "inspect", "lnk-web-1"]);
    let v: serde_json::Value = serde_json::from_str(inspect.trim()).expect("inspect json");
    let cfg = &v[0]["Config"];
    assert_eq!(cfg["resources"]["cpus"], 0.5, "{cfg}");
    assert_eq!(cfg["log_max_size"], 1024 * 1024, "{cfg}");
    assert_eq!(cfg["log_max_files"], 2, "{cfg}");
    let hosts = host.ok(&["exec", "-T", "web", "cat", "/etc/hosts"]);
    assert!(hosts.contains("10.9.9.9\tstatic.test"), "{hosts}");
    let gw = hosts
        .lines()
        .find(|l| l.ends_with("\tgw.test"))
        .unwrap_or_else(|| panic!("no gw.test line in {hosts}"));
    assert!(gw.starts_with("10."), "{gw}");
    // File-based secrets and configs, read-only where compose puts them.
    let pw = host.ok(&["exec", "-T", "web", "cat", "/run/secrets/db_pw"]);
    assert_eq!(pw.trim(), "s3cret");
    let conf = host.ok(&["exec", "-T", "web", "cat", "/etc/app.conf"]);
    assert_eq!(conf.trim(), "mode=test");
    let write = host.berth(&[
        "exec",
        "-T",
        "web",
        "sh",
        "-c",
        "echo x > /run/secrets/db_pw",
    ]);
    assert!(!write.status.success(), "a secret was writable");
    let ids: Vec<String> = host
        .ps()
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

/// `network_mode: service:X` (the VPN-sidecar pattern): the service runs in X's network
/// namespace (X's localhost, address, hostname and name files), starts after X, and is
/// recreated with X, since its namespace dies with X's container.
#[test_with::root()]
#[test]
fn network_mode_service_shares_the_providers_namespace() {
    host::require_tools();
    let host = Host::new("nms");
    host.busybox_image();
    let stack = |tag: &str| {
        format!(
            r#"
name: nms
services:
  gw:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    environment: {{ TAG: "{tag}" }}
    command: ["sh", "-c", "mkdir -p /www && echo from-gw > /www/index.html && httpd -f -p 127.0.0.1:8088 -h /www"]
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: service:gw
    command: ["sleep", "300"]
"#
        )
    };
    std::fs::write(host.stack.join("compose.yaml"), stack("1")).expect("compose");
    host.ok(&["up", "-d"]);
    let fetch = || {
        let mut last = String::new();
        for _ in 0..40 {
            let o = host.berth(&[
                "exec",
                "-T",
                "app",
                "wget",
                "-qO-",
                "http://127.0.0.1:8088/",
            ]);
            last = format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            );
            if last.contains("from-gw") {
                return last;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        last
    };
    assert!(fetch().contains("from-gw"), "gw's localhost from app");
    let addr = |svc: &str| {
        host.ok(&[
            "exec",
            "-T",
            svc,
            "sh",
            "-c",
            "ip -o -4 addr show eth0; hostname",
        ])
    };
    let gw = addr("gw");
    assert!(gw.contains("eth0"), "{gw}");
    assert_eq!(addr("app"), gw, "same interface, address and hostname");
    // Recreating gw recreates app in the new namespace.
    std::fs::write(host.stack.join("compose.yaml"), stack("2")).expect("compose");
    let out = host.ok(&["up", "-d"]);
    assert!(fetch().contains("from-gw"), "after gw was recreated: {out}");
    assert_eq!(addr("app"), addr("gw"));
    let ids: Vec<String> = host
        .ps()
        .iter()
        .filter_map(|r| r["id"].as_str().map(String::from))
        .collect();
    assert_eq!(ids.len(), 2, "{ids:?}");
    host.ok(&["down"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}
