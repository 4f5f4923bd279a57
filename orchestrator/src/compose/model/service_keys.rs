//! The long forms of a service's structured keys: build, depends_on, deploy, devices,
//! env_file, healthcheck, logging, networks, ports, configs/secrets references, ulimits and
//! volumes.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use yaml_serde::Value;

use crate::compose::units::{Bytes, Duration};

/// `build:` in long form; `context` is absolute (or a URL).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Build {
    /// Absolute path or URL; the project directory when the file gives none.
    #[serde(default)]
    pub context: String,
    /// Dockerfile path relative to the context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// Dockerfile content given inline.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Build arguments; `None` takes the value from the environment at build time.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    /// The Dockerfile stage to build (the last one when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Labels set on the built image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Local images or cache directories that may serve the build's steps (`--cache-from`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Where the build's cache is exported (`type=local,dest=DIR`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    /// Network of RUN instructions: default, host or none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Size of /dev/shm for RUN instructions, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Bytes>,
    /// Extra /etc/hosts entries for RUN instructions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    /// Extra tags for the built image.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Build without the cache.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_cache: Option<bool>,
    /// Always pull base images.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull: Option<bool>,
    /// Named build contexts (`NAME: DIR` or `docker-image://REF`) for FROM and `--from`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_contexts: Option<Value>,
    /// SSH agents `RUN --mount=type=ssh` may reach (`default`, `ID=SOCKET`, or a map).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Value>,
    /// Secrets exposed to `RUN --mount=type=secret` (top-level secrets by name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    /// Target platforms: the host's own alone is what berth builds; any other is listed by
    /// `Project::unsupported` (the image is still built for the host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Value>,
    /// Run RUN instructions privileged (every capability, as `docker run --privileged`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Isolation technology (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Resource limits for RUN instructions.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Build entitlements (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Value>,
    /// Provenance attestation settings (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Value>,
    /// SBOM attestation settings (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<Value>,
}

impl Build {
    /// The named contexts that stand for another service's image (`NAME: service:OTHER`, or
    /// `NAME=service:OTHER` in the list form), as (NAME, OTHER) pairs: OTHER's image is built
    /// first and the build reads it.
    pub fn service_contexts(&self) -> Vec<(String, String)> {
        let pair = |k: &str, v: &str| {
            v.strip_prefix("service:")
                .map(|other| (k.to_string(), other.to_string()))
        };
        match &self.additional_contexts {
            Some(Value::Mapping(m)) => m
                .iter()
                .filter_map(|(k, v)| pair(k.as_str()?, v.as_str()?))
                .collect(),
            Some(Value::Sequence(items)) => items
                .iter()
                .filter_map(|v| v.as_str()?.split_once('='))
                .filter_map(|(k, v)| pair(k, v))
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// One `depends_on` entry in long form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DependsOn {
    /// When the dependency counts as ready for this service to start.
    pub condition: DependsCondition,
    /// Restart this service when the dependency is updated (`docker compose` semantics).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub restart: bool,
    /// `false`: a missing or failing dependency only warns.
    #[serde(default = "yes")]
    pub required: bool,
}

fn yes() -> bool {
    true
}

/// When a dependency counts as ready.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DependsCondition {
    /// The dependency's container has started.
    ServiceStarted,
    /// The dependency's healthcheck reports healthy.
    ServiceHealthy,
    /// The dependency ran to completion with exit status 0 (migrations, init jobs).
    ServiceCompletedSuccessfully,
}

/// `deploy:`; berth runs `replicas` and `resources.limits` (cpus, memory, pids).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Deploy mode: `replicated` runs; `global` and others are listed by `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Number of containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Swarm service labels (not container labels; not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Restart policy in deploy form (not run by berth, listed by `Project::unsupported`);
    /// the service's `restart` is the one berth applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Swarm endpoint mode (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    /// Swarm placement (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    /// Swarm update settings (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<Value>,
    /// Swarm rollback settings (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<Value>,
}

/// `deploy.resources`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Hard limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceLimits>,
    /// Reservations (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceLimits>,
}

/// `blkio_config`: the service's block I/O weight and per-device weights and limits.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlkioConfig {
    /// Relative weight, 10-1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u16>,
    /// Per-device weights, 10-1000.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<BlkioWeightDevice>,
    /// Bytes per second (`12mb` or a number).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<BlkioRate>,
    /// Bytes per second written.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<BlkioRate>,
    /// Operations per second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<BlkioRate>,
    /// Write operations per second.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<BlkioRate>,
}

/// One `blkio_config.weight_device` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlkioWeightDevice {
    /// The device node on the host.
    pub path: String,
    /// 10-1000.
    pub weight: u16,
}

/// One `blkio_config.device_*_bps`/`_iops` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BlkioRate {
    /// The device node on the host.
    pub path: String,
    /// Per second: bytes (sizes like `1mb` allowed) or operations.
    pub rate: Bytes,
}

