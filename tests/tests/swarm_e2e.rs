//! A real multi-node Docker Swarm on this machine (scripts/swarm-e2e.sh): three of Debian's
//! dockerd, each in its own network namespace, joined as manager + two workers over veths;
//! examples/lnmp deployed with `berth deploy --swarm` through Debian's docker-registry; the
//! page must serve MariaDB's rows, the replicas must spread over the nodes, and after a
//! worker's dockerd is killed its tasks must be rescheduled and the page must come back. The
//! script removes everything it made and fails if anything is left. It takes minutes.

use std::process::Command;

use berth_tests::binary::{berth_bin, workspace_root};

#[test_with::root()]
#[test_with::executable(dockerd, containerd, docker-registry, nsenter, unshare, curl)]
#[test]
fn lnmp_runs_on_a_three_node_swarm_and_survives_a_dead_worker() {
    let script = workspace_root().join("scripts/swarm-e2e.sh");
    let out = Command::new("bash")
        .arg(&script)
        .env("BERTH", berth_bin())
        .output()
        .expect("run scripts/swarm-e2e.sh");
    let log = String::from_utf8_lossy(&out.stderr);
    println!("{log}");
    assert!(
        out.status.success(),
        "swarm-e2e failed:\n{log}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for step in [
        "services pinned by digest",
        "page serves MariaDB's rows",
        "replicas spread",
        "tasks rescheduled on live nodes",
        "berth deploy --rm removed the stack",
        "no namespace, veth, mount, cgroup or process of ours left",
        "PASS",
    ] {
        assert!(log.contains(step), "no {step:?} in:\n{log}");
    }
}
