//! The workload of a service: a Deployment, or a StatefulSet when the service alone mounts
//! named volumes (each replica then keeps its own claim across restarts and rescheduling,
//! which a Deployment's shared claim would not give on ReadWriteOnce storage).

use serde_json::{Value, json};

use super::storage::{self, Owners};
use super::{labels, names, selector};
use crate::compose::Project;
use crate::compose::model::Service;

/// The Deployment or StatefulSet of service `name` around its pod template.
pub(super) fn workload(
    project: &Project,
    name: &str,
    svc: &Service,
    pod: Value,
    owners: &Owners,
) -> Value {
    let owned = owners.owned(name);
    let mut spec = json!({
        "replicas": svc.replicas(),
        "selector": {"matchLabels": selector(project, name)},
        "template": pod,
    });
    let deploy_labels = svc
        .deploy
        .as_ref()
        .map(|d| d.labels.clone())
        .unwrap_or_default();
    let mut meta = json!({"name": name, "labels": labels(project, name)});
    if !deploy_labels.is_empty() {
        meta["annotations"] = json!(deploy_labels);
    }
    if owned.is_empty() {
        return json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": spec,
        });
    }
    spec["serviceName"] = json!(name);
    let templates: Vec<Value> = owned
        .iter()
        .map(|key| {
            let labels = project
                .volumes
                .get(key)
                .map(|v| v.labels.clone())
                .unwrap_or_default();
            let mut c = storage::claim(&names::sanitize(key), "ReadWriteOnce", &labels);
            if let Some(o) = c.as_object_mut() {
                o.remove("apiVersion");
                o.remove("kind");
            }
            c
        })
        .collect();
    spec["volumeClaimTemplates"] = Value::Array(templates);
    json!({
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": meta,
        "spec": spec,
    })
}
