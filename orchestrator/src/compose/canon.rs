//! Normalisation: every short syntax to its long form, on the YAML tree of one file.
//!
//! Runs per file (after interpolation, before files are merged) so that merging can key ports by
//! (ip, target, published, protocol), volumes by target, and so on, and so relative paths are
//! resolved against the right directory. Type problems found here are collected as [`Issue`]s
//! with the file, line and key path; the typed conversion later checks what is left.

use std::path::{Component, Path, PathBuf};

use yaml_serde::value::{Tag, TaggedValue};
use yaml_serde::{Mapping, Value};

use super::error::{Issue, Place};
use super::fields::{fields_of, unknown_key_message};
use super::model::{FileObject, Network, Service, Volume};
use super::span::SpanIndex;
use super::units::{format_go, parse_duration, parse_size};

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
            let name = super::interpolate::key_text(k);
            if name.starts_with("x-") {
                continue;
            }
            let path = format!("{section}.{name}");
            with_tag(entry, |e| f(self, &path, &name, e));
        }
    }

    /// Normalises one service definition.
    pub fn service(&mut self, path: &str, _name: &str, v: &mut Value) {
        if v.is_null() {
            *v = Value::Mapping(Mapping::new());
        }
        let Some(m) = v.as_mapping_mut() else {
            self.err(
                path,
                format!("a service must be a mapping, got {}", kind(v)),
            );
            *v = Value::Mapping(Mapping::new());
            return;
        };
        let known = fields_of::<Service>();
        let keys: Vec<Value> = m.keys().cloned().collect();
        for k in keys {
            let Some(key) = k.as_str().map(str::to_string) else {
                self.err(path, format!("key {k:?} must be a string"));
                m.remove(&k);
                continue;
            };
            if key.starts_with("x-") {
                continue;
            }
            let p = format!("{path}.{key}");
            if key != "extends" && !known.contains(&key.as_str()) {
                let msg = unknown_key_message(&key, known.iter().copied());
                self.err(&p, msg);
                m.remove(&k);
                continue;
            }
            let Some(val) = m.get_mut(&k) else { continue };
            let mut remove = false;
            with_tag(val, |val| {
                remove = self.service_key(&p, &key, val);
            });
            if remove {
                m.remove(&k);
            }
        }
    }

    /// Returns true when the key should be dropped (e.g. `command: null`).
    fn service_key(&mut self, p: &str, key: &str, v: &mut Value) -> bool {
        match key {
            "image" | "container_name" | "hostname" | "domainname" | "user" | "working_dir"
            | "stop_signal" | "ipc" | "pid" | "uts" | "userns_mode" | "cgroup"
            | "cgroup_parent" | "cpuset" | "mac_address" | "network_mode" | "platform"
            | "runtime" | "isolation" => {
                self.string(p, v);
            }
            "pull_policy" => {
                self.string(p, v);
                if let Value::String(s) = v {
                    *s = s.replace('-', "_");
                }
            }
            "restart" => {
                self.string(p, v);
                if let Value::String(s) = v
                    && let Err(e) = check_restart(s)
                {
                    self.err(p, e);
                }
            }
            "init" | "privileged" | "read_only" | "tty" | "stdin_open" | "oom_kill_disable"
            | "attach" | "use_api_socket" => self.boolean(p, v),
            "cpu_count" | "cpu_period" | "cpu_quota" | "cpu_rt_period" | "cpu_rt_runtime"
            | "cpu_shares" | "mem_swappiness" | "oom_score_adj" | "pids_limit" => {
                self.integer(p, v, i64::MIN)
            }
            "scale" => self.integer(p, v, 0),
            "cpus" | "cpu_percent" => self.float(p, v),
            "mem_limit" | "mem_reservation" | "shm_size" => self.size(p, v),
            "memswap_limit" => {
                if as_i64(v) == Some(-1) {
                    *v = Value::from(-1);
                } else {
                    self.size(p, v)
                }
            }
            "stop_grace_period" => self.duration(p, v),
            "dns"
            | "dns_search"
            | "dns_opt"
            | "tmpfs"
            | "cap_add"
            | "cap_drop"
            | "security_opt"
            | "expose"
            | "external_links"
            | "links"
            | "volumes_from"
            | "profiles"
            | "group_add"
            | "device_cgroup_rules" => self.str_list(p, v),
            "labels" | "sysctls" | "annotations" => self.dict(p, v, false),
            "environment" => self.dict(p, v, true),
            "extra_hosts" => self.extra_hosts(p, v),
            "command" | "entrypoint" => {
                if v.is_null() {
                    return true;
                }
                self.command(p, v)
            }
            "healthcheck" => self.healthcheck(p, v),
            "depends_on" => self.depends_on(p, v),
            "ports" => self.ports(p, v),
            "volumes" => self.volumes(p, v),
            "networks" => self.service_networks(p, v),
            "build" => self.build(p, v),
            "env_file" => self.env_file(p, v),
            "deploy" => self.deploy(p, v),
            "logging" => {
                if let Some(m) = self.mapping(p, v) {
                    if let Some(o) = m.get_mut("options") {
                        self.dict(&format!("{p}.options"), o, false);
                    }
                    if let Some(d) = m.get_mut("driver") {
                        self.string(&format!("{p}.driver"), d);
                    }
                }
            }
            "ulimits" => self.ulimits(p, v),
            "devices" => self.devices(p, v),
            "configs" | "secrets" => self.file_refs(p, v),
            "extends" => self.extends(p, v),
            _ => {}
        }
        false
    }

    fn mapping<'v>(&mut self, p: &str, v: &'v mut Value) -> Option<&'v mut Mapping> {
        if v.is_null() {
            *v = Value::Mapping(Mapping::new());
        }
        if !v.is_mapping() {
            self.err(p, format!("must be a mapping, got {}", kind(v)));
            return None;
        }
        v.as_mapping_mut()
    }

    fn string(&mut self, p: &str, v: &mut Value) {
        match scalar_string(v) {
            Some(s) => *v = Value::String(s),
            None if v.is_null() => {}
            None => self.err(p, format!("must be a string, got {}", kind(v))),
        }
    }

    fn boolean(&mut self, p: &str, v: &mut Value) {
        match v {
            Value::Bool(_) => {}
            Value::String(s) => match s.to_ascii_lowercase().as_str() {
                "true" | "yes" | "on" => *v = Value::Bool(true),
                "false" | "no" | "off" | "" => *v = Value::Bool(false),
                _ => self.err(p, format!("{s:?} is not a boolean (true or false)")),
            },
            _ => self.err(p, format!("must be a boolean, got {}", kind(v))),
        }
    }

    fn integer(&mut self, p: &str, v: &mut Value, min: i64) {
        match as_i64(v) {
            Some(n) if n >= min => *v = Value::from(n),
            Some(n) => self.err(p, format!("{n} is below the minimum {min}")),
            None => self.err(p, format!("{} is not an integer", show(v))),
        }
    }

    fn float(&mut self, p: &str, v: &mut Value) {
        let f = match v {
            Value::Number(n) => n.as_f64(),
            Value::String(s) => s.trim().parse::<f64>().ok(),
            _ => None,
        };
        match f {
            Some(f) if f.is_finite() && f >= 0.0 => *v = Value::from(f),
            _ => self.err(p, format!("{} is not a non-negative number", show(v))),
        }
    }

    fn size(&mut self, p: &str, v: &mut Value) {
        let r = match v {
            Value::Number(n) => n.as_u64().ok_or_else(|| format!("{n} is not a valid size")),
            Value::String(s) => parse_size(s),
            _ => Err(format!("must be a size like 512m, got {}", kind(v))),
        };
        match r {
            Ok(n) => *v = Value::from(n),
            Err(e) => self.err(p, e),
        }
    }

    fn duration(&mut self, p: &str, v: &mut Value) {
        let r = match v {
            Value::Number(n) => n
                .as_u64()
                .map(std::time::Duration::from_secs)
                .ok_or_else(|| format!("{n} is not a valid duration")),
            Value::String(s) => parse_duration(s),
            _ => Err(format!("must be a duration like 30s, got {}", kind(v))),
        };
        match r {
            Ok(d) => *v = Value::String(format_go(d)),
            Err(e) => self.err(p, e),
        }
    }

    fn str_list(&mut self, p: &str, v: &mut Value) {
        match v {
            Value::Null => *v = Value::Sequence(vec![]),
            Value::String(_) | Value::Number(_) => {
                let s = scalar_string(v).unwrap_or_default();
                *v = Value::Sequence(vec![Value::String(s)]);
            }
            Value::Sequence(seq) => {
                let mut bad = Vec::new();
                for (i, item) in seq.iter_mut().enumerate() {
                    match scalar_string(item) {
                        Some(s) => *item = Value::String(s),
                        None => bad.push((format!("{p}[{i}]"), kind(item))),
                    }
                }
                for (bp, k) in bad {
                    self.err(&bp, format!("must be a string, got {k}"));
                }
            }
            _ => self.err(
                p,
                format!("must be a string or a list of strings, got {}", kind(v)),
            ),
        }
    }

    /// `KEY=VALUE` list or mapping -> mapping of strings (`null` kept when `nulls`).
    fn dict(&mut self, p: &str, v: &mut Value, nulls: bool) {
        let mut out = Mapping::new();
        match v {
            Value::Null => {}
            Value::Sequence(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    let Some(s) = scalar_string(item) else {
                        self.err(
                            &format!("{p}[{i}]"),
                            format!("must be a KEY=VALUE string, got {}", kind(item)),
                        );
                        continue;
                    };
                    match s.split_once('=') {
                        Some((k, val)) => {
                            out.insert(
                                Value::String(k.to_string()),
                                Value::String(val.to_string()),
                            );
                        }
                        None if nulls => {
                            out.insert(Value::String(s), Value::Null);
                        }
                        None => {
                            out.insert(Value::String(s), Value::String(String::new()));
                        }
                    }
                }
            }
            Value::Mapping(m) => {
                for (k, val) in m.iter() {
                    let key = super::interpolate::key_text(k);
                    let value = match val {
                        Value::Null if nulls => Value::Null,
                        Value::Null => Value::String(String::new()),
                        other => match scalar_string(other) {
                            Some(s) => Value::String(s),
                            None => {
                                self.err(
                                    &format!("{p}.{key}"),
                                    format!(
                                        "must be a string, number or boolean, got {}",
                                        kind(other)
                                    ),
                                );
                                continue;
                            }
                        },
                    };
                    out.insert(Value::String(key), value);
                }
            }
            _ => {
                self.err(
                    p,
                    format!("must be a mapping or a list of KEY=VALUE, got {}", kind(v)),
                );
                return;
            }
        }
        *v = Value::Mapping(out);
    }

    fn extra_hosts(&mut self, p: &str, v: &mut Value) {
        let mut out = Mapping::new();
        let add = |out: &mut Mapping, host: &str, ip: &str| {
            let ip = ip
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string();
            let e = out
                .entry(Value::String(host.trim().to_string()))
                .or_insert_with(|| Value::Sequence(vec![]));
            if let Value::Sequence(s) = e {
                s.push(Value::String(ip));
            }
        };
        match v {
            Value::Null => {}
            Value::Sequence(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    let s = scalar_string(item).unwrap_or_default();
                    let split = s.split_once('=').or_else(|| s.split_once(':'));
                    match split {
                        Some((h, ip)) if !h.is_empty() && !ip.is_empty() => add(&mut out, h, ip),
                        _ => self.err(
                            &format!("{p}[{i}]"),
                            format!("{s:?}: expected HOST=IP or HOST:IP"),
                        ),
                    }
                }
            }
            Value::Mapping(m) => {
                for (k, val) in m.iter() {
                    let host = super::interpolate::key_text(k);
                    match val {
                        Value::Sequence(ips) => {
                            for ip in ips {
                                add(&mut out, &host, &scalar_string(ip).unwrap_or_default());
                            }
                        }
                        other => add(&mut out, &host, &scalar_string(other).unwrap_or_default()),
                    }
                }
            }
            _ => {
                self.err(
                    p,
                    format!("must be a list of HOST=IP or a mapping, got {}", kind(v)),
                );
                return;
            }
        }
        *v = Value::Mapping(out);
    }

    fn command(&mut self, p: &str, v: &mut Value) {
        match v {
            Value::String(s) => match shell_words::split(s) {
                Ok(words) => *v = Value::Sequence(words.into_iter().map(Value::String).collect()),
                Err(e) => self.err(p, format!("{s:?}: cannot split like a shell: {e}")),
            },
            Value::Sequence(_) => self.str_list(p, v),
            _ => self.err(
                p,
                format!("must be a string or a list of strings, got {}", kind(v)),
            ),
        }
    }

    fn healthcheck(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        let mut disable = false;
        if let Some(t) = m.get_mut("test") {
            let tp = format!("{p}.test");
            match t {
                Value::String(s) => {
                    *t = Value::Sequence(vec!["CMD-SHELL".into(), Value::String(s.clone())]);
                }
                Value::Sequence(_) => {
                    self.str_list(&tp, t);
                    let first = t.get(0).and_then(Value::as_str).unwrap_or("");
                    match first {
                        "NONE" => disable = true,
                        "CMD" | "CMD-SHELL" => {}
                        other => self.err(
                            &tp,
                            format!("first item {other:?} must be CMD, CMD-SHELL or NONE"),
                        ),
                    }
                }
                _ => self.err(&tp, format!("must be a string or a list, got {}", kind(t))),
            }
        }
        for d in ["interval", "timeout", "start_period", "start_interval"] {
            if let Some(x) = m.get_mut(d) {
                self.duration(&format!("{p}.{d}"), x);
            }
        }
        if let Some(x) = m.get_mut("retries") {
            self.integer(&format!("{p}.retries"), x, 0);
        }
        if let Some(x) = m.get_mut("disable") {
            self.boolean(&format!("{p}.disable"), x);
            if x.as_bool() == Some(true) {
                disable = true;
            }
        }
        if disable {
            m.insert("disable".into(), Value::Bool(true));
        }
    }

    fn depends_on(&mut self, p: &str, v: &mut Value) {
        let mut out = Mapping::new();
        let long = |cond: &str| {
            let mut m = Mapping::new();
            m.insert("condition".into(), cond.into());
            m.insert("required".into(), Value::Bool(true));
            Value::Mapping(m)
        };
        match v {
            Value::Sequence(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    match scalar_string(item) {
                        Some(s) => {
                            out.insert(Value::String(s), long("service_started"));
                        }
                        None => self.err(&format!("{p}[{i}]"), "must be a service name"),
                    }
                }
            }
            Value::Mapping(m) => {
                for (k, val) in m.iter_mut() {
                    let name = super::interpolate::key_text(k);
                    let ep = format!("{p}.{name}");
                    let mut entry = long("service_started");
                    if let (Some(dm), Value::Mapping(em)) = (self.mapping(&ep, val), &mut entry) {
                        for (dk, dv) in dm.iter_mut() {
                            let dks = super::interpolate::key_text(dk);
                            if dks == "required" || dks == "restart" {
                                self.boolean(&format!("{ep}.{dks}"), dv);
                            }
                            em.insert(dk.clone(), dv.clone());
                        }
                    }
                    out.insert(Value::String(name), entry);
                }
            }
            Value::Null => {}
            _ => {
                self.err(
                    p,
                    format!("must be a list or a mapping of services, got {}", kind(v)),
                );
                return;
            }
        }
        *v = Value::Mapping(out);
    }

    fn ports(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            if v.is_null() {
                *v = Value::Sequence(vec![]);
            } else {
                self.err(p, format!("must be a list, got {}", kind(v)));
            }
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            match item {
                Value::Mapping(m) => match long_port(m) {
                    Ok(lp) => out.push(lp),
                    Err(e) => self.err(&ip, e),
                },
                other => match scalar_string(other) {
                    Some(s) => match parse_port_spec(&s) {
                        Ok(mut ports) => out.append(&mut ports),
                        Err(e) => self.err(&ip, format!("{s:?}: {e}")),
                    },
                    None => self.err(
                        &ip,
                        format!("must be a string, number or mapping, got {}", kind(other)),
                    ),
                },
            }
        }
        *v = Value::Sequence(out);
    }

    fn volumes(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            if v.is_null() {
                *v = Value::Sequence(vec![]);
            } else {
                self.err(p, format!("must be a list, got {}", kind(v)));
            }
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter_mut().enumerate() {
            let ip = format!("{p}[{i}]");
            match item {
                Value::String(s) => match self.short_volume(s) {
                    Ok(m) => out.push(Value::Mapping(m)),
                    Err(e) => self.err(&ip, format!("{s:?}: {e}")),
                },
                Value::Mapping(m) => {
                    if let Some(src) = m.get("source").and_then(scalar_string) {
                        let ty = m.get("type").and_then(Value::as_str).unwrap_or("");
                        if ty == "bind" {
                            let abs = self.host_path(&src);
                            m.insert("source".into(), Value::String(abs));
                        } else {
                            m.insert("source".into(), Value::String(src));
                        }
                    }
                    if m.get("type").is_none() {
                        self.err(&ip, "long syntax needs `type` (bind, volume, tmpfs)");
                        continue;
                    }
                    match m.get("target") {
                        Some(t) if scalar_string(t).is_some_and(|t| t.starts_with('/')) => {}
                        _ => {
                            self.err(
                                &format!("{ip}.target"),
                                "must be an absolute path in the container",
                            );
                            continue;
                        }
                    }
                    if let Some(ro) = m.get_mut("read_only") {
                        self.boolean(&format!("{ip}.read_only"), ro);
                    }
                    if let Some(Value::Mapping(t)) = m.get_mut("tmpfs")
                        && let Some(sz) = t.get_mut("size")
                    {
                        self.size(&format!("{ip}.tmpfs.size"), sz);
                    }
                    if let Some(Value::Mapping(b)) = m.get_mut("bind")
                        && let Some(c) = b.get_mut("create_host_path")
                    {
                        self.boolean(&format!("{ip}.bind.create_host_path"), c);
                    }
                    out.push(Value::Mapping(m.clone()));
                }
                other => self.err(
                    &ip,
                    format!("must be a string or a mapping, got {}", kind(other)),
                ),
            }
        }
        *v = Value::Sequence(out);
    }

    /// `SRC:DST[:OPTS]` or `DST`.
    fn short_volume(&self, s: &str) -> Result<Mapping, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let (src, dst, opts) = match parts.as_slice() {
            [dst] => (None, *dst, None),
            [src, dst] => (Some(*src), *dst, None),
            [src, dst, opts] => (Some(*src), *dst, Some(*opts)),
            _ => return Err("expected SOURCE:TARGET[:MODE]".into()),
        };
        if !dst.starts_with('/') {
            return Err(format!("target {dst:?} must be an absolute path"));
        }
        let mut m = Mapping::new();
        let is_bind = src.is_some_and(|s| s.starts_with(['/', '.', '~']) || s.is_empty());
        if src == Some("") {
            return Err("empty source".into());
        }
        m.insert(
            "type".into(),
            (if is_bind { "bind" } else { "volume" }).into(),
        );
        if let Some(src) = src {
            let src = if is_bind {
                self.host_path(src)
            } else {
                src.to_string()
            };
            m.insert("source".into(), Value::String(src));
        }
        m.insert("target".into(), Value::String(dst.to_string()));
        let mut bind = Mapping::new();
        let mut volume = Mapping::new();
        for opt in opts.into_iter().flat_map(|o| o.split(',')) {
            match opt {
                "ro" => {
                    m.insert("read_only".into(), Value::Bool(true));
                }
                "rw" | "" => {}
                "z" | "Z" => {
                    bind.insert("selinux".into(), opt.into());
                }
                "nocopy" => {
                    volume.insert("nocopy".into(), Value::Bool(true));
                }
                "shared" | "rshared" | "slave" | "rslave" | "private" | "rprivate" => {
                    bind.insert("propagation".into(), opt.into());
                }
                "cached" | "delegated" | "consistent" => {
                    m.insert("consistency".into(), opt.into());
                }
                other => {
                    return Err(format!(
                        "unknown mode {other:?} (use ro, rw, z, Z, nocopy, or a propagation like rshared)"
                    ));
                }
            }
        }
        if is_bind {
            bind.insert("create_host_path".into(), Value::Bool(true));
            m.insert("bind".into(), Value::Mapping(bind));
        } else if !volume.is_empty() {
            m.insert("volume".into(), Value::Mapping(volume));
        }
        Ok(m)
    }

    /// A host path made absolute: `~` from $HOME, relative against the base directory.
    pub fn host_path(&self, s: &str) -> String {
        let p = if let Some(rest) = s.strip_prefix('~') {
            match &self.home {
                Some(h) => h.join(rest.trim_start_matches('/')),
                None => PathBuf::from(s),
            }
        } else {
            PathBuf::from(s)
        };
        let abs = if p.is_absolute() {
            p
        } else {
            self.base_dir.join(p)
        };
        clean(&abs).to_string_lossy().into_owned()
    }

    fn service_networks(&mut self, p: &str, v: &mut Value) {
        let mut out = Mapping::new();
        match v {
            Value::Sequence(seq) => {
                for (i, item) in seq.iter().enumerate() {
                    match scalar_string(item) {
                        Some(s) => {
                            out.insert(Value::String(s), Value::Null);
                        }
                        None => self.err(&format!("{p}[{i}]"), "must be a network name"),
                    }
                }
            }
            Value::Mapping(m) => {
                for (k, val) in m.iter_mut() {
                    let name = super::interpolate::key_text(k);
                    let np = format!("{p}.{name}");
                    if let Value::Mapping(nm) = val {
                        if let Some(a) = nm.get_mut("aliases") {
                            self.str_list(&format!("{np}.aliases"), a);
                        }
                        if let Some(a) = nm.get_mut("link_local_ips") {
                            self.str_list(&format!("{np}.link_local_ips"), a);
                        }
                        for key in ["priority", "gw_priority"] {
                            if let Some(a) = nm.get_mut(key) {
                                self.integer(&format!("{np}.{key}"), a, i64::MIN);
                            }
                        }
                        if let Some(a) = nm.get_mut("driver_opts") {
                            self.dict(&format!("{np}.driver_opts"), a, false);
                        }
                    } else if !val.is_null() {
                        self.err(
                            &np,
                            format!("must be a mapping or empty, got {}", kind(val)),
                        );
                    }
                    out.insert(Value::String(name), val.clone());
                }
            }
            Value::Null => {}
            _ => {
                self.err(
                    p,
                    format!("must be a list or a mapping of networks, got {}", kind(v)),
                );
                return;
            }
        }
        *v = Value::Mapping(out);
    }

    fn build(&mut self, p: &str, v: &mut Value) {
        if let Some(s) = scalar_string(v) {
            let mut m = Mapping::new();
            m.insert("context".into(), Value::String(self.context_path(&s)));
            *v = Value::Mapping(m);
            return;
        }
        let Some(m) = self.mapping(p, v) else { return };
        // No context: left for the defaults pass (the project directory), so an override file's
        // `build: {dockerfile: …}` does not reset the base file's context.
        let ctx = m
            .get("context")
            .and_then(scalar_string)
            .or_else(|| self.fill_build_context.then(|| ".".to_string()));
        if let Some(ctx) = ctx {
            let ctx = self.context_path(&ctx);
            m.insert("context".into(), Value::String(ctx));
        }
        for (key, nulls) in [("args", true), ("labels", false)] {
            if let Some(a) = m.get_mut(key) {
                self.dict(&format!("{p}.{key}"), a, nulls);
            }
        }
        for key in ["cache_from", "cache_to", "tags"] {
            if let Some(a) = m.get_mut(key) {
                self.str_list(&format!("{p}.{key}"), a);
            }
        }
        if let Some(a) = m.get_mut("shm_size") {
            self.size(&format!("{p}.shm_size"), a);
        }
        if let Some(a) = m.get_mut("extra_hosts") {
            self.extra_hosts(&format!("{p}.extra_hosts"), a);
        }
        for key in ["no_cache", "pull", "privileged"] {
            if let Some(a) = m.get_mut(key) {
                self.boolean(&format!("{p}.{key}"), a);
            }
        }
        for key in [
            "dockerfile",
            "dockerfile_inline",
            "target",
            "network",
            "isolation",
        ] {
            if let Some(a) = m.get_mut(key) {
                self.string(&format!("{p}.{key}"), a);
            }
        }
    }

    fn context_path(&self, s: &str) -> String {
        if s.contains("://") || s.starts_with("git@") {
            s.to_string()
        } else {
            self.host_path(s)
        }
    }

    fn env_file(&mut self, p: &str, v: &mut Value) {
        let items: Vec<Value> = match &*v {
            Value::Sequence(s) => s.clone(),
            Value::Null => vec![],
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            let ip = format!("{p}[{i}]");
            let mut m = Mapping::new();
            match item {
                Value::Mapping(src) => {
                    let Some(path) = src.get("path").and_then(scalar_string) else {
                        self.err(&ip, "long syntax needs `path`");
                        continue;
                    };
                    m.insert("path".into(), Value::String(self.host_path(&path)));
                    let mut req = src.get("required").cloned().unwrap_or(Value::Bool(true));
                    self.boolean(&format!("{ip}.required"), &mut req);
                    m.insert("required".into(), req);
                    if let Some(f) = src.get("format").and_then(scalar_string) {
                        if f != "raw" {
                            self.err(
                                &format!("{ip}.format"),
                                format!("unknown format {f:?} (only `raw`)"),
                            );
                        }
                        m.insert("format".into(), Value::String(f));
                    }
                    for k in src.keys() {
                        let ks = super::interpolate::key_text(k);
                        if !["path", "required", "format"].contains(&ks.as_str()) {
                            let msg = unknown_key_message(&ks, ["path", "required", "format"]);
                            self.err(&format!("{ip}.{ks}"), msg);
                        }
                    }
                }
                other => match scalar_string(&other) {
                    Some(s) => {
                        m.insert("path".into(), Value::String(self.host_path(&s)));
                        m.insert("required".into(), Value::Bool(true));
                    }
                    None => {
                        self.err(
                            &ip,
                            format!("must be a path or a mapping, got {}", kind(&other)),
                        );
                        continue;
                    }
                },
            }
            out.push(Value::Mapping(m));
        }
        *v = Value::Sequence(out);
    }

    fn deploy(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        if let Some(r) = m.get_mut("replicas") {
            self.integer(&format!("{p}.replicas"), r, 0);
        }
        if let Some(l) = m.get_mut("labels") {
            self.dict(&format!("{p}.labels"), l, false);
        }
        if let Some(Value::Mapping(res)) = m.get_mut("resources") {
            for kind_key in ["limits", "reservations"] {
                if let Some(Value::Mapping(l)) = res.get_mut(kind_key) {
                    let lp = format!("{p}.resources.{kind_key}");
                    if let Some(x) = l.get_mut("cpus") {
                        self.float(&format!("{lp}.cpus"), x);
                    }
                    if let Some(x) = l.get_mut("memory") {
                        self.size(&format!("{lp}.memory"), x);
                    }
                    if let Some(x) = l.get_mut("pids") {
                        self.integer(&format!("{lp}.pids"), x, i64::MIN);
                    }
                }
            }
        }
        if let Some(Value::Mapping(rp)) = m.get_mut("restart_policy") {
            let pp = format!("{p}.restart_policy");
            for d in ["delay", "window"] {
                if let Some(x) = rp.get_mut(d) {
                    self.duration(&format!("{pp}.{d}"), x);
                }
            }
            if let Some(x) = rp.get_mut("max_attempts") {
                self.integer(&format!("{pp}.max_attempts"), x, 0);
            }
            if let Some(c) = rp.get("condition").and_then(Value::as_str)
                && !["none", "on-failure", "any"].contains(&c)
            {
                self.err(
                    &format!("{pp}.condition"),
                    format!("{c:?}: must be none, on-failure or any"),
                );
            }
        }
    }

    fn ulimits(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        let mut out = Mapping::new();
        for (k, val) in m.iter() {
            let name = super::interpolate::key_text(k);
            let up = format!("{p}.{name}");
            let pair = if let Some(n) = as_i64(val) {
                Some((n, n))
            } else if let Value::Mapping(sm) = val {
                match (
                    sm.get("soft").and_then(as_i64),
                    sm.get("hard").and_then(as_i64),
                ) {
                    (Some(s), Some(h)) if s <= h => Some((s, h)),
                    (Some(s), Some(h)) => {
                        self.err(&up, format!("soft limit {s} is above hard limit {h}"));
                        None
                    }
                    _ => {
                        self.err(&up, "needs integer `soft` and `hard`");
                        None
                    }
                }
            } else {
                self.err(
                    &up,
                    format!("must be a number or {{soft, hard}}, got {}", kind(val)),
                );
                None
            };
            if let Some((s, h)) = pair {
                let mut lm = Mapping::new();
                lm.insert("soft".into(), Value::from(s));
                lm.insert("hard".into(), Value::from(h));
                out.insert(Value::String(name), Value::Mapping(lm));
            }
        }
        *v = Value::Mapping(out);
    }

    fn devices(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            self.err(p, format!("must be a list, got {}", kind(v)));
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            match item {
                Value::Mapping(m) => out.push(Value::Mapping(m.clone())),
                other => {
                    let s = scalar_string(other).unwrap_or_default();
                    let parts: Vec<&str> = s.split(':').collect();
                    let (src, dst, perm) = match parts.as_slice() {
                        [a] => (*a, *a, None),
                        [a, b] if b.chars().all(|c| "rwm".contains(c)) && !b.starts_with('/') => {
                            (*a, *a, Some(*b))
                        }
                        [a, b] => (*a, *b, None),
                        [a, b, c] => (*a, *b, Some(*c)),
                        _ => {
                            self.err(
                                &format!("{p}[{i}]"),
                                format!("{s:?}: expected HOST[:CONTAINER[:PERMISSIONS]]"),
                            );
                            continue;
                        }
                    };
                    let mut m = Mapping::new();
                    m.insert("source".into(), src.into());
                    m.insert("target".into(), dst.into());
                    if let Some(perm) = perm {
                        m.insert("permissions".into(), perm.into());
                    }
                    out.push(Value::Mapping(m));
                }
            }
        }
        *v = Value::Sequence(out);
    }

    fn file_refs(&mut self, p: &str, v: &mut Value) {
        let Value::Sequence(seq) = v else {
            self.err(p, format!("must be a list, got {}", kind(v)));
            return;
        };
        let mut out = Vec::new();
        for (i, item) in seq.iter().enumerate() {
            let ip = format!("{p}[{i}]");
            match item {
                Value::Mapping(m) => {
                    let mut m = m.clone();
                    for key in ["uid", "gid"] {
                        if let Some(x) = m.get_mut(key) {
                            self.string(&format!("{ip}.{key}"), x);
                        }
                    }
                    if let Some(x) = m.get_mut("mode") {
                        match x {
                            Value::String(s) => {
                                match u32::from_str_radix(s.trim_start_matches("0o"), 8) {
                                    Ok(n) => *x = Value::from(n),
                                    Err(_) => self.err(
                                        &format!("{ip}.mode"),
                                        format!("{s:?} is not an octal mode"),
                                    ),
                                }
                            }
                            Value::Number(_) => {}
                            _ => self.err(&format!("{ip}.mode"), "must be a number"),
                        }
                    }
                    out.push(Value::Mapping(m));
                }
                other => match scalar_string(other) {
                    Some(s) => {
                        let mut m = Mapping::new();
                        m.insert("source".into(), Value::String(s));
                        out.push(Value::Mapping(m));
                    }
                    None => self.err(&ip, "must be a name or a mapping"),
                },
            }
        }
        *v = Value::Sequence(out);
    }

    fn extends(&mut self, p: &str, v: &mut Value) {
        let mut m = Mapping::new();
        match v {
            Value::String(s) => {
                m.insert("service".into(), Value::String(s.clone()));
            }
            Value::Mapping(src) => {
                match src.get("service").and_then(scalar_string) {
                    Some(s) => {
                        m.insert("service".into(), Value::String(s));
                    }
                    None => {
                        self.err(p, "needs `service`");
                        return;
                    }
                }
                if let Some(f) = src.get("file").and_then(scalar_string) {
                    m.insert("file".into(), Value::String(self.host_path(&f)));
                }
                for k in src.keys() {
                    let ks = super::interpolate::key_text(k);
                    if ks != "service" && ks != "file" {
                        let msg = unknown_key_message(&ks, ["service", "file"]);
                        self.err(&format!("{p}.{ks}"), msg);
                    }
                }
            }
            _ => {
                self.err(
                    p,
                    format!(
                        "must be a service name or {{service, file}}, got {}",
                        kind(v)
                    ),
                );
                return;
            }
        }
        *v = Value::Mapping(m);
    }

    fn check_keys(&mut self, p: &str, m: &Mapping, known: &[&str]) {
        for k in m.keys() {
            let ks = super::interpolate::key_text(k);
            if !ks.starts_with("x-") && !known.contains(&ks.as_str()) {
                let msg = unknown_key_message(&ks, known.iter().copied());
                self.err(&format!("{p}.{ks}"), msg);
            }
        }
    }

    /// `external: true | {name: x}` -> `external: true` (+ `name`).
    fn external(&mut self, p: &str, m: &mut Mapping) {
        let Some(ext) = m.get("external").cloned() else {
            return;
        };
        match ext {
            Value::Mapping(em) => {
                if let Some(n) = em.get("name").and_then(scalar_string) {
                    m.insert("name".into(), Value::String(n));
                }
                m.insert("external".into(), Value::Bool(true));
            }
            mut other => {
                self.boolean(&format!("{p}.external"), &mut other);
                m.insert("external".into(), other);
            }
        }
    }

    fn network(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        let mut m = std::mem::take(m);
        self.check_keys(p, &m, fields_of::<Network>());
        self.external(p, &mut m);
        for key in ["labels", "driver_opts"] {
            if let Some(x) = m.get_mut(key) {
                self.dict(&format!("{p}.{key}"), x, false);
            }
        }
        for key in ["internal", "attachable", "enable_ipv6", "enable_ipv4"] {
            if let Some(x) = m.get_mut(key) {
                self.boolean(&format!("{p}.{key}"), x);
            }
        }
        if let Some(Value::Mapping(ipam)) = m.get_mut("ipam")
            && let Some(o) = ipam.get_mut("options")
        {
            self.dict(&format!("{p}.ipam.options"), o, false);
        }
        *v = Value::Mapping(m);
    }

    fn volume(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        let mut m = std::mem::take(m);
        self.check_keys(p, &m, fields_of::<Volume>());
        self.external(p, &mut m);
        for key in ["labels", "driver_opts"] {
            if let Some(x) = m.get_mut(key) {
                self.dict(&format!("{p}.{key}"), x, false);
            }
        }
        *v = Value::Mapping(m);
    }

    fn file_object(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        let mut m = std::mem::take(m);
        self.check_keys(p, &m, fields_of::<FileObject>());
        self.external(p, &mut m);
        if let Some(f) = m.get("file").and_then(scalar_string) {
            m.insert("file".into(), Value::String(self.host_path(&f)));
        }
        for key in ["labels", "driver_opts"] {
            if let Some(x) = m.get_mut(key) {
                self.dict(&format!("{p}.{key}"), x, false);
            }
        }
        *v = Value::Mapping(m);
    }
}

