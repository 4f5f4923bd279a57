//! The workload of a service: a Deployment, or a StatefulSet when the service alone mounts
//! named volumes (each replica then keeps its own claim across restarts and rescheduling,
//! which a Deployment's shared claim would not give on ReadWriteOnce storage), or a Job when
//! the service runs once (`restart: "no"` or `on-failure[:N]`: a migration, a seed), whose
//! pods a Deployment would restart forever after they finished.

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
    if owned.is_empty()
        && let Some((policy, retries)) = run_once(svc)
    {
        let mut pod = pod;
        pod["spec"]["restartPolicy"] = json!(policy);
        let mut spec = json!({
            "completions": svc.replicas(),
            "parallelism": svc.replicas(),
            "template": pod,
        });
        if let Some(n) = retries {
            spec["backoffLimit"] = json!(n);
        }
        return json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": meta(project, name, svc),
            "spec": spec,
        });
    }
    let mut spec = json!({
        "replicas": svc.replicas(),
        "selector": {"matchLabels": selector(project, name)},
        "template": pod,
    });
    let meta = meta(project, name, svc);
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

/// The workload's metadata: its name, the project's labels, `deploy.labels` as annotations.
fn meta(project: &Project, name: &str, svc: &Service) -> Value {
    let deploy_labels = svc
        .deploy
        .as_ref()
        .map(|d| d.labels.clone())
        .unwrap_or_default();
    let mut meta = json!({"name": name, "labels": labels(project, name)});
    if !deploy_labels.is_empty() {
        meta["annotations"] = json!(deploy_labels);
    }
    meta
}

/// A service that runs once, as its Job's pod restart policy and retry limit: `"no"` is one
/// attempt (`Never`, no retry), `on-failure[:N]` restarts a failed container (`OnFailure`, N
/// retries when given).
pub(super) fn run_once(svc: &Service) -> Option<(&'static str, Option<u32>)> {
    match svc.restart.as_deref()? {
        "no" => Some(("Never", Some(0))),
        "on-failure" => Some(("OnFailure", None)),
        other => other
            .strip_prefix("on-failure:")
            .and_then(|n| n.parse().ok())
            .map(|n| ("OnFailure", Some(n))),
    }
}
