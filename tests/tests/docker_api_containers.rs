//! The Docker Engine API's container routes, with the real docker CLI as the oracle: `docker
//! create/start/ps/inspect/stop/kill/restart/wait/rm` and `docker run -d` against a berth
//! instance of the test's own, with Docker's answers for taken names, missing images and
//! containers, running containers removed without force, and fields berth cannot run.
//!
//! Every docker command gets `DOCKER_HOST` set to the instance's socket and `DOCKER_CONFIG`
//! to a directory of the test's, so no test ever reaches another Docker daemon or reads the
//! user's docker configuration.

use std::path::PathBuf;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_creates_starts_stops_and_removes_containers() {
    host::require_tools();
    let h = Host::new("dkctr");
    h.busybox_image();
    let docker = Docker::new(&h);

    let id = docker.ok(&["create", "--name", "x", "busybox:e2e", "sleep", "60"]);
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "create prints the full id: {id}");
    let ps = docker.ok(&["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Image}}"]);
    assert_eq!(ps.trim(), "x created busybox:e2e");
    assert!(
        docker.ok(&["ps", "-q"]).trim().is_empty(),
        "not running yet"
    );

    // A taken name, a missing image and a missing container, in Docker's words.
    let err = docker.fails(&["create", "--name", "x", "busybox:e2e", "true"]);
    assert!(
        err.contains(&format!(
            "Conflict. The container name \"/x\" is already in use by container \"{id}\""
        )),
        "{err}"
    );
    let err = docker.fails(&["create", "--pull", "never", "busybox:nope", "true"]);
    assert!(err.contains("No such image: busybox:nope"), "{err}");
    let err = docker.fails(&["start", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");

    assert_eq!(docker.ok(&["start", "x"]).trim(), "x");
    let ps = docker.ok(&["ps", "--format", "{{.ID}} {{.Names}} {{.Status}}"]);
    assert!(ps.starts_with(&format!("{} x Up ", &id[..12])), "{ps}");
    let st = docker.ok(&["inspect", "-f", "{{.State.Running}} {{.State.Pid}}", "x"]);
    let (running, pid) = st.trim().split_once(' ').unwrap_or_default();
    assert_eq!(running, "true", "{st}");
    let pid: i32 = pid.parse().unwrap_or(0);
    assert!(pid > 1, "{st}");
    assert!(
        PathBuf::from(format!("/proc/{pid}")).exists(),
        "pid {pid} lives"
    );
    // A unique prefix of the id names it too.
    let name = docker.ok(&["inspect", "-f", "{{.Name}} {{.Config.Image}}", &id[..8]]);
    assert_eq!(name.trim(), "/x busybox:e2e");

    // Removing a running container needs force.
    let err = docker.fails(&["rm", "x"]);
    assert!(err.contains("container is running"), "{err}");

    assert_eq!(docker.ok(&["stop", "-t", "1", "x"]).trim(), "x");
    let ps = docker.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(ps.trim().starts_with("x Exited ("), "{ps}");
    assert!(docker.ok(&["ps", "-q"]).trim().is_empty(), "{ps}");
    let st = docker.ok(&["inspect", "-f", "{{.State.Status}} {{.State.Running}}", "x"]);
    assert_eq!(st.trim(), "exited false");

    // Restart runs it again; kill stops it with the signal; wait answers its status.
    docker.ok(&["restart", "-t", "1", "x"]);
    assert_eq!(docker.ok(&["ps", "-q"]).trim(), &id[..12]);
    docker.ok(&["kill", "x"]);
    assert_eq!(docker.ok(&["wait", "x"]).trim(), "137");
    let err = docker.fails(&["kill", "x"]);
    assert!(err.contains("is not running"), "{err}");

    assert_eq!(docker.ok(&["rm", "x"]).trim(), "x");
    assert!(docker.ok(&["ps", "-aq"]).trim().is_empty());
    let err = docker.fails(&["inspect", "--type", "container", "x"]);
    assert!(err.contains("No such container: x"), "{err}");
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_run_detached_keeps_env_and_labels_and_refuses_what_berth_cannot_run() {
    host::require_tools();
    let h = Host::new("dkrun");
    h.busybox_image();
    let docker = Docker::new(&h);

    let id = docker.ok(&[
        "run",
        "-d",
        "--name",
        "y",
        "-e",
        "A=1",
        "-l",
        "k=v",
        "busybox:e2e",
        "sleep",
        "60",
    ]);
    let id = id.trim().to_string();
    let env = docker.ok(&["inspect", "-f", "{{json .Config.Env}}", "y"]);
    assert!(env.contains("\"A=1\""), "{env}");
    let labels = docker.ok(&["inspect", "-f", "{{json .Config.Labels}}", "y"]);
    assert!(labels.contains("\"k\":\"v\""), "{labels}");
    let cmd = docker.ok(&["inspect", "-f", "{{json .Config.Cmd}} {{.Path}}", "y"]);
    assert_eq!(cmd.trim(), "[\"sleep\",\"60\"] sleep");
    let restart = docker.ok(&["inspect", "-f", "{{.HostConfig.RestartPolicy.Name}}", "y"]);
    assert_eq!(restart.trim(), "no");

    // Filters: label, name, status, id, ancestor.
    for f in [
        "label=k=v",
        "label=k",
        "name=y",
        "status=running",
        "ancestor=busybox:e2e",
    ] {
        let got = docker.ok(&["ps", "-q", "--filter", f]);
        assert_eq!(got.trim(), &id[..12], "--filter {f}");
    }
    let got = docker.ok(&["ps", "-q", "--filter", &format!("id={}", &id[..6])]);
    assert_eq!(got.trim(), &id[..12]);
    for f in ["label=k=w", "name=zzz", "status=exited"] {
        let got = docker.ok(&["ps", "-aq", "--filter", f]);
        assert!(got.trim().is_empty(), "--filter {f}: {got}");
    }
    let err = docker.fails(&["ps", "--filter", "bogus=1"]);
    assert!(err.contains("invalid filter 'bogus'"), "{err}");

    assert_eq!(docker.ok(&["rm", "-f", "y"]).trim(), "y");
    assert!(docker.ok(&["ps", "-aq"]).trim().is_empty());

    // A field berth cannot run is refused by its name, with 400, and nothing is made.
    let out = docker.run(&["create", "--cpuset-mems", "0", "busybox:e2e", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("HostConfig.CpusetMems"), "{err}");
    assert!(docker.ok(&["ps", "-aq"]).trim().is_empty());
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_api_container_lands_under_the_instance_cgroup_parent() {
    host::require_tools();
    let h = Host::new("dkcg");
    let parent = format!("berth-dkcg-{}", std::process::id());
    // The daemon, started first with the variable, opens every runtime of its own with it.
    let started = h.sh(&format!(
        "BERTH_CGROUP_PARENT={parent} {} --root {} --run {} system docker-host",
        berth_tests::binary::berth_bin().display(),
        h.root.display(),
        h.run.display()
    ));
    assert!(started.status.success(), "{started:?}");
    h.busybox_image();
    let docker = Docker::new(&h);

    let id = docker.ok(&["run", "-d", "--name", "cg", "busybox:e2e", "sleep", "60"]);
    let id = id.trim().to_string();
    let pid = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "cg"]);
    let cgroups =
        std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap_or_default();
    let under = format!("/{parent}/{id}");
    assert!(
        cgroups.lines().any(|l| l.ends_with(&under)),
        "{under} in:\n{cgroups}"
    );
    assert_eq!(docker.ok(&["rm", "-f", "cg"]).trim(), "cg");
    h.berth(&["system", "shutdown"]);
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(hierarchy.path().join(&parent));
    }
}