/// Applies `f` to the value under a `!reset`/`!override` tag (keeping the tag), or to the value.
fn with_tag(v: &mut Value, f: impl FnOnce(&mut Value)) {
    if let Value::Tagged(t) = v {
        if t.tag == "reset" || t.tag == "override" {
            if t.tag == "override" {
                f(&mut t.value);
            }
            return;
        }
        // Unknown tags: drop the tag, keep the value.
        let inner = std::mem::replace(&mut t.value, Value::Null);
        *v = inner;
    }
    f(v)
}

/// Wraps a value in a tag (for tests and merge).
pub fn tagged(tag: &str, value: Value) -> Value {
    Value::Tagged(Box::new(TaggedValue {
        tag: Tag::new(tag),
        value,
    }))
}

/// A scalar as text (numbers and booleans too), or `None` for collections and null.
pub fn scalar_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn as_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// The YAML kind of a value, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

fn show(v: &Value) -> String {
    match scalar_string(v) {
        Some(s) => format!("{s:?}"),
        None => kind(v).to_string(),
    }
}

/// `no`, `always`, `on-failure[:N]`, `unless-stopped`.
pub fn check_restart(s: &str) -> Result<(), String> {
    match s {
        "no" | "always" | "unless-stopped" | "on-failure" => Ok(()),
        _ => match s.strip_prefix("on-failure:") {
            Some(n) if n.parse::<u32>().is_ok() => Ok(()),
            _ => Err(format!(
                "invalid restart policy {s:?}: use no, always, on-failure[:N] or unless-stopped"
            )),
        },
    }
}

