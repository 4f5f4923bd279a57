//! The Docker Engine API's system routes, with the real docker CLI as the oracle: `docker
//! version`, `docker info`, `docker system df` and `docker events` against a berth instance
//! of the test's own, and Docker's errors for what is wrong or not served yet.
//!
//! Every docker command gets `DOCKER_HOST` set to the instance's socket and `DOCKER_CONFIG`
//! to a directory of the test's, so no test ever reaches another Docker daemon or reads the
//! user's docker configuration. The docker CLI comes from Debian's `docker.io` package
//! (scripts/deps.sh installs it for its CLI only); without it the tests show as ignored.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One raw HTTP exchange on the socket (the connection closes after it): the whole answer.
fn raw(sock: &Path, request: &[u8]) -> String {
    let mut s = UnixStream::connect(sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn get(sock: &Path, path: &str) -> String {
    raw(
        sock,
        format!("GET {path} HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n").as_bytes(),
    )
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_cli_sees_berth_as_its_engine() {
    host::require_tools();
    let h = Host::new("dkapi");
    h.busybox_image();
    let docker = Docker::new(&h);

    // The socket is Docker's: root's, 0660.
    let meta = std::fs::metadata(&docker.sock).expect("docker.sock");
    assert_eq!(meta.permissions().mode() & 0o777, 0o660, "docker.sock mode");
    assert_eq!(meta.uid(), 0, "docker.sock owner");

    let v = docker.ok(&[
        "version",
        "--format",
        "{{.Server.Platform.Name}} {{.Server.Version}} {{.Server.APIVersion}} {{.Server.MinAPIVersion}} {{.Server.Os}}",
    ]);
    assert_eq!(
        v.trim(),
        format!("berth {} 1.51 1.24 linux", env!("CARGO_PKG_VERSION"))
    );
    let text = docker.ok(&["version"]);
    assert!(text.contains("Server: berth"), "{text}");

    let info = docker.ok(&["info"]);
    for line in [
        "Containers: 0",
        "Running: 0",
        "Images: 1",
        "Storage Driver: overlayfs",
        "Cgroup Driver: cgroupfs",
        "Logging Driver: json-file",
        "OSType: linux",
    ] {
        assert!(info.contains(line), "docker info lacks {line:?}:\n{info}");
    }
    assert!(
        info.contains(&format!("Docker Root Dir: {}", h.root.display())),
        "{info}"
    );
    let facts = docker.ok(&[
        "info",
        "--format",
        "{{.KernelVersion}}|{{.NCPU}}|{{.MemTotal}}|{{.CgroupVersion}}|{{.ServerVersion}}",
    ]);
    let f: Vec<&str> = facts.trim().split('|').collect();
    let uname = Command::new("uname").arg("-r").output().expect("uname");
    assert_eq!(f[0], String::from_utf8_lossy(&uname.stdout).trim());
    assert!(f[1].parse::<u32>().is_ok_and(|n| n >= 1), "{facts}");
    assert!(f[2].parse::<u64>().is_ok_and(|n| n > 0), "{facts}");
    assert!(["1", "2"].contains(&f[3]), "{facts}");
    assert_eq!(f[4], env!("CARGO_PKG_VERSION"));

    // The container watcher looks at the containers (every 200 ms) once a Docker client
    // came; give it its first look before the container appears, with room for a busy host.
    let t0 = now_secs();
    std::thread::sleep(Duration::from_secs(2));
    let id = h.ok(&[
        "container",
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "none",
        "--label",
        "tier=front",
        "busybox:e2e",
        "sleep",
        "300",
    ]);
    let id = id.trim().lines().last().unwrap_or("").to_string();

    let info = docker.ok(&["info"]);
    assert!(info.contains("Containers: 1"), "{info}");
    assert!(info.contains("Running: 1"), "{info}");
    let counts = docker.ok(&[
        "info",
        "--format",
        "{{.Containers}} {{.ContainersRunning}} {{.ContainersPaused}} {{.ContainersStopped}}",
    ]);
    assert_eq!(counts.trim(), "1 1 0 0");

    h.ok(&["volume", "create", "keep"]);
    let df = docker.ok(&[
        "system",
        "df",
        "--format",
        "{{.Type}} {{.TotalCount}} {{.Active}}",
    ]);
    assert!(df.contains("Images 1 1"), "{df}");
    assert!(df.contains("Containers 1 1"), "{df}");
    assert!(df.contains("Local Volumes 1 0"), "{df}");
    let dfv = docker.ok(&["system", "df", "-v"]);
    assert!(dfv.contains("busybox"), "{dfv}");
    assert!(dfv.contains("web"), "{dfv}");
    assert!(dfv.contains("keep"), "{dfv}");

    // A live stream sees a start made with berth's CLI after it began.
    h.ok(&["container", "kill", "web"]);
    let until = (now_secs() + 8).to_string();
    let live = docker
        .cmd(&[
            "events",
            "--until",
            &until,
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--format",
            "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.tier}}",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("docker events");
    std::thread::sleep(Duration::from_millis(2500));
    h.ok(&["container", "start", "web"]);
    let live = live.wait_with_output().expect("docker events output");
    let live_out = String::from_utf8_lossy(&live.stdout);
    assert!(
        live_out.contains("container start web front"),
        "live events: {live_out}\n{}",
        String::from_utf8_lossy(&live.stderr)
    );
    assert!(!live_out.contains(" die "), "filtered out: {live_out}");
    h.ok(&["container", "kill", "web"]);

    // The past, replayed: create, start, die of the container, in order, with its id.
    let start = Instant::now();
    let past = loop {
        let until = (now_secs() + 1).to_string();
        std::thread::sleep(Duration::from_millis(1100));
        let out = docker.ok(&[
            "events",
            "--since",
            &t0.to_string(),
            "--until",
            &until,
            "--filter",
            "container=web",
            "--format",
            "{{.Action}} {{.Actor.ID}}",
        ]);
        let actions: Vec<String> = out
            .lines()
            .filter(|l| l.ends_with(&id))
            .map(|l| l.split(' ').next().unwrap_or("").to_string())
            .collect();
        if actions.iter().filter(|a| *a == "die").count() >= 2 || start.elapsed().as_secs() > 15 {
            break actions;
        }
    };
    assert_eq!(
        past,
        ["create", "start", "die", "start", "die"],
        "events of web since {t0}"
    );
    // Docker's JSON, with the legacy fields older clients read.
    let json = docker.ok(&[
        "events",
        "--since",
        &t0.to_string(),
        "--until",
        &now_secs().to_string(),
        "--filter",
        "event=create",
        "--format",
        "{{json .}}",
    ]);
    let first = json.lines().next().unwrap_or("{}");
    let v: serde_json::Value = serde_json::from_str(first).expect("event JSON");
    assert_eq!(v["Type"], "container", "{v}");
    assert_eq!(v["status"], "create", "{v}");
    assert_eq!(v["scope"], "local", "{v}");
    assert_eq!(v["Actor"]["Attributes"]["image"], "busybox:e2e", "{v}");
    assert!(v["timeNano"].as_i64().is_some_and(|n| n > 0), "{v}");
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_api_errors_are_dockers_and_the_daemon_keeps_serving() {
    host::require_tools();
    let h = Host::new("dkerr");
    let docker = Docker::new(&h);
    let sock = docker.sock.clone();

    // Too old a version: Docker's 400 and words, to curl and to the docker CLI.
    let old = get(&sock, "/v1.12/info");
    assert!(old.starts_with("HTTP/1.1 400"), "{old}");
    assert!(
        old.contains(
            r#"{"message":"client version 1.12 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"}"#
        ),
        "{old}"
    );
    let mut cli = docker.cmd(&["version"]);
    let out = cli
        .env("DOCKER_API_VERSION", "1.23")
        .output()
        .expect("docker");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("client version 1.23 is too old"), "{err}");
    let new = get(&sock, "/v1.99/version");
    assert!(new.starts_with("HTTP/1.1 400"), "{new}");
    assert!(
        new.contains("Maximum supported API version is 1.51"),
        "{new}"
    );

    // Versioned and unversioned paths; the negotiation headers.
    for path in ["/_ping", "/v1.24/_ping", "/v1.41/_ping", "/v1.51/_ping"] {
        let r = get(&sock, path);
        assert!(r.starts_with("HTTP/1.1 200"), "{path}: {r}");
        assert!(r.ends_with("OK"), "{path}: {r}");
        let lower = r.to_lowercase();
        for header in [
            "api-version: 1.51",
            "ostype: linux",
            "docker-experimental: false",
            "builder-version: 1",
            "cache-control: no-cache, no-store, must-revalidate",
            "pragma: no-cache",
        ] {
            assert!(lower.contains(header), "{path} lacks {header}: {r}");
        }
    }
    let head = raw(
        &sock,
        b"HEAD /_ping HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let version = get(&sock, "/version");
    assert!(version.contains(r#""ApiVersion":"1.51""#), "{version}");
    assert!(version.contains(r#""MinAPIVersion":"1.24""#), "{version}");

    // Unknown routes: Docker's 404; Docker routes berth does not serve yet: 501 naming them.
    for path in ["/v1.47/nope", "/nope", "/v1x/info", "/v1.47"] {
        let r = get(&sock, path);
        assert!(r.starts_with("HTTP/1.1 404"), "{path}: {r}");
        assert!(r.contains(r#"{"message":"page not found"}"#), "{path}: {r}");
    }
    let wrong_method = raw(
        &sock,
        b"DELETE /v1.47/info HTTP/1.1\r\nHost: docker\r\nConnection: close\r\n\r\n",
    );
    assert!(wrong_method.starts_with("HTTP/1.1 404"), "{wrong_method}");
    let search = docker.run(&["search", "busybox"]);
    let err = String::from_utf8_lossy(&search.stderr);
    assert!(!search.status.success(), "docker search must not pretend");
    assert!(
        err.contains("berth does not serve GET /images/search"),
        "{err}"
    );

    // Malformed parameters: 400 with Docker's message.
    let bad = get(&sock, "/v1.47/events?filters=notjson");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    assert!(bad.contains(r#"{"message":"invalid filter"#), "{bad}");
    let bad = get(
        &sock,
        "/v1.47/events?filters=%7B%22colour%22%3A%5B%22red%22%5D%7D",
    );
    assert!(
        bad.contains(r#"{"message":"invalid filter 'colour'"}"#),
        "{bad}"
    );
    let bad = get(&sock, "/v1.47/events?since=10&until=5");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let bad = get(&sock, "/v1.47/events?since=yesterday");
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    let bad = get(&sock, "/v1.47/system/df?type=everything");
    assert!(bad.contains("unknown object type: everything"), "{bad}");

    // Not HTTP at all: an HTTP 400, the connection closed.
    let garbage = raw(&sock, b"\x00\x01GARBAGE\r\n\r\n");
    assert!(
        garbage.is_empty() || garbage.starts_with("HTTP/1.1 400"),
        "{garbage:?}"
    );

    // A 100 MB body to a route that takes none yet: the 501 answer, without reading it all.
    let mut s = UnixStream::connect(&sock).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).ok();
    let size = 100 * 1024 * 1024;
    let head = format!(
        "POST /v1.47/swarm/init HTTP/1.1\r\nHost: docker\r\nContent-Type: application/json\r\nContent-Length: {size}\r\n\r\n"
    );
    let mut w = s.try_clone().expect("clone");
    let writer = std::thread::spawn(move || {
        let _ = w.write_all(head.as_bytes());
        let chunk = vec![b'{'; 1 << 20];
        for _ in 0..100 {
            if w.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut answer = [0u8; 512];
    let n = s.read(&mut answer).unwrap_or(0);
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 501"), "{answer}");
    drop(s);
    let _ = writer.join();

    // A client that leaves mid-stream.
    let mut s = UnixStream::connect(&sock).expect("connect");
    let _ = s.write_all(b"GET /v1.47/events HTTP/1.1\r\nHost: docker\r\n\r\n");
    std::thread::sleep(Duration::from_millis(200));
    drop(s);

    // Through all of it, the daemon serves on both sockets.
    assert!(get(&sock, "/_ping").ends_with("OK"));
    docker.ok(&["info"]);
    h.ok(&["system", "info"]);

    // A daemon that stops ends the open event streams and removes its socket.
    let events = docker
        .cmd(&["events"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("docker events");
    std::thread::sleep(Duration::from_millis(1000));
    let stopped = Instant::now();
    h.ok(&["system", "shutdown"]);
    let out = events.wait_with_output().expect("docker events ends");
    assert!(
        stopped.elapsed() < Duration::from_secs(20),
        "docker events outlived the daemon by {:?} ({:?})",
        stopped.elapsed(),
        out.status
    );
    assert!(!sock.exists(), "docker.sock left after shutdown");
}
