//! `berth convert kubernetes` on the examples: the manifests match the golden files kept in
//! tests/golden/kubernetes/ (refresh them with BERTH_UPDATE_GOLDEN=1 after a deliberate
//! change and read the diff), and every manifest passes kubernetes-validate's strict check
//! against Kubernetes' own schemas (PyPI kubernetes-validate, installed by scripts/deps.sh).

use std::path::{Path, PathBuf};
use std::process::Command;

const EXAMPLES: &[&str] = &["hello", "lnmp", "zookeeper", "hadoop", "spark"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("repository")
}

/// Runs the real binary as a user would; returns (stdout, stderr).
fn convert(example: &str, out: Option<&Path>) -> (String, String) {
    let file = repo().join("examples").join(example).join("compose.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_berth"));
    cmd.arg("-f").arg(&file).args(["convert", "kubernetes"]);
    if let Some(dir) = out {
        cmd.arg("-o").arg(dir);
    }
    // The examples' defaults, whatever the caller's environment holds.
    for var in ["LNMP_HTTP_PORT", "LNMP_DB_PASSWORD", "HELLO_PORT"] {
        cmd.env_remove(var);
    }
    let o = cmd.output().expect("run berth");
    assert!(
        o.status.success(),
        "convert {example}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn examples_convert_to_the_golden_manifests() {
    let update = std::env::var_os("BERTH_UPDATE_GOLDEN").is_some();
    let mut differing = Vec::new();
    for ex in EXAMPLES {
        let (yaml, _) = convert(ex, None);
        let golden = repo()
            .join("orchestrator/tests/golden/kubernetes")
            .join(format!("{ex}.yaml"));
        if update {
            std::fs::write(&golden, &yaml).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != yaml {
            differing.push(format!("{ex}: got\n{yaml}"));
        }
    }
    assert!(
        differing.is_empty(),
        "differs from tests/golden/kubernetes (BERTH_UPDATE_GOLDEN=1 refreshes):\n{}",
        differing.join("\n")
    );
}

#[test_with::executable(kubernetes-validate)]
#[test]
fn every_manifest_passes_strict_schema_validation() {
    let mut total = 0;
    for ex in EXAMPLES {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, stderr) = convert(ex, Some(dir.path()));
        assert!(stderr.contains("manifests to"), "{stderr}");
        let files: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .expect("read output")
            .flatten()
            .map(|e| e.path())
            .collect();
        assert!(!files.is_empty(), "{ex}: no manifests");
        total += files.len();
        // The oldest and the newest Kubernetes the validator knows in this release.
        for version in ["1.30.0", "1.37.0"] {
            let o = Command::new("kubernetes-validate")
                .args(["--strict", "--kubernetes-version", version])
                .args(&files)
                .output()
                .expect("run kubernetes-validate");
            let text = String::from_utf8_lossy(&o.stdout).into_owned()
                + &String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{ex} on {version}: {text}");
            assert_eq!(
                text.matches(" passed for resource ").count(),
                files.len(),
                "{ex} on {version}: every file validated: {text}"
            );
        }
    }
    println!(
        "{} examples, {total} manifests: all pass strict validation on Kubernetes 1.30 and 1.37",
        EXAMPLES.len()
    );
}
