//! Block I/O weights and throttles and `OomKillDisable`: checked as Docker checks them, the
//! device paths resolved to the host's `major:minor`, and what this host's cgroups cannot
//! apply left out with Docker's warning, naming it.

use std::os::unix::fs::FileTypeExt;

use berth_runtime::container::block_io::{IoSupport, host_support};
use berth_runtime::container::{BlockIo, ContainerConfig, DeviceRate};

use super::{SpecError, invalid};
use crate::api::container::{HostConfig, ThrottleDevice};

/// One setting this host cannot apply: the `HostConfig` field, the Compose key, and Docker's
/// words for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discarded {
    pub field: &'static str,
    pub compose_key: &'static str,
    pub message: &'static str,
}

/// The block device `path` names, as `major:minor`.
fn device(field: &str, path: &str) -> Result<(u64, u64), SpecError> {
    let meta = std::fs::metadata(path)
        .map_err(|e| invalid(field, format!("{path}: cannot read the device: {e}")))?;
    if !meta.file_type().is_block_device() {
        return Err(invalid(field, format!("{path} is not a block device")));
    }
    use std::os::unix::fs::MetadataExt;
    let rdev = meta.rdev();
    Ok((nix::sys::stat::major(rdev), nix::sys::stat::minor(rdev)))
}

/// Docker's range of a blkio weight.
fn weight(field: &str, w: u16) -> Result<u16, SpecError> {
    if (10..=1000).contains(&w) {
        Ok(w)
    } else {
        Err(invalid(
            field,
            format!("{w}: the range of blkio weight is from 10 to 1000"),
        ))
    }
}

fn rates(field: &str, list: &[ThrottleDevice]) -> Result<Vec<DeviceRate>, SpecError> {
    list.iter()
        .map(|t| {
            let (major, minor) = device(field, &t.path)?;
            Ok(DeviceRate {
                major,
                minor,
                value: t.rate,
            })
        })
        .collect()
}

