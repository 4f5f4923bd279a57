//! Finding Compose files and reading them into YAML trees.
//!
//! The first two passes: which files make the project (explicit `-f`, `COMPOSE_FILE`, or the
//! conventional names in the working directory or its parents plus an override file), then each
//! file's text -> `yaml_serde::Value` with a size limit, the alias-bomb defence and `<<` merge keys.

use std::io::Read;
use std::path::{Path, PathBuf};

use yaml_serde::Value;

use super::error::{LoadError, Place};
use super::span::SpanIndex;

/// Names tried in each directory, in order of preference.
pub const CANDIDATES: [&str; 4] = [
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
];

/// Override files picked up next to the main file when no `-f` is given.
pub const OVERRIDES: [&str; 4] = [
    "compose.override.yaml",
    "compose.override.yml",
    "docker-compose.override.yaml",
    "docker-compose.override.yml",
];

/// The path that stands for standard input.
pub fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

/// Resolves the list of Compose files. `explicit` are the `-f` values (relative to `cwd`);
/// `compose_file_env` is `COMPOSE_FILE` (split on `separator`, `COMPOSE_PATH_SEPARATOR` or `:`)
/// when no `-f` was given.
pub fn find_files(
    explicit: &[PathBuf],
    compose_file_env: Option<&str>,
    separator: &str,
    cwd: &Path,
) -> Result<Vec<PathBuf>, LoadError> {
    let abs = |p: &Path| {
        if is_stdin(p) || p.is_absolute() {
            p.to_path_buf()
        } else {
            cwd.join(p)
        }
    };
    if !explicit.is_empty() {
        return Ok(explicit.iter().map(|p| abs(p)).collect());
    }
    if let Some(list) = compose_file_env.filter(|s| !s.trim().is_empty()) {
        return Ok(list
            .split(separator)
            .filter(|s| !s.is_empty())
            .map(|s| abs(Path::new(s)))
            .collect());
    }
    let mut dir = Some(cwd);
    while let Some(d) = dir {
        let found: Vec<PathBuf> = CANDIDATES
            .iter()
            .map(|n| d.join(n))
            .filter(|p| p.is_file())
            .collect();
        if let Some(main) = found.first() {
            if found.len() > 1 {
                tracing::warn!(
                    using = %main.display(),
                    "found several Compose files in {}; using the first",
                    d.display()
                );
            }
            let mut files = vec![main.clone()];
            if let Some(o) = OVERRIDES.iter().map(|n| d.join(n)).find(|p| p.is_file()) {
                files.push(o);
            }
            return Ok(files);
        }
        dir = d.parent();
    }
    Err(LoadError::NoComposeFile {
        dir: cwd.to_path_buf(),
    })
}

/// One Compose file's text, parsed.
#[derive(Debug)]
pub struct Parsed {
    /// The file (`-` for stdin).
    pub path: PathBuf,
    /// The document root, `<<` merges applied (an empty file is refused, as Compose refuses it).
    pub root: Value,
    /// Key positions for error messages.
    pub spans: SpanIndex,
}

/// Reads a file (or stdin for `-`), refusing anything over `limit` bytes.
pub fn read_text(path: &Path, limit: u64) -> Result<String, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut buf = Vec::new();
    if is_stdin(path) {
        std::io::stdin()
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(read_err)?;
    } else {
        let f = std::fs::File::open(path).map_err(read_err)?;
        let len = f.metadata().map_err(read_err)?.len();
        if len > limit {
            return Err(LoadError::TooLarge {
                path: path.to_path_buf(),
                size: len,
                limit,
            });
        }
        f.take(limit + 1).read_to_end(&mut buf).map_err(read_err)?;
    }
    if buf.len() as u64 > limit {
        return Err(LoadError::TooLarge {
            path: path.to_path_buf(),
            size: buf.len() as u64,
            limit,
        });
    }
    String::from_utf8(buf).map_err(|e| {
        read_err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8: {e}"),
        ))
    })
}

