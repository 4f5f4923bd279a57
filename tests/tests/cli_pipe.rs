//! `berth … | head -1`: when the reader of its output is gone, the CLI ends quietly (killed by
//! SIGPIPE, as `ls` or the Docker CLI), with no panic message and no error about the pipe.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use berth_tests::container_util::Env;

/// Runs `berth ARGS` with stdout a pipe whose reader is already closed; returns its stderr and
/// how it ended.
fn into_closed_pipe(env: &Env, args: &[&str]) -> (String, std::process::ExitStatus) {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut cmd: Command = env.cmd(args);
    let out = cmd
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .expect("running berth");
    (
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status,
    )
}

fn assert_quiet(env: &Env, args: &[&str]) {
    let (err, status) = into_closed_pipe(env, args);
    assert!(err.is_empty(), "{args:?} printed: {err}");
    // `timeout` (the harness's guard) passes the signal on as 128+13.
    assert!(
        status.signal() == Some(libc::SIGPIPE) || status.code() == Some(128 + libc::SIGPIPE),
        "{args:?} ended with {status:?}"
    );
}

#[test_with::root()]
#[test]
fn listings_into_a_closed_pipe_end_quietly() {
    let env = Env::new();
    let rootfs = env.rootfs.display().to_string();
    let o = env.berth(&[
        "container",
        "run",
        "--name",
        "chatty",
        "--rootfs",
        &rootfs,
        "seq",
        "1",
        "20000",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let compose = env.tmp.path().join("compose.yaml");
    std::fs::write(&compose, "services:\n  web:\n    image: busybox\n").expect("compose file");
    let compose = compose.display().to_string();
    for args in [
        &["container", "ls", "-a"][..],
        &["image", "ls"],
        &["container", "logs", "chatty"],
        &["-f", &compose, "config"],
    ] {
        assert_quiet(&env, args);
    }
    assert!(env.berth(&["container", "rm", "chatty"]).status.success());
    env.assert_clean();
}
