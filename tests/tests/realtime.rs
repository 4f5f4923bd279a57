//! Real-time CPU time reaches the container's cgroup through each front end (Compose's
//! `cpu_rt_period`/`cpu_rt_runtime`, `container run --cpu-rt-period/--cpu-rt-runtime`, the
//! Docker API's `CpuRealtimePeriod`/`CpuRealtimeRuntime` with the docker CLI as the client):
//! the values show in `cpu.rt_period_us`/`cpu.rt_runtime_us`, a process inside may switch to
//! `SCHED_FIFO` (it may not without them), the cgroups above the container hold the budget
//! while it runs and give it back when it goes, and a claim beyond the host's budget fails
//! saying what is left. Each test puts its containers under a cgroup parent of its own and
//! removes it after.
//!
//! Needs cgroup v1 with RT group scheduling (`/sys/fs/cgroup/cpu/cpu.rt_runtime_us`; the tests
//! show as ignored without it); elsewhere the keys are warned about by name (the create
//! path's unit tests cover that).

use std::path::{Path, PathBuf};

use berth_tests::container_util::static_c_program;
use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

const CPU: &str = "/sys/fs/cgroup/cpu";

/// A static program that switches itself to `SCHED_FIFO` priority 10 (what `chrt -f 10`
/// does) and prints the outcome; exits 0 when the kernel allowed it.
fn fifo_probe() -> PathBuf {
    static_c_program(
        "berth-rt-fifo-probe",
        "#include <sched.h>\n#include <stdio.h>\n#include <errno.h>\n#include <string.h>\n\
         int main(void){struct sched_param p;p.sched_priority=10;\
         if(sched_setscheduler(0,SCHED_FIFO,&p)!=0){printf(\"refused: %s\\n\",strerror(errno));return 1;}\
         printf(\"policy=%d\\n\",sched_getscheduler(0));return 0;}\n",
    )
}

/// A cgroup parent of the test's own (`berth-rt-<tag>-<pid>`), removed from every hierarchy
/// (deepest first) when dropped.
struct Parent(String);

impl Parent {
    fn new(tag: &str) -> Parent {
        Parent(format!("berth-rt-{tag}-{}", std::process::id()))
    }

    /// The cpu cgroup at `rel` under this parent.
    fn cpu(&self, rel: &str) -> PathBuf {
        Path::new(CPU).join(&self.0).join(rel)
    }
}

impl Drop for Parent {
    fn drop(&mut self) {
        fn rm(d: &Path) {
            for e in std::fs::read_dir(d).into_iter().flatten().flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    rm(&e.path());
                }
            }
            let _ = std::fs::remove_dir(d);
        }
        for h in std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten()
        {
            rm(&h.path().join(&self.0));
        }
    }
}

fn read(p: &Path) -> u64 {
    std::fs::read_to_string(p)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("reading {}", p.display()))
}

fn runtime_of(p: &Path) -> u64 {
    read(&p.join("cpu.rt_runtime_us"))
}

/// What a cgroup above the containers still holds (0 once it is gone: berth removes an empty
/// parent).
fn held(p: &Path) -> u64 {
    if p.exists() { runtime_of(p) } else { 0 }
}

fn period_of(p: &Path) -> u64 {
    read(&p.join("cpu.rt_period_us"))
}

#[test_with::root()]
#[test_with::path(/sys/fs/cgroup/cpu/cpu.rt_runtime_us)]
#[test]
fn compose_cpu_rt_keys_reach_the_cgroup_and_the_budget_goes_back() {
    host::require_tools();
    let parent = Parent::new("cmp");
    let host = Host::new("rtc");
    host.busybox_image();
    let probe = fifo_probe();
    let compose = format!(
        r#"
name: rtc
services:
  rt:
    image: busybox:e2e
    scale: 3
    network_mode: none
    stop_grace_period: 1s
    cgroup_parent: {p}/svc
    cpu_rt_period: 1000000
    cpu_rt_runtime: 20000
    cap_add: [SYS_NICE]
    volumes: ["{probe}:/rtprobe:ro"]
    command: ["sleep", "3600"]
  plain:
    image: busybox:e2e
    network_mode: none
    stop_grace_period: 1s
    cgroup_parent: {p}/svc
    cap_add: [SYS_NICE]
    volumes: ["{probe}:/rtprobe:ro"]
    command: ["sleep", "3600"]
"#,
        p = parent.0,
        probe = probe.display()
    );
    std::fs::write(host.stack.join("compose.yaml"), compose).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("cpu_rt"), "applied, not warned: {stderr}");
    let id = host.ok(&["container", "inspect", "-f", "{{.Id}}", "rtc-rt-1"]);
    let cg = parent.cpu(&format!("svc/{}", id.trim()));
    assert_eq!(period_of(&cg), 1_000_000);
    assert_eq!(runtime_of(&cg), 20_000);
    // Both cgroups above hold the three replicas' budgets (started side by side, the
    // budget changes serialised), no more.
    assert_eq!(runtime_of(&parent.cpu("")), 60_000);
    assert_eq!(runtime_of(&parent.cpu("svc")), 60_000);

    let ok = host.berth(&["exec", "--index", "2", "rt", "/rtprobe"]);
    assert!(
        ok.status.success(),
        "SCHED_FIFO with a real-time runtime: {}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("policy=1"));
    // The same capability without real-time runtime: the kernel refuses.
    let no = host.berth(&["exec", "plain", "/rtprobe"]);
    assert!(!no.status.success(), "{no:?}");
    assert!(
        String::from_utf8_lossy(&no.stdout).contains("refused"),
        "{no:?}"
    );

    host.down_clean();
    // The container's share went back up the path: nothing is left claimed.
    assert_eq!(held(&parent.cpu("")), 0);
    assert_eq!(held(&parent.cpu("svc")), 0);
}

