//! `berth watch` end to end, as root: sync (initial, edits, new directories, deletions,
//! ignores), the symlink-escape defence, sync+restart and sync+exec, and Ctrl-C ending the
//! watch in the CLI and in the daemon.

use std::path::Path;
use std::time::{Duration, Instant};

use berth_tests::host::{self, Host};

const STACK: &str = r#"
name: wt
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    # The harness's busybox has few applets; the sync's deletions need rm.
    command: ["sh", "-c", "busybox --install -s /bin; exec sleep 3600"]
    develop:
      watch:
        - action: sync
          path: ./src
          target: /app
          ignore: ["*.tmp"]
          initial_sync: true
        - action: sync+restart
          path: ./conf
          target: /etc/conf
        - action: sync+exec
          path: ./hooks
          # Directories above the target are made.
          target: /hooks/deep/er
          exec:
            command: ["sh", "-c", "cat /hooks/deep/er/* > /tmp/hooked"]
"#;

/// What `cat PATH` prints in the container, `None` when it fails.
fn read_in(host: &Host, path: &str) -> Option<String> {
    let out = host.berth(&["container", "exec", "wt-app-1", "cat", path]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// Polls `f` every 50 ms for at most `secs` seconds.
fn until(secs: u64, what: &str, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not within {secs} s: {what}");
}

/// Whether one of the daemon's inotify instances watches `dir` (its inode, as
/// /proc/PID/fdinfo lists each watch): the watch's own, told apart from the daemon's other
/// inotify users (its record cache follows the containers directory).
fn daemon_watches(run: &Path, dir: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(ino) = std::fs::metadata(dir).map(|m| m.ino()) else {
        return false;
    };
    let wanted = format!(" ino:{ino:x} ");
    let pid = std::fs::read_to_string(run.join("berth.pid")).unwrap_or_default();
    let pid = pid.trim();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            std::fs::read_link(e.path())
                .map(|l| l.to_string_lossy().contains("inotify"))
                .unwrap_or(false)
        })
        .any(|e| {
            let info = format!("/proc/{pid}/fdinfo/{}", e.file_name().to_string_lossy());
            std::fs::read_to_string(info).is_ok_and(|t| {
                t.lines()
                    .any(|l| l.starts_with("inotify ") && l.contains(&wanted))
            })
        })
}

/// The start time of the container's init (field 22 of /proc/1/stat): a restart changes it.
fn init_start(host: &Host) -> String {
    read_in(host, "/proc/1/stat")
        .and_then(|s| {
            s.rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().nth(19).map(String::from))
        })
        .unwrap_or_default()
}

