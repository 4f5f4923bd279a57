//! ONBUILD triggers kept in an image and run by a child build at its FROM, and the newer
//! COPY/ADD flags (`--parents`, `--exclude`, `ADD --checksum`) end to end over busybox.

use berth_runtime::build::exec::{BuildError, BuildRequest, Builder};
use berth_tests::container_util::build_env::BuildEnv;
use berth_tests::container_util::{stderr, stdout};

fn build(be: &BuildEnv, tag: &str) -> Result<String, BuildError> {
    let rt = be.env.runtime();
    let b = Builder::new(&be.store, &rt, &be.env.root);
    let req = BuildRequest {
        context: be.ctx.clone(),
        tags: vec![tag.into()],
        ..Default::default()
    };
    Ok(b.build(&req, |_| {})?.image.id.to_string())
}

fn run(be: &BuildEnv, image: &str, cmd: &str) -> String {
    let out = be.env.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "sh",
        "-c",
        cmd,
    ]);
    assert!(out.status.success(), "run {image}: {}", stderr(&out));
    stdout(&out)
}

#[test_with::root()]
#[test]
fn onbuild_triggers_are_kept_and_run_when_a_child_builds_from_the_image() {
    let be = BuildEnv::new();
    be.write("app.txt", "app\n");
    be.write(
        "Dockerfile",
        "FROM bb:1\nONBUILD COPY app.txt /app/\nONBUILD RUN echo trig > /trig\n",
    );
    let parent = build(&be, "parent:1").expect("parent");
    let img = be.store.resolve(&parent).expect("resolve");
    assert_eq!(
        img.raw_config["config"]["OnBuild"],
        serde_json::json!(["COPY app.txt /app/", "RUN echo trig > /trig"])
    );
    // The triggers did not run in the parent itself.
    assert_eq!(run(&be, "parent:1", "test -e /trig || echo none"), "none\n");
    be.write("app.txt", "child context\n");
    be.write(
        "Dockerfile",
        "FROM parent:1\nRUN cat /app/app.txt /trig > /out\n",
    );
    let child = build(&be, "child:1").expect("child");
    assert_eq!(run(&be, "child:1", "cat /out"), "child context\ntrig\n");
    // Spent in the child: a grandchild does not run them again.
    let img = be.store.resolve(&child).expect("resolve");
    assert!(
        img.raw_config["config"]
            .get("OnBuild")
            .is_none_or(|v| v.is_null())
    );
    drop(be.store);
    be.env.assert_clean();
}

#[test_with::root()]
#[test]
fn copy_parents_exclude_and_add_checksum() {
    let be = BuildEnv::new();
    be.write("x/a.txt", "xa\n");
    be.write("x/notes.md", "notes\n");
    be.write("y/a.txt", "ya\n");
    be.write("f.txt", "hello\n");
    be.write(
        "Dockerfile",
        "FROM bb:1
COPY --parents x/a.txt y/a.txt /p/
COPY --parents ./x/./a.txt /q/
COPY --exclude=*.md x /r/
ADD --checksum=sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03 f.txt /f.txt
",
    );
    build(&be, "flags:1").expect("build");
    assert_eq!(
        run(&be, "flags:1", "find /p /q /r -type f | sort; cat /f.txt"),
        "/p/x/a.txt\n/p/y/a.txt\n/q/a.txt\n/r/a.txt\nhello\n"
    );
    be.write("f.txt", "tampered\n");
    let e = build(&be, "flags:2").expect_err("checksum mismatch");
    let msg = e.to_string();
    assert!(
        msg.contains("expected sha256:5891b5b5") && msg.contains("got sha256:"),
        "{msg}"
    );
    drop(be.store);
    be.env.assert_clean();
}

/// A loopback HTTP server answering every request with `body`, until the test ends.
fn serve(body: &'static str) -> u16 {
    use std::io::{Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut c in l.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test_with::root()]
#[test]
fn add_of_a_url_is_downloaded_and_checked_against_its_checksum() {
    use std::os::unix::fs::PermissionsExt;
    let be = BuildEnv::new();
    let port = serve("hello\n");
    let url = format!("http://127.0.0.1:{port}/files/data.txt?x=1");
    let good = "sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
    be.write(
        "Dockerfile",
        &format!("FROM bb:1\nADD --checksum={good} {url} /d/\nADD {url} /plain\n"),
    );
    let id = build(&be, "url:1").expect("build");
    let img = be.store.resolve(&id).expect("resolve");
    let dirs = img.layer_dirs();
    let got = dirs[1].join("d/data.txt");
    assert_eq!(
        std::fs::read_to_string(&got).expect("downloaded"),
        "hello\n"
    );
    let mode = std::fs::metadata(&got).expect("meta").permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(dirs[2].join("plain")).expect("plain"),
        "hello\n"
    );
    let bad = format!("sha256:{}", "0".repeat(64));
    be.write(
        "Dockerfile",
        &format!("FROM bb:1\nADD --checksum={bad} {url} /d/\n"),
    );
    let msg = build(&be, "url:2").expect_err("mismatch").to_string();
    assert!(
        msg.contains(&format!("expected {bad}, got {good}")),
        "{msg}"
    );
    drop(be.store);
    be.env.assert_clean();
}
