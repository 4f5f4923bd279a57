//! Block I/O weights and throttles: their OCI form, what the host's cgroups can apply, and the
//! writes into the v1 `blkio` files or the v2 `io.*` files.
//!
//! Weights need an I/O scheduler that honours them (BFQ, CFQ, or v2's io.cost): without one
//! the kernel has no weight file, which [`host_support`] reports so the caller can warn by
//! name before a container is made, as Docker does.

use std::fs;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxBlockIo, LinuxThrottleDevice};
use serde_json::{Value, json};

use super::cgroups::{Cgroup, CgroupError, write};
use super::config::{BlockIo, DeviceRate};

/// The OCI `linux.resources.blockIO` object of `b`.
pub fn oci(b: &BlockIo) -> Value {
    let rates = |v: &[DeviceRate]| -> Value {
        v.iter()
            .map(|d| json!({"major": d.major, "minor": d.minor, "rate": d.value}))
            .collect()
    };
    let mut o = serde_json::Map::new();
    if let Some(w) = b.weight {
        o.insert("weight".into(), json!(w));
    }
    if !b.weight_device.is_empty() {
        let v: Value = b
            .weight_device
            .iter()
            .map(|d| json!({"major": d.major, "minor": d.minor, "weight": d.value}))
            .collect();
        o.insert("weightDevice".into(), v);
    }
    for (key, list) in [
        ("throttleReadBpsDevice", &b.read_bps),
        ("throttleWriteBpsDevice", &b.write_bps),
        ("throttleReadIOPSDevice", &b.read_iops),
        ("throttleWriteIOPSDevice", &b.write_iops),
    ] {
        if !list.is_empty() {
            o.insert(key.into(), rates(list));
        }
    }
    Value::Object(o)
}

/// Which block I/O and OOM settings this host's cgroups can apply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoSupport {
    pub weight: bool,
    pub weight_device: bool,
    pub read_bps: bool,
    pub write_bps: bool,
    pub read_iops: bool,
    pub write_iops: bool,
    /// cgroup v1's `memory.oom_control` (v2 has no way to turn the OOM killer off).
    pub oom_kill_disable: bool,
}

/// The cgroup v2 directory to look for `io.*` files in: the root has none, so this process's
/// own cgroup, else the first child of the root with the io controller on.
fn v2_probe_dir(root: &Path) -> Option<PathBuf> {
    let own = fs::read_to_string("/proc/self/cgroup").ok().and_then(|t| {
        t.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(|p| root.join(p.trim_start_matches('/')))
    });
    if let Some(d) = own.filter(|d| d != root && d.join("io.max").exists()) {
        return Some(d);
    }
    fs::read_dir(root)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("io.max").exists())
}

/// Reads what this host's cgroups offer (see [`IoSupport`]).
pub fn host_support() -> IoSupport {
    let Ok(cg) = Cgroup::locate("") else {
        return IoSupport::default();
    };
    match &cg {
        Cgroup::V1 { .. } => {
            let has = |ctrl: &str, files: &[&str]| {
                cg.v1_dir(ctrl)
                    .is_some_and(|d| files.iter().any(|f| d.join(f).exists()))
            };
            IoSupport {
                weight: has("blkio", &["blkio.weight", "blkio.bfq.weight"]),
                weight_device: has("blkio", &["blkio.weight_device", "blkio.bfq.weight_device"]),
                read_bps: has("blkio", &["blkio.throttle.read_bps_device"]),
                write_bps: has("blkio", &["blkio.throttle.write_bps_device"]),
                read_iops: has("blkio", &["blkio.throttle.read_iops_device"]),
                write_iops: has("blkio", &["blkio.throttle.write_iops_device"]),
                oom_kill_disable: has("memory", &["memory.oom_control"]),
            }
        }
        Cgroup::V2 { dir } => {
            let controllers =
                fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
            if !controllers.split_whitespace().any(|c| c == "io") {
                return IoSupport::default();
            }
            let weight = v2_probe_dir(dir)
                .is_some_and(|d| d.join("io.weight").exists() || d.join("io.bfq.weight").exists());
            IoSupport {
                weight,
                weight_device: weight,
                read_bps: true,
                write_bps: true,
                read_iops: true,
                write_iops: true,
                oom_kill_disable: false,
            }
        }
    }
}

/// A blkio weight (10-1000) as a v2 `io.weight` (1-10000), the mapping runc and crun use.
fn v2_weight(w: u16) -> u64 {
    let w = u64::from(w.clamp(10, 1000));
    1 + (w - 10) * 9999 / 990
}

