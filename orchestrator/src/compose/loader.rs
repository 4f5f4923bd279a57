//! The pipeline: find -> parse -> merge keys -> interpolate -> normalise -> include / extends ->
//! merge files -> profiles -> typed model -> defaults -> validation.
//!
//! Each pass lives in its own module; this one only strings them together and keeps what error
//! messages need (which file each key came from).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use yaml_serde::{Mapping, Value};

use super::canon::{Canon, clean, scalar_string};
use super::dotenv;
use super::error::{Issue, LoadError, Place};
use super::fields::suggest;
use super::interpolate::{Unset, interpolate_value, key_text};
use super::merge::{merge_roots, merge_service};
use super::model::{Project, Service};
use super::source::{self, is_stdin};
use super::span::SpanIndex;
use super::validate;

/// Default size limit for one Compose file (compose files are small; this stops accidents early).
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// What to load and how. `Default` loads from the current directory with the process environment.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// `-f` files in order (`-` = stdin); empty = look for the conventional names.
    pub files: Vec<PathBuf>,
    /// `-p`.
    pub project_name: Option<String>,
    /// `--project-directory`.
    pub project_directory: Option<PathBuf>,
    /// `--env-file` (replaces `.env` in the project directory).
    pub env_files: Vec<PathBuf>,
    /// `--profile`.
    pub profiles: Vec<String>,
    /// Services named on the command line: they enable their own profiles.
    pub services: Vec<String>,
    /// `false` for `--no-interpolate`.
    pub interpolate: bool,
    /// The process environment; `None` reads the real one (tests pass their own).
    pub environment: Option<BTreeMap<String, String>>,
    /// Working directory; `None` = the process's.
    pub working_dir: Option<PathBuf>,
    /// Per-file size limit in bytes.
    pub max_file_size: u64,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            files: Vec::new(),
            project_name: None,
            project_directory: None,
            env_files: Vec::new(),
            profiles: Vec::new(),
            services: Vec::new(),
            interpolate: true,
            environment: None,
            working_dir: None,
            max_file_size: DEFAULT_MAX_FILE_SIZE,
        }
    }
}

/// Loads, merges, normalises and validates a project.
pub fn load(opts: &LoadOptions) -> Result<Project, LoadError> {
    let cwd = match &opts.working_dir {
        Some(d) => d.clone(),
        None => std::env::current_dir().map_err(|source| LoadError::Read {
            path: PathBuf::from("."),
            source,
        })?,
    };
    let process_env: BTreeMap<String, String> = match &opts.environment {
        Some(e) => e.clone(),
        None => std::env::vars().collect(),
    };
    // `--env-file`, else COMPOSE_ENV_FILES (comma-separated), else `.env`.
    let env_files: Vec<PathBuf> = match process_env.get("COMPOSE_ENV_FILES") {
        Some(list) if opts.env_files.is_empty() => list
            .split(',')
            .map(str::trim)
            .filter(|f| !f.is_empty())
            .map(PathBuf::from)
            .collect(),
        _ => opts.env_files.clone(),
    };
    // COMPOSE_FILE and COMPOSE_PATH_SEPARATOR may come from the environment file of the
    // working (or --project-directory) directory, as with Compose; the shell's win.
    let file_env = if opts.files.is_empty() {
        let dir = match &opts.project_directory {
            Some(d) => clean(&cwd.join(d)),
            None => cwd.clone(),
        };
        project_env(&dir, &env_files, &cwd, &process_env)?
    } else {
        process_env.clone()
    };
    // Files named by COMPOSE_FILE: the working directory's environment file counts as the
    // shell's, over the project directory's (as Compose gives it).
    let process_env = if opts.files.is_empty() && file_env.contains_key("COMPOSE_FILE") {
        file_env.clone()
    } else {
        process_env
    };
    let files = source::find_files(
        &opts.files,
        file_env.get("COMPOSE_FILE").map(String::as_str),
        file_env
            .get("COMPOSE_PATH_SEPARATOR")
            .map(String::as_str)
            .unwrap_or(":"),
        &cwd,
    )?;
    let project_dir = match &opts.project_directory {
        Some(d) if d.is_absolute() => clean(d),
        Some(d) => clean(&cwd.join(d)),
        None => files
            .iter()
            .find(|f| !is_stdin(f))
            .and_then(|f| f.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| cwd.clone()),
    };
    let env = project_env(&project_dir, &env_files, &cwd, &process_env)?;
    let mut ld = Loader {
        opts,
        env: env.clone(),
        process_env: process_env.clone(),
        home: env.get("HOME").map(PathBuf::from),
        unset: Unset::default(),
        trees: HashMap::new(),
        spans: Vec::new(),
        issues: Vec::new(),
        warnings: Vec::new(),
    };

    let started = std::time::Instant::now();
    let mut root = Mapping::new();
    for file in &files {
        let tree = ld.file_tree(file, &project_dir, false, &mut Vec::new())?;
        merge_roots(&mut root, tree);
    }
    ld.bail()?;
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        files = files.len(),
        "files parsed, normalised and merged"
    );

    let name = project_name(opts, &env, &root, &project_dir)?;
    let mut project = ld.build_project(name, root)?;
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        "typed model built"
    );
    project.working_dir = project_dir;
    project.compose_files = files;
    project.environment = env.clone();
    ld.resolve_environment(&mut project);
    ld.bail()?;
    super::defaults::apply(&mut project);
    let mut issues = validate::check(&project, opts);
    for issue in &mut issues {
        if issue.place.file.is_none() {
            issue.place = ld.place(&issue.place.path);
        }
    }
    ld.issues.extend(issues);
    ld.bail()?;
    tracing::debug!(
        elapsed_us = started.elapsed().as_micros() as u64,
        services = project.services.len(),
        "project validated"
    );

    for name in &ld.unset.names {
        let msg = format!("the {name:?} variable is not set; defaulting to a blank string");
        tracing::warn!("{msg}");
        ld.warnings.push(msg);
    }
    for w in &ld.warnings {
        if !w.contains("variable is not set") {
            tracing::warn!("{w}");
        }
    }
    project.warnings = ld.warnings;
    Ok(project)
}

