//! Named build contexts: `berth image build --build-context NAME=DIR|docker-image://REF` and
//! Compose `build.additional_contexts` make `FROM NAME`, `COPY --from=NAME` and `RUN
//! --mount=from=NAME` read that directory or image; paths and links inside a directory never
//! reach outside it.

use std::fs;

use berth_tests::host::{self, Host};

const DOCKERFILE: &str = "FROM alpine:3 AS base\n\
COPY --from=lib lib.txt /from-lib.txt\n\
RUN --network=none --mount=from=lib,target=/l cat /l/sub/x.txt > /mounted.txt\n\
FROM lib AS files\n\
FROM base\n\
COPY --from=files /sub/x.txt /from-files.txt\n\
CMD [\"cat\", \"/from-lib.txt\", \"/mounted.txt\", \"/from-files.txt\"]\n";

#[test_with::root()]
#[test]
fn named_contexts_stand_for_stages_and_images_and_stay_inside() {
    host::require_tools();
    let h = Host::new("bnctx");
    h.busybox_image();
    let lib = h.dir.path().join("lib");
    fs::create_dir_all(lib.join("sub")).expect("lib");
    fs::write(lib.join("lib.txt"), "from lib\n").expect("lib.txt");
    fs::write(lib.join("sub/x.txt"), "sub x\n").expect("x.txt");
    fs::write(lib.join("ignored.txt"), "ignored\n").expect("ignored");
    fs::write(lib.join(".dockerignore"), "ignored.txt\n").expect(".dockerignore");
    // Links that point out of the directory, at a file of the host's.
    fs::write(h.dir.path().join("outside.txt"), "host-only-secret\n").expect("outside");
    std::os::unix::fs::symlink("../outside.txt", lib.join("escape")).expect("link");
    let abs = h.dir.path().join("outside.txt");
    std::os::unix::fs::symlink(&abs, lib.join("abs")).expect("abs link");
    fs::write(h.stack.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    let ctx = h.stack.display().to_string();

    // The CLI: a relative directory (the working directory's) and an image for `alpine:3`.
    let build = |tag: &str| {
        let out = h.berth(&[
            "image",
            "build",
            "-t",
            tag,
            "--build-context",
            "lib=../lib",
            "--build-context",
            "alpine:3=docker-image://busybox:e2e",
            &ctx,
        ]);
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8_lossy(&out.stdout).trim().to_string(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (first, log) = build("nctx:1");
    let run = h.ok(&["container", "run", "--rm", "nctx:1"]);
    assert_eq!(run, "from lib\nsub x\nsub x\n", "{log}");
    // Built again: the directory's image and every step are the same (all cached).
    let (again, log) = build("nctx:2");
    assert_eq!(first, again, "{log}");
    assert!(
        log.contains(
            "RUN --network=none --mount=from=lib,target=/l cat /l/sub/x.txt > /mounted.txt CACHED"
        ),
        "{log}"
    );
    // .dockerignore of the named directory applies.
    fs::write(
        h.stack.join("Dockerfile.ign"),
        "FROM busybox:e2e\nCOPY --from=lib ignored.txt /i\n",
    )
    .expect("Dockerfile.ign");
    let out = h.berth(&[
        "image",
        "build",
        "-f",
        "Dockerfile.ign",
        "--build-context",
        "lib=../lib",
        &ctx,
    ]);
    assert!(
        !out.status.success(),
        "an ignored file is not in the context"
    );

    // Attack: `..` and links out of the directory resolve inside its image, never on the host.
    fs::write(
        h.stack.join("Dockerfile.dots"),
        "FROM busybox:e2e\nCOPY --from=lib ../outside.txt /got\n",
    )
    .expect("Dockerfile.dots");
    let out = h.berth(&[
        "image",
        "build",
        "-f",
        "Dockerfile.dots",
        "--build-context",
        "lib=../lib",
        &ctx,
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(!text.contains("host-only-secret"), "{text}");
    fs::write(
        h.stack.join("Dockerfile.links"),
        "FROM busybox:e2e\n\
         RUN --network=none --mount=from=lib,target=/l \
         (cat /l/escape /l/abs 2>/dev/null || true) > /leak\n\
         COPY --from=lib escape abs /links/\n",
    )
    .expect("Dockerfile.links");
    let out = h.berth(&[
        "image",
        "build",
        "-t",
        "links:1",
        "-f",
        "Dockerfile.links",
        "--build-context",
        "lib=../lib",
        &ctx,
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!text.contains("host-only-secret"), "{text}");
    if out.status.success() {
        let got = h.berth(&[
            "container",
            "run",
            "--rm",
            "links:1",
            "sh",
            "-c",
            "cat /leak; cat /links/* 2>/dev/null; true",
        ]);
        let got = String::from_utf8_lossy(&got.stdout);
        assert!(!got.contains("host-only-secret"), "{got}");
    }

    // Bad values are refused by name.
    for (spec, want) in [
        (
            "lib=https://example.com/x.git",
            "https:// sources are not supported",
        ),
        ("lib=../nope", "not a directory"),
    ] {
        let out = h.berth(&["image", "build", "--build-context", spec, &ctx]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success() && err.contains(want), "{spec}: {err}");
    }

    // Compose `build.additional_contexts` through the daemon's build (paths the project's).
    fs::write(
        h.stack.join("compose.yaml"),
        "name: bnctx\nservices:\n  app:\n    build:\n      context: .\n      additional_contexts:\n        lib: ../lib\n        alpine:3: docker-image://busybox:e2e\n",
    )
    .expect("compose");
    let out = h.ok(&["build"]);
    assert!(!out.contains("additional_contexts"), "not warned: {out}");
    let run = h.ok(&["container", "run", "--rm", "bnctx-app"]);
    assert_eq!(run, "from lib\nsub x\nsub x\n");
}

/// Compose `additional_contexts: {NAME: service:OTHER}`: the context is the image built for
/// OTHER, built first (also when only the reading service is asked for), found in the local
/// store (a `--pull` does not look for `<project>-<service>` in a registry); a cycle and a
/// service without `build:` are refused by name.
#[test_with::root()]
#[test]
fn a_service_image_as_a_named_context_is_built_first() {
    host::require_tools();
    let h = Host::new("bsvcctx");
    h.busybox_image();
    let s = &h.stack;
    fs::create_dir_all(s.join("base")).expect("base dir");
    fs::create_dir_all(s.join("web")).expect("web dir");
    fs::write(s.join("base/base.txt"), "v1\n").expect("base.txt");
    fs::write(
        s.join("base/Dockerfile"),
        "FROM busybox:e2e\nCOPY base.txt /base.txt\n",
    )
    .expect("base Dockerfile");
    fs::write(
        s.join("web/Dockerfile"),
        "FROM base\nCOPY --from=base /base.txt /copied.txt\nCMD [\"cat\", \"/base.txt\", \"/copied.txt\"]\n",
    )
    .expect("web Dockerfile");
    // `plain` reads a base made FROM scratch, so `--pull` has nothing to fetch but the
    // service image, which it must not look for in a registry (the netns has no route).
    fs::write(
        s.join("base/Dockerfile.scratch"),
        "FROM scratch\nCOPY base.txt /b\n",
    )
    .expect("scratch Dockerfile");
    fs::write(
        s.join("compose.yaml"),
        "name: bsvcctx\nservices:\n\
         \x20 web:\n    build:\n      context: ./web\n      additional_contexts:\n        base: service:base\n\
         \x20 base:\n    build: ./base\n\
         \x20 sbase:\n    build: {context: ./base, dockerfile: Dockerfile.scratch}\n\
         \x20 plain:\n    build:\n      context: ./web\n      dockerfile_inline: \"FROM sb\\nCOPY --from=sb /b /c\\n\"\n      additional_contexts: [sb=service:sbase]\n",
    )
    .expect("compose");
    // `berth config` prints the key as Compose does.
    let cfg = h.ok(&["config"]);
    assert!(cfg.contains("base: service:base"), "{cfg}");

    // Only web asked for: base is built first, and web reads its image.
    let out = h.ok(&["build", "web"]);
    assert!(
        h.berth(&["image", "inspect", "bsvcctx-base"])
            .status
            .success(),
        "{out}"
    );
    let run = h.ok(&["container", "run", "--rm", "bsvcctx-web"]);
    assert_eq!(run, "v1\nv1\n");
    // A change in base reaches web in one `berth build`: web's build waits for base's.
    fs::write(s.join("base/base.txt"), "v2\n").expect("base.txt v2");
    h.ok(&["build"]);
    let run = h.ok(&["container", "run", "--rm", "bsvcctx-web"]);
    assert_eq!(run, "v2\nv2\n");
    // `--pull` does not fetch the service's image from a registry.
    let out = h.berth(&["build", "--pull", "plain"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A cycle: refused naming the services, nothing built.
    fs::write(
        s.join("compose.yaml"),
        "name: bsvcctx\nservices:\n\
         \x20 a:\n    build:\n      context: ./web\n      additional_contexts: {x: 'service:b'}\n\
         \x20 b:\n    build:\n      context: ./web\n      additional_contexts: {y: 'service:a'}\n",
    )
    .expect("compose cycle");
    let out = h.berth(&["build", "a"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("a -> b -> a") || text.contains("b -> a -> b"),
        "{text}"
    );
    assert!(!h.berth(&["image", "inspect", "bsvcctx-a"]).status.success());

    // A service without build: cannot stand for a context (as Compose refuses it).
    fs::write(
        s.join("compose.yaml"),
        "name: bsvcctx\nservices:\n\
         \x20 img:\n    image: busybox:e2e\n\
         \x20 web:\n    build:\n      context: ./web\n      additional_contexts: {base: 'service:img'}\n",
    )
    .expect("compose unbuilt");
    let out = h.berth(&["build", "web"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("services.web.build.additional_contexts.base")
            && err.contains("service \"img\" has no build: section"),
        "{err}"
    );
}