/// `deploy.resources.limits` / `.reservations`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResourceLimits {
    /// CPU limit as a fraction of CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Bytes>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Device requests (GPUs...; not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Value>,
    /// Generic resources (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Value>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// When to restart: `none`, `on-failure` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Wait between restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay: Option<Duration>,
    /// Give up after this many restarts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// How long a restart must run to count as successful.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<Duration>,
}

/// `devices:` entry in long form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Device {
    /// Device path on the host.
    pub source: String,
    /// Device path in the container (the host path when the short syntax gives none).
    pub target: String,
    /// Device cgroup permissions (`rwm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<String>,
}

/// `env_file:` entry in long form; `path` is absolute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnvFile {
    /// Absolute path of the env file.
    pub path: String,
    /// Required or optional.
    #[serde(default = "yes")]
    pub required: bool,
    /// `raw`: values taken literally, no quotes or interpolation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
}

/// `healthcheck:` in long form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Healthcheck {
    /// `["CMD", …]`, `["CMD-SHELL", "…"]` or `["NONE"]`; empty = the image's own check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub test: Vec<String>,
    /// Time between probes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<Duration>,
    /// Time a probe may take.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Duration>,
    /// Consecutive failures before unhealthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
    /// Grace period during which failures do not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_period: Option<Duration>,
    /// Probe interval during the start period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_interval: Option<Duration>,
    /// No health checking at all.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disable: bool,
}

/// `logging:`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Logging {
    /// Driver name: `json-file` or `local` (both write berth's log); others are listed by
    /// `Project::unsupported`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options: `max-size` and `max-file` run; others are listed by `Project::unsupported`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A service's attachment to one network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceNetwork {
    /// Extra DNS names of the service on this network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Static IPv4 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    /// Static IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    /// Extra link-local addresses (169.254.0.0/16, fe80::/10) on the container's interface.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// MAC address of the container's interface on this network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Order in which networks are connected (higher first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Which network provides the default gateway (highest wins; ties to a dual-stack
    /// network, then by network name, as Docker 28).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw_priority: Option<i64>,
    /// Interface name inside the container (run: Docker's endpoint option
    /// `com.docker.network.endpoint.ifname`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Endpoint driver options: `com.docker.network.endpoint.ifname` and
    /// `com.docker.network.endpoint.sysctls` run; others are listed by
    /// `Project::unsupported`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// One published or exposed port (a short-syntax range becomes one entry per port).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// A name for the port (documentation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Publishing mode: `ingress` (the default) or `host`; berth publishes both alike, on the host.
    pub mode: String,
    /// Host address to bind (all addresses when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Container port.
    pub target: u16,
    /// Host port or range (`"8080"`, `"8000-8010"`); `None` = not published on a fixed port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Application protocol hint (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// `pull_policy:` values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullPolicy {
    /// Pull on every `up`.
    Always,
    /// Never pull; the image must exist.
    Never,
    /// Pull when the image is missing (the default).
    Missing,
    /// Same as `missing`.
    IfNotPresent,
    /// Build the image instead of pulling it.
    Build,
    /// Pull when the local image is older than a day.
    Daily,
    /// Pull when the local image is older than a week.
    Weekly,
    /// Pull when the registry has a newer image than the local one.
    Refresh,
    /// `every_<duration>` (e.g. `every_12h`, `every_1w2d`): pull when the local image is
    /// older than the duration; the text is kept as written.
    Every(String),
}

impl PullPolicy {
    const NAMES: &[&str] = &[
        "always",
        "never",
        "missing",
        "if_not_present",
        "build",
        "daily",
        "weekly",
        "refresh",
        "every_<duration>",
    ];

    /// The value as Compose writes it.
    pub fn as_str(&self) -> &str {
        match self {
            PullPolicy::Always => "always",
            PullPolicy::Never => "never",
            PullPolicy::Missing => "missing",
            PullPolicy::IfNotPresent => "if_not_present",
            PullPolicy::Build => "build",
            PullPolicy::Daily => "daily",
            PullPolicy::Weekly => "weekly",
            PullPolicy::Refresh => "refresh",
            PullPolicy::Every(s) => s,
        }
    }

    /// How old the local image may be before `up` pulls it again: a day, a week, or the
    /// `every_` duration; `None` for the policies that do not look at age.
    pub fn max_age(&self) -> Option<std::time::Duration> {
        let secs = match self {
            PullPolicy::Daily => 86_400,
            PullPolicy::Weekly => 7 * 86_400,
            PullPolicy::Every(s) => {
                let mut total: u64 = 0;
                let mut n: u64 = 0;
                for c in s.strip_prefix("every_")?.chars() {
                    if let Some(d) = c.to_digit(10) {
                        n = n.saturating_mul(10).saturating_add(u64::from(d));
                        continue;
                    }
                    let unit = match c {
                        'w' => 7 * 86_400,
                        'd' => 86_400,
                        'h' => 3_600,
                        'm' => 60,
                        _ => 1,
                    };
                    total = total.saturating_add(n.saturating_mul(unit));
                    n = 0;
                }
                total
            }
            _ => return None,
        };
        Some(std::time::Duration::from_secs(secs))
    }

