//! Compose keys that share something with another container or the host, observed inside
//! the running containers, end to end as root with the real binary: `pid` and `ipc` as
//! `service:`/`container:`/`host` (and `container run --pid/--ipc`), `label_file`,
//! `use_api_socket`, `interface_name` and `external_links`.

use berth_tests::host::{self, Host};

/// The value of the line `key VALUE` in `text`.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
}

/// The host's namespace link of kind `ns` (`ipc:[4026531839]`).
fn host_ns(ns: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{ns}"))
        .expect("host namespace")
        .display()
        .to_string()
}

/// Prints the container's PID and IPC namespaces, what /dev/shm/marker holds (waiting for
/// it a little) and whether the donor's `sleep` is among its processes (its own sleeps are
/// over by then).
const PROBE: &str = "echo ipc $(readlink /proc/self/ns/ipc); echo pid $(readlink /proc/self/ns/pid); \
    for i in $(seq 50); do [ -f /dev/shm/marker ] && break; sleep 0.1; done; \
    echo shm $(cat /dev/shm/marker 2>/dev/null); \
    pidof sleep > /dev/null && echo sees-donor; \
    echo done";

fn namespaces_file() -> String {
    let probe = PROBE.replace('$', "$$");
    format!(
        r#"
name: sn
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  donor:
    <<: *quick
    ipc: shareable
    command: ["sh", "-c", "echo from-donor > /dev/shm/marker; echo ipc $$(readlink /proc/self/ns/ipc); echo pid $$(readlink /proc/self/ns/pid); echo done; exec sleep 3601"]
  joiner:
    <<: *quick
    pid: service:donor
    ipc: service:donor
    command: ["sh", "-c", "{probe}; exec sleep 3600"]
  hostipc:
    <<: *quick
    ipc: host
    command: ["sh", "-c", "{probe}; exec sleep 3600"]
  own:
    <<: *quick
    ipc: private
    command: ["sh", "-c", "{probe}; exec sleep 3600"]
"#
    )
}

/// `pid: service:X` and `ipc: service:X` put the container in X's PID and IPC namespaces
/// (it sees X's processes and X's /dev/shm), X started first; `ipc: host` is the host's
/// namespace; `private` its own, with its own /dev/shm.
#[test_with::root()]
#[test]
fn pid_and_ipc_join_another_services_namespaces() {
    host::require_tools();
    let host = Host::new("sn");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), namespaces_file()).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    for key in ["ipc", "pid"] {
        assert!(!stderr.contains(key), "no warning about {key}: {stderr}");
    }
    let donor = host.logs_when_done("sn-donor-1");
    let joiner = host.logs_when_done("sn-joiner-1");
    let hostipc = host.logs_when_done("sn-hostipc-1");
    let own = host.logs_when_done("sn-own-1");
    for ns in ["ipc", "pid"] {
        let d = field(&donor, ns).expect("donor namespace");
        assert_eq!(field(&joiner, ns), Some(d), "{ns}: {joiner}");
        assert_ne!(field(&own, ns), Some(d), "{ns}: {own}");
    }
    assert_eq!(field(&joiner, "shm"), Some("from-donor"), "{joiner}");
    assert!(joiner.lines().any(|l| l == "sees-donor"), "{joiner}");
    assert!(!own.lines().any(|l| l == "sees-donor"), "{own}");
    assert_eq!(field(&own, "shm"), None, "{own}");
    assert_eq!(field(&hostipc, "ipc"), Some(host_ns("ipc").as_str()));
    assert_ne!(field(&own, "ipc"), Some(host_ns("ipc").as_str()));
    host.down_clean();
}

const NOT_SHAREABLE: &str = r#"
name: ns2
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
  network_mode: none
services:
  plain:
    <<: *quick
    command: ["sleep", "3600"]
  joiner:
    <<: *quick
    ipc: service:plain
    command: ["sleep", "3600"]
"#;

/// Joining the IPC namespace of a container that did not make it shareable is refused,
/// naming the donor, as Docker refuses it.
#[test_with::root()]
#[test]
fn ipc_of_a_private_donor_is_refused_by_name() {
    host::require_tools();
    let host = Host::new("ns2");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), NOT_SHAREABLE).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("ns2-plain-1") && stderr.contains("not shareable"),
        "{stderr}"
    );
    host.down_clean();
}

/// `container run --pid container:X --ipc container:X` joins X's namespaces too.
#[test_with::root()]
#[test]
fn container_run_pid_and_ipc_join_a_container() {
    host::require_tools();
    let host = Host::new("nr");
    host.busybox_image();
    host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "nr-donor",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "busybox:e2e",
        "sh",
        "-c",
        "echo from-donor > /dev/shm/marker; exec sleep 3601",
    ]);
    let out = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        "container:nr-donor",
        "--ipc",
        "container:nr-donor",
        "busybox:e2e",
        "sh",
        "-c",
        PROBE,
    ]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    host.berth(&["container", "rm", "-f", "nr-donor"]);
    assert!(out.status.success(), "{out:?}");
    let leaks = host.leaks(&[]);
    assert!(leaks.is_empty(), "rm left: {leaks:#?}");
    assert_eq!(field(&text, "shm"), Some("from-donor"), "{text}");
    assert!(text.lines().any(|l| l == "sees-donor"), "{text}");
}

