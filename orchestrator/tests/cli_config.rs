//! End-to-end tests of `berth config`, driving the real binary.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn berth(dir: &Path, args: &[&str]) -> Output {
    run(dir, args, None)
}

fn run(dir: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_FILE")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn berth");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().expect("wait berth")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("berth-config-")
        .tempdir()
        .unwrap();
    for (name, text) in files {
        let p = dir.path().join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

const STACK: &str = "\
services:
  web:
    image: nginx:${TAG:-1.27}
    ports: [\"8080:80\"]
    depends_on: [app]
  app:
    build: ./app
    depends_on: [db]
    volumes: [./src:/src]
  db:
    image: postgres:16
    volumes: [data:/var/lib/postgresql/data]
  debug:
    image: busybox
    profiles: [debug]
volumes:
  data:
";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

#[test]
fn prints_resolved_yaml_by_default() {
    let d = project(&[("compose.yaml", STACK)]);
    let o = berth(d.path(), &["config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let v: serde_json::Value = yaml_serde::from_str(&out).unwrap();
    let dirname = d
        .path()
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_lowercase();
    assert_eq!(
        v["name"],
        serde_json::Value::String(dirname.replace('.', ""))
    );
    assert_eq!(v["services"]["web"]["image"], "nginx:1.27");
    assert_eq!(v["services"]["web"]["ports"][0]["published"], "8080");
    let src = d.path().join("src").display().to_string();
    assert_eq!(v["services"]["app"]["volumes"][0]["source"], src.as_str());
    assert!(v["services"].get("debug").is_none());
}

#[test]
fn json_format_and_lists() {
    let d = project(&[("compose.yaml", STACK)]);
    let o = berth(d.path(), &["-p", "demo", "config", "--format", "json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "demo");
    assert_eq!(v["volumes"]["data"]["name"], "demo_data");

    let o = berth(d.path(), &["config", "--services"]);
    assert_eq!(stdout(&o), "app\ndb\nweb\n");
    let o = berth(d.path(), &["--profile", "debug", "config", "--services"]);
    assert_eq!(stdout(&o), "app\ndb\ndebug\nweb\n");
    let o = berth(d.path(), &["config", "--volumes"]);
    assert_eq!(stdout(&o), "data\n");
    let o = berth(d.path(), &["config", "--networks"]);
    assert_eq!(stdout(&o), "default\n");
    let o = berth(d.path(), &["config", "--profiles"]);
    assert_eq!(stdout(&o), "debug\n");
    let o = berth(d.path(), &["-p", "demo", "config", "--images"]);
    assert_eq!(stdout(&o), "demo-app\npostgres:16\nnginx:1.27\n");
}

#[test]
fn selected_services_pull_in_dependencies() {
    let d = project(&[("compose.yaml", STACK)]);
    let o = berth(d.path(), &["config", "--services", "app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "app\ndb\n");
    let o = berth(d.path(), &["config", "--services", "nope"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no such service: \"nope\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn hash_is_stable_and_tracks_changes() {
    let d = project(&[("compose.yaml", STACK)]);
    let h1 = stdout(&berth(d.path(), &["config", "--hash", "web"]));
    let h2 = stdout(&berth(d.path(), &["config", "--hash", "web"]));
    assert_eq!(h1, h2);
    assert!(h1.starts_with("web ") && h1.trim().len() == 4 + 64, "{h1}");
    let all = stdout(&berth(d.path(), &["config", "--hash", "*"]));
    assert_eq!(all.lines().count(), 3);
    assert!(all.contains(h1.trim()));
    let changed = stdout(&run_env(
        d.path(),
        &["config", "--hash", "web"],
        "TAG",
        "1.28",
    ));
    assert_ne!(h1, changed);
}

fn run_env(dir: &Path, args: &[&str], k: &str, v: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(args)
        .current_dir(dir)
        .env(k, v)
        .output()
        .unwrap()
}

#[test]
fn quiet_validates_via_exit_status() {
    let d = project(&[("compose.yaml", STACK)]);
    let o = berth(d.path(), &["config", "-q"]);
    assert!(o.status.success());
    assert!(stdout(&o).is_empty());
    let bad = project(&[(
        "compose.yaml",
        "services:\n  web:\n    image: x\n    ports:\n      - \"8080:80\"\n      - \"99999:80\"\n",
    )]);
    let o = berth(bad.path(), &["config", "-q"]);
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(
        err.contains(
            "compose.yaml:6:9: services.web.ports[1]: \"99999:80\": port out of range 1-65535"
        ),
        "{err}"
    );
}

#[test]
fn no_interpolate_keeps_templates() {
    let d = project(&[("compose.yaml", STACK)]);
    let o = berth(
        d.path(),
        &["config", "--no-interpolate", "--format", "json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["services"]["web"]["image"], "nginx:${TAG:-1.27}");
}

#[test]
fn output_file() {
    let d = project(&[("compose.yaml", STACK)]);
    let out = d.path().join("resolved.yaml");
    let o = berth(d.path(), &["config", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("image: postgres:16"));
}

#[test]
fn stdin_and_several_files() {
    let d = project(&[
        (
            "base.yaml",
            "services:\n  a:\n    image: one\n    environment: [X=1]\n",
        ),
        (
            "over.yaml",
            "services:\n  a:\n    image: two\n    environment: {Y: '2'}\n",
        ),
    ]);
    let o = berth(
        d.path(),
        &[
            "-f",
            "base.yaml",
            "-f",
            "over.yaml",
            "config",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["services"]["a"]["image"], "two");
    assert_eq!(v["services"]["a"]["environment"]["X"], "1");
    assert_eq!(v["services"]["a"]["environment"]["Y"], "2");

    let o = run(
        d.path(),
        &["-f", "-", "-p", "piped", "config", "--services"],
        Some("services:\n  s1: {image: x}\n  s2: {image: y}\n"),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "s1\ns2\n");
}

#[test]
fn env_file_and_project_directory() {
    let d = project(&[
        (
            "deploy/compose.yaml",
            "services:\n  a:\n    image: app:${VERSION}\n    volumes: [./data:/data]\n",
        ),
        ("prod.env", "VERSION=9.9\nCOMPOSE_PROJECT_NAME=Prod\n"),
    ]);
    let o = berth(
        d.path(),
        &[
            "-f",
            "deploy/compose.yaml",
            "--env-file",
            "prod.env",
            "--project-directory",
            ".",
            "config",
            "--format",
            "json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["name"], "prod");
    assert_eq!(v["services"]["a"]["image"], "app:9.9");
    let data = d.path().join("data").display().to_string();
    assert_eq!(v["services"]["a"]["volumes"][0]["source"], data.as_str());
}

#[test]
fn finds_file_in_parent_and_override() {
    let d = project(&[
        ("docker-compose.yml", "services:\n  a:\n    image: base\n"),
        (
            "docker-compose.override.yml",
            "services:\n  a:\n    image: overridden\n",
        ),
        ("sub/dir/.keep", ""),
    ]);
    let o = berth(&d.path().join("sub/dir"), &["config", "--images"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "overridden\n");
    let empty = tempfile::tempdir().unwrap();
    // On a shared machine someone may have left a compose file in a parent (/tmp): only assert
    // the "none found" error when no ancestor has one.
    let names = [
        "compose.yaml",
        "compose.yml",
        "docker-compose.yaml",
        "docker-compose.yml",
    ];
    let ancestor_has_one = empty
        .path()
        .ancestors()
        .any(|d| names.iter().any(|n| d.join(n).is_file()));
    if !ancestor_has_one {
        let o = berth(empty.path(), &["config"]);
        assert!(!o.status.success());
        assert!(
            stderr(&o).contains("no Compose file found"),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn invalid_project_name_names_the_rule() {
    let d = project(&[("compose.yaml", "services:\n  a:\n    image: x\n")]);
    let o = berth(d.path(), &["-p", "Bad Name", "config"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid project name \"Bad Name\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unset_variable_warns_once() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x:${MISSING_TAG}\n    environment: [A=$MISSING_TAG]\n",
    )]);
    let o = berth(d.path(), &["config", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("MISSING_TAG").count(),
        1,
        "{}",
        stderr(&o)
    );
}

#[test]
fn repository_examples_load() {
    let examples = repo_root().join("examples");
    let Ok(entries) = std::fs::read_dir(&examples) else {
        return;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let file = e.path().join("compose.yaml");
        if !file.is_file() {
            continue;
        }
        n += 1;
        let o = berth(&e.path(), &["-f", file.to_str().unwrap(), "config", "-q"]);
        assert!(o.status.success(), "{}: {}", file.display(), stderr(&o));
    }
    assert!(n > 0, "no examples found under {}", examples.display());
}

#[test]
fn unsupported_keys_are_named() {
    let d = project(&[(
        "compose.yaml",
        "secrets:\n  s:\n    file: ./compose.yaml\nservices:\n  a:\n    image: x\n    gpus: all\n    security_opt: [label=disable]\n    logging: {driver: syslog}\n    secrets: [s, {source: s, target: t, mode: 0400}]\n    deploy:\n      placement:\n        constraints: [node.role==manager]\nnetworks:\n  o:\n    driver: overlay\nvolumes:\n  v:\n    driver_opts: {type: tmpfs, device: tmpfs, o: size=1m, size: 1m}\n",
    )]);
    let o = berth(d.path(), &["config", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(!err.contains("secrets[0]"), "{err}");
    for name in [
        "services.a.gpus",
        "services.a.security_opt apparmor/label",
        "services.a.logging",
        "services.a.deploy.placement",
        "networks.o.driver=overlay",
        "volumes.v.driver_opts.size",
    ] {
        assert!(err.contains(name), "{name} not reported in {err}");
    }
    // The local driver's own options are run (mounted), not reported.
    assert!(!err.contains("driver_opts.device"), "{err}");
}

#[test]
fn printed_dollars_are_escaped_like_compose() {
    let d = project(&[(
        "compose.yaml",
        "services:\n  a:\n    image: x\n    command: [sh, -c, 'echo $$HOME']\n",
    )]);
    let o = berth(d.path(), &["config"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("echo $$HOME"), "{}", stdout(&o));
    let printed = d.path().join("printed.yaml");
    std::fs::write(&printed, stdout(&o)).unwrap();
    let o = berth(
        d.path(),
        &["-f", "printed.yaml", "config", "--format", "json"],
    );
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["services"]["a"]["command"][2], "echo $$HOME");
}

#[test]
fn compose_file_variable_and_profiles_precedence() {
    let d = project(&[
        (
            "one.yaml",
            "services:\n  a: {image: x}\n  p1: {image: x, profiles: [one]}\n  p2: {image: x, profiles: [two]}\n",
        ),
        ("two.yaml", "services:\n  b: {image: y}\n"),
    ]);
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["config", "--services"])
        .current_dir(d.path())
        .env("COMPOSE_FILE", "one.yaml;two.yaml")
        .env("COMPOSE_PATH_SEPARATOR", ";")
        .env("COMPOSE_PROFILES", "one")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "a\nb\np1\n");
    let out = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["--profile", "two", "config", "--services"])
        .current_dir(d.path())
        .env("COMPOSE_FILE", "one.yaml")
        .env("COMPOSE_PROFILES", "one")
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "a\np2\n");
}

fn with_env(dir: &Path, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.args(args)
        .current_dir(dir)
        .env_remove("COMPOSE_PROJECT_NAME")
        .env_remove("COMPOSE_PROFILES")
        .env_remove("COMPOSE_FILE")
        .env_remove("COMPOSE_ENV_FILES")
        .env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run berth")
}

/// COMPOSE_FILE may be set in the working directory's `.env`, whose values then win over the
/// project directory's `.env`; COMPOSE_ENV_FILES replaces `.env` (as Docker Compose v2).
#[test]
fn compose_file_in_dotenv_and_compose_env_files() {
    let dir = project(&[
        (
            "sub/other.yaml",
            "services:\n  a:\n    image: busybox:${TAG:-none}\n",
        ),
        ("sub/.env", "TAG=fromsub\n"),
        (".env", "COMPOSE_FILE=sub/other.yaml\nTAG=fromdotenv\n"),
        ("a.env", "TAG=froma\n"),
        ("b.env", "OTHER=1\n"),
    ]);
    let out = with_env(dir.path(), &[], &["config", "--images"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "busybox:fromdotenv\n");
    // The shell's COMPOSE_FILE: the working directory's .env still counts first.
    let out = with_env(
        dir.path(),
        &[("COMPOSE_FILE", "sub/other.yaml")],
        &["config", "--images"],
    );
    assert_eq!(stdout(&out), "busybox:fromdotenv\n", "{}", stderr(&out));
    // COMPOSE_ENV_FILES replaces .env: no COMPOSE_FILE then, and TAG from a.env.
    let envs = [("COMPOSE_ENV_FILES", "a.env,b.env")];
    let out = with_env(dir.path(), &envs, &["config", "--images"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let out = with_env(
        dir.path(),
        &envs,
        &["-f", "sub/other.yaml", "config", "--images"],
    );
    assert_eq!(stdout(&out), "busybox:froma\n", "{}", stderr(&out));
    // --env-file wins over COMPOSE_ENV_FILES.
    let out = with_env(
        dir.path(),
        &envs,
        &[
            "-f",
            "sub/other.yaml",
            "--env-file",
            "sub/.env",
            "config",
            "--images",
        ],
    );
    assert_eq!(stdout(&out), "busybox:fromsub\n", "{}", stderr(&out));
}

#[test]
fn build_platforms_of_the_host_alone_are_built_and_others_are_warned_by_name() {
    let host = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let other = if host == "arm64" { "amd64" } else { "arm64" };
    let file = |platforms: &str| {
        format!(
            "services:\n  a:\n    image: x\n    build:\n      context: .\n      platforms: [{platforms}]\n"
        )
    };
    let d = project(&[("compose.yaml", &file(&format!("linux/{host}")))]);
    let o = berth(d.path(), &["config", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("platforms"), "{}", stderr(&o));
    let d = project(&[(
        "compose.yaml",
        &file(&format!("linux/{host}, linux/{other}")),
    )]);
    let o = berth(d.path(), &["config", "-q"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("services.a.build.platforms"),
        "{}",
        stderr(&o)
    );
}
