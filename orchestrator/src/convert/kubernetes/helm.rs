//! `berth convert kubernetes --helm`: the manifests as a Helm chart (Chart.yaml apiVersion v2,
//! values.yaml, templates/). What differs between installs of a stack is in the values, per
//! service: the image repository and tag, the replica count and the resource limits and
//! requests. The templates are the manifests with those fields replaced by `{{ .Values… }}`
//! actions and nothing else of the template language (no functions, pipelines or
//! conditionals), so what they render to is exactly the manifests for the default values;
//! text of the stack that looks like an action (`{{` in a command or a config file) is
//! escaped as the action `{{ "{{" }}`, which prints it back.

use serde_json::{Map, Value, json};

use super::{Conversion, names};
use crate::compose::Project;

/// Why the chart could not be written.
#[derive(Debug, thiserror::Error)]
pub enum HelmError {
    /// A manifest holds the text the chart uses to mark the fields it templates.
    #[error("{file}: holds the text {MARK:?}, which the chart uses as a placeholder")]
    Marker {
        /// The manifest's file.
        file: String,
    },
}

const MARK: &str = "berth-helm-mark-";

/// One file of the chart: its path inside the chart directory and its text.
#[derive(Debug, Clone)]
pub struct ChartFile {
    /// `Chart.yaml`, `values.yaml` or `templates/<manifest file>`.
    pub path: String,
    /// The file's content.
    pub text: String,
}

/// The chart of `project` made of the manifests of `conv`.
pub fn chart(project: &Project, conv: &Conversion) -> Result<Vec<ChartFile>, HelmError> {
    let chart_name = names::sanitize(&project.name);
    let chart_meta = json!({
        "apiVersion": "v2",
        "name": chart_name,
        "description": format!("The {} Compose stack, converted by berth", project.name),
        "type": "application",
        "version": "0.1.0",
    });
    let mut out = vec![ChartFile {
        path: "Chart.yaml".into(),
        text: yaml(&chart_meta),
    }];
    let mut values = Map::new();
    let mut templates = Vec::new();
    for m in &conv.manifests {
        let mut object = m.object.clone();
        let mut actions = Vec::new();
        if matches!(
            object["kind"].as_str(),
            Some("Deployment" | "StatefulSet" | "Job")
        ) && let Some(service) = object["metadata"]["name"].as_str().map(String::from)
        {
            let key = value_key(&service);
            let v = template_workload(&mut object, &key, &mut actions);
            values.insert(key, Value::Object(v));
        }
        let text = yaml(&m.object);
        if text.contains(MARK) {
            return Err(HelmError::Marker {
                file: m.file.clone(),
            });
        }
        // Escape first: the actions put in below are the only ones the template holds.
        let mut text = yaml(&object).replace("{{", r#"{{ "{{" }}"#);
        for (i, action) in actions.iter().enumerate() {
            text = text.replacen(&marker(i), action, 1);
        }
        templates.push(ChartFile {
            path: format!("templates/{}", m.file),
            text,
        });
    }
    let values = json!({ "services": values });
    let header = "# Per service: the image repository and tag (\"TAG@sha256:…\" when pinned), the\n\
                  # replica count, and the resource limits and requests the stack set.\n";
    out.push(ChartFile {
        path: "values.yaml".into(),
        text: format!("{header}{}", yaml(&values)),
    });
    out.extend(templates);
    Ok(out)
}

/// The key of a service in values.yaml: its name with `-` as `_`, so that it is a field name
/// the template language accepts (service names are DNS-1035 labels: one maps to one key).
pub fn value_key(service: &str) -> String {
    service.replace('-', "_")
}

/// Replaces the replica count, the image and the resources of the workload's container by
/// markers (their actions pushed to `actions` in order) and answers the service's values.
fn template_workload(
    object: &mut Value,
    key: &str,
    actions: &mut Vec<String>,
) -> Map<String, Value> {
    let path = format!(".Values.services.{key}");
    let mut values = Map::new();
    let mut mark = |action: String| {
        let m = marker(actions.len());
        actions.push(action);
        Value::String(m)
    };
    if let Some(r) = object["spec"].get("replicas").cloned() {
        values.insert("replicas".into(), r);
        object["spec"]["replicas"] = mark(format!("{{{{ {path}.replicas }}}}"));
    }
    let Some(c) = object["spec"]["template"]["spec"]["containers"]
        .get_mut(0)
        .and_then(Value::as_object_mut)
    else {
        return values;
    };
    if let Some(image) = c.get("image").and_then(Value::as_str).map(String::from) {
        let (repo, tag) = split_image(&image);
        values.insert("image".into(), json!(repo));
        values.insert("tag".into(), json!(tag));
        c.insert(
            "image".into(),
            mark(format!("\"{{{{ {path}.image }}}}:{{{{ {path}.tag }}}}\"")),
        );
    }
    if let Some(Value::Object(res)) = c.get_mut("resources") {
        let mut rv = Map::new();
        for (kind, amounts) in res.iter_mut() {
            let Value::Object(amounts) = amounts else {
                continue;
            };
            let mut kv = Map::new();
            for (resource, amount) in amounts.iter_mut() {
                if !is_field(kind) || !is_field(resource) || !amount.is_string() {
                    continue;
                }
                kv.insert(resource.clone(), amount.clone());
                *amount = mark(format!("\"{{{{ {path}.resources.{kind}.{resource} }}}}\""));
            }
            if !kv.is_empty() {
                rv.insert(kind.clone(), Value::Object(kv));
            }
        }
        if !rv.is_empty() {
            values.insert("resources".into(), Value::Object(rv));
        }
    }
    values
}

fn marker(i: usize) -> String {
    format!("{MARK}{i}-end")
}

/// A name the template language takes as a field (`.a.b`): a letter or `_`, then those and
/// digits.
fn is_field(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `repo[:tag][@digest]` as (repo, tag): the tag is `latest` when the reference names none,
/// and carries the digest (`tag@sha256:…`) when it is pinned, so that `repo:tag` is the
/// reference again.
pub fn split_image(image: &str) -> (String, String) {
    let (named, digest) = match image.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (image, None),
    };
    let last = named.rfind('/').map_or(0, |i| i + 1);
    let (repo, tag) = match named[last..].rfind(':') {
        Some(i) => (&named[..last + i], &named[last + i + 1..]),
        None => (named, "latest"),
    };
    let tag = match digest {
        Some(d) => format!("{tag}@{d}"),
        None => tag.to_string(),
    };
    (repo.to_string(), tag)
}

fn yaml(v: &Value) -> String {
    super::yaml::to_string(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_split_into_repository_and_tag() {
        for (image, repo, tag) in [
            ("nginx", "nginx", "latest"),
            ("nginx:1.27", "nginx", "1.27"),
            ("localhost:5000/app", "localhost:5000/app", "latest"),
            ("localhost:5000/app:v1", "localhost:5000/app", "v1"),
            ("r:5000/app:v1@sha256:abc", "r:5000/app", "v1@sha256:abc"),
            ("app@sha256:abc", "app", "latest@sha256:abc"),
        ] {
            assert_eq!(split_image(image), (repo.into(), tag.into()), "{image}");
        }
    }

    #[test]
    fn value_keys_are_template_fields() {
        assert_eq!(value_key("php-fpm"), "php_fpm");
        assert!(is_field(&value_key("php-fpm")));
        assert!(!is_field("1x") && !is_field("a-b") && is_field("cpu"));
    }
}
