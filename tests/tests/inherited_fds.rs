//! Attack: a descriptor that whoever runs berth holds open (a shell's redirection, a CI
//! runner's pipe, a directory) must not reach the container. A directory's descriptor would
//! let the container open host files past its root (`/proc/self/fd/N/...`). Checked for the
//! container's own process (`container run`, attached and detached) and for `exec`; neither
//! starts with a signal ignored; and `exec -d` leaves the caller's stdout alone (a caller
//! capturing it returns at once).

use berth_tests::binary::berth_bin;
use berth_tests::host::{self, Host};

/// A host directory holding a secret, for the caller to hold open as fd 9.
fn secret_dir(host: &Host) -> std::path::PathBuf {
    let dir = host.stack.join("host-secret");
    std::fs::create_dir_all(&dir).expect("secret dir");
    std::fs::write(dir.join("secret"), "host-only-3f9a\n").expect("secret");
    dir
}

/// Runs berth with `args` from a shell that holds `dir` open as fd 9 (inherited, not
/// close-on-exec); returns stdout and stderr together.
fn berth_holding_fd9(host: &Host, dir: &std::path::Path, args: &str) -> String {
    let cmd = format!(
        "exec 9<{dir}; {bin} --root {root} --run {run} {args}",
        dir = dir.display(),
        bin = berth_bin().display(),
        root = host.root.display(),
        run = host.run.display(),
    );
    let out = host.sh(&cmd);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test_with::root()]
#[test]
fn descriptors_of_the_caller_do_not_reach_the_container() {
    host::require_tools();
    let host = Host::new("fds");
    host.busybox_image();
    let dir = secret_dir(&host);
    let probe = "'ls /proc/self/fd; cat /proc/self/fd/9/secret; echo probe-done'";

    // The container's own process, attached.
    let out = berth_holding_fd9(
        &host,
        &dir,
        &format!("container run --rm --network none busybox:e2e sh -c {probe}"),
    );
    assert!(out.contains("probe-done"), "the probe did not run: {out}");
    assert!(
        !out.contains("host-only-3f9a"),
        "the container read a host file through an inherited fd: {out}"
    );

    // Detached, then through exec.
    let id = berth_holding_fd9(
        &host,
        &dir,
        "container run -d --name fds --network none busybox:e2e sleep 3600",
    );
    let pid = host.ok(&["container", "inspect", "-f", "{{.State.Pid}}", "fds"]);
    let fds: Vec<String> = std::fs::read_dir(format!("/proc/{}/fd", pid.trim()))
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    assert!(!fds.is_empty(), "no fds read for {id}");
    assert!(
        fds.iter().all(|f| matches!(f.as_str(), "0" | "1" | "2")),
        "the detached container holds more than stdio: {fds:?}"
    );
    let out = berth_holding_fd9(&host, &dir, &format!("container exec fds sh -c {probe}"));
    assert!(
        out.contains("probe-done"),
        "the exec probe did not run: {out}"
    );
    assert!(
        !out.contains("host-only-3f9a"),
        "an exec'd process read a host file through an inherited fd: {out}"
    );

    // Nor do ignored signals: the exec helper is started by glibc's posix_spawn, which
    // leaves glibc's two internal real-time signals ignored, and that survives exec.
    let ign = host.ok(&["container", "exec", "fds", "cat", "/proc/self/status"]);
    assert!(
        ign.contains("SigIgn:\t0000000000000000"),
        "an exec'd process starts with signals ignored: {ign}"
    );
    let ign = host.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "busybox:e2e",
        "cat",
        "/proc/self/status",
    ]);
    assert!(
        ign.contains("SigIgn:\t0000000000000000"),
        "a container's process starts with signals ignored: {ign}"
    );

    // `exec -d` returns while the process runs, even to a caller that captures its output.
    let out = host.sh(&format!(
        "timeout 20 sh -c '{bin} --root {root} --run {run} container exec -d fds sleep 300 | cat'; echo rc=$?",
        bin = berth_bin().display(),
        root = host.root.display(),
        run = host.run.display(),
    ));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("rc=0"),
        "exec -d held the caller's stdout: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    host.ok(&["container", "rm", "-f", "fds"]);
}
