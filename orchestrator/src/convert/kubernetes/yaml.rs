//! The manifests as YAML that reads back the same under YAML 1.1, which Kubernetes' own
//! parser (go-yaml v2 behind sigs.k8s.io/yaml) and PyYAML still follow: there `yes`, `no`,
//! `on`, `off`, `y` and `n` are booleans and `1:30` or `1_000` numbers, so a container
//! argument such as `redis-server --appendonly yes` written plain would reach the API server
//! as `true` and be refused. A string is written plain only when it cannot be read as
//! anything but that string; otherwise double-quoted (JSON escapes are YAML escapes), or as a
//! literal block when it spans lines.

use std::fmt::Write;

use serde_json::Value;

/// `v` as a YAML document (no `---`), ending with a newline.
pub fn to_string(v: &Value) -> String {
    let mut out = String::new();
    match v {
        Value::Object(m) if !m.is_empty() => mapping(&mut out, m, 0),
        Value::Array(a) if !a.is_empty() => sequence(&mut out, a, 0),
        other => {
            scalar(&mut out, other, 0);
            out.push('\n');
        }
    }
    out
}

fn pad(out: &mut String, indent: usize) {
    out.extend(std::iter::repeat_n(' ', indent));
}

/// A block mapping at `indent`, each key on its own line.
fn mapping(out: &mut String, m: &serde_json::Map<String, Value>, indent: usize) {
    for (i, (k, v)) in m.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        // A key is one line: never a block.
        string(out, k, None);
        out.push(':');
        value_after_key(out, v, indent);
    }
}

/// What follows `key:`: a nested collection on the next lines, or ` scalar`.
fn value_after_key(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            pad(out, indent + 2);
            mapping(out, m, indent + 2);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            pad(out, indent);
            sequence(out, a, indent);
        }
        other => {
            out.push(' ');
            scalar(out, other, indent);
            out.push('\n');
        }
    }
}

/// A block sequence at `indent` (the first `- ` already indented by the caller).
fn sequence(out: &mut String, a: &[Value], indent: usize) {
    for (i, v) in a.iter().enumerate() {
        if i > 0 {
            pad(out, indent);
        }
        out.push_str("- ");
        match v {
            Value::Object(m) if !m.is_empty() => mapping(out, m, indent + 2),
            Value::Array(a) if !a.is_empty() => sequence(out, a, indent + 2),
            other => {
                scalar(out, other, indent);
                out.push('\n');
            }
        }
    }
}

fn scalar(out: &mut String, v: &Value, indent: usize) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let _ = write!(out, "{n}");
        }
        Value::String(s) => string(out, s, Some(indent)),
        Value::Object(_) => out.push_str("{}"),
        Value::Array(_) => out.push_str("[]"),
    }
}

/// A string: plain when safe, a literal block (a value at `block_indent`) when it spans
/// lines, else double-quoted.
fn string(out: &mut String, s: &str, block_indent: Option<usize>) {
    if is_plain_safe(s) {
        out.push_str(s);
    } else if let Some(indent) = block_indent.filter(|_| is_block_safe(s)) {
        let body = s.trim_end_matches('\n');
        let chomp = match s.len() - body.len() {
            0 => "-",
            1 => "",
            _ => "+",
        };
        out.push('|');
        out.push_str(chomp);
        // The last line break is the block's own unless every one is stripped.
        let end = if chomp == "-" { s.len() } else { s.len() - 1 };
        for line in s[..end].split('\n') {
            out.push('\n');
            if !line.is_empty() {
                pad(out, indent + 2);
                out.push_str(line);
            }
        }
    } else {
        double_quoted(out, s);
    }
}

/// A character YAML may hold as it is: printable, and not one of the line breaks YAML 1.1
/// adds to `\n` and `\r` (NEL, LS, PS) nor a byte order mark.
fn is_literal_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\u{20}'..='\u{7e}' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

/// `"…"` with every character that is not [`is_literal_char`] (and `"`, `\`, line breaks)
/// escaped.
fn double_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if is_literal_char(c) => out.push(c),
            c => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
        }
    }
    out.push('"');
}

