//! The shape `berth config` prints: the model's tree turned into what `docker compose config`
//! shows for the same project, so the two can be diffed (`tests/config_oracle.rs`).
//!
//! The model keeps what the engine needs (sizes in bytes, modes as numbers, `env_file`
//! entries, every declared object); Compose prints a resolved view instead: sizes and modes as
//! strings, default secret targets and device permissions filled in, `env_file` folded into
//! `environment`, the implicit dependencies as `depends_on`, and only the top-level objects a
//! service uses. Its JSON also carries a few empty values its YAML leaves out.

use std::collections::BTreeSet;

use yaml_serde::{Mapping, Value};

/// Turns the model's tree (`Project::to_yaml_value`) into Compose's `config` shape; `json`
/// adds the empty values Compose's JSON prints and its YAML leaves out.
pub fn compose_shape(tree: &mut Value, json: bool) {
    let Some(top) = tree.as_mapping_mut() else {
        return;
    };
    let mut used = Used::default();
    if let Some(Value::Mapping(services)) = top.get_mut("services") {
        for svc in services.values_mut() {
            let Value::Mapping(svc) = svc else { continue };
            used.note(svc);
            service_shape(svc, json);
            // Keys in name order, as Compose prints a service: the printed file reads back
            // to the same text.
            let mut entries: Vec<(Value, Value)> = std::mem::take(svc).into_iter().collect();
            entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
            svc.extend(entries);
        }
    }
    for (key, names) in [
        ("networks", &used.networks),
        ("volumes", &used.volumes),
        ("secrets", &used.secrets),
        ("configs", &used.configs),
    ] {
        if let Some(Value::Mapping(objects)) = top.get_mut(key) {
            objects.retain(|k, _| k.as_str().is_some_and(|k| names.contains(k)));
            if json && key == "networks" {
                for net in objects.values_mut() {
                    if let Value::Mapping(net) = net
                        && !net.contains_key("ipam")
                    {
                        net.insert(s("ipam"), Value::Mapping(Mapping::new()));
                    }
                }
            }
        }
        if top
            .get(key)
            .and_then(Value::as_mapping)
            .is_some_and(Mapping::is_empty)
        {
            top.remove(key);
        }
    }
}

fn s(text: &str) -> Value {
    Value::String(text.to_string())
}

/// The top-level objects the services refer to.
#[derive(Default)]
struct Used {
    networks: BTreeSet<String>,
    volumes: BTreeSet<String>,
    secrets: BTreeSet<String>,
    configs: BTreeSet<String>,
}

impl Used {
    fn note(&mut self, svc: &Mapping) {
        if let Some(Value::Mapping(nets)) = svc.get("networks") {
            self.networks
                .extend(nets.keys().filter_map(Value::as_str).map(str::to_string));
        }
        if let Some(Value::Sequence(mounts)) = svc.get("volumes") {
            for m in mounts {
                if m.get("type").and_then(Value::as_str) == Some("volume")
                    && let Some(src) = m.get("source").and_then(Value::as_str)
                {
                    self.volumes.insert(src.to_string());
                }
            }
        }
        for (key, set) in [
            ("secrets", &mut self.secrets),
            ("configs", &mut self.configs),
        ] {
            if let Some(Value::Sequence(refs)) = svc.get(key) {
                set.extend(
                    refs.iter()
                        .filter_map(|r| r.get("source").and_then(Value::as_str))
                        .map(str::to_string),
                );
            }
        }
    }
}

/// Keys holding a size in bytes, printed by Compose as a string of digits.
const SIZE_KEYS: &[&str] = &["mem_limit", "mem_reservation", "memswap_limit", "shm_size"];