/// Lexically normalises a path (`a/./b/../c` -> `a/c`) without touching the file system.
pub fn clean(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    if out.as_os_str().is_empty() {
        out.push(".");
    }
    out
}

fn port_num(s: &str) -> Result<u16, String> {
    match s.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        Ok(_) => Err("port out of range 1-65535".into()),
        Err(_) => Err(format!("{s:?} is not a port number")),
    }
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port_num(a)?, port_num(b)?);
            if a > b {
                return Err(format!("range {s:?} ends before it starts"));
            }
            Ok((a, b))
        }
        None => {
            let n = port_num(s)?;
            Ok((n, n))
        }
    }
}

fn port_value(
    host_ip: Option<&str>,
    target: u16,
    published: Option<String>,
    protocol: &str,
) -> Value {
    let mut m = Mapping::new();
    m.insert("mode".into(), "ingress".into());
    if let Some(ip) = host_ip.filter(|s| !s.is_empty()) {
        m.insert("host_ip".into(), ip.into());
    }
    m.insert("target".into(), Value::from(target));
    if let Some(p) = published {
        m.insert("published".into(), Value::String(p));
    }
    m.insert("protocol".into(), protocol.into());
    Value::Mapping(m)
}

/// Parses short port syntax into long-form entries (ranges expand to one entry per port).
pub fn parse_port_spec(spec: &str) -> Result<Vec<Value>, String> {
    let (rest, protocol) = match spec.rsplit_once('/') {
        Some((r, p)) => (r, p),
        None => (spec, "tcp"),
    };
    if !["tcp", "udp", "sctp"].contains(&protocol) {
        return Err(format!("unknown protocol {protocol:?} (tcp, udp or sctp)"));
    }
    let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
        let end = r.find(']').ok_or("unclosed '[' in IPv6 address")?;
        let after = r[end + 1..]
            .strip_prefix(':')
            .ok_or("expected ':' after IPv6 address")?;
        (Some(&r[..end]), after)
    } else {
        (None, rest)
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, published, target) = match (host_ip, parts.as_slice()) {
        (None, [t]) => (None, None, *t),
        (ip, [p, t]) => (ip, Some(*p), *t),
        (None, [ip, p, t]) => (Some(*ip), Some(*p), *t),
        _ => return Err("expected [[IP:]PUBLISHED:]TARGET[/PROTOCOL]".into()),
    };
    if let Some(ip) = ip
        && !ip.is_empty()
        && ip.parse::<std::net::IpAddr>().is_err()
    {
        return Err(format!("{ip:?} is not an IP address"));
    }
    let (t0, t1) = port_range(target)?;
    let published = published.filter(|p| !p.is_empty());
    let pub_range = published.map(port_range).transpose()?;
    let count = (t1 - t0) as usize + 1;
    let mut out = Vec::with_capacity(count);
    match pub_range {
        None => {
            for t in t0..=t1 {
                out.push(port_value(ip, t, None, protocol));
            }
        }
        Some((p0, p1)) if count == 1 => {
            let published = if p0 == p1 {
                p0.to_string()
            } else {
                format!("{p0}-{p1}")
            };
            out.push(port_value(ip, t0, Some(published), protocol));
        }
        Some((p0, p1)) => {
            if (p1 - p0) as usize + 1 != count {
                return Err("published and target ranges differ in length".into());
            }
            for (i, t) in (t0..=t1).enumerate() {
                out.push(port_value(
                    ip,
                    t,
                    Some((p0 as usize + i).to_string()),
                    protocol,
                ));
            }
        }
    }
    Ok(out)
}

