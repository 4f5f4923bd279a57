//! A build cache exported to a directory (`berth image build --cache-to type=local,dest=DIR`,
//! Compose `build.cache_to`) serves every step of the same build in a fresh `--root`
//! (`--cache-from type=local,src=DIR`, Compose `build.cache_from`): nothing runs again.

use std::fs;

use berth_tests::host::{self, Host};

const DOCKERFILE: &str = "FROM busybox:e2e\n\
ENV STAGE=one\n\
RUN --network=none cat /proc/sys/kernel/random/uuid > /stamp\n\
COPY hello.txt /hello.txt\n\
RUN --network=none cat /proc/sys/kernel/random/uuid >> /stamp\n\
CMD [\"cat\", \"/stamp\", \"/hello.txt\"]\n";

/// A fresh instance holding the busybox image saved in `archive` (the same id as where it
/// was saved, as a base pulled by digest would be).
fn instance_with(tag: &str, archive: &std::path::Path) -> Host {
    let h = Host::new(tag);
    h.ok(&["image", "load", "-q", "-i", &archive.display().to_string()]);
    h
}

fn write_context(h: &Host) -> String {
    fs::write(h.stack.join("Dockerfile"), DOCKERFILE).expect("Dockerfile");
    fs::write(h.stack.join("hello.txt"), "hello\n").expect("hello");
    h.stack.display().to_string()
}

#[test_with::root()]
#[test]
fn a_cache_directory_serves_every_step_in_a_fresh_root() {
    host::require_tools();
    let cache = tempfile::tempdir().expect("cache dir");
    let dest = cache.path().join("c1");
    let a = Host::new("bcachea");
    a.busybox_image();
    let archive = cache.path().join("busybox.tar");
    a.ok(&[
        "image",
        "save",
        "-o",
        &archive.display().to_string(),
        "busybox:e2e",
    ]);
    let ctx = write_context(&a);
    let to = format!("type=local,dest={}", dest.display());
    a.ok(&["image", "build", "-t", "app:1", "--cache-to", &to, &ctx]);
    assert!(dest.join("berth-cache.json").is_file() && dest.join("images.tar").is_file());
    let stamp = a.ok(&["container", "run", "--rm", "app:1"]);

    // A fresh root: every step is a cache hit, nothing runs, the image is the same.
    let b = instance_with("bcacheb", &archive);
    let ctx_b = write_context(&b);
    let from = format!("type=local,src={}", dest.display());
    let out = b.berth(&[
        "image",
        "build",
        "-t",
        "app:1",
        "--cache-from",
        &from,
        &ctx_b,
    ]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    let steps: Vec<&str> = log.lines().filter(|l| l.starts_with('[')).collect();
    assert_eq!(steps.len(), 6, "{log}");
    for s in &steps[1..] {
        assert!(s.ends_with(" CACHED"), "every step a cache hit:\n{log}");
    }
    assert_eq!(b.ok(&["container", "run", "--rm", "app:1"]), stamp);
    // A change after the cached part runs from there on only.
    fs::write(b.stack.join("hello.txt"), "changed\n").expect("hello");
    let out = b.ok(&[
        "image",
        "build",
        "-t",
        "app:2",
        "--cache-from",
        &from,
        &ctx_b,
    ]);
    assert!(
        out.contains("RUN --network=none cat /proc/sys/kernel/random/uuid > /stamp CACHED"),
        "{out}"
    );
    assert!(!out.contains("COPY hello.txt /hello.txt CACHED"), "{out}");

    // Bad values: a directory without a cache, and exporters berth has not, by name.
    let out = b.berth(&[
        "image",
        "build",
        "--cache-from",
        "type=local,src=/nonexistent-cache",
        &ctx_b,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("/nonexistent-cache"),
        "{err}"
    );
    assert!(err.contains("berth-cache.json"), "{err}");
    let out = b.berth(&[
        "image",
        "build",
        "--cache-to",
        "type=registry,ref=x",
        &ctx_b,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("type=registry"),
        "{err}"
    );

    // Compose: build.cache_from / cache_to through the daemon's build, in another fresh root.
    let c = instance_with("bcachec", &archive);
    write_context(&c);
    let dest2 = cache.path().join("c2");
    fs::write(
        c.stack.join("compose.yaml"),
        format!(
            "name: bcachec\nservices:\n  app:\n    build:\n      context: .\n      cache_from: ['type=local,src={}']\n      cache_to: ['type=local,dest={}']\n",
            dest.display(),
            dest2.display()
        ),
    )
    .expect("compose");
    let out = c.ok(&["build"]);
    assert!(!out.contains("cache_to"), "not warned: {out}");
    assert_eq!(c.ok(&["container", "run", "--rm", "bcachec-app"]), stamp);
    assert!(dest2.join("berth-cache.json").is_file(), "{out}");
}
