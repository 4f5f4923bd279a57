//! "A container to create", in the shape of Docker's ContainerCreate body: the Config fields at
//! the top, `HostConfig` and `NetworkingConfig`, with Docker's JSON names.
//!
//! Both front ends lower into it (`container run/create` flags, Compose services) and one
//! translation in the engine turns it into the runtime's container config, so the two cannot
//! drift; a Docker-compatible API can take the same body as it comes. Only the subset berth runs
//! is typed: any other field a request sets (not null, false, zero or empty) is refused by its
//! name, never dropped.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};

/// Docker's `{}` value of the `Volumes` and `ExposedPorts` maps.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// A `null` in the body is the field's default (Docker's clients send both).
pub(crate) fn nullable<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// The fields of a request that berth does not type (and so cannot run).
pub type Unsupported = BTreeMap<String, serde_json::Value>;

/// Body of a container create (`POST /v1/containers/create`): Docker's Config fields,
/// `HostConfig` and `NetworkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSpec {
    /// Host name inside the container (empty: the container's name or short id).
    #[serde(deserialize_with = "nullable")]
    pub hostname: String,
    /// NIS domain name inside the container (compose `domainname`, `--domainname`).
    #[serde(deserialize_with = "nullable")]
    pub domainname: String,
    /// `name`, `uid`, `uid:gid` or `name:group` (empty: the image's).
    #[serde(deserialize_with = "nullable")]
    pub user: String,
    /// Whether the client attaches stdin/stdout/stderr (it does so itself, after the create).
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    /// A pseudo-terminal for the process.
    pub tty: bool,
    /// Keep stdin open (`-i`).
    pub open_stdin: bool,
    /// End the container's stdin when the attached client's input ends (`docker run -i`).
    /// berth's shim always does so for a pipe stdin, so both values run as that.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stdin_once: bool,
    /// `KEY=VALUE` entries on top of the image's.
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    /// The command (replaces the image's Cmd when set).
    pub cmd: Option<Vec<String>>,
    /// The entrypoint (replaces the image's, and its Cmd, when set).
    pub entrypoint: Option<Vec<String>>,
    /// Image reference (empty with `Rootfs`).
    #[serde(deserialize_with = "nullable")]
    pub image: String,
    /// Paths that get an anonymous volume (as the image's VOLUME).
    #[serde(deserialize_with = "nullable")]
    pub volumes: BTreeMap<String, Empty>,
    /// Working directory (empty: the image's).
    #[serde(deserialize_with = "nullable")]
    pub working_dir: String,
    #[serde(deserialize_with = "nullable")]
    pub labels: BTreeMap<String, String>,
    /// Signal name or number `stop` sends.
    pub stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL.
    pub stop_timeout: Option<u64>,
    /// `80/tcp` keys: ports `PublishAllPorts` publishes besides the image's.
    #[serde(deserialize_with = "nullable")]
    pub exposed_ports: BTreeMap<String, Empty>,
    /// How to probe the container's health (unset: the image's HEALTHCHECK).
    pub healthcheck: Option<HealthConfig>,
    #[serde(deserialize_with = "nullable")]
    pub host_config: HostConfig,
    #[serde(deserialize_with = "nullable")]
    pub networking_config: NetworkingConfig,
    /// berth's extension (podman's `--rootfs`): run this host directory instead of an image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rootfs: Option<PathBuf>,
    /// What berth does not run: refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// Docker's `Healthcheck` (HealthConfig): durations in nanoseconds, 0 inherits the image's
/// value (and Docker's default without one).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HealthConfig {
    /// `[]` (the image's test), `["NONE"]`, `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    #[serde(deserialize_with = "nullable")]
    pub test: Vec<String>,
    pub interval: i64,
    pub timeout: i64,
    /// Consecutive failures before unhealthy.
    pub retries: i64,
    /// Grace period during which failures do not count.
    pub start_period: i64,
    /// Time between probes during the start period.
    pub start_interval: i64,
}

/// Whether a `NetworkMode` joins bridge networks (not none, host or container:X), which
/// the daemon attaches after the create.
pub fn is_bridge_mode(mode: &str) -> bool {
    !matches!(mode, "none" | "host")
        && !mode.starts_with("container:")
        && !mode.starts_with("service:")
}