fn long_port(m: &Mapping) -> Result<Value, String> {
    let mut out = m.clone();
    let target = m.get("target").ok_or("long syntax needs `target`")?;
    let t = scalar_string(target).ok_or("`target` must be a port number")?;
    out.insert(
        "target".into(),
        Value::from(port_num(&t).map_err(|e| format!("target {t:?}: {e}"))?),
    );
    if let Some(p) = m.get("published") {
        let ps = scalar_string(p).ok_or("`published` must be a port or range")?;
        if !ps.is_empty() {
            port_range(&ps).map_err(|e| format!("published {ps:?}: {e}"))?;
        }
        out.insert("published".into(), Value::String(ps));
    }
    let proto = m
        .get("protocol")
        .and_then(scalar_string)
        .unwrap_or_else(|| "tcp".into());
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(format!("unknown protocol {proto:?} (tcp, udp or sctp)"));
    }
    out.insert("protocol".into(), Value::String(proto));
    let mode = m
        .get("mode")
        .and_then(scalar_string)
        .unwrap_or_else(|| "ingress".into());
    if !["ingress", "host"].contains(&mode.as_str()) {
        return Err(format!("unknown mode {mode:?} (ingress or host)"));
    }
    out.insert("mode".into(), Value::String(mode));
    Ok(Value::Mapping(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ports(s: &str) -> Vec<String> {
        parse_port_spec(s)
            .unwrap()
            .iter()
            .map(|v| {
                format!(
                    "{}|{}|{}|{}",
                    v.get("host_ip").and_then(Value::as_str).unwrap_or(""),
                    v.get("published").and_then(Value::as_str).unwrap_or(""),
                    v["target"].as_u64().unwrap(),
                    v["protocol"].as_str().unwrap()
                )
            })
            .collect()
    }

    #[test]
    fn port_short_syntax() {
        assert_eq!(ports("80"), ["||80|tcp"]);
        assert_eq!(ports("8080:80"), ["|8080|80|tcp"]);
        assert_eq!(ports("127.0.0.1:8080:80/udp"), ["127.0.0.1|8080|80|udp"]);
        assert_eq!(ports("127.0.0.1::80"), ["127.0.0.1||80|tcp"]);
        assert_eq!(ports("[::1]:53:53/udp"), ["::1|53|53|udp"]);
        assert_eq!(
            ports("3000-3002:4000-4002"),
            ["|3000|4000|tcp", "|3001|4001|tcp", "|3002|4002|tcp"]
        );
        assert_eq!(ports("9000-9010:80"), ["|9000-9010|80|tcp"]);
        assert_eq!(ports("5000-5001"), ["||5000|tcp", "||5001|tcp"]);
        assert!(
            parse_port_spec("99999:80")
                .unwrap_err()
                .contains("out of range 1-65535")
        );
        assert!(parse_port_spec("80/xtp").unwrap_err().contains("protocol"));
        assert!(parse_port_spec("1-3:1-2").unwrap_err().contains("differ"));
        assert!(parse_port_spec("abc").is_err());
    }

    #[test]
    fn restart_policies() {
        for ok in [
            "no",
            "always",
            "on-failure",
            "on-failure:3",
            "unless-stopped",
        ] {
            assert!(check_restart(ok).is_ok(), "{ok}");
        }
        for bad in ["sometimes", "on-failure:x", "never"] {
            assert!(check_restart(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clean_paths() {
        assert_eq!(clean(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
        assert_eq!(clean(Path::new("/a/b/")), PathBuf::from("/a/b"));
    }
}