/// The first of `files` that exists in `dir`, or the error naming what was asked.
fn first_file(dir: &Path, files: &[&str], what: &'static str) -> Result<PathBuf, CgroupError> {
    files
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.exists())
        .ok_or_else(|| CgroupError::NotOnThisHost {
            what,
            file: dir.join(files[0]),
        })
}

impl Cgroup {
    /// Writes the block I/O weights and throttles of `b` into this cgroup.
    pub(super) fn apply_block_io(&self, b: &LinuxBlockIo) -> Result<(), CgroupError> {
        let v2 = matches!(self, Cgroup::V2 { .. });
        let d = self.need("block I/O", if v2 { "io" } else { "blkio" })?;
        let weight_files: &[&str] = if v2 {
            &["io.bfq.weight", "io.weight"]
        } else {
            &["blkio.bfq.weight", "blkio.weight"]
        };
        // BFQ (and v1's CFQ) take the blkio scale; v2's io.weight its own, with a `default`.
        let weight_text = |file: &Path, w: u16| {
            if file.ends_with("io.weight") {
                v2_weight(w).to_string()
            } else {
                w.to_string()
            }
        };
        if let Some(w) = b.weight() {
            let f = first_file(&d, weight_files, "a block I/O weight")?;
            let text = weight_text(&f, w);
            let text = if f.ends_with("io.weight") {
                format!("default {text}")
            } else {
                text
            };
            write(&f, &text)?;
        }
        if let Some(devs) = b.weight_device() {
            let files: &[&str] = if v2 {
                weight_files
            } else {
                &["blkio.bfq.weight_device", "blkio.weight_device"]
            };
            for dev in devs {
                let Some(w) = dev.weight() else { continue };
                let f = first_file(&d, files, "a per-device block I/O weight")?;
                let text = format!("{}:{} {}", dev.major(), dev.minor(), weight_text(&f, w));
                write(&f, &text)?;
            }
        }
        let throttles: [(&Option<Vec<LinuxThrottleDevice>>, &str, &str); 4] = [
            (
                b.throttle_read_bps_device(),
                "blkio.throttle.read_bps_device",
                "rbps",
            ),
            (
                b.throttle_write_bps_device(),
                "blkio.throttle.write_bps_device",
                "wbps",
            ),
            (
                b.throttle_read_iops_device(),
                "blkio.throttle.read_iops_device",
                "riops",
            ),
            (
                b.throttle_write_iops_device(),
                "blkio.throttle.write_iops_device",
                "wiops",
            ),
        ];
        for (devs, v1_file, v2_key) in throttles {
            for dev in devs.iter().flatten() {
                let (major, minor, rate) = (dev.major(), dev.minor(), dev.rate());
                if v2 {
                    let f = first_file(&d, &["io.max"], "a block I/O limit")?;
                    write(&f, &format!("{major}:{minor} {v2_key}={rate}"))?;
                } else {
                    let f = first_file(&d, &[v1_file], "a block I/O limit")?;
                    write(&f, &format!("{major}:{minor} {rate}"))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_oci_form_names_each_list_as_the_runtime_spec_does() {
        let dev = |value| DeviceRate {
            major: 7,
            minor: 3,
            value,
        };
        let b = BlockIo {
            weight: Some(300),
            weight_device: vec![dev(400)],
            read_bps: vec![dev(1_048_576)],
            write_bps: vec![dev(2_097_152)],
            read_iops: vec![dev(100)],
            write_iops: vec![dev(200)],
        };
        let parsed: LinuxBlockIo = serde_json::from_value(oci(&b)).expect("valid OCI blockIO");
        assert_eq!(parsed.weight(), Some(300));
        let wd = parsed.weight_device().clone().expect("weightDevice");
        assert_eq!(
            (wd[0].major(), wd[0].minor(), wd[0].weight()),
            (7, 3, Some(400))
        );
        let rate = |v: &Option<Vec<LinuxThrottleDevice>>| v.as_ref().map(|d| d[0].rate());
        assert_eq!(rate(parsed.throttle_read_bps_device()), Some(1_048_576));
        assert_eq!(rate(parsed.throttle_write_bps_device()), Some(2_097_152));
        assert_eq!(rate(parsed.throttle_read_iops_device()), Some(100));
        assert_eq!(rate(parsed.throttle_write_iops_device()), Some(200));
    }

    #[test]
    fn blkio_weights_map_onto_the_io_weight_scale_at_both_ends() {
        assert_eq!(v2_weight(10), 1);
        assert_eq!(v2_weight(1000), 10_000);
        assert_eq!(v2_weight(500), 1 + 490 * 9999 / 990);
    }
}
