//! docker-py's high-level API and Testcontainers for Python, the SDKs users' test suites are
//! written in, driving berth through its Docker Engine API socket. The scripts
//! (tests/tests/py/) run with the venv scripts/deps.sh installs (its `python3` first on PATH
//! through scripts/env.sh), inside the instance's network namespace so that published ports
//! are reached where berth published them.

use std::path::Path;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// Panics naming the setup step when the venv's modules are missing: scripts/deps.sh installs
/// them, so their absence is a broken setup, not a reason to pass unrun.
fn require_python_clients() {
    let ok = std::process::Command::new("python3")
        .args(["-c", "import docker, testcontainers"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 lacks docker/testcontainers: run scripts/deps.sh and . scripts/env.sh"
    );
}

/// Runs `script` with python3 inside `h`'s namespace against its docker.sock; panics with
/// the script's output when it fails.
fn run_script(h: &Host, docker: &Docker, script: &str, env: &[(&str, &str)]) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/py")
        .join(script);
    let net = format!("--net=/run/netns/{}", h.ns);
    let mut cmd = docker.tool(
        "nsenter",
        300,
        &[&net, "python3", &path.display().to_string()],
    );
    cmd.envs(env.iter().copied());
    let out = cmd.output().expect("run python3");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{script} failed:\n{text}");
    text
}

#[test_with::root()]
#[test_with::executable(python3, ip, nsenter)]
#[test]
fn docker_py_high_level_api_works() {
    host::require_tools();
    require_python_clients();
    let h = Host::new("dpy");
    h.busybox_image();
    let docker = Docker::new(&h);
    let prefix = format!("dpy{}", std::process::id());
    let out = run_script(
        &h,
        &docker,
        "docker_py_highlevel.py",
        &[("BT_PREFIX", &prefix), ("BT_SUBNET", "10.77.3.0/24")],
    );
    assert!(out.contains("docker-py: all steps passed"), "{out}");
    let left = docker.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
}

#[test_with::root()]
#[test_with::executable(python3, ip, nsenter)]
#[test]
fn testcontainers_runs_a_generic_container() {
    host::require_tools();
    require_python_clients();
    let h = Host::new("dtc");
    h.busybox_image();
    let docker = Docker::new(&h);
    let out = run_script(
        &h,
        &docker,
        "testcontainers_generic.py",
        &[("TESTCONTAINERS_RYUK_DISABLED", "true")],
    );
    assert!(out.contains("testcontainers: passed"), "{out}");
    let left = docker.ok(&["ps", "-aq"]);
    assert!(left.trim().is_empty(), "containers left: {left}");
}
