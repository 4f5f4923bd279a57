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
