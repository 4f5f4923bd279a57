//! Conversions of small projects, loaded from YAML as `berth` loads them.

use serde_json::Value;

use super::{Conversion, ConvertError, convert};
use crate::compose::{self, LoadOptions};

fn load(yaml: &str) -> (tempfile::TempDir, compose::Project) {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("compose.yaml"), yaml).expect("write");
    std::fs::create_dir_all(dir.path().join("site")).expect("site");
    std::fs::write(dir.path().join("site/index.html"), "hi\n").expect("index");
    let opts = LoadOptions {
        files: vec![dir.path().join("compose.yaml")],
        project_name: Some("demo".into()),
        ..LoadOptions::default()
    };
    let p = compose::load(&opts).expect("load");
    (dir, p)
}

fn object<'a>(c: &'a Conversion, kind: &str, name: &str) -> &'a Value {
    c.manifests
        .iter()
        .map(|m| &m.object)
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| {
            panic!(
                "no {kind} {name}: {:?}",
                c.manifests.iter().map(|m| &m.file).collect::<Vec<_>>()
            )
        })
}

#[test]
fn a_web_and_db_stack_converts_with_names_probes_and_storage() {
    let (_d, p) = load(
        r#"
services:
  web:
    image: nginx:1.27
    ports: ["8080:80"]
    volumes: ["./site:/usr/share/nginx/html:ro"]
    depends_on:
      db: { condition: service_healthy }
    deploy: { replicas: 2, resources: { limits: { cpus: "0.5", memory: 256M } } }
  db:
    image: mariadb:11
    environment: { MARIADB_ROOT_PASSWORD: x }
    expose: ["3306"]
    volumes: ["data:/var/lib/mysql"]
    healthcheck:
      test: ["CMD", "healthcheck.sh", "--connect"]
      interval: 5s
      retries: 10
volumes:
  data: {}
"#,
    );
    let c = convert(&p).expect("convert");
    let web = object(&c, "Deployment", "web");
    assert_eq!(web["spec"]["replicas"], 2);
    let ctr = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(ctr["image"], "nginx:1.27");
    assert_eq!(ctr["resources"]["limits"]["cpu"], "500m");
    assert_eq!(ctr["resources"]["limits"]["memory"], "268435456");
    let init = &web["spec"]["template"]["spec"]["initContainers"][0];
    assert_eq!(init["name"], "wait-for-db");
    assert!(
        init["command"][2]
            .as_str()
            .unwrap_or_default()
            .contains("until nslookup db;")
    );
    // The bind of project files travels as a ConfigMap.
    let cm = object(&c, "ConfigMap", "demo-site");
    assert_eq!(cm["data"]["index.html"], "hi\n");
    // db owns its volume: a StatefulSet with a claim template, probed by its healthcheck.
    let db = object(&c, "StatefulSet", "db");
    assert_eq!(
        db["spec"]["volumeClaimTemplates"][0]["metadata"]["name"],
        "data"
    );
    let probe = &db["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["exec"]["command"][0], "healthcheck.sh");
    assert_eq!(probe["periodSeconds"], 5);
    assert_eq!(probe["failureThreshold"], 10);
    // Names resolve as on berth: a headless Service per service (every port the container
    // listens on is reached by name, as on a Compose network), published ports on a
    // LoadBalancer.
    assert_eq!(object(&c, "Service", "db")["spec"]["clusterIP"], "None");
    assert_eq!(
        object(&c, "Service", "db")["spec"]["ports"][0]["port"],
        3306
    );
    assert_eq!(object(&c, "Service", "web")["spec"]["ports"][0]["port"], 80);
    let lb = object(&c, "Service", "web-published");
    assert_eq!(lb["spec"]["type"], "LoadBalancer");
    assert_eq!(lb["spec"]["ports"][0]["port"], 8080);
    assert_eq!(lb["spec"]["ports"][0]["targetPort"], 80);
}

#[test]
fn what_a_cluster_cannot_run_is_refused_by_name() {
    for (yaml, key) in [
        (
            "services:\n  a:\n    image: x\n    network_mode: host\n",
            "network_mode",
        ),
        (
            "services:\n  a:\n    image: x\n    privileged: true\n",
            "privileged",
        ),
        (
            "services:\n  a:\n    image: x\n    devices: [\"/dev/fuse:/dev/fuse\"]\n",
            "devices",
        ),
        ("services:\n  a:\n    image: x\n    pid: host\n", "pid"),
        ("services:\n  a:\n    build: .\n", "image"),
        (
            "services:\n  a:\n    image: x\n    volumes: [\"./site:/s\"]\n",
            "volumes",
        ),
    ] {
        let (_d, p) = load(yaml);
        match convert(&p) {
            Err(ConvertError::Refused {
                service, key: k, ..
            }) => {
                assert_eq!((service.as_str(), k.as_str()), ("a", key), "{yaml}")
            }
            other => panic!("{yaml}: {other:?}"),
        }
    }
}

#[test]
fn a_name_that_would_not_resolve_is_refused() {
    let (_d, p) = load("services:\n  php_fpm:\n    image: x\n");
    let err = convert(&p).expect_err("php_fpm");
    assert!(err.to_string().contains("php_fpm"), "{err}");
}

#[test]
fn keys_left_out_are_warned_by_name_and_aliases_become_services() {
    let (_d, p) = load(
        r#"
services:
  a:
    image: x
    ulimits: { nofile: 1024 }
    restart: "no"
    networks:
      default: { aliases: [api] }
  b:
    image: x
    links: ["a:backend"]
"#,
    );
    let c = convert(&p).expect("convert");
    let joined = c.warnings.join("\n");
    assert!(joined.contains("service \"a\": ulimits"), "{joined}");
    // Run once: a Job, not a Deployment that would restart it forever.
    assert!(!joined.contains("service \"a\": restart"), "{joined}");
    let job = object(&c, "Job", "a");
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["backoffLimit"], 0);
    // Both aliases of a resolve in the cluster too (headless: a has no ports).
    assert_eq!(object(&c, "Service", "api")["spec"]["clusterIP"], "None");
    object(&c, "Service", "backend");
}