fn service_shape(svc: &mut Mapping, json: bool) {
    for key in SIZE_KEYS {
        size_as_string(svc.get_mut(*key));
    }
    if let Some(Value::Mapping(res)) = svc.get_mut("deploy").and_then(|d| d.get_mut("resources")) {
        for part in ["limits", "reservations"] {
            size_as_string(res.get_mut(part).and_then(|p| p.get_mut("memory")));
        }
    }
    if let Some(Value::Sequence(mounts)) = svc.get_mut("volumes") {
        for m in mounts.iter_mut() {
            size_as_string(m.get_mut("tmpfs").and_then(|t| t.get_mut("size")));
            if json
                && let Value::Mapping(m) = m
                && m.get("type").and_then(Value::as_str) == Some("volume")
                && !m.contains_key("volume")
            {
                m.insert(s("volume"), Value::Mapping(Mapping::new()));
            }
        }
    }
    for key in ["secrets", "configs"] {
        if let Some(Value::Sequence(refs)) = svc.get_mut(key) {
            for r in refs.iter_mut() {
                let Value::Mapping(r) = r else { continue };
                if let Some(mode) = r.get("mode").and_then(Value::as_u64) {
                    r.insert(s("mode"), Value::String(format!("0{mode:o}")));
                }
                if key == "secrets"
                    && !r.contains_key("target")
                    && let Some(src) = r.get("source").and_then(Value::as_str)
                {
                    let target = format!("/run/secrets/{src}");
                    r.insert(s("target"), Value::String(target));
                }
            }
        }
    }
    if let Some(Value::Sequence(devices)) = svc.get_mut("devices") {
        for d in devices.iter_mut() {
            if let Value::Mapping(d) = d
                && !d.contains_key("permissions")
            {
                d.insert(s("permissions"), s("rwm"));
            }
        }
    }
    if let Some(Value::Mapping(hosts)) = svc.get("extra_hosts") {
        let mut lines: Vec<String> = Vec::new();
        for (name, addrs) in hosts {
            let Some(name) = name.as_str() else { continue };
            match addrs {
                Value::Sequence(addrs) => lines.extend(
                    addrs
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|a| format!("{name}={a}")),
                ),
                Value::String(a) => lines.push(format!("{name}={a}")),
                _ => {}
            }
        }
        lines.sort();
        svc.insert(
            s("extra_hosts"),
            Value::Sequence(lines.into_iter().map(Value::String).collect()),
        );
    }
    // `test: [NONE]` already says it; Compose prints no `disable` beside it.
    if let Some(Value::Mapping(hc)) = svc.get_mut("healthcheck")
        && hc
            .get("test")
            .and_then(Value::as_sequence)
            .is_some_and(|t| t.len() == 1 && t[0].as_str() == Some("NONE"))
    {
        hc.remove("disable");
    }
    // Compose prints the `missing` its `if_not_present` stands for.
    if svc.get("pull_policy").and_then(Value::as_str) == Some("if_not_present") {
        svc.insert(s("pull_policy"), s("missing"));
    }
    // Compose reads env files into `environment` and prints that alone.
    svc.remove("env_file");
    if let Some(Value::Mapping(args)) = svc.get_mut("build").and_then(|b| b.get_mut("args")) {
        args.retain(|_, v| !v.is_null());
    }
    implicit_depends_on(svc);
    if json {
        for key in ["command", "entrypoint"] {
            if !svc.contains_key(key) {
                svc.insert(s(key), Value::Null);
            }
        }
        if let Some(Value::Mapping(deploy)) = svc.get_mut("deploy") {
            for key in ["resources", "placement"] {
                if !deploy.contains_key(key) {
                    deploy.insert(s(key), Value::Mapping(Mapping::new()));
                }
            }
        }
    }
}

fn size_as_string(v: Option<&mut Value>) {
    // `-1` (memswap_limit: unlimited) is printed as a string too.
    if let Some(v) = v
        && let Value::Number(n) = v
    {
        *v = Value::String(n.to_string());
    }
}

