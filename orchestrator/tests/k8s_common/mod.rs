//! What the Kubernetes conversion tests share: the stacks they convert (the examples and the
//! real-world fixtures), running the real binary, and the strict schema check with
//! kubernetes-validate (PyPI, installed by scripts/deps.sh).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The examples, by directory under examples/.
pub const EXAMPLES: &[&str] = &["hello", "lnmp", "zookeeper", "hadoop", "spark"];

/// Compose files of the kind people keep in their repositories, by directory under
/// tests/fixtures/real-world/.
pub const REAL_WORLD: &[&str] = &["webapp", "wordpress", "platform"];

/// The repository's root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository")
}

/// Every stack as (golden name, compose file).
pub fn stacks() -> Vec<(String, PathBuf)> {
    let root = repo();
    let mut out: Vec<(String, PathBuf)> = EXAMPLES
        .iter()
        .map(|e| {
            (
                e.to_string(),
                root.join("examples").join(e).join("compose.yaml"),
            )
        })
        .collect();
    out.extend(REAL_WORLD.iter().map(|f| {
        (
            format!("real-world-{f}"),
            root.join("orchestrator/tests/fixtures/real-world")
                .join(f)
                .join("compose.yaml"),
        )
    }));
    out
}

/// Runs `berth -f FILE convert kubernetes ARGS…` as a user would; returns (stdout, stderr).
pub fn convert(file: &Path, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("-f")
        .arg(file)
        .args(["convert", "kubernetes"])
        .args(args);
    // The examples' defaults, whatever the caller's environment holds.
    for var in [
        "LNMP_HTTP_PORT",
        "LNMP_DB_PASSWORD",
        "HELLO_PORT",
        "COMPOSE_PROFILES",
    ] {
        cmd.env_remove(var);
    }
    let o = cmd.output().expect("run berth");
    assert!(
        o.status.success(),
        "convert {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// The YAML files directly in `dir`, sorted, but the kustomization.
pub fn manifests_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("read output")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("kustomization.yaml"))
        .collect();
    files.sort();
    files
}

/// The oldest and the newest Kubernetes the validator knows in its pinned release.
pub const VERSIONS: &[&str] = &["1.30.0", "1.37.0"];

/// Checks `files` strictly (unknown fields are errors) against each of [`VERSIONS`] and
/// that `objects` resources were validated, one "passed" line each.
pub fn validate_strict(what: &str, files: &[PathBuf], objects: usize) {
    for version in VERSIONS {
        let o = Command::new("kubernetes-validate")
            .args(["--strict", "--kubernetes-version", version])
            .args(files)
            .output()
            .expect("run kubernetes-validate");
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{what} on {version}: {text}");
        assert_eq!(
            text.matches(" passed for resource ").count(),
            objects,
            "{what} on {version}: every object validated: {text}"
        );
    }
}

/// The documents of a multi-document YAML stream, as JSON values.
pub fn documents(text: &str) -> Vec<serde_json::Value> {
    use serde::Deserialize;
    yaml_serde::Deserializer::from_str(text)
        .map(|d| serde_json::Value::deserialize(d).expect("a YAML document"))
        .filter(|v| !v.is_null())
        .collect()
}
