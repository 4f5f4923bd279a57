//! The Docker Engine API's bad input, with the docker CLI (bounded by a timeout) and raw
//! requests as the clients: a create body that is not JSON, one with a field berth does not
//! know, one of 100 MB, an attached client that leaves mid-stream, and an attached `docker
//! run` whose start fails after its create. Each gets Docker's error (and the docker CLI
//! Docker's exit code), nothing is left half-made, and the daemon serves on.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// One POST of `body` to `path` on the socket: the answer's status line and body.
fn post(sock: &Path, path: &str, body: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    let _ = s.write_all(body);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

/// No container exists, and the daemon answers.
fn nothing_made(docker: &Docker, after: &str) {
    assert_eq!(
        docker.ok(&["ps", "-aq"]).trim(),
        "",
        "{after} left a container"
    );
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn bad_create_bodies_get_dockers_400_and_make_nothing() {
    host::require_tools();
    let h = Host::new("dkbad");
    h.busybox_image();
    let docker = Docker::new(&h);

    let answer = post(&docker.sock, "/v1.41/containers/create", b"{\"Image\": ");
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains(r#"{"message":"invalid JSON"#), "{answer}");
    nothing_made(&docker, "malformed JSON");

    // A field berth does not know is named, never dropped.
    let answer = post(
        &docker.sock,
        "/v1.41/containers/create?name=u",
        br#"{"Image": "busybox:e2e", "Cmd": ["true"], "Frobnicate": {"x": 1}}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("Frobnicate"), "{answer}");
    let answer = post(
        &docker.sock,
        "/v1.41/containers/create?name=u",
        br#"{"Image": "busybox:e2e", "HostConfig": {"Frobnicate": true}}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("HostConfig.Frobnicate"), "{answer}");
    nothing_made(&docker, "unknown fields");

    // 100 MB: refused past the create's limit, without reading it all.
    let mut s = UnixStream::connect(&docker.sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).ok();
    let size = 100 * 1024 * 1024;
    let head = format!(
        "POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\n\
         Content-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let _ = w.write_all(b"{\"Labels\": {\"x\": \"");
        let chunk = vec![b'a'; 1 << 20];
        for _ in 0..100 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut answer = vec![0u8; 1024];
    let n = s.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    drop(s);
    let _ = writer.join();
    nothing_made(&docker, "a 100 MB body");
    docker.ok(&["run", "--rm", "busybox:e2e", "true"]);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn an_attached_client_leaving_mid_stream_leaves_the_container_running() {
    host::require_tools();
    let h = Host::new("dkleave");
    h.busybox_image();
    let docker = Docker::new(&h);

    // `docker run -i` attaches stdin, stdout and stderr over one hijacked connection.
    let mut client = docker
        .cmd(&["run", "-i", "--name", "cat", "busybox:e2e", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker run -i");
    let mut stdin = client.stdin.take().expect("stdin");
    let mut stdout = client.stdout.take().expect("stdout");
    stdin.write_all(b"ping\n").expect("write");
    let mut echoed = [0u8; 5];
    stdout.read_exact(&mut echoed).expect("echo");
    assert_eq!(&echoed, b"ping\n");
    // The client dies with the connection open (no detach, no end of input).
    let _ = client.kill();
    let _ = client.wait();
    assert_eq!(
        docker
            .ok(&["inspect", "-f", "{{.State.Running}}", "cat"])
            .trim(),
        "true",
        "the container outlives its attached client, as on Docker"
    );
    // Another client attaches and is heard.
    let mut again = docker
        .cmd(&["attach", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("docker attach");
    let mut stdin = again.stdin.take().expect("stdin");
    let mut stdout = again.stdout.take().expect("stdout");
    stdin.write_all(b"pong\n").expect("write");
    let mut echoed = [0u8; 5];
    stdout.read_exact(&mut echoed).expect("echo");
    assert_eq!(&echoed, b"pong\n");
    let _ = again.kill();
    let _ = again.wait();
    docker.ok(&["rm", "-f", "cat"]);
    nothing_made(&docker, "the removal");
}

/// `docker ARGS` that must fail by itself (not by the test's timeout): its code and stderr.
fn fails_with(docker: &Docker, args: &[&str]) -> (i32, String) {
    let out = docker.run(args);
    let code = out.status.code().unwrap_or(-1);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_ne!(code, 124, "docker {args:?} hung: {err}");
    assert_ne!(code, 0, "docker {args:?} succeeded");
    (code, err)
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn an_attached_run_whose_start_fails_exits_with_dockers_code() {
    host::require_tools();
    let h = Host::new("dkstartfail");
    h.busybox_image();
    let docker = Docker::new(&h);

    // No such executable: 127, as dockerd's CLI says it; `--rm` removes the container.
    let (code, err) = fails_with(&docker, &["run", "--rm", "busybox:e2e", "nosuch"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("executable file not found"), "{err}");
    nothing_made(&docker, "a failed run --rm");
    let (code, err) = fails_with(&docker, &["run", "--rm", "-i", "busybox:e2e", "/nosuch"]);
    assert_eq!(code, 127, "{err}");
    assert!(err.contains("no such file or directory"), "{err}");
    nothing_made(&docker, "a failed run --rm -i");
    // Not executable: 126.
    let (code, err) = fails_with(&docker, &["run", "--rm", "busybox:e2e", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("permission denied"), "{err}");
    nothing_made(&docker, "a failed run --rm of a file");
    // Without --rm the container stays, created and never run, and goes with `rm`.
    let (code, err) = fails_with(&docker, &["run", "--name", "kept", "busybox:e2e", "nosuch"]);
    assert_eq!(code, 127, "{err}");
    let st = docker.ok(&["inspect", "-f", "{{.State.Running}}", "kept"]);
    assert_eq!(st.trim(), "false");
    docker.ok(&["rm", "kept"]);

    // A bind source gone between create and start: `docker start -a` says why and ends.
    let src = tempfile::tempdir().expect("bind source");
    let gone = src.path().join("gone");
    std::fs::create_dir(&gone).expect("mkdir");
    let mount = format!("type=bind,src={},dst=/d", gone.display());
    docker.ok(&[
        "create",
        "--name",
        "b",
        "--mount",
        &mount,
        "busybox:e2e",
        "ls",
        "/d",
    ]);
    std::fs::remove_dir(&gone).expect("rmdir");
    let (_, err) = fails_with(&docker, &["start", "-a", "b"]);
    assert!(err.contains(&gone.display().to_string()), "{err}");
    docker.ok(&["rm", "b"]);
    // Missing at create: refused there, as Docker refuses it (400), naming the path; the CLI's
    // exit is 125 for `run` and 1 for `create`, and neither makes anything.
    for (args, want) in [
        (
            &["run", "--rm", "--mount", &mount, "busybox:e2e", "true"][..],
            125,
        ),
        (
            &[
                "create",
                "--name",
                "nobind",
                "--mount",
                &mount,
                "busybox:e2e",
            ][..],
            1,
        ),
    ] {
        let (code, err) = fails_with(&docker, args);
        assert_eq!(code, want, "{err}");
        assert!(
            err.contains(&format!(
                "bind source path does not exist: {}",
                gone.display()
            )),
            "{err}"
        );
    }
    nothing_made(&docker, "the failed starts and create");
    // A `-v` bind's missing source is made as a directory, as Docker makes it.
    let made = src.path().join("made/deep");
    let v = format!("{}:/d", made.display());
    docker.ok(&[
        "run",
        "--rm",
        "-v",
        &v,
        "busybox:e2e",
        "sh",
        "-c",
        "echo x > /d/f",
    ]);
    assert!(made.join("f").is_file(), "-v source not made");
    docker.ok(&["run", "--rm", "busybox:e2e", "true"]);
}
