//! What a bind mount does with the mounts under its source, as Docker's `bind-recursive`:
//! Compose's `bind.recursive`, `container run --mount ...,bind-recursive=` and the Docker
//! API's `BindOptions` (the docker CLI as the client). Each source has a tmpfs mounted under
//! it; the container reports whether it sees the tmpfs and whether it can write there and at
//! the top.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// What the container prints: `sub-seen|sub-hidden`, `sub-rw|sub-ro`, `top-rw|top-ro`.
const PROBE: &str = "if [ -e /m/sub/inner.txt ]; then echo sub-seen; else echo sub-hidden; fi; \
     if echo x > /m/sub/w 2>/dev/null; then echo sub-rw; else echo sub-ro; fi; \
     if echo x > /m/w 2>/dev/null; then echo top-rw; else echo top-ro; fi; echo done";

/// A source directory under the instance's dir with a tmpfs (holding `inner.txt`) mounted at
/// `sub` (unmounted by the host's cleanup even when the test fails).
fn source_with_submount(h: &Host, name: &str) -> PathBuf {
    let src = h.dir.path().join("binds").join(name);
    let sub = src.join("sub");
    std::fs::create_dir_all(&sub).expect("source dirs");
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&sub)
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "mount tmpfs at {}",
        sub.display()
    );
    std::fs::write(sub.join("inner.txt"), "inner\n").expect("inner file");
    src
}

fn unmount(src: &Path) {
    let _ = Command::new("umount").arg(src.join("sub")).status();
}

/// The probe's three answers for `logs`.
fn answers(logs: &str) -> Vec<&str> {
    logs.lines()
        .filter(|l| l.starts_with("sub-") || l.starts_with("top-"))
        .collect()
}

#[test_with::root()]
#[test]
fn compose_bind_recursive_decides_what_the_submounts_become() {
    host::require_tools();
    if !berth_runtime::container::mounts::recursive_read_only_supported() {
        panic!(
            "this test needs mount_setattr (kernel 5.12+): bind.recursive readonly cannot run here"
        );
    }
    let h = Host::new("brec");
    h.busybox_image();
    let cases = [
        ("en", "false", "enabled", ["sub-seen", "sub-rw", "top-rw"]),
        (
            "dis",
            "false",
            "disabled",
            ["sub-hidden", "sub-rw", "top-rw"],
        ),
        // Docker's default for a read-only bind: read-only all the way down.
        ("ro", "true", "enabled", ["sub-seen", "sub-ro", "top-ro"]),
        ("wr", "true", "writable", ["sub-seen", "sub-rw", "top-ro"]),
        ("rro", "true", "readonly", ["sub-seen", "sub-ro", "top-ro"]),
    ];
    let mut compose = String::from("name: brec\nservices:\n");
    let mut sources = Vec::new();
    for (svc, ro, rec, _) in &cases {
        let src = source_with_submount(&h, svc);
        compose.push_str(&format!(
            "  {svc}:\n    image: busybox:e2e\n    network_mode: none\n    \
             command: [\"sh\", \"-c\", \"{PROBE}; exec sleep 3600\"]\n    volumes:\n      \
             - type: bind\n        source: {}\n        target: /m\n        read_only: {ro}\n        \
             bind: {{recursive: {rec}}}\n",
            src.display()
        ));
        sources.push(src);
    }
    std::fs::write(h.stack.join("compose.yaml"), &compose).expect("compose");
    let out = h.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("bind.recursive"), "no warning: {stderr}");
    for (svc, _, rec, want) in &cases {
        let logs = h.logs_when_done(&format!("brec-{svc}-1"));
        assert_eq!(answers(&logs), want, "{svc} (recursive: {rec}): {logs}");
    }
    // The containers keep their own copies of the binds: the host's tmpfs can go first.
    for src in &sources {
        unmount(src);
    }
    h.down_clean();
    // The disabled bind's write landed in the source directory itself, under the tmpfs.
    assert!(
        sources[1].join("sub/w").exists(),
        "the non-recursive bind wrote the bare dir"
    );

    // `readonly` without `read_only: true` is refused, in Docker's words.
    let src = sources[0].display().to_string();
    let bad = format!(
        "name: brec\nservices:\n  x:\n    image: busybox:e2e\n    volumes:\n      - type: bind\n        \
         source: {src}\n        target: /m\n        bind: {{recursive: readonly}}\n"
    );
    std::fs::write(h.stack.join("compose.yaml"), bad).expect("compose");
    let out = h.berth(&["up", "-d"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("requires 'ReadOnly' to be specified in conjunction"),
        "{text}"
    );
    h.ok(&["down", "-t", "1"]);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn mount_flags_and_docker_bind_options_choose_the_recursion() {
    host::require_tools();
    let h = Host::new("brecdk");
    h.busybox_image();
    // berth's own CLI.
    let src = source_with_submount(&h, "cli");
    let mount = format!(
        "type=bind,source={},target=/m,readonly,bind-recursive=writable",
        src.display()
    );
    let out = h.berth(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        "--mount",
        &mount,
        "busybox:e2e",
        "sh",
        "-c",
        PROBE,
    ]);
    let logs = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{logs}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(answers(&logs), ["sub-seen", "sub-rw", "top-ro"], "{logs}");

    // The docker CLI: BindOptions.NonRecursive, then ReadOnlyForceRecursive, reported back.
    let docker = Docker::new(&h);
    let dsrc = source_with_submount(&h, "docker");
    for (rec, want) in [
        ("disabled", ["sub-hidden", "sub-rw", "top-rw"]),
        ("readonly", ["sub-seen", "sub-ro", "top-ro"]),
    ] {
        // The docker CLI asks for the propagation Docker requires with `readonly`.
        let ro = if rec == "readonly" {
            ",readonly,bind-propagation=rprivate"
        } else {
            ""
        };
        let mount = format!(
            "type=bind,source={},target=/m{ro},bind-recursive={rec}",
            dsrc.display()
        );
        let name = format!("b-{rec}");
        docker.ok(&[
            "run",
            "-d",
            "--name",
            &name,
            "--network",
            "none",
            "--mount",
            &mount,
            "busybox:e2e",
            "sh",
            "-c",
            &format!("{PROBE}; exec sleep 600"),
        ]);
        let mut logs = String::new();
        for _ in 0..100 {
            logs = docker.ok(&["logs", &name]);
            if logs.contains("done") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        assert_eq!(answers(&logs), want, "{rec}: {logs}");
        let inspect: serde_json::Value =
            serde_json::from_str(&docker.ok(&["inspect", &name])).expect("inspect json");
        let opts = &inspect[0]["HostConfig"]["Mounts"][0]["BindOptions"];
        let key = if rec == "disabled" {
            "NonRecursive"
        } else {
            "ReadOnlyForceRecursive"
        };
        assert_eq!(opts[key], true, "{opts}");
        docker.ok(&["rm", "-f", &name]);
    }
    unmount(&src);
    unmount(&dsrc);
}
