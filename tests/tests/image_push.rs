//! `berth image push` to a Debian `docker-registry` of the test's own on loopback, read back
//! with skopeo: the registry knows the image by the digest berth printed, serves the same
//! manifest and layers, and a second push or a second tag uploads no blob. A built image
//! (whose COPY layer the store keeps as a directory) is pushed too, and so is an image
//! through berth's Docker API with the docker CLI.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};
use berth_tests::registry::{Registry, registry_digest};

/// The digest of `REF: digest: sha256:… size: N`, docker push's last line.
fn pushed_digest(out: &str, tag: &str) -> String {
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("{tag}: digest: sha256:")))
        .unwrap_or_else(|| panic!("no digest line for {tag}:\n{out}"));
    let digest = line
        .split_whitespace()
        .nth(2)
        .unwrap_or_else(|| panic!("{line}"));
    assert!(line.contains(" size: "), "{line}");
    digest.to_string()
}

#[test_with::root()]
#[test_with::executable(ip, nsenter, skopeo, curl, docker-registry, sha256sum)]
#[test]
fn image_push_reaches_a_registry_with_the_same_digest() {
    host::require_tools();
    let h = Host::new("push");
    h.busybox_image();
    let reg = Registry::start(&h);

    let name = format!("{}/t/busybox:1", reg.addr);
    h.ok(&["image", "tag", "busybox:e2e", &name]);
    let out = h.ok(&["image", "push", &name]);
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/t/busybox]",
            reg.addr
        )),
        "{out}"
    );
    assert!(out.contains(": Pushed"), "{out}");
    let digest = pushed_digest(&out, "1");
    assert_eq!(registry_digest(&h, &name), digest);

    // skopeo copies back the manifest berth stored, byte for byte, and layers that hash right.
    let copy = h.dir.path().join("copy");
    let out2 = h.sh(&format!(
        "skopeo copy --src-tls-verify=false docker://{name} dir:{}",
        copy.display()
    ));
    assert!(
        out2.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out2.stderr)
    );
    let manifest = std::fs::read(copy.join("manifest.json")).expect("copied manifest");
    let stored = std::fs::read(
        h.root
            .join("images/blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
    .expect("berth's manifest blob");
    assert_eq!(manifest, stored, "the registry serves berth's manifest");
    let m: serde_json::Value = serde_json::from_slice(&manifest).expect("manifest json");
    let layers = m["layers"].as_array().expect("layers");
    assert!(!layers.is_empty());
    for l in layers {
        let hex = l["digest"]
            .as_str()
            .expect("digest")
            .trim_start_matches("sha256:");
        let sum = h.sh(&format!("sha256sum {}", copy.join(hex).display()));
        assert!(
            String::from_utf8_lossy(&sum.stdout).starts_with(hex),
            "layer {hex}"
        );
    }

    // Again: every layer is there already.
    let again = h.ok(&["image", "push", &name]);
    assert!(again.contains(": Layer already exists"), "{again}");
    assert!(!again.contains(": Pushed"), "{again}");
    assert_eq!(pushed_digest(&again, "1"), digest);

    // A second tag of the same image uploads no blob either.
    let second = format!("{}/t/busybox:2", reg.addr);
    h.ok(&["image", "tag", "busybox:e2e", &second]);
    let out = h.ok(&["image", "push", &second]);
    assert!(!out.contains(": Pushed"), "{out}");
    assert_eq!(pushed_digest(&out, "2"), digest);
    assert_eq!(registry_digest(&h, &second), digest);

    // A built image: its COPY layer is kept as a directory and streamed as a tar.
    let ctx = h.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("hello.txt"), "hello from a pushed layer\n").expect("file");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nCOPY hello.txt /hello.txt\nCMD [\"cat\", \"/hello.txt\"]\n",
    )
    .expect("Dockerfile");
    let built = format!("{}/t/built:1", reg.addr);
    h.ok_within(
        300,
        &["image", "build", "-t", &built, &ctx.display().to_string()],
    );
    let out = h.ok(&["image", "push", &built]);
    assert!(out.contains(": Pushed"), "{out}");
    let bdigest = pushed_digest(&out, "1");
    assert_eq!(registry_digest(&h, &built), bdigest);
    let bcopy = h.dir.path().join("bcopy");
    let out2 = h.sh(&format!(
        "skopeo copy --src-tls-verify=false docker://{built} dir:{}",
        bcopy.display()
    ));
    assert!(
        out2.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out2.stderr)
    );

    // A missing image is a clear error.
    let bad = h.berth(&["image", "push", &format!("{}/t/nope:1", reg.addr)]);
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("no such image"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
    drop(reg);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, skopeo, curl, docker-registry)]
