//! The typed Compose model: what the loader hands to the engine.
//!
//! Every field is in long form with the Compose Specification's field names, so `berth config`
//! output can be diffed against `docker compose config` and the engine never meets a short syntax.
//! Keys berth parses but does not run yet are kept as raw YAML values and listed by
//! [`Project::unsupported`], never silently dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use yaml_serde::Value;

use super::units::{Bytes, Duration};

/// A fully resolved project: merged, interpolated, profiles applied, long syntax, absolute paths.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Project {
    /// Normalised project name (lowercase `[a-z0-9_-]`); prefixes every resource name.
    pub name: String,
    /// Directory relative paths were resolved against.
    #[serde(skip)]
    pub working_dir: PathBuf,
    /// The Compose files this project was loaded from, in merge order (`-` for stdin).
    #[serde(skip)]
    pub compose_files: Vec<PathBuf>,
    /// Active services by name (disabled profiles removed).
    #[serde(default)]
    pub services: BTreeMap<String, Service>,
    /// Services left out because none of their profiles is active; kept so errors can say why.
    #[serde(skip)]
    pub disabled_services: BTreeMap<String, Service>,
    /// Top-level networks, including the implicit `default` when a service uses it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    /// Top-level named volumes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level configs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, FileObject>,
    /// Top-level secrets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, FileObject>,
    /// Top-level `x-*` extension fields, kept verbatim.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
    /// The profiles that were active while loading.
    #[serde(skip)]
    pub active_profiles: Vec<String>,
    /// The environment used for interpolation (process env over `.env`/`--env-file`).
    #[serde(skip)]
    pub environment: BTreeMap<String, String>,
    /// Warnings met while loading (unset variables, obsolete `version:` …), already logged.
    #[serde(skip)]
    pub warnings: Vec<String>,
}

/// One service in long form.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// OCI annotations for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    /// Whether `up` attaches to this service's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach: Option<bool>,
    /// Block IO weights and limits (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<Value>,
    /// How to build the image when it is missing or `--build` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// Capabilities added to the default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    /// Capabilities removed from the default set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    /// cgroup namespace mode: `host` or `private`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Parent cgroup for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    /// `None`: the image's CMD; `Some(vec![])`: explicitly empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    /// Configs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<ServiceFileRef>,
    /// Fixed container name (only with one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    /// Number of usable CPUs (Windows semantics in compose; kept for fidelity).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_count: Option<i64>,
    /// Usable percentage of CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_percent: Option<f64>,
    /// CFS period in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    /// CFS quota in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    /// Real-time scheduler period in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    /// Real-time scheduler runtime in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    /// Relative CPU weight.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    /// CPU limit as a fraction of CPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// CPUs the container may run on (`0-3`, `1,3`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    /// Windows credential spec (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential_spec: Option<Value>,
    /// Dependencies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, DependsOn>,
    /// Replicas, resources and restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Compose Watch settings (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub develop: Option<Value>,
    /// Device cgroup rules (not run by berth yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// Device requests (not run by berth yet).
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
    /// Container domain name.
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
    /// Links to containers outside the project (`name:alias`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
    /// Host name -> address(es) for /etc/hosts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_hosts: BTreeMap<String, Vec<String>>,
    /// GPU requests (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus: Option<Value>,
    /// Extra groups for the container user.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// How to probe the container's health.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    /// Container host name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// Image options or reference, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Run a tiny init as PID 1 that reaps zombies and forwards signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    /// IPC namespace: `private`, `shareable`, `host` or `service:x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    /// Isolation technology (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Files of labels (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_file: Option<Value>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Legacy links (`service` or `service:alias`); also an ordering dependency.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// Log driver and options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    /// Container MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Memory limit (legacy form of deploy.resources.limits.memory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<Bytes>,
    /// Soft memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<Bytes>,
    /// Swappiness 0-100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// Bytes, or -1 for unlimited swap.
    pub memswap_limit: Option<i64>,
    /// AI model bindings (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Value>,
    /// Network mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// Network name -> per-service settings (`None` = defaults).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Option<ServiceNetwork>>,
    /// Disable the OOM killer for the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_kill_disable: Option<bool>,
    /// OOM score adjustment (-1000..1000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// PID namespace: `host` or `service:x`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    /// Target platform (`linux/amd64`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Published ports in long form.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    /// Lifecycle hooks after start (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub post_start: Option<Value>,
    /// Lifecycle hooks before stop (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<Value>,
    /// Privileged mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Profiles that enable this service; empty = always enabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    /// External provider service (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
    /// When to pull the image.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// Restart the dependent when the dependency is updated / restart policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    /// OCI runtime: `crun` or `runc` run the service's bundle instead of berth's executor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    /// Legacy replica count; see `replicas()`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
    /// Secrets.
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
    /// Storage driver options (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_opt: Option<Value>,
    /// Namespaced kernel parameters.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// tmpfs mounts or options, depending on the struct.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    /// Allocate a pseudo-terminal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tty: Option<bool>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// Mount the engine API socket (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_api_socket: Option<bool>,
    /// User (and group) the process runs as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// User namespace mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    /// UTS namespace mode (`host`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    /// Volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<ServiceVolume>,
    /// Mount all volumes of another service (`svc`, `svc:ro`) or container.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    /// Working directory of the process.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// `x-*` extension fields of this service, kept verbatim.
    #[serde(skip)]
    pub extensions: BTreeMap<String, Value>,
}

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
    /// Build stage, container path or port, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Cache sources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Cache exports (not run by berth yet).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_to: Vec<String>,
    /// Network for RUN instructions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Size of /dev/shm in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<Bytes>,
    /// Extra /etc/hosts entries: host name -> address(es).
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
    /// Named extra build contexts (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_contexts: Option<Value>,
    /// SSH agent forwarding for builds (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh: Option<Value>,
    /// Secrets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<Value>,
    /// Multi-platform targets (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platforms: Option<Value>,
    /// Privileged mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privileged: Option<bool>,
    /// Isolation technology (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Resource limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ulimits: Option<Value>,
    /// Build entitlements (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entitlements: Option<Value>,
    /// Provenance attestation settings (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provenance: Option<Value>,
    /// SBOM attestation settings (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sbom: Option<Value>,
}

