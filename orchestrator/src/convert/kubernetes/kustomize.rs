//! `berth convert kubernetes --kustomize`: a `kustomization.yaml` beside the manifests, so
//! that `kubectl kustomize DIR` / `kubectl apply -k DIR` take the stack as one unit, with the
//! namespace and the labels the user asked for applied to every object by kustomize itself.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::{Conversion, names};

/// A namespace or label the user gave that Kubernetes would refuse.
#[derive(Debug, thiserror::Error)]
pub enum KustomizeError {
    /// `--namespace` is not a DNS-1123 label.
    #[error(
        "--namespace {0:?}: not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    )]
    Namespace(String),
    /// A `--label` key Kubernetes refuses.
    #[error("--label {0:?}: the key must be [prefix/]name, name at most 63 of [A-Za-z0-9-_.]")]
    LabelKey(String),
    /// A `--label` value Kubernetes refuses.
    #[error(
        "--label {key}={value:?}: a value is at most 63 of [A-Za-z0-9-_.], alphanumeric at both ends"
    )]
    LabelValue {
        /// The label's key.
        key: String,
        /// The refused value.
        value: String,
    },
}

/// What goes into the kustomization besides the manifests.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// The namespace every object is put in.
    pub namespace: Option<String>,
    /// Labels added to every object (and selector) by kustomize's `commonLabels`.
    pub labels: BTreeMap<String, String>,
}

/// The `kustomization.yaml` listing every manifest of `conv` (by the file names it is written
/// under). `commonLabels` rather than `labels`: the kustomize in Debian 12's kubectl (1.20)
/// knows only the former; newer ones accept it with a deprecation note.
pub fn kustomization(conv: &Conversion, opts: &Options) -> Result<Value, KustomizeError> {
    let mut k = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
    });
    if let Some(ns) = &opts.namespace {
        if !is_dns1123_label(ns) {
            return Err(KustomizeError::Namespace(ns.clone()));
        }
        k["namespace"] = json!(ns);
    }
    for (key, value) in &opts.labels {
        if !is_label_key(key) {
            return Err(KustomizeError::LabelKey(key.clone()));
        }
        if !(value.is_empty() || is_label_name(value)) {
            return Err(KustomizeError::LabelValue {
                key: key.clone(),
                value: value.clone(),
            });
        }
    }
    if !opts.labels.is_empty() {
        k["commonLabels"] = json!(opts.labels);
    }
    let files: Vec<&str> = conv.manifests.iter().map(|m| m.file.as_str()).collect();
    k["resources"] = json!(files);
    Ok(k)
}

fn is_dns1123_label(s: &str) -> bool {
    names::is_dns1123_subdomain(s) && !s.contains('.') && s.len() <= 63
}

/// A label name: at most 63 of `[A-Za-z0-9-_.]`, alphanumeric at both ends.
fn is_label_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// `[prefix/]name`, the prefix a DNS-1123 subdomain.
fn is_label_key(s: &str) -> bool {
    match s.split_once('/') {
        Some((prefix, name)) => names::is_dns1123_subdomain(prefix) && is_label_name(name),
        None => is_label_name(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::convert::kubernetes::Manifest;

    fn conv() -> Conversion {
        Conversion {
            manifests: vec![Manifest {
                file: "web-service.yaml".into(),
                object: json!({"kind": "Service"}),
            }],
            warnings: Vec::new(),
        }
    }

    #[test]
    fn lists_the_files_with_namespace_and_labels() {
        let opts = Options {
            namespace: Some("shop".into()),
            labels: [("team".to_string(), "web".to_string())].into(),
        };
        let k = kustomization(&conv(), &opts).expect("kustomization");
        assert_eq!(k["resources"], json!(["web-service.yaml"]));
        assert_eq!(k["namespace"], "shop");
        assert_eq!(k["commonLabels"]["team"], "web");
        let plain = kustomization(&conv(), &Options::default()).expect("plain");
        assert!(plain.get("namespace").is_none() && plain.get("commonLabels").is_none());
    }

    #[test]
    fn refuses_names_kubernetes_refuses() {
        let bad_ns = Options {
            namespace: Some("Shop_1".into()),
            ..Options::default()
        };
        let e = kustomization(&conv(), &bad_ns).expect_err("namespace");
        assert!(e.to_string().contains("Shop_1"), "{e}");
        for (k, v) in [
            ("a b", "x"),
            ("x/", "y"),
            ("ok", "-bad"),
            ("ok", "x".repeat(64).as_str()),
        ] {
            let opts = Options {
                labels: [(k.to_string(), v.to_string())].into(),
                ..Options::default()
            };
            let e = kustomization(&conv(), &opts).expect_err("label");
            assert!(e.to_string().contains("--label"), "{e}");
        }
        let ok = Options {
            labels: [("example.com/tier".to_string(), String::new())].into(),
            ..Options::default()
        };
        kustomization(&conv(), &ok).expect("prefixed key, empty value");
    }
}