/// A project's files travel into ConfigMaps; a symlink among them that leads out of the
/// project (a checked-out repository pointing at the host's secrets) must not carry the
/// host file into a manifest.
#[test]
fn a_bind_symlink_out_of_the_project_is_refused() {
    let yaml = "services:\n  a:\n    image: x\n    volumes: [\"./site:/s:ro\"]\n";
    let (d, p) = load(yaml);
    let secret = tempfile::NamedTempFile::new().expect("outside file");
    std::fs::write(secret.path(), "host secret\n").expect("write");
    std::os::unix::fs::symlink(secret.path(), d.path().join("site/leak")).expect("symlink");
    let err = convert(&p).expect_err("symlink out of the project");
    assert!(
        err.to_string().contains("leads outside the project"),
        "{err}"
    );
    // And a bind of a path outside the project is refused too.
    std::fs::remove_file(d.path().join("site/leak")).expect("rm");
    std::os::unix::fs::symlink("/etc", d.path().join("etc")).expect("symlink");
    let (_d2, p2) = load(yaml);
    let mut p2 = p2;
    if let Some(v) = p2.services.get_mut("a").and_then(|s| s.volumes.first_mut()) {
        v.source = Some(d.path().join("etc").display().to_string());
    }
    let err = convert(&p2).expect_err("bind outside the project");
    assert!(
        err.to_string().contains("inside the project directory"),
        "{err}"
    );
}

/// Two services sharing an alias would make two Services of one name, one replacing the other
/// in the cluster: refused naming it, not one of them dropped.
#[test]
fn an_alias_two_services_share_is_refused_by_name() {
    let (_d, p) = load(
        "services:\n  a:\n    image: x\n    networks:\n      default: { aliases: [api] }\n  b:\n    image: x\n    networks:\n      default: { aliases: [api] }\n",
    );
    let err = convert(&p).expect_err("shared alias");
    assert!(err.to_string().contains("\"api\""), "{err}");
}

#[test]
fn helm_templates_escape_text_that_looks_like_an_action() {
    let (_d, p) = load(
        r#"
services:
  web-app:
    image: nginx:1.27
    command: ["sh", "-c", "echo '{{ .Name }}'"]
    deploy: { replicas: 2, resources: { limits: { cpus: "0.5", memory: 256M } } }
"#,
    );
    let c = convert(&p).expect("convert");
    let chart = super::helm::chart(&p, &c).expect("chart");
    let t = chart
        .iter()
        .find(|f| f.path == "templates/web-app-deployment.yaml")
        .expect("template");
    assert!(
        t.text.contains(r#"echo '{{ "{{" }} .Name }}'"#),
        "{}",
        t.text
    );
    assert!(
        t.text
            .contains("replicas: {{ .Values.services.web_app.replicas }}"),
        "{}",
        t.text
    );
    assert!(
        t.text
            .contains(r#"cpu: "{{ .Values.services.web_app.resources.limits.cpu }}""#),
        "{}",
        t.text
    );
    let values = chart
        .iter()
        .find(|f| f.path == "values.yaml")
        .expect("values");
    assert!(values.text.contains("web_app:"), "{}", values.text);

    let (_d, p) = load(
        r#"
services:
  web:
    image: nginx:1.27
    environment: { X: berth-helm-mark-0-end }
"#,
    );
    let c = convert(&p).expect("convert");
    let err = super::helm::chart(&p, &c).expect_err("marker text");
    assert!(err.to_string().contains("web-deployment.yaml"), "{err}");
}