/// `.env` (or `--env-file`s) under the process environment, which wins.
fn project_env(
    project_dir: &Path,
    env_files: &[PathBuf],
    cwd: &Path,
    process_env: &BTreeMap<String, String>,
) -> Result<BTreeMap<String, String>, LoadError> {
    let mut env = BTreeMap::new();
    let files: Vec<(PathBuf, bool)> = if env_files.is_empty() {
        vec![(project_dir.join(".env"), false)]
    } else {
        env_files
            .iter()
            .map(|f| {
                (
                    if f.is_absolute() {
                        f.clone()
                    } else {
                        cwd.join(f)
                    },
                    true,
                )
            })
            .collect()
    };
    for (path, required) in files {
        if !required && !path.is_file() {
            continue;
        }
        let lookup = |k: &str| process_env.get(k).cloned().or_else(|| env.get(k).cloned());
        let entries = dotenv::read(&path, false, &lookup)?;
        for (k, v) in entries {
            if let Some(v) = v.or_else(|| process_env.get(&k).cloned()) {
                env.insert(k, v);
            }
        }
    }
    for (k, v) in process_env {
        env.insert(k.clone(), v.clone());
    }
    Ok(env)
}

/// -p, COMPOSE_PROJECT_NAME, `name:`, then the project directory's name (normalised).
fn project_name(
    opts: &LoadOptions,
    env: &BTreeMap<String, String>,
    root: &Mapping,
    project_dir: &Path,
) -> Result<String, LoadError> {
    let explicit = opts
        .project_name
        .clone()
        .or_else(|| {
            env.get("COMPOSE_PROJECT_NAME")
                .cloned()
                .filter(|s| !s.is_empty())
        })
        .or_else(|| {
            root.get("name")
                .and_then(scalar_string)
                .filter(|s| !s.is_empty())
        });
    if let Some(n) = explicit {
        let lower = n.to_lowercase();
        if !valid_project_name(&lower) {
            return Err(LoadError::ProjectName { name: n });
        }
        return Ok(lower);
    }
    let dir = project_dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let norm = normalize_project_name(&dir);
    if norm.is_empty() {
        return Err(LoadError::ProjectName { name: dir });
    }
    Ok(norm)
}