/// Docker's HostConfig, the subset berth runs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct HostConfig {
    /// Legacy links `NAME[:ALIAS]` (`--link`): ALIAS resolves to NAME for this container
    /// alone, on the networks it shares with NAME.
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<String>,
    /// `SRC:DST[:OPTS]` bind mounts and named volumes (`-v`).
    #[serde(deserialize_with = "nullable")]
    pub binds: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub mounts: Vec<Mount>,
    /// Target -> comma-separated mount options.
    #[serde(deserialize_with = "nullable")]
    pub tmpfs: BTreeMap<String, String>,
    /// `bridge`/`default`, a network name, `host`, `none`, `container:NAME`.
    #[serde(deserialize_with = "nullable")]
    pub network_mode: String,
    /// `80/tcp` -> where it is published (an empty HostPort: a free port).
    #[serde(deserialize_with = "nullable")]
    pub port_bindings: BTreeMap<String, Vec<PortBinding>>,
    /// Publish every exposed port on a free host port.
    pub publish_all_ports: bool,
    #[serde(deserialize_with = "nullable")]
    pub restart_policy: RestartPolicy,
    /// Remove the container when it exits.
    pub auto_remove: bool,
    /// `NAME[:ro|rw]`: mount every volume and bind of another container.
    #[serde(deserialize_with = "nullable")]
    pub volumes_from: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cap_add: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cap_drop: Vec<String>,
    /// DNS servers (addresses).
    #[serde(deserialize_with = "nullable")]
    pub dns: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns_options: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub dns_search: Vec<String>,
    /// `NAME:IP` lines for /etc/hosts (`host-gateway`: the network's gateway).
    #[serde(deserialize_with = "nullable")]
    pub extra_hosts: Vec<String>,
    pub privileged: bool,
    pub readonly_rootfs: bool,
    #[serde(deserialize_with = "nullable")]
    pub security_opt: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub ulimits: Vec<UlimitSpec>,
    /// Bytes of /dev/shm (0: Docker's 64 MiB).
    pub shm_size: u64,
    #[serde(deserialize_with = "nullable")]
    pub sysctls: BTreeMap<String, String>,
    /// Run a minimal init as PID 1.
    pub init: Option<bool>,
    /// OCI runtime: `berth` (own), `crun` or `runc`.
    pub runtime: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub log_config: LogConfig,
    /// Memory limit in bytes (0: none).
    pub memory: i64,
    /// Soft memory limit in bytes (0: none).
    pub memory_reservation: i64,
    /// Memory plus swap in bytes (0: no swap beyond the limit, -1: unlimited).
    pub memory_swap: i64,
    /// Swappiness 0-100 (-1 or unset: the kernel's).
    pub memory_swappiness: Option<i64>,
    /// The OOM killer's score adjustment, -1000..1000 (0: the daemon's own).
    pub oom_score_adj: i64,
    /// The cgroup the container's is made under (empty: berth's own).
    #[serde(deserialize_with = "nullable")]
    pub cgroup_parent: String,
    /// Extra groups of the container's process (names or numbers).
    #[serde(deserialize_with = "nullable")]
    pub group_add: Vec<String>,
    /// CPUs in billionths (0: none).
    pub nano_cpus: i64,
    /// Relative CPU weight (0: default).
    pub cpu_shares: i64,
    /// The CFS period and quota, the same limit as NanoCpus when NanoCpus is 0.
    pub cpu_period: i64,
    pub cpu_quota: i64,
    /// CPUs allowed (`0-3`, `0,1`).
    #[serde(deserialize_with = "nullable")]
    pub cpuset_cpus: String,
    /// Real-time scheduling period in microseconds (0: the kernel's default).
    pub cpu_realtime_period: i64,
    /// Real-time runtime in microseconds per period (0: none): what the container's
    /// `SCHED_FIFO`/`SCHED_RR` tasks may use.
    pub cpu_realtime_runtime: i64,
    /// Maximum number of tasks.
    pub pids_limit: Option<i64>,
    /// Pause the tasks instead of killing one when the memory limit is reached (cgroup v1).
    pub oom_kill_disable: Option<bool>,
    /// Relative block I/O weight, 10-1000 (0: none).
    pub blkio_weight: u16,
    /// Per-device block I/O weights.
    #[serde(deserialize_with = "nullable")]
    pub blkio_weight_device: Vec<WeightDevice>,
    /// Bytes per second a device may be read at.
    #[serde(deserialize_with = "nullable")]
    pub blkio_device_read_bps: Vec<ThrottleDevice>,
    /// Bytes per second a device may be written at.
    #[serde(deserialize_with = "nullable")]
    pub blkio_device_write_bps: Vec<ThrottleDevice>,
    /// Read operations per second on a device.
    #[serde(rename = "BlkioDeviceReadIOps", deserialize_with = "nullable")]
    pub blkio_device_read_iops: Vec<ThrottleDevice>,
    /// Write operations per second on a device.
    #[serde(rename = "BlkioDeviceWriteIOps", deserialize_with = "nullable")]
    pub blkio_device_write_iops: Vec<ThrottleDevice>,
    /// Host devices to give the container (`--device`).
    #[serde(deserialize_with = "nullable")]
    pub devices: Vec<DeviceMapping>,
    /// Extra device cgroup rules (`c 1:3 mr`, `--device-cgroup-rule`).
    #[serde(deserialize_with = "nullable")]
    pub device_cgroup_rules: Vec<String>,
    /// OCI annotations of the container (`--annotation`, compose `annotations:`).
    #[serde(deserialize_with = "nullable")]
    pub annotations: BTreeMap<String, String>,
    /// The PID namespace: empty (its own), `host`, or `container:NAME`'s.
    #[serde(deserialize_with = "nullable")]
    pub pid_mode: String,
    /// The IPC namespace and /dev/shm: empty or `private` (its own), `shareable` (its own,
    /// joinable), `none` (no /dev/shm), `host`, or `container:NAME`'s.
    #[serde(deserialize_with = "nullable")]
    pub ipc_mode: String,
    /// The UTS namespace: empty (its own) or `host`.
    #[serde(rename = "UTSMode", deserialize_with = "nullable")]
    pub uts_mode: String,
    /// The user namespace: empty or `host`, the host's (berth remaps no users).
    #[serde(deserialize_with = "nullable")]
    pub userns_mode: String,
    /// The cgroup namespace: empty or `private` (its own), or `host`.
    #[serde(deserialize_with = "nullable")]
    pub cgroupns_mode: String,
    /// What berth does not run: refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// A block device's weight (Docker's `WeightDevice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WeightDevice {
    /// The device node on the host (`/dev/sda`).
    #[serde(deserialize_with = "nullable")]
    pub path: String,
    pub weight: u16,
}

