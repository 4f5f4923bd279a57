//! `berth convert kubernetes --registry R [--push]` against a Debian `docker-registry` of the
//! test's own on loopback, read back with skopeo: the built image is pushed under R and every
//! service running it (the one that builds it and a worker on the same image) is pinned by the
//! digest the registry knows; an image pulled from a registry is pinned by the digest the
//! store recorded at the pull; one whose digest is unknown is named in a warning. A second
//! conversion without `--push` pins the built image by the digest recorded at the push.

use berth_tests::host::{self, Host};
use berth_tests::registry::{Registry, registry_digest};

#[test_with::root()]
#[test_with::executable(ip, nsenter, skopeo, curl, docker-registry)]
#[test]
fn convert_kubernetes_pushes_and_pins_images_by_digest() {
    host::require_tools();
    let h = Host::new("k8spin");
    h.busybox_image();
    let reg = Registry::start(&h);

    // An image the store pulled from a registry: its digest there is recorded.
    let lib = format!("{}/lib/bb:1", reg.addr);
    h.ok(&["image", "tag", "busybox:e2e", &lib]);
    h.ok(&["image", "push", &lib]);
    h.ok(&["image", "rm", &lib]);
    h.ok(&["image", "pull", &lib]);
    let lib_pin = format!("{}/lib/bb:1@{}", reg.addr, registry_digest(&h, &lib));

    let ctx = h.stack.join("web");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox:e2e\nENV WEB=1\n").expect("Dockerfile");
    std::fs::write(
        h.stack.join("compose.yaml"),
        format!(
            "services:\n  web:\n    build: ./web\n    image: example/web:1\n  worker:\n    \
             image: example/web:1\n  db:\n    image: {lib}\n  cache:\n    image: busybox:e2e\n"
        ),
    )
    .expect("compose");
    let team = format!("{}/team", reg.addr);
    let out = h.berth_within(
        300,
        &["convert", "kubernetes", "--registry", &team, "--push"],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let pushed = format!("{team}/example/web:1");
    let web_pin = format!("{pushed}@{}", registry_digest(&h, &pushed));
    assert_eq!(
        stdout.matches(&web_pin).count(),
        2,
        "web and worker: {stdout}"
    );
    assert_eq!(stdout.matches(&lib_pin).count(), 1, "db: {stdout}");
    assert!(
        stderr.contains("service \"cache\": image: busybox:e2e is not pinned"),
        "{stderr}"
    );
    assert!(!stderr.contains("service \"web\": image:"), "{stderr}");

    // Without a push, the digest recorded by the push pins the built image.
    let out = h.ok(&["convert", "kubernetes", "--registry", &team]);
    assert_eq!(out.matches(&web_pin).count(), 2, "{out}");
    assert_eq!(out.matches(&lib_pin).count(), 1, "{out}");

    // --push needs --registry: refused before anything is built or pushed.
    let bad = h.berth(&["convert", "kubernetes", "--push"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--registry"));
}