/// Lowercase `[a-z0-9_-]`, starting with a letter or digit.
pub fn valid_project_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// Makes a directory name a valid project name: lowercase, other characters dropped.
pub fn normalize_project_name(s: &str) -> String {
    let lowered: String = s
        .to_lowercase()
        .chars()
        .filter(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_' || *c == '-')
        .collect();
    lowered.trim_start_matches(['_', '-']).to_string()
}

struct Loader<'a> {
    opts: &'a LoadOptions,
    /// Interpolation environment of the file being read (an include may add its env files).
    env: BTreeMap<String, String>,
    process_env: BTreeMap<String, String>,
    home: Option<PathBuf>,
    unset: Unset,
    /// Normalised trees of files loaded for `extends` (and the main files), by path.
    trees: HashMap<PathBuf, Mapping>,
    spans: Vec<(PathBuf, SpanIndex)>,
    issues: Vec<Issue>,
    warnings: Vec<String>,
}

impl Loader<'_> {
    fn bail(&mut self) -> Result<(), LoadError> {
        if self.issues.is_empty() {
            return Ok(());
        }
        Err(LoadError::Invalid {
            issues: std::mem::take(&mut self.issues),
        })
    }

    /// Best place for a key path over every file read, preferring the deepest match, then the
    /// later file.
    fn place(&self, path: &str) -> Place {
        let mut best: Option<(usize, &Path, (usize, usize))> = None;
        for (file, spans) in &self.spans {
            if let Some((len, pos)) = spans.find_prefix(path)
                && best.is_none_or(|(l, _, _)| len >= l)
            {
                best = Some((len, file, pos));
            }
        }
        Place {
            file: best.map(|(_, f, _)| f.to_path_buf()),
            line: best.map(|(_, _, p)| p),
            path: path.to_string(),
        }
    }

    /// One file: parsed, interpolated, normalised, includes and extends resolved.
    /// `own_dir`: the file is included or extended, so a `build` without `context` builds in
    /// its own directory rather than the project directory.
    fn file_tree(
        &mut self,
        path: &Path,
        base_dir: &Path,
        own_dir: bool,
        include_stack: &mut Vec<PathBuf>,
    ) -> Result<Mapping, LoadError> {
        let parsed = source::load_file(path, self.opts.max_file_size)?;
        let mut root = parsed.root;
        if self.opts.interpolate {
            let env = &self.env;
            let lookup = |k: &str| env.get(k).cloned();
            let mut key_path = String::new();
            interpolate_value(&mut root, &mut key_path, &lookup, &mut self.unset).map_err(
                |(p, message)| LoadError::Interpolation {
                    place: source::place_in(path, &parsed.spans, &p),
                    message,
                },
            )?;
        }
        let Value::Mapping(mut root) = root else {
            return Err(LoadError::invalid(
                source::place_in(path, &parsed.spans, ""),
                "top level must be a mapping",
            ));
        };
        let mut cx = Canon::new(path, &parsed.spans, base_dir, self.home.clone());
        cx.fill_build_context = own_dir;
        cx.file_root(&mut root);
        self.issues.append(&mut cx.issues);
        self.warnings.append(&mut cx.warnings);
        let spans = parsed.spans;
        if let Some(inc) = root.remove("include") {
            include_stack.push(path.to_path_buf());
            self.include(path, &spans, base_dir, inc, &mut root, include_stack)?;
            include_stack.pop();
        }
        self.spans.push((path.to_path_buf(), spans));
        self.resolve_extends(path, &mut root)?;
        Ok(root)
    }

    fn include(
        &mut self,
        path: &Path,
        spans: &SpanIndex,
        base_dir: &Path,
        inc: Value,
        root: &mut Mapping,
        stack: &mut Vec<PathBuf>,
    ) -> Result<(), LoadError> {
        let Value::Sequence(items) = inc else {
            self.issues.push(Issue {
                place: source::place_in(path, spans, "include"),
                message: "must be a list of paths or {path, project_directory, env_file}".into(),
            });
            return Ok(());
        };
        for (i, item) in items.into_iter().enumerate() {
            let ip = format!("include[{i}]");
            let mut include_env: Vec<PathBuf> = Vec::new();
            let (paths, proj_dir) = match &item {
                Value::Mapping(m) => {
                    for k in m.keys() {
                        let ks = key_text(k);
                        if !["path", "project_directory", "env_file"].contains(&ks.as_str()) {
                            self.issues.push(Issue {
                                place: source::place_in(path, spans, &format!("{ip}.{ks}")),
                                message: super::fields::unknown_key_message(
                                    &ks,
                                    ["path", "project_directory", "env_file"],
                                ),
                            });
                        }
                    }
                    include_env = match m.get("env_file") {
                        Some(Value::Sequence(s)) => s.iter().filter_map(scalar_string).collect(),
                        Some(v) => scalar_string(v).into_iter().collect(),
                        None => vec![],
                    }
                    .into_iter()
                    .map(|f| clean(&base_dir.join(f)))
                    .collect();
                    let paths: Vec<String> = match m.get("path") {
                        Some(Value::Sequence(s)) => s.iter().filter_map(scalar_string).collect(),
                        Some(v) => scalar_string(v).into_iter().collect(),
                        None => vec![],
                    };
                    (paths, m.get("project_directory").and_then(scalar_string))
                }
                other => (scalar_string(other).into_iter().collect(), None),
            };
            if paths.is_empty() {
                self.issues.push(Issue {
                    place: source::place_in(path, spans, &ip),
                    message: "needs a path".into(),
                });
                continue;
            }
            if let Some(remote) = paths
                .iter()
                .find(|p| p.contains("://") || p.starts_with("oci:") || p.starts_with("git@"))
            {
                self.issues.push(Issue {
                    place: source::place_in(path, spans, &ip),
                    message: format!(
                        "remote include {remote:?} is not supported by berth yet; use a local path"
                    ),
                });
                continue;
            }
            let abs: Vec<PathBuf> = paths.iter().map(|p| clean(&base_dir.join(p))).collect();
            let inc_dir = match proj_dir {
                Some(d) => clean(&base_dir.join(d)),
                None => abs[0].parent().map(Path::to_path_buf).unwrap_or_default(),
            };
            // The included files see their own env files (or `.env` in their project directory)
            // over the including project's variables; the process environment still wins.
            let saved_env = self.env.clone();
            let extra = project_env(&inc_dir, &include_env, base_dir, &self.process_env)?;
            self.env.extend(extra);
            let mut merged = Mapping::new();
            let result = self.include_files(&abs, &inc_dir, stack, &mut merged);
            self.env = saved_env;
            result?;
            for section in ["services", "networks", "volumes", "configs", "secrets"] {
                let Some(Value::Mapping(from)) = merged.remove(section) else {
                    continue;
                };
                let to = root
                    .entry(section.into())
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                let Some(to) = to.as_mapping_mut() else {
                    continue;
                };
                for (k, v) in from {
                    if to.contains_key(&k) {
                        let name = key_text(&k);
                        self.issues.push(Issue {
                            place: source::place_in(path, spans, &format!("{section}.{name}")),
                            message: format!(
                                "{section}.{name} conflicts with the one imported from {}",
                                abs[0].display()
                            ),
                        });
                    } else {
                        to.insert(k, v);
                    }
                }
            }
        }
        Ok(())
    }

    fn include_files(
        &mut self,
        abs: &[PathBuf],
        inc_dir: &Path,
        stack: &mut Vec<PathBuf>,
        merged: &mut Mapping,
    ) -> Result<(), LoadError> {
        for f in abs {
            if stack.contains(f) {
                let mut chain: Vec<String> =
                    stack.iter().map(|p| p.display().to_string()).collect();
                chain.push(f.display().to_string());
                return Err(LoadError::Loop {
                    kind: "include",
                    chain: chain.join(" -> "),
                });
            }
            let tree = self.file_tree(f, inc_dir, true, stack)?;
            merge_roots(merged, tree);
        }
        Ok(())
    }

    /// Resolves `extends` of every service of a file (recursively, across files, loops named).
    fn resolve_extends(&mut self, path: &Path, root: &mut Mapping) -> Result<(), LoadError> {
        let has = root
            .get("services")
            .and_then(Value::as_mapping)
            .is_some_and(|s| s.values().any(|v| v.get("extends").is_some()));
        if !has {
            return Ok(());
        }
        self.trees.insert(path.to_path_buf(), root.clone());
        let names: Vec<String> = root
            .get("services")
            .and_then(Value::as_mapping)
            .map(|s| s.keys().map(key_text).collect())
            .unwrap_or_default();
        for name in names {
            let resolved = self.resolved_service(path, &name, &mut Vec::new())?;
            if let Some(Value::Mapping(services)) = root.get_mut("services") {
                services.insert(Value::String(name), Value::Mapping(resolved));
            }
        }
        Ok(())
    }

    fn resolved_service(
        &mut self,
        file: &Path,
        name: &str,
        stack: &mut Vec<(PathBuf, String)>,
    ) -> Result<Mapping, LoadError> {
        if stack.iter().any(|(f, n)| f == file && n == name) {
            let mut chain: Vec<String> = stack.iter().map(|(_, n)| n.clone()).collect();
            chain.push(name.to_string());
            return Err(LoadError::Loop {
                kind: "extends",
                chain: chain.join(" -> "),
            });
        }
        if !self.trees.contains_key(file) {
            let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
            let tree = self.file_tree(file, &dir, true, &mut Vec::new())?;
            self.trees.insert(file.to_path_buf(), tree);
        }
        let tree = &self.trees[file];
        let services = tree.get("services").and_then(Value::as_mapping);
        let Some(svc) = services
            .and_then(|s| s.get(name))
            .and_then(Value::as_mapping)
        else {
            let known: Vec<String> = services
                .map(|s| s.keys().map(key_text).collect())
                .unwrap_or_default();
            let (from_file, from) = stack.last().cloned().unwrap_or_default();
            let hint = suggest(name, known.iter().map(String::as_str))
                .map(|s| format!(" (did you mean {s:?}?)"))
                .unwrap_or_default();
            return Err(LoadError::invalid(
                self.place_in_file(&from_file, &format!("services.{from}.extends")),
                format!(
                    "extends: service {name:?} not found in {}{hint}",
                    file.display()
                ),
            ));
        };
        let mut svc = svc.clone();
        let Some(ext) = svc.remove("extends") else {
            return Ok(svc);
        };
        let base_name = ext
            .get("service")
            .and_then(scalar_string)
            .unwrap_or_default();
        let base_file = ext
            .get("file")
            .and_then(scalar_string)
            .map(PathBuf::from)
            .unwrap_or_else(|| file.to_path_buf());
        stack.push((file.to_path_buf(), name.to_string()));
        let mut base = self.resolved_service(&base_file, &base_name, stack)?;
        stack.pop();
        merge_service(&mut base, svc);
        Ok(base)
    }

    fn place_in_file(&self, file: &Path, path: &str) -> Place {
        match self.spans.iter().rev().find(|(f, _)| f == file) {
            Some((f, s)) => source::place_in(f, s, path),
            None => self.place(path),
        }
    }

    /// Converts the merged tree into the typed model, applying profiles.
    fn build_project(&mut self, name: String, mut root: Mapping) -> Result<Project, LoadError> {
        let mut project = Project {
            name,
            ..Default::default()
        };
        let mut active: BTreeSet<String> = self.opts.profiles.iter().cloned().collect();
        // `--profile` flags win over COMPOSE_PROFILES, as flags win over COMPOSE_* variables.
        if let Some(p) = self
            .env
            .get("COMPOSE_PROFILES")
            .filter(|_| self.opts.profiles.is_empty())
        {
            active.extend(
                p.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from),
            );
        }
        project.active_profiles = active.iter().cloned().collect();
        let all = active.contains("*");
        for (k, v) in std::mem::take(&mut root) {
            let key = key_text(&k);
            match key.as_str() {
                "services" => {
                    let Value::Mapping(m) = v else { continue };
                    for (sk, sv) in m {
                        let sname = key_text(&sk);
                        if sname.starts_with("x-") {
                            continue;
                        }
                        let path = format!("services.{sname}");
                        let Some(svc) = self.typed_with_ext::<Service>(&path, sv) else {
                            continue;
                        };
                        let enabled = svc.profiles.is_empty()
                            || all
                            || svc.profiles.iter().any(|p| active.contains(p))
                            || self.opts.services.contains(&sname);
                        if enabled {
                            project.services.insert(sname, svc);
                        } else {
                            project.disabled_services.insert(sname, svc);
                        }
                    }
                }
                "networks" => project.networks = self.section(&key, v),
                "volumes" => project.volumes = self.section(&key, v),
                "configs" => project.configs = self.section(&key, v),
                "secrets" => project.secrets = self.section(&key, v),
                "models" => {
                    let msg =
                        "top-level `models` is parsed but not supported by berth yet".to_string();
                    self.warnings.push(msg);
                }
                "name" => {}
                _ if key.starts_with("x-") => {
                    project.extensions.insert(key, v);
                }
                _ => {}
            }
        }
        Ok(project)
    }

    fn section<T: DeserializeOwned + Default>(
        &mut self,
        key: &str,
        v: Value,
    ) -> BTreeMap<String, T> {
        let mut out = BTreeMap::new();
        let Value::Mapping(m) = v else { return out };
        for (k, v) in m {
            let name = key_text(&k);
            if name.starts_with("x-") {
                continue;
            }
            let mut v = if v.is_null() {
                Value::Mapping(Mapping::new())
            } else {
                v
            };
            strip_nested_extensions(&mut v);
            if let Some(t) = self.typed::<T>(&format!("{key}.{name}"), v) {
                out.insert(name, t);
            }
        }
        out
    }

    /// A service: `x-*` keys go to `extensions`, the rest through serde with paths.
    fn typed_with_ext<T: DeserializeOwned + HasExtensions>(
        &mut self,
        path: &str,
        v: Value,
    ) -> Option<T> {
        let mut ext = BTreeMap::new();
        let mut v = v;
        if let Value::Mapping(m) = &mut v
            && m.keys()
                .any(|k| k.as_str().is_some_and(|s| s.starts_with("x-")))
        {
            let keys: Vec<Value> = m
                .keys()
                .filter(|k| k.as_str().is_some_and(|s| s.starts_with("x-")))
                .cloned()
                .collect();
            for k in keys {
                if let Some(val) = m.shift_remove(&k) {
                    ext.insert(key_text(&k), val);
                }
            }
        }
        strip_nested_extensions(&mut v);
        let mut t: T = self.typed(path, v)?;
        t.set_extensions(ext);
        Some(t)
    }

    fn typed<T: DeserializeOwned>(&mut self, path: &str, v: Value) -> Option<T> {
        // Fast path without path tracking; only a failure pays for the second, tracked pass.
        if let Ok(t) = T::deserialize(&v) {
            return Some(t);
        }
        match serde_path_to_error::deserialize::<_, T>(v) {
            Ok(t) => Some(t),
            Err(e) => {
                let sub = e.path().to_string();
                let full = if sub == "." || sub.is_empty() {
                    path.to_string()
                } else {
                    format!("{path}.{sub}")
                };
                let full = full.replace(".[", "[");
                let message = friendly_serde(&e.inner().to_string());
                self.issues.push(Issue {
                    place: self.place(&full),
                    message,
                });
                None
            }
        }
    }

    /// `env_file` contents under `environment`; bare `KEY`s take the project environment's value.
    fn resolve_environment(&mut self, project: &mut Project) {
        let env = &self.env;
        let lookup = |k: &str| env.get(k).cloned();
        for (name, svc) in project
            .services
            .iter_mut()
            .chain(project.disabled_services.iter_mut())
        {
            let mut merged: BTreeMap<String, Option<String>> = BTreeMap::new();
            for (i, ef) in svc.env_file.iter().enumerate() {
                let path = PathBuf::from(&ef.path);
                if path.is_dir() {
                    // Even when not required: it exists, so it was meant, and cannot be read.
                    self.issues.push(Issue {
                        place: self.place(&format!("services.{name}.env_file[{i}]")),
                        message: format!(
                            "env file {} is a directory, not a file of KEY=VALUE lines",
                            path.display()
                        ),
                    });
                    continue;
                }
                if !path.is_file() {
                    if ef.required {
                        self.issues.push(Issue {
                            place: self.place(&format!("services.{name}.env_file[{i}]")),
                            message: format!("env file {} not found", path.display()),
                        });
                    }
                    continue;
                }
                match dotenv::read(&path, ef.format.as_deref() == Some("raw"), &lookup) {
                    Ok(entries) => {
                        for (k, v) in entries {
                            let v = v.or_else(|| env.get(&k).cloned());
                            if v.is_some() {
                                merged.insert(k, v);
                            }
                        }
                    }
                    Err(e) => self.issues.push(Issue {
                        place: self.place(&format!("services.{name}.env_file[{i}]")),
                        message: e.to_string(),
                    }),
                }
            }
            for (k, v) in std::mem::take(&mut svc.environment) {
                let v = v.or_else(|| env.get(&k).cloned());
                merged.insert(k, v);
            }
            svc.environment = merged;
            // `label_file`: later files win over earlier ones, `labels` over all; a key
            // without a value is left out, as Compose does.
            let mut labels: BTreeMap<String, String> = BTreeMap::new();
            for (i, f) in std::mem::take(&mut svc.label_file).iter().enumerate() {
                match dotenv::read(Path::new(f), false, &lookup) {
                    Ok(entries) => {
                        labels.extend(entries.into_iter().filter_map(|(k, v)| Some((k, v?))));
                    }
                    Err(e) => self.issues.push(Issue {
                        place: self.place(&format!("services.{name}.label_file[{i}]")),
                        message: e.to_string(),
                    }),
                }
            }
            labels.extend(std::mem::take(&mut svc.labels));
            svc.labels = labels;
        }
    }
}

