//! `GET /containers/{id}/stats?stream=&one-shot=` (`docker stats`): the runtime's detailed
//! usage (`Runtime::usage`: cgroup counters per CPU, mode, device and operation, and the
//! container's own interfaces) in Docker's stats JSON. The client
//! computes CPU % from the change of `cpu_usage.total_usage` against `system_cpu_usage`
//! between `precpu_stats` and `cpu_stats`, so every answer but a one-shot carries two
//! samples a second apart; a stream sends one document a second until the client leaves.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use berth_runtime::container::usage::{IoEntry, Usage};
use berth_runtime::container::{Record, Runtime};
use hyper::{Response, StatusCode};

use super::containers::{blocking, find, flag};
use super::errors::ApiError;
use super::{Body, Docker, blocking_stream, host, json, query};

/// Docker's sampling interval.
const INTERVAL: Duration = Duration::from_secs(1);

/// One sample: when, the container's usage (none when it is not running), the host's CPU
/// time and online CPUs.
struct Sample {
    read: SystemTime,
    usage: Option<Usage>,
    system_ns: u64,
    online_cpus: usize,
}

fn sample(rt: &Runtime, rec: &Record) -> Sample {
    let (system_ns, online_cpus) = system_cpu();
    Sample {
        read: SystemTime::now(),
        usage: rt.usage(rec),
        system_ns,
        online_cpus,
    }
}

/// The host's CPU time (all of `/proc/stat`'s `cpu` line) in nanoseconds and its online
/// CPUs (the `cpuN` lines), as dockerd reads them: clients scale the container's share of
/// the host's time by that count.
fn system_cpu() -> (u64, usize) {
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|h| *h > 0).unwrap_or(100);
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .map_or(0, |line| {
            line.split_whitespace()
                .skip(1)
                .take(8)
                .filter_map(|v| v.parse::<u64>().ok())
                .sum::<u64>()
        });
    let online = stat
        .lines()
        .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
        .count();
    let online = if online == 0 { host::ncpu() } else { online };
    (ticks.saturating_mul(1_000_000_000 / hz), online)
}

fn time(t: Option<SystemTime>) -> String {
    t.map_or_else(
        || "0001-01-01T00:00:00Z".to_string(),
        |t| humantime::format_rfc3339_nanos(t).to_string(),
    )
}

/// `cpu_stats` (or `precpu_stats`) of a sample; zeros without one, as Docker's first
/// `precpu_stats`.
fn cpu_stats(s: Option<&Sample>) -> serde_json::Value {
    let Some((s, u)) = s.and_then(|s| Some((s, s.usage.as_ref()?))) else {
        return serde_json::json!({"cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0,
            "usage_in_usermode": 0}, "throttling_data": {"periods": 0,
            "throttled_periods": 0, "throttled_time": 0}});
    };
    let c = &u.cpu;
    let mut usage = serde_json::json!({
        "total_usage": c.total_ns,
        "usage_in_kernelmode": c.kernel_ns,
        "usage_in_usermode": c.user_ns,
    });
    if !c.percpu_ns.is_empty() {
        usage["percpu_usage"] = serde_json::json!(c.percpu_ns);
    }
    serde_json::json!({
        "cpu_usage": usage,
        "system_cpu_usage": s.system_ns,
        "online_cpus": s.online_cpus,
        "throttling_data": {"periods": c.periods, "throttled_periods": c.throttled_periods,
            "throttled_time": c.throttled_ns},
    })
}

fn io_entries(list: &[IoEntry]) -> serde_json::Value {
    list.iter()
        .map(|e| serde_json::json!({"major": e.major, "minor": e.minor, "op": e.op, "value": e.value}))
        .collect()
}

/// `memory_stats`: the kernel's usage (page cache included) and `memory.stat`, from which
/// the clients subtract the inactive file pages themselves.
fn memory_stats(u: &Usage) -> serde_json::Value {
    let m = &u.memory;
    let mut doc = serde_json::json!({
        "usage": m.usage,
        "stats": m.stat,
        "limit": m.limit.unwrap_or_else(host::mem_total),
    });
    if let Some(max) = m.max_usage {
        doc["max_usage"] = max.into();
    }
    if let Some(n) = m.failcnt.filter(|n| *n > 0) {
        doc["failcnt"] = n.into();
    }
    doc
}

/// One stats document of `rec` from the sample `now` and the one before it.
fn document(rec: &Record, pre: Option<&Sample>, now: &Sample) -> serde_json::Value {
    let usage = now.usage.as_ref();
    let mut pids = serde_json::json!({"current": usage.map_or(0, |u| u.pids)});
    if let Some(limit) = usage.and_then(|u| u.pids_limit) {
        pids["limit"] = limit.into();
    }
    let blkio = usage.map_or_else(
        || serde_json::json!({}),
        |u| {
            serde_json::json!({
                "io_service_bytes_recursive": io_entries(&u.io_bytes),
                "io_serviced_recursive": io_entries(&u.io_ops),
                "io_queue_recursive": null,
                "io_service_time_recursive": null,
                "io_wait_time_recursive": null,
                "io_merged_recursive": null,
                "io_time_recursive": null,
                "sectors_recursive": null,
            })
        },
    );
    let mut doc = serde_json::json!({
        "name": format!("/{}", rec.config.name),
        "id": rec.id,
        "read": time(usage.map(|_| now.read)),
        "preread": time(pre.filter(|p| p.usage.is_some()).map(|p| p.read)),
        "pids_stats": pids,
        "blkio_stats": blkio,
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(Some(now)),
        "precpu_stats": cpu_stats(pre),
        "memory_stats": usage.map_or_else(|| serde_json::json!({}), memory_stats),
    });
    // Docker leaves `networks` out for a container without its own network.
    if let Some(nets) = usage.and_then(|u| u.networks.as_ref()) {
        doc["networks"] = nets
            .iter()
            .map(|(name, n)| {
                let v = serde_json::json!({
                    "rx_bytes": n.rx_bytes, "rx_packets": n.rx_packets,
                    "rx_errors": n.rx_errors, "rx_dropped": n.rx_dropped,
                    "tx_bytes": n.tx_bytes, "tx_packets": n.tx_packets,
                    "tx_errors": n.tx_errors, "tx_dropped": n.tx_dropped,
                });
                (name.clone(), v)
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
    }
    doc
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
