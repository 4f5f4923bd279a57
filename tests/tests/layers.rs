//! The orchestrator's layers hold: cli -> api (client and types); daemon -> engine ->
//! runtime/netd. Reads the sources and fails naming file:line of every `crate::` path that
//! goes against the direction, so a new import cannot slip in unnoticed.

use std::path::{Path, PathBuf};

/// One layer and the modules it must not name.
struct Rule {
    /// Directory under `orchestrator/src`.
    dir: &'static str,
    /// Top-level modules of the crate it must not import.
    forbidden: &'static [&'static str],
    /// Subdirectories not checked yet, with why.
    exempt: &'static [(&'static str, &'static str)],
}

const RULES: &[Rule] = &[
    Rule {
        dir: "engine",
        forbidden: &["cli", "daemon"],
        exempt: &[],
    },
    Rule {
        dir: "daemon",
        forbidden: &["cli"],
        exempt: &[],
    },
    Rule {
        dir: "api",
        forbidden: &["cli", "daemon", "engine"],
        exempt: &[],
    },
    Rule {
        dir: "cli",
        forbidden: &["daemon", "engine"],
        exempt: &[],
    },
    // Conversions are pure functions of the loaded project: no engine, daemon or wire.
    Rule {
        dir: "convert",
        forbidden: &["cli", "daemon", "engine", "api"],
        exempt: &[],
    },
];

/// Imports against the direction that remain for now: (file, path prefix, why).
const KNOWN: &[(&str, &str, &str)] = &[
    (
        "cli/compose_containers.rs",
        "engine::labels",
        "logs/exec/wait/top/cp of a project's containers still read the runtime in the CLI, by label",
    ),
    (
        "cli/compose_containers.rs",
        "engine::project_members::",
        "the CLI-side verbs find a project's containers with the engine's one members query",
    ),
    (
        "cli/compose_containers.rs",
        "engine::translate::parse_signal",
        "the CLI-side verbs parse signal names as the engine does",
    ),
    (
        "cli/container/config.rs",
        "engine::translate::parse_signal",
        "`container kill -s` runs in the CLI and parses signal names as the engine does",
    ),
    (
        "cli/container/config.rs",
        "engine::resolv::one_line",
        "flags that become lines of /etc/hosts or resolv.conf are refused before the request, by the engine's one check",
    ),
    (
        "cli/container/listing.rs",
        "engine::labels",
        "`container ls`/`inspect` read single containers through the runtime in the CLI, by the engine's image label",
    ),
    (
        "cli/container/mod.rs",
        "engine::stack::runtime_config",
        "start/stop/rm/exec of single containers still run against the runtime in the CLI, which must use the daemon's cgroup parent",
    ),
    (
        "cli/container/mod.rs",
        "engine::container_spec::",
        "a unit test (cfg(test)) translates lowered flags to show a refusal names the value",
    ),
    (
        "cli/build_network.rs",
        "engine::build_net::",
        "`image build` runs in the CLI: its RUN steps get the host's resolvers and report failures as the daemon's builds do",
    ),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../orchestrator/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Every `crate::` path in `text` outside comments, as (line, path after `crate::`); a
/// group `crate::{a::b, c}` gives one path per member.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    // Comments out, line structure kept.
    let code: String = text
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = code[from..].find("crate::") {
        let at = from + i;
        from = at + "crate::".len();
        // `berth_crate::` or `mycrate::` are other names.
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let line = code[..at].matches('\n').count() + 1;
        let rest = &code[from..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let m: String = member.split_whitespace().collect();
                if !m.is_empty() {
                    out.push((line, m));
                }
            }
        } else {
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            out.push((line, path));
        }
    }
    out
}

/// The violations of `rule` in `file` (relative to `orchestrator/src`) holding `text`.
fn violations(rule: &Rule, rel: &str, text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (line, path) in crate_paths(text) {
        let top = path.split("::").next().unwrap_or_default();
        if !rule.forbidden.contains(&top) {
            continue;
        }
        if KNOWN
            .iter()
            .any(|(f, prefix, _)| *f == rel && path.starts_with(prefix))
        {
            continue;
        }
        out.push(format!(
            "orchestrator/src/{rel}:{line}: crate::{path} (the {} layer must not import {top})",
            rule.dir
        ));
    }
    out
}

#[test]
fn layers_import_only_along_the_direction() {
    let root = src();
    let mut found = Vec::new();
    let mut checked = 0;
    for rule in RULES {
        let mut files = Vec::new();
        rust_files(&root.join(rule.dir), &mut files);
        for f in files {
            let rel = f
                .strip_prefix(&root)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            if rule.exempt.iter().any(|(d, _)| rel.starts_with(d)) {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            found.extend(violations(rule, &rel, &text));
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} files found under {}",
        root.display()
    );
    assert!(
        found.is_empty(),
        "imports against the layers (cli -> api; daemon -> engine -> runtime/netd):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_sees_plain_grouped_and_commented_paths() {
    let rule = &RULES[0];
    let text = "use crate::cli::network;\n// crate::daemon in a comment\nuse crate::{api::x, daemon::routes};\nlet a = mycrate::cli::y;\nfn f() { crate::daemon::run() }\n";
    let v = violations(rule, "engine/x.rs", text);
    assert_eq!(v.len(), 3, "{v:?}");
    assert!(v[0].starts_with("orchestrator/src/engine/x.rs:1: crate::cli::network"));
    assert!(v[1].starts_with("orchestrator/src/engine/x.rs:3: crate::daemon::routes"));
    assert!(v[2].starts_with("orchestrator/src/engine/x.rs:5: crate::daemon::run"));
    // A known exception passes, only for its file.
    let cli = &RULES[3];
    let known = "use crate::engine::labels;\n";
    assert!(violations(cli, "cli/compose_containers.rs", known).is_empty());
    assert_eq!(violations(cli, "cli/system.rs", known).len(), 1);
}
