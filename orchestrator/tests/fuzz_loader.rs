//! A brief mutation fuzzer for the loader: mutated fixture files must load or fail with an error,
//! never panic and never hang. Seeded, so a failure is reproducible (`BERTH_FUZZ_SEED`,
//! `BERTH_FUZZ_ITERS` widen the search locally).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth::compose::{LoadOptions, load};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

const TOKENS: &[&str] = &[
    "${",
    "}",
    "$",
    "$$",
    "${A:-",
    "${B:?x}",
    ":",
    ": ",
    "- ",
    "\n",
    "  ",
    "<<: *a",
    "&a ",
    "*a",
    "!reset ",
    "!override ",
    "[",
    "]",
    "{",
    "}",
    "\"",
    "'",
    "#",
    "99999",
    "-1",
    "1.5",
    "null",
    "true",
    "services:",
    "ports:",
    "volumes:",
    "depends_on:",
    "extends: x",
    "include: [x.yaml]",
    "build: .",
    "healthcheck:",
    "test: NONE",
    "\t",
    "\u{0}",
    "é",
    "~",
    "../",
    "/",
    "::",
    "0x",
    "1m30s",
    "512q",
    "service:web",
    "profiles: [p]",
    "x-y: 1",
];

fn mutate(rng: &mut Rng, text: &str) -> String {
    let mut s: Vec<char> = text.chars().collect();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        let pos = rng.below(s.len() + 1);
        match rng.below(6) {
            0 if !s.is_empty() => {
                let end = (pos + 1 + rng.below(8)).min(s.len());
                s.drain(pos.min(end)..end);
            }
            1 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.splice(pos..pos, t.chars());
            }
            2 if !s.is_empty() => {
                // Duplicate a line.
                let text: String = s.iter().collect();
                let lines: Vec<&str> = text.lines().collect();
                let i = rng.below(lines.len());
                let mut out = lines.clone();
                out.insert(i, lines[i]);
                s = out.join("\n").chars().collect();
            }
            3 if !s.is_empty() => {
                let i = rng.below(s.len());
                s[i] = char::from_u32(32 + rng.below(95) as u32).unwrap_or('x');
            }
            4 => {
                // Re-indent a line.
                let text: String = s.iter().collect();
                let mut lines: Vec<String> = text.lines().map(String::from).collect();
                if !lines.is_empty() {
                    let i = rng.below(lines.len());
                    let pad = " ".repeat(rng.below(7));
                    lines[i] = format!("{pad}{}", lines[i].trim_start());
                }
                s = lines.join("\n").chars().collect();
            }
            _ => {
                let t = TOKENS[rng.below(TOKENS.len())];
                s.extend(t.chars());
            }
        }
    }
    s.into_iter().collect()
}

fn seeds() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "yaml") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures"),
        &mut files,
    );
    files.sort();
    files
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|t| !t.contains("alias bomb"))
        .collect()
}

#[test]
fn mutated_files_never_panic() {
    let seed: u64 = std::env::var("BERTH_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5EED_BE57);
    let iters: usize = std::env::var("BERTH_FUZZ_ITERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1500);
    let corpus = seeds();
    assert!(!corpus.is_empty());
    let dir = tempfile::Builder::new()
        .prefix("berth-fuzz-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("compose.yaml");
    std::fs::write(dir.path().join("x.yaml"), "services: {}\n").unwrap();
    let mut env = BTreeMap::new();
    env.insert("A".to_string(), "a".to_string());
    let mut rng = Rng(seed | 1);
    let (mut ok, mut failed) = (0, 0);
    for i in 0..iters {
        let base = &corpus[rng.below(corpus.len())];
        let text = mutate(&mut rng, base);
        std::fs::write(&file, &text).unwrap();
        let opts = LoadOptions {
            files: vec![file.clone()],
            environment: Some(env.clone()),
            working_dir: Some(dir.path().to_path_buf()),
            ..Default::default()
        };
        let result = std::panic::catch_unwind(|| load(&opts));
        match result {
            Ok(Ok(_)) => ok += 1,
            Ok(Err(e)) => {
                // Errors must say something.
                assert!(!e.to_string().is_empty(), "empty error for input:\n{text}");
                failed += 1;
            }
            Err(_) => panic!("loader panicked at iteration {i} (seed {seed}) on input:\n{text}"),
        }
    }
    assert_eq!(ok + failed, iters);
}

#[test]
fn deep_nesting_and_big_inputs_are_refused_cleanly() {
    let dir = tempfile::Builder::new()
        .prefix("berth-fuzz-")
        .tempdir()
        .unwrap();
    let file = dir.path().join("compose.yaml");
    let load_text = |text: &str, limit: u64| {
        std::fs::write(&file, text).unwrap();
        load(&LoadOptions {
            files: vec![file.clone()],
            environment: Some(BTreeMap::new()),
            working_dir: Some(dir.path().to_path_buf()),
            max_file_size: limit,
            ..Default::default()
        })
    };
    let deep = format!("services: {}{}", "[".repeat(5000), "]".repeat(5000));
    assert!(load_text(&deep, 1 << 20).is_err());
    let deep_map = format!("x-a: {}1{}", "{a: ".repeat(3000), "}".repeat(3000));
    assert!(load_text(&deep_map, 1 << 20).is_err());
    let err = load_text(&"# padding\n".repeat(2000), 1000).unwrap_err();
    assert!(
        err.to_string().contains("over the limit of 1000 bytes"),
        "{err}"
    );
}
