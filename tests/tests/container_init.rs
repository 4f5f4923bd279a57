//! `--init` (Compose `init: true`): the container's PID 1 is berth's small static init, which
//! runs the command as its child with the container's identity, forwards signals, reaps
//! orphans and exits with the command's status.

use std::os::unix::fs::PermissionsExt;
use std::time::Duration;

use berth_tests::container_util::{Env, stderr, stdout};

/// `container run -d --init --name NAME --rootfs R CMD...`
fn run_detached(env: &Env, name: &str, cmd: &[&str]) {
    let rootfs = env.rootfs.display().to_string();
    let mut args = vec![
        "container",
        "run",
        "-d",
        "--init",
        "--network",
        "none",
        "--name",
        name,
        "--rootfs",
        &rootfs,
    ];
    args.extend_from_slice(cmd);
    let o = env.berth(&args);
    assert!(o.status.success(), "{}", stderr(&o));
}

fn wait_code(env: &Env, name: &str) -> String {
    stdout(&env.berth(&["container", "wait", name]))
        .trim()
        .to_string()
}

#[test_with::root()]
#[test]
fn pid_1_is_the_small_static_init_bound_read_only() {
    let env = Env::new();
    let o = env.run(
        &["--rm", "--init", "--network", "none"],
        &[
            "sh",
            "-c",
            "cat /proc/1/comm; wc -c < /proc/1/exe; tr '\\0' ' ' < /proc/1/cmdline; echo; \
             echo x > /sbin/docker-init && echo $((6*7))wrote; \
             awk '$1==\"PPid:\"{print \"ppid\", $2}' /proc/self/status",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "docker-init", "{out}");
    let size: u64 = lines[1].trim().parse().expect("size of /proc/1/exe");
    assert!(size < 100 * 1024, "the init is {size} bytes");
    assert!(lines[2].starts_with("/sbin/docker-init -- sh -c"), "{out}");
    assert!(!out.contains("42wrote"), "{out}");
    // The command is the init's child; the init is no copy of berth.
    assert!(out.contains("ppid 1"), "{out}");
    // One file under the root, shared by every container of the instance.
    let installed: Vec<_> = std::fs::read_dir(env.root.join("init"))
        .expect("<root>/init")
        .flatten()
        .collect();
    assert_eq!(installed.len(), 1, "{installed:?}");
    let md = installed[0].metadata().expect("metadata");
    assert_eq!(md.permissions().mode() & 0o7777, 0o555);
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn the_init_stays_small_in_memory() {
    let env = Env::new();
    run_detached(&env, "small", &["sleep", "3600"]);
    let pid = stdout(&env.berth(&["container", "inspect", "-f", "{{.State.Pid}}", "small"]));
    let rollup = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", pid.trim()))
        .expect("smaps_rollup of the init");
    let pss: u64 = rollup
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("Pss");
    // Alone, the init pays for all of its executable's pages; it still is far below 100 KiB.
    assert!(pss < 100, "init PSS {pss} kB:\n{rollup}");
    assert!(
        env.berth(&["container", "rm", "-f", "small"])
            .status
            .success()
    );
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn signals_are_forwarded_to_the_command() {
    let env = Env::new();
    run_detached(
        &env,
        "sig",
        &[
            "sh",
            "-c",
            "for s in HUP INT USR1 USR2 WINCH QUIT; do trap \"echo got $s\" $s; done; \
             trap 'echo got TERM; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        ],
    );
    env.eventually(10, "ready", || {
        stdout(&env.berth(&["container", "logs", "sig"])).contains("ready")
    });
    for s in ["HUP", "INT", "USR1", "USR2", "WINCH", "QUIT"] {
        let o = env.berth(&["container", "kill", "-s", s, "sig"]);
        assert!(o.status.success(), "{s}: {}", stderr(&o));
        env.eventually(10, s, || {
            stdout(&env.berth(&["container", "logs", "sig"])).contains(&format!("got {s}"))
        });
    }
    assert!(env.berth(&["container", "stop", "sig"]).status.success());
    assert_eq!(wait_code(&env, "sig"), "7");
    assert!(stdout(&env.berth(&["container", "logs", "sig"])).contains("got TERM"));
    assert!(env.berth(&["container", "rm", "sig"]).status.success());
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn orphans_are_reaped() {
    let env = Env::new();
    // The inner shells exit at once, orphaning their sleeps to PID 1 (counted once they have
    // all started); once those end, only PID 1 can reap them. Any zombie left is counted
    // from /proc.
    let o = env.run(
        &["--rm", "--init", "--network", "none"],
        &[
            "sh",
            "-c",
            "for i in 1 2 3; do sh -c 'sleep 1 & sleep 1.2 & exit 0'; done; \
             sleep 0.5; o=$(pidof sleep | wc -w); sleep 2.5; \
             z=$(cat /proc/[0-9]*/stat | awk '$3==\"Z\"' | wc -l); echo orphans=$o zombies=$z",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "orphans=6 zombies=0");
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn the_exit_status_tells_the_signal() {
    let env = Env::new();
    let o = env.run(&["--rm", "--init"], &["sh", "-c", "kill -KILL $$"]);
    assert_eq!(o.status.code(), Some(137), "{}", stderr(&o));
    let o = env.run(&["--rm", "--init"], &["sh", "-c", "exit 42"]);
    assert_eq!(o.status.code(), Some(42), "{}", stderr(&o));
    // A signal berth sends reaches the command, whose death by it is the container's status.
    run_detached(&env, "int", &["sleep", "3600"]);
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        env.berth(&["container", "kill", "-s", "INT", "int"])
            .status
            .success()
    );
    assert_eq!(wait_code(&env, "int"), "130");
    assert!(env.berth(&["container", "rm", "int"]).status.success());
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn a_command_that_cannot_run_fails_the_start_as_without_init() {
    let env = Env::new();
    let script = env.rootfs.join("bin/badinterp");
    std::fs::write(&script, "#!/no/such/interpreter\n").expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let plain = env.run(&["--rm"], &["badinterp"]);
    let init = env.run(&["--rm", "--init"], &["badinterp"]);
    assert_eq!(plain.status.code(), Some(127), "{}", stderr(&plain));
    assert_eq!(init.status.code(), Some(127), "{}", stderr(&init));
    assert!(
        stderr(&init).contains("stat /bin/badinterp: no such file or directory"),
        "{}",
        stderr(&init)
    );
    assert_eq!(stderr(&init), stderr(&plain));
    let o = env.run(&["--rm", "--init"], &["no-such-binary"]);
    assert_eq!(o.status.code(), Some(127), "{}", stderr(&o));
    env.assert_clean();
}

#[test_with::root()]
#[test]
fn the_init_runs_as_the_containers_user() {
    let env = Env::new();
    let o = env.run(
        &["--rm", "--init", "--user", "1000"],
        &[
            "sh",
            "-c",
            "awk '$1==\"Uid:\"{print $2}' /proc/1/status; id -u",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1000\n1000\n");
    env.assert_clean();
}
