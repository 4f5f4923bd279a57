//! Where Docker's own clients read details of the Engine API closely, with the real docker CLI
//! and docker-py as the oracles: the stats fields `docker stats` and docker-py read, a
//! healthcheck's output on inspect, the exit codes and texts of a command that cannot run,
//! swarm routes on a node that is no swarm, and `docker login`.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// `docker ARGS`: exit status and stderr.
fn status_and_err(docker: &Docker, args: &[&str]) -> (i32, String) {
    let out = docker.run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_exec_and_run_exit_statuses_and_texts_as_dockers() {
    host::require_tools();
    let h = Host::new("dkexit");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&["run", "-d", "--name", "x", "busybox:e2e", "sleep", "600"]);

    let (code, err) = status_and_err(&docker, &["exec", "x", "nosuch"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    let (code, err) = status_and_err(&docker, &["exec", "x", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("exec: \"/etc/passwd\": permission denied"),
        "{err}"
    );
    let (code, err) = status_and_err(&docker, &["exec", "x", "/etc"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("exec: \"/etc\""), "{err}");
    // The command's own status passes through.
    let (code, err) = status_and_err(&docker, &["exec", "x", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "{err}");

    let (code, err) = status_and_err(&docker, &["run", "--rm", "busybox:e2e", "nosuch"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    let (code, err) = status_and_err(&docker, &["run", "--rm", "busybox:e2e", "/etc"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("exec: \"/etc\""), "{err}");
    let (code, err) = status_and_err(
        &docker,
        &["run", "--rm", "busybox:e2e", "sh", "-c", "exit 9"],
    );
    assert_eq!(code, 9, "{err}");
    docker.ok(&["rm", "-f", "x"]);
}
