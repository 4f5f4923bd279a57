//! The YAML berth writes for Kubernetes reads back as the same values under YAML 1.1, which
//! the API server's parser still follows: checked with PyYAML (a YAML 1.1 reader, installed
//! with kubernetes-validate into the test venv) on strings that YAML 1.1 and 1.2 read
//! differently, on every golden manifest, and on a generated spread of short strings.

use std::io::Write;
use std::process::{Command, Stdio};

use berth::convert::kubernetes::yaml;
use serde_json::{Value, json};

/// What PyYAML's safe loader reads from `text`, as JSON.
fn pyyaml(text: &str) -> Value {
    let mut child = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(sys.stdin))))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let o = child.wait_with_output().expect("python3");
    assert!(
        o.status.success(),
        "PyYAML: {}\n{text}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("json")
}

#[test_with::executable(kubernetes-validate)]
#[test]
fn strings_read_back_as_strings_under_yaml_1_1() {
    let mut strings: Vec<String> = [
        "yes",
        "Yes",
        "YES",
        "no",
        "No",
        "on",
        "On",
        "off",
        "OFF",
        "y",
        "Y",
        "n",
        "N",
        "true",
        "False",
        "null",
        "Null",
        "~",
        "",
        "1:30",
        "190:20:30",
        "1_000",
        "0x1F",
        "0o17",
        "017",
        "0b101",
        "+1",
        "-1",
        ".5",
        "1e3",
        "1.0",
        ".inf",
        "-.Inf",
        ".NaN",
        "2001-12-14",
        "2001-12-14t21:59:43.10-05:00",
        "=",
        "<<",
        "- x",
        "a: b",
        "a #b",
        "#",
        "@x",
        "`x",
        "!x",
        "&x",
        "*x",
        "|",
        ">",
        "%x",
        "{a}",
        "[a]",
        "'",
        "\"",
        "a\tb",
        "x\n",
        "x\ny\n\n",
        "\n",
        " x",
        "x ",
        "--appendonly",
        "redis-server",
        "/bin/sh -c 'exit 0'",
        "sha256:ab",
        "a=b,c",
        "café",
        "x\u{85}y",
        "x\u{2028}y",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Every string of up to two characters from a set of YAML's significant ones.
    let alphabet = [
        'a', 'y', 'n', '0', '1', '.', '-', ':', ' ', '#', '_', '+', '~', 'e',
    ];
    for a in alphabet {
        strings.push(a.to_string());
        for b in alphabet {
            strings.push(format!("{a}{b}"));
        }
    }
    let map: serde_json::Map<String, Value> =
        strings.iter().map(|s| (s.clone(), json!(s))).collect();
    let doc = json!({"list": strings, "map": map});
    let text = yaml::to_string(&doc);
    assert_eq!(pyyaml(&text), json!([doc]), "{text}");
}

#[test_with::executable(kubernetes-validate)]
#[test]
fn golden_manifests_read_the_same_under_yaml_1_1_and_1_2() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/kubernetes");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).expect("golden dir").flatten() {
        let text = std::fs::read_to_string(entry.path()).expect("golden");
        use serde::Deserialize;
        let v12: Vec<Value> = yaml_serde::Deserializer::from_str(&text)
            .map(|d| Value::deserialize(d).expect("YAML 1.2"))
            .filter(|v| !v.is_null())
            .collect();
        assert_eq!(
            pyyaml(&text),
            Value::Array(v12),
            "{}",
            entry.path().display()
        );
        n += 1;
    }
    assert!(n >= 8, "{n} golden files");
}