/// A block device's rate limit, per second (Docker's `ThrottleDevice`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ThrottleDevice {
    /// The device node on the host (`/dev/sda`).
    #[serde(deserialize_with = "nullable")]
    pub path: String,
    pub rate: u64,
}

/// A bind mount's options (Docker's `BindOptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BindOptions {
    /// `rprivate` (empty), `private`, `rshared`, `shared`, `rslave`, `slave`.
    #[serde(deserialize_with = "nullable")]
    pub propagation: String,
    /// Bind the source's own mount only, not the mounts under it.
    pub non_recursive: bool,
    /// With `ReadOnly`: the mounts under the source stay writable.
    pub read_only_non_recursive: bool,
    /// With `ReadOnly`: the mounts under the source are read-only too, or the create fails.
    pub read_only_force_recursive: bool,
    /// What berth does not run (`CreateMountpoint`...): refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// A volume mount's options (Docker's `VolumeOptions`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct VolumeOptions {
    /// Leave an empty volume empty instead of filling it from the image.
    pub no_copy: bool,
    /// Mount only this directory of the volume (relative, inside it).
    #[serde(deserialize_with = "nullable")]
    pub subpath: String,
    /// What berth does not run (`DriverConfig`, `Labels`): refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// One host device (Docker's `DeviceMapping`): the node, its path in the container (empty:
/// the host's) and its cgroup permissions (empty: `rwm`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeviceMapping {
    #[serde(deserialize_with = "nullable")]
    pub path_on_host: String,
    #[serde(deserialize_with = "nullable")]
    pub path_in_container: String,
    #[serde(deserialize_with = "nullable")]
    pub cgroup_permissions: String,
}

