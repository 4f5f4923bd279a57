//! Conformance: the bundle berth writes runs the same under runc (the reference OCI runtime,
//! which accepts this host's hybrid cgroup layout) as under berth's own executor.

use std::process::{Command, Stdio};

use berth_tests::container_util::{Env, stderr, stdout};

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

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `berth ARGS` with `input` piped to its stdin; returns the output.
fn piped(env: &Env, args: &[&str], input: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = env
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn berth");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input)
        .expect("write stdin");
    child.wait_with_output().expect("wait berth")
}

/// Under crun and runc, as under berth's executor: `-i` pipes stdin through, `-t` gives the
/// container a pty whose master the shim holds (attach, resize, logs, `exec -t`), and an OOM
/// kill reads 137 with OOMKilled; `--init` is refused with what to use instead.
#[test]
fn external_runtimes_take_stdin_a_tty_and_report_oom() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    for rt in ["crun", "runc"] {
        let run = |opts: &[&str], cmd: &[&str]| -> Vec<String> {
            let mut v: Vec<String> = ["container", "run", "--runtime", rt, "--rootfs", &rootfs]
                .iter()
                .map(|s| s.to_string())
                .collect();
            v.extend(opts.iter().chain(cmd).map(|s| s.to_string()));
            v
        };

        // Start failures exit as Docker's do: 127 not found, 126 not executable.
        let o = env.berth(&refs(&run(&["--rm"], &["nope"])));
        assert_eq!(o.status.code(), Some(127), "{rt}: {}", stderr(&o));
        assert!(stderr(&o).contains("nope"), "{rt}: {}", stderr(&o));
        let o = env.berth(&refs(&run(&["--rm"], &["/etc"])));
        assert_eq!(o.status.code(), Some(126), "{rt}: {}", stderr(&o));

        // -i: the input reaches the container's stdin, its end is the container's EOF.
        let args = run(&["--rm", "-i"], &["sh", "-c", "cat; echo done >&2; exit 6"]);
        let o = piped(&env, &refs(&args), b"line one\nline two\n");
        assert_eq!(o.status.code(), Some(6), "{rt}: {}", stderr(&o));
        assert_eq!(stdout(&o), "line one\nline two\n", "{rt}");
        assert_eq!(stderr(&o), "done\n", "{rt}");

        // -it: a shell on the pty the runtime made inside the container.
        let args = run(&["--rm", "-i", "-t"], &["sh"]);
        let o = piped(&env, &refs(&args), b"echo answer=$((6*7)); tty; exit 3\n");
        assert_eq!(o.status.code(), Some(3), "{rt}: {}", stderr(&o));
        let out = stdout(&o);
        assert!(
            out.contains("answer=42") && out.contains("/dev/pts/0"),
            "{rt}: {out}"
        );

        // -d -t: a resize through the shim reaches the container's terminal, the output
        // lands in the log, and `exec -t` gets a pty of its own. (The rootfs is a shared
        // directory: each runtime waits for a file of its own.)
        let name = format!("tty-{rt}");
        let go = format!("/tmp/go-{rt}");
        let script = format!("tty; while [ ! -e {go} ]; do sleep 0.05; done; stty size");
        let args = run(&["-d", "-t", "--name", &name], &["sh", "-c", &script]);
        let o = env.berth(&refs(&args));
        assert!(o.status.success(), "{rt}: {}", stderr(&o));
        let rtm = env.runtime();
        let rec = rtm.resolve(&name).expect("the tty container");
        rtm.resize(&rec, 33, 111)
            .unwrap_or_else(|e| panic!("{rt}: resize: {e}"));
        let e = env.berth(&["container", "exec", "-t", &name, "sh", "-c", "tty"]);
        assert!(e.status.success(), "{rt}: {}", stderr(&e));
        assert!(stdout(&e).contains("/dev/pts/"), "{rt}: {}", stdout(&e));
        assert!(
            env.berth(&["container", "exec", &name, "touch", &go])
                .status
                .success()
        );
        let w = env.berth(&["container", "wait", &name]);
        assert_eq!(stdout(&w).trim(), "0", "{rt}: {}", stderr(&w));
        let logs = stdout(&env.berth(&["container", "logs", &name]));
        assert!(
            logs.contains("/dev/pts/0") && logs.contains("33 111"),
            "{rt}: {logs}"
        );
        assert!(env.berth(&["container", "rm", &name]).status.success());

        // OOM: the shim reaps the init itself and reads the counter before the runtime
        // deletes the cgroup.
        let name = format!("oom-{rt}");
        let args = run(
            &["--name", &name, "-m", "16m"],
            &[
                "sh",
                "-c",
                "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
            ],
        );
        let o = env.berth(&refs(&args));
        assert_eq!(o.status.code(), Some(137), "{rt}: {}", stderr(&o));
        let i = env.berth(&["container", "inspect", &name]);
        let v: serde_json::Value = serde_json::from_slice(&i.stdout).expect("inspect json");
        assert_eq!(v[0]["State"]["OOMKilled"], true, "{rt}: {v}");
        assert_eq!(v[0]["State"]["ExitCode"], 137, "{rt}: {v}");
        // The runtime's record went at the exit: the same container runs again.
        let again = env.berth(&["container", "start", "-a", &name]);
        assert_eq!(again.status.code(), Some(137), "{rt}: {}", stderr(&again));
        assert!(env.berth(&["container", "rm", &name]).status.success());

        let args = run(&["--rm", "--init"], &["true"]);
        let o = env.berth(&refs(&args));
        assert_eq!(o.status.code(), Some(125), "{rt}");
        assert!(
            stderr(&o).contains("--init is not supported") && stderr(&o).contains("tini"),
            "{rt}: {}",
            stderr(&o)
        );
    }
    env.sweep_cgroups();
    env.assert_clean();
}
