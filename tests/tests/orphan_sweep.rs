//! The daemon's sweeps of what a container leaves behind without a clean detach: a `--rm`
//! container whose shim is killed outright is settled and removed by the daemon's settle sweep,
//! and its endpoint and DNS names go with it, found from the removal alone (the sweeps follow
//! what changed rather than reading every endpoint each round). The instance runs in a network
//! namespace of its own (harness in `berth_tests::host`).

use berth_tests::host::{self, Host};

/// Retries `f` for up to `secs` seconds until it returns true.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if f() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    f()
}

/// The containers netd has endpoints for on `net`.
fn attached(h: &Host, net: &str) -> Vec<String> {
    let out = h.ok(&["network", "inspect", net]);
    let v: serde_json::Value = serde_json::from_str(out.trim()).expect("inspect json");
    v[0]["Endpoints"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|e| e["container"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Whether `name` resolves from the container `peer`.
fn resolves(h: &Host, peer: &str, name: &str) -> bool {
    h.berth(&["container", "exec", peer, "nslookup", name])
        .status
        .success()
}

#[test_with::root()]
#[test]
fn a_killed_rm_containers_endpoint_and_names_are_swept() {
    host::require_tools();
    let h = Host::new("orph");
    h.busybox_image();
    h.ok(&["network", "create", "orphnet"]);
    h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "peer",
        "--network",
        "orphnet",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let id = h
        .ok(&[
            "container",
            "run",
            "-d",
            "--rm",
            "--name",
            "doomed",
            "--network",
            "orphnet",
            "busybox:e2e",
            "sleep",
            "600",
        ])
        .trim()
        .to_string();
    assert_eq!(id.len(), 64, "container id: {id}");
    assert!(attached(&h, "orphnet").contains(&id));
    assert!(resolves(&h, "peer", "doomed"), "doomed answers before");
    let dir = h.root.join("containers").join(&id);
    let st: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("state.json")).expect("state.json"))
            .expect("state json");
    let shim = st["shim_pid"].as_i64().unwrap_or(0) as i32;
    assert!(shim > 0, "shim pid in {st}");
    // SAFETY: a signal to the test's own container's shim.
    assert_eq!(unsafe { libc::kill(shim, libc::SIGKILL) }, 0);
    // Settled (the shim is followed by its /proc stat, every 5 s) and removed (--rm), then
    // swept (every 2 s): its endpoint and names go, nobody having detached it.
    assert!(
        eventually(30, || !dir.exists()),
        "the --rm container whose shim died was removed"
    );
    assert!(
        eventually(15, || !attached(&h, "orphnet").contains(&id)),
        "the removed container's endpoint was swept: {:?}",
        attached(&h, "orphnet")
    );
    assert!(
        eventually(15, || !resolves(&h, "peer", "doomed")),
        "the removed container's name stopped answering"
    );
    assert!(
        resolves(&h, "peer", "peer"),
        "the peer's own name still answers"
    );
    h.ok(&["container", "rm", "-f", "peer"]);
    // Refused while any endpoint is left on it.
    h.ok(&["network", "rm", "orphnet"]);
    let leaks = h.leaks(&[id]);
    assert!(leaks.is_empty(), "left behind: {leaks:#?}");
}