/// Parses one document into a tree, applies `<<` merge keys and checks the root is a mapping.
pub fn parse_text(path: &Path, text: &str) -> Result<Parsed, LoadError> {
    let mut root: Value = match yaml_serde::from_str(text) {
        Ok(v) => v,
        Err(source) => {
            let msg = source.to_string();
            if msg.contains("repetition limit") || msg.contains("recursion limit") {
                return Err(LoadError::AliasBomb {
                    path: path.to_path_buf(),
                    source,
                });
            }
            let line = source.location().map(|l| (l.line(), l.column()));
            return Err(LoadError::Yaml {
                place: Place {
                    file: Some(path.to_path_buf()),
                    line,
                    path: String::new(),
                },
                source,
            });
        }
    };
    if root.is_null() {
        return Err(LoadError::invalid(
            place_in(path, &SpanIndex::build(text), ""),
            "empty compose file",
        ));
    }
    let mut key_path = String::new();
    apply_merge(&mut root, &mut key_path).map_err(|(p, message)| {
        LoadError::invalid(place_in(path, &SpanIndex::build(text), &p), message)
    })?;
    let spans = SpanIndex::build(text);
    if !root.is_mapping() {
        return Err(LoadError::invalid(
            Place {
                file: Some(path.to_path_buf()),
                line: Some((1, 1)),
                path: String::new(),
            },
            "top level must be a mapping (services:, networks:, …)",
        ));
    }
    Ok(Parsed {
        path: path.to_path_buf(),
        root,
        spans,
    })
}

/// Reads and parses one file.
pub fn load_file(path: &Path, limit: u64) -> Result<Parsed, LoadError> {
    let text = read_text(path, limit)?;
    parse_text(path, &text)
}

/// A place in a parsed file.
pub fn place_in(file: &Path, spans: &SpanIndex, path: &str) -> Place {
    Place {
        file: Some(file.to_path_buf()),
        line: spans.find(path),
        path: path.to_string(),
    }
}

/// Applies `<<` merge keys bottom-up, so chains (`<<: *b` where b itself merges `*a`) resolve.
/// Keys written in the mapping win over merged ones; earlier sources in a `<<: [*a, *b]` list win
/// over later ones (YAML merge-key semantics).
pub fn apply_merge(v: &mut Value, path: &mut String) -> Result<(), (String, String)> {
    match v {
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                super::interpolate::push_key(path, k);
                apply_merge(item, path)?;
                path.truncate(len);
            }
            if let Some(merge) = m.remove("<<") {
                let sources = match merge {
                    Value::Mapping(src) => vec![src],
                    Value::Sequence(seq) => {
                        let mut out = Vec::new();
                        for s in seq {
                            match s {
                                Value::Mapping(src) => out.push(src),
                                _ => {
                                    return Err((
                                        format!("{path}.<<"),
                                        "merge key `<<` list items must be mappings (aliases like *defaults)".into(),
                                    ));
                                }
                            }
                        }
                        out
                    }
                    _ => {
                        return Err((
                            format!("{path}.<<"),
                            "merge key `<<` must be a mapping or a list of mappings (e.g. `<<: *defaults`)".into(),
                        ));
                    }
                };
                for src in sources {
                    for (k, val) in src {
                        if !m.contains_key(&k) {
                            m.insert(k, val);
                        }
                    }
                }
            }
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                let len = path.len();
                super::interpolate::push_index(path, i);
                apply_merge(item, path)?;
                path.truncate(len);
            }
        }
        Value::Tagged(t) => apply_merge(&mut t.value, path)?,
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_merge_keys_resolve() {
        let text = "a: &a {x: 1, y: 1}\nb: &b\n  <<: *a\n  y: 2\nc:\n  <<: *b\n  z: 3\n";
        let p = parse_text(Path::new("t.yaml"), text).unwrap();
        assert_eq!(p.root["c"]["x"], Value::from(1));
        assert_eq!(p.root["c"]["y"], Value::from(2));
        assert_eq!(p.root["c"]["z"], Value::from(3));
        assert!(p.root["c"].get("<<").is_none());
    }

    #[test]
    fn empty_file_is_refused() {
        for text in ["", "# only a comment\n", "~\n"] {
            let Err(e) = parse_text(Path::new("t.yaml"), text) else {
                panic!("{text:?} loads")
            };
            assert!(e.to_string().contains("empty compose file"), "{e}");
        }
    }

    #[test]
    fn bad_merge_is_located() {
        let text = "services:\n  web:\n    <<: 5\n";
        let err = parse_text(Path::new("t.yaml"), text)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("t.yaml:3:5: services.web.<<"), "{err}");
    }
}
