//! `container run/create` flags for block I/O weights and throttles and the OOM killer, as
//! Docker spells them, lowered into the `HostConfig` fields the API takes.

use anyhow::{Context, bail};
use clap::Args;

use super::config::parse_size;
use crate::api::container::{HostConfig, ThrottleDevice, WeightDevice};

/// Block I/O and OOM flags (flattened into `run`/`create`).
#[derive(Args, Debug, Clone, Default)]
pub struct BlockIoFlags {
    /// Block I/O weight, 10 to 1000
    #[arg(long = "blkio-weight")]
    blkio_weight: Option<u16>,
    /// Per-device block I/O weight DEVICE:WEIGHT (/dev/sda:200)
    #[arg(long = "blkio-weight-device")]
    blkio_weight_device: Vec<String>,
    /// Read rate limit of a device DEVICE:RATE, bytes per second (/dev/sda:1mb)
    #[arg(long = "device-read-bps")]
    device_read_bps: Vec<String>,
    /// Write rate limit of a device DEVICE:RATE, bytes per second
    #[arg(long = "device-write-bps")]
    device_write_bps: Vec<String>,
    /// Read rate limit of a device DEVICE:N, operations per second
    #[arg(long = "device-read-iops")]
    device_read_iops: Vec<String>,
    /// Write rate limit of a device DEVICE:N, operations per second
    #[arg(long = "device-write-iops")]
    device_write_iops: Vec<String>,
    /// Pause the tasks instead of killing one at the memory limit (cgroup v1)
    #[arg(long = "oom-kill-disable")]
    oom_kill_disable: bool,
}

/// `DEVICE:VALUE`, split at the last colon (the path is absolute, the value has none).
fn split<'a>(flag: &str, s: &'a str) -> anyhow::Result<(&'a str, &'a str)> {
    match s.rsplit_once(':') {
        Some((dev, v)) if dev.starts_with('/') && !v.is_empty() => Ok((dev, v)),
        _ => bail!("--{flag} {s:?}: expected DEVICE:VALUE with an absolute device path"),
    }
}

fn throttles(flag: &str, list: &[String], size: bool) -> anyhow::Result<Vec<ThrottleDevice>> {
    list.iter()
        .map(|s| {
            let (dev, v) = split(flag, s)?;
            let rate = if size {
                parse_size(v).with_context(|| format!("--{flag} {s:?}"))?
            } else {
                v.parse()
                    .with_context(|| format!("--{flag} {s:?}: {v:?} is not a number"))?
            };
            Ok(ThrottleDevice {
                path: dev.to_string(),
                rate,
            })
        })
        .collect()
}

impl BlockIoFlags {
    /// Writes the flags into `hc` (the engine checks ranges and devices).
    pub fn apply(&self, hc: &mut HostConfig) -> anyhow::Result<()> {
        hc.blkio_weight = self.blkio_weight.unwrap_or(0);
        hc.blkio_weight_device = self
            .blkio_weight_device
            .iter()
            .map(|s| {
                let (dev, v) = split("blkio-weight-device", s)?;
                let weight = v.parse().with_context(|| {
                    format!("--blkio-weight-device {s:?}: {v:?} is not a weight")
                })?;
                Ok(WeightDevice {
                    path: dev.to_string(),
                    weight,
                })
            })
            .collect::<anyhow::Result<_>>()?;
        hc.blkio_device_read_bps = throttles("device-read-bps", &self.device_read_bps, true)?;
        hc.blkio_device_write_bps = throttles("device-write-bps", &self.device_write_bps, true)?;
        hc.blkio_device_read_iops = throttles("device-read-iops", &self.device_read_iops, false)?;
        hc.blkio_device_write_iops =
            throttles("device-write-iops", &self.device_write_iops, false)?;
        hc.oom_kill_disable = self.oom_kill_disable.then_some(true);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_lower_into_dockers_host_config_fields() {
        let f = BlockIoFlags {
            blkio_weight: Some(300),
            blkio_weight_device: vec!["/dev/vda:200".into()],
            device_read_bps: vec!["/dev/vda:1mb".into()],
            device_write_iops: vec!["/dev/vda:50".into()],
            oom_kill_disable: true,
            ..Default::default()
        };
        let mut hc = HostConfig::default();
        f.apply(&mut hc).expect("valid flags");
        assert_eq!(hc.blkio_weight, 300);
        assert_eq!(hc.blkio_weight_device[0].weight, 200);
        assert_eq!(hc.blkio_device_read_bps[0].rate, 1 << 20);
        assert_eq!(hc.blkio_device_read_bps[0].path, "/dev/vda");
        assert_eq!(hc.blkio_device_write_iops[0].rate, 50);
        assert_eq!(hc.oom_kill_disable, Some(true));
        let bad = BlockIoFlags {
            device_read_iops: vec!["vda:5".into()],
            ..Default::default()
        };
        let err = bad.apply(&mut hc).expect_err("relative device");
        assert!(err.to_string().contains("--device-read-iops"), "{err}");
    }
}
