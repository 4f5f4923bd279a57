//! What a build asks of its RUN steps beyond the Dockerfile, observed inside the steps:
//! Compose's `build.extra_hosts`, `build.network`, `build.shm_size`, `build.ulimits`,
//! `build.privileged`, `build.tags` and `build.cache_from` through `berth build`, and the
//! same options as `berth image build` flags. Each RUN step writes what it saw into the image,
//! read back with `container run`.

use std::fs;

use berth_tests::host::{self, Host};

/// What a RUN step saw: hosts, interfaces, /dev/shm, the open-files limit, capabilities and
/// a stamp that changes whenever the step runs again.
const PROBE: &str = "FROM busybox:e2e\n\
    RUN cat /etc/hosts > /hosts; ls /sys/class/net > /nets; grep /dev/shm /proc/mounts > /shm; \
    ulimit -n > /nofile; grep CapEff /proc/self/status > /caps\n\
    RUN cat /proc/sys/kernel/random/uuid > /stamp\n";

/// The content of `path` in `image`.
fn read(h: &Host, image: &str, path: &str) -> String {
    h.ok(&[
        "container",
        "run",
        "--rm",
        "--network",
        "none",
        image,
        "cat",
        path,
    ])
}

#[test_with::root()]
#[test]
fn compose_build_keys_shape_the_run_steps() {
    host::require_tools();
    let h = Host::new("bkeys");
    h.busybox_image();
    fs::write(h.stack.join("Dockerfile"), PROBE).expect("Dockerfile");
    let compose = |extra: &str| {
        fs::write(
            h.stack.join("compose.yaml"),
            format!(
                "name: bkeys\nservices:\n  app:\n    build:\n      context: .\n{extra}    \
                 command: [\"true\"]\n  plain:\n    build: .\n    image: plain:1\n    command: [\"true\"]\n"
            ),
        )
        .expect("compose.yaml")
    };
    compose(
        "      extra_hosts:\n        db.test: 10.1.2.3\n      network: none\n      \
         shm_size: 16m\n      ulimits:\n        nofile: {soft: 123, hard: 456}\n      \
         privileged: true\n      tags: [\"bkeys-extra:2\"]\n",
    );
    h.ok(&["build"]);
    let img = "bkeys-app";
    assert!(
        read(&h, img, "/hosts").contains("10.1.2.3\tdb.test"),
        "build.extra_hosts"
    );
    assert_eq!(read(&h, img, "/nets"), "lo\n", "build.network: none");
    assert!(
        read(&h, img, "/shm").contains("size=16384k"),
        "build.shm_size"
    );
    assert_eq!(read(&h, img, "/nofile"), "123\n", "build.ulimits");
    // The service without the keys: default hosts, the build network, Docker's defaults.
    let plain = "plain:1";
    assert!(!read(&h, plain, "/hosts").contains("db.test"));
    assert_eq!(read(&h, plain, "/nets"), "eth0\nlo\n");
    assert!(read(&h, plain, "/shm").contains("size=65536k"));
    // build.privileged: every capability, more than a plain step has.
    let caps = |image: &str| {
        let line = read(&h, image, "/caps");
        let hex = line.split_whitespace().last().unwrap_or("0").to_string();
        u64::from_str_radix(&hex, 16).unwrap_or(0).count_ones()
    };
    assert!(
        caps(img) > caps(plain),
        "build.privileged: {} vs {}",
        caps(img),
        caps(plain)
    );
    // build.tags: the same image under its extra tag.
    let id = |r: &str| {
        let v: serde_json::Value =
            serde_json::from_str(&h.ok(&["image", "inspect", r])).expect("inspect json");
        let v = if v.is_array() { v[0].clone() } else { v };
        v["Id"]
            .as_str()
            .or(v["id"].as_str())
            .unwrap_or("")
            .to_string()
    };
    assert!(!id(img).is_empty());
    assert_eq!(id("bkeys-extra:2"), id(img), "build.tags");

    // build.cache_from: with the build cache gone, the service's own image serves as cache
    // (the stamp step does not run again).
    let stamp = read(&h, img, "/stamp");
    h.ok(&["builder", "prune"]);
    compose(
        "      extra_hosts:\n        db.test: 10.1.2.3\n      network: none\n      \
         shm_size: 16m\n      ulimits:\n        nofile: {soft: 123, hard: 456}\n      \
         privileged: true\n      cache_from: [\"bkeys-extra:2\"]\n",
    );
    h.ok(&["build", "app"]);
    assert_eq!(read(&h, img, "/stamp"), stamp, "build.cache_from");

    // A network RUN steps cannot have is refused by name.
    compose("      network: some-net\n");
    let out = h.berth(&["build", "app"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("build.network"), "{err}");
}

#[test_with::root()]
#[test]
fn image_build_flags_shape_the_run_steps() {
    host::require_tools();
    let h = Host::new("bflags");
    h.busybox_image();
    fs::write(h.stack.join("Dockerfile"), PROBE).expect("Dockerfile");
    h.ok(&[
        "image",
        "build",
        "--add-host",
        "db.test:10.1.2.3",
        "--network",
        "none",
        "--shm-size",
        "16m",
        "--ulimit",
        "nofile=123:456",
        "-t",
        "flags:1",
        ".",
    ]);
    assert!(read(&h, "flags:1", "/hosts").contains("10.1.2.3\tdb.test"));
    assert_eq!(read(&h, "flags:1", "/nets"), "lo\n");
    assert!(read(&h, "flags:1", "/shm").contains("size=16384k"));
    assert_eq!(read(&h, "flags:1", "/nofile"), "123\n");
    let stamp = read(&h, "flags:1", "/stamp");
    h.ok(&["builder", "prune"]);
    h.ok(&[
        "image",
        "build",
        "--add-host",
        "db.test:10.1.2.3",
        "--network",
        "none",
        "--cache-from",
        "flags:1",
        "-t",
        "flags:2",
        ".",
    ]);
    assert_eq!(read(&h, "flags:2", "/stamp"), stamp, "--cache-from");
    let out = h.berth(&["image", "build", "--add-host", "gw:host-gateway", "."]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("host-gateway"));
}

/// `os/architecture` of an image, as `image inspect` reports it.
fn platform_of(h: &Host, image: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&h.ok(&["image", "inspect", image])).expect("inspect json");
    let v = if v.is_array() { v[0].clone() } else { v };
    format!(
        "{}/{}",
        v["Os"].as_str().unwrap_or_default(),
        v["Architecture"].as_str().unwrap_or_default()
    )
}

