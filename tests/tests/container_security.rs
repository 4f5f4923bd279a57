//! Isolation and security defaults of `berth container run`, as root with real processes.

use berth_tests::container_util::{Env, stderr, stdout};

#[test]
fn container_is_isolated_with_docker_defaults() {
    let env = Env::new();
    let script = "ps -o pid,comm; echo host=$(hostname); \
        grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; \
        echo keys=$(wc -c < /proc/keys); echo firmware=$(ls /sys/firmware | wc -l); \
        mount -t tmpfs none /mnt 2>&1; echo mount_rc=$?; \
        echo x > /proc/sys/kernel/domainname 2>&1; echo sysw_rc=$?; \
        cat /proc/mounts";
    let o = env.run(&["--rm", "--hostname", "boxy"], &["sh", "-c", script]);
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    // PID 1 is our shell; only our own processes are visible.
    let pids: Vec<&str> = out
        .lines()
        .skip(1)
        .take_while(|l| !l.starts_with("host="))
        .collect();
    assert!(pids[0].trim().starts_with("1 "), "{out}");
    assert_eq!(pids.len(), 2, "only sh and ps are visible: {pids:?}");
    assert!(out.contains("host=boxy"), "{out}");
    assert!(
        out.contains("CapEff:\t00000000a80425fb"),
        "Docker's default set: {out}"
    );
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
    assert!(out.contains("Seccomp:\t2"), "{out}");
    assert!(out.contains("keys=0"), "masked /proc/keys: {out}");
    assert!(out.contains("firmware=0"), "masked /sys/firmware: {out}");
    assert!(
        out.contains("mount_rc=1") || out.contains("mount_rc=255"),
        "{out}"
    );
    assert!(out.contains("permission denied"), "mount refused: {out}");
    assert!(out.contains("sysw_rc=1"), "/proc/sys read-only: {out}");
    // Host mounts are invisible: the container sees only its own few.
    let mounts: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.contains(" /proc proc"))
        .collect();
    assert!(
        !mounts.iter().any(|l| l.contains("/sys/fs/cgroup")),
        "{out}"
    );
    assert!(!mounts.iter().any(|l| l.contains(" /work")), "{out}");
    env.assert_clean();
}

#[test]
fn seccomp_denies_keyctl_unless_unconfined() {
    let env = Env::new();
    let o = env.run(&["--rm"], &["kc"]);
    assert_eq!(o.status.code(), Some(0), "EPERM expected: {}", stdout(&o));
    let o = env.run(&["--rm", "--security-opt", "seccomp=unconfined"], &["kc"]);
    assert_eq!(
        o.status.code(),
        Some(1),
        "unconfined reaches the kernel: {}",
        stdout(&o)
    );
    env.assert_clean();
}

/// io_uring runs its work in kernel threads that seccomp does not see, and it has been the
/// way in for many kernel bugs: Docker's profile refuses it since 25.0, so does berth's.
#[test_with::root()]
#[test]
fn seccomp_denies_io_uring_unless_unconfined() {
    let env = Env::new();
    let o = env.run(&["--rm"], &["kc", "io_uring_setup"]);
    assert_eq!(o.status.code(), Some(0), "EPERM expected: {}", stdout(&o));
    // A host may switch io_uring off for everybody (kernel.io_uring_disabled=2 gives EPERM
    // too); only where it is on does unconfined prove the refusal was the profile's.
    let disabled = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .map(|s| s.trim() != "0")
        .unwrap_or(true);
    if !disabled {
        let o = env.run(
            &["--rm", "--security-opt", "seccomp=unconfined"],
            &["kc", "io_uring_setup"],
        );
        assert_eq!(
            o.status.code(),
            Some(1),
            "unconfined reaches the kernel: {}",
            stdout(&o)
        );
        assert!(stdout(&o).contains("errno=0"), "{}", stdout(&o));
    }
    env.assert_clean();
}

