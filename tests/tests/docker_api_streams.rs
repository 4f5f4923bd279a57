//! The Docker Engine API's streaming container routes, with the real docker CLI as the
//! oracle: `docker logs` (stdout and stderr apart, `--tail`, `-t`, `-f` ending with the
//! container), `docker exec` (output, exit status, stdin, env and workdir, detached, with a
//! terminal, on a stopped container), and the attach path of `docker run` (stdin, both
//! streams, exit status), `docker start -ai` and `docker attach`.

use std::io::Write;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `docker ARGS` with `input` on its stdin.
fn with_stdin(docker: &Docker, args: &[&str], input: &[u8]) -> Output {
    let mut child = docker
        .cmd(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn docker");
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).expect("write stdin");
    }
    child.wait_with_output().expect("docker output")
}

/// `docker ARGS` run inside a terminal (script(1)), for `-t`: its output and status.
fn in_terminal(docker: &Docker, args: &[&str]) -> Output {
    typed_in_terminal(docker, args, "")
}

/// `docker ARGS` inside a terminal where the shell command `typing` writes what is typed.
fn typed_in_terminal(docker: &Docker, args: &[&str], typing: &str) -> Output {
    let cmd = std::iter::once("docker")
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    // The docker command's environment (its socket and config, nothing else's), on script.
    let base = docker.cmd(&[]);
    let mut c = std::process::Command::new("timeout");
    if typing.is_empty() {
        c.args(["60", "script", "-qec", &cmd, "/dev/null"])
            .stdin(Stdio::null());
    } else {
        let cmd = cmd.replace('\'', "'\\''");
        c.args([
            "60",
            "sh",
            "-c",
            &format!("({typing}) | script -qec '{cmd}' /dev/null"),
        ]);
    }
    for (k, v) in base.get_envs() {
        match v {
            Some(v) => c.env(k, v),
            None => c.env_remove(k),
        };
    }
    c.output().expect("run script")
}

/// One HTTP/1.1 request to the instance's Docker socket (the connection closed after it):
/// the whole answer, head and body, as received.
fn raw_request(sock: &Path, method: &str, path: &str, body: &str) -> Vec<u8> {
    use std::io::Read;
    let mut s = std::os::unix::net::UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    answer
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_logs_frames_streams_apart_tails_stamps_and_follows() {
    host::require_tools();
    let h = Host::new("dklogs");
    h.busybox_image();
    let docker = Docker::new(&h);

    docker.ok(&[
        "run",
        "-d",
        "--name",
        "l",
        "busybox:e2e",
        "sh",
        "-c",
        "echo one; sleep 0.2; echo two >&2; sleep 0.2; echo three; echo four",
    ]);
    assert_eq!(docker.ok(&["wait", "l"]).trim(), "0");
    let out = docker.run(&["logs", "l"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "one\nthree\nfour\n", "stdout alone");
    assert_eq!(text(&out.stderr), "two\n", "stderr kept apart");

    let out = docker.run(&["logs", "--tail", "2", "l"]);
    assert_eq!(text(&out.stdout), "three\nfour\n");
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));

    let out = docker.ok(&["logs", "-t", "l"]);
    for (line, want) in out.lines().zip(["one", "three", "four"]) {
        let (stamp, rest) = line.split_once(' ').unwrap_or_default();
        assert_eq!(rest, want, "{out}");
        assert!(
            stamp.len() == 30 && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "RFC 3339 with nanoseconds: {line}"
        );
    }

    // `--since` in the future: nothing; `--until` long ago: nothing.
    let out = docker.run(&["logs", "--since", "2100-01-01T00:00:00Z", "l"]);
    assert!(out.status.success() && out.stdout.is_empty() && out.stderr.is_empty());

    // Follow: what comes later arrives, and the command ends with the container.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "f",
        "busybox:e2e",
        "sh",
        "-c",
        "echo early; sleep 2; echo late >&2; sleep 1",
    ]);
    let started = Instant::now();
    let out = docker.run(&["logs", "-f", "f"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "early\n");
    assert_eq!(text(&out.stderr), "late\n");
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "followed until the exit"
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // A TTY container's log is raw: docker prints it all on stdout.
    docker.ok(&[
        "run",
        "-d",
        "-t",
        "--name",
        "t",
        "busybox:e2e",
        "sh",
        "-c",
        "echo to-tty; echo err-tty >&2",
    ]);
    docker.ok(&["wait", "t"]);
    let out = docker.run(&["logs", "t"]);
    let all = text(&out.stdout);
    assert!(all.contains("to-tty") && all.contains("err-tty"), "{all}");

    let err = docker.fails(&["logs", "nope"]);
    assert!(err.contains("No such container: nope"), "{err}");
    docker.ok(&["rm", "-f", "l", "f", "t"]);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, script)]