/// `build.platforms` naming the host's platform alone builds that image, unwarned; a list
/// naming another platform is warned by key and the host's image is still what is built.
#[test_with::root()]
#[test]
fn build_platforms_of_the_host_build_it_and_others_are_warned() {
    host::require_tools();
    let h = Host::new("bplat");
    h.busybox_image();
    fs::write(
        h.stack.join("Dockerfile"),
        "FROM busybox:e2e\nRUN echo built > /built\n",
    )
    .expect("Dockerfile");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let other = if arch == "arm64" { "amd64" } else { "arm64" };
    let compose = |platforms: &str| {
        fs::write(
            h.stack.join("compose.yaml"),
            format!(
                "name: bplat\nservices:\n  app:\n    build:\n      context: .\n      \
                 platforms: [{platforms}]\n    command: [\"true\"]\n"
            ),
        )
        .expect("compose.yaml")
    };
    compose(&format!("linux/{arch}"));
    let out = h.berth(&["build"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("platforms"),
        "applied, not warned: {stderr}"
    );
    assert_eq!(read(&h, "bplat-app", "/built"), "built\n");
    assert_eq!(platform_of(&h, "bplat-app"), format!("linux/{arch}"));

    compose(&format!("linux/{arch}, linux/{other}"));
    let out = h.berth(&["build", "--no-cache"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("services.app.build.platforms"),
        "warned by name: {stderr}"
    );
    assert_eq!(platform_of(&h, "bplat-app"), format!("linux/{arch}"));
}