const LINKED: &str = r#"
name: ek
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    label_file: [labels.env, more.env]
    labels: {b: explicit}
    use_api_socket: true
    external_links: ["ek-outside:db"]
    networks:
      front: {interface_name: front0}
    command: ["sh", "-c", "echo ifs $$(ls /sys/class/net); [ -S /var/run/docker.sock ] && echo api-socket; nslookup db 2>&1; echo done; exec sleep 3600"]
  other:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    networks: [front]
    command: ["sh", "-c", "nslookup db 2>&1; echo done; exec sleep 3600"]
networks:
  front:
    name: ek-shared
    external: true
"#;

/// `label_file` merges its labels under `labels` (later files and `labels` win);
/// `use_api_socket` binds berth's Docker API socket at /var/run/docker.sock; a network's
/// `interface_name` names the interface inside; `external_links` resolves a container outside
/// the project under its alias, for the linking service alone.
#[test_with::root()]
#[test]
fn label_file_api_socket_interface_name_and_external_links_apply() {
    host::require_tools();
    let host = Host::new("ek");
    host.busybox_image();
    host.ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.7.0/24",
        "ek-shared",
    ]);
    host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "ek-outside",
        "--network",
        "ek-shared",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    std::fs::write(host.stack.join("labels.env"), "a=1\nb=from-file\nc=first\n").expect("labels");
    std::fs::write(host.stack.join("more.env"), "c=second\n").expect("labels");
    std::fs::write(host.stack.join("compose.yaml"), LINKED).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let app = host.logs_when_done("ek-app-1");
    let other = host.logs_when_done("ek-other-1");
    let inspect = host.ok(&["container", "inspect", "ek-app-1", "ek-outside"]);
    host.ok(&["down", "-t", "1"]);
    host.berth(&["container", "rm", "-f", "ek-outside"]);
    host.berth(&["network", "rm", "ek-shared"]);
    assert!(out.status.success(), "{stderr}");
    for key in [
        "label_file",
        "use_api_socket",
        "interface_name",
        "external_links",
    ] {
        assert!(!stderr.contains(key), "no warning about {key}: {stderr}");
    }
    let doc: serde_json::Value = serde_json::from_str(&inspect).expect("inspect json");
    let labels = &doc[0]["Config"]["labels"];
    assert_eq!(labels["a"], "1", "{labels}");
    assert_eq!(labels["b"], "explicit", "{labels}");
    assert_eq!(labels["c"], "second", "{labels}");
    let outside = doc[1]["NetworkSettings"]["Networks"]["ek-shared"]["IPAddress"]
        .as_str()
        .expect("the outside container's address")
        .to_string();
    let ifs = field(&app, "ifs").unwrap_or_default();
    assert!(ifs.split(' ').any(|i| i == "front0"), "{app}");
    assert!(!ifs.split(' ').any(|i| i == "eth0"), "{app}");
    assert!(app.lines().any(|l| l == "api-socket"), "{app}");
    assert!(app.contains(&outside), "db is {outside} for app: {app}");
    assert!(!other.contains(&outside), "db is app's alone: {other}");
    let leaks = host.leaks(&[]);
    assert!(leaks.is_empty(), "left: {leaks:#?}");
}

/// The docker CLI through berth's Docker API: `docker run --ipc shareable` then
/// `docker run --pid container:X --ipc container:X` joins X's namespaces (the same lowering
/// as `container run`), and a private donor is refused.
#[test_with::root()]
#[test_with::executable(docker)]
#[test]
fn docker_run_pid_and_ipc_container_join_through_the_api() {
    host::require_tools();
    let host = Host::new("dn");
    host.busybox_image();
    let docker = berth_tests::docker::Docker::new(&host);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "dn-donor",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "busybox:e2e",
        "sh",
        "-c",
        "echo from-donor > /dev/shm/marker; exec sleep 3601",
    ]);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "dn-plain",
        "--network",
        "none",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let text = docker.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--pid",
        "container:dn-donor",
        "--ipc",
        "container:dn-donor",
        "busybox:e2e",
        "sh",
        "-c",
        PROBE,
    ]);
    let refused = docker.fails(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--ipc",
        "container:dn-plain",
        "busybox:e2e",
        "true",
    ]);
    docker.ok(&["rm", "-f", "dn-donor", "dn-plain"]);
    assert_eq!(field(&text, "shm"), Some("from-donor"), "{text}");
    assert!(text.lines().any(|l| l == "sees-donor"), "{text}");
    assert!(
        refused.contains("dn-plain") && refused.contains("not shareable"),
        "{refused}"
    );
    let leaks = host.leaks(&[]);
    assert!(leaks.is_empty(), "rm left: {leaks:#?}");
}

/// A shareable container's /dev/shm is cleared when it stops, as Docker's: a file written
/// there before a stop is gone after the next start.
#[test_with::root()]
#[test]
fn shareable_dev_shm_is_cleared_when_the_container_stops() {
    host::require_tools();
    let host = Host::new("shmc");
    host.busybox_image();
    host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "shmc-donor",
        "--network",
        "none",
        "--ipc",
        "shareable",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let exec = |script: &str| {
        let out = host.berth(&["container", "exec", "shmc-donor", "sh", "-c", script]);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(
        exec("echo kept > /dev/shm/marker && cat /dev/shm/marker"),
        "kept"
    );
    host.ok(&["container", "stop", "-t", "1", "shmc-donor"]);
    host.ok(&["container", "start", "shmc-donor"]);
    assert_eq!(
        exec("cat /dev/shm/marker 2>/dev/null || echo cleared"),
        "cleared"
    );
    host.ok(&["container", "rm", "-f", "shmc-donor"]);
}
