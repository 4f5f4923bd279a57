//! The Compose loader on untrusted file contents: parse, merge keys, interpolation,
//! normalisation, typed model, defaults, validation, then what the CLI does with a loaded
//! project (graph, hashes, `config` rendering, the JSON the daemon receives).
//!
//! Input: the bytes of `compose.yaml`; a NUL byte splits off the rest as the project's `.env`
//! (a NUL cannot appear in a YAML file, so seeds that are plain compose files stay whole).
//! Errors are fine; a panic, a hang or unbounded memory is a finding.
#![no_main]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::LazyLock;

use berth::api::project::ProjectRequest;
use berth::compose::{LoadOptions, load, service_hash};
use berth::graph::ServiceGraph;
use libfuzzer_sys::fuzz_target;

/// One project directory for the whole run (the loader only reads): overwritten per input.
static DIR: LazyLock<tempfile::TempDir> = LazyLock::new(|| {
    tempfile::Builder::new()
        .prefix("berth-fuzz-compose")
        .tempdir()
        .expect("a temp dir for the fuzz project")
});

fn env() -> BTreeMap<String, String> {
    [
        ("HOME", "/home/fuzz"),
        ("USER", "fuzz"),
        ("TAG", "1.2"),
        ("EMPTY", ""),
        ("PORT", "8080"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fuzz_target!(|data: &[u8]| {
    let dir = DIR.path();
    let (compose, dotenv) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], Some(&data[i + 1..])),
        None => (data, None),
    };
    let file = dir.join("compose.yaml");
    std::fs::write(&file, compose).expect("writing the fuzz compose file");
    let env_path = dir.join(".env");
    match dotenv {
        Some(text) => std::fs::write(&env_path, text).expect("writing the fuzz .env"),
        None => {
            let _ = std::fs::remove_file(&env_path);
        }
    }
    let opts = LoadOptions {
        files: vec![file],
        environment: Some(env()),
        working_dir: Some(dir.to_path_buf()),
        max_file_size: 1 << 20,
        ..LoadOptions::default()
    };
    let project = match load(&opts) {
        Ok(p) => p,
        Err(e) => {
            // The message (with file:line:column) is rendered for every error the CLI shows.
            let _ = e.to_string();
            return;
        }
    };
    let _ = project.unsupported();
    for svc in project.services.values() {
        let _ = service_hash(svc);
        let _ = svc.replicas();
    }
    if let Ok(graph) = ServiceGraph::from_project(&project) {
        let _ = graph.start_levels(None);
        let _ = graph.stop_levels(None);
        let names: Vec<String> = project.services.keys().take(2).cloned().collect();
        let _ = graph.select(&names, false);
    }
    // `berth config` renders the model.
    if let Ok(mut tree) = project.to_yaml_value() {
        berth::compose::escape_dollars(&mut tree);
        let _ = yaml_serde::to_string(&tree);
        let _ = serde_json::to_string(&tree);
    }
    // What the CLI sends to the daemon must decode there.
    let request = ProjectRequest {
        project: project.clone(),
        working_dir: PathBuf::from(dir),
        compose_files: project.compose_files.clone(),
        build_env: Default::default(),
    };
    let bytes = serde_json::to_vec(&request).expect("a loaded project serialises");
    if let Err(e) = serde_json::from_slice::<ProjectRequest>(&bytes) {
        panic!("a loaded project does not survive the trip to the daemon: {e}");
    }
});