/// Words YAML 1.1 or 1.2 read as booleans or null, whatever their case.
const SPECIAL: &[&str] = &["y", "n", "yes", "no", "on", "off", "true", "false", "null"];

/// Plain only what every YAML reader takes as this very string: starting with a letter, `/`
/// or `-` and a letter or `-` (so never a number, `~`, an indicator or `.inf`), of printable
/// ASCII without `#`, `\` or flow brackets, with no `: ` and no space or `:` at the end, and
/// no boolean word.
fn is_plain_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let Some(&first) = b.first() else {
        return false;
    };
    let starts = first.is_ascii_alphabetic()
        || first == b'/'
        || first == b'-'
            && b.get(1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'-');
    starts
        && b.iter().all(|c| {
            (b' '..=b'~').contains(c) && !matches!(c, b'#' | b'\\' | b'[' | b']' | b'{' | b'}')
        })
        && !s.contains(": ")
        && !s.ends_with([' ', ':'])
        && !SPECIAL.iter().any(|w| s.eq_ignore_ascii_case(w))
}

/// A literal block keeps every character of text that spans lines, holds only
/// [`is_literal_char`]s, and does not start with a space (the block's indentation would be
/// misread).
fn is_block_safe(s: &str) -> bool {
    s.contains('\n')
        && !s.starts_with([' ', '\n'])
        && s.chars().all(is_literal_char)
        && s.split('\n').all(|l| !l.ends_with([' ', '\t']))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Every string reads back as itself with yaml_serde (YAML 1.2); the YAML 1.1 words are
    /// quoted.
    #[test]
    fn strings_read_back_as_themselves() {
        let strings = [
            "yes",
            "No",
            "on",
            "OFF",
            "y",
            "n",
            "true",
            "null",
            "~",
            "",
            "1:30",
            "1_000",
            "0x1f",
            "8080",
            "1.0",
            ".inf",
            "-",
            "- x",
            "a: b",
            "a #b",
            "#c",
            "x:",
            "@a",
            "*a",
            "&a",
            "!t",
            "{a}",
            "[a]",
            "'q'",
            "\"q\"",
            "%p",
            "a\tb",
            "line\n",
            "l1\nl2",
            "l1\nl2\n\n",
            " lead\nx",
            "trail \nx",
            "\n",
            "é",
            "redis-server",
            "/bin/sh",
            "until nslookup db; do sleep 2; done",
            "sha256:abc",
            "-c",
            "--appendonly",
            "-1",
            "--",
            "---",
            "-.inf",
            "a|b; c $X 'q' \"d\" (e) <f> *g! %h &i ?j ~k ^l",
            "a\\b",
            "a ,b",
            "-e",
            "x\u{85}y",
            "x\u{2028}y\u{7f}\u{feff}",
            "l1\n\u{2029}l2",
            "a=b,c",
            "x\r\ny",
        ];
        let v = json!({ "list": strings.to_vec(), "map": strings.iter().map(|s| (s.to_string(), json!(s))).collect::<serde_json::Map<_, _>>() });
        let text = to_string(&v);
        let back: Value = yaml_serde::from_str(&text).expect(&text);
        assert_eq!(back, v, "{text}");
        for w in ["yes", "No", "on", "OFF", "y", "n"] {
            assert!(text.contains(&format!("- \"{w}\"")), "{w} quoted: {text}");
        }
    }

    #[test]
    fn nested_collections_and_scalars_round_trip() {
        let v = json!({
            "apiVersion": "apps/v1",
            "spec": {"replicas": 2, "empty": {}, "none": [], "flag": true, "nil": null,
                     "containers": [{"name": "web", "args": ["--appendonly", "yes"],
                                     "nested": [[1, 2], [{"a": "b"}]]}]},
            "data": {"config.yaml": "listen: 0.0.0.0:8080\nfeatures:\n  on: true\n"},
        });
        let text = to_string(&v);
        let back: Value = yaml_serde::from_str(&text).expect(&text);
        assert_eq!(back, v, "{text}");
        assert!(text.contains("replicas: 2\n"), "{text}");
        assert!(
            text.contains("config.yaml: |\n    listen: 0.0.0.0:8080\n"),
            "{text}"
        );
    }
}
