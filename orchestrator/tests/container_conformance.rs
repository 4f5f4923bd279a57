//! Conformance: the bundle berth writes runs the same under runc (the reference OCI runtime,
//! which accepts this host's hybrid cgroup layout) as under berth's own executor.

mod container_util;

use std::process::Command;

use container_util::{Env, stderr, stdout};

const PROBE: &str = "grep -E '^(CapPrm|CapEff|CapBnd|NoNewPrivs|Seccomp):' /proc/self/status; \
    hostname; id; ps -o pid,comm | head -2; ulimit -n; cat /proc/sys/net/core/somaxconn; \
    kc; echo keyctl=$?; cat /proc/mounts | cut -d' ' -f2 | sort | tr '\\n' ' '";

fn compare(env: &Env, name: &str, opts: &[&str]) {
    let rootfs = env.rootfs.display().to_string();
    let mut args = vec![
        "container",
        "create",
        "--name",
        name,
        "--rootfs",
        rootfs.as_str(),
    ];
    args.extend_from_slice(opts);
    args.extend_from_slice(&["sh", "-c", PROBE]);
    let o = env.berth(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    let bundle = env.root.join("containers").join(&id);
    let runc = Command::new("timeout")
        .arg("30")
        .arg("runc")
        .arg("--root")
        .arg(env.tmp.path().join("runc"))
        .arg("run")
        .arg("-b")
        .arg(&bundle)
        .arg(format!("{name}-{}", &id[..8]))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("runc (scripts/deps.sh installs it)");
    assert!(runc.status.success(), "runc: {}", stderr(&runc));
    let ours = env.berth(&["container", "start", "-a", name]);
    assert!(ours.status.success(), "{}", stderr(&ours));
    assert_eq!(stdout(&ours), stdout(&runc), "berth vs runc for {opts:?}");
    assert!(env.berth(&["container", "rm", name]).status.success());
}

#[test]
fn berth_and_runc_agree_on_the_same_bundle() {
    let env = Env::new();
    compare(&env, "plain", &[]);
    compare(
        &env,
        "tuned",
        &[
            "--hostname",
            "tuned",
            "-u",
            "app",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "NET_RAW",
            "--ulimit",
            "nofile=256:512",
            "--sysctl",
            "net.core.somaxconn=1234",
            "--read-only",
        ],
    );
    compare(
        &env,
        "loose",
        &["--security-opt", "seccomp=unconfined", "--privileged"],
    );
    env.sweep_cgroups();
    env.assert_clean();
}
