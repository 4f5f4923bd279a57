//! `container run` flags and Compose service keys mean the same container: both lower into one
//! spec and one translation, so security options, sizes, limits and ports cannot drift apart
//! again.
//! As root, in a namespace of its own.

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: drift
services:
  loose:
    image: busybox:e2e
    network_mode: none
    security_opt: ["no-new-privileges:false", "seccomp=unconfined"]
    mem_limit: 2GiB
    ulimits: {core: -1}
    command: ["sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; echo core=$$(ulimit -c); sleep 3600"]
    stop_grace_period: 1s
  strict:
    image: busybox:e2e
    network_mode: none
    security_opt: ["no-new-privileges"]
    ulimits: {core: 0}
    command: ["sh", "-c", "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; echo core=$$(ulimit -c); sleep 3600"]
    stop_grace_period: 1s
"#;

const PROBE: &str = "grep -E '^(NoNewPrivs|Seccomp):' /proc/self/status; echo core=$(ulimit -c)";

fn text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// The log of `service` once it has printed its status lines.
fn status_of(host: &Host, service: &str) -> String {
    for _ in 0..40 {
        let logs = host.ok(&["container", "logs", &format!("drift-{service}-1")]);
        if logs.contains("core=") {
            return logs;
        }
        std::thread::sleep(std::time::Duration::from_millis(250));
    }
    panic!("{service} printed no status");
}

#[test_with::root()]
#[test]
fn compose_and_container_run_apply_security_opt_and_sizes_alike() {
    host::require_tools();
    let host = Host::new("drift");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), STACK).expect("compose");
    host.ok(&["up", "-d"]);
    let loose = status_of(&host, "loose");
    let strict = status_of(&host, "strict");
    let run = |opts: &[&str]| {
        let mut args = vec!["container", "run", "--rm", "--network", "none"];
        args.extend_from_slice(opts);
        args.extend_from_slice(&["busybox:e2e", "sh", "-c", PROBE]);
        host.ok(&args)
    };
    let loose_run = run(&[
        "--security-opt",
        "no-new-privileges:false",
        "--security-opt",
        "seccomp=unconfined",
        "--memory",
        "2GiB",
        "--ulimit",
        "core=-1",
    ]);
    let strict_run = run(&["--security-opt", "no-new-privileges", "--ulimit", "core=0"]);
    assert!(
        loose.contains("NoNewPrivs:\t0") && loose.contains("Seccomp:\t0"),
        "compose applies security_opt: {loose}"
    );
    assert!(strict.contains("NoNewPrivs:\t1"), "{strict}");
    // A limit of -1 is unlimited in both (Compose's used to become 0).
    assert!(loose.contains("core=unlimited"), "{loose}");
    assert_eq!(loose.trim(), loose_run.trim(), "compose vs container run");
    assert_eq!(strict.trim(), strict_run.trim(), "compose vs container run");

    // An unknown option is refused by both, naming the value.
    let o = host.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--security-opt",
        "bogus=1",
        "busybox:e2e",
        "true",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("bogus=1"),
        "{}",
        text(&o)
    );
    std::fs::write(
        host.stack.join("bad.yaml"),
        "services:\n  x:\n    image: busybox:e2e\n    security_opt: [bogus=1]\n",
    )
    .expect("bad");
    let o = host.berth(&["-f", "bad.yaml", "up", "-d"]);
    assert!(
        !o.status.success() && text(&o).contains("bogus=1"),
        "{}",
        text(&o)
    );

    // sctp is not published by either front end.
    let o = host.berth(&[
        "container",
        "run",
        "--rm",
        "-p",
        "9/sctp",
        "busybox:e2e",
        "true",
    ]);
    assert!(
        !o.status.success() && text(&o).contains("sctp"),
        "{}",
        text(&o)
    );
    std::fs::write(
        host.stack.join("sctp.yaml"),
        "services:\n  x:\n    image: busybox:e2e\n    ports: [\"9:9/sctp\"]\n",
    )
    .expect("sctp");
    let o = host.berth(&["-f", "sctp.yaml", "up", "-d"]);
    assert!(
        !o.status.success() && text(&o).contains("sctp"),
        "{}",
        text(&o)
    );

    host.ok(&["down"]);
}
