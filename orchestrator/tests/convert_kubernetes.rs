//! `berth convert kubernetes` on the examples and on real-world compose files: the manifests
//! match the golden files kept in tests/golden/kubernetes/ (refresh them with
//! BERTH_UPDATE_GOLDEN=1 after a deliberate change and read the diff), every manifest passes
//! kubernetes-validate's strict check against Kubernetes' own schemas, and with
//! `--kustomize` the real `kubectl kustomize` renders every object into the namespace and
//! labels asked for, and its output passes the same strict check.

mod k8s_common;

use std::path::PathBuf;
use std::process::Command;

use k8s_common::{convert, documents, manifests_in, repo, stacks, validate_strict};

#[test]
fn stacks_convert_to_the_golden_manifests() {
    let update = std::env::var_os("BERTH_UPDATE_GOLDEN").is_some();
    let mut differing = Vec::new();
    for (name, file) in stacks() {
        let (yaml, _) = convert(&file, &[]);
        let golden = repo()
            .join("orchestrator/tests/golden/kubernetes")
            .join(format!("{name}.yaml"));
        if update {
            std::fs::write(&golden, &yaml).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&golden).unwrap_or_default();
        if want != yaml {
            differing.push(format!("{name}: got\n{yaml}"));
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
    let stacks = stacks();
    for (name, file) in &stacks {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().to_str().expect("utf-8 path");
        let (_, stderr) = convert(file, &["-o", out]);
        assert!(stderr.contains("manifests to"), "{stderr}");
        let files = manifests_in(dir.path());
        assert!(!files.is_empty(), "{name}: no manifests");
        total += files.len();
        validate_strict(name, &files, files.len());
    }
    println!(
        "{} stacks, {total} manifests: all pass strict validation on Kubernetes 1.30 and 1.37",
        stacks.len()
    );
}

#[test_with::executable(kubectl)]
#[test_with::executable(kubernetes-validate)]
#[test]
fn kubectl_kustomize_renders_every_object_with_namespace_and_labels() {
    let stacks = stacks();
    let mut total = 0;
    for (name, file) in &stacks {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = dir.path().to_str().expect("utf-8 path");
        let (_, stderr) = convert(
            file,
            &[
                "-o",
                out,
                "--kustomize",
                "--namespace",
                "shop-test",
                "--label",
                "example.com/stack=berth-test",
            ],
        );
        assert!(stderr.contains("kustomization.yaml"), "{stderr}");
        let manifests = manifests_in(dir.path());
        // The real kustomize, which needs no server.
        let o = Command::new("kubectl")
            .arg("kustomize")
            .arg(dir.path())
            .output()
            .expect("run kubectl kustomize");
        let rendered = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "{name}: kubectl kustomize: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let docs = documents(&rendered);
        assert_eq!(docs.len(), manifests.len(), "{name}: every object rendered");
        for d in &docs {
            let what = format!("{name}: {} {}", d["kind"], d["metadata"]["name"]);
            assert_eq!(d["metadata"]["namespace"], "shop-test", "{what}");
            assert_eq!(
                d["metadata"]["labels"]["example.com/stack"], "berth-test",
                "{what}"
            );
        }
        let all: PathBuf = dir.path().join("rendered.yaml.out");
        std::fs::write(&all, &rendered).expect("write rendered");
        validate_strict(&format!("{name} (kustomized)"), &[all], docs.len());
        total += docs.len();
    }
    println!(
        "{} stacks, {total} objects rendered by kubectl kustomize, all strictly valid",
        stacks.len()
    );
}

#[test]
fn kustomize_and_helm_need_an_output_directory_and_exclude_each_other() {
    let (_, file) = &stacks()[0];
    for args in [
        &["--kustomize"][..],
        &["--helm"],
        &["-o", "/nonexistent-berth-dir", "--helm", "--kustomize"],
        &["-o", "/nonexistent-berth-dir", "--namespace", "x"],
        &["--push"],
    ] {
        let o = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("-f")
            .arg(file)
            .args(["convert", "kubernetes"])
            .args(args)
            .output()
            .expect("run berth");
        assert!(!o.status.success(), "{args:?} accepted");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains("--"), "{args:?}: {err}");
        assert!(!std::path::Path::new("/nonexistent-berth-dir").exists());
    }
}
