//! `POST /containers/{id}/update` (`docker update`): new memory, CPU, real-time, block I/O
//! weight and pids limits and restart policy for a container, through the one translation of a `HostConfig` create uses
//! (`engine::container_spec::resources`) and the runtime's `update` (record, OCI config and,
//! while it runs, its cgroup). Docker's clients send every field, zero meaning "unchanged";
//! a field berth cannot change, set, is a 400 naming it.

use std::sync::Arc;

use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};

use super::containers::{CREATE_BODY_FILE, blocking, find, runtime_error};
use super::errors::ApiError;
use super::{Body, Docker, json};
use crate::api::container::{HostConfig, is_unset};
use crate::engine::container_spec::{realtime, resources, update_weight};
use crate::engine::labels;

/// The fields of Docker's update body berth applies.
const UPDATABLE: &[&str] = &[
    "Memory",
    "MemorySwap",
    "CpuShares",
    "NanoCpus",
    "CpuQuota",
    "CpuPeriod",
    "CpusetCpus",
    "CpuRealtimePeriod",
    "CpuRealtimeRuntime",
    "BlkioWeight",
    "PidsLimit",
    "RestartPolicy",
];

/// The largest body read (a real one is well under 4 KiB).
const MAX_BODY: usize = 1 << 20;

/// The update body: refused when it sets a field berth cannot change.
fn parse(
    bytes: &[u8],
) -> Result<(serde_json::Map<String, serde_json::Value>, HostConfig), ApiError> {
    let body: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    if let Some((k, v)) = body
        .iter()
        .find(|(k, v)| !UPDATABLE.contains(&k.as_str()) && !is_unset(v))
    {
        return Err(ApiError::bad_request(format!(
            "berth cannot update {k} of a container (asked: {v})"
        )));
    }
    let asked: serde_json::Map<_, _> = body
        .into_iter()
        .filter(|(k, v)| UPDATABLE.contains(&k.as_str()) && !v.is_null())
        .collect();
    let hc: HostConfig = serde_json::from_value(serde_json::Value::Object(asked.clone()))
        .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
    let swap = asked
        .get("MemorySwap")
        .and_then(serde_json::Value::as_i64)
        .unwrap_or(0);
    if swap != 0 && swap != -1 && swap != hc.memory {
        return Err(ApiError::bad_request(format!(
            "berth cannot update MemorySwap of a container (asked: {swap}): a container's \
             swap is its memory limit"
        )));
    }
    Ok((asked, hc))
}

/// `POST /containers/{id}/update`: `{Warnings}`.
pub(super) async fn update(
    docker: &Arc<Docker>,
    req: Request<Incoming>,
    what: &str,
) -> Result<Response<Body>, ApiError> {
    let bytes = http_body_util::Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(format!("reading the request: {e}")))?
        .to_bytes();
    let (asked, hc) = parse(&bytes)?;
    let rt = docker.rt.clone();
    let w = what.to_string();
    let warnings = blocking(move || {
        let rec = find(&rt, &w)?;
        // Zero is "unchanged": only what is asked replaces the container's limits.
        let new = resources(&hc);
        let mut r = rec.config.resources.clone();
        if new.memory.is_some() {
            r.memory = new.memory;
        }
        if new.cpus.is_some() {
            r.cpus = new.cpus;
        }
        if new.cpu_shares.is_some() {
            r.cpu_shares = new.cpu_shares;
        }
        if new.cpuset_cpus.is_some() {
            r.cpuset_cpus = new.cpuset_cpus;
        }
        // PidsLimit 0 or -1 lifts the limit; absent (null) keeps it.
        if hc.pids_limit.is_some() {
            r.pids_limit = new.pids_limit;
        }
        // What this host cannot apply is left out with Docker's warning, as at create.
        let mut warnings = Vec::new();
        update_weight(&hc, &mut r, &mut warnings)
            .and_then(|()| realtime::update(&hc, &mut r, &mut warnings))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let discarded = |field: &str| warnings.iter().any(|w| w.starts_with(field));
        let mut l = rec.config.labels.clone();
        if !hc.restart_policy.name.is_empty() {
            match hc.restart_policy.label() {
                Some(p) => l.insert(labels::RESTART.into(), p),
                None => l.remove(labels::RESTART),
            };
        }
        rt.update(&rec, r, l).map_err(|e| runtime_error(&w, e))?;
        // Inspect answers HostConfig as given: the asked fields replace the given ones.
        let p = rec.dir.join(CREATE_BODY_FILE);
        if let Some(mut given) = std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            && let Some(h) = given.get_mut("HostConfig").and_then(|h| h.as_object_mut())
        {
            for (k, v) in asked {
                if (!is_unset(&v) || k == "PidsLimit") && !discarded(&format!("HostConfig.{k}")) {
                    h.insert(k, v);
                }
            }
            let bytes =
                serde_json::to_vec(&given).map_err(|e| ApiError::internal(e.to_string()))?;
            std::fs::write(&p, bytes).map_err(|e| ApiError::internal(e.to_string()))?;
        }
        Ok(warnings)
    })
    .await?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({"Warnings": warnings}),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_fields_pass_and_set_ones_berth_cannot_change_are_named() {
        let body = br#"{"Memory":67108864,"MemorySwap":0,"KernelMemory":0,"BlkioWeight":0,
            "Devices":null,"RestartPolicy":{"Name":"always","MaximumRetryCount":0}}"#;
        let (asked, hc) = parse(body).expect("accepted");
        assert_eq!(hc.memory, 64 << 20);
        assert_eq!(hc.restart_policy.name, "always");
        assert!(asked.contains_key("Memory") && !asked.contains_key("Devices"));
        let e = parse(br#"{"BlkioWeightDevice":[{"Path":"/dev/sda","Weight":300}]}"#).unwrap_err();
        assert!(e.message.contains("BlkioWeightDevice"), "{}", e.message);
        let e = parse(br#"{"Memory":10000000,"MemorySwap":20000000}"#).unwrap_err();
        assert!(e.message.contains("MemorySwap"), "{}", e.message);
        assert!(parse(b"{").is_err());
    }
}
