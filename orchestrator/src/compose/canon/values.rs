//! The value kinds every pass checks and converts: strings, booleans, numbers, sizes,
//! durations, lists of strings, `KEY=VALUE` dictionaries; and the `!reset`/`!override` tags.
use yaml_serde::value::{Tag, TaggedValue};
use yaml_serde::{Mapping, Value};

use super::Canon;
use crate::compose::units::{format_go, parse_duration, parse_size};

impl Canon<'_> {
    pub(super) fn mapping<'v>(&mut self, p: &str, v: &'v mut Value) -> Option<&'v mut Mapping> {
        if v.is_null() {
            *v = Value::Mapping(Mapping::new());
        }
        if !v.is_mapping() {
            self.err(p, format!("must be a mapping, got {}", kind(v)));
            return None;
        }
        v.as_mapping_mut()
    }

    pub(super) fn string(&mut self, p: &str, v: &mut Value) {
        match scalar_string(v) {
            Some(s) => *v = Value::String(s),
            None if v.is_null() => {}
            None => self.err(p, format!("must be a string, got {}", kind(v))),
        }
    }

    pub(super) fn boolean(&mut self, p: &str, v: &mut Value) {
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

    pub(super) fn integer(&mut self, p: &str, v: &mut Value, min: i64) {
        match as_i64(v) {
            Some(n) if n >= min => *v = Value::from(n),
            Some(n) => self.err(p, format!("{n} is below the minimum {min}")),
            None => self.err(p, format!("{} is not an integer", show(v))),
        }
    }

    pub(super) fn float(&mut self, p: &str, v: &mut Value) {
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

    pub(super) fn size(&mut self, p: &str, v: &mut Value) {
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

    pub(super) fn duration(&mut self, p: &str, v: &mut Value) {
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

    pub(super) fn str_list(&mut self, p: &str, v: &mut Value) {
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
    pub(super) fn dict(&mut self, p: &str, v: &mut Value, nulls: bool) {
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
                    let key = crate::compose::interpolate::key_text(k);
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
}

/// Applies `f` to the value under a `!reset`/`!override` tag (keeping the tag), or to the value.
pub(super) fn with_tag(v: &mut Value, f: impl FnOnce(&mut Value)) {
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

pub(super) fn as_i64(v: &Value) -> Option<i64> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::canon::testing::run;

    fn yaml(s: &str) -> Value {
        yaml_serde::from_str(s).expect("test YAML parses")
    }

    #[test]
    fn dict_from_list_and_mapping() {
        let (v, issues) = run("[A=1, B, C=x=y]", |cx, v| cx.dict("environment", v, true));
        assert!(issues.is_empty(), "{issues:?}");
        assert_eq!(v, yaml("{A: '1', B: null, C: x=y}"));
        let (v, _) = run("[B]", |cx, v| cx.dict("labels", v, false));
        assert_eq!(v, yaml("{B: ''}"));
        let (v, _) = run("{n: 3, t: true, e: null}", |cx, v| {
            cx.dict("labels", v, false)
        });
        assert_eq!(v, yaml("{n: '3', t: 'true', e: ''}"));
        let (_, issues) = run("{a: [1]}", |cx, v| cx.dict("labels", v, false));
        assert_eq!(
            issues,
            ["labels.a: must be a string, number or boolean, got a list"]
        );
    }

    #[test]
    fn scalars_convert_or_report() {
        let (v, _) = run("'yes'", |cx, v| cx.boolean("tty", v));
        assert_eq!(v, Value::Bool(true));
        let (v, _) = run("512m", |cx, v| cx.size("mem_limit", v));
        assert_eq!(v, Value::from(512u64 << 20));
        let (v, _) = run("90", |cx, v| cx.duration("stop_grace_period", v));
        assert_eq!(v, Value::String("1m30s".into()));
        let (v, _) = run("'8'", |cx, v| cx.integer("scale", v, 0));
        assert_eq!(v, Value::from(8));
        let (_, issues) = run("-1", |cx, v| cx.integer("scale", v, 0));
        assert_eq!(issues, ["scale: -1 is below the minimum 0"]);
        let (v, _) = run("single", |cx, v| cx.str_list("dns", v));
        assert_eq!(v, yaml("[single]"));
        let (_, issues) = run("[a, [b]]", |cx, v| cx.str_list("dns", v));
        assert_eq!(issues, ["dns[1]: must be a string, got a list"]);
    }

    #[test]
    fn tags_reset_keeps_the_value_override_normalises_it() {
        let mut v = tagged("override", Value::String("a".into()));
        with_tag(&mut v, |v| *v = Value::Bool(true));
        assert_eq!(v, tagged("override", Value::Bool(true)));
        let mut v = tagged("reset", Value::String("a".into()));
        with_tag(&mut v, |v| *v = Value::Bool(true));
        assert_eq!(v, tagged("reset", Value::String("a".into())));
        let mut v = tagged("other", Value::String("a".into()));
        with_tag(&mut v, |_| {});
        assert_eq!(v, Value::String("a".into()));
    }
}
