//! Where Docker's own clients read details of the Engine API closely, with the real docker CLI
//! and docker-py as the oracles: the stats fields `docker stats` and docker-py read, a
//! healthcheck's output on inspect, the exit codes and texts of a command that cannot run,
//! swarm routes on a node that is no swarm, and `docker login`.

use berth_tests::docker::Docker;
use berth_tests::host::{self, Host};

/// `docker ARGS`: exit status and stderr.
fn status_and_err(docker: &Docker, args: &[&str]) -> (i32, String) {
    let out = docker.run(args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_exec_and_run_exit_statuses_and_texts_as_dockers() {
    host::require_tools();
    let h = Host::new("dkexit");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&["run", "-d", "--name", "x", "busybox:e2e", "sleep", "600"]);

    let (code, err) = status_and_err(&docker, &["exec", "x", "nosuch"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    let (code, err) = status_and_err(&docker, &["exec", "x", "/etc/passwd"]);
    assert_eq!(code, 126, "{err}");
    assert!(
        err.contains("exec: \"/etc/passwd\": permission denied"),
        "{err}"
    );
    let (code, err) = status_and_err(&docker, &["exec", "x", "/etc"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("exec: \"/etc\""), "{err}");
    // The command's own status passes through.
    let (code, err) = status_and_err(&docker, &["exec", "x", "sh", "-c", "exit 7"]);
    assert_eq!(code, 7, "{err}");

    let (code, err) = status_and_err(&docker, &["run", "--rm", "busybox:e2e", "nosuch"]);
    assert_eq!(code, 127, "{err}");
    assert!(
        err.contains("exec: \"nosuch\": executable file not found in $PATH"),
        "{err}"
    );
    let (code, err) = status_and_err(&docker, &["run", "--rm", "busybox:e2e", "/etc"]);
    assert_eq!(code, 126, "{err}");
    assert!(err.contains("exec: \"/etc\""), "{err}");
    let (code, err) = status_and_err(
        &docker,
        &["run", "--rm", "busybox:e2e", "sh", "-c", "exit 9"],
    );
    assert_eq!(code, 9, "{err}");
    docker.ok(&["rm", "-f", "x"]);
}

/// Whether the host has the unified (v2) hierarchy at /sys/fs/cgroup.
fn cgroup_v2() -> bool {
    std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The directory of `pid`'s cgroup holding `controller`'s files (v1), or its unified one.
fn cgroup_dir(pid: &str, controller: &str) -> std::path::PathBuf {
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    let base = std::path::Path::new("/sys/fs/cgroup");
    for line in cg.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrl, path) = (parts.next(), parts.next(), parts.next());
        let path = path.unwrap_or_default().trim_start_matches('/');
        match ctrl {
            Some("") if cgroup_v2() => return base.join(path),
            Some(c) if !cgroup_v2() && c.split(',').any(|c| c == controller) => {
                return base.join(c).join(path);
            }
            _ => {}
        }
    }
    panic!("no {controller} cgroup for {pid}: {cg}");
}

/// The sum of one operation's bytes in the cgroup's own I/O accounting (what Docker reads).
fn cgroup_io_bytes(pid: &str, read: bool) -> u64 {
    if cgroup_v2() {
        let key = if read { "rbytes=" } else { "wbytes=" };
        let text =
            std::fs::read_to_string(cgroup_dir(pid, "io").join("io.stat")).unwrap_or_default();
        return text
            .split_whitespace()
            .filter_map(|t| t.strip_prefix(key)?.parse::<u64>().ok())
            .sum();
    }
    let dir = cgroup_dir(pid, "blkio");
    let mut text =
        std::fs::read_to_string(dir.join("blkio.io_service_bytes_recursive")).unwrap_or_default();
    if !text.lines().any(|l| l.split_whitespace().count() == 3) {
        text = std::fs::read_to_string(dir.join("blkio.throttle.io_service_bytes_recursive"))
            .unwrap_or_default();
    }
    let op = if read { "Read" } else { "Write" };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[1] == op).then(|| f[2].parse::<u64>().ok())?
        })
        .sum()
}

