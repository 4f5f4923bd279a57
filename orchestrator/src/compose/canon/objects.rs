//! Top-level networks, volumes, configs and secrets (their keys, `external`, `file`
//! paths), and a service's references to them (`networks`, `configs`, `secrets`).
use yaml_serde::{Mapping, Value};

use super::Canon;
use super::values::{kind, scalar_string};
use crate::compose::fields::{fields_of, unknown_key_message};
use crate::compose::model::{FileObject, Network, Volume};

impl Canon<'_> {
    pub(super) fn network(&mut self, p: &str, v: &mut Value) {
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

    pub(super) fn volume(&mut self, p: &str, v: &mut Value) {
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

    pub(super) fn file_object(&mut self, p: &str, v: &mut Value) {
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

    fn check_keys(&mut self, p: &str, m: &Mapping, known: &[&str]) {
        for k in m.keys() {
            let ks = crate::compose::interpolate::key_text(k);
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

    pub(super) fn service_networks(&mut self, p: &str, v: &mut Value) {
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
                    let name = crate::compose::interpolate::key_text(k);
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

    pub(super) fn file_refs(&mut self, p: &str, v: &mut Value) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canon::testing::run;

    #[test]
    fn top_level_objects() {
        let (v, issues) = run(
            "{external: {name: real}, labels: [a=b], bogus: 1}",
            |cx, v| cx.network("networks.n", v),
        );
        assert_eq!(v["external"], Value::Bool(true));
        assert_eq!(v["name"], Value::from("real"));
        assert_eq!(v["labels"]["a"], Value::from("b"));
        assert_eq!(issues.len(), 1);
        assert!(issues[0].starts_with("networks.n.bogus: "), "{issues:?}");
        let (v, _) = run("{file: ./s.txt}", |cx, v| cx.file_object("secrets.s", v));
        assert_eq!(v["file"], Value::from("/proj/s.txt"));
    }

    #[test]
    fn service_references() {
        let (v, _) = run("[front, back]", |cx, v| cx.service_networks("networks", v));
        assert_eq!(v["front"], Value::Null);
        assert_eq!(v["back"], Value::Null);
        let (v, issues) = run(
            "[s1, {source: s2, mode: '0440'}, {source: s3, mode: x}]",
            |cx, v| cx.file_refs("secrets", v),
        );
        assert_eq!(v[0]["source"], Value::from("s1"));
        assert_eq!(v[1]["mode"], Value::from(0o440));
        assert_eq!(issues, ["secrets[2].mode: \"x\" is not an octal mode"]);
    }
}