/// What `hc` asks that `support` says this host cannot apply, with Docker's warnings.
fn discarded(hc: &HostConfig, support: IoSupport) -> Vec<Discarded> {
    let rows: [(bool, bool, &str, &str, &str); 7] = [
        (
            hc.blkio_weight > 0,
            support.weight,
            "HostConfig.BlkioWeight",
            "blkio_config.weight",
            "Your kernel does not support Block I/O weight or the cgroup is not mounted. \
             Weight discarded.",
        ),
        (
            !hc.blkio_weight_device.is_empty(),
            support.weight_device,
            "HostConfig.BlkioWeightDevice",
            "blkio_config.weight_device",
            "Your kernel does not support Block I/O weight_device or the cgroup is not \
             mounted. Weight-device discarded.",
        ),
        (
            !hc.blkio_device_read_bps.is_empty(),
            support.read_bps,
            "HostConfig.BlkioDeviceReadBps",
            "blkio_config.device_read_bps",
            "Your kernel does not support BPS Block I/O read limit or the cgroup is not \
             mounted. Block I/O BPS read limit discarded.",
        ),
        (
            !hc.blkio_device_write_bps.is_empty(),
            support.write_bps,
            "HostConfig.BlkioDeviceWriteBps",
            "blkio_config.device_write_bps",
            "Your kernel does not support BPS Block I/O write limit or the cgroup is not \
             mounted. Block I/O BPS write limit discarded.",
        ),
        (
            !hc.blkio_device_read_iops.is_empty(),
            support.read_iops,
            "HostConfig.BlkioDeviceReadIOps",
            "blkio_config.device_read_iops",
            "Your kernel does not support IOPS Block I/O read limit or the cgroup is not \
             mounted. Block I/O IOPS read limit discarded.",
        ),
        (
            !hc.blkio_device_write_iops.is_empty(),
            support.write_iops,
            "HostConfig.BlkioDeviceWriteIOps",
            "blkio_config.device_write_iops",
            "Your kernel does not support IOPS Block I/O write limit or the cgroup is not \
             mounted. Block I/O IOPS write limit discarded.",
        ),
        (
            hc.oom_kill_disable == Some(true),
            support.oom_kill_disable,
            "HostConfig.OomKillDisable",
            "oom_kill_disable",
            "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        ),
    ];
    rows.into_iter()
        .filter(|(asked, can, ..)| *asked && !*can)
        .map(|(_, _, field, compose_key, message)| Discarded {
            field,
            compose_key,
            message,
        })
        .collect()
}

/// Docker's warning for an OOM killer turned off without a memory limit.
pub const OOM_WITHOUT_LIMIT: &str = "OOM killer is disabled for the container, but no memory \
     limit is set, this can result in the system running out of resources.";

/// The warnings creating a container from `hc` gives on this host: each setting the host
/// cannot apply (block I/O, OOM and real-time settings, named by its Compose key when
/// `compose`, else its `HostConfig` field) and an OOM killer turned off without a memory
/// limit.
pub fn host_warnings(hc: &HostConfig, compose: bool) -> Vec<String> {
    let mut out: Vec<String> = discarded(hc, host_support())
        .into_iter()
        .map(|d| {
            let name = if compose { d.compose_key } else { d.field };
            format!("{name}: {}", d.message)
        })
        .collect();
    if hc.oom_kill_disable == Some(true) && hc.memory <= 0 && host_support().oom_kill_disable {
        let name = if compose {
            "oom_kill_disable"
        } else {
            "HostConfig.OomKillDisable"
        };
        out.push(format!("{name}: {OOM_WITHOUT_LIMIT}"));
    }
    out.extend(super::realtime::host_warnings(hc, compose));
    out
}

/// Checks and lowers the block I/O fields and `OomKillDisable` of `hc` into `c`, leaving out
/// what this host cannot apply (with its warning in `warnings`).
pub(super) fn block_io(
    hc: &HostConfig,
    c: &mut ContainerConfig,
    warnings: &mut Vec<String>,
) -> Result<(), SpecError> {
    let mut b = BlockIo::default();
    if hc.blkio_weight > 0 {
        b.weight = Some(weight("HostConfig.BlkioWeight", hc.blkio_weight)?);
    }
    for w in &hc.blkio_weight_device {
        let field = "HostConfig.BlkioWeightDevice";
        let (major, minor) = device(field, &w.path)?;
        b.weight_device.push(DeviceRate {
            major,
            minor,
            value: u64::from(weight(field, w.weight)?),
        });
    }
    b.read_bps = rates("HostConfig.BlkioDeviceReadBps", &hc.blkio_device_read_bps)?;
    b.write_bps = rates("HostConfig.BlkioDeviceWriteBps", &hc.blkio_device_write_bps)?;
    b.read_iops = rates("HostConfig.BlkioDeviceReadIOps", &hc.blkio_device_read_iops)?;
    b.write_iops = rates(
        "HostConfig.BlkioDeviceWriteIOps",
        &hc.blkio_device_write_iops,
    )?;
    let support = host_support();
    let mut oom = hc.oom_kill_disable == Some(true);
    for d in discarded(hc, support) {
        match d.field {
            "HostConfig.BlkioWeight" => b.weight = None,
            "HostConfig.BlkioWeightDevice" => b.weight_device.clear(),
            "HostConfig.BlkioDeviceReadBps" => b.read_bps.clear(),
            "HostConfig.BlkioDeviceWriteBps" => b.write_bps.clear(),
            "HostConfig.BlkioDeviceReadIOps" => b.read_iops.clear(),
            "HostConfig.BlkioDeviceWriteIOps" => b.write_iops.clear(),
            _ => oom = false,
        }
    }
    warnings.extend(host_warnings(hc, false));
    c.resources.block_io = b;
    c.resources.oom_kill_disable = oom;
    Ok(())
}

/// Docker's `update --blkio-weight`: a weight of `hc` (0: unchanged) checked and put into
/// `r`, or left out with Docker's warning where this host has no weight file.
pub(crate) fn update_weight(
    hc: &HostConfig,
    r: &mut berth_runtime::container::Resources,
    warnings: &mut Vec<String>,
) -> Result<(), SpecError> {
    if hc.blkio_weight == 0 {
        return Ok(());
    }
    let w = weight("HostConfig.BlkioWeight", hc.blkio_weight)?;
    let only = HostConfig {
        blkio_weight: w,
        ..Default::default()
    };
    let lost = discarded(&only, host_support());
    if lost.is_empty() {
        r.block_io.weight = Some(w);
    }
    warnings.extend(lost.iter().map(|d| format!("{}: {}", d.field, d.message)));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_weight_out_of_dockers_range_is_refused_naming_the_field() {
        let hc = HostConfig {
            blkio_weight: 5,
            ..Default::default()
        };
        let mut c = ContainerConfig::new(
            berth_runtime::container::RootfsSource::Dir("/".into()),
            vec!["true".into()],
        );
        let err = block_io(&hc, &mut c, &mut Vec::new()).expect_err("refused");
        assert!(err.to_string().contains("HostConfig.BlkioWeight"), "{err}");
        assert!(err.to_string().contains("10 to 1000"), "{err}");
    }

    #[test]
    fn a_path_that_is_not_a_block_device_is_refused_naming_it() {
        let hc = HostConfig {
            blkio_device_read_bps: vec![ThrottleDevice {
                path: "/dev/null".into(),
                rate: 1024,
            }],
            ..Default::default()
        };
        let mut c = ContainerConfig::new(
            berth_runtime::container::RootfsSource::Dir("/".into()),
            vec!["true".into()],
        );
        let err = block_io(&hc, &mut c, &mut Vec::new()).expect_err("refused");
        let text = err.to_string();
        assert!(text.contains("HostConfig.BlkioDeviceReadBps"), "{text}");
        assert!(text.contains("/dev/null is not a block device"), "{text}");
    }

    #[test]
    fn what_the_host_lacks_is_warned_with_dockers_words() {
        let hc = HostConfig {
            blkio_weight: 300,
            blkio_device_read_iops: vec![ThrottleDevice {
                path: "/dev/x".into(),
                rate: 1,
            }],
            oom_kill_disable: Some(true),
            ..Default::default()
        };
        let none = discarded(&hc, IoSupport::default());
        let fields: Vec<&str> = none.iter().map(|d| d.field).collect();
        assert_eq!(
            fields,
            [
                "HostConfig.BlkioWeight",
                "HostConfig.BlkioDeviceReadIOps",
                "HostConfig.OomKillDisable"
            ]
        );
        assert!(none[0].message.contains("Block I/O weight"));
        let all = IoSupport {
            weight: true,
            weight_device: true,
            read_bps: true,
            write_bps: true,
            read_iops: true,
            write_iops: true,
            oom_kill_disable: true,
        };
        assert!(discarded(&hc, all).is_empty());
    }
}