#[test]
fn caps_user_and_privileged_adjust_the_defaults() {
    let env = Env::new();
    let o = env.run(
        &["--rm", "--cap-drop", "ALL", "--cap-add", "NET_ADMIN"],
        &["grep", "CapEff", "/proc/self/status"],
    );
    assert!(stdout(&o).contains("0000000000001000"), "{}", stdout(&o));
    let o = env.run(
        &["--rm", "-u", "app"],
        &["sh", "-c", "id; grep CapEff /proc/self/status"],
    );
    let out = stdout(&o);
    assert!(
        out.contains("uid=1000(app) gid=1000(app) groups=50"),
        "{out}"
    );
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    let o = env.run(&["--rm", "-u", "1234:5678"], &["id", "-u"]);
    assert_eq!(stdout(&o).trim(), "1234");
    let o = env.run(
        &["--rm", "--privileged"],
        &[
            "sh",
            "-c",
            "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
        ],
    );
    let out = stdout(&o);
    assert!(
        out.contains("Seccomp:\t0") && out.contains("NoNewPrivs:\t0"),
        "{out}"
    );
    env.assert_clean();
}

#[test]
fn memory_limit_oom_kills_with_137() {
    let env = Env::new();
    let o = env.run(
        &["--name", "oom", "-m", "16m"],
        &[
            "sh",
            "-c",
            "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        ],
    );
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let i = env.berth(&["container", "inspect", "oom"]);
    let v: serde_json::Value = serde_json::from_slice(&i.stdout).expect("inspect json");
    assert_eq!(v[0]["State"]["OOMKilled"], true, "{v}");
    assert_eq!(v[0]["State"]["ExitCode"], 137);
    assert!(env.berth(&["container", "rm", "oom"]).status.success());
    env.assert_clean();
}

#[test]
fn pids_limit_stops_a_fork_bomb() {
    let env = Env::new();
    let o = env.run(
        &["--rm", "--pids-limit", "12"],
        &[
            "sh",
            "-c",
            "n=0; for i in $(seq 1 60); do sleep 3 & n=$((n+1)); done; echo started=$n",
        ],
    );
    let err = stderr(&o);
    assert!(err.contains("can't fork"), "fork refused: {err}");
    env.assert_clean();
}

#[test]
fn ulimits_apply_and_above_hard_is_a_clear_error() {
    let env = Env::new();
    let o = env.run(
        &["--rm", "--ulimit", "nofile=512:1024"],
        &["sh", "-c", "ulimit -n"],
    );
    assert_eq!(stdout(&o).trim(), "512");
    let o = env.run(
        &["--rm", "--ulimit", "nofile=99999999999:99999999999"],
        &["true"],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("CAP_SYS_RESOURCE"), "{}", stderr(&o));
    env.assert_clean();
}

/// A control character in a value that becomes a line of /etc/hosts, /etc/hostname or
/// resolv.conf would let the caller add lines of their choosing (`--add-host` naming
/// "evil\n1.2.3.4 db" maps db to an address the user never asked for): every such flag is
/// refused with its name and value, and no container is made.
#[test_with::root()]
#[test]
fn control_characters_in_name_file_flags_are_refused() {
    let env = Env::new();
    let cases: &[&[&str]] = &[
        &["--add-host", "evil\n1.2.3.4 db:10.0.0.1"],
        &["--hostname", "h\n6.6.6.6 db"],
        &["--dns-search", "corp\nnameserver 6.6.6.6"],
        &["--dns-option", "ndots:1\nnameserver 6.6.6.6"],
    ];
    for flags in cases {
        let mut opts = vec!["--rm"];
        opts.extend_from_slice(flags);
        let o = env.run(&opts, &["cat", "/etc/hosts", "/etc/resolv.conf"]);
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(
            !out.contains("1.2.3.4") && !out.contains("6.6.6.6"),
            "a line was injected by {flags:?}:\n{out}"
        );
        assert_eq!(o.status.code(), Some(125), "{flags:?}: {out}{err}");
        assert!(err.contains(flags[0]), "names the flag: {err}");
        assert!(err.contains("control character"), "says why: {err}");
    }
    assert!(env.container_ids().is_empty(), "{:?}", env.container_ids());
    // The runtime, which writes /etc/hostname and /etc/hosts, refuses it too.
    let mut cfg = berth_runtime::container::ContainerConfig::new(
        berth_runtime::container::RootfsSource::Dir(env.rootfs.clone()),
        vec!["true".into()],
    );
    cfg.hostname = Some("h\n6.6.6.6 db".into());
    let err = env.runtime().create(cfg).expect_err("refused");
    assert!(err.to_string().contains("control character"), "{err}");
    assert!(env.container_ids().is_empty(), "{:?}", env.container_ids());
    env.assert_clean();
}
