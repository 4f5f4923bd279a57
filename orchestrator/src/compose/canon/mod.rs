//! Normalisation: every short syntax to its long form, on the YAML tree of one file.
//!
//! Runs per file (after interpolation, before files are merged) so that merging can key ports by
//! (ip, target, published, protocol), volumes by target, and so on, and so relative paths are
//! resolved against the right directory. Type problems found here are collected as [`Issue`]s
//! with the file, line and key path; the typed conversion later checks what is left.
//!
//! One file per subject, each an `impl Canon` with its own tests: `values` (scalars, lists,
//! `KEY=VALUE` dictionaries, the `!reset`/`!override` tags), `service` (a service's keys),
//! `ports`, `mounts` (volumes, devices, host paths), `build`, and `objects` (top-level
//! networks, volumes, configs, secrets and a service's references to them).

mod build;
mod mounts;
mod objects;
mod ports;
mod service;
mod values;

use std::path::{Path, PathBuf};

use yaml_serde::{Mapping, Value};

use super::error::{Issue, Place};
use super::fields::unknown_key_message;
use super::span::SpanIndex;
use values::with_tag;

pub use mounts::clean;
pub use ports::parse_port_spec;
pub use service::check_restart;
pub use values::{kind, scalar_string, tagged};

/// Top-level keys of a Compose file.
pub const TOP_LEVEL: [&str; 9] = [
    "version", "name", "services", "networks", "volumes", "configs", "secrets", "include", "models",
];

/// Normalisation context for one file.
pub struct Canon<'a> {
    /// The file being normalised (for messages).
    pub file: &'a Path,
    /// Its key positions.
    pub spans: &'a SpanIndex,
    /// Directory relative paths resolve against.
    pub base_dir: &'a Path,
    /// `$HOME` for `~` in paths.
    pub home: Option<PathBuf>,
    /// Findings so far.
    pub issues: Vec<Issue>,
    /// Non-fatal notes (obsolete `version:` …).
    pub warnings: Vec<String>,
    /// Give `build` without `context` this file's directory (included and extended files).
    pub fill_build_context: bool,
}

impl<'a> Canon<'a> {
    /// A context for `file`, resolving relative paths against `base_dir`.
    /// A context for `file`, resolving relative paths against `base_dir`.
    pub fn new(
        file: &'a Path,
        spans: &'a SpanIndex,
        base_dir: &'a Path,
        home: Option<PathBuf>,
    ) -> Self {
        Canon {
            file,
            spans,
            base_dir,
            home,
            issues: Vec::new(),
            warnings: Vec::new(),
            fill_build_context: false,
        }
    }

    fn err(&mut self, path: &str, message: impl Into<String>) {
        self.issues.push(Issue {
            place: Place {
                file: Some(self.file.to_path_buf()),
                line: self.spans.find(path),
                path: path.to_string(),
            },
            message: message.into(),
        });
    }

    /// Normalises a whole file's root mapping in place.
    pub fn file_root(&mut self, root: &mut Mapping) {
        let keys: Vec<Value> = root.keys().cloned().collect();
        for k in keys {
            let Some(key) = k.as_str().map(str::to_string) else {
                self.err("", format!("top-level key {k:?} must be a string"));
                root.remove(&k);
                continue;
            };
            if key.starts_with("x-") {
                continue;
            }
            if !TOP_LEVEL.contains(&key.as_str()) {
                let msg = unknown_key_message(&key, TOP_LEVEL);
                self.err(&key, msg);
                root.remove(&k);
                continue;
            }
            if key == "version" {
                self.warnings.push(format!(
                    "{}: the top-level `version` is obsolete and ignored",
                    self.file.display()
                ));
                root.remove(&k);
                continue;
            }
            let Some(v) = root.get_mut(&k) else { continue };
            match key.as_str() {
                "name" => {
                    if let Some(s) = scalar_string(v) {
                        *v = Value::String(s);
                    } else {
                        self.err("name", "must be a string");
                    }
                }
                "services" => self.each_entry("services", v, |cx, path, name, svc| {
                    cx.service(path, name, svc)
                }),
                "networks" => self.each_entry("networks", v, |cx, path, _, n| cx.network(path, n)),
                "volumes" => self.each_entry("volumes", v, |cx, path, _, n| cx.volume(path, n)),
                "configs" => {
                    self.each_entry("configs", v, |cx, path, _, n| cx.file_object(path, n))
                }
                "secrets" => {
                    self.each_entry("secrets", v, |cx, path, _, n| cx.file_object(path, n))
                }
                _ => {}
            }
        }
    }

    fn each_entry(
        &mut self,
        section: &str,
        v: &mut Value,
        mut f: impl FnMut(&mut Self, &str, &str, &mut Value),
    ) {
        if v.is_null() {
            *v = Value::Mapping(Mapping::new());
            return;
        }
        let Some(m) = v.as_mapping_mut() else {
            self.err(
                section,
                format!("must be a mapping of names, got {}", kind(v)),
            );
            *v = Value::Mapping(Mapping::new());
            return;
        };
        for (k, entry) in m.iter_mut() {
            let name = crate::compose::interpolate::key_text(k);
            if name.starts_with("x-") {
                continue;
            }
            let path = format!("{section}.{name}");
            with_tag(entry, |e| f(self, &path, &name, e));
        }
    }
}

#[cfg(test)]
pub(super) mod testing {
    //! Runs one pass alone on a YAML snippet.

    use std::path::Path;

    use yaml_serde::Value;

    use super::Canon;
    use crate::compose::span::SpanIndex;

    /// Parses `yaml`, runs `pass` on it as a file of `/proj` would (home `/home/u`), and
    /// returns the normalised value with the messages of the issues found.
    pub fn run(yaml: &str, pass: impl FnOnce(&mut Canon, &mut Value)) -> (Value, Vec<String>) {
        let spans = SpanIndex::build(yaml);
        let mut v: Value = yaml_serde::from_str(yaml).expect("test YAML parses");
        let mut cx = Canon::new(
            Path::new("/proj/compose.yaml"),
            &spans,
            Path::new("/proj"),
            Some("/home/u".into()),
        );
        pass(&mut cx, &mut v);
        let issues = cx
            .issues
            .iter()
            .map(|i| format!("{}: {}", i.place.path, i.message))
            .collect();
        (v, issues)
    }
}
