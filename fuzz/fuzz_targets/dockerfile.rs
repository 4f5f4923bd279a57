//! The Dockerfile front end on untrusted text: line syntax (continuations, heredocs,
//! directives), instruction parsing, word expansion, then stage resolution and planning
//! against a small fixed build context. A text without FROM also goes through the
//! `.dockerignore` parser. Errors are fine; a panic, a hang or unbounded memory is a finding.
#![no_main]

use std::collections::{BTreeMap, HashMap};
use std::sync::LazyLock;

use berth_runtime::build::ignore::IgnoreRules;
use berth_runtime::build::plan::{BaseImage, PlanOptions, external_images, plan};
use berth_runtime::build::words::{expand_heredoc, expand_word, expand_words, split_keep_quotes};
use berth_runtime::build::{Context, Dockerfile, ImageConfig, stages};
use libfuzzer_sys::fuzz_target;

/// A small build context (files, a directory, a symlink) made once for the whole run.
static CONTEXT: LazyLock<(tempfile::TempDir, Context)> = LazyLock::new(|| {
    let dir = tempfile::Builder::new()
        .prefix("berth-fuzz-context")
        .tempdir()
        .expect("a temp dir for the fuzz context");
    let root = dir.path();
    std::fs::create_dir_all(root.join("src/sub")).expect("context dirs");
    std::fs::write(root.join("app.txt"), b"app\n").expect("context file");
    std::fs::write(root.join("src/main.c"), b"int main(){}\n").expect("context file");
    std::fs::write(root.join("src/sub/x.conf"), b"x=1\n").expect("context file");
    std::os::unix::fs::symlink("src/main.c", root.join("link")).expect("context symlink");
    let ctx = Context::scan(root).expect("scanning the fuzz context");
    (dir, ctx)
});

fn lookup(name: &str) -> Option<String> {
    match name {
        "A" => Some("a".into()),
        "EMPTY" => Some(String::new()),
        "SPACES" => Some("x y  z".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Compiling ignore patterns builds regexes: slow, so only texts that are no Dockerfile
    // (no FROM) take that path, and the Dockerfile paths keep their speed.
    if !text.to_ascii_lowercase().contains("from")
        && let Ok(rules) = IgnoreRules::parse(text)
    {
        for p in [
            "app.txt",
            "src/main.c",
            "src/sub/x.conf",
            "a/b/../c",
            ".git",
        ] {
            let _ = rules.is_excluded(p);
        }
    }
    for escape in ['\\', '`'] {
        let _ = expand_word(text, escape, &lookup);
        let _ = expand_words(text, escape, &lookup);
        let _ = expand_heredoc(text, escape, &lookup);
        let _ = split_keep_quotes(text, escape);
    }
    let df = match Dockerfile::parse(text, "Dockerfile") {
        Ok(df) => df,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let _ = stages::target_index(&df, None);
    let opts = PlanOptions {
        build_args: BTreeMap::from([("A".to_string(), "arg".to_string())]),
        target: None,
        labels: BTreeMap::new(),
        contexts: BTreeMap::new(),
    };
    let Ok(images) = external_images(&df, &opts) else {
        return;
    };
    // Every image the file names resolves to an empty image, as a store would answer.
    let bases: HashMap<String, BaseImage> = images
        .into_iter()
        .map(|r| {
            (
                r.reference,
                BaseImage {
                    digest: format!("sha256:{}", "0".repeat(64)),
                    config: ImageConfig::default(),
                },
            )
        })
        .collect();
    if let Err(e) = plan(&df, &opts, &CONTEXT.1, &bases) {
        let _ = e.to_string();
    }
});