/// One `depends_on` entry in long form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DependsOn {
    /// When the dependency (or restart) counts as met.
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

/// `deploy:`; berth uses replicas, resources and restart_policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Deploy {
    /// Mode: deploy mode, port publishing mode or file mode, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Number of containers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Limits and reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    /// Restart policy in deploy form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// Swarm endpoint mode (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    /// Swarm placement (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Value>,
    /// Swarm update settings (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<Value>,
    /// Swarm rollback settings (not run by berth).
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
    /// Reservations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceLimits>,
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
    /// Device requests (not run by berth yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub devices: Option<Value>,
    /// Generic resources (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic_resources: Option<Value>,
}

/// `deploy.restart_policy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RestartPolicy {
    /// When the dependency (or restart) counts as met.
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
    /// Source: host path, volume name, device or top-level name, depending on the struct.
    pub source: String,
    /// Build stage, container path or port, depending on the struct.
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
    /// Driver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
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
    /// Link-local addresses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link_local_ips: Vec<String>,
    /// Container MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    /// Order in which networks are connected (higher first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
    /// Which network provides the default gateway (highest wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw_priority: Option<i64>,
    /// Interface name inside the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface_name: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

/// One published or exposed port (a short-syntax range becomes one entry per port).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Port {
    /// Name: port name or real resource name, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Mode: deploy mode, port publishing mode or file mode, depending on the struct.
    pub mode: String,
    /// Host address to bind (all addresses when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// Build stage, container path or port, depending on the struct.
    pub target: u16,
    /// Host port or range (`"8080"`, `"8000-8010"`); `None` = not published on a fixed port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// `tcp`, `udp` or `sctp`.
    pub protocol: String,
    /// Application protocol hint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
}

/// `pull_policy:` values.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
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
}

/// A service's reference to a top-level config or secret.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ServiceFileRef {
    /// Source: host path, volume name, device or top-level name, depending on the struct.
    pub source: String,
    /// Build stage, container path or port, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Owner uid of the mounted file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
    /// Owner gid of the mounted file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gid: Option<String>,
    /// Mode: deploy mode, port publishing mode or file mode, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// One `ulimits:` entry in long form (a single number sets both).
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ulimit {
    /// Soft limit.
    pub soft: i64,
    /// Hard limit.
    pub hard: i64,
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
    /// An image's filesystem (not run by berth yet).
    Image,
    /// A Windows named pipe (not on Linux).
    Npipe,
    /// A cluster volume (not run by berth).
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
    /// Build stage, container path or port, depending on the struct.
    pub target: String,
    /// Mount read-only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    /// macOS consistency hint (ignored on Linux).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Bind mount options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Volume mount options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// tmpfs mounts or options, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
    /// Image options or reference, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<Value>,
}

/// `volumes[].bind`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BindOptions {
    /// Mount propagation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create a missing host path (short syntax does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_host_path: Option<bool>,
    /// SELinux relabel: `z` shared, `Z` private.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// Recursive read-only handling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recursive: Option<String>,
}

