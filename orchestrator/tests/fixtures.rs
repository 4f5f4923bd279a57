//! Fixture-driven tests for every loader pass.
//!
//! Each `*.yaml` under `tests/fixtures/` whose first line is `# case` is one test case; its
//! header comments say how to load it and what to expect:
//!
//! - `# env: K=V` process environment entry; `# profile: p`; `# service: s`; `# no-interpolate`
//! - `# file: other.yaml` another `-f` file after this one; `# discover` loads by directory
//!   discovery (no `-f`) from the file's directory; `# project-dir: rel`
//! - `# expect: /json/pointer = <json>` on success; `# absent: /json/pointer`
//! - `# error: substring` (every one must appear in the error message)
//! - `# warn: substring` a warning that must be reported
//!
//! Files without `# case` are helpers (override, extended or included files).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth::compose::{LoadOptions, load};

#[derive(Default, Debug)]
struct Case {
    env: BTreeMap<String, String>,
    files: Vec<PathBuf>,
    discover: bool,
    profiles: Vec<String>,
    services: Vec<String>,
    interpolate: bool,
    project_dir: Option<PathBuf>,
    expects: Vec<(String, serde_json::Value)>,
    absent: Vec<String>,
    errors: Vec<String>,
    warns: Vec<String>,
}

fn parse_case(path: &Path) -> Option<Case> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()?.trim() != "# case" {
        return None;
    }
    let dir = path.parent().unwrap();
    let mut c = Case {
        interpolate: true,
        files: vec![path.to_path_buf()],
        ..Default::default()
    };
    c.env.insert("HOME".into(), "/home/tester".into());
    for line in lines {
        let Some(d) = line.strip_prefix("# ") else {
            break;
        };
        let (key, val) = d
            .split_once(':')
            .map(|(k, v)| (k, v.trim()))
            .unwrap_or((d, ""));
        match key {
            "env" => {
                let (k, v) = val.split_once('=').unwrap_or((val, ""));
                c.env.insert(k.into(), v.into());
            }
            "file" => c.files.push(dir.join(val)),
            "discover" => c.discover = true,
            "profile" => c.profiles.push(val.into()),
            "service" => c.services.push(val.into()),
            "no-interpolate" => c.interpolate = false,
            "project-dir" => c.project_dir = Some(dir.join(val)),
            "expect" => {
                let (ptr, json) = val.split_once(" = ").expect("expect: /ptr = json");
                let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
                let json = json.replace("__DIR__", &root.display().to_string());
                let json = json.as_str();
                let v: serde_json::Value = serde_json::from_str(json)
                    .unwrap_or_else(|e| panic!("{}: bad json {json:?}: {e}", path.display()));
                c.expects.push((ptr.trim().into(), v));
            }
            "absent" => c.absent.push(val.into()),
            "error" => c.errors.push(val.into()),
            "warn" => c.warns.push(val.into()),
            _ => break,
        }
    }
    Some(c)
}

fn cases() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.path());
        for e in entries {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml" || x == "yml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut out,
    );
    out
}

fn run_case(path: &Path, c: &Case) -> Result<(), String> {
    let dir = path.parent().unwrap().to_path_buf();
    let opts = LoadOptions {
        files: if c.discover { vec![] } else { c.files.clone() },
        project_directory: c.project_dir.clone(),
        profiles: c.profiles.clone(),
        services: c.services.clone(),
        interpolate: c.interpolate,
        environment: Some(c.env.clone()),
        working_dir: Some(dir),
        ..Default::default()
    };
    match load(&opts) {
        Ok(project) => {
            if !c.errors.is_empty() {
                return Err(format!(
                    "expected an error containing {:?}, loaded fine",
                    c.errors
                ));
            }
            let tree = project.to_yaml_value().map_err(|e| e.to_string())?;
            let json = serde_json::to_value(&tree).map_err(|e| e.to_string())?;
            for (ptr, want) in &c.expects {
                match json.pointer(ptr) {
                    Some(got) if got == want => {}
                    Some(got) => return Err(format!("{ptr}: want {want}, got {got}")),
                    None => {
                        return Err(format!(
                            "{ptr}: missing (want {want}); model:\n{}",
                            serde_json::to_string_pretty(&json).unwrap()
                        ));
                    }
                }
            }
            for ptr in &c.absent {
                if let Some(got) = json.pointer(ptr) {
                    return Err(format!("{ptr}: should be absent, got {got}"));
                }
            }
            // Idempotence: the printed model loads back to the same model.
            let mut printable = tree.clone();
            if c.interpolate {
                berth::compose::escape_dollars(&mut printable);
            }
            let rendered = yaml_serde::to_string(&printable).map_err(|e| e.to_string())?;
            let tmp = tempfile::Builder::new()
                .prefix("berth-fixture-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let again_file = tmp.path().join("compose.yaml");
            std::fs::write(&again_file, &rendered).map_err(|e| e.to_string())?;
            let again = load(&LoadOptions {
                files: vec![again_file],
                profiles: c.profiles.clone(),
                services: c.services.clone(),
                interpolate: c.interpolate,
                environment: Some(c.env.clone()),
                working_dir: Some(tmp.path().to_path_buf()),
                project_name: Some(project.name.clone()),
                ..Default::default()
            })
            .map_err(|e| format!("printed model does not load back: {e}\n{rendered}"))?;
            let again_json =
                serde_json::to_value(again.to_yaml_value().map_err(|e| e.to_string())?)
                    .map_err(|e| e.to_string())?;
            if again_json != json {
                return Err(format!(
                    "printed model loads back differently:\nfirst:  {json}\nsecond: {again_json}"
                ));
            }
            for w in &c.warns {
                if !project.warnings.iter().any(|x| x.contains(w.as_str())) {
                    return Err(format!("missing warning {w:?}; got {:?}", project.warnings));
                }
            }
            Ok(())
        }
        Err(e) => {
            let msg = format!("{e}");
            if c.errors.is_empty() {
                return Err(format!("unexpected error: {msg}"));
            }
            for want in &c.errors {
                if !msg.contains(want.as_str()) {
                    return Err(format!("error {msg:?} does not contain {want:?}"));
                }
            }
            Ok(())
        }
    }
}

#[test]
fn every_fixture_case() {
    let all = cases();
    assert!(all.len() >= 60, "only {} fixture files", all.len());
    let mut failures = Vec::new();
    let mut ran = 0;
    for path in &all {
        let Some(case) = parse_case(path) else {
            continue;
        };
        ran += 1;
        if let Err(e) = run_case(path, &case) {
            failures.push(format!("{}: {e}", path.display()));
        }
    }
    assert!(ran >= 40, "only {ran} cases");
    assert!(
        failures.is_empty(),
        "{} of {ran} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
