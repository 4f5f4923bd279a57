//! Conversions of small projects, loaded from YAML as `berth` loads them.

use serde_json::Value;

use super::{ConvertError, Options, convert};
use crate::compose::{self, LoadOptions};

fn load(yaml: &str) -> (tempfile::TempDir, compose::Project) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("compose.yaml"), yaml).expect("write");
    std::fs::create_dir_all(dir.path().join("site")).expect("site");
    std::fs::write(dir.path().join("site/index.html"), "hi\n").expect("index");
    std::fs::write(dir.path().join("nginx.conf"), "events {}\n").expect("conf");
    let opts = LoadOptions {
        files: vec![dir.path().join("compose.yaml")],
        project_name: Some("demo".into()),
        ..LoadOptions::default()
    };
    let p = compose::load(&opts).expect("load");
    (dir, p)
}

/// The converted file as JSON (easier to index) and the warnings.
fn run(yaml: &str, opts: &Options) -> (Value, Vec<String>) {
    let (_d, p) = load(yaml);
    let c = convert(&p, opts).expect("convert");
    let v = serde_json::to_value(&c.file).expect("json");
    (v, c.warnings)
}

fn refused(yaml: &str) -> String {
    let (_d, p) = load(yaml);
    match convert(&p, &Options::default()) {
        Err(e @ ConvertError::Refused { .. }) => e.to_string(),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_built_web_and_db_stack_is_pinned_and_its_engine_keys_move_into_deploy() {
    let yaml = r#"
services:
  web:
    build: .
    image: reg.example:5000/demo/web:1
    restart: on-failure:3
    mem_limit: 256m
    cpus: 0.5
    scale: 2
    ports: ["127.0.0.1:8080:80"]
    volumes:
      - ./site:/usr/share/nginx/html:ro
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
    depends_on:
      db: { condition: service_healthy }
  db:
    image: mariadb:11
    container_name: db1
    restart: unless-stopped
    volumes: ["data:/var/lib/mysql"]
    healthcheck:
      test: ["CMD", "healthcheck.sh", "--connect"]
      interval: 5s
      retries: 10
volumes:
  data: {}
"#;
    let pin = "reg.example:5000/demo/web:1@sha256:".to_string() + &"a".repeat(64);
    let mut opts = Options::default();
    opts.images.insert("web".into(), pin.clone());
    let (f, warnings) = run(yaml, &opts);
    let web = &f["services"]["web"];
    assert_eq!(web["image"], pin.as_str());
    assert!(web.get("build").is_none());
    assert!(f["services"]["db"].get("container_name").is_none());
    assert!(web.get("depends_on").is_none() && web.get("restart").is_none());
    assert_eq!(web["deploy"]["replicas"], 2);
    assert_eq!(web["deploy"]["restart_policy"]["condition"], "on-failure");
    assert_eq!(web["deploy"]["restart_policy"]["max_attempts"], 3);
    assert_eq!(web["deploy"]["resources"]["limits"]["cpus"], "0.5");
    assert!(
        web["deploy"]["resources"]["limits"]["memory"].is_string()
            || web["deploy"]["resources"]["limits"]["memory"].is_number()
    );
    assert_eq!(web["ports"][0]["published"], 8080);
    assert_eq!(web["ports"][0]["mode"], "ingress");
    // The file travels as a config named after its content; the directory stays a bind.
    assert_eq!(web["configs"][0]["source"], "file_nginx.conf");
    assert_eq!(web["configs"][0]["target"], "/etc/nginx/nginx.conf");
    let cfg = &f["configs"]["file_nginx.conf"];
    assert!(
        cfg["file"]
            .as_str()
            .unwrap_or_default()
            .ends_with("/nginx.conf")
    );
    assert!(
        cfg["name"]
            .as_str()
            .unwrap_or_default()
            .starts_with("demo_file_nginx.conf-")
    );
    assert_eq!(web["volumes"][0]["type"], "bind");
    assert_eq!(web["volumes"][0]["read_only"], true);
    let db = &f["services"]["db"];
    assert_eq!(db["deploy"]["restart_policy"]["condition"], "any");
    assert_eq!(db["healthcheck"]["retries"], 10);
    assert_eq!(db["image"], "mariadb:11");
    assert_eq!(f["version"], "3.8");
    // Default names are left to docker stack deploy, which prefixes the stack's name.
    assert!(f["volumes"]["data"].get("name").is_none());
    let all = warnings.join("\n");
    for want in [
        "service \"web\": depends_on: dropped",
        "service \"db\": container_name: dropped",
        "service \"web\": ports.host_ip: 127.0.0.1",
        "service \"web\": volumes: bind",
        "volumes \"data\": driver: a local volume lives on one node",
    ] {
        assert!(all.contains(want), "{want} not in:\n{all}");
    }
    // The image was built and pushed for this deploy: its build section is not warned about.
    assert!(!all.contains("service \"web\": build"), "{all}");
}

#[test]
fn without_the_mesh_ports_are_published_on_the_host_and_services_use_dns_round_robin() {
    let yaml = "services:\n  web:\n    image: nginx\n    ports: [\"8080:80\"]\n";
    let opts = Options {
        no_mesh: true,
        ..Options::default()
    };
    let (f, _) = run(yaml, &opts);
    assert_eq!(f["services"]["web"]["ports"][0]["mode"], "host");
    assert_eq!(f["services"]["web"]["deploy"]["endpoint_mode"], "dnsrr");
}

#[test]
fn what_swarm_cannot_run_is_refused_by_name() {
    for (yaml, want) in [
        (
            "services:\n  a:\n    image: x\n    privileged: true\n",
            "service \"a\": privileged",
        ),
        (
            "services:\n  a:\n    image: x\n    devices: [\"/dev/fuse\"]\n",
            "service \"a\": devices",
        ),
        (
            "services:\n  a:\n    image: x\n  b:\n    image: x\n    network_mode: service:a\n",
            "service \"b\": network_mode",
        ),
        (
            "services:\n  a:\n    image: x\n    pid: host\n",
            "service \"a\": pid",
        ),
    ] {
        let got = refused(yaml);
        assert!(got.starts_with(want), "{got}");
    }
}

#[test]
fn dollars_stay_literal_for_docker_stack_deploys_own_interpolation() {
    let yaml = "services:\n  a:\n    image: x\n    environment:\n      PRICE: \"$$5\"\n";
    let (f, _) = run(yaml, &Options::default());
    assert_eq!(f["services"]["a"]["environment"]["PRICE"], "$$5");
}

#[test]
fn extra_hosts_and_tmpfs_sizes_take_the_forms_docker_stack_deploy_reads() {
    let yaml = r#"
services:
  a:
    image: x
    extra_hosts: ["h=1.2.3.4", "v6=::1"]
    volumes: [{type: tmpfs, target: /cache, tmpfs: {size: 1m}}]
"#;
    let (f, _) = run(yaml, &Options::default());
    let a = &f["services"]["a"];
    assert_eq!(a["extra_hosts"][0], "h:1.2.3.4");
    assert_eq!(a["extra_hosts"][1], "v6:::1");
    assert_eq!(a["volumes"][0]["tmpfs"]["size"], 1048576);
}