/// `volumes[].volume`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct VolumeOptions {
    /// Do not copy image content into a new volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nocopy: Option<bool>,
    /// Mount a sub-directory of the volume.
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
    /// Mode: deploy mode, port publishing mode or file mode, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}

/// A top-level network.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Network {
    /// The real network name (`<project>_<key>` unless set or external).
    #[serde(default)]
    pub name: String,
    /// Driver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Swarm attachable flag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attachable: Option<bool>,
    /// Enable IPv4 (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv4: Option<bool>,
    /// Enable IPv6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    /// Created outside the project; berth only looks it up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// No route to the outside world.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
    /// Address management.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// `networks.<n>.ipam`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Ipam {
    /// Driver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Address pools.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One `ipam.config` pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IpamPool {
    /// Subnet in CIDR form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Range to allocate from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    /// Gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Reserved addresses by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

/// A top-level named volume.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    /// The real volume name (`<project>_<key>` unless set or external).
    #[serde(default)]
    pub name: String,
    /// Driver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Created outside the project; berth only looks it up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// A top-level config or secret; berth supports the file-based and environment-based kinds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileObject {
    /// Name: port name or real resource name, depending on the struct.
    #[serde(default)]
    pub name: String,
    /// Absolute path of the file holding the content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// Environment: resolved variables, or the variable holding the content, depending on the struct.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// Inline content.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    /// Created outside the project; berth only looks it up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub external: bool,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Driver name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// Driver options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// Template driver (not run by berth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template_driver: Option<String>,
}

/// A key berth parsed but does not act on yet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Unsupported {
    /// Key path, e.g. `services.web.gpus` or `networks.front.driver=overlay`.
    pub path: String,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.path)
    }
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

    /// Keys of this service that berth parses but does not run yet.
    pub fn unsupported_keys(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let raw: [(&'static str, bool); 31] = [
            ("blkio_config", self.blkio_config.is_some()),
            ("credential_spec", self.credential_spec.is_some()),
            ("develop", self.develop.is_some()),
            ("gpus", self.gpus.is_some()),
            ("models", self.models.is_some()),
            ("post_start", self.post_start.is_some()),
            ("pre_stop", self.pre_stop.is_some()),
            ("provider", self.provider.is_some()),
            ("storage_opt", self.storage_opt.is_some()),
            ("label_file", self.label_file.is_some()),
            ("use_api_socket", self.use_api_socket.is_some()),
            ("isolation", self.isolation.is_some()),
            ("device_cgroup_rules", !self.device_cgroup_rules.is_empty()),
            // Every container gets private IPC and PID namespaces.
            (
                "ipc",
                self.ipc
                    .as_deref()
                    .is_some_and(|m| m != "private" && m != "shareable"),
            ),
            ("pid", self.pid.is_some()),
            ("annotations", self.annotations.is_some()),
            ("cpu_count", self.cpu_count.is_some()),
            ("cpu_percent", self.cpu_percent.is_some()),
            ("cpu_rt_period", self.cpu_rt_period.is_some()),
            ("cpu_rt_runtime", self.cpu_rt_runtime.is_some()),
            (
                "cpu_period",
                self.cpu_period.is_some() && self.cpu_quota.is_none(),
            ),
            ("domainname", self.domainname.is_some()),
            ("external_links", !self.external_links.is_empty()),
            ("group_add", !self.group_add.is_empty()),
            ("mem_reservation", self.mem_reservation.is_some()),
            ("mem_swappiness", self.mem_swappiness.is_some()),
            ("memswap_limit", self.memswap_limit.is_some()),
            ("oom_kill_disable", self.oom_kill_disable.is_some()),
            ("oom_score_adj", self.oom_score_adj.is_some()),
            ("userns_mode", self.userns_mode.is_some()),
            ("uts", self.uts.is_some()),
        ];
        out.extend(raw.iter().filter(|(_, set)| *set).map(|(k, _)| *k));
        if self.security_opt.iter().any(|o| {
            berth_runtime::container::SecurityOpt::parse(o)
                == Ok(berth_runtime::container::SecurityOpt::NotApplied)
        }) {
            out.push("security_opt apparmor/label (berth loads no AppArmor or SELinux policy)");
        }
        if self.logging.as_ref().is_some_and(|l| {
            !matches!(
                l.driver.as_deref(),
                None | Some("json-file") | Some("local")
            ) || l.options.keys().any(|k| k != "max-size" && k != "max-file")
        }) {
            out.push("logging (drivers other than json-file/local, options other than max-size/max-file)");
        }
        if matches!(
            self.pull_policy,
            Some(PullPolicy::Daily) | Some(PullPolicy::Weekly)
        ) {
            out.push("pull_policy daily/weekly (treated as missing)");
        }
        if let Some(p) = self.platform.as_deref() {
            let host = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            };
            if !(p == "linux" || p.starts_with(&format!("linux/{host}"))) {
                out.push("platform (images run on the host's own platform)");
            }
        }
        if let Some(d) = &self.deploy {
            if d.placement.is_some() {
                out.push("deploy.placement");
            }
            if d.update_config.is_some() {
                out.push("deploy.update_config");
            }
            if d.rollback_config.is_some() {
                out.push("deploy.rollback_config");
            }
            if d.mode.as_deref().is_some_and(|m| m != "replicated") {
                out.push("deploy.mode");
            }
            if let Some(r) = &d.resources
                && [&r.limits, &r.reservations]
                    .into_iter()
                    .flatten()
                    .any(|l| l.devices.is_some() || l.generic_resources.is_some())
            {
                out.push("deploy.resources.devices");
            }
        }
        if let Some(b) = &self.build {
            for (k, set) in [
                ("build.ssh", b.ssh.is_some()),
                ("build.secrets", b.secrets.is_some()),
                ("build.platforms", b.platforms.is_some()),
                ("build.additional_contexts", b.additional_contexts.is_some()),
                ("build.cache_to", !b.cache_to.is_empty()),
                ("build.entitlements", b.entitlements.is_some()),
            ] {
                if set {
                    out.push(k);
                }
            }
        }
        out
    }
}