#[test]
fn docker_cli_pushes_through_berths_api() {
    host::require_tools();
    let h = Host::new("dkpush");
    h.busybox_image();
    let docker = Docker::new(&h);
    let reg = Registry::start(&h);

    let name = format!("{}/d/busybox:1", reg.addr);
    docker.ok(&["tag", "busybox:e2e", &name]);
    let out = docker.ok(&["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    let digest = pushed_digest(&out, "1");
    assert_eq!(registry_digest(&h, &name), digest);
    let again = docker.ok(&["push", &name]);
    assert!(again.contains("Layer already exists"), "{again}");
    let err = docker.fails(&["push", &format!("{}/d/nope:1", reg.addr)]);
    assert!(err.contains("does not exist locally"), "{err}");
    drop(reg);
}

#[test_with::root()]
#[test_with::executable(ip, nsenter, skopeo, curl, docker-registry)]
#[test]
fn compose_push_sends_built_images_and_mounts_across_repositories() {
    host::require_tools();
    let h = Host::new("cpush");
    h.busybox_image();
    let reg = Registry::start(&h);

    // `berth push` pushes the service that is built and names an image, and only that one.
    let ctx = h.stack.join("web");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox:e2e\nENV WEB=1\n").expect("Dockerfile");
    let web = format!("{}/c/web:1", reg.addr);
    std::fs::write(
        h.stack.join("compose.yaml"),
        format!(
            "services:\n  web:\n    build: ./web\n    image: {web}\n  db:\n    image: busybox:e2e\n"
        ),
    )
    .expect("compose");
    h.ok_within(300, &["build"]);
    let out = h.ok(&["push"]);
    assert!(out.contains(&format!("Pushing web: {web}")), "{out}");
    assert!(!out.contains("Pushing db"), "{out}");
    let digest = pushed_digest(&out, "1");
    assert_eq!(registry_digest(&h, &web), digest);
    let out = h.ok(&["push", "web"]);
    assert!(out.contains("Layer already exists"), "{out}");
    let bad = h.berth(&["push", "nope"]);
    assert!(!bad.status.success());

    // An image pulled from one repository is mounted, not uploaded, into another of the same
    // registry.
    let bb = format!("{}/c/bb:1", reg.addr);
    h.ok(&["image", "tag", "busybox:e2e", &bb]);
    h.ok(&["image", "push", &bb]);
    h.ok(&["image", "rm", &bb]);
    h.ok(&["image", "pull", &bb]);
    let other = format!("{}/c/other:1", reg.addr);
    h.ok(&["image", "tag", &bb, &other]);
    let out = h.ok(&["image", "push", &other]);
    assert!(out.contains(": Mounted from c/bb"), "{out}");
    assert!(!out.contains(": Pushed"), "{out}");
    assert_eq!(registry_digest(&h, &other), registry_digest(&h, &bb));

    // A registry that is gone is a clear error.
    drop(reg);
    let gone = h.berth(&["image", "push", &other]);
    assert!(!gone.status.success());
    let err = String::from_utf8_lossy(&gone.stderr);
    assert!(err.contains("cannot reach registry"), "{err}");
}

#[test_with::root()]
#[test_with::executable(ip, nsenter, skopeo, curl, docker-registry, python3)]
#[test]
fn push_uses_berth_login_credentials() {
    host::require_tools();
    let h = Host::new("apush");
    h.busybox_image();
    let reg = Registry::start_with_basic_auth(&h, "alice", "s3cret");
    let name = format!("{}/a/busybox:1", reg.addr);
    h.ok(&["image", "tag", "busybox:e2e", &name]);
    let config = h.dir.path().join("docker-config");
    let berth = |args: &str| {
        h.sh(&format!(
            "DOCKER_CONFIG={} {} --root {} --run {} {args}",
            config.display(),
            berth_tests::berth_bin().display(),
            h.root.display(),
            h.run.display()
        ))
    };

    // Without credentials the registry refuses, and berth says how to fix it.
    let out = berth(&format!("image push {name}"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("unauthorized") && err.contains("berth login"),
        "{err}"
    );

    let bad = berth(&format!("login -u alice -p wrong {}", reg.addr));
    assert!(!bad.status.success());
    let login = berth(&format!("login -u alice -p s3cret {}", reg.addr));
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    let out = berth(&format!("image push {name}"));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(": Pushed"), "{text}");
    let digest = pushed_digest(&text, "1");
    let inspect = h.sh(&format!(
        "skopeo inspect --tls-verify=false --creds alice:s3cret --format '{{{{.Digest}}}}' docker://{name}"
    ));
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), digest);
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, skopeo, curl, docker-registry, python3)]
#[test]
fn docker_push_passes_the_clis_credentials() {
    host::require_tools();
    let h = Host::new("dkapush");
    h.busybox_image();
    let docker = Docker::new(&h);
    let reg = Registry::start_with_basic_auth(&h, "alice", "s3cret");
    let name = format!("{}/d/busybox:1", reg.addr);
    docker.ok(&["tag", "busybox:e2e", &name]);
    let err = docker.fails(&["push", &name]);
    assert!(err.contains("unauthorized"), "{err}");

    // The CLI sends what its config holds for the registry as X-Registry-Auth.
    std::fs::write(
        docker.config_dir().join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"YWxpY2U6czNjcmV0"}}}}}}"#,
            reg.addr
        ),
    )
    .expect("docker config");
    let out = docker.ok(&["push", &name]);
    assert!(out.contains("Pushed"), "{out}");
    let digest = pushed_digest(&out, "1");
    let inspect = h.sh(&format!(
        "skopeo inspect --tls-verify=false --creds alice:s3cret --format '{{{{.Digest}}}}' docker://{name}"
    ));
    assert_eq!(String::from_utf8_lossy(&inspect.stdout).trim(), digest);
}

