//! Compose variable interpolation: `$VAR`, `${VAR}`, `${VAR:-d}`, `${VAR-d}`, `${VAR:?e}`,
//! `${VAR?e}`, `${VAR:+a}`, `${VAR+a}`, nested templates in the default, and `$$` for a literal `$`.
//!
//! No crate implements this grammar (shellexpand and friends lack `-`, `?`, `+` or `$$`), so it is
//! written here. Unset variables without a default expand to "" and are collected so the caller
//! warns once per name, as compose does.

use std::collections::BTreeSet;

use yaml_serde::Value;

/// Looks a variable up; `None` = unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Interpolation state across a whole load: the names already found unset.
#[derive(Debug, Default)]
pub struct Unset {
    /// Names used without a default while unset.
    pub names: BTreeSet<String>,
}

/// Expands every template in `s`. Errors carry a message naming the variable or the bad template.
pub fn interpolate_str(s: &str, lookup: Lookup<'_>, unset: &mut Unset) -> Result<String, String> {
    if !s.contains('$') {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(inner_start) = after.strip_prefix('{') {
            let end = matching_brace(inner_start)
                .ok_or_else(|| format!("invalid template {s:?}: unclosed \"${{\""))?;
            let inner = &inner_start[..end];
            out.push_str(&braced(inner, s, lookup, unset)?);
            rest = &inner_start[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 {
                return Err(format!(
                    "invalid template {s:?}: \"$\" must be followed by a name, \"{{\" or \"$\" (write \"$$\" for a literal \"$\")"
                ));
            }
            let name = &after[..len];
            out.push_str(&value_or_warn(name, lookup, unset));
            rest = &after[len..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn value_or_warn(name: &str, lookup: Lookup<'_>, unset: &mut Unset) -> String {
    match lookup(name) {
        Some(v) => v,
        None => {
            unset.names.insert(name.to_string());
            String::new()
        }
    }
}

fn name_len(s: &str) -> usize {
    let mut n = 0;
    for (i, c) in s.char_indices() {
        let ok = c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit());
        if !ok {
            break;
        }
        n = i + c.len_utf8();
    }
    n
}

/// Index of the `}` closing a `${`, skipping nested `${…}` and `$$`.
fn matching_brace(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 0usize;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'$') => i += 1,
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 1;
            }
            b'}' => {
                if depth == 0 {
                    return Some(i);
                }
                depth -= 1;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    inner: &str,
    whole: &str,
    lookup: Lookup<'_>,
    unset: &mut Unset,
) -> Result<String, String> {
    let len = name_len(inner);
    if len == 0 {
        return Err(format!(
            "invalid template {whole:?}: \"${{{inner}}}\" has no variable name"
        ));
    }
    let name = &inner[..len];
    let op = &inner[len..];
    if op.is_empty() {
        return Ok(value_or_warn(name, lookup, unset));
    }
    let value = lookup(name);
    let (colon, rest) = match op.strip_prefix(':') {
        Some(r) => (true, r),
        None => (false, op),
    };
    let Some(kind) = rest.chars().next() else {
        return Err(format!("invalid template {whole:?}: \"${{{inner}}}\""));
    };
    let word = &rest[kind.len_utf8()..];
    // `:` tests "unset or empty", without it only "unset".
    let missing = match &value {
        None => true,
        Some(v) => colon && v.is_empty(),
    };
    match kind {
        '-' => {
            if missing {
                interpolate_str(word, lookup, unset)
            } else {
                Ok(value.unwrap_or_default())
            }
        }
        '?' => {
            if missing {
                let msg = interpolate_str(word, lookup, unset)?;
                if msg.is_empty() {
                    Err(format!("required variable {name} is missing a value"))
                } else {
                    Err(format!(
                        "required variable {name} is missing a value: {msg}"
                    ))
                }
            } else {
                Ok(value.unwrap_or_default())
            }
        }
        '+' => {
            if missing {
                Ok(String::new())
            } else {
                interpolate_str(word, lookup, unset)
            }
        }
        _ => Err(format!(
            "invalid template {whole:?}: unknown operator in \"${{{inner}}}\" (use :-, -, :?, ?, :+ or +)"
        )),
    }
}

/// Interpolates every string value (not keys) of a tree. On error returns the key path and message.
pub fn interpolate_value(
    v: &mut Value,
    path: &mut String,
    lookup: Lookup<'_>,
    unset: &mut Unset,
) -> Result<(), (String, String)> {
    match v {
        Value::String(s) if s.contains('$') => {
            *s = interpolate_str(s, lookup, unset).map_err(|e| (path.clone(), e))?;
        }
        Value::Sequence(seq) => {
            for (i, item) in seq.iter_mut().enumerate() {
                let len = path.len();
                push_index(path, i);
                interpolate_value(item, path, lookup, unset)?;
                path.truncate(len);
            }
        }
        Value::Mapping(m) => {
            for (k, item) in m.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                push_key(path, k);
                interpolate_value(item, path, lookup, unset)?;
                path.truncate(len);
            }
        }
        Value::Tagged(t) => interpolate_value(&mut t.value, path, lookup, unset)?,
        _ => {}
    }
    Ok(())
}

/// Appends `[i]` to a key path without a temporary allocation.
pub fn push_index(path: &mut String, i: usize) {
    use std::fmt::Write;
    let _ = write!(path, "[{i}]");
}

/// Appends a mapping key to a key path (no allocation for string keys).
pub fn push_key(path: &mut String, k: &Value) {
    match k {
        Value::String(s) => path.push_str(s),
        other => path.push_str(&key_text(other)),
    }
}

/// A mapping key as text for paths.
pub fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        _ => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(s: &str) -> Result<String, String> {
        let env: HashMap<&str, &str> = [("SET", "val"), ("EMPTY", ""), ("B", "bee"), ("N", "3")]
            .into_iter()
            .collect();
        let lookup = move |k: &str| env.get(k).map(|v| v.to_string());
        let mut unset = Unset::default();
        interpolate_str(s, &lookup, &mut unset)
    }

    #[test]
    fn grammar() {
        let cases = [
            ("plain", "plain"),
            ("$SET", "val"),
            ("${SET}", "val"),
            ("a${SET}b", "avalb"),
            ("$SET.x", "val.x"),
            ("${UNSET:-d}", "d"),
            ("${EMPTY:-d}", "d"),
            ("${EMPTY-d}", ""),
            ("${UNSET-d}", "d"),
            ("${SET:-d}", "val"),
            ("${SET:+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET+alt}", ""),
            ("${UNSET:-${B:-c}}", "bee"),
            ("${UNSET:-${NOPE:-c}}", "c"),
            ("${UNSET:-${NOPE:-$B}}x", "beex"),
            ("$$SET", "$SET"),
            ("$${SET}", "${SET}"),
            ("cost: $$5", "cost: $5"),
            ("${UNSET}", ""),
            ("${SET:?boom}", "val"),
            ("${UNSET:-a:b}", "a:b"),
            ("${UNSET:-}", ""),
            ("port ${N}0", "port 30"),
        ];
        for (input, want) in cases {
            assert_eq!(run(input).as_deref(), Ok(want), "{input}");
        }
    }

    #[test]
    fn errors_name_the_variable_or_template() {
        assert_eq!(
            run("${UNSET:?must be set}").unwrap_err(),
            "required variable UNSET is missing a value: must be set"
        );
        assert!(run("${EMPTY:?x}").unwrap_err().contains("EMPTY"));
        assert!(run("${EMPTY?x}").is_ok());
        assert!(run("${UNSET?}").unwrap_err().contains("UNSET"));
        assert!(run("${SET").unwrap_err().contains("unclosed"));
        assert!(run("a $ b").unwrap_err().contains("$$"));
        assert!(run("${}").unwrap_err().contains("no variable name"));
        assert!(run("${SET!x}").unwrap_err().contains("unknown operator"));
        // Found by the fuzzer: a multi-byte character after the name.
        assert!(run("${SET:é}").unwrap_err().contains("unknown operator"));
        assert!(run("${SETé}").unwrap_err().contains("unknown operator"));
    }

    #[test]
    fn unset_names_are_collected_once() {
        let lookup = |_: &str| None;
        let mut unset = Unset::default();
        interpolate_str("$A ${A} ${B:-x} ${C}", &lookup, &mut unset).unwrap();
        assert_eq!(unset.names.iter().collect::<Vec<_>>(), ["A", "C"]);
    }
}
