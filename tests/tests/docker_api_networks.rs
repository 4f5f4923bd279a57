//! The Docker Engine API's network routes, with the real docker CLI as the oracle: `docker
//! network create/ls/inspect/connect/disconnect/rm/prune` against a berth instance of the
//! test's own, containers on a user-defined network reaching each other by name, the default
//! `bridge`, Compose's labels kept and filterable, and Docker's answers for a taken name, a
//! network in use and a driver berth does not have; `--aux-address` reserved and inspected,
//! `--link-local-ip` on the container's interface, the default route via the network of the
//! higher `gw-priority`.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, curl)]
#[test]
fn docker_cli_creates_connects_and_removes_networks() {
    host::require_tools();
    let h = Host::new("dknet");
    h.busybox_image();
    let docker = Docker::new(&h);

    let id = docker.ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.7.0/24",
        "--label",
        "com.docker.compose.project=p1",
        "--label",
        "com.docker.compose.network=default",
        "n1",
    ]);
    let id = id.trim().to_string();
    assert!(id.len() >= 12, "create prints the id: {id}");
    let err = docker.fails(&["network", "create", "n1"]);
    assert!(err.contains("network with name n1 already exists"), "{err}");
    let err = docker.fails(&["network", "create", "-d", "overlay", "n2"]);
    assert!(err.contains("\"overlay\""), "{err}");

    let ls = docker.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}} {{.Driver}} {{.Scope}}",
    ]);
    assert!(ls.lines().any(|l| l == "n1 bridge local"), "{ls}");
    assert!(ls.lines().any(|l| l == "bridge bridge local"), "{ls}");
    assert!(ls.lines().any(|l| l == "host host local"), "{ls}");
    assert!(ls.lines().any(|l| l == "none null local"), "{ls}");
    let by_label = docker.ok(&[
        "network",
        "ls",
        "-q",
        "--no-trunc",
        "-f",
        "label=com.docker.compose.project=p1",
    ]);
    assert_eq!(by_label.trim(), id);
    let none = docker.ok(&[
        "network",
        "ls",
        "-q",
        "-f",
        "label=com.docker.compose.project=other",
    ]);
    assert!(none.trim().is_empty(), "{none}");
    let custom = docker.ok(&[
        "network",
        "ls",
        "--format",
        "{{.Name}}",
        "-f",
        "type=custom",
    ]);
    assert_eq!(custom.trim(), "n1");

    let ins = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}} {{range .IPAM.Config}}{{.Subnet}} {{.Gateway}}{{end}} {{index .Labels \"com.docker.compose.project\"}}",
        "n1",
    ]);
    assert_eq!(ins.trim(), "n1 bridge local 10.231.7.0/24 10.231.7.1 p1");
    let bridge = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}}",
        "bridge",
    ]);
    assert_eq!(bridge.trim(), "bridge bridge");
    let err = docker.fails(&["network", "inspect", "nope"]);
    assert!(err.contains("network nope not found"), "{err}");

    // Containers on n1 reach each other by name.
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "n1",
        "--name",
        "a",
        "busybox:e2e",
        "httpd",
        "-f",
        "-p",
        "8080",
        "-h",
        "/var/www",
    ]);
    let members = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{.IPv4Address}}{{end}}",
        "n1",
    ]);
    assert!(members.starts_with("a 10.231.7."), "{members}");
    assert!(members.trim().ends_with("/24"), "{members}");
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "n1",
        "--name",
        "b",
        "busybox:e2e",
        "sh",
        "-c",
        &fetch("a"),
    ]);
    assert_eq!(
        docker.ok(&["wait", "b"]).trim(),
        "0",
        "b resolves a and fetches from it"
    );
    docker.ok(&["rm", "b"]);

    // Removing a network in use is Docker's 403.
    let err = docker.fails(&["network", "rm", "n1"]);
    assert!(err.contains("has active endpoints"), "{err}");
    let err = docker.fails(&["network", "rm", "bridge"]);
    assert!(err.contains("pre-defined network"), "{err}");
    let err = docker.fails(&["network", "rm", "host"]);
    assert!(err.contains("pre-defined network"), "{err}");
    let err = docker.fails(&["network", "connect", "none", "a"]);
    assert!(err.contains("none network"), "{err}");

    // A second network joined and left while `a` runs: its names answer on it.
    docker.ok(&["network", "create", "--subnet", "10.231.8.0/24", "n2"]);
    docker.ok(&[
        "network",
        "connect",
        "--alias",
        "web",
        "--ip",
        "10.231.8.9",
        "n2",
        "a",
    ]);
    let ip = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.IPv4Address}}{{end}}",
        "n2",
    ]);
    assert_eq!(ip.trim(), "10.231.8.9/24");
    let nets = docker.ok(&[
        "inspect",
        "-f",
        "{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}",
        "a",
    ]);
    assert_eq!(nets.trim(), "n1 n2", "container inspect sees both networks");
    let err = docker.fails(&["network", "connect", "n2", "a"]);
    assert!(err.contains("already exists in network n2"), "{err}");
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "n2",
        "--name",
        "c",
        "busybox:e2e",
        "sh",
        "-c",
        &fetch("web"),
    ]);
    assert_eq!(
        docker.ok(&["wait", "c"]).trim(),
        "0",
        "c resolves a's alias and fetches from it"
    );
    docker.ok(&["rm", "c"]);
    // A legacy link given on connect names a for the linking container alone.
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "n1",
        "--name",
        "d",
        "busybox:e2e",
        "sh",
        "-c",
        &fetch("db"),
    ]);
    docker.ok(&["network", "connect", "--link", "a:db", "n2", "d"]);
    assert_eq!(docker.ok(&["wait", "d"]).trim(), "0", "d reaches a as db");
    docker.ok(&["rm", "d"]);
    docker.ok(&["network", "disconnect", "n2", "a"]);
    let left = docker.ok(&["network", "inspect", "-f", "{{len .Containers}}", "n2"]);
    assert_eq!(left.trim(), "0");
    let err = docker.fails(&["network", "disconnect", "n2", "a"]);
    assert!(err.contains("is not connected to network n2"), "{err}");
    let err = docker.fails(&["network", "connect", "n2", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");

    // A legacy link given at create: the alias answers for that container alone, inspect
    // reports it as dockerd does, and a link to no container is refused.
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "n1",
        "--link",
        "a:dbl",
        "--name",
        "e",
        "busybox:e2e",
        "sh",
        "-c",
        &fetch("dbl"),
    ]);
    assert_eq!(docker.ok(&["wait", "e"]).trim(), "0", "e reaches a as dbl");
    let links = docker.ok(&["inspect", "-f", "{{json .HostConfig.Links}}", "e"]);
    assert_eq!(links.trim(), r#"["/a:/e/dbl"]"#);
    docker.ok(&["rm", "e"]);
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "n1",
        "--name",
        "f",
        "busybox:e2e",
        "sh",
        "-c",
        &fetch("dbl"),
    ]);
    assert_ne!(
        docker.ok(&["wait", "f"]).trim(),
        "0",
        "dbl is e's name alone"
    );
    docker.ok(&["rm", "f"]);
    let err = docker.fails(&["run", "--link", "nosuch:x", "busybox:e2e", "true"]);
    assert!(err.contains("could not get container for nosuch"), "{err}");

    // An internal network keeps its flag; options berth's bridge has no use for are refused.
    docker.ok(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.231.9.0/24",
        "n3",
    ]);
    let internal = docker.ok(&["network", "inspect", "-f", "{{.Internal}}", "n3"]);
    assert_eq!(internal.trim(), "true");
    let err = docker.fails(&["network", "create", "-o", "com.example.x=1", "n4"]);
    assert!(err.contains("com.example.x"), "{err}");

    // Prune takes the unused custom networks, never bridge or one in use.
    let pruned = docker.ok(&["network", "prune", "-f"]);
    assert!(pruned.contains("n2") && pruned.contains("n3"), "{pruned}");
    assert!(!pruned.contains("n1"), "{pruned}");
    let ls = docker.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(ls.lines().any(|l| l == "bridge"), "{ls}");
    assert!(!ls.lines().any(|l| l == "n2"), "{ls}");

    // Bad bodies: Docker's 400, nothing made, the daemon keeps serving.
    for body in ["{bad", "{\"Name\": 7}", "{}"] {
        let out = std::process::Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--unix-socket",
            ])
            .arg(&docker.sock)
            .args([
                "-X",
                "POST",
                "-H",
                "Content-Type: application/json",
                "-d",
                body,
            ])
            .arg("http://docker/v1.41/networks/create")
            .output()
            .expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "400", "{body}");
    }
    let ls = docker.ok(&["network", "ls", "-q", "-f", "type=custom"]);
    assert_eq!(ls.lines().count(), 1, "only n1: {ls}");

    docker.ok(&["rm", "-f", "a"]);
    assert_eq!(docker.ok(&["network", "rm", "n1"]).trim(), "n1");
    let err = docker.fails(&["network", "rm", "n1"]);
    assert!(err.contains("not found"), "{err}");
}

