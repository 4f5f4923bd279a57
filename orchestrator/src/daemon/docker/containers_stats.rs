//! `GET /containers/{id}/stats?stream=&one-shot=` (`docker stats`): the runtime's cgroup
//! counters (the ones `berth container stats` shows) in Docker's stats JSON. The client
//! computes CPU % from the change of `cpu_usage.total_usage` against `system_cpu_usage`
//! between `precpu_stats` and `cpu_stats`, so every answer but a one-shot carries two
//! samples a second apart; a stream sends one document a second until the client leaves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_runtime::container::{Record, Runtime};
use hyper::{Response, StatusCode};

use super::containers::{blocking, find, flag};
use super::errors::ApiError;
use super::{Body, Docker, blocking_stream, host, json, query};

/// Docker's sampling interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// One sample: when, the container's counters (none when it is not running), the host's CPU
/// time.
struct Sample {
    read: SystemTime,
    counters: Option<(berth_runtime::container::cgroups::CgroupStats, u64, u64)>,
    system_ns: u64,
}

fn sample(rt: &Runtime, rec: &Record) -> Sample {
    Sample {
        read: SystemTime::now(),
        counters: rt.stats(rec),
        system_ns: system_cpu_ns(),
    }
}

/// The host's CPU time (all of `/proc/stat`'s `cpu` line) in nanoseconds, as dockerd reads it.
fn system_cpu_ns() -> u64 {
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100);
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("cpu "))?;
            Some(
                line.split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>(),
            )
        })
        .map_or(0, |ticks| ticks.saturating_mul(1_000_000_000 / hz))
}

fn time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| humantime::format_rfc3339_nanos(t).to_string(),
    )
}

fn cpu_stats(s: Option<&Sample>, cpus: usize) -> serde_json::Value {
    let Some((c, ..)) = s.and_then(|s| s.counters.as_ref()) else {
        return serde_json::json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
            "usage_in_usermode": 0}, "throttling_data": {"periods": 0,
            "throttled_periods": 0, "throttled_time": 0}});
    };
    serde_json::json!({
        "cpu_usage": {
            "total_usage": c.cpu_ns,
            "usage_in_kernelmode": 0,
            "usage_in_usermode": 0,
        },
        "system_cpu_usage": s.map_or(0, |s| s.system_ns),
        "online_cpus": cpus,
        "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
    })
}

/// One stats document of `rec` from the sample `now` and the one before it.
fn document(rec: &Record, pre: Option<&Sample>, now: &Sample) -> serde_json::Value {
    let cpus = host::ncpu();
    let counters = now.counters.as_ref();
    let memory = counters.map(|(c, ..)| {
        let limit = c.memory_limit.unwrap_or_else(host::mem_total);
        serde_json::json!({"usage": c.memory, "limit": limit, "stats": {}})
    });
    let networks = counters.map(|(_, rx, tx)| {
        serde_json::json!({"eth0": {
            "rx_bytes": rx, "rx_packets": 0, "rx_errors": 0, "rx_dropped": 0,
            "tx_bytes": tx, "tx_packets": 0, "tx_errors": 0, "tx_dropped": 0,
        }})
    });
    let blkio = counters.map(|(c, ..)| {
        serde_json::json!([
            {"major": 0, "minor": 0, "op": "read", "value": c.io_read},
            {"major": 0, "minor": 0, "op": "write", "value": c.io_write},
        ])
    });
    serde_json::json!({
        "name": format!("/{}", rec.config.name),
        "id": rec.id,
        "read": time(counters.map(|_| now.read)),
        "preread": time(pre.filter(|p| p.counters.is_some()).map(|p| p.read)),
        "pids_stats": {"current": counters.map_or(0, |(c, ..)| c.pids)},
        "blkio_stats": {"io_service_bytes_recursive": blkio},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(Some(now), cpus),
        "precpu_stats": cpu_stats(pre, cpus),
        "memory_stats": memory.unwrap_or_else(|| serde_json::json!({})),
        "networks": networks,
    })
}

/// `GET /containers/{id}/stats`.
pub(super) async fn stats(
    docker: &Arc<Docker>,
    what: &str,
    query: &str,
) -> Result<Response<Body>, ApiError> {
    // Docker streams unless told not to.
    let stream = query::get(query, "stream").is_none() || flag(query, "stream");
    let one_shot = flag(query, "one-shot");
    if one_shot && stream {
        return Err(ApiError::bad_request(
            "cannot have stream=true and one-shot=true",
        ));
    }
    let rt = docker.rt.clone();
    let w = what.to_string();
    let rec = blocking(move || find(&rt, &w)).await?;
    if !stream {
        let rt = docker.rt.clone();
        let doc = blocking(move || {
            let first = sample(&rt, &rec);
            if one_shot {
                return Ok(document(&rec, None, &first));
            }
            std::thread::sleep(INTERVAL);
            Ok(document(&rec, Some(&first), &sample(&rt, &rec)))
        })
        .await?;
        return Ok(json(StatusCode::OK, &doc));
    }
    let (mut out, body) = blocking_stream::body();
    let rt = docker.rt.clone();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut pre: Option<Sample> = None;
        // Until the client leaves (the write fails) or the container is gone.
        while rec.dir.exists() {
            let now = sample(&rt, &rec);
            let mut line =
                serde_json::to_vec(&document(&rec, pre.as_ref(), &now)).unwrap_or_default();
            line.push(b'\n');
            if out.write_all(&line).is_err() {
                return;
            }
            pre = Some(now);
            std::thread::sleep(INTERVAL);
        }
    });
    let mut resp = Response::new(body);
    if let Ok(v) = "application/json".parse() {
        resp.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    Ok(resp)
}