    /// Reads a value; `every_` takes one or more `<number><w|d|h|m|s>` as Compose's schema does.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "always" => PullPolicy::Always,
            "never" => PullPolicy::Never,
            "missing" => PullPolicy::Missing,
            "if_not_present" => PullPolicy::IfNotPresent,
            "build" => PullPolicy::Build,
            "daily" => PullPolicy::Daily,
            "weekly" => PullPolicy::Weekly,
            "refresh" => PullPolicy::Refresh,
            _ => {
                let d = s.strip_prefix("every_")?;
                let mut digits = 0;
                for c in d.chars() {
                    match c {
                        '0'..='9' => digits += 1,
                        'w' | 'd' | 'h' | 'm' | 's' if digits > 0 => digits = 0,
                        _ => return None,
                    }
                }
                if d.is_empty() || digits > 0 {
                    return None;
                }
                PullPolicy::Every(s.to_string())
            }
        })
    }
}

impl Serialize for PullPolicy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for PullPolicy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        PullPolicy::parse(&s)
            .ok_or_else(|| serde::de::Error::unknown_variant(&s, PullPolicy::NAMES))
    }
}

/// A service's reference to a top-level config or secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceFileRef {
    /// Name of the top-level config or secret.
    pub source: String,
    /// Path in the container (a secret's relative path is under `/run/secrets`); the source name
    /// when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid (a number) of the mounted file, 0 when unset and another of the three is
    /// set: the file is then bound as a copy with that owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner gid (a number) of the mounted file, 0 when unset and another of the three is
    /// set: the file is then bound as a copy with that owner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Permission bits of the mounted file, 0444 when unset and `uid` or `gid` is set: the file
    /// is then bound as a copy with that mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// One `ulimits:` entry (a single number sets both).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(from = "UlimitForm", into = "UlimitForm")]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
    /// Written as a single number: printed back that way, as Compose does.
    pub single: bool,
}

/// The two ways a ulimit is written.
#[derive(Serialize, Deserialize)]
#[serde(untagged, deny_unknown_fields)]
enum UlimitForm {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

impl From<UlimitForm> for Ulimit {
    fn from(f: UlimitForm) -> Self {
        match f {
            UlimitForm::Single(n) => Ulimit {
                soft: n,
                hard: n,
                single: true,
            },
            UlimitForm::Pair { soft, hard } => Ulimit {
                soft,
                hard,
                single: false,
            },
        }
    }
}

impl From<Ulimit> for UlimitForm {
    fn from(u: Ulimit) -> Self {
        if u.single && u.soft == u.hard {
            UlimitForm::Single(u.soft)
        } else {
            UlimitForm::Pair {
                soft: u.soft,
                hard: u.hard,
            }
        }
    }
}

/// Kind of a service mount.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum VolumeType {
    /// A host path.
    Bind,
    /// A named or anonymous volume.
    Volume,
    /// A memory-backed filesystem.
    Tmpfs,
    /// An image's filesystem (refused: berth mounts bind, volume and tmpfs only).
    Image,
    /// A Windows named pipe (refused: not on Linux).
    Npipe,
    /// A cluster volume (refused: berth mounts bind, volume and tmpfs only).
    Cluster,
}

/// One service mount in long form; bind sources are absolute.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceVolume {
    /// Mount type.
    #[serde(rename = "type")]
    pub kind: VolumeType,
    /// Host path (bind), volume name (volume, `None` = anonymous) or image reference.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Path in the container (absolute).
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// macOS consistency hint: no effect on Linux, with Docker as with berth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind mount options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume mount options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs mount options (`size`, `mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    /// Options of an `image` mount (refused: berth mounts bind, volume and tmpfs only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
}

/// `volumes[].bind`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// Mount propagation between host and container (`rprivate`, `rshared`, `rslave`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create a missing host path (short syntax does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_host_path: Option<bool>,
    /// SELinux relabel: `z` shared, `Z` private (not run by berth, listed by `Project::unsupported`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// What becomes of the mounts under the source: `enabled` (the default), `disabled`,
    /// `writable`, `readonly`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
}

/// `volumes[].volume`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// Do not fill an empty volume from the image's content at the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocopy: Option<bool>,
    /// Mount only this directory of the volume (relative, resolved inside the volume).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// `volumes[].tmpfs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TmpfsOptions {
    /// tmpfs size in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<Bytes>,
    /// Permission bits of the tmpfs root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}
