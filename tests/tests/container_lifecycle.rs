//! Life cycle of single containers: exit codes, start errors, logs, stop, exec, detach.

use std::process::Stdio;
use std::time::{Duration, Instant};

use berth_tests::container_util::{Env, cgroup_exists, stderr, stdout};

#[test]
fn exit_codes_and_start_errors_propagate_and_leave_nothing() {
    let env = Env::new();
    let o = env.run(&["--rm"], &["sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(stdout(&o), "out\n");
    assert_eq!(stderr(&o), "err\n");

    // `--rm`: when the command returns, the container is gone (nothing listed, the name
    // free at once, an anonymous volume removed); the shim unmounts the netns pin and
    // removes the cgroup right after reporting the exit (assert_clean's short wait).
    for _ in 0..2 {
        let o = env.run(&["--rm", "--name", "again", "-v", "/scratch"], &["true"]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(env.container_ids().is_empty(), "{:?}", env.container_ids());
        let ls = env.berth(&["container", "ls", "-a", "-q"]);
        assert_eq!(stdout(&ls), "");
        let vols = env.berth(&["volume", "ls", "-q"]);
        assert_eq!(stdout(&vols), "", "anonymous volume left");
    }
    env.assert_clean();

    let o = env.run(&["--rm"], &["no-such-binary"]);
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("exec: \"no-such-binary\": executable file not found in $PATH"),
        "{}",
        stderr(&o)
    );
    let o = env.run(&["--rm"], &["/etc/passwd"]);
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    let o = env.run(&["--rm", "-u", "ghost"], &["true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("unable to find user ghost"),
        "{}",
        stderr(&o)
    );
    let missing = env.tmp.path().join("missing");
    let vol = format!("{}:/data", missing.display());
    let o = env.run(&["--rm", "-v", &vol], &["true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("missing"), "{}", stderr(&o));
    env.assert_clean();

    // Without --rm a failed start stays, as "exited" with the reason, until rm.
    let o = env.run(&["--name", "bad"], &["no-such-binary"]);
    assert_eq!(o.status.code(), Some(127));
    let i = env.berth(&["container", "inspect", "bad"]);
    assert!(stdout(&i).contains("not found in $PATH"), "{}", stdout(&i));
    assert!(env.berth(&["container", "rm", "bad"]).status.success());
    env.assert_clean();
}

#[test]
fn logs_keep_order_and_streams() {
    let env = Env::new();
    let o = env.run(
        &["--name", "chatty"],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo o$i; echo e$i >&2; i=$((i+1)); done",
        ],
    );
    assert!(o.status.success());
    let l = env.berth(&["container", "logs", "chatty"]);
    let out: Vec<String> = stdout(&l).lines().map(str::to_string).collect();
    let err: Vec<String> = stderr(&l).lines().map(str::to_string).collect();
    let want_o: Vec<String> = (0..300).map(|i| format!("o{i}")).collect();
    let want_e: Vec<String> = (0..300).map(|i| format!("e{i}")).collect();
    assert_eq!(out, want_o);
    assert_eq!(err, want_e);
    // The two pipes are read separately, so only each stream's own order is guaranteed.
    let t = env.berth(&["container", "logs", "--tail", "2", "-t", "chatty"]);
    let text = format!("{}{}", stdout(&t), stderr(&t));
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l.starts_with("20") && l.contains("Z ")),
        "{lines:?}"
    );
    assert!(env.berth(&["container", "rm", "chatty"]).status.success());

    // Rotation: at most max-file files of about max-size, the newest lines kept in order.
    let o = env.run(
        &[
            "--name",
            "rot",
            "--log-opt",
            "max-size=2k",
            "--log-opt",
            "max-file=2",
        ],
        &[
            "sh",
            "-c",
            "i=0; while [ $i -lt 300 ]; do echo line-$i; i=$((i+1)); done",
        ],
    );
    assert!(o.status.success());
    let dir = env.root.join("containers").join(&env.container_ids()[0]);
    assert!(dir.join("log.json.1").exists() && !dir.join("log.json.2").exists());
    let l = stdout(&env.berth(&["container", "logs", "rot"]));
    let nums: Vec<u32> = l
        .lines()
        .filter_map(|x| x.strip_prefix("line-")?.parse().ok())
        .collect();
    assert_eq!(nums.last(), Some(&299));
    assert!(
        nums.len() < 300 && nums.windows(2).all(|w| w[1] == w[0] + 1),
        "{nums:?}"
    );
    assert!(env.berth(&["container", "rm", "rot"]).status.success());
    env.assert_clean();
}

#[test]
fn stop_honours_the_signal_and_the_grace_period() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let o = env.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "polite",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "trap 'echo bye; exit 7' TERM; while true; do sleep 0.1; done",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "stubborn",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.1; done",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::thread::sleep(Duration::from_millis(300));

    let t = Instant::now();
    assert!(env.berth(&["container", "stop", "polite"]).status.success());
    assert!(t.elapsed() < Duration::from_secs(5));
    let w = env.berth(&["container", "wait", "polite"]);
    assert_eq!(stdout(&w).trim(), "7");
    assert!(stdout(&env.berth(&["container", "logs", "polite"])).contains("bye"));

    let t = Instant::now();
    assert!(
        env.berth(&["container", "stop", "-t", "1", "stubborn"])
            .status
            .success()
    );
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "waited the grace period: {took:?}"
    );
    assert!(took < Duration::from_secs(6), "then killed: {took:?}");
    assert_eq!(
        stdout(&env.berth(&["container", "wait", "stubborn"])).trim(),
        "137"
    );

    // create + start -a: attached, with the container's status
    let o = env.berth(&[
        "container",
        "create",
        "--name",
        "later",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "echo hi; exit 4",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.berth(&["container", "start", "-a", "later"]);
    assert_eq!((o.status.code(), stdout(&o).as_str()), (Some(4), "hi\n"));
    assert!(env.berth(&["container", "rm", "later"]).status.success());

    // start again, restart, kill -s
    assert!(
        env.berth(&["container", "start", "polite"])
            .status
            .success()
    );
    let ls = env.berth(&["container", "ls", "-q"]);
    assert_eq!(stdout(&ls).lines().count(), 1, "{}", stdout(&ls));
    assert!(
        env.berth(&["container", "kill", "-s", "TERM", "polite"])
            .status
            .success()
    );
    assert_eq!(
        stdout(&env.berth(&["container", "wait", "polite"])).trim(),
        "7"
    );
    assert!(
        env.berth(&["container", "rm", "polite", "stubborn"])
            .status
            .success()
    );
    env.assert_clean();
}

#[test]
fn exec_joins_the_container_with_and_without_a_tty() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let o = env.berth(&[
        "container",
        "run",
        "-d",
        "--name",
        "box",
        "--hostname",
        "inner",
        "--rootfs",
        &rootfs,
        "sleep",
        "300",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();

    let e = env.berth(&[
        "container", "exec", "-e", "FOO=bar", "box", "sh", "-c",
        "echo $FOO $(hostname); ps -o pid,comm | grep -c sleep; grep -E '^(CapEff|NoNewPrivs|Seccomp):' /proc/self/status; exit 4",
    ]);
    assert_eq!(e.status.code(), Some(4), "{}", stderr(&e));
    let out = stdout(&e);
    assert!(out.starts_with("bar inner\n1\n"), "{out}");
    assert!(out.contains("CapEff:\t00000000a80425fb"), "{out}");
    assert!(
        out.contains("NoNewPrivs:\t1") && out.contains("Seccomp:\t2"),
        "{out}"
    );

    let e = env.berth(&[
        "container",
        "exec",
        "-t",
        "box",
        "sh",
        "-c",
        "tty; echo cols=$(stty size)",
    ]);
    assert!(e.status.success(), "{}", stderr(&e));
    assert!(stdout(&e).contains("/dev/pts/"), "{}", stdout(&e));

    let e = env.berth(&[
        "container",
        "exec",
        "-u",
        "app",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "id -u; pwd",
    ]);
    assert_eq!(stdout(&e), "1000\n/tmp\n");
    let e = env.berth(&["container", "exec", "-w", "/nowhere", "box", "pwd"]);
    assert_eq!(e.status.code(), Some(125));
    assert!(stderr(&e).contains("/nowhere"), "{}", stderr(&e));

    let e = env.berth(&["container", "exec", "box", "nope"]);
    assert_eq!(e.status.code(), Some(127));

    // --network container:box shares box's (pinned) network namespace.
    let theirs = env.berth(&["container", "exec", "box", "readlink", "/proc/self/ns/net"]);
    let ours = env.run(
        &["--rm", "--network", "container:box"],
        &["readlink", "/proc/self/ns/net"],
    );
    assert_eq!(stdout(&ours), stdout(&theirs));
    let host = env.run(&["--rm"], &["readlink", "/proc/self/ns/net"]);
    assert_ne!(stdout(&host), stdout(&theirs));

    let top = env.berth(&["container", "top", "box"]);
    assert!(stdout(&top).contains("sleep 300"), "{}", stdout(&top));
    assert!(cgroup_exists(&env, &id));
    let st = env.berth(&["container", "stats", "--no-stream", "box"]);
    let line = stdout(&st).lines().nth(1).unwrap_or_default().to_string();
    assert!(
        line.starts_with(&id[..12]) && line.contains(" box "),
        "{}",
        stdout(&st)
    );
    assert!(line.trim_end().ends_with(" 1"), "one pid: {line}");
    assert!(
        env.berth(&["container", "rename", "box", "crate"])
            .status
            .success()
    );
    assert!(
        env.berth(&["container", "rename", "crate", "box"])
            .status
            .success()
    );
    assert!(
        env.berth(&["container", "rm", "-f", "box"])
            .status
            .success()
    );
    assert!(!cgroup_exists(&env, &id));
    env.assert_clean();
}

#[test]
fn killing_the_cli_leaves_the_container_running() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let mut cli = env
        .cmd(&[
            "container",
            "run",
            "--name",
            "survivor",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "i=0; while true; do echo tick$i; i=$((i+1)); sleep 0.1; done",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    env.eventually(10, "container running", || {
        stdout(&env.berth(&["container", "ls", "-q"]))
            .lines()
            .count()
            == 1
    });
    // SAFETY: killing the `timeout` wrapper's whole group would be broad; kill the CLI itself.
    let cli_pid = cli.id() as i32;
    let children = std::fs::read_to_string(format!("/proc/{cli_pid}/task/{cli_pid}/children"))
        .unwrap_or_default();
    for p in children
        .split_whitespace()
        .filter_map(|p| p.parse::<i32>().ok())
    {
        unsafe { libc::kill(p, libc::SIGKILL) };
    }
    let _ = cli.kill();
    let _ = cli.wait();
    let before = stdout(&env.berth(&["container", "logs", "survivor"]))
        .lines()
        .count();
    std::thread::sleep(Duration::from_millis(600));
    let after = stdout(&env.berth(&["container", "logs", "survivor"]))
        .lines()
        .count();
    assert!(after > before, "logs keep flowing: {before} -> {after}");
    assert_eq!(
        stdout(&env.berth(&["container", "ls", "-q"]))
            .lines()
            .count(),
        1
    );

    // A shim killed outright: the container is ended (its orphaned processes killed), shows
    // as exited by SIGKILL, and rm -f still removes all of it.
    let rt = env.runtime();
    let rec = rt.resolve("survivor").expect("record");
    let shim = rt.state(&rec).expect("state").shim_pid;
    // SAFETY: kill(2) on the shim of our own test container.
    unsafe { libc::kill(shim, libc::SIGKILL) };
    env.eventually(10, "shim gone", || !rt.is_running(&rec));
    let ls = stdout(&env.berth(&["container", "ls", "-a"]));
    assert!(ls.contains("Exited (137)"), "{ls}");
    assert!(
        env.berth(&["container", "rm", "-f", "survivor"])
            .status
            .success()
    );
    env.assert_clean();
}

#[test]
fn init_reaps_and_forwards_signals() {
    let env = Env::new();
    let o = env.run(&["--rm", "--init"], &["sh", "-c", "ps -o pid,comm; true"]);
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().skip(1).collect();
    assert!(
        lines[0].trim().starts_with("1 ") && !lines[0].contains("sh"),
        "{out}"
    );
    assert!(lines.iter().any(|l| l.trim().starts_with("2 sh")), "{out}");
    let rootfs = env.rootfs.display().to_string();
    let o = env.berth(&[
        "container",
        "run",
        "-d",
        "--init",
        "--name",
        "tini",
        "--rootfs",
        &rootfs,
        "sh",
        "-c",
        "trap 'exit 9' TERM; while true; do sleep 0.1; done",
    ]);
    assert!(o.status.success());
    std::thread::sleep(Duration::from_millis(300));
    assert!(env.berth(&["container", "stop", "tini"]).status.success());
    assert_eq!(
        stdout(&env.berth(&["container", "wait", "tini"])).trim(),
        "9"
    );
    assert!(env.berth(&["container", "rm", "tini"]).status.success());
    env.assert_clean();
}

#[test]
fn run_attaches_stdin_and_a_tty() {
    use std::io::Write;
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let mut child = env
        .cmd(&[
            "container",
            "run",
            "--rm",
            "-i",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "cat; echo done >&2; exit 6",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"line one\nline two\n")
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(6), "{}", stderr(&o));
    assert_eq!(stdout(&o), "line one\nline two\n");
    assert_eq!(stderr(&o), "done\n");

    let mut child = env
        .cmd(&[
            "container",
            "run",
            "--rm",
            "-i",
            "-t",
            "--rootfs",
            &rootfs,
            "sh",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"echo answer=$((6*7)); tty; exit 3\n")
        .expect("write");
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(3));
    let out = stdout(&o);
    assert!(
        out.contains("answer=42") && out.contains("/dev/console"),
        "{out}"
    );
    env.assert_clean();
}

#[test]
fn foreground_run_passes_signals_to_the_container() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let child = env
        .cmd(&[
            "container",
            "run",
            "--rm",
            "--name",
            "sig",
            "--rootfs",
            &rootfs,
            "sh",
            "-c",
            "trap 'echo got INT; exit 9' INT; echo ready; while true; do sleep 0.1; done",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    env.eventually(10, "container running", || {
        stdout(&env.berth(&["container", "logs", "sig"])).contains("ready")
    });
    // `timeout` (the test's guard) passes SIGINT on to the CLI, as a terminal would.
    // SAFETY: kill(2) on the child we spawned.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let o = child.wait_with_output().expect("wait");
    assert_eq!(o.status.code(), Some(9), "{}", stderr(&o));
    assert!(stdout(&o).contains("got INT"), "{}", stdout(&o));
    env.assert_clean();
}

#[test]
fn names_stay_unique_across_racing_creates_renames_and_removals() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let create = |name: &str| {
        env.cmd(&[
            "container",
            "create",
            "--network",
            "none",
            "--name",
            name,
            "--rootfs",
            &rootfs,
            "true",
        ])
    };
    // Ten creates of one name at once: exactly one wins, the others name the owner and leave
    // nothing behind.
    let racers: Vec<_> = (0..10)
        .map(|_| {
            create("solo")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn create")
        })
        .collect();
    let outs: Vec<_> = racers
        .into_iter()
        .map(|c| c.wait_with_output().expect("wait create"))
        .collect();
    assert_eq!(outs.iter().filter(|o| o.status.success()).count(), 1);
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(
            stderr(o).contains("container name \"solo\" is already in use by container"),
            "{}",
            stderr(o)
        );
    }
    assert_eq!(env.container_ids().len(), 1);
    // A rename frees the old name and takes the new one; rm frees it.
    let ok = |args: &[&str]| {
        let o = env.berth(args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    };
    ok(&["container", "rename", "solo", "duo"]);
    let o = create("solo").output().expect("create");
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.berth(&["container", "rename", "solo", "duo"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"duo\" is already in use"),
        "{}",
        stderr(&o)
    );
    ok(&["container", "rm", "duo"]);
    ok(&["container", "rename", "solo", "duo"]);
    // A root from before the name index: the index is rebuilt from the records.
    std::fs::remove_dir_all(env.root.join("container-names")).expect("drop the index");
    let o = create("duo").output().expect("create");
    assert!(!o.status.success(), "a second duo was created");
    ok(&["container", "inspect", "duo"]);
    ok(&["container", "rm", "duo"]);
    assert!(env.container_ids().is_empty());
    // Whoever removes a container gives its name up (`--rm` is removed by the shim).
    let o = env.run(&["--rm", "--name", "brief"], &["true"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let index = env.root.join("container-names");
    let left: Vec<_> = std::fs::read_dir(&index)
        .expect("name index")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "names still claimed: {left:?}");
    env.assert_clean();
}