#[test_with::root()]
#[test]
fn watch_syncs_restarts_execs_and_ends_with_ctrl_c() {
    host::require_tools();
    let host = Host::new("watch");
    host.busybox_image();
    let s = &host.stack;
    std::fs::write(s.join("compose.yaml"), STACK).expect("compose");
    for d in ["src", "conf", "hooks"] {
        std::fs::create_dir_all(s.join(d)).expect("dir");
    }
    std::fs::write(s.join("src/a.txt"), "one\n").expect("a");
    host.ok(&["up", "-d"]);
    until(30, "the container runs with its applets", || {
        read_in(&host, "/bin/rm").is_some()
    });
    assert!(
        !daemon_watches(&host.run, &s.join("src")),
        "nothing watches src yet"
    );

    let watch = host.berth_for(300, &["watch", "--no-up"]);

    // initial_sync: what was there before the watch is in the container.
    until(30, "initial sync of a.txt", || {
        read_in(&host, "/app/a.txt").as_deref() == Some("one\n")
    });
    assert!(
        daemon_watches(&host.run, &s.join("src")),
        "the daemon watches"
    );

    // An edit, a new directory with a file, an ignored file.
    std::fs::write(s.join("src/a.txt"), "uno\n").expect("a");
    std::fs::create_dir_all(s.join("src/b")).expect("b");
    std::fs::write(s.join("src/b/c.txt"), "two\n").expect("c");
    std::fs::write(s.join("src/x.tmp"), "no\n").expect("tmp");
    until(15, "edit and new file synced", || {
        read_in(&host, "/app/a.txt").as_deref() == Some("uno\n")
            && read_in(&host, "/app/b/c.txt").as_deref() == Some("two\n")
    });
    assert_eq!(read_in(&host, "/app/x.tmp"), None, "ignored file synced");

    // A deletion.
    std::fs::remove_file(s.join("src/a.txt")).expect("rm a");
    until(15, "deletion synced", || {
        read_in(&host, "/app/a.txt").is_none()
    });

    // A symlink inside the container naming a host path: the sync must write inside the
    // container, never through the link onto the host.
    let outside = host.dir.path().join("outside");
    std::fs::create_dir_all(&outside).expect("outside dir");
    std::fs::write(outside.join("f.txt"), "host file\n").expect("host file");
    let o = outside.display().to_string();
    host.ok(&["container", "exec", "wt-app-1", "ln", "-s", &o, "/app/evil"]);
    host.ok(&[
        "container",
        "exec",
        "wt-app-1",
        "ln",
        "-s",
        &format!("{o}/f.txt"),
        "/app/f.txt",
    ]);
    std::fs::create_dir_all(s.join("src/evil")).expect("evil dir");
    std::fs::write(s.join("src/evil/pwn.txt"), "pwned\n").expect("pwn");
    std::fs::write(s.join("src/f.txt"), "pwned\n").expect("f");
    std::fs::write(s.join("src/marker.txt"), "m\n").expect("marker");
    until(15, "the batch after the attack synced", || {
        read_in(&host, "/app/marker.txt").is_some()
    });
    assert!(
        !outside.join("pwn.txt").exists(),
        "a sync wrote through a link"
    );
    assert_eq!(
        std::fs::read_to_string(outside.join("f.txt")).expect("host file"),
        "host file\n",
        "a sync overwrote a host file through a link"
    );

    // sync+restart: the file arrives and the container's init is a new process.
    let started = init_start(&host);
    assert!(!started.is_empty());
    std::fs::write(s.join("conf/app.conf"), "port=1\n").expect("conf");
    until(60, "restarted with the new config", || {
        let now = init_start(&host);
        !now.is_empty()
            && now != started
            && read_in(&host, "/etc/conf/app.conf").as_deref() == Some("port=1\n")
    });

    // sync+exec: the command ran after the sync.
    std::fs::write(s.join("hooks/h1"), "hooked\n").expect("hook");
    until(30, "the exec command ran", || {
        read_in(&host, "/tmp/hooked").as_deref() == Some("hooked\n")
    });

    // Ctrl-C: the CLI exits 0 and the daemon drops its watcher.
    let pid = watch.id().to_string();
    assert!(host.sh(&format!("kill -INT {pid}")).status.success());
    let out = watch.wait_with_output().expect("watch output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("watch said:\n{stdout}\n{stderr}");
    assert!(out.status.success(), "watch: {stdout}\n{stderr}");
    assert!(
        stdout.contains("Syncing service \"app\" after"),
        "{stdout}\n{stderr}"
    );
    assert!(stdout.contains("Restarted service \"app\""), "{stdout}");
    until(15, "the daemon dropped its watcher", || {
        !daemon_watches(&host.run, &s.join("src"))
    });

    host.ok(&["down"]);
}

#[test_with::root()]
#[test]
fn watch_refuses_a_path_outside_the_project() {
    host::require_tools();
    let host = Host::new("watchbad");
    std::fs::write(
        host.stack.join("compose.yaml"),
        "name: wb\nservices:\n  app:\n    image: busybox:e2e\n    develop:\n      watch:\n        - {action: sync, path: /etc, target: /app}\n",
    )
    .expect("compose");
    let out = host.berth(&["watch", "--no-up"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("outside the project directory"), "{err}");
}

#[test_with::root()]
#[test]
fn watch_rebuild_rebuilds_the_image_and_recreates_the_service() {
    host::require_tools();
    let host = Host::new("watchrb");
    host.busybox_image();
    let s = &host.stack;
    std::fs::create_dir_all(s.join("ctx")).expect("ctx");
    std::fs::write(
        s.join("ctx/Dockerfile"),
        "FROM busybox:e2e\nCOPY ver /ver\nCMD [\"sleep\", \"3600\"]\n",
    )
    .expect("Dockerfile");
    std::fs::write(s.join("ctx/ver"), "1\n").expect("ver");
    std::fs::write(
        s.join("compose.yaml"),
        "name: wr\nservices:\n  app:\n    build: ./ctx\n    init: true\n    stop_grace_period: 1s\n    develop:\n      watch:\n        - {action: rebuild, path: ./ctx}\n",
    )
    .expect("compose");
    // Without --no-up: watch brings the project up (building the image) first.
    let watch = host.berth_for(300, &["watch"]);
    let read = |p: &str| {
        let out = host.berth(&["container", "exec", "wr-app-1", "cat", p]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    };
    until(120, "the first image runs", || {
        read("/ver").as_deref() == Some("1\n")
    });
    std::fs::write(s.join("ctx/ver"), "2\n").expect("ver");
    until(120, "the rebuilt image runs", || {
        read("/ver").as_deref() == Some("2\n")
    });
    assert!(
        host.sh(&format!("kill -INT {}", watch.id()))
            .status
            .success()
    );
    let out = watch.wait_with_output().expect("watch output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("Rebuilt and recreated service \"app\""),
        "{stdout}"
    );
    host.ok(&["down"]);
}

#[test_with::root()]
#[test]
fn up_watch_attaches_and_syncs() {
    host::require_tools();
    let host = Host::new("upwatch");
    host.busybox_image();
    let s = &host.stack;
    std::fs::create_dir_all(s.join("src")).expect("src");
    std::fs::write(
        s.join("compose.yaml"),
        "name: uw\nservices:\n  app:\n    image: busybox:e2e\n    init: true\n    stop_grace_period: 1s\n    command: [\"sh\", \"-c\", \"echo attached-output; exec sleep 3600\"]\n    develop:\n      watch:\n        - {action: sync, path: ./src, target: /app}\n",
    )
    .expect("compose");
    let up = host.berth_for(300, &["up", "--watch"]);
    let read = |p: &str| {
        let out = host.berth(&["container", "exec", "uw-app-1", "cat", p]);
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).to_string())
    };
    until(60, "the service runs", || read("/proc/1/stat").is_some());
    // The watch starts once the project is up; write until a sync shows the file.
    let mut n = 0;
    until(30, "a change synced under up --watch", || {
        n += 1;
        std::fs::write(s.join("src/w.txt"), format!("{n}\n")).expect("write");
        std::thread::sleep(Duration::from_millis(300));
        read("/app/w.txt").is_some()
    });
    assert!(host.sh(&format!("kill -INT {}", up.id())).status.success());
    let out = up.wait_with_output().expect("up output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("attached-output"), "{text}");
    assert!(text.contains("Syncing service \"app\""), "{text}");
    host.ok(&["down"]);
}