/// A TCP proxy (python3, in the host's namespace) from `listen` to `target` that cuts a
/// connection once its client has sent more than `limit` bytes: a registry that drops the
/// connection in the middle of a blob.
const CUTTING_PROXY: &str = r#"
import socket, sys, threading
listen, target, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
def addr(s):
    h, p = s.rsplit(":", 1)
    return (h, int(p))
def serve(c):
    u = socket.create_connection(addr(target))
    def back():
        try:
            while True:
                b = u.recv(65536)
                if not b:
                    break
                c.sendall(b)
        except OSError:
            pass
        finally:
            try: c.shutdown(socket.SHUT_RDWR)
            except OSError: pass
    threading.Thread(target=back, daemon=True).start()
    sent = 0
    try:
        while True:
            b = c.recv(65536)
            if not b:
                break
            sent += len(b)
            if sent > limit:
                break
            u.sendall(b)
    except OSError:
        pass
    for s in (c, u):
        try: s.shutdown(socket.SHUT_RDWR)
        except OSError: pass
        s.close()
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(addr(listen))
l.listen(16)
print("ready", flush=True)
while True:
    c, _ = l.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"#;

#[test_with::root()]
#[test_with::executable(ip, nsenter, skopeo, curl, docker-registry, python3)]
#[test]
fn a_connection_cut_mid_blob_leaves_no_manifest() {
    host::require_tools();
    let h = Host::new("cutpush");
    h.busybox_image();
    let reg = Registry::start(&h);
    let script = h.dir.path().join("proxy.py");
    std::fs::write(&script, CUTTING_PROXY).expect("proxy script");
    let proxy_addr = "127.0.0.1:5001";
    let mut proxy = std::process::Command::new("nsenter")
        .arg(format!("--net=/run/netns/{}", h.ns))
        .arg("python3")
        .arg(&script)
        .args([proxy_addr, &reg.addr, "200000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start proxy");
    let mut ready = String::new();
    if let Some(out) = proxy.stdout.as_mut() {
        use std::io::BufRead;
        let _ = std::io::BufReader::new(out).read_line(&mut ready);
    }
    assert_eq!(ready.trim(), "ready");

    let cut = format!("{proxy_addr}/t/cut:1");
    h.ok(&["image", "tag", "busybox:e2e", &cut]);
    let out = h.berth(&["image", "push", &cut]);
    let _ = proxy.kill();
    let _ = proxy.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("broke off") && err.contains("no manifest was pushed"),
        "{err}"
    );
    // The registry has no manifest for it: nothing half-pushed is reachable by the tag.
    let inspect = h.sh(&format!(
        "skopeo inspect --tls-verify=false docker://{}/t/cut:1",
        reg.addr
    ));
    assert!(!inspect.status.success(), "a manifest was pushed");
    // Nor does berth take the image for pushed there (no repo digest recorded).
    let local = h.ok(&["image", "inspect", &cut]);
    assert!(!local.contains("t/cut@sha256:"), "{local}");
    // Straight to the registry the same image pushes whole.
    let direct = format!("{}/t/cut:1", reg.addr);
    h.ok(&["image", "tag", "busybox:e2e", &direct]);
    let out = h.ok(&["image", "push", &direct]);
    assert_eq!(registry_digest(&h, &direct), pushed_digest(&out, "1"));
    // Every blob the registry serves for it is whole: skopeo checks each digest as it copies.
    let oci = h.dir.path().join("cut-copy");
    let copy = h.sh(&format!(
        "skopeo copy --src-tls-verify=false docker://{direct} oci:{}:c",
        oci.display()
    ));
    assert!(copy.status.success(), "{copy:?}");
}
