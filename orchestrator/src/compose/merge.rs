//! Merging normalised Compose trees, following the Compose Specification's merge rules.
//!
//! Mappings merge key by key; sequences append (dropping exact duplicates); `command`,
//! `entrypoint` and `healthcheck.test` are replaced; `ports` (by ip/target/published/protocol),
//! `volumes`, `secrets` and `configs` (by target) are unique resources where the later entry wins.
//! `!reset` removes a value, `!override` replaces it without merging.

use yaml_serde::{Mapping, Value};

/// Merges a later file's root (`over`) into `base`.
pub fn merge_roots(base: &mut Mapping, over: Mapping) {
    for (k, v) in over {
        let key = k.as_str().unwrap_or("").to_string();
        match key.as_str() {
            "services" => {
                let v = match v {
                    Value::Tagged(t) => t.value,
                    other => other,
                };
                let Value::Mapping(services) = v else {
                    continue;
                };
                let target = base
                    .entry(k.clone())
                    .or_insert_with(|| Value::Mapping(Mapping::new()));
                if !target.is_mapping() {
                    *target = Value::Mapping(Mapping::new());
                }
                let Some(target) = target.as_mapping_mut() else {
                    continue;
                };
                for (name, svc) in services {
                    match target.get_mut(&name) {
                        Some(Value::Mapping(existing)) => {
                            if let Value::Mapping(svc) = svc {
                                merge_service(existing, svc);
                            } else if let Some(t) = reset_or_override(&svc) {
                                match t {
                                    Tagged::Reset => {
                                        target.remove(&name);
                                    }
                                    Tagged::Override(v) => {
                                        target.insert(name, v);
                                    }
                                }
                            }
                        }
                        _ => {
                            target.insert(name, untag_value(svc));
                        }
                    }
                }
            }
            _ => merge_key(base, k, v, deep_merge),
        }
    }
}

enum Tagged {
    Reset,
    Override(Value),
}

fn reset_or_override(v: &Value) -> Option<Tagged> {
    match v {
        Value::Tagged(t) if t.tag == "reset" => Some(Tagged::Reset),
        Value::Tagged(t) if t.tag == "override" => {
            Some(Tagged::Override(strip_tags(t.value.clone())))
        }
        _ => None,
    }
}

fn merge_key(base: &mut Mapping, k: Value, v: Value, merge: fn(&mut Value, Value)) {
    match reset_or_override(&v) {
        Some(Tagged::Reset) => {
            base.remove(&k);
        }
        Some(Tagged::Override(v)) => {
            base.insert(k, v);
        }
        None => match base.get_mut(&k) {
            Some(existing) => merge(existing, v),
            None => {
                base.insert(k, strip_tags(v));
            }
        },
    }
}

/// Merges one service definition (`over`) into another (`base`), both normalised.
pub fn merge_service(base: &mut Mapping, over: Mapping) {
    for (k, v) in over {
        let key = k.as_str().unwrap_or("").to_string();
        let f: fn(&mut Value, Value) = match key.as_str() {
            "command" | "entrypoint" => replace,
            "healthcheck" => merge_healthcheck,
            "ports" => |b, o| merge_unique(b, o, port_key),
            "volumes" => |b, o| merge_unique(b, o, target_key),
            "secrets" | "configs" => |b, o| merge_unique(b, o, target_or_source_key),
            "env_file" => |b, o| merge_unique(b, o, |v| v.get("path").cloned()),
            "logging" => merge_logging,
            _ => deep_merge,
        };
        merge_key(base, k, v, f);
    }
}

fn replace(base: &mut Value, over: Value) {
    *base = strip_tags(over);
}

/// Maps merge recursively, sequences append without duplicates, scalars are replaced.
pub fn deep_merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                merge_key(b, k, v, deep_merge);
            }
        }
        (Value::Sequence(b), Value::Sequence(o)) => {
            for item in o {
                let item = strip_tags(item);
                if !b.contains(&item) {
                    b.push(item);
                }
            }
        }
        (b, o) => *b = strip_tags(o),
    }
}

fn merge_healthcheck(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                let f: fn(&mut Value, Value) = if k.as_str() == Some("test") {
                    replace
                } else {
                    deep_merge
                };
                merge_key(b, k, v, f);
            }
        }
        (b, o) => *b = strip_tags(o),
    }
}

/// A different logging driver discards the base's options.
fn merge_logging(base: &mut Value, over: Value) {
    let driver = |v: &Value| v.get("driver").and_then(Value::as_str).map(str::to_string);
    if let (Some(a), Some(b)) = (driver(base), driver(&over))
        && a != b
    {
        *base = strip_tags(over);
        return;
    }
    deep_merge(base, over)
}

