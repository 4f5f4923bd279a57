//! One service in long form, and what the engine asks of it (restart policy, stop timeout,
//! replicas, the services it needs first).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yaml_serde::Value;

use super::service_keys::*;
use crate::compose::units::{Bytes, Duration};

/// One service in long form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// OCI annotations of the container's runtime spec (inspect shows them in HostConfig).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// `false`: an attached `up` does not show this service's output unless `--attach` names it
    /// (see `Project::attached_services`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    /// Block I/O weights and limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    /// How to build the image when it is missing or `--build` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Capabilities added to the default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// cgroup namespace mode: `private` (the container's own, the default) or `host`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Parent cgroup for the container's cgroup (relative to each hierarchy's root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `None`: the image's CMD; `Some(vec![])`: explicitly empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Top-level configs this service mounts (at `/<name>` unless `target` says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ServiceFileRef>,
    /// Fixed container name (only with one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Number of usable CPUs (Windows semantics; not run by berth, listed by
    /// `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    /// Usable percentage of CPUs (Windows semantics; not run by berth, listed by
    /// `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CFS period in microseconds; with `cpu_quota` it is a CPU limit like `cpus` (alone it is
    /// listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CFS quota in microseconds per `cpu_period` (default 100 ms): a CPU limit like `cpus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// Real-time scheduler period in microseconds (`CpuRealtimePeriod`; warned by name where
    /// the host has no real-time group scheduling).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    /// Real-time runtime in microseconds per period (`CpuRealtimeRuntime`; the cgroups above
    /// the container get the budget while it runs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// Relative CPU weight (cgroup `cpu.shares`, at least 2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CPU limit as a fraction of CPUs; `deploy.resources.limits.cpus` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// CPUs the container may run on (`0-3`, `1,3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Windows credential spec (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<Value>,
    /// Services to start first, each with the condition that counts as started.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependsOn>,
    /// Replicas, resources and restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Compose Watch rules (`develop.watch`), followed by `berth watch` and `up --watch`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<Value>,
    /// Device cgroup allow rules (`c 1:3 mr`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// Host devices bound into the container and allowed in its device cgroup, in long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    /// DNS servers for the container's resolv.conf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    /// resolv.conf options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    /// resolv.conf search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// NIS domain name in the container's UTS namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    /// Entrypoint; `None` = the image's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// Already read into `environment`; kept for reference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// Resolved environment: `env_file` contents overlaid by `environment`; `None` = unset.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    /// Ports exposed to other services (documentation only in compose).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Links to containers outside the project (`name:alias`; not run by berth, listed by
    /// `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// Host name -> address(es) for /etc/hosts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    /// GPU requests (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Value>,
    /// Extra groups of the container's process (names in its /etc/group, or numbers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// How to probe the container's health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Container host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Image reference to run; without it the service runs the image it builds, named
    /// `<project>-<service>` (see [`Project::image_of`](super::Project::image_of)).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// IPC namespace: `private`, `shareable`, `none`, `host`, `service:x` or `container:x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Isolation technology (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Files of `KEY=VALUE` labels (absolute paths), merged under `labels` by the loader
    /// and emptied, as Compose does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_file: Vec<String>,
    /// Labels set on the container (berth's own `com.docker.compose.*` labels are added to these).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Legacy links (`service` or `service:alias`); also an ordering dependency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Log driver and options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Container MAC address: the first network's, unless that network sets its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Memory limit in bytes (legacy form of `deploy.resources.limits.memory`, which wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<Bytes>,
    /// Soft memory limit (the cgroup's reservation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<Bytes>,
    /// Swappiness 0-100 (cgroup v1; v2 has no such knob).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    /// Memory plus swap in bytes, or -1 for unlimited swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    /// AI model bindings (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Value>,
    /// Network mode: `bridge` (the project's networks), `none`, `host`, `service:x` or
    /// `container:x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Network name -> per-service settings (`None` = defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    /// Disable the OOM killer for the container (cgroup v1; warned at `up` where the host
    /// cannot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    /// OOM score adjustment (-1000..1000) of the container's processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// PID namespace: `host` runs; `service:x` and `container:x` are listed by
    /// `Project::unsupported`. Unset: the container's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Maximum number of processes; `deploy.resources.limits.pids` wins over it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Target platform (`linux/amd64`); one other than the host's is listed by
    /// `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Published ports in long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Commands run in the container right after it starts (`engine::hooks`); one failing
    /// fails the start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Value>,
    /// Commands run in the container right before it is stopped (`engine::hooks`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Value>,
    /// Privileged mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Profiles that enable this service; empty = always enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// External provider service (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
    /// When to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Mount the container's root filesystem read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Restart policy: `no` (the default), `always`, `on-failure[:N]` or `unless-stopped`; see
    /// [`Service::restart_policy`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// OCI runtime: `crun` or `runc` run the service's bundle instead of berth's executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Legacy replica count; see `replicas()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Top-level secrets this service mounts (under `/run/secrets` unless `target` says).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<ServiceFileRef>,
    /// Security options (`no-new-privileges`, `seccomp=…`, `label=…`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Size of /dev/shm in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Bytes>,
    /// Keep stdin open (`docker run -i`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin_open: Option<bool>,
    /// Time between the stop signal and SIGKILL; see `stop_timeout()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_grace_period: Option<Duration>,
    /// Signal that stops the container (default SIGTERM).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// Storage driver options (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_opt: Option<Value>,
    /// Namespaced kernel parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// Container paths to mount a tmpfs on, each `PATH[:OPTIONS]` (`/run`, `/tmp:size=64m`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Per-process resource limits by name (`nofile`, `nproc`...), each a soft and hard value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Mount the engine API socket (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_api_socket: Option<bool>,
    /// User (and group) the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User namespace mode (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// UTS namespace mode: `host` (the host's names) or unset (the container's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// Mounts (bind, volume, tmpfs) in long form; bind sources are absolute.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    /// Mount every volume and bind mount of another service's first container (`svc`,
    /// `service:svc`, `svc:ro`) or of a container (`container:NAME[:ro|rw]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-*` extension fields of this service, kept verbatim.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
}