/// The services this one needs without naming them under `depends_on` (`links`,
/// `volumes_from`, `service:` namespace modes), added as Compose shows them: started, restarted
/// with it, required.
fn implicit_depends_on(svc: &mut Mapping) {
    // (service, restarted with it): Compose does not restart for `volumes_from`.
    let mut needs: Vec<(String, bool)> = Vec::new();
    if let Some(Value::Sequence(links)) = svc.get("links") {
        for l in links.iter().filter_map(Value::as_str) {
            needs.push((l.split(':').next().unwrap_or(l).to_string(), true));
        }
    }
    if let Some(Value::Sequence(from)) = svc.get("volumes_from") {
        for f in from.iter().filter_map(Value::as_str) {
            if !f.starts_with("container:") {
                needs.push((f.split(':').next().unwrap_or(f).to_string(), false));
            }
        }
    }
    for key in ["network_mode", "ipc", "pid"] {
        if let Some(other) = svc
            .get(key)
            .and_then(Value::as_str)
            .and_then(|m| m.strip_prefix("service:"))
        {
            needs.push((other.to_string(), true));
        }
    }
    if needs.is_empty() {
        return;
    }
    // One entry per service, restarted when any of its reasons says so.
    let mut merged: Vec<(String, bool)> = Vec::new();
    for (name, restart) in needs {
        match merged.iter_mut().find(|(n, _)| *n == name) {
            Some((_, r)) => *r |= restart,
            None => merged.push((name, restart)),
        }
    }
    let deps = svc
        .entry(s("depends_on"))
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    let Value::Mapping(deps) = deps else { return };
    for (name, restart) in merged {
        if !deps.contains_key(name.as_str()) {
            let mut d = Mapping::new();
            d.insert(s("condition"), s("service_started"));
            if restart {
                d.insert(s("restart"), Value::Bool(true));
            }
            d.insert(s("required"), Value::Bool(true));
            deps.insert(Value::String(name), Value::Mapping(d));
        }
    }
    let mut entries: Vec<(Value, Value)> = std::mem::take(deps).into_iter().collect();
    entries.sort_by(|a, b| a.0.as_str().cmp(&b.0.as_str()));
    deps.extend(entries);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shaped(yaml: &str, json: bool) -> serde_json::Value {
        let mut tree: Value = yaml_serde::from_str(yaml).unwrap();
        compose_shape(&mut tree, json);
        serde_json::to_value(&tree).unwrap()
    }

    #[test]
    fn unused_objects_are_left_out() {
        let v = shaped(
            "services:\n  a:\n    networks: {front: null}\n    volumes:\n      - {type: volume, source: data, target: /d}\n\
             networks: {front: {}, unused: {}}\nvolumes: {data: {}, spare: {}}\n\
             secrets: {s: {file: /x}}\n",
            false,
        );
        assert_eq!(v["networks"], serde_json::json!({"front": {}}));
        assert_eq!(v["volumes"], serde_json::json!({"data": {}}));
        assert!(v.get("secrets").is_none());
    }

    #[test]
    fn implicit_dependencies_show_as_depends_on() {
        let v = shaped(
            "services:\n  a:\n    links: [\"b:alias\"]\n    volumes_from: [\"c:ro\", \"container:x\", d]\n    \
             ipc: service:d\n    pid: service:b\n    network_mode: service:e\n    depends_on:\n      \
             b: {condition: service_healthy, required: true}\n",
            false,
        );
        let deps = &v["services"]["a"]["depends_on"];
        assert_eq!(deps["b"]["condition"], "service_healthy");
        let started =
            serde_json::json!({"condition": "service_started", "restart": true, "required": true});
        for n in ["d", "e"] {
            assert_eq!(deps[n], started, "{n}");
        }
        let from = serde_json::json!({"condition": "service_started", "required": true});
        assert_eq!(deps["c"], from);
        assert!(deps.get("x").is_none());
    }

    #[test]
    fn values_print_as_compose_prints_them() {
        let v = shaped(
            "services:\n  a:\n    mem_limit: 1024\n    memswap_limit: -1\n    extra_hosts: {h: [1.1.1.1, 2.2.2.2], g: [\"::1\"]}\n    \
             secrets: [{source: s}, {source: s, target: /k, mode: 288}]\n    devices: [{source: /dev/x, target: /dev/x}]\n    \
             env_file: [{path: /e, required: true}]\n    build: {context: /c, args: {A: '1', B: null}}\n\
             secrets: {s: {file: /x}}\n",
            false,
        );
        let a = &v["services"]["a"];
        assert_eq!(a["mem_limit"], "1024");
        assert_eq!(a["memswap_limit"], "-1");
        assert_eq!(
            a["extra_hosts"],
            serde_json::json!(["g=::1", "h=1.1.1.1", "h=2.2.2.2"])
        );
        assert_eq!(a["secrets"][0]["target"], "/run/secrets/s");
        assert_eq!(a["secrets"][1]["mode"], "0440");
        assert_eq!(a["devices"][0]["permissions"], "rwm");
        assert!(a.get("env_file").is_none());
        assert_eq!(a["build"]["args"], serde_json::json!({"A": "1"}));
        assert!(a.get("command").is_none());
        let v = shaped("services:\n  a:\n    pull_policy: if_not_present\n", false);
        assert_eq!(v["services"]["a"]["pull_policy"], "missing");
    }

    #[test]
    fn service_keys_in_name_order() {
        let mut tree: Value = yaml_serde::from_str(
            "services:\n  a:\n    image: x\n    command: [a]\n    links: [b]\n",
        )
        .unwrap();
        compose_shape(&mut tree, false);
        let keys: Vec<&str> = tree["services"]["a"]
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(keys, ["command", "depends_on", "image", "links"]);
    }

    #[test]
    fn test_none_prints_without_disable() {
        let v = shaped(
            "services:\n  a:\n    healthcheck: {test: [NONE], disable: true}\n  b:\n    healthcheck: {disable: true}\n",
            false,
        );
        assert_eq!(
            v["services"]["a"]["healthcheck"],
            serde_json::json!({"test": ["NONE"]})
        );
        assert_eq!(
            v["services"]["b"]["healthcheck"],
            serde_json::json!({"disable": true})
        );
    }

    #[test]
    fn json_carries_compose_json_empty_values() {
        let v = shaped(
            "services:\n  a:\n    deploy: {replicas: 2}\n    networks: {default: null}\n    volumes:\n      \
             - {type: volume, source: d, target: /d}\nnetworks: {default: {name: p_default}}\nvolumes: {d: {}}\n",
            true,
        );
        let a = &v["services"]["a"];
        assert!(a["command"].is_null() && a.get("command").is_some());
        assert!(a.get("entrypoint").is_some());
        assert_eq!(a["deploy"]["placement"], serde_json::json!({}));
        assert_eq!(a["volumes"][0]["volume"], serde_json::json!({}));
        assert_eq!(v["networks"]["default"]["ipam"], serde_json::json!({}));
    }
}