#[test]
fn docker_exec_runs_in_the_container_with_status_stdin_env_and_terminal() {
    host::require_tools();
    let h = Host::new("dkexec");
    h.busybox_image();
    let docker = Docker::new(&h);
    let id = docker.ok(&["run", "-d", "--name", "x", "busybox:e2e", "sleep", "60"]);
    let id = id.trim().to_string();

    assert_eq!(docker.ok(&["exec", "x", "echo", "hi"]), "hi\n");
    let out = docker.run(&["exec", "x", "sh", "-c", "echo out; echo err >&2; exit 3"]);
    assert_eq!(out.status.code(), Some(3), "the exit status passes through");
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");

    let out = with_stdin(&docker, &["exec", "-i", "x", "cat"], b"piped\nin\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "piped\nin\n");

    let out = docker.ok(&[
        "exec",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "x",
        "sh",
        "-c",
        "echo $A; pwd",
    ]);
    assert_eq!(out, "1\n/tmp\n");

    // Detached: nothing printed, the process runs on.
    let out = docker.ok(&["exec", "-d", "x", "sh", "-c", "echo done > /tmp/d"]);
    assert!(out.is_empty(), "{out}");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = docker.run(&["exec", "x", "cat", "/tmp/d"]);
        if text(&out.stdout) == "done\n" {
            break;
        }
        assert!(Instant::now() < deadline, "the detached exec ran");
        std::thread::sleep(Duration::from_millis(100));
    }

    // With a terminal: the process sees one, its output is raw.
    let out = in_terminal(&docker, &["exec", "-t", "x", "sh", "-c", "tty; exit 5"]);
    assert!(text(&out.stdout).contains("/dev/pts/"), "{out:?}");
    assert_eq!(out.status.code(), Some(5), "{out:?}");
    let out = in_terminal(&docker, &["exec", "-it", "x", "sh", "-c", "stty size"]);
    assert!(out.status.success(), "{out:?}");

    // The API itself: exec inspect after the run, a second start, a privileged exec.
    let created = text(&raw_request(
        &docker.sock,
        "POST",
        "/v1.41/containers/x/exec",
        r#"{"Cmd":["sh","-c","exit 7"],"AttachStdout":true}"#,
    ));
    assert!(created.starts_with("HTTP/1.1 201"), "{created}");
    let exec_id = created
        .split("\"Id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    assert_eq!(exec_id.len(), 64, "{created}");
    let started = text(&raw_request(
        &docker.sock,
        "POST",
        &format!("/exec/{exec_id}/start"),
        "{}",
    ));
    assert!(started.starts_with("HTTP/1.1 200"), "{started}");
    let inspect = text(&raw_request(
        &docker.sock,
        "GET",
        &format!("/exec/{exec_id}/json"),
        "",
    ));
    assert!(
        inspect.contains("\"Running\":false,\"ExitCode\":7")
            && inspect.contains(&format!("\"ContainerID\":\"{id}\"")),
        "{inspect}"
    );
    let again = text(&raw_request(
        &docker.sock,
        "POST",
        &format!("/exec/{exec_id}/start"),
        "{}",
    ));
    assert!(
        again.starts_with("HTTP/1.1 409") && again.contains("has already run"),
        "{again}"
    );
    // A TTY exec's terminal is sized while it runs.
    let created = text(&raw_request(
        &docker.sock,
        "POST",
        "/containers/x/exec",
        r#"{"Cmd":["sh","-c","sleep 1; stty size"],"Tty":true,"AttachStdout":true}"#,
    ));
    let tty_exec = created
        .split("\"Id\":\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_default()
        .to_string();
    let sock = docker.sock.clone();
    let path = format!("/exec/{tty_exec}/start");
    let runner =
        std::thread::spawn(move || text(&raw_request(&sock, "POST", &path, r#"{"Tty":true}"#)));
    std::thread::sleep(Duration::from_millis(300));
    let resized = text(&raw_request(
        &docker.sock,
        "POST",
        &format!("/exec/{tty_exec}/resize?h=22&w=77"),
        "",
    ));
    assert!(resized.starts_with("HTTP/1.1 200"), "{resized}");
    let ran = runner.join().expect("exec start");
    assert!(ran.contains("22 77"), "{ran}");

    let err = docker.fails(&["exec", "--privileged", "x", "true"]);
    assert!(err.contains("Privileged"), "{err}");
    let missing = text(&raw_request(&docker.sock, "GET", "/exec/nope/json", ""));
    assert!(
        missing.starts_with("HTTP/1.1 404") && missing.contains("No such exec instance: nope"),
        "{missing}"
    );

    // A client leaving mid-stream: the daemon serves on.
    let mut follower = docker
        .cmd(&["exec", "x", "sleep", "30"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn docker exec");
    std::thread::sleep(Duration::from_millis(500));
    let _ = follower.kill();
    let _ = follower.wait();
    assert_eq!(docker.ok(&["exec", "x", "echo", "still"]), "still\n");

    let err = docker.fails(&["exec", "nope", "true"]);
    assert!(err.contains("No such container: nope"), "{err}");
    docker.ok(&["stop", "-t", "0", "x"]);
    let err = docker.fails(&["exec", "x", "true"]);
    assert!(
        err.contains(&format!("container {id} is not running")),
        "{err}"
    );
    docker.ok(&["rm", "x"]);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, script)]
#[test]
fn docker_run_start_ai_and_attach_stream_through_the_attach_route() {
    host::require_tools();
    let h = Host::new("dkatt");
    h.busybox_image();
    let docker = Docker::new(&h);

    let out = with_stdin(
        &docker,
        &["run", "-i", "--rm", "busybox:e2e", "cat"],
        b"hi\n",
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\n");

    let out = docker.run(&[
        "run",
        "--rm",
        "busybox:e2e",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 4",
    ]);
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(text(&out.stdout), "out\n");
    assert_eq!(text(&out.stderr), "err\n");
    assert!(
        docker.ok(&["ps", "-aq"]).trim().is_empty(),
        "--rm removed them"
    );

    // A short-lived container's output is all there.
    let out = docker.run(&[
        "run",
        "--name",
        "short",
        "busybox:e2e",
        "sh",
        "-c",
        "i=0; while [ $i -lt 500 ]; do i=$((i+1)); echo $i; done",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout).lines().count(), 500);
    assert_eq!(text(&out.stdout).lines().last(), Some("500"));
    docker.ok(&["rm", "short"]);

    docker.ok(&["create", "-i", "--name", "s", "busybox:e2e", "cat"]);
    let out = with_stdin(&docker, &["start", "-ai", "s"], b"via start\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "via start\n");
    let st = docker.ok(&[
        "inspect",
        "-f",
        "{{.State.Status}} {{.State.ExitCode}}",
        "s",
    ]);
    assert_eq!(st.trim(), "exited 0");

    // Attach to a running container: its later output, and its exit status.
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "a",
        "busybox:e2e",
        "sh",
        "-c",
        "sleep 2; echo late; exit 6",
    ]);
    let out = docker.run(&["attach", "a"]);
    assert_eq!(text(&out.stdout), "late\n", "{}", text(&out.stderr));
    assert_eq!(out.status.code(), Some(6));

    // With a terminal (and its resize).
    let out = in_terminal(
        &docker,
        &["run", "--rm", "-t", "busybox:e2e", "sh", "-c", "tty"],
    );
    // berth's container terminal is its /dev/console (a pty), as runc's is.
    let seen = text(&out.stdout);
    assert!(
        seen.contains("/dev/") && !seen.contains("not a tty"),
        "{out:?}"
    );
    assert!(out.status.success(), "{out:?}");

    // The detach keys (ctrl-p ctrl-q) leave a TTY container running.
    docker.ok(&["run", "-dit", "--name", "d", "busybox:e2e", "sh"]);
    let out = typed_in_terminal(
        &docker,
        &["attach", "d"],
        "sleep 1; printf 'echo typed-in\\r'; sleep 1; printf '\\020\\021'; sleep 2",
    );
    assert!(
        text(&out.stdout).contains("typed-in\r\ntyped-in"),
        "{out:?}"
    );
    let st = docker.ok(&["inspect", "-f", "{{.State.Running}}", "d"]);
    assert_eq!(st.trim(), "true", "detached, not stopped: {out:?}");

    // Resize sizes the container's terminal; bad sizes are Docker's 400.
    let resized = text(&raw_request(
        &docker.sock,
        "POST",
        "/containers/d/resize?h=31&w=101",
        "",
    ));
    assert!(resized.starts_with("HTTP/1.1 200"), "{resized}");
    let size = docker.ok(&["exec", "d", "sh", "-c", "stty size < /dev/console"]);
    assert_eq!(size.trim(), "31 101");
    let bad = text(&raw_request(
        &docker.sock,
        "POST",
        "/containers/d/resize?h=x&w=1",
        "",
    ));
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");

    docker.ok(&["rm", "-f", "s", "a", "d"]);
}