#[test_with::root()]
#[test_with::path(/sys/fs/cgroup/cpu/cpu.rt_runtime_us)]
#[test]
fn container_run_cpu_rt_flags_apply_and_refuse_what_cannot_fit() {
    host::require_tools();
    let parent = Parent::new("run");
    let host = Host::new("rtr");
    host.busybox_image();
    let probe = fifo_probe();
    let bind = format!("{}:/rtprobe:ro", probe.display());
    let out = host.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "rt",
        "--network",
        "none",
        "--cgroup-parent",
        &parent.0,
        "--cpu-rt-period",
        "500000",
        "--cpu-rt-runtime",
        "15000",
        "--cap-add",
        "SYS_NICE",
        "-v",
        &bind,
        "busybox:e2e",
        "sleep",
        "300",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = host.ok(&["container", "inspect", "-f", "{{.Id}}", "rt"]);
    let cg = parent.cpu(id.trim());
    assert_eq!(period_of(&cg), 500_000);
    assert_eq!(runtime_of(&cg), 15_000);
    // The parent's period is the kernel's 1 s: it holds the same share of it.
    assert_eq!(period_of(&parent.cpu("")), 1_000_000);
    assert_eq!(runtime_of(&parent.cpu("")), 30_000);
    let ok = host.berth(&["container", "exec", "rt", "/rtprobe"]);
    assert!(ok.status.success(), "{ok:?}");

    // A runtime beyond its period is refused before anything is made, naming the field.
    let bad = host.berth(&[
        "container",
        "run",
        "--rm",
        "--cpu-rt-period",
        "1000",
        "--cpu-rt-runtime",
        "2000",
        "busybox:e2e",
        "true",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(err.contains("HostConfig.CpuRealtimeRuntime"), "{err}");

    // More than the host's budget (the root's 95 % less what is claimed) fails saying what
    // is left, and gives back what it took on the way.
    let root_left = runtime_of(Path::new(CPU));
    let greedy = (root_left + 1000).to_string();
    let bad = host.berth(&[
        "container",
        "run",
        "--rm",
        "--name",
        "greedy",
        "--cgroup-parent",
        &format!("{}/deep", parent.0),
        "--cpu-rt-runtime",
        &greedy,
        "busybox:e2e",
        "true",
    ]);
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success());
    assert!(
        err.contains("real-time budget") && err.contains("left"),
        "{err}"
    );
    assert_eq!(runtime_of(&parent.cpu("")), 30_000);
    let _ = host.berth(&["container", "rm", "-f", "greedy"]);

    host.ok(&["container", "rm", "-f", "rt"]);
    assert_eq!(held(&parent.cpu("")), 0);
}

#[test_with::root()]
#[test_with::path(/sys/fs/cgroup/cpu/cpu.rt_runtime_us)]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_run_and_update_cpu_rt_flags_apply_and_inspect_reports_them() {
    host::require_tools();
    let parent = Parent::new("dk");
    let h = Host::new("rtdk");
    h.busybox_image();
    let docker = Docker::new(&h);
    let out = docker.run(&[
        "run",
        "-d",
        "--name",
        "x",
        "--network",
        "none",
        "--cgroup-parent",
        &parent.0,
        "--cpu-rt-runtime",
        "25000",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    assert!(out.status.success(), "{out:?}");
    let id = docker.ok(&["inspect", "-f", "{{.Id}}", "x"]);
    let cg = parent.cpu(id.trim());
    assert_eq!(runtime_of(&cg), 25_000);
    assert_eq!(runtime_of(&parent.cpu("")), 25_000);
    let inspect: serde_json::Value =
        serde_json::from_str(&docker.ok(&["inspect", "x"])).expect("inspect json");
    assert_eq!(inspect[0]["HostConfig"]["CpuRealtimeRuntime"], 25_000);

    // `docker update` moves the budget with the claim.
    docker.ok(&["update", "--cpu-rt-runtime", "10000", "x"]);
    assert_eq!(runtime_of(&cg), 10_000);
    assert_eq!(runtime_of(&parent.cpu("")), 10_000);
    let inspect: serde_json::Value =
        serde_json::from_str(&docker.ok(&["inspect", "x"])).expect("inspect json");
    assert_eq!(inspect[0]["HostConfig"]["CpuRealtimeRuntime"], 10_000);

    docker.ok(&["rm", "-f", "x"]);
    assert_eq!(held(&parent.cpu("")), 0);
    h.berth(&["system", "shutdown"]);
}
