//! A running container's resource usage in the detail Docker's stats document carries: CPU
//! time per CPU and per mode with throttling, memory with its `memory.stat` counters, block
//! I/O per device and operation, pids with their limit, and per-interface network counters
//! read from the container's own network namespace. `Runtime::stats` keeps the few totals
//! berth's own `container stats` shows; this is what Docker's clients read.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use super::cgroups::Cgroup;

/// CPU time of the container's cgroup.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuUsage {
    /// All CPU time used, nanoseconds.
    pub total_ns: u64,
    /// Time in user mode, nanoseconds.
    pub user_ns: u64,
    /// Time in kernel mode, nanoseconds.
    pub kernel_ns: u64,
    /// Time per CPU, nanoseconds (cgroup v1's `cpuacct.usage_percpu`; v2 has none).
    pub percpu_ns: Vec<u64>,
    /// CFS periods with a quota, those throttled, and the time throttled (nanoseconds).
    pub periods: u64,
    pub throttled_periods: u64,
    pub throttled_ns: u64,
}

/// Memory of the container's cgroup, as the kernel counts it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemoryUsage {
    /// Usage including page cache (clients subtract the inactive file pages in `stat`).
    pub usage: u64,
    /// The highest usage seen (cgroup v1 only).
    pub max_usage: Option<u64>,
    /// How often the limit was hit (cgroup v1 only).
    pub failcnt: Option<u64>,
    /// The limit, when one is set.
    pub limit: Option<u64>,
    /// `memory.stat`, key by key.
    pub stat: BTreeMap<String, u64>,
}

/// One block I/O counter: a device, an operation (as the cgroup names it) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoEntry {
    pub major: u64,
    pub minor: u64,
    pub op: String,
    pub value: u64,
}

/// The counters of one network interface, as `/proc/net/dev` has them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetCounters {
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
}

/// Everything Docker's stats document reports of one running container.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Usage {
    pub cpu: CpuUsage,
    pub memory: MemoryUsage,
    /// Bytes moved per device and operation (`io_service_bytes_recursive`).
    pub io_bytes: Vec<IoEntry>,
    /// Requests per device and operation (`io_serviced_recursive`).
    pub io_ops: Vec<IoEntry>,
    pub pids: u64,
    /// The pids limit, when one is set.
    pub pids_limit: Option<u64>,
    /// Per interface but loopback; none when the container shares the host's network.
    pub networks: Option<BTreeMap<String, NetCounters>>,
}

fn read_u64(dir: Option<&Path>, file: &str) -> Option<u64> {
    fs::read_to_string(dir?.join(file))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// A flat `key value` file (`memory.stat`, `cpu.stat`, `cpuacct.stat`).
fn flat_keyed(dir: Option<&Path>, file: &str) -> BTreeMap<String, u64> {
    let Some(text) = dir.and_then(|d| fs::read_to_string(d.join(file)).ok()) else {
        return BTreeMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

/// Nanoseconds per clock tick (`cpuacct.stat` counts in USER_HZ).
fn ns_per_tick() -> u64 {
    // SAFETY: sysconf only reads a constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(hz)
        .ok()
        .filter(|h| *h > 0)
        .map_or(10_000_000, |h| 1_000_000_000 / h)
}

/// A cgroup v1 blkio file: `MAJ:MIN Op value` lines (the `Total` line has no device).
fn v1_blkio(dir: Option<&Path>, file: &str) -> Vec<IoEntry> {
    let Some(text) = dir.and_then(|d| fs::read_to_string(d.join(file)).ok()) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [dev, op, value] = f[..] else { return None };
            let (major, minor) = dev.split_once(':')?;
            Some(IoEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: op.to_string(),
                value: value.parse().ok()?,
            })
        })
        .collect()
}

