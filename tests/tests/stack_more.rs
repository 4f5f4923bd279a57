//! The rest of the stack verbs, end to end as root with the real binary, runtime and netd:
//! attached `up` that aborts on a container's exit, `down --rmi`, `system prune`, `create`,
//! `pull`, `stats`, `cp`, `events`, `run -v/-p`, `pause`/`unpause`, the dependency gates
//! (`service_healthy`, `service_completed_successfully`), round-robin DNS over replicas and
//! the isolation of two projects. The harness (a netns per test, its own --root/--run, leak
//! check) is in `berth_tests::host`.

use berth_tests::host::{self, Host};

fn all_ids(host: &Host) -> Vec<String> {
    host.ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn down_clean(host: &Host, ids: &[String]) {
    host.ok(&["down", "-t", "1"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

const ABORT: &str = r#"
name: ab
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  server:
    <<: *quick
    command: ["sh", "-c", "echo server-up; exec sleep 3600"]
  quiet:
    <<: *quick
    command: ["sh", "-c", "echo should-not-show; exec sleep 3600"]
  job:
    <<: *quick
    command: ["sh", "-c", "echo job-done; sleep 1; exit 3"]
"#;

#[test_with::root()]
#[test]
fn up_aborts_on_container_exit_with_the_chosen_exit_code_and_output() {
    host::require_tools();
    let host = Host::new("abort");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), ABORT).expect("compose");

    // --exit-code-from implies the abort; --attach shows only the job's output.
    let out = host.berth(&["up", "--exit-code-from", "job", "--attach", "job"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("job-1  | job-done"), "{stdout}");
    assert!(stdout.contains("job-1 exited with code 3"), "{stdout}");
    assert!(
        !stdout.contains("server-up") && !stdout.contains("should-not-show"),
        "{stdout}"
    );
    assert!(stderr.contains("Aborting on container exit"), "{stderr}");
    let ps = host.ps();
    assert_eq!(ps.len(), 3, "{ps:?}");
    assert!(
        ps.iter().all(|r| r["status"] != "running"),
        "the job's exit stopped every container: {ps:?}"
    );

    // --abort-on-container-exit alone: the first exit's code; --no-attach hides one service.
    let out = host.berth(&["up", "--abort-on-container-exit", "--no-attach", "quiet"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("server-1  | server-up"), "{stdout}");
    assert!(!stdout.contains("should-not-show"), "{stdout}");

    // --exit-code-from a service that was stopped by the abort: its stop status (SIGTERM).
    let out = host.berth(&["up", "--exit-code-from", "server"]);
    let (stdout, stderr) = text(&out);
    let code = out.status.code();
    assert!(
        code == Some(143) || code == Some(137),
        "{code:?}\n{stdout}\n{stderr}"
    );

    // Without abort, attached `up` of a job ends by itself once every container exited.
    let out = host.berth(&["up", "job"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("job-1 exited with code 3"), "{stdout}");

    // Misuse is refused by name.
    let out = host.berth(&["up", "-d", "--abort-on-container-exit"]);
    assert!(!out.status.success());
    let out = host.berth(&["up", "--exit-code-from", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{:?}",
        text(&out)
    );

    let ids = all_ids(&host);
    down_clean(&host, &ids);
}

fn image_names(host: &Host) -> String {
    host.ok(&["image", "ls"])
}

#[test_with::root()]
#[test]
fn down_rmi_and_system_prune_remove_what_they_should() {
    host::require_tools();
    let host = Host::new("prune");
    host.busybox_image();
    let app = host.stack.join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(
        app.join("Dockerfile"),
        "FROM busybox:e2e\nRUN echo built > /built.txt\n",
    )
    .expect("Dockerfile");
    let stack = r#"
name: rmi
x-quick: &quick
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  app:
    <<: *quick
    build: ./app
  base:
    <<: *quick
    image: busybox:e2e
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    host.ok(&["up", "-d"]);
    assert!(image_names(&host).contains("rmi-app"));

    // local: only the image berth built under the project's name.
    let ids = all_ids(&host);
    let out = host.ok(&["down", "--rmi", "local"]);
    assert!(out.contains("rmi-app"), "{out}");
    let images = image_names(&host);
    assert!(
        !images.contains("rmi-app") && images.contains("busybox"),
        "{images}"
    );
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
    assert!(!host.berth(&["down", "--rmi", "some"]).status.success());

    // system prune: stopped containers, the network left without endpoints, the build
    // cache; the tagged busybox image stays without -a.
    host.ok(&["up", "-d"]);
    let ids = all_ids(&host);
    host.ok(&["stop", "-t", "1"]);
    let out = host.ok(&["system", "prune", "-f"]);
    for id in &ids {
        assert!(out.contains(id.as_str()), "{id} not pruned:\n{out}");
    }
    assert!(out.contains("Deleted Networks:\nrmi_default"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(!out.contains("Deleted build cache entries: 0"), "{out}");
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "prune left: {leaks:#?}");
    let images = image_names(&host);
    assert!(images.contains("busybox"), "{images}");

    // -a: every image no container uses; a running container keeps its image.
    std::fs::write(
        host.stack.join("compose.yaml"),
        stack.replace("    build: ./app\n", "    image: busybox:e2e\n"),
    )
    .expect("compose");
    host.ok(&["up", "-d", "base"]);
    let out = host.ok(&["system", "prune", "-a", "-f", "--volumes"]);
    assert!(!out.contains("Deleted Containers"), "{out}");
    assert!(image_names(&host).contains("busybox"), "in use by base");
    let ids = all_ids(&host);
    down_clean(&host, &ids);
    let out = host.ok(&["system", "prune", "-a", "-f"]);
    assert!(
        out.contains("untagged: busybox:e2e") || out.contains("busybox"),
        "{out}"
    );
    assert!(!image_names(&host).contains("busybox"));
}

const MISC: &str = r#"
name: misc
services:
  web:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
"#;

fn status_of(host: &Host, service: &str) -> Vec<String> {
    host.ps()
        .iter()
        .filter(|r| r["service"] == service)
        .map(|r| r["status"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test_with::root()]
#[test]
fn create_pause_cp_stats_events_run_volumes_ports_and_pull() {
    host::require_tools();
    let host = Host::new("misc");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), MISC).expect("compose");

    // create: the container exists, not started.
    host.ok(&["create"]);
    assert_eq!(status_of(&host, "web"), ["created"]);
    let id = all_ids(&host).remove(0);

    // events of this project, from now on.
    let events = host.berth_for(14, &["events", "--json"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));

    host.ok(&["start"]);
    assert_eq!(status_of(&host, "web"), ["running"]);

    // pause freezes the container's cgroup (whichever freezer the host has); ps says so.
    host.ok(&["pause"]);
    assert_eq!(status_of(&host, "web"), ["paused"]);
    let v1 = format!("/sys/fs/cgroup/freezer/berth/{id}/freezer.state");
    let v2 = format!("/sys/fs/cgroup/berth/{id}/cgroup.freeze");
    let frozen = std::fs::read_to_string(&v1)
        .map(|s| s.trim() == "FROZEN")
        .or_else(|_| std::fs::read_to_string(&v2).map(|s| s.trim() == "1"))
        .unwrap_or(false);
    assert!(frozen, "neither {v1} nor {v2} says frozen");
    std::thread::sleep(std::time::Duration::from_millis(500));
    host.ok(&["unpause"]);
    assert_eq!(status_of(&host, "web"), ["running"]);
    let got = host.ok(&["exec", "-T", "web", "wget", "-qO-", "http://127.0.0.1/"]);
    assert!(got.contains("hello from web"), "{got}");

    // cp both ways.
    let file = host.dir.path().join("note.txt");
    std::fs::write(&file, "a note\n").expect("note");
    host.ok(&["cp", &file.display().to_string(), "web:/tmp"]);
    let got = host.ok(&["exec", "-T", "web", "cat", "/tmp/note.txt"]);
    assert!(got.contains("a note"), "{got}");
    let back = host.dir.path().join("back");
    std::fs::create_dir_all(&back).expect("back dir");
    host.ok(&["cp", "web:/tmp/note.txt", &back.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(back.join("note.txt")).expect("copied back"),
        "a note\n"
    );
    assert!(!host.berth(&["cp", "nosuch:/x", "/tmp"]).status.success());

    let stats = host.ok(&["stats", "--no-stream"]);
    assert!(
        stats.contains("misc-web-1") && stats.contains("MEM"),
        "{stats}"
    );

    // run -v (a bind from the project directory) and -p (published for the one-off).
    let data = host.stack.join("data");
    std::fs::create_dir_all(&data).expect("data");
    std::fs::write(data.join("hello.txt"), "from the host\n").expect("hello");
    let got = host.ok(&[
        "run",
        "--rm",
        "-v",
        "./data:/data:ro",
        "web",
        "cat",
        "/data/hello.txt",
    ]);
    assert!(got.contains("from the host"), "{got}");
    let out = host.berth(&[
        "run",
        "--rm",
        "-v",
        "./data:/data:ro",
        "web",
        "sh",
        "-c",
        "echo x > /data/w",
    ]);
    assert!(!out.status.success(), "read-only bind");
    host.ok(&[
        "run",
        "-d",
        "-p",
        "18090:80",
        "--name",
        "misc-oneoff",
        "web",
    ]);
    let mut answered = String::new();
    for _ in 0..50 {
        let curl = host.sh("curl -sS --max-time 2 http://127.0.0.1:18090/");
        answered = String::from_utf8_lossy(&curl.stdout).to_string();
        if answered.contains("hello from web") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(
        answered.contains("hello from web"),
        "-p 18090:80: {answered:?}"
    );

    host.ok(&["stop", "web"]);
    let out = events.wait_with_output().expect("events");
    let lines = String::from_utf8_lossy(&out.stdout).to_string();
    let actions: Vec<String> = lines
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["id"] == id.as_str())
        .map(|e| e["action"].as_str().unwrap_or_default().to_string())
        .collect();
    for want in ["start", "pause", "unpause", "die"] {
        assert!(
            actions.iter().any(|a| a == want),
            "{want} missing: {actions:?}\n{lines}"
        );
    }
    assert!(lines.contains("\"project\":\"misc\""), "{lines}");

    // pull: a service with only build: is skipped; a failing pull names its service.
    std::fs::write(
        host.stack.join("pull.yaml"),
        "name: pl\nservices:\n  remote:\n    image: 127.0.0.1:1/none/img:1\n  local:\n    build: ./app\n",
    )
    .expect("pull.yaml");
    let out = host.berth(&["-f", "pull.yaml", "pull"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("service remote"), "{stderr}");
    assert!(
        stderr.contains("local") && stderr.contains("Skipped"),
        "{stderr}"
    );

    let ids = all_ids(&host);
    down_clean(&host, &ids);
}

/// The time berth's log recorded for the first line of `service` containing `needle`
/// (RFC 3339 with nanoseconds, so the strings compare as times).
fn logged_at(host: &Host, service: &str, needle: &str) -> String {
    let out = host.ok(&["logs", "-t", "--no-color", service]);
    out.lines()
        .find(|l| l.contains(needle))
        .and_then(|l| l.split(" | ").nth(1))
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or_else(|| panic!("{service} never logged {needle:?}:\n{out}"))
        .to_string()
}

const GATES: &str = r#"
name: gates
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  db:
    <<: *quick
    command: ["sh", "-c", "sleep 1.5; touch /tmp/ready; echo db-ready; exec sleep 3600"]
    healthcheck:
      test: ["CMD", "sh", "-c", "test -f /tmp/ready"]
      interval: 300ms
      retries: 20
  migrate:
    <<: *quick
    command: ["sh", "-c", "sleep 1; echo migrated; exit ${MIGRATE_EXIT:-0}"]
  app:
    <<: *quick
    command: ["sh", "-c", "echo app-start; exec sleep 3600"]
    depends_on:
      db: { condition: service_healthy }
      migrate: { condition: service_completed_successfully }
"#;

#[test_with::root()]
#[test]
fn service_healthy_and_completed_successfully_gate_the_dependent() {
    host::require_tools();
    let host = Host::new("gate");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), GATES).expect("compose");
    host.ok(&["up", "-d"]);
    let app = logged_at(&host, "app", "app-start");
    let ready = logged_at(&host, "db", "db-ready");
    let migrated = logged_at(&host, "migrate", "migrated");
    assert!(
        app > ready,
        "app started at {app}, before db was ready at {ready}"
    );
    assert!(
        app > migrated,
        "app started at {app}, before the migration ended at {migrated}"
    );
    let ps = host.ps();
    let get = |svc: &str| ps.iter().find(|r| r["service"] == svc).cloned().expect(svc);
    assert_eq!(get("db")["health"], "healthy");
    assert_eq!(get("migrate")["status"], "exited");
    assert_eq!(get("migrate")["exit_code"], 0);
    assert_eq!(get("app")["status"], "running");
    let mut ids = all_ids(&host);

    // A failed migration keeps the dependent from starting, and says why.
    std::fs::write(
        host.stack.join("bad.yaml"),
        GATES
            .replace("${MIGRATE_EXIT:-0}", "3")
            .replace("name: gates", "name: gatesbad"),
    )
    .expect("bad.yaml");
    let out = host.berth(&["-f", "bad.yaml", "up", "-d"]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("migrate") && stderr.contains('3'),
        "{stderr}"
    );
    let rows = host.ps_of(&["-f", "bad.yaml"]);
    let app_row = rows.iter().find(|r| r["service"] == "app").cloned();
    if let Some(app_row) = app_row {
        assert_ne!(app_row["status"], "running", "{rows:?}");
    }
    for r in &rows {
        ids.push(r["id"].as_str().unwrap_or_default().to_string());
    }
    host.ok(&["-f", "bad.yaml", "down", "-t", "1"]);
    // down of a paused project thaws and removes everything.
    host.ok(&["pause"]);
    assert!(host.ps().iter().any(|r| r["status"] == "paused"));
    down_clean(&host, &ids);
}

const SCALED: &str = r#"
name: NAME
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  web:
    <<: *quick
    command: ["httpd", "-f", "-p", "80", "-h", "/var/www"]
  client:
    <<: *quick
    command: ["sleep", "3600"]
"#;

/// The addresses `nslookup NAME` answers inside `container`, in answer order.
fn lookup(host: &Host, container: &str, name: &str) -> Vec<String> {
    let out = host.berth(&["container", "exec", container, "nslookup", name]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    // Skip the server's own "Address:" line (the first block names the resolver).
    text.split("Name:")
        .skip(1)
        .flat_map(|block| {
            block
                .lines()
                .filter_map(|l| l.trim().strip_prefix("Address:"))
                .map(|a| a.trim().split(' ').next().unwrap_or("").to_string())
                .collect::<Vec<_>>()
        })
        .filter(|a| a.starts_with("10."))
        .collect()
}

#[test_with::root()]
#[test]
fn scale_three_answers_round_robin_and_two_projects_are_isolated() {
    host::require_tools();
    let host = Host::new("scale");
    host.busybox_image();
    std::fs::write(host.stack.join("a.yaml"), SCALED.replace("NAME", "pa")).expect("a");
    std::fs::write(host.stack.join("b.yaml"), SCALED.replace("NAME", "pb")).expect("b");
    host.ok(&["-f", "a.yaml", "up", "-d", "--scale", "web=3"]);
    host.ok(&["-f", "b.yaml", "up", "-d"]);

    // Three replicas behind one name, the order rotating between answers.
    let mut firsts = std::collections::BTreeSet::new();
    let mut all = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let addrs = lookup(&host, "pa-client-1", "web");
        assert_eq!(addrs.len(), 3, "{addrs:?}");
        firsts.insert(addrs[0].clone());
        all.extend(addrs);
    }
    assert_eq!(all.len(), 3, "{all:?}");
    assert!(
        firsts.len() >= 2,
        "the first answer never rotated: {firsts:?}"
    );

    // Project b's web is not visible from project a: not by name, not by address.
    let b_web = lookup(&host, "pb-client-1", "web");
    assert_eq!(b_web.len(), 1, "{b_web:?}");
    assert!(
        all.iter().all(|a| !b_web.contains(a)),
        "a's names resolve to a's containers only"
    );
    let own = host.ok(&[
        "container",
        "exec",
        "pb-client-1",
        "wget",
        "-qO-",
        "http://web/",
    ]);
    assert!(own.contains("hello from web"), "{own}");
    let url = format!("http://{}/", b_web[0]);
    let cross = host.berth(&[
        "container",
        "exec",
        "pa-client-1",
        "busybox",
        "timeout",
        "3",
        "wget",
        "-qO-",
        &url,
    ]);
    assert!(
        !cross.status.success() && !String::from_utf8_lossy(&cross.stdout).contains("hello"),
        "project a reached project b's web at {url}"
    );
    let by_name = host.berth(&["container", "exec", "pa-client-1", "nslookup", "pb-web-1"]);
    assert!(
        !String::from_utf8_lossy(&by_name.stdout).contains(&b_web[0]),
        "pb-web-1 resolved from project a"
    );

    let mut ids = Vec::new();
    for f in ["a.yaml", "b.yaml"] {
        for r in host.ps_of(&["-f", f]) {
            ids.push(r["id"].as_str().unwrap_or_default().to_string());
        }
    }
    assert_eq!(ids.len(), 6);
    host.ok(&["-f", "a.yaml", "down", "-t", "1"]);
    host.ok(&["-f", "b.yaml", "down", "-t", "1"]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn pull_fetches_the_services_images_from_a_registry() {
    host::require_tools();
    let tools = ["docker-registry", "skopeo"].iter().all(|t| {
        std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {t}"))
            .output()
            .is_ok_and(|o| o.status.success())
    });
    assert!(
        tools,
        "needs docker-registry and skopeo: run scripts/deps.sh"
    );
    let host = Host::new("pull");
    host.busybox_image();
    // A registry on the namespace's own loopback (killed with the host: its config is in
    // the host's temp dir), fed with the busybox image by skopeo.
    let port = 15000 + (std::process::id() % 5000);
    let cfg = host.dir.path().join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            host.dir.path().join("registry").display()
        ),
    )
    .expect("registry config");
    host.sh(&format!(
        "setsid docker-registry serve {} >/dev/null 2>&1 < /dev/null &",
        cfg.display()
    ));
    let archive = host.dir.path().join("bb.tar");
    host.ok(&[
        "image",
        "save",
        "-o",
        &archive.display().to_string(),
        "busybox:e2e",
    ]);
    let mut pushed = false;
    for _ in 0..50 {
        let out = host.sh(&format!(
            "skopeo copy -q --dest-tls-verify=false docker-archive:{} docker://127.0.0.1:{port}/e2e/bb:1",
            archive.display()
        ));
        if out.status.success() {
            pushed = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert!(pushed, "could not push to the test registry");

    let stack = format!(
        "name: pl\nservices:\n  remote:\n    image: 127.0.0.1:{port}/e2e/bb:1\n    pull_policy: always\n    init: true\n    stop_grace_period: 1s\n    command: [\"sleep\", \"3600\"]\n  local:\n    build: ./app\n  never:\n    image: 127.0.0.1:{port}/e2e/absent:1\n    pull_policy: never\n  daily:\n    image: 127.0.0.1:{port}/e2e/bb:1\n    pull_policy: daily\n    init: true\n    stop_grace_period: 1s\n    command: [\"sleep\", \"3600\"]\n  often:\n    image: 127.0.0.1:{port}/e2e/bb:1\n    pull_policy: every_1s\n    init: true\n    stop_grace_period: 1s\n    command: [\"sleep\", \"3600\"]\n"
    );
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    let out = host.ok(&["pull", "remote", "local"]);
    assert!(out.contains("Service remote  Pulled"), "{out}");
    assert!(out.contains("local") && out.contains("Skipped"), "{out}");
    let images = host.ok(&["image", "ls"]);
    assert!(images.contains("e2e/bb"), "{images}");
    host.ok(&["up", "-d", "--pull", "always", "remote"]);
    // pull_policy: always pulls on a plain `up`; never refuses a missing image by name.
    let out = host.ok(&["up", "-d", "remote"]);
    assert!(out.contains("Service remote  Pulled"), "{out}");
    let o = host.berth(&["up", "-d", "never"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success()
            && err.contains("service never")
            && err.contains("pull_policy is never"),
        "{err}"
    );
    // An age policy pulls only an image tagged longer ago than its age: `daily` not now (the
    // image was just pulled), `every_1s` once a second has gone by.
    let out = host.ok(&["up", "-d", "daily"]);
    assert!(!out.contains("Pulled"), "{out}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let out = host.ok(&["up", "-d", "often"]);
    assert!(out.contains("Service often  Pulled"), "{out}");
    let ids = all_ids(&host);
    assert_eq!(ids.len(), 3);
    down_clean(&host, &ids);
}
