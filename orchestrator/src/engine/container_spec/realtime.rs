//! `CpuRealtimePeriod` / `CpuRealtimeRuntime` (`--cpu-rt-period`, `--cpu-rt-runtime`,
//! Compose's `cpu_rt_period` / `cpu_rt_runtime`): checked as Docker checks them, and left out
//! with Docker's warning where the host has no real-time group scheduling (cgroup v2, or a
//! kernel without it). Where it has, the runtime writes them and moves the budget of the
//! cgroups above the container (`berth_runtime::container::realtime`).

use berth_runtime::container::Resources;

use super::{SpecError, invalid};
use crate::api::container::HostConfig;

/// Docker's words for a real-time setting the host cannot apply.
const NO_PERIOD: &str = "Your kernel does not support cgroup cpu real-time period";
const NO_RUNTIME: &str = "Your kernel does not support cgroup cpu real-time runtime";

/// The real-time settings of `hc` this host cannot apply, each as (HostConfig field, Compose
/// key, Docker's warning); `supported` is what [`berth_runtime::container::realtime::supported`]
/// says of the host.
fn discarded(hc: &HostConfig, supported: bool) -> Vec<(&'static str, &'static str, &'static str)> {
    if supported {
        return Vec::new();
    }
    let mut out = Vec::new();
    if hc.cpu_realtime_period > 0 {
        out.push(("HostConfig.CpuRealtimePeriod", "cpu_rt_period", NO_PERIOD));
    }
    if hc.cpu_realtime_runtime > 0 {
        out.push((
            "HostConfig.CpuRealtimeRuntime",
            "cpu_rt_runtime",
            NO_RUNTIME,
        ));
    }
    out
}

/// The warnings of `hc`'s real-time settings on this host, named by Compose key when
/// `compose`, else by `HostConfig` field.
pub(super) fn host_warnings(hc: &HostConfig, compose: bool) -> Vec<String> {
    let supported = (hc.cpu_realtime_period > 0 || hc.cpu_realtime_runtime > 0)
        && berth_runtime::container::realtime::supported();
    discarded(hc, supported)
        .into_iter()
        .map(|(field, key, msg)| format!("{}: {msg}", if compose { key } else { field }))
        .collect()
}

/// Docker's checks: neither negative, the runtime within the period.
pub(crate) fn check(hc: &HostConfig) -> Result<(), SpecError> {
    for (field, v) in [
        ("HostConfig.CpuRealtimePeriod", hc.cpu_realtime_period),
        ("HostConfig.CpuRealtimeRuntime", hc.cpu_realtime_runtime),
    ] {
        if v < 0 {
            return Err(invalid(field, format!("{v} is negative")));
        }
    }
    if hc.cpu_realtime_period > 0 && hc.cpu_realtime_runtime > hc.cpu_realtime_period {
        return Err(invalid(
            "HostConfig.CpuRealtimeRuntime",
            format!(
                "{} µs cannot be higher than the real-time period ({} µs)",
                hc.cpu_realtime_runtime, hc.cpu_realtime_period
            ),
        ));
    }
    Ok(())
}

/// Puts the real-time fields of `hc` into `r` when the host is `supported`.
pub(crate) fn apply(hc: &HostConfig, supported: bool, r: &mut Resources) {
    if supported {
        r.cpu_rt_period = u64::try_from(hc.cpu_realtime_period)
            .ok()
            .filter(|p| *p > 0);
        r.cpu_rt_runtime = u64::try_from(hc.cpu_realtime_runtime)
            .ok()
            .filter(|p| *p > 0);
    }
}

/// Docker's `update --cpu-rt-period/--cpu-rt-runtime`: the fields of `hc` that are set (0:
/// unchanged) checked and put into `r`, or left out with Docker's warning.
pub(crate) fn update(
    hc: &HostConfig,
    r: &mut Resources,
    warnings: &mut Vec<String>,
) -> Result<(), SpecError> {
    if hc.cpu_realtime_period == 0 && hc.cpu_realtime_runtime == 0 {
        return Ok(());
    }
    let mut merged = hc.clone();
    if merged.cpu_realtime_period == 0 {
        merged.cpu_realtime_period = r.cpu_rt_period.map_or(0, |p| p as i64);
    }
    if merged.cpu_realtime_runtime == 0 {
        merged.cpu_realtime_runtime = r.cpu_rt_runtime.map_or(0, |p| p as i64);
    }
    check(&merged)?;
    warnings.extend(host_warnings(hc, false));
    apply(&merged, berth_runtime::container::realtime::supported(), r);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hc(period: i64, runtime: i64) -> HostConfig {
        HostConfig {
            cpu_realtime_period: period,
            cpu_realtime_runtime: runtime,
            ..Default::default()
        }
    }

    #[test]
    fn a_runtime_beyond_the_period_or_a_negative_value_is_refused_by_name() {
        let e = check(&hc(1000, 2000)).expect_err("refused");
        assert!(
            e.to_string().contains("HostConfig.CpuRealtimeRuntime"),
            "{e}"
        );
        let e = check(&hc(-1, 0)).expect_err("refused");
        assert!(
            e.to_string().contains("HostConfig.CpuRealtimePeriod"),
            "{e}"
        );
        check(&hc(0, 950_000)).expect("a runtime alone is checked by the kernel");
    }

    #[test]
    fn without_rt_group_scheduling_both_are_warned_with_dockers_words() {
        let d = discarded(&hc(1000, 100), false);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].1, "cpu_rt_period");
        assert!(d[1].2.contains("real-time runtime"));
        assert!(discarded(&hc(1000, 100), true).is_empty());
        let mut r = Resources::default();
        apply(&hc(1000, 100), false, &mut r);
        assert_eq!((r.cpu_rt_period, r.cpu_rt_runtime), (None, None));
        apply(&hc(1000, 100), true, &mut r);
        assert_eq!((r.cpu_rt_period, r.cpu_rt_runtime), (Some(1000), Some(100)));
    }
}
