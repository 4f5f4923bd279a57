//! The ZooKeeper example (examples/zookeeper) end to end: three nodes from Debian's zookeeper
//! package form an ensemble by service name (`server.N=zkN:2888:3888`), a znode written
//! through one node reads back through the others, and when the leader is stopped the other
//! two elect a new leader and keep serving reads and writes; the old leader rejoins when
//! started again. The image comes from scripts/prepare-examples.sh, loaded into this test's
//! own instance; the ensemble runs in the test's own network namespace.

use berth_tests::host::{self, Host};

use std::time::{Duration, Instant};

const NODES: [&str; 3] = ["zk1", "zk2", "zk3"];

/// The node's `Mode:` from the `srvr` four-letter word (leader, follower), if it answers.
fn mode(host: &Host, f: &str, node: &str) -> Option<String> {
    let out = host.berth(&["-f", f, "exec", "-T", node, "zk-4lw", "srvr"]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("Mode: "))
        .map(|m| m.trim().to_string())
}

/// Runs zkCli.sh inside `node` against its own client port; what it printed, failures included
/// (callers retry: a node may be between elections).
fn cli(host: &Host, f: &str, node: &str, cmd: &[&str]) -> String {
    let target = format!("{node}:2181");
    let mut args = vec!["-f", f, "exec", "-T", node, "zkCli.sh", "-server", &target];
    args.extend_from_slice(cmd);
    let out = host.berth(&args);
    // zkCli prints data on stdout, "Created ..." and errors on stderr.
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `ps -a` of the example's project (the harness's `ps` looks in the stack directory).
fn ps(host: &Host, f: &str) -> Vec<serde_json::Value> {
    host.ps_of(&["-f", f])
}

/// Polls until `ok` holds (a follower applies a committed write a moment after the leader
/// acknowledges it; an election takes a moment), or panics with the last value seen.
fn eventually<T: std::fmt::Debug>(
    what: &str,
    secs: u64,
    mut probe: impl FnMut() -> T,
    ok: impl Fn(&T) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = probe();
        if ok(&got) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "{what}: still {got:?} after {secs} s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Reads `path` through `node` until it holds `want`.
fn reads(host: &Host, f: &str, node: &str, path: &str, want: &str) {
    eventually(
        &format!("get {path} through {node}"),
        30,
        || cli(host, f, node, &["get", path]),
        |out| out.lines().any(|l| l.trim() == want),
    );
}

/// Sets `path` to `value` through `via` (again if an attempt failed: `set` is idempotent)
/// until `check` reads it back.
fn writes(host: &Host, f: &str, via: &str, path: &str, value: &str, check: &str) {
    eventually(
        &format!("set {path} through {via}, read back through {check}"),
        30,
        || {
            cli(host, f, via, &["set", path, value]);
            cli(host, f, check, &["get", path])
        },
        |out| out.lines().any(|l| l.trim() == value),
    );
}

#[test_with::root()]
#[test]
fn zookeeper_ensemble_forms_by_name_replicates_and_survives_its_leader() {
    host::require_tools();
    let t0 = Instant::now();
    let host = Host::new("zk");
    let stack = host.example("zookeeper");
    eprintln!("image loaded {:?} after start", t0.elapsed());
    let f = stack.display().to_string();
    let f = f.as_str();

    let up_start = Instant::now();
    host.ok(&[
        "-f",
        f,
        "up",
        "-d",
        "--no-build",
        "--wait",
        "--wait-timeout",
        "110",
    ]);
    eprintln!("ensemble healthy {:?} after up", up_start.elapsed());
    let rows = ps(&host, f);
    assert_eq!(rows.len(), 3, "{rows:?}");
    for row in &rows {
        assert_eq!(row["health"], "healthy", "{row}");
    }
    let ids: Vec<String> = rows
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect();
    let modes: Vec<Option<String>> = NODES.iter().map(|n| mode(&host, f, n)).collect();
    let leaders = modes
        .iter()
        .filter(|m| m.as_deref() == Some("leader"))
        .count();
    assert_eq!(leaders, 1, "one leader: {modes:?}");
    let leader = NODES[modes
        .iter()
        .position(|m| m.as_deref() == Some("leader"))
        .unwrap_or_default()];

    // Write through zk1 with the `client` service (a one-off container reaching zk1 by
    // name), read back through zk2 and zk3, each asked on its own client port.
    let created = host.ok(&[
        "-f",
        f,
        "run",
        "--rm",
        "client",
        "zkCli.sh",
        "-server",
        "zk1:2181",
        "create",
        "/berth",
        "written-through-zk1",
    ]);
    assert!(created.contains("Created /berth"), "{created}");
    for node in ["zk2", "zk3"] {
        reads(&host, f, node, "/berth", "written-through-zk1");
    }
    let created = cli(&host, f, "zk2", &["create", "/second", "through-zk2"]);
    assert!(created.contains("Created /second"), "{created}");

    // Stop the leader: the two others elect a new one among themselves and keep serving.
    host.ok(&["-f", f, "stop", leader]);
    let rest: Vec<&str> = NODES.iter().copied().filter(|n| *n != leader).collect();
    let took = eventually(
        "re-election",
        60,
        || rest.iter().map(|n| mode(&host, f, n)).collect::<Vec<_>>(),
        |m| {
            let mut m: Vec<_> = m.iter().map(|m| m.as_deref()).collect();
            m.sort();
            m == [Some("follower"), Some("leader")]
        },
    );
    eprintln!(
        "{leader} stopped: {} re-elected in {took:?}",
        rest.join("+")
    );
    writes(&host, f, rest[0], "/berth", "after-failover", rest[1]);
    writes(&host, f, rest[1], "/second", "via-the-other", rest[0]);

    // The old leader starts again, rejoins as a follower and catches up on what it missed.
    host.ok(&["-f", f, "start", leader]);
    let back = eventually(
        &format!("{leader} rejoins"),
        60,
        || mode(&host, f, leader),
        |m| m.as_deref() == Some("follower"),
    );
    eprintln!("{leader} started again: following after {back:?}");
    reads(&host, f, leader, "/berth", "after-failover");
    reads(&host, f, leader, "/second", "via-the-other");
    host.ok(&[
        "-f",
        f,
        "up",
        "-d",
        "--no-build",
        "--wait",
        "--wait-timeout",
        "60",
    ]);
    for row in ps(&host, f) {
        assert_eq!(row["health"], "healthy", "{row}");
    }

    host.ok(&["-f", f, "down", "-v"]);
    assert!(ps(&host, f).is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
    for node in NODES {
        let vol = host.root.join(format!("volumes/zookeeper_{node}data"));
        assert!(!vol.exists(), "down -v removed {}", vol.display());
    }
    eprintln!("zookeeper example test took {:?}", t0.elapsed());
}