/// A shell line that fetches a's page from `name` (resolved by the embedded DNS), retried
/// while httpd starts.
fn fetch(name: &str) -> String {
    format!(
        "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do \
         case \"$(wget -qO- http://{name}:8080/)\" in *hello*) exit 0;; esac; sleep 0.5; \
         done; exit 1"
    )
}

/// `docker network create --aux-address`: the reserved addresses come back in
/// `IPAM.Config[].AuxiliaryAddresses`, a container run on the network is not given one, and
/// one outside the subnet is refused naming it.
#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, curl)]
#[test]
fn docker_cli_aux_addresses_are_reserved_and_inspected() {
    host::require_tools();
    let h = Host::new("dkaux");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&[
        "network",
        "create",
        "--subnet",
        "10.231.19.0/29",
        "--aux-address",
        "router=10.231.19.2",
        "aux1",
    ]);
    let aux = docker.ok(&[
        "network",
        "inspect",
        "-f",
        "{{range .IPAM.Config}}{{.AuxiliaryAddresses}}{{end}}",
        "aux1",
    ]);
    assert_eq!(aux.trim(), "map[router:10.231.19.2]");
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "a1",
        "--network",
        "aux1",
        "--link-local-ip",
        "169.254.3.3",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let ip = docker.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
        "a1",
    ]);
    assert_eq!(ip.trim(), "10.231.19.3", "the reserved .2 is skipped");
    let addr = docker.ok(&["exec", "a1", "busybox", "ip", "-4", "addr", "show", "eth0"]);
    assert!(
        addr.contains("inet 169.254.3.3/16"),
        "--link-local-ip: {addr}"
    );
    // On two networks, the default route goes via the one of the higher gw-priority.
    docker.ok(&["network", "create", "--subnet", "10.231.22.0/29", "aux3"]);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "a2",
        "--network",
        "aux1",
        "--network",
        "name=aux3,gw-priority=5",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let routes = docker.ok(&["exec", "a2", "busybox", "ip", "route"]);
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with("default via 10.231.22.1 ")),
        "gw-priority: {routes}"
    );
    // The CLI checks the subnet itself; a raw body shows berth's own refusal.
    let out = std::process::Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&docker.sock)
        .args(["-H", "Content-Type: application/json", "-d"])
        .arg(
            r#"{"Name": "aux2", "IPAM": {"Config": [{"Subnet": "10.231.20.0/29",
                "AuxiliaryAddresses": {"far": "10.231.21.2"}}]}}"#,
        )
        .arg("http://docker/v1.41/networks/create")
        .output()
        .expect("curl");
    let answer = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(answer.ends_with("\n400"), "{answer}");
    assert!(
        answer.contains("aux_addresses far=10.231.21.2") && answer.contains("10.231.20.0/29"),
        "{answer}"
    );
    docker.ok(&["rm", "-f", "a1", "a2"]);
    docker.ok(&["network", "rm", "aux1", "aux3"]);
    let ls = docker.ok(&["network", "ls", "--format", "{{.Name}}"]);
    assert!(!ls.lines().any(|l| l.starts_with("aux")), "{ls}");
}