/// Doubles every `$` in string values, as `docker compose config` does, so a printed (already
/// interpolated) model can be loaded again without being interpolated twice.
pub fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Sequence(seq) => seq.iter_mut().for_each(escape_dollars),
        Value::Mapping(m) => m.values_mut().for_each(escape_dollars),
        Value::Tagged(t) => escape_dollars(&mut t.value),
        _ => {}
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

impl Project {
    /// Every key the model holds that berth does not run yet, by path; the engine refuses or
    /// warns about these by name instead of ignoring them.
    pub fn unsupported(&self) -> Vec<Unsupported> {
        let mut out = Vec::new();
        for (name, svc) in &self.services {
            for key in svc.unsupported_keys() {
                out.push(Unsupported {
                    path: format!("services.{name}.{key}"),
                });
            }
            // File-based secrets and configs are bind mounts of the host file, as with
            // Docker Compose: their owner and mode are the file's.
            for (kind, refs) in [("secrets", &svc.secrets), ("configs", &svc.configs)] {
                for (i, r) in refs.iter().enumerate() {
                    for (key, set) in [
                        ("uid", r.uid.is_some()),
                        ("gid", r.gid.is_some()),
                        ("mode", r.mode.is_some()),
                    ] {
                        if set {
                            out.push(Unsupported {
                                path: format!("services.{name}.{kind}[{i}].{key}"),
                            });
                        }
                    }
                }
            }
        }
        for (name, svc) in &self.services {
            for (net, opt) in &svc.networks {
                let Some(o) = opt else { continue };
                for (key, set) in [
                    ("link_local_ips", !o.link_local_ips.is_empty()),
                    ("gw_priority", o.gw_priority.is_some()),
                    ("interface_name", o.interface_name.is_some()),
                    ("driver_opts", !o.driver_opts.is_empty()),
                ] {
                    if set {
                        out.push(Unsupported {
                            path: format!("services.{name}.networks.{net}.{key}"),
                        });
                    }
                }
            }
        }
        for (name, n) in &self.networks {
            if let Some(d) = n.driver.as_deref()
                && d != "bridge"
            {
                out.push(Unsupported {
                    path: format!("networks.{name}.driver={d}"),
                });
            }
            for key in n
                .driver_opts
                .keys()
                .filter(|k| *k != "com.docker.network.driver.mtu")
            {
                out.push(Unsupported {
                    path: format!("networks.{name}.driver_opts.{key}"),
                });
            }
            if n.enable_ipv4 == Some(false) {
                out.push(Unsupported {
                    path: format!("networks.{name}.enable_ipv4=false (networks are always IPv4)"),
                });
            }
        }
        for (name, v) in &self.volumes {
            if let Some(d) = v.driver.as_deref()
                && d != "local"
            {
                out.push(Unsupported {
                    path: format!("volumes.{name}.driver={d}"),
                });
            }
            if bind_device(&v.driver_opts).is_none() {
                for key in v.driver_opts.keys() {
                    out.push(Unsupported {
                        path: format!("volumes.{name}.driver_opts.{key}"),
                    });
                }
            }
        }
        for (kind, map) in [("configs", &self.configs), ("secrets", &self.secrets)] {
            for (name, o) in map {
                if o.external || o.driver.is_some() || o.template_driver.is_some() {
                    out.push(Unsupported {
                        path: format!("{kind}.{name} (external or driver-based)"),
                    });
                }
            }
        }
        out
    }