/// One `HostConfig.Mounts` entry (`--mount`, Compose long syntax).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Mount {
    /// `bind`, `volume` or `tmpfs`.
    #[serde(deserialize_with = "nullable")]
    pub r#type: String,
    /// Host path (bind) or volume name (volume; empty: an anonymous volume).
    #[serde(deserialize_with = "nullable")]
    pub source: String,
    #[serde(deserialize_with = "nullable")]
    pub target: String,
    pub read_only: bool,
    pub tmpfs_options: Option<TmpfsOptions>,
    /// A volume's options (`NoCopy`, `Subpath`).
    pub volume_options: Option<VolumeOptions>,
    /// A bind mount's options (`Propagation`).
    pub bind_options: Option<BindOptions>,
    /// What berth does not run: refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// Size and mode of a tmpfs mount.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TmpfsOptions {
    pub size_bytes: Option<u64>,
    pub mode: Option<u32>,
    /// Other mount options, each `[KEY]` or `[KEY, VALUE]` (`[["noexec"]]`).
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub options: Vec<Vec<String>>,
}

/// Where one container port is published.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct PortBinding {
    /// Host address (empty: every address).
    #[serde(deserialize_with = "nullable")]
    pub host_ip: String,
    /// Host port (empty or 0: a free one).
    #[serde(deserialize_with = "nullable")]
    pub host_port: String,
}

/// When the daemon restarts the container.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    /// `no` (or empty), `always`, `unless-stopped`, `on-failure`.
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// With `on-failure`: at most this many restarts (0: no limit).
    pub maximum_retry_count: u32,
}

impl RestartPolicy {
    /// Parses Docker's `--restart` / Compose's `restart:` grammar: `no`, `always`,
    /// `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, count) = match s.split_once(':') {
            Some(("on-failure", n)) => (
                "on-failure",
                n.parse::<u32>().map_err(|_| {
                    format!("restart policy {s:?}: the retry count {n:?} is not a number")
                })?,
            ),
            _ => (s, 0),
        };
        if !matches!(name, "" | "no" | "always" | "unless-stopped" | "on-failure") {
            return Err(format!(
                "restart policy {s:?}: expected no, always, unless-stopped or on-failure[:N]"
            ));
        }
        Ok(RestartPolicy {
            name: name.to_string(),
            maximum_retry_count: count,
        })
    }

    /// The policy as the daemon's restart label spells it (`on-failure:3`); `None` for no.
    pub fn label(&self) -> Option<String> {
        match self.name.as_str() {
            "" | "no" => None,
            "on-failure" if self.maximum_retry_count > 0 => {
                Some(format!("on-failure:{}", self.maximum_retry_count))
            }
            n => Some(n.to_string()),
        }
    }
}

/// One resource limit (`--ulimit nofile=1024:2048`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UlimitSpec {
    #[serde(deserialize_with = "nullable")]
    pub name: String,
    /// -1: unlimited.
    pub soft: i64,
    pub hard: i64,
}

/// The log driver and its options (`json-file`/`local`: max-size, max-file).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(deserialize_with = "nullable")]
    pub r#type: String,
    #[serde(deserialize_with = "nullable")]
    pub config: BTreeMap<String, String>,
}

/// The networks to join besides the one `NetworkMode` names.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    #[serde(deserialize_with = "nullable")]
    pub endpoints_config: BTreeMap<String, EndpointSettings>,
}

/// How the container joins one network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    /// Extra DNS names on this network.
    #[serde(deserialize_with = "nullable")]
    pub aliases: Vec<String>,
    /// Legacy links on this network, as `HostConfig.Links` (Docker's create on a
    /// user-defined network puts them here).
    #[serde(deserialize_with = "nullable")]
    pub links: Vec<String>,
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpam>,
    /// Static MAC address (empty: derived from the address).
    #[serde(deserialize_with = "nullable")]
    pub mac_address: String,
    /// Which network carries the default route: the highest wins; on ties a dual-stack
    /// network, then the network whose name sorts first (Docker 28's order).
    #[serde(deserialize_with = "nullable")]
    pub gw_priority: i64,
    /// Driver options of the endpoint: berth runs [`IFNAME_OPT`] (the interface's name in
    /// the container) and [`SYSCTLS_OPT`] (its sysctls); any other is refused by name.
    #[serde(deserialize_with = "nullable")]
    pub driver_opts: BTreeMap<String, String>,
    /// What berth does not run: refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// The endpoint driver option naming the interface inside the container (Docker's, which