fn merge_unique(base: &mut Value, over: Value, key: fn(&Value) -> Option<Value>) {
    let (Value::Sequence(b), Value::Sequence(o)) = (&mut *base, &over) else {
        *base = strip_tags(over);
        return;
    };
    for item in o {
        let item = strip_tags(item.clone());
        let k = key(&item);
        match k.and_then(|k| b.iter().position(|x| key(x).as_ref() == Some(&k))) {
            Some(i) => {
                let mut merged = b[i].clone();
                deep_merge(&mut merged, item);
                b[i] = merged;
            }
            None => b.push(item),
        }
    }
}

fn port_key(v: &Value) -> Option<Value> {
    let mut m = Mapping::new();
    for k in ["host_ip", "target", "published", "protocol"] {
        m.insert(k.into(), v.get(k).cloned().unwrap_or(Value::Null));
    }
    Some(Value::Mapping(m))
}

fn target_key(v: &Value) -> Option<Value> {
    v.get("target").cloned()
}

fn target_or_source_key(v: &Value) -> Option<Value> {
    v.get("target").or_else(|| v.get("source")).cloned()
}

fn untag_value(v: Value) -> Value {
    match v {
        Value::Tagged(t) if t.tag == "reset" => Value::Null,
        other => strip_tags(other),
    }
}

/// Removes `!override` tags (keeping values) and `!reset` entries (nothing to reset in a base).
pub fn strip_tags(mut v: Value) -> Value {
    strip_in_place(&mut v);
    v
}

fn is_reset(v: &Value) -> bool {
    matches!(v, Value::Tagged(t) if t.tag == "reset")
}

/// In place, touching only what is tagged (most trees have no tags at all).
fn strip_in_place(v: &mut Value) {
    match v {
        Value::Tagged(t) => {
            let inner = std::mem::replace(&mut t.value, Value::Null);
            *v = inner;
            strip_in_place(v);
        }
        Value::Mapping(m) => {
            if m.values().any(is_reset) {
                m.retain(|_, v| !is_reset(v));
            }
            for item in m.values_mut() {
                strip_in_place(item);
            }
        }
        Value::Sequence(s) => {
            for item in s {
                strip_in_place(item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Mapping {
        yaml_serde::from_str(s).unwrap()
    }

    #[test]
    fn service_rules() {
        let mut base = y(
            "image: a\ncommand: [x, y]\ndns: [1.1.1.1]\nenvironment: {A: '1', B: '2'}\nports: [{target: 80, published: '8080', protocol: tcp, mode: ingress}]\nvolumes: [{type: bind, source: /a, target: /data}]\n",
        );
        let over = y(
            "image: b\ncommand: [z]\ndns: [8.8.8.8, 1.1.1.1]\nenvironment: {B: '3'}\nports: [{target: 80, published: '8080', protocol: tcp, mode: host}, {target: 81, protocol: tcp, mode: ingress}]\nvolumes: [{type: bind, source: /b, target: /data}]\n",
        );
        merge_service(&mut base, over);
        let v = Value::Mapping(base);
        assert_eq!(v["image"], "b");
        assert_eq!(v["command"], yaml_serde::from_str::<Value>("[z]").unwrap());
        assert_eq!(
            v["dns"],
            yaml_serde::from_str::<Value>("[1.1.1.1, 8.8.8.8]").unwrap()
        );
        assert_eq!(v["environment"]["A"], "1");
        assert_eq!(v["environment"]["B"], "3");
        assert_eq!(v["ports"].as_sequence().unwrap().len(), 2);
        assert_eq!(v["ports"][0]["mode"], "host");
        assert_eq!(v["volumes"].as_sequence().unwrap().len(), 1);
        assert_eq!(v["volumes"][0]["source"], "/b");
    }

    #[test]
    fn reset_and_override_tags() {
        let mut base = y("ports: [{target: 80}]\nenvironment: {A: '1', B: '2'}\nimage: x\n");
        let over = y("ports: !reset []\nenvironment: !override {C: '3'}\n");
        merge_service(&mut base, over);
        let v = Value::Mapping(base);
        assert!(v.get("ports").is_none());
        assert_eq!(
            v["environment"],
            yaml_serde::from_str::<Value>("{C: '3'}").unwrap()
        );
        assert_eq!(v["image"], "x");
    }

    #[test]
    fn roots_merge_services_and_networks() {
        let mut base = y("services: {a: {image: x}}\nnetworks: {n: {driver: bridge}}\n");
        merge_roots(
            &mut base,
            y("services: {a: {tty: true}, b: {image: y}}\nnetworks: {n: {internal: true}}\n"),
        );
        let v = Value::Mapping(base);
        assert_eq!(v["services"]["a"]["image"], "x");
        assert_eq!(v["services"]["a"]["tty"], true);
        assert_eq!(v["services"]["b"]["image"], "y");
        assert_eq!(v["networks"]["n"]["internal"], true);
        assert_eq!(v["networks"]["n"]["driver"], "bridge");
    }
}