/// Keys whose mappings are free-form (user keys, not Compose fields): `x-` there is data.
const FREE_FORM: [&str; 10] = [
    "environment",
    "labels",
    "annotations",
    "sysctls",
    "extra_hosts",
    "args",
    "driver_opts",
    "options",
    "aux_addresses",
    "ulimits",
];

/// Drops `x-*` extension keys nested inside Compose structures (they may appear anywhere and
/// carry no meaning for berth), leaving free-form maps such as `labels` alone.
fn strip_nested_extensions(v: &mut Value) {
    match v {
        Value::Mapping(m) => {
            if m.keys()
                .any(|k| k.as_str().is_some_and(|s| s.starts_with("x-")))
            {
                m.retain(|k, _| !k.as_str().is_some_and(|s| s.starts_with("x-")));
            }
            for (k, item) in m.iter_mut() {
                if k.as_str().is_some_and(|s| FREE_FORM.contains(&s)) {
                    continue;
                }
                strip_nested_extensions(item);
            }
        }
        Value::Sequence(s) => s.iter_mut().for_each(strip_nested_extensions),
        _ => {}
    }
}

/// Types that carry `x-*` extension fields.
pub trait HasExtensions {
    /// Stores the extension fields taken off before typed conversion.
    fn set_extensions(&mut self, ext: BTreeMap<String, Value>);
}

