//! The Docker Engine API's volume routes, with the real docker CLI as the oracle: `docker
//! volume create/ls/inspect/rm/prune` against a berth instance of the test's own, data kept
//! across containers, Compose's labels kept and filterable, and Docker's answers for a volume
//! in use, a missing one and a driver berth does not have.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_creates_uses_and_removes_volumes() {
    host::require_tools();
    let h = Host::new("dkvol");
    h.busybox_image();
    let docker = Docker::new(&h);

    let name = docker.ok(&[
        "volume",
        "create",
        "--label",
        "k=v",
        "--label",
        "com.docker.compose.project=p1",
        "v1",
    ]);
    assert_eq!(name.trim(), "v1");
    // Creating it again answers the same volume, as Docker's local driver.
    assert_eq!(docker.ok(&["volume", "create", "v1"]).trim(), "v1");
    let err = docker.fails(&["volume", "create", "-d", "nfs", "v2"]);
    assert!(err.contains("\"nfs\""), "{err}");
    // A network filesystem has no absolute device path: refused naming the volume and the
    // option, before any mount.
    let err = docker.fails(&["volume", "create", "-o", "type=nfs", "-o", "o=addr=x", "v3"]);
    assert!(
        err.contains("volume v3") && err.contains("\"device\""),
        "{err}"
    );
    let err = docker.fails(&[
        "volume",
        "create",
        "-o",
        "type=nfs",
        "-o",
        "o=addr=x",
        "-o",
        "device=:/export",
        "v3",
    ]);
    assert!(
        err.contains("volume v3") && err.contains("absolute"),
        "{err}"
    );
    let err = docker.fails(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        "device=/nope/x",
        "v3",
    ]);
    assert!(err.contains("/nope/x"), "{err}");

    // A bind volume (the local driver's type=none,o=bind,device=DIR): its data is DIR, which
    // outlives it.
    let dir = tempfile::tempdir().expect("device dir");
    let device = format!("device={}", dir.path().display());
    docker.ok(&[
        "volume",
        "create",
        "-o",
        "type=none",
        "-o",
        "o=bind",
        "-o",
        &device,
        "vb",
    ]);
    let opts = docker.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Options.type}} {{.Options.o}}",
        "vb",
    ]);
    assert_eq!(opts.trim(), "none bind");
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "wb",
        "-v",
        "vb:/d",
        "busybox:e2e",
        "sh",
        "-c",
        "echo y > /d/g",
    ]);
    assert_eq!(docker.ok(&["wait", "wb"]).trim(), "0");
    assert_eq!(
        std::fs::read_to_string(dir.path().join("g")).unwrap_or_default(),
        "y\n"
    );
    docker.ok(&["rm", "wb"]);
    assert_eq!(docker.ok(&["volume", "rm", "vb"]).trim(), "vb");
    assert!(
        dir.path().join("g").exists(),
        "removing the volume keeps DIR"
    );

    let ls = docker.ok(&["volume", "ls", "--format", "{{.Driver}} {{.Name}}"]);
    assert_eq!(ls.trim(), "local v1");
    let f = docker.ok(&[
        "volume",
        "ls",
        "-q",
        "-f",
        "label=com.docker.compose.project=p1",
    ]);
    assert_eq!(f.trim(), "v1");
    let f = docker.ok(&["volume", "ls", "-q", "-f", "label=k=other"]);
    assert!(f.trim().is_empty(), "{f}");
    let ins = docker.ok(&[
        "volume",
        "inspect",
        "-f",
        "{{.Name}} {{.Driver}} {{.Scope}} {{.Labels.k}} {{.Mountpoint}}",
        "v1",
    ]);
    let ins = ins.trim();
    assert!(ins.starts_with("v1 local local v "), "{ins}");
    assert!(ins.ends_with("/volumes/v1/_data"), "{ins}");
    let err = docker.fails(&["volume", "inspect", "nope"]);
    assert!(err.contains("no such volume"), "{err}");

    // Data written by one container is read by the next.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "w",
        "-v",
        "v1:/d",
        "busybox:e2e",
        "sh",
        "-c",
        "echo x > /d/f",
    ]);
    assert_eq!(docker.ok(&["wait", "w"]).trim(), "0");
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "r",
        "-v",
        "v1:/d",
        "busybox:e2e",
        "sh",
        "-c",
        "test \"$(cat /d/f)\" = x",
    ]);
    assert_eq!(
        docker.ok(&["wait", "r"]).trim(),
        "0",
        "r reads what w wrote"
    );
    let dangling = docker.ok(&["volume", "ls", "-q", "-f", "dangling=false"]);
    assert_eq!(dangling.trim(), "v1");

    // In use: Docker's 409, even when stopped.
    let err = docker.fails(&["volume", "rm", "v1"]);
    assert!(err.contains("volume is in use"), "{err}");
    docker.ok(&["rm", "w", "r"]);

    // Prune: API 1.42 on (Docker 23), anonymous volumes only unless --all; older clients
    // prune every unused one.
    let anon = docker.ok(&["volume", "create"]);
    let anon = anon.trim().to_string();
    assert_eq!(anon.len(), 64, "a generated name: {anon}");
    let ver = docker.ok(&["version", "-f", "{{.Client.APIVersion}}"]);
    let minor: u32 = ver
        .trim()
        .strip_prefix("1.")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let pruned = docker.ok(&["volume", "prune", "-f"]);
    assert!(pruned.contains(&anon), "{pruned}");
    if minor >= 42 {
        let ls = docker.ok(&["volume", "ls", "-q"]);
        assert_eq!(ls.trim(), "v1", "a named volume stays");
        let pruned = docker.ok(&["volume", "prune", "-f", "--all"]);
        assert!(pruned.contains("v1"), "{pruned}");
    } else {
        assert!(pruned.contains("v1"), "{pruned}");
    }
    assert!(docker.ok(&["volume", "ls", "-q"]).trim().is_empty());
    let err = docker.fails(&["volume", "rm", "v1"]);
    assert!(err.contains("no such volume"), "{err}");
    docker.ok(&["volume", "rm", "-f", "v1"]);
}
