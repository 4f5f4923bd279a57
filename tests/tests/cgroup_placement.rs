//! Every process of a container lives in the container's cgroup, in every hierarchy berth
//! manages, and its limits hold from the first instruction: the init moves itself in before
//! it sets up the container's root (on cgroup v1 through the hierarchies' `tasks` files), and
//! an exec'd process joins the same cgroups before it enters the namespaces.

use berth_tests::host::{self, Host};

/// The controllers berth gives a container its own cgroup in (v1), as /proc/PID/cgroup
/// names them.
const MANAGED: [&str; 8] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
];

/// The lines of /proc/`pid`/cgroup for the hierarchies berth manages (every v1 hierarchy
/// holding one of [`MANAGED`], or the unified line on a pure v2 host), as (controllers, path).
fn managed_cgroups(pid: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    text.lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            let managed = if v2 {
                ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| MANAGED.contains(&c))
            };
            managed.then(|| (ctrls.to_string(), path.to_string()))
        })
        .collect()
}

/// Asserts that `pid` sits in the cgroup of container `id` in every managed hierarchy.
fn assert_in_container_cgroup(pid: &str, id: &str, what: &str) {
    let cgs = managed_cgroups(pid);
    assert!(
        !cgs.is_empty(),
        "{what}: no managed cgroup lines for pid {pid}"
    );
    for (ctrls, path) in &cgs {
        assert!(
            path.ends_with(id),
            "{what} (pid {pid}) is not in the container's {ctrls} cgroup: {path} (container {id})"
        );
    }
}

#[test_with::root()]
#[test]
fn init_and_exec_run_in_the_containers_cgroup_with_its_limits() {
    host::require_tools();
    let host = Host::new("cgp");
    host.busybox_image();
    let id = host.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "cgp",
        "--network",
        "none",
        "--pids-limit",
        "4",
        "busybox:e2e",
        "sleep",
        "3600",
    ]);
    let id = id.trim().to_string();
    let pid = host.ok(&["container", "inspect", "-f", "{{.State.Pid}}", "cgp"]);
    let pid = pid.trim();
    assert_in_container_cgroup(pid, &id, "the container's process");

    // An exec'd process joins the same cgroups.
    host.ok(&["container", "exec", "-d", "cgp", "sleep", "3599"]);
    let mut exec_pid = None;
    for _ in 0..50 {
        exec_pid = std::fs::read_dir("/proc").ok().and_then(|d| {
            d.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .find(|p| {
                    std::fs::read(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c == b"sleep\x003599\x00")
                })
        });
        if exec_pid.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let exec_pid = exec_pid.expect("the exec'd `sleep 3599` runs");
    assert_in_container_cgroup(&exec_pid, &id, "the exec'd process");

    // The pids limit counts the container's processes, the exec'd ones included: ten
    // background children cannot all start under a limit of 4.
    let out = host.berth(&[
        "container",
        "exec",
        "cgp",
        "sh",
        "-c",
        "i=0; while [ $i -lt 10 ]; do sleep 30 & i=$((i+1)); done; kill $(jobs -p) 2>/dev/null",
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        all.contains("fork"),
        "ten forks under --pids-limit 4 all succeeded: {all}"
    );
    host.ok(&["container", "rm", "-f", "cgp"]);
}