impl HasExtensions for Service {
    fn set_extensions(&mut self, ext: BTreeMap<String, Value>) {
        self.extensions = ext;
    }
}

/// Rewrites serde's messages into ours, adding a did-you-mean for unknown fields and variants.
fn friendly_serde(msg: &str) -> String {
    let (what, rest) = if let Some(r) = msg.strip_prefix("unknown field `") {
        ("key", r)
    } else if let Some(r) = msg.strip_prefix("unknown variant `") {
        ("value", r)
    } else {
        return msg.to_string();
    };
    let Some((word, tail)) = rest.split_once('`') else {
        return msg.to_string();
    };
    let known: Vec<&str> = tail
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let listed = known.join(", ");
    match suggest(word, known.iter().copied()) {
        Some(s) => format!("unknown {what} {word:?} (did you mean {s:?}?)"),
        None if listed.is_empty() => format!("unknown {what} {word:?}"),
        None => format!("unknown {what} {word:?}; expected one of: {listed}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn project_names() {
        assert!(valid_project_name("my-app_1"));
        assert!(!valid_project_name("-app"));
        assert!(!valid_project_name("My App"));
        assert_eq!(normalize_project_name("My App.v2"), "myappv2");
        assert_eq!(normalize_project_name("__x"), "x");
    }

    #[test]
    fn serde_messages_get_suggestions() {
        assert_eq!(
            friendly_serde(
                "unknown variant `service_health`, expected one of `service_started`, `service_healthy`"
            ),
            "unknown value \"service_health\" (did you mean \"service_healthy\"?)"
        );
        assert_eq!(
            friendly_serde("unknown field `zzz`, expected `a` or `b`"),
            "unknown key \"zzz\"; expected one of: a, b"
        );
    }
}
