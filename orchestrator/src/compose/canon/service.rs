//! One service: each key to the pass for its kind, and the service keys with a syntax of
//! their own (command, healthcheck, depends_on, env_file, deploy, ulimits, extends...).
use yaml_serde::{Mapping, Value};

use super::Canon;
use super::values::{as_i64, kind, scalar_string, with_tag};
use crate::compose::fields::{fields_of, unknown_key_message};
use crate::compose::model::Service;

impl Canon<'_> {
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
            "image" | "container_name" | "hostname" | "domainname" | "working_dir"
            | "stop_signal" | "ipc" | "pid" | "uts" | "userns_mode" | "cgroup"
            | "cgroup_parent" | "cpuset" | "mac_address" | "network_mode" | "platform"
            | "runtime" | "isolation" => {
                self.string(p, v);
            }
            "pull_policy" => self.string(p, v),
            "user" => {
                // Compose refuses `user: 1000` (its schema wants a string): quote it.
                if matches!(v, Value::Number(_)) {
                    self.err(
                        p,
                        format!(
                            "must be a string (quote it: \"{}\")",
                            scalar_string(v).unwrap_or_default()
                        ),
                    );
                }
                self.string(p, v);
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
            "dns" => {
                self.str_list(p, v);
                // Compose drops empty entries (an unset `${DNS}` in a list, say).
                if let Value::Sequence(s) = v {
                    s.retain(|x| x.as_str().is_none_or(|x| !x.trim().is_empty()));
                }
            }
            "dns_search"
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
            "blkio_config" => self.blkio(p, v),
            "depends_on" => self.depends_on(p, v),
            "ports" => self.ports(p, v),
            "volumes" => self.volumes(p, v),
            "networks" => self.service_networks(p, v),
            "build" => self.build(p, v),
            "env_file" => self.env_file(p, v),
            "label_file" => self.label_file(p, v),
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

    pub(super) fn extra_hosts(&mut self, p: &str, v: &mut Value) {
        let mut out = Mapping::new();
        // `HOST=IP1,IP2` gives the name several addresses, as Compose reads it.
        let add = |out: &mut Mapping, host: &str, ips: &str| {
            let e = out
                .entry(Value::String(host.trim().to_string()))
                .or_insert_with(|| Value::Sequence(vec![]));
            if let Value::Sequence(s) = e {
                for ip in ips.split(',') {
                    let ip = ip.trim().trim_start_matches('[').trim_end_matches(']');
                    s.push(Value::String(ip.to_string()));
                }
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
                    let host = crate::compose::interpolate::key_text(k);
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
            Value::Sequence(items) => {
                // Compose's schema takes strings only here: `[echo, 1]` is refused, not cast.
                for (i, item) in items.iter().enumerate() {
                    if !matches!(item, Value::String(_)) {
                        self.err(
                            &format!("{p}[{i}]"),
                            format!("must be a string (quote it), got {}", kind(item)),
                        );
                    }
                }
                self.str_list(p, v)
            }
            _ => self.err(
                p,
                format!("must be a string or a list of strings, got {}", kind(v)),
            ),
        }
    }

    /// `blkio_config`: weights are integers, `_bps` rates sizes, `_iops` rates integers.
    fn blkio(&mut self, p: &str, v: &mut Value) {
        let Some(m) = self.mapping(p, v) else { return };
        if let Some(w) = m.get_mut("weight") {
            self.integer(&format!("{p}.weight"), w, 0);
        }
        for (list, field) in [
            ("weight_device", "weight"),
            ("device_read_bps", "rate"),
            ("device_write_bps", "rate"),
            ("device_read_iops", "rate"),
            ("device_write_iops", "rate"),
        ] {
            let Some(Value::Sequence(items)) = m.get_mut(list) else {
                continue;
            };
            for (i, item) in items.iter_mut().enumerate() {
                let Some(x) = item.get_mut(field) else {
                    continue;
                };
                let xp = format!("{p}.{list}[{i}].{field}");
                if list.ends_with("_bps") {
                    self.size(&xp, x);
                } else {
                    self.integer(&xp, x, 0);
                }
            }
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
                    let name = crate::compose::interpolate::key_text(k);
                    let ep = format!("{p}.{name}");
                    let mut entry = long("service_started");
                    if let (Some(dm), Value::Mapping(em)) = (self.mapping(&ep, val), &mut entry) {
                        for (dk, dv) in dm.iter_mut() {
                            let dks = crate::compose::interpolate::key_text(dk);
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

    /// `label_file`: one path or a list, each made absolute (read by the loader).
    fn label_file(&mut self, p: &str, v: &mut Value) {
        let items: Vec<Value> = match &*v {
            Value::Sequence(s) => s.clone(),
            Value::Null => vec![],
            other => vec![other.clone()],
        };
        let mut out = Vec::new();
        for (i, item) in items.into_iter().enumerate() {
            match scalar_string(&item) {
                Some(path) => out.push(Value::String(self.host_path(&path))),
                None => self.err(&format!("{p}[{i}]"), "must be a path"),
            }
        }
        *v = Value::Sequence(out);
    }

    fn env_file(&mut self, p: &str, v: &mut Value) {
        let items: Vec<Value> = match &*v {
            Value::Sequence(s) => s.clone(),
            Value::Null => vec![],
            // A single long-syntax entry must sit in a list, as Compose's schema says.
            Value::Mapping(_) => {
                self.err(p, "must be a path or a list (write `- path: ...`)");
                return;
            }
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
                        let ks = crate::compose::interpolate::key_text(k);
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
            let name = crate::compose::interpolate::key_text(k);
            let up = format!("{p}.{name}");
            let pair = if let Some(n) = as_i64(val) {
                // A single number stays one: the model reads it as both limits.
                out.insert(Value::String(name.clone()), Value::from(n));
                None
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
                    let ks = crate::compose::interpolate::key_text(k);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canon::testing::run;

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
    fn yaml(s: &str) -> Value {
        yaml_serde::from_str(s).expect("test YAML parses")
    }

    #[test]
    fn service_keys_to_long_form() {
        let (v, issues) = run(
            "command: echo 'a b'\nentrypoint: null\nhealthcheck: {test: curl x, interval: 5}\n\
             depends_on: [db]\nrestart: sometimes\nbogus: 1\n",
            |cx, v| cx.service("services.web", "web", v),
        );
        assert_eq!(v["command"], yaml("[echo, a b]"));
        assert!(v.get("entrypoint").is_none());
        assert_eq!(v["healthcheck"]["test"], yaml("[CMD-SHELL, curl x]"));
        assert_eq!(v["healthcheck"]["interval"], Value::String("5s".into()));
        assert_eq!(
            v["depends_on"],
            yaml("{db: {condition: service_started, required: true}}")
        );
        assert!(v.get("bogus").is_none());
        assert_eq!(issues.len(), 2, "{issues:?}");
        assert!(issues[0].starts_with("services.web.restart: invalid restart policy"));
        assert!(issues[1].starts_with("services.web.bogus: "));
    }

    #[test]
    fn dns_blanks_dropped_and_hosts_with_several_addresses() {
        let (v, issues) = run("['', 8.8.8.8, ' ']", |cx, v| {
            cx.service_key("dns", "dns", v);
        });
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(v, yaml("[8.8.8.8]"));
        let (v, issues) = run("['h=1.1.1.1,2.2.2.2', 'h:3.3.3.3', 'g=[::1]']", |cx, v| {
            cx.extra_hosts("extra_hosts", v)
        });
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(v, yaml("{h: [1.1.1.1, 2.2.2.2, 3.3.3.3], g: ['::1']}"));
    }

    #[test]
    fn schema_types_compose_refuses_are_refused() {
        let (_, issues) = run("[echo, 1]", |cx, v| cx.command("command", v));
        assert_eq!(
            issues,
            ["command[1]: must be a string (quote it), got a number"]
        );
        let (_, issues) = run("1000", |cx, v| {
            cx.service_key("user", "user", v);
        });
        assert_eq!(issues.len(), 1, "{issues:?}");
        let (_, issues) = run("{path: a.env}", |cx, v| cx.env_file("env_file", v));
        assert_eq!(issues.len(), 1, "{issues:?}");
        let (v, issues) = run("if-not-present", |cx, v| {
            cx.service_key("pull_policy", "pull_policy", v);
        });
        assert!(issues.is_empty());
        assert_eq!(
            v,
            Value::from("if-not-present"),
            "left for the model to refuse"
        );
    }

    #[test]
    fn env_file_extends_and_ulimits() {
        let (v, _) = run("[a.env, {path: ~/b.env, required: false}]", |cx, v| {
            cx.env_file("env_file", v)
        });
        assert_eq!(
            v,
            yaml("[{path: /proj/a.env, required: true}, {path: /home/u/b.env, required: false}]")
        );
        let (v, _) = run("{service: base, file: ../c.yaml}", |cx, v| {
            cx.extends("extends", v)
        });
        assert_eq!(v, yaml("{service: base, file: /c.yaml}"));
        let (v, issues) = run("{nofile: 10, nproc: {soft: 5, hard: 2}}", |cx, v| {
            cx.ulimits("ulimits", v)
        });
        assert_eq!(v, yaml("{nofile: 10}"));
        assert_eq!(
            issues,
            ["ulimits.nproc: soft limit 5 is above hard limit 2"]
        );
    }
}
