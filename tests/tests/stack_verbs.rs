//! The project verbs that act on existing containers (`logs`, `exec`, `stop`, `start`,
//! `restart`, `kill`, `pause`, `rm`, `wait`, `top`, `images`, `port`, `ls`), end to end as root with the real
//! binary, runtime and netd. The harness (a netns per test, its own --root/--run, leak check)
//! is in `berth_tests::host`.

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: verbs
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  db:
    <<: *quick
    command: ["sh", "-c", "echo db-ready; exec sleep 3600"]
  app:
    <<: *quick
    command: ["sh", "-c", "echo one; echo two; echo three; exec sleep 3600"]
    ports: ["18181:8080"]
    depends_on: [db]
"#;

fn ids(host: &Host) -> Vec<(String, String, String)> {
    let mut v: Vec<(String, String, String)> = host
        .ps()
        .iter()
        .map(|r| {
            (
                r["service"].as_str().unwrap_or_default().to_string(),
                r["id"].as_str().unwrap_or_default().to_string(),
                r["status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

/// Waits (up to 10 s) until `logs SERVICE` shows `needle`: the echo runs right after start.
fn wait_for_log(host: &Host, service: &str, needle: &str) {
    for _ in 0..100 {
        if host.ok(&["logs", service]).contains(needle) {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("{service} never logged {needle:?}");
}

/// Asserts that `lines` appear in `out`, in this order.
fn assert_in_order(out: &str, lines: &[&str]) {
    let at: Vec<Option<usize>> = lines.iter().map(|l| out.find(l)).collect();
    assert!(
        at.iter().all(Option::is_some) && at.windows(2).all(|w| w[0] < w[1]),
        "{lines:?} not in this order in:\n{out}"
    );
}

fn up(tag: &str) -> Host {
    let host = Host::new(tag);
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    host.ok(&["up", "-d"]);
    wait_for_log(&host, "app", "three");
    wait_for_log(&host, "db", "db-ready");
    host
}

fn down(host: &Host, all_ids: &[String]) {
    host.ok(&["down", "-t", "1"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(all_ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

#[test_with::root()]
#[test]
fn logs_exec_top_images_port_ls() {
    host::require_tools();
    let host = up("vlog");
    let first: Vec<String> = ids(&host).into_iter().map(|(_, id, _)| id).collect();

    // Every container's log, prefixed `service-N  | ` (padded to the longest), no colour
    // when stdout is not a terminal.
    let all = host.ok(&["logs"]);
    for line in [
        "app-1  | one",
        "app-1  | two",
        "app-1  | three",
        "db-1   | db-ready",
    ] {
        assert!(all.contains(line), "{line:?} missing in:\n{all}");
    }
    assert!(!all.contains('\x1b'), "{all}");
    let tail = host.ok(&["logs", "--tail", "1", "app"]);
    assert!(tail.contains("app-1  | three"), "{tail}");
    assert!(!tail.contains("two") && !tail.contains("db-"), "{tail}");
    let ts = host.ok(&["logs", "-t", "--no-color", "db"]);
    assert!(ts.contains("db-1  | 20"), "timestamps: {ts}");

    // exec: output and exit code come back.
    let out = host.berth(&["exec", "app", "sh", "-c", "echo inside; exit 3"]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stdout).contains("inside"));
    let out = host.berth(&["exec", "--index", "2", "app", "true"]);
    assert!(!out.status.success(), "there is no app-2");

    let top = host.ok(&["top", "app"]);
    assert!(
        top.contains("verbs-app-1") && top.contains("sleep 3600"),
        "{top}"
    );
    let images = host.ok(&["images"]);
    assert!(images.contains("busybox:e2e"), "{images}");
    let images = host.ok(&["images", "--format", "json"]);
    let images: serde_json::Value =
        serde_json::from_str(&images[images.find('[').expect("json")..]).expect("images json");
    assert_eq!(images[0]["Repository"], "busybox", "{images}");
    assert_eq!(images[0]["Tag"], "e2e", "{images}");
    assert!(
        images[0]["ID"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{images}"
    );
    let stats = host.ok(&["stats", "--no-stream", "--format", "json", "app"]);
    let line = stats
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("a stats line");
    let stats: serde_json::Value = serde_json::from_str(line).expect("stats json");
    assert_eq!(stats["Name"], "verbs-app-1", "{stats}");
    assert!(
        stats["CPUPerc"].as_str().is_some_and(|c| c.ends_with('%')),
        "{stats}"
    );
    let names = host.ok(&["stats", "--no-stream", "--format", "{{.Name}}"]);
    assert!(
        names.contains("verbs-app-1") && names.contains("verbs-db-1"),
        "{names}"
    );
    let port = host.ok(&["port", "app", "8080"]);
    assert!(port.contains(":18181"), "{port}");
    assert!(!host.berth(&["port", "app", "9999"]).status.success());
    let ls = host.ok(&["ls"]);
    assert!(ls.contains("verbs") && ls.contains("running(2)"), "{ls}");
    assert!(ls.contains("compose.yaml"), "{ls}");
    let json = host.ok(&["ls", "--format", "json"]);
    let rows: serde_json::Value =
        serde_json::from_str(&json[json.find('[').expect("json")..]).expect("ls json");
    assert_eq!(rows[0]["Name"], "verbs", "{rows}");
    // ps --format json: one object per line with Compose's field names.
    let json = host.ok(&["ps", "--format", "json"]);
    let rows: Vec<serde_json::Value> = json
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(rows.len(), 2, "{json}");
    let app = rows
        .iter()
        .find(|r| r["Service"] == "app")
        .expect("app row");
    assert_eq!(app["State"], "running", "{app}");
    assert_eq!(app["Name"], "verbs-app-1", "{app}");
    assert_eq!(app["Project"], "verbs", "{app}");
    assert_eq!(app["Health"], "", "{app}");
    assert_eq!(app["Publishers"][0]["PublishedPort"], 18181, "{app}");
    assert_eq!(app["Publishers"][0]["TargetPort"], 8080, "{app}");
    let running = host.ok(&["ps", "--filter", "status=running", "--services"]);
    assert_eq!(running.trim(), "app\ndb", "{running}");
    let exited = host.ok(&["ps", "--status", "exited", "-q"]);
    assert!(exited.trim().is_empty(), "{exited}");
    assert!(!host.berth(&["ps", "--status", "sleepy"]).status.success());
    let t = host.ok(&["ps", "--format", "{{.Service}} {{.State}}"]);
    assert!(t.contains("app running") && t.contains("db running"), "{t}");
    assert!(!host.berth(&["logs", "nosuch"]).status.success());
    assert!(!host.berth(&["kill", "-s", "NOPE"]).status.success());

    // logs -f keeps following and picks up the new container of a recreated service.
    let follow = host.berth_for(6, &["logs", "-f", "app"]);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    host.ok(&["up", "-d", "--force-recreate", "app"]);
    let out = follow.wait_with_output().expect("logs -f");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("app-1  | three").count(),
        2,
        "the old and the recreated container's lines: {text}"
    );
    let second: Vec<String> = ids(&host).into_iter().map(|(_, id, _)| id).collect();
    let all_ids: Vec<String> = first.into_iter().chain(second).collect();
    down(&host, &all_ids);
}

#[test_with::root()]
#[test]
fn stop_start_restart_kill_wait() {
    host::require_tools();
    let host = up("vstop");
    let before = ids(&host);
    let id_list: Vec<String> = before.iter().map(|(_, id, _)| id.clone()).collect();

    // Dependents stop first and start last; each container says what happened to it.
    let out = host.ok(&["stop"]);
    assert_in_order(
        &out,
        &[
            "Container verbs-app-1  Stopped",
            "Container verbs-db-1  Stopped",
        ],
    );
    let stopped = ids(&host);
    assert!(stopped.iter().all(|(_, _, s)| s == "exited"), "{stopped:?}");

    let out = host.ok(&["start"]);
    assert_in_order(
        &out,
        &[
            "Container verbs-db-1  Started",
            "Container verbs-app-1  Started",
        ],
    );
    let started = ids(&host);
    assert!(
        started.iter().all(|(_, _, s)| s == "running"),
        "{started:?}"
    );
    assert_eq!(
        started.iter().map(|(_, id, _)| id).collect::<Vec<_>>(),
        id_list.iter().collect::<Vec<_>>(),
        "stop/start keeps the containers"
    );
    // The network endpoint and DNS names survived the stop.
    let got = host.ok(&["exec", "app", "nslookup", "db"]);
    assert!(got.contains("Address: 10."), "{got}");

    let out = host.ok(&["restart", "-t", "1", "db"]);
    assert_in_order(
        &out,
        &[
            "Container verbs-db-1  Stopped",
            "Container verbs-db-1  Started",
        ],
    );
    assert!(
        !out.contains("verbs-app-1"),
        "restart db leaves app alone: {out}"
    );
    // start leaves running containers alone and says nothing about them.
    let out = host.ok(&["start"]);
    assert!(!out.contains("Started"), "{out}");
    let restarted = ids(&host);
    assert_eq!(restarted, started, "restart keeps ids and ends running");

    let out = host.ok(&["kill", "-s", "TERM", "app"]);
    assert!(out.contains("Container verbs-app-1  Killed"), "{out}");
    let waited = host.berth(&["wait", "app"]);
    let code = String::from_utf8_lossy(&waited.stdout).trim().to_string();
    assert_eq!(code, "143", "SIGTERM ended app: {waited:?}");
    let after = ids(&host);
    assert_eq!(after[0].2, "exited", "{after:?}");
    assert_eq!(after[1].2, "running", "db untouched: {after:?}");

    // pause/unpause act on the running containers only (db); tested in depth in stack_more.
    host.ok(&["pause"]);
    host.ok(&["unpause"]);

    // rm removes stopped containers only (db runs), and through the daemon frees app's
    // address and names.
    let out = host.ok(&["rm"]);
    assert!(
        out.contains("skipped e2e-db-1") || out.contains("skipped"),
        "{out}"
    );
    let left = ids(&host);
    assert_eq!(left.len(), 1, "only db is left: {left:?}");
    assert_eq!(left[0].2, "running");
    down(&host, &id_list);
}

const RUN_STACK: &str = r#"
name: runflags
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  dep:
    <<: *quick
    command: ["sh", "-c", "echo dep-ready; exec sleep 3600"]
  web:
    <<: *quick
    command: ["sleep", "3600"]
    ports: ["18183:8080"]
    depends_on: [dep]
"#;

/// `run`'s flags as `docker compose run` takes them (`-u -w -l -P -q --use-aliases
/// --cap-drop`, `-it`), `exec -it`, and `down SERVICE` removing only that service's
/// containers.
#[test_with::root()]
#[test]
fn run_flags_exec_it_and_down_service() {
    host::require_tools();
    let host = Host::new("vrun");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), RUN_STACK).expect("compose");
    host.ok(&["up", "-d", "dep"]);
    wait_for_log(&host, "dep", "dep-ready");

    // -u, -w, -l, --cap-drop reach the one-off; -i -t are accepted (no terminal here).
    let out = host.ok(&[
        "run",
        "--rm",
        "-it",
        "-u",
        "1234",
        "-w",
        "/tmp",
        "-l",
        "run.label=yes",
        "--cap-drop",
        "ALL",
        "--no-deps",
        "web",
        "sh",
        "-c",
        "busybox id -u; pwd; grep CapEff /proc/self/status",
    ]);
    assert!(out.contains("1234\n/tmp\n"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    let out = host.ok(&["exec", "-it", "dep", "echo", "exec-it"]);
    assert!(out.contains("exec-it"), "{out}");

    // -P publishes the service's own ports; -q prints nothing for a detached one-off.
    let quiet = host.ok(&[
        "run",
        "-d",
        "-q",
        "-P",
        "-l",
        "run.label=yes",
        "--no-deps",
        "--name",
        "rf-ports",
        "web",
    ]);
    assert!(quiet.trim().is_empty(), "-q printed {quiet:?}");
    let port = host.ok(&["container", "port", "rf-ports"]);
    assert!(port.contains("18183"), "{port}");
    let label = host.ok(&["container", "inspect", "rf-ports"]);
    assert!(label.contains("run.label"), "{label}");

    // A one-off answers to the service's name only with --use-aliases.
    let lookup = |name: &str| host.berth(&["exec", "dep", "nslookup", name]);
    host.ok(&["run", "-d", "--no-deps", "--name", "rf-plain", "web"]);
    assert!(
        !lookup("web").status.success(),
        "a plain one-off took the alias web"
    );
    host.ok(&[
        "run",
        "-d",
        "--no-deps",
        "--use-aliases",
        "--name",
        "rf-alias",
        "web",
    ]);
    assert!(
        lookup("web").status.success(),
        "--use-aliases: web does not resolve"
    );
    for n in ["rf-ports", "rf-plain", "rf-alias"] {
        host.ok(&["container", "rm", "-f", n]);
    }

    // down SERVICE: that service's containers go, the rest of the project stays.
    host.ok(&["up", "-d", "web"]);
    let before: Vec<String> = ids(&host).into_iter().map(|(_, id, _)| id).collect();
    host.ok(&["down", "-t", "1", "web"]);
    let left: Vec<String> = ids(&host).into_iter().map(|(s, _, _)| s).collect();
    assert_eq!(left, vec!["dep".to_string()], "after down web");
    assert!(host.berth(&["down", "nosuch"]).status.code() != Some(0));
    down(&host, &before);
}

/// `container run`'s `--health-*`, `--no-healthcheck`, `--label-file` and `-a` as `docker
/// run` takes them; an unknown flag is named, never taken as the image.
#[test_with::root()]
#[test]
fn container_run_health_labels_attach() {
    host::require_tools();
    let host = Host::new("vcrun");
    host.busybox_image();
    let labels = host.stack.join("labels");
    std::fs::write(&labels, "# a comment\nfrom.file=yes\n\nteam=ops\n").expect("labels");
    let labels = labels.display().to_string();
    host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        "true",
        "--health-interval",
        "1s",
        "--health-retries",
        "2",
        "--label-file",
        &labels,
        "busybox:e2e",
        "sleep",
        "60",
    ]);
    // The check is recorded as the daemon runs it (the Docker API's inspect shows its state).
    let inspect = host.ok(&["container", "inspect", "hc"]);
    for part in [
        r#"\"/bin/sh\",\"-c\",\"true\""#,
        r#"\"interval\":{\"secs\":1,"#,
        r#"\"retries\":2"#,
    ] {
        assert!(inspect.contains(part), "{part} missing: {inspect}");
    }
    assert!(
        inspect.contains("from.file") && inspect.contains("ops"),
        "{inspect}"
    );
    host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "nohc",
        "--no-healthcheck",
        "busybox:e2e",
        "sleep",
        "60",
    ]);
    let inspect = host.ok(&["container", "inspect", "nohc"]);
    assert!(!inspect.contains("berth.healthcheck"), "{inspect}");

    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "-a",
        "stderr",
        "busybox:e2e",
        "sh",
        "-c",
        "echo to-out; echo to-err >&2",
    ]);
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        !so.contains("to-out") && se.contains("to-err"),
        "{so} / {se}"
    );

    let bad = host.berth(&["container", "run", "--gpus", "all", "busybox:e2e", "true"]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(125), "{err}");
    assert!(
        err.contains("unknown flag: --gpus") && !err.contains("pull"),
        "{err}"
    );
    for n in ["hc", "nohc"] {
        host.ok(&["container", "rm", "-f", n]);
    }
}

/// `-p NAME` without a file in reach: `ps`, `logs`, `stop`, `rm`, `down` find the project's
/// files by its containers' labels, as Compose finds a project by name.
#[test_with::root()]
#[test]
fn project_name_without_a_file() {
    host::require_tools();
    let host = Host::new("vbyname");
    host.busybox_image();
    let app = host.stack.join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    let stack = RUN_STACK.replace("name: runflags", "name: byname");
    std::fs::write(app.join("compose.yaml"), stack).expect("compose");
    host.ok(&["-f", "app/compose.yaml", "up", "-d", "dep"]);
    let ids: Vec<String> = host
        .ps_of(&["-p", "byname"])
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(ids.len(), 1, "ps -p byname");
    let mut logs = String::new();
    for _ in 0..100 {
        logs = host.ok(&["-p", "byname", "logs", "dep"]);
        if logs.contains("dep-ready") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(logs.contains("dep-ready"), "{logs}");
    host.ok(&["-p", "byname", "stop", "-t", "1"]);
    host.ok(&["-p", "byname", "down", "-t", "1"]);
    assert!(host.ps_of(&["-f", "app/compose.yaml"]).is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down -p left: {leaks:#?}");
    // Nothing of that name: an error that says so.
    let out = host.berth(&["-p", "nosuch", "ps"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch"));
}

/// Attached `up --abort-on-container-failure`: a container's exit 0 does not stop the stack,
/// a non-zero exit does (with its code); `--no-log-prefix` and `--timestamps` shape the
/// output; `-y` and `--quiet-pull` are accepted.
#[test_with::root()]
#[test]
fn up_aborts_on_container_failure_without_prefixes() {
    host::require_tools();
    let host = Host::new("vfail");
    host.busybox_image();
    let stack = r#"
name: failing
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  fine:
    <<: *quick
    command: ["sh", "-c", "echo fine-done"]
  bad:
    <<: *quick
    command: ["sh", "-c", "sleep 2; echo bad-out; exit 3"]
  long:
    <<: *quick
    command: ["sleep", "3600"]
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    let out = host.berth(&[
        "up",
        "--abort-on-container-failure",
        "--no-log-prefix",
        "--timestamps",
        "-y",
        "--quiet-pull",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    let line = stdout
        .lines()
        .find(|l| l.ends_with("bad-out"))
        .unwrap_or_else(|| panic!("no bad-out line: {stdout}"));
    assert!(line.starts_with("20") && !line.contains(" | "), "{line}");
    assert!(stdout.contains("fine-done"), "{stdout}");
    let ids: Vec<String> = ids(&host).into_iter().map(|(_, id, _)| id).collect();
    assert!(
        ids.len() == 3 && host.ps().iter().all(|r| r["status"] != "running"),
        "the stack is stopped: {:?}",
        host.ps()
    );
    down(&host, &ids);
}

/// `--dry-run` prints the plan of `up` and `down` and changes nothing (verbs without a plan
/// refuse it); `--progress quiet` drops the progress lines; `--ansi never` is accepted.
#[test_with::root()]
#[test]
fn dry_run_progress_and_ansi() {
    host::require_tools();
    let host = Host::new("vdry");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    let plan = host.ok(&["--dry-run", "up", "-d"]);
    assert!(
        plan.contains("CreateNetwork verbs_default")
            && plan.contains("CreateContainer verbs-app-1"),
        "{plan}"
    );
    assert!(host.ps().is_empty(), "--dry-run up created containers");
    let links = String::from_utf8_lossy(&host.sh("ip -o link show").stdout).to_string();
    assert_eq!(links.lines().count(), 1, "--dry-run up made links: {links}");
    host.ok(&["up", "-d"]);
    wait_for_log(&host, "app", "three");
    let all: Vec<String> = ids(&host).into_iter().map(|(_, id, _)| id).collect();
    let plan = host.ok(&["--dry-run", "down"]);
    assert!(plan.contains("RemoveContainer verbs-app-1"), "{plan}");
    assert_eq!(ids(&host).len(), 2, "--dry-run down removed containers");
    let stop = host.berth(&["--dry-run", "stop"]);
    assert!(!stop.status.success(), "--dry-run stop is refused");
    assert!(ids(&host).iter().all(|(_, _, s)| s == "running"));
    let out = host.berth(&["--progress", "quiet", "restart", "-t", "1", "db"]);
    assert!(out.status.success());
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!host.berth(&["--progress", "fancy", "ps"]).status.success());
    let logs = host.ok(&["--ansi", "never", "logs", "app"]);
    assert!(
        logs.contains("app-1  | one") && !logs.contains('\x1b'),
        "{logs}"
    );
    down(&host, &all);
}