    /// The project as a YAML tree, with `x-*` extension fields put back (top level and services),
    /// as `berth config` prints it.
    pub fn to_yaml_value(&self) -> Result<Value, yaml_serde::Error> {
        let mut v = yaml_serde::to_value(self)?;
        if let Some(m) = v.as_mapping_mut() {
            for (k, x) in &self.extensions {
                m.insert(Value::String(k.clone()), x.clone());
            }
            if let Some(Value::Mapping(services)) = m.get_mut("services") {
                for (name, svc) in &self.services {
                    if let Some(Value::Mapping(sm)) = services.get_mut(name.as_str()) {
                        for (k, x) in &svc.extensions {
                            sm.insert(Value::String(k.clone()), x.clone());
                        }
                    }
                }
            }
        }
        Ok(v)
    }

    /// The image a service runs: `image:`, else the name berth gives a built image
    /// (`<project>-<service>`, as compose does).
    pub fn image_of(&self, service: &str) -> Option<String> {
        let svc = self.services.get(service)?;
        Some(
            svc.image
                .clone()
                .unwrap_or_else(|| format!("{}-{}", self.name, service)),
        )
    }

    /// The name of container `index` (1-based) of a service: `container_name` when set, else
    /// `<project>-<service>-<index>` as compose v2 names them.
    pub fn container_name(&self, service: &str, index: u32) -> String {
        match self
            .services
            .get(service)
            .and_then(|s| s.container_name.clone())
        {
            Some(n) => n,
            None => format!("{}-{}-{}", self.name, service, index),
        }
    }

    /// Every profile named by any service, active or not, sorted.
    pub fn all_profiles(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .services
            .values()
            .chain(self.disabled_services.values())
            .flat_map(|s| s.profiles.iter().cloned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// The host directory of a local volume declared as a bind (`driver_opts: {type: none, o: bind,
/// device: PATH}`, the usual way to give a named volume a fixed place on the host).
pub fn bind_device(opts: &BTreeMap<String, String>) -> Option<&str> {
    let bind = opts.get("type").map(String::as_str) == Some("none")
        && opts.get("o").is_some_and(|o| {
            o.split(',')
                .any(|x| x.trim() == "bind" || x.trim() == "rbind")
        });
    let only = opts
        .keys()
        .all(|k| matches!(k.as_str(), "type" | "o" | "device"));
    (bind && only)
        .then(|| opts.get("device").map(String::as_str))
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_device_only_for_the_plain_bind_form() {
        let opts = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let bind = opts(&[("type", "none"), ("o", "bind"), ("device", "/srv/x")]);
        assert_eq!(bind_device(&bind), Some("/srv/x"));
        let rbind = opts(&[("type", "none"), ("o", "rw,rbind"), ("device", "/srv/x")]);
        assert_eq!(bind_device(&rbind), Some("/srv/x"));
        let tmpfs = opts(&[("type", "tmpfs"), ("o", "size=1m"), ("device", "tmpfs")]);
        assert_eq!(bind_device(&tmpfs), None);
        let extra = opts(&[
            ("type", "none"),
            ("o", "bind"),
            ("device", "/x"),
            ("uid", "1"),
        ]);
        assert_eq!(bind_device(&extra), None);
    }

    #[test]
    fn helpers() {
        let mut s = Service::default();
        assert_eq!(s.restart_policy(), Restart::No);
        s.restart = Some("on-failure:3".into());
        assert_eq!(s.restart_policy(), Restart::OnFailure(Some(3)));
        s.restart = Some("unless-stopped".into());
        assert_eq!(s.restart_policy(), Restart::UnlessStopped);
        assert_eq!(s.stop_timeout().as_secs(), 10);
        assert_eq!(s.replicas(), 1);
        s.scale = Some(2);
        assert_eq!(s.replicas(), 2);
        s.links = vec!["db:database".into()];
        s.volumes_from = vec!["data:ro".into(), "container:other".into()];
        s.network_mode = Some("service:vpn".into());
        assert_eq!(s.dependencies(), ["data", "db", "vpn"]);
        let mut p = Project {
            name: "demo".into(),
            ..Default::default()
        };
        p.services.insert("web".into(), s.clone());
        assert_eq!(p.container_name("web", 2), "demo-web-2");
        assert_eq!(p.image_of("web").as_deref(), Some("demo-web"));
    }
}
