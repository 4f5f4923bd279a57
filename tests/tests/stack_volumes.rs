//! Anonymous volumes in compose stacks, end to end as root with the real binary,
//! runtime and netd: `volumes: [/data]` and long syntax without source, the image's VOLUME,
//! data kept across a recreate and renewed by `up -V`, `down` (dangling) vs `down -v`,
//! `rm -v`, `run -v /path --rm`, and errors that name the service and key. The harness (a
//! netns per test, its own --root/--run, leak check) is in `berth_tests::host`.

use berth_tests::host::{self, Host};

use std::path::Path;

fn all_ids(host: &Host) -> Vec<String> {
    host.ps()
        .iter()
        .map(|r| r["id"].as_str().unwrap_or_default().to_string())
        .collect()
}

fn id_of(host: &Host, name: &str) -> String {
    host.ps()
        .iter()
        .find(|r| r["name"] == name)
        .and_then(|r| r["id"].as_str())
        .unwrap_or_else(|| panic!("no container {name}"))
        .to_string()
}

/// The anonymous volumes `container inspect` shows for `name`, by destination.
fn anonymous(host: &Host, name: &str) -> Vec<(String, String)> {
    let out = host.berth(&["container", "inspect", name]);
    assert!(out.status.success(), "inspect {name}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("inspect json");
    let mut got: Vec<(String, String)> = v[0]["Mounts"]
        .as_array()
        .expect("Mounts")
        .iter()
        .filter(|m| m["Type"] == "volume" && m["Anonymous"] == true)
        .map(|m| {
            (
                m["Destination"].as_str().unwrap_or_default().to_string(),
                m["Name"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    got.sort();
    got
}

/// Names of the instance's volumes (`volume ls -q`).
fn volumes(host: &Host) -> Vec<String> {
    host.ok(&["volume", "ls", "-q"])
        .lines()
        .map(str::to_string)
        .filter(|l| !l.is_empty())
        .collect()
}

fn volume_dirs(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root.join("volumes"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

fn exec(host: &Host, service: &str, script: &str) -> String {
    host.ok(&["exec", "-T", service, "sh", "-c", script])
}

const KEEP: &str = r#"
name: av
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    environment: { V: "1" }
    volumes:
      - /data
      - type: volume
        target: /long
"#;

#[test_with::root()]
#[test]
fn anonymous_volumes_survive_a_recreate_and_up_v_renews_them() {
    host::require_tools();
    let host = Host::new("avkeep");
    host.busybox_image();
    let compose = host.stack.join("compose.yaml");
    std::fs::write(&compose, KEEP).expect("compose");
    host.ok(&["up", "-d"]);
    let id1 = id_of(&host, "av-app-1");
    exec(&host, "app", "echo kept > /data/f && echo long > /long/f");
    let first = anonymous(&host, "av-app-1");
    assert_eq!(
        first.iter().map(|(d, _)| d.as_str()).collect::<Vec<_>>(),
        ["/data", "/long"],
        "{first:?}"
    );
    let labelled = host.ok(&[
        "volume",
        "ls",
        "-q",
        "-f",
        "label=com.docker.volume.anonymous",
    ]);
    for (_, name) in &first {
        assert_eq!(name.len(), 64, "{name}");
        assert!(volumes(&host).contains(name), "volume ls lists {name}");
        assert!(labelled.contains(name.as_str()), "{labelled}");
    }
    let data = host.root.join("volumes").join(&first[0].1).join("_data/f");
    assert_eq!(std::fs::read_to_string(&data).expect("on disk"), "kept\n");

    // A config change recreates the container; the new one mounts the same volumes.
    std::fs::write(&compose, KEEP.replace("V: \"1\"", "V: \"2\"")).expect("compose");
    host.ok(&["up", "-d"]);
    let id2 = id_of(&host, "av-app-1");
    assert_ne!(id1, id2, "the container was recreated");
    assert_eq!(anonymous(&host, "av-app-1"), first);
    assert_eq!(exec(&host, "app", "cat /data/f /long/f"), "kept\nlong\n");

    // -V: recreated (even without a change) with fresh, empty volumes; the old ones dangle.
    host.ok(&["up", "-d", "-V"]);
    let id3 = id_of(&host, "av-app-1");
    assert_ne!(id2, id3, "-V recreates");
    let renewed = anonymous(&host, "av-app-1");
    assert_eq!(renewed.len(), 2);
    for ((d1, n1), (d2, n2)) in first.iter().zip(&renewed) {
        assert_eq!(d1, d2);
        assert_ne!(n1, n2, "a fresh volume at {d1}");
    }
    assert_eq!(exec(&host, "app", "ls -A /data /long | wc -w"), "2\n");
    let out = host.ok(&["volume", "ls", "-f", "dangling=true", "-q"]);
    for (_, name) in &first {
        assert!(out.contains(name.as_str()), "{name} dangles: {out}");
    }

    // A new replica gets its own; `rm -f -v` takes both containers' volumes.
    host.ok(&["up", "-d", "--scale", "app=2"]);
    let second = anonymous(&host, "av-app-2");
    assert_eq!(second.len(), 2);
    assert!(
        second
            .iter()
            .all(|v| !renewed.contains(v) && !first.contains(v))
    );
    let ids = all_ids(&host);
    host.ok(&["rm", "-f", "-v", "app"]);
    assert!(host.ps().is_empty());
    let left = volume_dirs(&host.root);
    for (_, name) in renewed.iter().chain(&second) {
        assert!(!left.contains(name), "rm -v removed {name}: {left:?}");
    }
    // What is left is the first pair, dangling: `volume prune` takes it.
    let mut want: Vec<String> = first.iter().map(|(_, n)| n.clone()).collect();
    want.sort();
    assert_eq!(left, want);
    host.ok(&["volume", "prune", "-f"]);
    assert!(volume_dirs(&host.root).is_empty());

    host.ok(&["down", "-t", "1"]);
    let mut ids = ids;
    ids.extend([id1, id2, id3]);
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "left: {leaks:#?}");
}

const IMAGE_VOLUME: &str = r#"
name: iv
x-quick: &quick
  image: withvol:1
  init: true
  stop_grace_period: 1s
  command: ["sleep", "3600"]
services:
  db:
    <<: *quick
  named:
    <<: *quick
    volumes: ["store:/data"]
  scratch:
    <<: *quick
    tmpfs: ["/data"]
volumes:
  store:
"#;

#[test_with::root()]
#[test]
fn image_volume_gets_an_anonymous_volume_that_down_keeps_and_down_v_removes() {
    host::require_tools();
    let host = Host::new("avimg");
    host.busybox_image();
    let ctx = host.stack.join("img");
    std::fs::create_dir_all(&ctx).expect("ctx");
    std::fs::write(ctx.join("seed"), "from the image\n").expect("seed");
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox:e2e\nCOPY seed /data/seed\nVOLUME /data\n",
    )
    .expect("Dockerfile");
    host.ok(&["image", "build", "-t", "withvol:1", "img"]);
    std::fs::write(host.stack.join("compose.yaml"), IMAGE_VOLUME).expect("compose");

    host.ok(&["up", "-d"]);
    let ids = all_ids(&host);
    let db = anonymous(&host, "iv-db-1");
    assert_eq!(db.len(), 1, "{db:?}");
    assert_eq!(db[0].0, "/data");
    // Initialised from the image's content at the path, as a named volume is.
    assert_eq!(exec(&host, "db", "cat /data/seed"), "from the image\n");
    assert_eq!(exec(&host, "named", "cat /data/seed"), "from the image\n");
    // A mount or a tmpfs at the path covers the image's VOLUME: no anonymous volume.
    assert!(anonymous(&host, "iv-named-1").is_empty());
    assert!(anonymous(&host, "iv-scratch-1").is_empty());
    exec(&host, "db", "echo mine > /data/mine");
    // The image's VOLUME is inherited by a recreated container like a declared one.
    let before = id_of(&host, "iv-db-1");
    host.ok(&["up", "-d", "--force-recreate", "db"]);
    assert_ne!(id_of(&host, "iv-db-1"), before);
    assert_eq!(anonymous(&host, "iv-db-1"), db);
    assert_eq!(exec(&host, "db", "cat /data/mine"), "mine\n");
    let mut ids = ids;
    ids.push(before);

    // Plain down: the anonymous volume stays, dangling, with its data; prune removes it.
    host.ok(&["down", "-t", "1"]);
    let dirs = volume_dirs(&host.root);
    assert!(dirs.contains(&db[0].1), "{dirs:?}");
    assert!(dirs.contains(&"iv_store".to_string()), "{dirs:?}");
    let mine = host.root.join("volumes").join(&db[0].1).join("_data/mine");
    assert_eq!(std::fs::read_to_string(mine).expect("kept"), "mine\n");
    let out = host.ok(&["volume", "ls", "-f", "dangling=true", "-q"]);
    assert!(out.contains(&db[0].1), "{out}");
    host.ok(&["volume", "prune", "-f"]);
    assert_eq!(volume_dirs(&host.root), ["iv_store"]);

    // down -v: the named volume and the containers' anonymous volumes go; nothing is left.
    host.ok(&["up", "-d"]);
    let mut ids2 = all_ids(&host);
    let db2 = anonymous(&host, "iv-db-1");
    assert_ne!(db2, db, "a fresh container gets a fresh volume");
    host.ok(&["down", "-v", "-t", "1"]);
    assert!(host.ps().is_empty());
    assert!(
        volume_dirs(&host.root).is_empty(),
        "{:?}",
        volume_dirs(&host.root)
    );
    ids2.extend(ids);
    let leaks = host.leaks(&ids2);
    assert!(leaks.is_empty(), "left: {leaks:#?}");
}

const ONEOFF: &str = r#"
name: ao
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    network_mode: none
    command: ["sleep", "3600"]
"#;

#[test_with::root()]
#[test]
fn run_v_path_gets_an_anonymous_volume_that_rm_removes_and_bad_input_is_named() {
    host::require_tools();
    let host = Host::new("avrun");
    host.busybox_image();
    let compose = host.stack.join("compose.yaml");
    std::fs::write(&compose, ONEOFF).expect("compose");
    let out = host.ok(&[
        "run",
        "--rm",
        "-T",
        "-v",
        "/scratch",
        "app",
        "sh",
        "-c",
        "echo x > /scratch/f && cat /scratch/f && grep -c ' /scratch ' /proc/mounts",
    ]);
    assert!(out.contains("x\n1\n"), "{out}");
    assert!(volume_dirs(&host.root).is_empty(), "--rm took the volume");
    assert!(host.ps().is_empty());

    // Without --rm the one-off keeps it: plain `down` leaves it dangling, `down -v` takes it.
    host.ok(&["run", "-d", "-v", "/scratch", "app"]);
    assert_eq!(volume_dirs(&host.root).len(), 1);
    let mut ids = all_ids(&host);
    host.ok(&["down", "-t", "1"]);
    assert_eq!(volume_dirs(&host.root).len(), 1);
    host.ok(&["volume", "prune", "-f"]);
    host.ok(&["run", "-d", "-v", "/scratch", "app"]);
    ids.extend(all_ids(&host));
    host.ok(&["down", "-v", "-t", "1"]);
    assert!(volume_dirs(&host.root).is_empty());

    // Bad input names the service and the key.
    let out = host.berth(&["run", "--rm", "-v", "scratch", "app", "true"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("-v \"scratch\"") && err.contains("absolute"),
        "{err}"
    );
    std::fs::write(
        &compose,
        ONEOFF.replace("network_mode", "volumes: [data]\n    network_mode"),
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("services.app.volumes[0]") && err.contains("absolute"),
        "{err}"
    );
    std::fs::write(
        &compose,
        ONEOFF.replace(
            "network_mode",
            "volumes: [{type: bind, target: /x}]\n    network_mode",
        ),
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("services.app.volumes[0]") && err.contains("without a source"),
        "{err}"
    );
    std::fs::write(&compose, ONEOFF).expect("compose");
    assert!(host.ps().is_empty());
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "left: {leaks:#?}");
}

/// A named volume declared as a bind of a host directory (`driver_opts: {type: none, o: bind,
/// device: PATH}`): the container's writes land in that directory, and `down -v` removes the
/// volume but never the directory or its files. A missing directory is an error naming it.
#[test_with::root()]
#[test]
fn bind_driver_opts_put_a_named_volume_on_a_host_directory() {
    host::require_tools();
    let host = Host::new("vbind");
    host.busybox_image();
    let hostdir = host.dir.path().join("hostdata");
    std::fs::create_dir_all(&hostdir).expect("host dir");
    std::fs::write(hostdir.join("before.txt"), "from the host\n").expect("seed");
    let stack = |dev: &Path| {
        format!(
            r#"
name: vb
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes: ["data:/data"]
volumes:
  data:
    driver_opts: {{ type: none, o: bind, device: "{}" }}
"#,
            dev.display()
        )
    };
    std::fs::write(host.stack.join("compose.yaml"), stack(&hostdir)).expect("compose");
    let out = host.ok(&["up", "-d"]);
    assert!(!out.contains("driver_opts"), "not warned: {out}");
    let seen = exec(
        &host,
        "app",
        "cat /data/before.txt && echo inside > /data/after.txt",
    );
    assert_eq!(seen.trim(), "from the host");
    assert_eq!(
        std::fs::read_to_string(hostdir.join("after.txt")).unwrap_or_default(),
        "inside\n"
    );
    let ids = all_ids(&host);
    host.ok(&["down", "-v"]);
    assert!(volumes(&host).is_empty(), "{:?}", volumes(&host));
    assert!(
        hostdir.join("after.txt").is_file(),
        "down -v kept the host's files"
    );
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");

    let missing = host.dir.path().join("absent");
    std::fs::write(host.stack.join("compose.yaml"), stack(&missing)).expect("compose");
    let o = host.berth(&["up", "-d"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("volume data") && err.contains("absent"),
        "{err}"
    );
    host.ok(&["down", "-v"]);
}

/// A bind source that is not on the host: the long syntax is refused before anything exists
/// (no network, no container), naming the service, the key and the path; the short syntax
/// gets the directory made, as Docker makes it.
#[test_with::root()]
#[test]
fn missing_bind_source_is_refused_before_anything_is_made_unless_short_syntax() {
    let host = Host::new("bindsrc");
    host.busybox_image();
    let missing = host.stack.join("missing");
    let compose = |web_volume: &str| {
        format!(
            "name: bs\nservices:\n  db:\n    image: busybox:e2e\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n  web:\n    image: busybox:e2e\n    command: [sleep, '3600']\n    stop_grace_period: 1s\n    depends_on: [db]\n    volumes:\n{web_volume}"
        )
    };
    let long = format!(
        "      - type: bind\n        source: {}\n        target: /x\n",
        missing.display()
    );
    std::fs::write(host.stack.join("compose.yaml"), compose(&long)).expect("compose");
    let out = host.berth(&["up", "-d"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    let expected = format!(
        "service web: volumes[0]: bind source path {} does not exist",
        missing.display()
    );
    assert!(text.contains(&expected), "{text}");
    assert!(host.ps().is_empty(), "no container: {:?}", host.ps());
    assert_eq!(host.leaks(&[]), Vec::<String>::new(), "no network");
    assert!(!missing.exists(), "the long syntax does not make it");

    std::fs::write(
        host.stack.join("compose.yaml"),
        compose("      - ./missing/deeper:/x\n"),
    )
    .expect("compose");
    host.ok(&["up", "-d"]);
    assert!(missing.join("deeper").is_dir(), "the short syntax makes it");
    let seen = exec(&host, "web", "test -d /x && echo is-a-dir");
    assert!(seen.contains("is-a-dir"), "{seen}");
    host.ok(&["down"]);
    assert_eq!(host.leaks(&[]), Vec::<String>::new());
}

/// A project volume is made through the runtime's volume API: it carries Compose's labels and
/// a creation time; `down -v` keeps one another container still mounts (as Compose: a warning,
/// not an error, and never the data of a volume in use) and removes it once unused.
#[test_with::root()]
#[test]
fn project_volume_has_metadata_and_down_v_keeps_one_in_use() {
    host::require_tools();
    let host = Host::new("vmeta");
    host.busybox_image();
    std::fs::write(
        host.stack.join("compose.yaml"),
        r#"
name: vm
services:
  app:
    image: busybox:e2e
    init: true
    stop_grace_period: 1s
    command: ["sleep", "3600"]
    volumes: ["data:/data"]
volumes:
  data: {}
"#,
    )
    .expect("compose");
    host.ok(&["up", "-d"]);
    exec(&host, "app", "echo kept > /data/f");
    let inspect: serde_json::Value =
        serde_json::from_str(host.ok(&["volume", "inspect", "vm_data"]).trim()).expect("json");
    let v = &inspect[0];
    assert_eq!(v["Labels"]["com.docker.compose.project"], "vm", "{v}");
    assert_eq!(v["Labels"]["com.docker.compose.volume"], "data", "{v}");
    assert!(
        !v["CreatedAt"].as_str().unwrap_or_default().is_empty(),
        "{v}"
    );

    // Another container mounts the volume: down -v succeeds and keeps it with its data.
    host.ok(&[
        "container",
        "create",
        "--name",
        "holder",
        "--network",
        "none",
        "-v",
        "vm_data:/d",
        "busybox:e2e",
        "true",
    ]);
    let mut ids = all_ids(&host);
    host.ok(&["down", "-v"]);
    assert_eq!(volumes(&host), ["vm_data"]);
    let data = host.root.join("volumes/vm_data/_data/f");
    assert_eq!(std::fs::read_to_string(&data).unwrap_or_default(), "kept\n");

    host.ok(&["container", "rm", "holder"]);
    host.ok(&["down", "-v"]);
    assert!(volumes(&host).is_empty(), "{:?}", volumes(&host));
    assert!(
        volume_dirs(&host.root).is_empty(),
        "{:?}",
        volume_dirs(&host.root)
    );
    ids.sort();
    let leaks = host.leaks(&ids);
    assert!(leaks.is_empty(), "down left: {leaks:#?}");
}

/// A volume's `labels:` are kept with it, next to Compose's own: `berth volume inspect` and
/// the Docker API's (the docker CLI) show them. `userns_mode: host`, how berth runs every
/// container, is applied without a warning.
#[test_with::root()]
#[test_with::executable(docker, ip, nsenter)]
#[test]
fn volume_labels_are_kept_and_userns_host_runs_unwarned() {
    host::require_tools();
    let host = Host::new("vlab");
    host.busybox_image();
    std::fs::write(
        host.stack.join("compose.yaml"),
        "name: vlab\nservices:\n  app:\n    image: busybox:e2e\n    network_mode: none\n    \
         userns_mode: host\n    volumes: [data:/data]\n    command: [\"sleep\", \"3600\"]\n\
         volumes:\n  data:\n    labels:\n      tier: db\n      owner.team: core\n",
    )
    .expect("compose");
    let out = host.berth(&["up", "-d"]);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "{stderr}");
    assert!(
        !stderr.contains("labels") && !stderr.contains("userns_mode"),
        "no warning: {stderr}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&host.ok(&["volume", "inspect", "vlab_data"])).expect("json");
    let labels = &inspect[0]["Labels"];
    assert_eq!(labels["tier"], "db", "{inspect}");
    assert_eq!(labels["owner.team"], "core", "{inspect}");
    assert_eq!(labels["com.docker.compose.project"], "vlab", "{inspect}");
    let docker = berth_tests::docker::Docker::new(&host);
    let got = docker.ok(&["volume", "inspect", "-f", "{{.Labels.tier}}", "vlab_data"]);
    assert_eq!(got.trim(), "db");
    // Another user namespace mode is still warned by name (and not applied).
    std::fs::write(
        host.stack.join("other.yaml"),
        "services:\n  x:\n    image: busybox:e2e\n    userns_mode: \"private\"\n",
    )
    .expect("other compose");
    let cfg = host.berth(&["-f", "other.yaml", "config", "-q"]);
    let err = String::from_utf8_lossy(&cfg.stderr);
    assert!(err.contains("userns_mode (only host)"), "{err}");
    host.ok(&["down", "-v", "-t", "1"]);
    assert!(!volumes(&host).contains(&"vlab_data".to_string()));
}