/// Compose sets from `interface_name`).
pub const IFNAME_OPT: &str = "com.docker.network.endpoint.ifname";

/// The endpoint driver option setting sysctls of the container's interface on that network:
/// a comma-separated list of `net.<family>.<conf|neigh>.IFNAME.<key>=<value>`, `IFNAME`
/// standing for the interface (Docker's `docker run --network name=N,sysctl=...`).
pub const SYSCTLS_OPT: &str = "com.docker.network.endpoint.sysctls";

/// The endpoint driver options berth runs.
pub const ENDPOINT_OPTS: [&str; 2] = [IFNAME_OPT, SYSCTLS_OPT];

/// Reads a [`SYSCTLS_OPT`] value into (name, value) pairs; the error names the entry at
/// fault. The placeholder is taken in any case (the docker CLI lowercases the values of
/// `--network driver-opt=`) and kept as `IFNAME`.
pub fn endpoint_sysctls(list: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (k, v) = item
            .split_once('=')
            .ok_or_else(|| format!("{item:?} is not NAME=VALUE"))?;
        let k = k
            .split('.')
            .map(|p| {
                if p.eq_ignore_ascii_case("IFNAME") {
                    "IFNAME"
                } else {
                    p
                }
            })
            .collect::<Vec<_>>()
            .join(".");
        let k = k.as_str();
        berth_netd::check_sysctl(k, v)?;
        if out.iter().any(|(x, _)| x == k) {
            return Err(format!("{k} is given twice"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// A static address on a network.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EndpointIpam {
    #[serde(rename = "IPv4Address", deserialize_with = "nullable")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address", deserialize_with = "nullable")]
    pub ipv6_address: String,
    /// Extra link-local addresses (169.254.0.0/16, fe80::/10) on the container's interface.
    #[serde(
        rename = "LinkLocalIPs",
        deserialize_with = "nullable",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub link_local_ips: Vec<String>,
    /// What berth does not run: refused by name when set.
    #[serde(flatten)]
    pub unsupported: Unsupported,
}

/// A field of the request that berth does not run, by its path in the body.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} is not supported by berth (set to {value})")]
pub struct UnsupportedField {
    /// `HostConfig.Devices`, `NetworkingConfig.EndpointsConfig.front.Links` ...
    pub field: String,
    /// The value as sent.
    pub value: String,
}

/// Whether a value sent for an untyped field leaves it at its default (clients send whole
/// structs with zero values).
pub(crate) fn is_unset(v: &serde_json::Value) -> bool {
    use serde_json::Value;
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(is_unset),
    }
}

/// Whether a `HostConfig` field berth does not run carries what Docker's clients send in
/// every create body to ask for nothing: the client's terminal size (berth sizes the tty
/// when a client attaches).
fn client_default(field: &str, _: &serde_json::Value) -> bool {
    field == "ConsoleSize"
}

fn refuse(prefix: &str, extra: &Unsupported) -> Result<(), UnsupportedField> {
    let host_config = prefix == "HostConfig.";
    match extra
        .iter()
        .find(|(k, v)| !(is_unset(v) || (host_config && client_default(k, v))))
    {
        Some((k, v)) => Err(UnsupportedField {
            field: format!("{prefix}{k}"),
            value: v.to_string(),
        }),
        None => Ok(()),
    }
}

impl ContainerSpec {
    /// The first field set that berth does not run, by name.
    pub fn check_supported(&self) -> Result<(), UnsupportedField> {
        refuse("", &self.unsupported)?;
        refuse("HostConfig.", &self.host_config.unsupported)?;
        for (i, m) in self.host_config.mounts.iter().enumerate() {
            refuse(&format!("HostConfig.Mounts[{i}]."), &m.unsupported)?;
            if let Some(o) = &m.volume_options {
                refuse(
                    &format!("HostConfig.Mounts[{i}].VolumeOptions."),
                    &o.unsupported,
                )?;
            }
            if let Some(o) = &m.bind_options {
                refuse(
                    &format!("HostConfig.Mounts[{i}].BindOptions."),
                    &o.unsupported,
                )?;
            }
        }
        for (name, ep) in &self.networking_config.endpoints_config {
            let prefix = format!("NetworkingConfig.EndpointsConfig.{name}.");
            refuse(&prefix, &ep.unsupported)?;
            if let Some(ipam) = &ep.ipam_config {
                refuse(&format!("{prefix}IPAMConfig."), &ipam.unsupported)?;
            }
        }
        Ok(())
    }
}

/// Body of `POST /v1/containers/create`: the spec and the name (Docker's `?name=`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CreateContainer {
    /// Unique name; generated when empty.
    #[serde(default)]
    pub name: String,
    pub spec: ContainerSpec,
}

/// Answer of `POST /v1/containers/create` (Docker's ContainerCreateResponse).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Created {
    /// The new container's id.
    pub id: String,
    /// What was accepted and not applied (AppArmor/SELinux options), for the client to show.
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// What the daemon knows of one container's networks (`GET /v1/containers/networks` answers
/// them by container id): the names and published ports `ls` shows, and inspect's
/// `NetworkSettings` in Docker's shape.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNetworks {
    /// Names of the networks it is on, in attach order.
    pub names: Vec<String>,
    /// Published ports, as typed mappings.
    pub ports: Vec<berth_netd::ports::PortMapping>,
    /// `{Networks, Ports, IPAddress}` as `docker inspect` shows them.
    pub settings: serde_json::Value,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_sysctls_are_read_checked_and_named() {
        let got = endpoint_sysctls(
            "net.ipv4.conf.IFNAME.log_martians=1, net.ipv6.conf.ifname.accept_ra=2",
        )
        .unwrap();
        assert_eq!(
            got,
            [
                ("net.ipv4.conf.IFNAME.log_martians".into(), "1".into()),
                ("net.ipv6.conf.IFNAME.accept_ra".into(), "2".into())
            ]
        );
        for (bad, want) in [
            ("net.ipv4.ip_forward=1", "not an interface sysctl"),
            ("kernel.pid_max=5", "not an interface sysctl"),
            ("net.ipv4.conf.IFNAME.x", "not NAME=VALUE"),
            (
                "net.ipv4.conf.IFNAME.x=1,net.ipv4.conf.IFNAME.x=2",
                "given twice",
            ),
            ("net.ipv4.conf.IFNAME.x=../1", "printable word"),
        ] {
            let e = endpoint_sysctls(bad).unwrap_err();
            assert!(e.contains(want), "{bad}: {e}");
        }
    }

    #[test]
    fn docker_bodies_decode_with_nulls_and_zero_values() {
        let body = r#"{"Hostname":"","Env":null,"Cmd":["true"],"Image":"alpine",
            "Volumes":{"/data":{}},"Domainname":"","HostConfig":{"Binds":null,
            "NetworkMode":"none","Devices":[],"OomKillDisable":false,"Memory":0,
            "RestartPolicy":{"Name":"","MaximumRetryCount":0}},"NetworkingConfig":null}"#;
        let spec: ContainerSpec = serde_json::from_str(body).expect("decodes");
        assert_eq!(spec.image, "alpine");
        assert!(spec.env.is_empty());
        assert_eq!(spec.host_config.network_mode, "none");
        assert!(spec.volumes.contains_key("/data"));
        spec.check_supported().expect("zero values are not a use");
    }

    #[test]
    fn fields_berth_does_not_run_are_refused_by_name() {
        let body = r#"{"Image":"alpine","HostConfig":{"CpusetMems":"0"}}"#;
        let spec: ContainerSpec = serde_json::from_str(body).expect("decodes");
        let err = spec.check_supported().expect_err("refused");
        assert_eq!(err.field, "HostConfig.CpusetMems");
        let body = r#"{"NetworkingConfig":{"EndpointsConfig":{"front":{"IPAMConfig":{"LinkLocalIPs":["169.254.1.1"],"Frob":1}}}}}"#;
        let spec: ContainerSpec = serde_json::from_str(body).expect("decodes");
        let err = spec.check_supported().expect_err("refused");
        assert_eq!(
            err.field,
            "NetworkingConfig.EndpointsConfig.front.IPAMConfig.Frob"
        );
    }

    #[test]
    fn restart_policies_parse_and_print_as_docker_spells_them() {
        let p = RestartPolicy::parse("on-failure:3").expect("valid");
        assert_eq!(p.maximum_retry_count, 3);
        assert_eq!(p.label().as_deref(), Some("on-failure:3"));
        assert_eq!(RestartPolicy::parse("no").expect("valid").label(), None);
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }
}
