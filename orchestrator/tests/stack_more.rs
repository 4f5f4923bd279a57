//! The rest of the stack verbs, end to end as root with the real binary, runtime and netd:
//! attached `up` that aborts on a container's exit, `down --rmi`, `system prune`, `create`,
//! `pull`, `stats`, `cp`, `events`, `run -v/-p`, `pause`/`unpause`, and the dependency and
//! isolation guarantees of issue 6. The harness (a netns per test, its own --root/--run,
//! leak check) is in `common/`.

mod common;

use common::{Host, runnable};

fn all_ids(host: &Host) -> Vec<String> {
    host.ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn down_clean(host: &Host, ids: &[String]) {
    host.ok(&["down", "-t", "1"]);
    assert!(host.ps().is_empty());
    let leaks = host.leaks(ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

const ABORT: &str = r#"
name: ab
x-quick: &quick
  image: busybox:e2e
  init: true
  stop_grace_period: 1s
services:
  server:
    <<: *quick
    command: ["sh", "-c", "echo server-up; exec sleep 3600"]
  quiet:
    <<: *quick
    command: ["sh", "-c", "echo should-not-show; exec sleep 3600"]
  job:
    <<: *quick
    command: ["sh", "-c", "echo job-done; sleep 1; exit 3"]
"#;

#[test]
fn up_aborts_on_container_exit_with_the_chosen_exit_code_and_output() {
    if !runnable() {
        return;
    }
    let host = Host::new("abort");
    host.busybox_image();
    std::fs::write(host.stack.join("compose.yaml"), ABORT).expect("compose");

    // --exit-code-from implies the abort; --attach shows only the job's output.
    let out = host.berth(&["up", "--exit-code-from", "job", "--attach", "job"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("job-1  | job-done"), "{stdout}");
    assert!(stdout.contains("job-1 exited with code 3"), "{stdout}");
    assert!(
        !stdout.contains("server-up") && !stdout.contains("should-not-show"),
        "{stdout}"
    );
    assert!(stderr.contains("Aborting on container exit"), "{stderr}");
    let ps = host.ps();
    assert_eq!(ps.len(), 3, "{ps:?}");
    assert!(
        ps.iter().all(|r| r["status"] != "running"),
        "the job's exit stopped every container: {ps:?}"
    );

    // --abort-on-container-exit alone: the first exit's code; --no-attach hides one service.
    let out = host.berth(&["up", "--abort-on-container-exit", "--no-attach", "quiet"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("server-1  | server-up"), "{stdout}");
    assert!(!stdout.contains("should-not-show"), "{stdout}");

    // --exit-code-from a service that was stopped by the abort: its stop status (SIGTERM).
    let out = host.berth(&["up", "--exit-code-from", "server"]);
    let (stdout, stderr) = text(&out);
    let code = out.status.code();
    assert!(
        code == Some(143) || code == Some(137),
        "{code:?}\n{stdout}\n{stderr}"
    );

    // Without abort, attached `up` of a job ends by itself once every container exited.
    let out = host.berth(&["up", "job"]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("job-1 exited with code 3"), "{stdout}");

    // Misuse is refused by name.
    let out = host.berth(&["up", "-d", "--abort-on-container-exit"]);
    assert!(!out.status.success());
    let out = host.berth(&["up", "--exit-code-from", "nope"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("nope"),
        "{:?}",
        text(&out)
    );

    let ids = all_ids(&host);
    down_clean(&host, &ids);
}

fn image_names(host: &Host) -> String {
    host.ok(&["image", "ls"])
}

#[test]
fn down_rmi_and_system_prune_remove_what_they_should() {
    if !runnable() {
        return;
    }
    let host = Host::new("prune");
    host.busybox_image();
    let app = host.stack.join("app");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(
        app.join("Dockerfile"),
        "FROM busybox:e2e\nRUN echo built > /built.txt\n",
    )
    .expect("Dockerfile");
    let stack = r#"
name: rmi
x-quick: &quick
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  app:
    <<: *quick
    build: ./app
  base:
    <<: *quick
    image: busybox:e2e
"#;
    std::fs::write(host.stack.join("compose.yaml"), stack).expect("compose");
    host.ok(&["up", "-d"]);
    assert!(image_names(&host).contains("rmi-app"));

    // local: only the image berth built under the project's name.
    let ids = all_ids(&host);
    let out = host.ok(&["down", "--rmi", "local"]);
    assert!(out.contains("rmi-app"), "{out}");
    let images = image_names(&host);
    assert!(
        !images.contains("rmi-app") && images.contains("busybox"),
        "{images}"
    );
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
    assert!(!host.berth(&["down", "--rmi", "some"]).status.success());

    // system prune: stopped containers, the network left without endpoints, the build
    // cache; the tagged busybox image stays without -a.
    host.ok(&["up", "-d"]);
    let ids = all_ids(&host);
    host.ok(&["stop", "-t", "1"]);
    let out = host.ok(&["system", "prune", "-f"]);
    for id in &ids {
        assert!(out.contains(id.as_str()), "{id} not pruned:\n{out}");
    }
    assert!(out.contains("Deleted Networks:\nrmi_default"), "{out}");
    assert!(out.contains("Total reclaimed space:"), "{out}");
    assert!(!out.contains("Deleted build cache entries: 0"), "{out}");
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "prune left: {leaks:#?}");
    let images = image_names(&host);
    assert!(images.contains("busybox"), "{images}");

    // -a: every image no container uses; a running container keeps its image.
    std::fs::write(
        host.stack.join("compose.yaml"),
        stack.replace("    build: ./app\n", "    image: busybox:e2e\n"),
    )
    .expect("compose");
    host.ok(&["up", "-d", "base"]);
    let out = host.ok(&["system", "prune", "-a", "-f", "--volumes"]);
    assert!(!out.contains("Deleted Containers"), "{out}");
    assert!(image_names(&host).contains("busybox"), "in use by base");
    let ids = all_ids(&host);
    down_clean(&host, &ids);
    let out = host.ok(&["system", "prune", "-a", "-f"]);
    assert!(
        out.contains("untagged: busybox:e2e") || out.contains("busybox"),
        "{out}"
    );
    assert!(!image_names(&host).contains("busybox"));
}
