//! Legacy links given at `docker network connect --link` outlive the daemon that took them:
//! the container's DNS answers the alias again once a new daemon re-registers the names after
//! `berth system shutdown` (links given at create are kept in the record's label; these are
//! kept beside it), inspect reports them on the endpoint, and a disconnect forgets them.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// Whether `NAME` resolves inside container `c` on network lk1 (asked of lk1's DNS at its
/// gateway, which answers a container's links), and what `nslookup` printed.
fn lookup(docker: &Docker, c: &str, name: &str) -> (bool, String) {
    let out = docker.run(&["exec", c, "nslookup", name, "10.231.42.1"]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn links_given_at_connect_survive_a_daemon_restart() {
    host::require_tools();
    let h = Host::new("dklnk");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&["network", "create", "--subnet", "10.231.41.0/24", "lk0"]);
    docker.ok(&["network", "create", "--subnet", "10.231.42.0/24", "lk1"]);
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "lk1",
        "--name",
        "t",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "lk0",
        "--name",
        "c",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let t_ip = docker.ok(&[
        "inspect",
        "-f",
        "{{.NetworkSettings.Networks.lk1.IPAddress}}",
        "t",
    ]);
    let t_ip = t_ip.trim().to_string();
    assert!(t_ip.starts_with("10.231.42."), "{t_ip}");
    docker.ok(&["network", "connect", "--link", "t:tdb", "lk1", "c"]);
    let (ok, answer) = lookup(&docker, "c", "tdb");
    assert!(
        ok && answer.contains(&format!("Address: {t_ip}")),
        "c resolves its link: {answer}"
    );
    let links = docker.ok(&[
        "inspect",
        "-f",
        "{{json .NetworkSettings.Networks.lk1.Links}}",
        "c",
    ]);
    assert_eq!(links.trim(), r#"["t:tdb"]"#);

    // A new daemon re-registers the names, the link among them.
    h.ok(&["system", "shutdown"]);
    let docker = Docker::new(&h);
    let (ok, answer) = lookup(&docker, "c", "tdb");
    assert!(
        ok && answer.contains(&format!("Address: {t_ip}")),
        "c resolves its link after a daemon restart: {answer}"
    );
    // The alias is c's alone.
    docker.ok(&[
        "run",
        "-d",
        "--network",
        "lk1",
        "--name",
        "o",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let (ok, answer) = lookup(&docker, "o", "tdb");
    assert!(!ok, "tdb is c's link alone: {answer}");

    // Leaving the network forgets the link: a new connect without it does not answer it.
    docker.ok(&["network", "disconnect", "lk1", "c"]);
    docker.ok(&["network", "connect", "lk1", "c"]);
    let (ok, answer) = lookup(&docker, "c", "tdb");
    assert!(!ok, "the link went with the disconnect: {answer}");

    docker.ok(&["rm", "-f", "t", "c", "o"]);
    docker.ok(&["network", "rm", "lk0", "lk1"]);
}