/// cgroup v2's `io.stat`: per device `rbytes= wbytes= rios= wios=` (and discards), as
/// Docker turns it into its `read`/`write` entries of bytes and of requests.
fn v2_io(dir: &Path) -> (Vec<IoEntry>, Vec<IoEntry>) {
    let (mut bytes, mut ops) = (Vec::new(), Vec::new());
    let text = fs::read_to_string(dir.join("io.stat")).unwrap_or_default();
    for line in text.lines() {
        let mut f = line.split_whitespace();
        let Some((major, minor)) = f.next().and_then(|d| d.split_once(':')) else {
            continue;
        };
        let (Ok(major), Ok(minor)) = (major.parse::<u64>(), minor.parse::<u64>()) else {
            continue;
        };
        for kv in f {
            let Some((k, v)) = kv.split_once('=') else {
                continue;
            };
            let Ok(value) = v.parse::<u64>() else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut bytes, "read"),
                "wbytes" => (&mut bytes, "write"),
                "rios" => (&mut ops, "read"),
                "wios" => (&mut ops, "write"),
                _ => continue,
            };
            list.push(IoEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    (bytes, ops)
}

/// A limit file's value: none for `max` or v1's "no limit" (a value near 2^63).
fn limit(dir: Option<&Path>, file: &str) -> Option<u64> {
    read_u64(dir, file).filter(|l| *l < (1 << 62))
}

/// The usage of the cgroup `cg`.
pub fn of_cgroup(cg: &Cgroup) -> Usage {
    match cg {
        Cgroup::V1 { .. } => {
            let acct = cg.v1_dir("cpuacct");
            let modes = flat_keyed(acct, "cpuacct.stat");
            let tick = ns_per_tick();
            let throttle = flat_keyed(cg.v1_dir("cpu"), "cpu.stat");
            let percpu = acct
                .and_then(|d| fs::read_to_string(d.join("cpuacct.usage_percpu")).ok())
                .map(|t| {
                    t.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default();
            let mem = cg.v1_dir("memory");
            let blkio = cg.v1_dir("blkio");
            // The CFQ files when that scheduler counts, else the throttle layer's (as runc).
            let mut io_bytes = v1_blkio(blkio, "blkio.io_service_bytes_recursive");
            let mut io_ops = v1_blkio(blkio, "blkio.io_serviced_recursive");
            if io_bytes.is_empty() {
                io_bytes = v1_blkio(blkio, "blkio.throttle.io_service_bytes_recursive");
                io_ops = v1_blkio(blkio, "blkio.throttle.io_serviced_recursive");
            }
            Usage {
                cpu: CpuUsage {
                    total_ns: read_u64(acct, "cpuacct.usage").unwrap_or(0),
                    user_ns: modes.get("user").copied().unwrap_or(0) * tick,
                    kernel_ns: modes.get("system").copied().unwrap_or(0) * tick,
                    percpu_ns: percpu,
                    periods: throttle.get("nr_periods").copied().unwrap_or(0),
                    throttled_periods: throttle.get("nr_throttled").copied().unwrap_or(0),
                    throttled_ns: throttle.get("throttled_time").copied().unwrap_or(0),
                },
                memory: MemoryUsage {
                    usage: read_u64(mem, "memory.usage_in_bytes").unwrap_or(0),
                    max_usage: read_u64(mem, "memory.max_usage_in_bytes"),
                    failcnt: read_u64(mem, "memory.failcnt"),
                    limit: limit(mem, "memory.limit_in_bytes"),
                    stat: flat_keyed(mem, "memory.stat"),
                },
                io_bytes,
                io_ops,
                pids: read_u64(cg.v1_dir("pids"), "pids.current").unwrap_or(0),
                pids_limit: limit(cg.v1_dir("pids"), "pids.max"),
                networks: None,
            }
        }
        Cgroup::V2 { dir } => {
            let d = Some(dir.as_path());
            let cpu = flat_keyed(d, "cpu.stat");
            let us = |k: &str| cpu.get(k).copied().unwrap_or(0) * 1000;
            let (io_bytes, io_ops) = v2_io(dir);
            Usage {
                cpu: CpuUsage {
                    total_ns: us("usage_usec"),
                    user_ns: us("user_usec"),
                    kernel_ns: us("system_usec"),
                    percpu_ns: Vec::new(),
                    periods: cpu.get("nr_periods").copied().unwrap_or(0),
                    throttled_periods: cpu.get("nr_throttled").copied().unwrap_or(0),
                    throttled_ns: us("throttled_usec"),
                },
                memory: MemoryUsage {
                    usage: read_u64(d, "memory.current").unwrap_or(0),
                    max_usage: None,
                    failcnt: None,
                    limit: limit(d, "memory.max"),
                    stat: flat_keyed(d, "memory.stat"),
                },
                io_bytes,
                io_ops,
                pids: read_u64(d, "pids.current").unwrap_or(0),
                pids_limit: limit(d, "pids.max"),
                networks: None,
            }
        }
    }
}

/// Per-interface counters of `/proc/net/dev` text, loopback left out (as Docker leaves it).
pub fn parse_net_dev(text: &str) -> BTreeMap<String, NetCounters> {
    text.lines()
        .skip(2)
        .filter_map(|l| {
            let (iface, rest) = l.split_once(':')?;
            let iface = iface.trim();
            if iface == "lo" {
                return None;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            let at = |i: usize| f.get(i).copied().unwrap_or(0);
            Some((
                iface.to_string(),
                NetCounters {
                    rx_bytes: at(0),
                    rx_packets: at(1),
                    rx_errors: at(2),
                    rx_dropped: at(3),
                    tx_bytes: at(8),
                    tx_packets: at(9),
                    tx_errors: at(10),
                    tx_dropped: at(11),
                },
            ))
        })
        .collect()
}

/// The interfaces of the network namespace of `pid`; none when that is the caller's own
/// namespace (a container on the host's network reports no networks, as on Docker) or it has
/// only loopback.
pub fn networks_of(pid: i32) -> Option<BTreeMap<String, NetCounters>> {
    let ns = |p: &str| {
        fs::metadata(p)
            .ok()
            .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
    };
    let theirs = ns(&format!("/proc/{pid}/ns/net"))?;
    if ns("/proc/self/ns/net") == Some(theirs) {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/net/dev")).ok()?;
    // Only loopback (`network_mode: none`): no networking, as Docker reports it.
    Some(parse_net_dev(&text)).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn net_dev_columns_per_interface_without_loopback() {
        let text = "Inter-|   Receive                                                |  Transmit\n \
            face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
            lo:     100       2    0    0    0     0          0         0      100       2    0    0    0     0       0          0\n  \
            eth0:    1500      12    1    3    0     0          0         0      700       7    2    4    0     0       0          0\n";
        let n = parse_net_dev(text);
        assert_eq!(n.len(), 1);
        let eth0 = &n["eth0"];
        assert_eq!(
            (
                eth0.rx_bytes,
                eth0.rx_packets,
                eth0.rx_errors,
                eth0.rx_dropped
            ),
            (1500, 12, 1, 3)
        );
        assert_eq!(
            (
                eth0.tx_bytes,
                eth0.tx_packets,
                eth0.tx_errors,
                eth0.tx_dropped
            ),
            (700, 7, 2, 4)
        );
    }

    #[test]
    fn io_stat_becomes_read_and_write_entries() {
        let dir = tempfile::tempdir().expect("dir");
        fs::write(
            dir.path().join("io.stat"),
            "8:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n",
        )
        .expect("io.stat");
        let (bytes, ops) = v2_io(dir.path());
        let pick = |l: &[IoEntry], op: &str| l.iter().find(|e| e.op == op).map(|e| e.value);
        assert_eq!(pick(&bytes, "read"), Some(4096));
        assert_eq!(pick(&bytes, "write"), Some(8192));
        assert_eq!(pick(&ops, "write"), Some(2));
        assert!(bytes.iter().all(|e| (e.major, e.minor) == (8, 0)));
    }

    #[test]
    fn v1_blkio_lines_keep_devices_and_skip_the_total() {
        let dir = tempfile::tempdir().expect("dir");
        fs::write(
            dir.path().join("f"),
            "8:0 Read 512\n8:0 Write 1024\n8:0 Total 1536\nTotal 1536\n",
        )
        .expect("f");
        let e = v1_blkio(Some(dir.path()), "f");
        assert_eq!(e.len(), 3);
        assert_eq!(e[1].op, "Write");
        assert_eq!(e[1].value, 1024);
    }
}