/// A parsed `restart:` policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Never restart (the default).
    No,
    /// Always restart, also after the daemon restarts.
    Always,
    /// Restart on a non-zero exit, at most this many times when given.
    OnFailure(Option<u32>),
    /// Like `Always`, except after an explicit stop.
    UnlessStopped,
}

impl Service {
    /// The restart policy (validated at load time; an unknown value reads as `No`).
    pub fn restart_policy(&self) -> Restart {
        match self.restart.as_deref() {
            Some("always") => Restart::Always,
            Some("unless-stopped") => Restart::UnlessStopped,
            Some("on-failure") => Restart::OnFailure(None),
            Some(s) if s.starts_with("on-failure:") => {
                Restart::OnFailure(s["on-failure:".len()..].parse().ok())
            }
            _ => Restart::No,
        }
    }

    /// How long `stop` waits before SIGKILL: `stop_grace_period`, default 10 s as in compose.
    pub fn stop_timeout(&self) -> std::time::Duration {
        self.stop_grace_period
            .map(Duration::get)
            .unwrap_or(std::time::Duration::from_secs(10))
    }

    /// Number of containers to run: `deploy.replicas`, else `scale`, else 1.
    pub fn replicas(&self) -> u32 {
        self.deploy
            .as_ref()
            .and_then(|d| d.replicas)
            .or(self.scale)
            .unwrap_or(1)
    }

    /// Names of services this one needs before it can start (depends_on, links, volumes_from,
    /// `network_mode: service:x`, `ipc`/`pid: service:x`).
    pub fn dependencies(&self) -> Vec<String> {
        let mut out: Vec<String> = self.depends_on.keys().cloned().collect();
        for l in &self.links {
            let name = l.split(':').next().unwrap_or(l);
            out.push(name.to_string());
        }
        for v in &self.volumes_from {
            if let Some(name) = volumes_from_service(v) {
                out.push(name.to_string());
            }
        }
        for mode in [&self.network_mode, &self.ipc, &self.pid]
            .into_iter()
            .flatten()
        {
            if let Some(name) = mode.strip_prefix("service:") {
                out.push(name.to_string());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The service named by a `volumes_from` entry (`svc`, `svc:ro`), or `None` for `container:x`.
pub fn volumes_from_service(entry: &str) -> Option<&str> {
    if entry.starts_with("container:") {
        return None;
    }
    let entry = entry.strip_prefix("service:").unwrap_or(entry);
    Some(entry.split(':').next().unwrap_or(entry))
}
