//! Every key a service sets is converted, warned about by name, or refused: checked on the
//! service's own serialisation, so a key added to the model later is warned about until the
//! conversion learns it, never dropped silently.

use serde_json::Value;

use super::{Conversion, ConvertError};
use crate::compose::model::Service;

/// Keys the conversion writes into the manifests (some only for certain values: those
/// values are checked in [`check`] first).
const CONVERTED: &[&str] = &[
    "annotations",
    "cap_add",
    "cap_drop",
    "command",
    "configs",
    "container_name",
    "cpus",
    "depends_on",
    "deploy",
    "dns",
    "dns_opt",
    "dns_search",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extra_hosts",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "labels",
    "links",
    "mem_limit",
    "mem_reservation",
    "network_mode",
    "networks",
    "pid",
    "pids_limit",
    "ports",
    "privileged",
    "profiles",
    "pull_policy",
    "read_only",
    "restart",
    "scale",
    "secrets",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "sysctls",
    "tmpfs",
    "tty",
    "user",
    "volumes",
    "working_dir",
];

/// Keys that only matter to the machine that builds or to berth's own CLI; nothing of the
/// running stack depends on them.
const CLIENT_ONLY: &[(&str, &str)] = &[
    (
        "build",
        "images are built before converting: push them where the cluster pulls (image:)",
    ),
    ("attach", "a CLI display setting"),
    ("develop", "watch rules are for the local dev loop"),
];

/// Keys refused whatever their value: a cluster cannot give their meaning to a pod.
const REFUSED: &[(&str, &str)] = &[
    ("devices", "host devices are not portable across nodes"),
    (
        "volumes_from",
        "pods cannot mount another workload's volumes: share a named volume",
    ),
    (
        "external_links",
        "containers outside the project do not exist in the cluster: make them a Service",
    ),
    (
        "userns_mode",
        "user namespaces are set by the cluster's runtime, not per pod here",
    ),
    ("use_api_socket", "there is no Docker API socket in a pod"),
    ("provider", "provider services run a local binary"),
    ("models", "models run on the local Docker Model Runner"),
];

/// Checks one service's keys; warnings go to `conv`.
pub(super) fn check(name: &str, svc: &Service, conv: &mut Conversion) -> Result<(), ConvertError> {
    let refuse = |key: &str, reason: &str| ConvertError::Refused {
        service: name.to_string(),
        key: key.to_string(),
        reason: reason.to_string(),
    };
    if svc.privileged == Some(true) {
        return Err(refuse(
            "privileged",
            "privileged pods are refused by most clusters' admission; drop it or set it in the manifest yourself",
        ));
    }
    match svc.network_mode.as_deref() {
        None | Some("bridge") | Some("default") => {}
        Some("host") => {
            return Err(refuse(
                "network_mode",
                "host networking ties the pod to one node's ports",
            ));
        }
        Some("none") => return Err(refuse("network_mode", "a pod always has a network")),
        Some(other) => {
            return Err(refuse(
                "network_mode",
                &format!(
                    "{other:?}: sharing another container's network is a sidecar: put both containers in one pod yourself"
                ),
            ));
        }
    }
    for (key, value) in [("pid", &svc.pid), ("ipc", &svc.ipc)] {
        match value.as_deref() {
            None | Some("private") | Some("shareable") => {}
            Some(other) => {
                return Err(refuse(
                    key,
                    &format!(
                        "{other:?}: pods do not share a host's or another container's {key} namespace"
                    ),
                ));
            }
        }
    }
    let Ok(Value::Object(keys)) = serde_json::to_value(svc) else {
        return Ok(());
    };
    for key in keys.keys() {
        if CONVERTED.contains(&key.as_str()) {
            continue;
        }
        if let Some((_, why)) = CLIENT_ONLY.iter().find(|(k, _)| k == key) {
            conv.warn(name, key, format!("not in the manifests ({why})"));
        } else if let Some((_, why)) = REFUSED.iter().find(|(k, _)| k == key) {
            return Err(refuse(key, why));
        } else if key.starts_with("x-") {
            continue;
        } else {
            conv.warn(
                name,
                key,
                "has no Kubernetes equivalent here and is left out",
            );
        }
    }
    Ok(())
}
