//! `berth convert kubernetes --helm` on every stack. No helm binary is available here (none
//! in Debian 12), so the chart is proven by rendering its templates with its own values
//! through [`render`], which is exact for the only template language the chart uses —
//! `{{ .Values.a.b }}`, `{{ .Release.Name }}` and the escape `{{ "{{" }}`, with no trim
//! markers, functions or pipelines — and refuses anything else. Rendered with the default
//! values the chart must give exactly the manifests `-o` writes; rendered with other values
//! it must carry them; both pass kubernetes-validate's strict check.

mod k8s_common;

use std::path::{Path, PathBuf};

use k8s_common::{convert, documents, manifests_in, stacks, validate_strict};
use serde_json::Value;

/// Renders `template` as Go's text/template (what Helm runs) renders it for the subset the
/// chart emits. Values print as Helm prints them: Helm reads values.yaml numbers as float64,
/// whose `%v` is the integer's digits below 1e21 only when it is under 1e6 (above it Go
/// writes `1e+06`), so larger numbers are refused rather than guessed.
fn render(template: &str, values: &Value, release: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unclosed action at {:?}", &rest[start..]))?;
        let action = &after[..end];
        if action.starts_with('-') || action.ends_with('-') {
            return Err(format!("trim markers are not in the subset: {action:?}"));
        }
        match action.trim() {
            r#""{{""# => out.push_str("{{"),
            ".Release.Name" => out.push_str(release),
            a => {
                let path = a
                    .strip_prefix(".Values.")
                    .ok_or_else(|| format!("action {a:?} is not in the subset"))?;
                let mut v = values;
                for field in path.split('.') {
                    v = v
                        .get(field)
                        .ok_or_else(|| format!("{a}: no value {field:?}"))?;
                }
                match v {
                    Value::String(s) => out.push_str(s),
                    Value::Number(n) if n.as_u64().is_some_and(|n| n < 1_000_000) => {
                        out.push_str(&n.to_string())
                    }
                    other => return Err(format!("{a}: {other} is not in the subset")),
                }
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The rendered templates of the chart in `chart`, by file name.
fn render_chart(chart: &Path, values: &Value, release: &str) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(chart.join("templates"))
        .expect("templates/")
        .flatten()
        .map(|e| e.path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("template");
            let name = f.file_name().expect("name").to_string_lossy().into_owned();
            let rendered =
                render(&text, values, release).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (name, rendered)
        })
        .collect()
}

fn values_of(chart: &Path) -> Value {
    let text = std::fs::read_to_string(chart.join("values.yaml")).expect("values.yaml");
    yaml_serde::from_str(&text).expect("values.yaml is YAML")
}

#[test]
fn the_renderer_is_exact_for_its_subset_and_refuses_the_rest() {
    let values =
        serde_json::json!({"s": {"web": {"image": "nginx", "replicas": 3, "big": 1_000_000}}});
    assert_eq!(
        render(
            r#"a: {{ .Values.s.web.image }} {{ "{{" }}x}} {{ .Release.Name }} {{.Values.s.web.replicas}}"#,
            &values,
            "rel"
        ),
        Ok("a: nginx {{x}} rel 3".into())
    );
    for bad in [
        "{{ .Values.s.web.big }}",
        "{{ .Values.s.nope }}",
        "{{- .Release.Name }}",
        "{{ toYaml .Values.s }}",
        "{{ .Values.s.web }}",
        "{{ .Release.Name",
    ] {
        assert!(render(bad, &values, "rel").is_err(), "{bad}");
    }
}

#[test]
fn charts_render_to_the_plain_manifests_with_their_values() {
    for (name, file) in stacks() {
        let chart = tempfile::tempdir().expect("tempdir");
        let plain = tempfile::tempdir().expect("tempdir");
        let (_, stderr) = convert(
            &file,
            &["-o", chart.path().to_str().expect("utf-8"), "--helm"],
        );
        assert!(stderr.contains("Helm chart"), "{stderr}");
        convert(&file, &["-o", plain.path().to_str().expect("utf-8")]);
        let meta: Value = yaml_serde::from_str(
            &std::fs::read_to_string(chart.path().join("Chart.yaml")).expect("Chart.yaml"),
        )
        .expect("Chart.yaml is YAML");
        assert_eq!(meta["apiVersion"], "v2", "{name}");
        assert_eq!(meta["version"], "0.1.0", "{name}");
        let rendered = render_chart(chart.path(), &values_of(chart.path()), "rel");
        let plain_files = manifests_in(plain.path());
        assert_eq!(
            rendered.len(),
            plain_files.len(),
            "{name}: one template per manifest"
        );
        for ((file, text), want) in rendered.iter().zip(&plain_files) {
            assert_eq!(
                Some(file.as_str()),
                want.file_name().and_then(|f| f.to_str())
            );
            let got = documents(text);
            let want = documents(&std::fs::read_to_string(want).expect("manifest"));
            assert_eq!(got, want, "{name}: {file} rendered:\n{text}");
        }
    }
}

#[test_with::executable(kubernetes-validate)]
#[test]
fn charts_render_the_values_given_and_stay_strictly_valid() {
    let mut total = 0;
    for (name, file) in stacks() {
        let chart = tempfile::tempdir().expect("tempdir");
        convert(
            &file,
            &["-o", chart.path().to_str().expect("utf-8"), "--helm"],
        );
        let mut values = values_of(chart.path());
        let services = values["services"]
            .as_object_mut()
            .expect("services in values.yaml");
        for v in services.values_mut() {
            v["replicas"] = serde_json::json!(3);
            v["tag"] = serde_json::json!("v9");
            if let Some(limits) = v.pointer_mut("/resources/limits/memory") {
                *limits = serde_json::json!("1Gi");
            }
        }
        let out = tempfile::tempdir().expect("tempdir");
        let mut files = Vec::new();
        for (file, text) in render_chart(chart.path(), &values, "prod") {
            for d in documents(&text) {
                if matches!(d["kind"].as_str(), Some("Deployment" | "StatefulSet")) {
                    assert_eq!(d["spec"]["replicas"], 3, "{name}: {file}");
                    let c = &d["spec"]["template"]["spec"]["containers"][0];
                    assert!(
                        c["image"].as_str().is_some_and(|i| i.ends_with(":v9")),
                        "{name}: {c}"
                    );
                    if let Some(m) = c.pointer("/resources/limits/memory") {
                        assert_eq!(m, "1Gi", "{name}: {file}");
                    }
                }
            }
            let path = out.path().join(&file);
            std::fs::write(&path, text).expect("write rendered");
            files.push(path);
        }
        total += files.len();
        validate_strict(&format!("{name} (helm)"), &files, files.len());
    }
    println!("{total} rendered chart templates pass strict validation on Kubernetes 1.30 and 1.37");
}