/// The sum of the document's `io_service_bytes_recursive` entries for one operation.
fn doc_io_bytes(doc: &serde_json::Value, read: bool) -> u64 {
    let want = if read { 'r' } else { 'w' };
    doc["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter(|e| {
                    e["op"]
                        .as_str()
                        .and_then(|o| o.chars().next())
                        .is_some_and(|c| c.to_ascii_lowercase() == want)
                })
                .filter_map(|e| e["value"].as_u64())
                .sum()
        })
        .unwrap_or(0)
}

/// Checks one stats document of the container `pid` against its cgroup and netns.
fn check_stats(doc: &serde_json::Value, pid: &str) {
    let cpu = &doc["cpu_stats"];
    let online = std::fs::read_to_string("/proc/stat")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count() as u64;
    assert_eq!(cpu["online_cpus"].as_u64(), Some(online), "{doc}");
    let total = cpu["cpu_usage"]["total_usage"].as_u64().unwrap_or(0);
    assert!(total > 0, "{doc}");
    if cgroup_v2() {
        assert!(cpu["cpu_usage"]["percpu_usage"].is_null(), "{doc}");
    } else {
        let per: Vec<u64> = cpu["cpu_usage"]["percpu_usage"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_u64()).collect())
            .unwrap_or_default();
        assert!(!per.is_empty(), "percpu_usage: {doc}");
        let file = std::fs::read_to_string(cgroup_dir(pid, "cpuacct").join("cpuacct.usage_percpu"))
            .unwrap_or_default();
        assert_eq!(per.len(), file.split_whitespace().count(), "{doc}");
        let sum: u64 = per.iter().sum();
        assert!(
            sum > 0 && sum <= total + total / 10,
            "percpu {sum} total {total}"
        );
    }
    let user = cpu["cpu_usage"]["usage_in_usermode"].as_u64().unwrap_or(0);
    let kernel = cpu["cpu_usage"]["usage_in_kernelmode"]
        .as_u64()
        .unwrap_or(0);
    assert!(user + kernel > 0, "{doc}");

    // pids: the count and the limit set on run.
    assert!(
        doc["pids_stats"]["current"]
            .as_u64()
            .is_some_and(|n| n >= 1),
        "{doc}"
    );
    assert_eq!(doc["pids_stats"]["limit"].as_u64(), Some(50), "{doc}");

    // Block I/O: the cgroup's own bytes, entries with a device and an op.
    let entries = doc["blkio_stats"]["io_service_bytes_recursive"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for e in &entries {
        assert!(
            e["major"].is_u64() && e["minor"].is_u64() && e["op"].is_string(),
            "{e}"
        );
    }
    for read in [true, false] {
        let (got, now) = (doc_io_bytes(doc, read), cgroup_io_bytes(pid, read));
        assert!(got <= now, "io read={read}: {got} > the cgroup's {now}");
    }

    // Memory: the kernel's usage and its memory.stat, from which clients subtract.
    let inactive = if cgroup_v2() {
        "inactive_file"
    } else {
        "total_inactive_file"
    };
    assert!(doc["memory_stats"]["stats"][inactive].is_u64(), "{doc}");
    assert!(
        doc["memory_stats"]["usage"].as_u64().is_some_and(|u| u > 0),
        "{doc}"
    );

    // Network: eth0's packets (the pings), counted as the container's netns counts them.
    let eth0 = &doc["networks"]["eth0"];
    for k in ["rx_packets", "tx_packets"] {
        assert!(eth0[k].as_u64().is_some_and(|n| n >= 3), "{k}: {doc}");
    }
    for k in ["rx_errors", "rx_dropped", "tx_errors", "tx_dropped"] {
        assert!(eth0[k].is_u64(), "{k}: {doc}");
    }
    let dev = std::fs::read_to_string(format!("/proc/{pid}/net/dev")).unwrap_or_default();
    let line = dev
        .lines()
        .find(|l| l.trim_start().starts_with("eth0:"))
        .unwrap_or_default();
    let f: Vec<u64> = line
        .split_once(':')
        .map(|(_, r)| {
            r.split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    assert!(f.len() >= 12, "{dev}");
    assert!(
        eth0["rx_packets"].as_u64().unwrap_or(u64::MAX) <= f[1],
        "{doc} {line}"
    );
    assert!(
        eth0["tx_packets"].as_u64().unwrap_or(u64::MAX) <= f[9],
        "{doc} {line}"
    );
    assert!(doc["networks"].get("lo").is_none(), "{doc}");
}

#[test_with::root()]
#[test_with::executable(docker, python3, ip, nsenter)]
#[test]
fn docker_stats_and_docker_py_read_per_cpu_io_pids_and_per_interface_counters() {
    host::require_tools();
    let h = Host::new("dkstats");
    h.busybox_image();
    let docker = Docker::new(&h);
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "s",
        "--pids-limit",
        "50",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let gw = docker.ok(&[
        "inspect",
        "-f",
        "{{range .NetworkSettings.Networks}}{{.Gateway}}{{end}}",
        "s",
    ]);
    let gw = gw.trim().to_string();
    assert!(!gw.is_empty(), "a gateway on the default network");
    // Traffic only to the test's own bridge; some work for the CPU counters.
    docker.ok(&["exec", "s", "busybox", "ping", "-c", "3", "-i", "0.2", &gw]);
    docker.ok(&[
        "exec",
        "s",
        "sh",
        "-c",
        "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done",
    ]);
    let pid = docker.ok(&["inspect", "-f", "{{.State.Pid}}", "s"]);
    let pid = pid.trim().to_string();

    // The raw document, as the CLI reads it.
    let curl = std::process::Command::new("curl")
        .args(["-s", "--unix-socket"])
        .arg(&docker.sock)
        .arg("http://docker/v1.51/containers/s/stats?stream=false")
        .output()
        .expect("curl");
    let doc: serde_json::Value = serde_json::from_slice(&curl.stdout).expect("stats JSON");
    check_stats(&doc, &pid);
    assert!(
        doc["precpu_stats"]["cpu_usage"]["total_usage"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );

    // The docker CLI's own figures from them.
    let row = docker.ok(&[
        "stats",
        "--no-stream",
        "--format",
        "{{.NetIO}}|{{.BlockIO}}|{{.PIDs}}|{{.MemUsage}}",
        "s",
    ]);
    let f: Vec<&str> = row.trim().split('|').collect();
    assert_eq!(f.len(), 4, "{row}");
    assert_ne!(f[0], "0B / 0B", "{row}");
    assert!(f[1].contains(" / "), "{row}");
    assert_eq!(f[2], "1", "{row}");
    assert!(!f[3].starts_with("0B "), "{row}");

    // docker-py's one-shot read.
    let out = docker
        .tool(
            "python3",
            60,
            &[
                "-c",
                "import docker, json; print(json.dumps(docker.from_env().containers.get('s').stats(stream=False)))",
            ],
        )
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).expect("docker-py JSON");
    check_stats(&doc, &pid);
    docker.ok(&["rm", "-f", "s"]);
}

/// `docker inspect` of `.State.Health` as JSON, polled until `done` holds (40 s at most).
fn health_until(
    docker: &Docker,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let start = std::time::Instant::now();
    loop {
        let got = docker.ok(&["inspect", "--format", "{{json .State.Health}}", what]);
        let v: serde_json::Value = serde_json::from_str(got.trim()).unwrap_or_default();
        if done(&v) {
            return v;
        }
        assert!(start.elapsed().as_secs() < 40, "{what}: still {got}");
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_inspect_shows_each_health_probes_output_capped_at_4_kib() {
    host::require_tools();
    let h = Host::new("dkhlog");
    h.busybox_image();
    let docker = Docker::new(&h);
    let check = "echo probe-says-hi; echo on-stderr 1>&2; exit 3";
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "hc",
        "--health-cmd",
        check,
        "--health-interval",
        "1s",
        "--health-retries",
        "1",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let health = health_until(&docker, "hc", |v| {
        v["Log"].as_array().is_some_and(|l| !l.is_empty())
    });
    assert_eq!(health["Status"], "unhealthy", "{health}");
    let probe = &health["Log"][0];
    assert_eq!(probe["ExitCode"], 3, "{health}");
    assert_eq!(probe["Output"], "probe-says-hi\non-stderr\n", "{health}");
    for k in ["Start", "End"] {
        let t = probe[k].as_str().unwrap_or_default();
        assert!(t.starts_with("20") && t.ends_with('Z'), "{k}: {health}");
    }

    // A chatty check: its first 4 KiB and Docker's mark; the last five probes kept.
    let chatty = "i=0; while [ $i -lt 600 ]; do echo 123456789; i=$((i+1)); done";
    docker.ok(&[
        "run",
        "-d",
        "--name",
        "chatty",
        "--health-cmd",
        chatty,
        "--health-interval",
        "1s",
        "busybox:e2e",
        "sleep",
        "600",
    ]);
    let health = health_until(&docker, "chatty", |v| {
        v["Log"].as_array().is_some_and(|l| l.len() == 5)
    });
    assert_eq!(health["Status"], "healthy", "{health}");
    let out = health["Log"][4]["Output"].as_str().unwrap_or_default();
    assert_eq!(out.len(), 4096 + 3, "{out}");
    assert!(
        out.starts_with("123456789\n") && out.ends_with("..."),
        "{out}"
    );
    // Still five, the oldest gone, once more probes ran.
    let first = health["Log"][0]["Start"].clone();
    let later = health_until(&docker, "chatty", |v| v["Log"][0]["Start"] != first);
    assert_eq!(later["Log"].as_array().map(Vec::len), Some(5), "{later}");
    docker.ok(&["rm", "-f", "hc", "chatty"]);
}

/// `curl` of `method path` on the instance's socket: the status code and the body.
fn curl(docker: &Docker, method: &str, path: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", method, "-w", "\n%{http_code}", "--unix-socket"])
        .arg(&docker.sock)
        .arg(format!("http://docker{path}"))
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or_default();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn swarm_routes_answer_as_a_node_outside_a_swarm() {
    host::require_tools();
    let h = Host::new("dkswarm");
    let docker = Docker::new(&h);
    let words = "This node is not a swarm manager. Use \"docker swarm init\" or \"docker swarm join\" to connect this node to swarm and try again.";
    for args in [
        &["node", "ls"][..],
        &["service", "ls"],
        &["secret", "ls"],
        &["config", "ls"],
    ] {
        let (code, err) = status_and_err(&docker, args);
        assert_eq!(code, 1, "docker {args:?}: {err}");
        assert!(err.contains(words), "docker {args:?}: {err}");
    }
    for path in [
        "/swarm",
        "/nodes",
        "/services",
        "/tasks",
        "/secrets",
        "/configs",
        "/nodes/n1",
    ] {
        let (code, body) = curl(&docker, "GET", &format!("/v1.51{path}"));
        assert_eq!(code, 503, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        assert_eq!(v["message"], words, "{path}");
    }
    let (code, body) = curl(&docker, "POST", "/v1.51/swarm/leave");
    assert_eq!(
        (code, body.contains("not part of a swarm")),
        (503, true),
        "{body}"
    );
    // Making or joining one stays refused by name.
    let (code, err) = status_and_err(&docker, &["swarm", "init"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("berth does not serve POST /swarm/init"),
        "{err}"
    );
    let (code, body) = curl(&docker, "POST", "/v1.51/swarm/join");
    assert_eq!(code, 501, "{body}");
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, docker-registry, python3)]
#[test]
fn docker_login_checks_credentials_against_the_registry() {
    host::require_tools();
    let h = Host::new("dklogin");
    h.busybox_image();
    let docker = Docker::new(&h);
    let reg = berth_tests::registry::Registry::start_with_basic_auth(&h, "alice", "s3cret");

    // Refused: the registry's reason, nothing stored.
    let (code, err) = status_and_err(&docker, &["login", "-u", "alice", "-p", "wrong", &reg.addr]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("unauthorized: authentication required"),
        "{err}"
    );
    let config = docker.config_dir().join("config.json");
    let stored = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(!stored.contains(&reg.addr), "{stored}");

    // Accepted: Docker's words; the CLI keeps the credentials and push uses them.
    let out = docker
        .cmd(&["login", "-u", "alice", "--password-stdin", &reg.addr])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            if let Some(mut i) = c.stdin.take() {
                i.write_all(b"s3cret\n")?;
            }
            c.wait_with_output()
        })
        .expect("docker login");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Login Succeeded"), "{text}");
    let stored = std::fs::read_to_string(&config).unwrap_or_default();
    assert!(stored.contains(&reg.addr), "{stored}");
    let name = format!("{}/l/busybox:1", reg.addr);
    docker.ok(&["tag", "busybox:e2e", &name]);
    assert!(docker.ok(&["push", &name]).contains("Pushed"));

    // The raw answer, and docker-py's login both ways.
    let script = format!(
        "import docker, json\n\
         c = docker.from_env()\n\
         print(json.dumps(c.login(username='alice', password='s3cret', registry='http://{0}', reauth=True)))\n\
         try:\n    c.login(username='alice', password='nope', registry='{0}', reauth=True)\n    print('NOT REFUSED')\n\
         except docker.errors.APIError as e:\n    print('refused', e.status_code, e.explanation)\n",
        reg.addr
    );
    let out = docker
        .tool("python3", 60, &["-c", &script])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first: serde_json::Value =
        serde_json::from_str(text.lines().next().unwrap_or_default()).unwrap_or_default();
    assert_eq!(first["Status"], "Login Succeeded", "{text}");
    assert_eq!(first["IdentityToken"], "", "{text}");
    assert!(
        text.contains("refused 401 unauthorized: authentication required"),
        "{text}"
    );

    // Bad bodies: Docker's 400, naming what is wrong.
    let bad = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            " %{http_code}",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["-d", "{\"colour\":\"red\"}", "--unix-socket"])
        .arg(&docker.sock)
        .arg("http://docker/v1.51/auth")
        .output()
        .expect("curl");
    let answer = String::from_utf8_lossy(&bad.stdout);
    assert!(
        answer.contains("colour") && answer.ends_with(" 400"),
        "{answer}"
    );
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter, docker-registry, python3)]
#[test]
fn docker_py_reads_registry_data_without_pulling() {
    host::require_tools();
    let h = Host::new("dkdist");
    h.busybox_image();
    let docker = Docker::new(&h);
    let reg = berth_tests::registry::Registry::start(&h);
    let name = format!("{}/dist/busybox:1", reg.addr);
    docker.ok(&["tag", "busybox:e2e", &name]);
    let pushed = docker.ok(&["push", &name]);
    let digest = pushed
        .split_whitespace()
        .skip_while(|w| *w != "digest:")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert!(digest.starts_with("sha256:"), "{pushed}");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        a => a,
    };
    let script = format!(
        "import docker, json\n\
         c = docker.from_env()\n\
         d = c.images.get_registry_data('{name}')\n\
         print(json.dumps({{'id': d.id, 'attrs': d.attrs, 'has': d.has_platform('linux/{arch}')}}))\n\
         try:\n    c.images.get_registry_data('{0}/dist/nothere:1')\n    print('FOUND')\n\
         except docker.errors.NotFound as e:\n    print('notfound', e.status_code)\n",
        reg.addr
    );
    let out = docker
        .tool("python3", 60, &["-c", &script])
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(text.lines().next().unwrap_or_default()).unwrap_or_default();
    assert_eq!(v["id"], digest.as_str(), "{text}");
    assert_eq!(v["has"], true, "{text}");
    let desc = &v["attrs"]["Descriptor"];
    assert_eq!(desc["digest"], digest.as_str(), "{text}");
    assert!(desc["size"].as_u64().is_some_and(|n| n > 0), "{text}");
    assert!(
        desc["mediaType"]
            .as_str()
            .is_some_and(|m| m.contains("manifest")),
        "{text}"
    );
    let platforms = v["attrs"]["Platforms"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(platforms.len(), 1, "{text}");
    assert_eq!(platforms[0]["os"], "linux", "{text}");
    assert_eq!(platforms[0]["architecture"], arch, "{text}");
    assert!(text.contains("notfound 404"), "{text}");
}

/// A build with a cache mount that a RUN fills, and a cached step after it.
const CACHE_MOUNT_DOCKERFILE: &str = "FROM busybox:e2e\n\
    RUN --mount=type=cache,target=/cache sh -c 'head -c 300000 /dev/zero > /cache/blob'\n\
    RUN echo two > /two\n";

/// Bytes of a size as the docker CLI prints it (`300kB`, `1.2MB`: decimal units).
fn cli_bytes(s: &str) -> f64 {
    let s = s.trim();
    let split = s.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: f64 = n.trim().parse().unwrap_or(-1.0);
    let scale = match unit.trim() {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        _ => -1.0,
    };
    n * scale
}

#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn docker_builder_prune_frees_berths_build_cache_and_cache_mounts() {
    host::require_tools();
    let h = Host::new("dkbprune");
    h.busybox_image();
    let docker = Docker::new(&h);
    let ctx = h.dir.path().join("ctx");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), CACHE_MOUNT_DOCKERFILE).expect("Dockerfile");
    let ctx = ctx.display().to_string();
    docker.ok(&["build", "-t", "pr:1", &ctx]);
    let again = docker.ok(&["build", "-t", "pr:1", &ctx]);
    assert!(again.contains("Using cache"), "{again}");
    let mounts = h.root.join("builder/cache-mounts");
    assert!(mounts.exists(), "{}", mounts.display());
    // `system df` lists the records a prune frees: the steps and the cache mount.
    let build_row = |docker: &Docker| {
        let df = docker.ok(&[
            "system",
            "df",
            "--format",
            "{{.Type}}|{{.TotalCount}}|{{.Reclaimable}}",
        ]);
        let row = df
            .lines()
            .find_map(|l| l.strip_prefix("Build Cache|"))
            .unwrap_or_default()
            .to_string();
        let (count, reclaimable) = row.split_once('|').unwrap_or_default();
        (
            count.parse::<u32>().unwrap_or(0),
            cli_bytes(reclaimable),
            df,
        )
    };
    let (count, reclaimable, df) = build_row(&docker);
    assert!(count >= 3, "{df}");
    assert!(reclaimable >= 300_000.0, "{df}");

    let out = docker.ok(&["builder", "prune", "-f"]);
    let total = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space:"))
        .map(cli_bytes)
        .unwrap_or(-1.0);
    assert!(total >= 300_000.0, "{out}");
    assert!(out.contains("Deleted build cache objects:"), "{out}");
    assert!(!mounts.exists(), "cache mounts left");
    let (count, _, df) = build_row(&docker);
    assert_eq!(count, 0, "{df}");
    // The image stays; its next build runs every step again.
    docker.ok(&["image", "inspect", "pr:1"]);
    let rebuilt = docker.ok(&["build", "-t", "pr:1", &ctx]);
    assert!(!rebuilt.contains("Using cache"), "{rebuilt}");

    // What berth cannot keep to: a 400 naming it, nothing pruned.
    for (q, word) in [
        ("keep-storage=1000", "keep-storage"),
        (
            "filters=%7B%22until%22%3A%5B%221h%22%5D%7D",
            "invalid filter 'until'",
        ),
    ] {
        let (code, body) = curl(&docker, "POST", &format!("/v1.51/build/prune?{q}"));
        assert_eq!(code, 400, "{q}: {body}");
        assert!(body.contains(word), "{q}: {body}");
    }
    let cached = docker.ok(&["build", "-t", "pr:1", &ctx]);
    assert!(cached.contains("Using cache"), "{cached}");
}
