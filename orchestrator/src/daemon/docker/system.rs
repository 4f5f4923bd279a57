//! `GET /info`: what `docker info` prints, from the instance's real state (its containers
//! and images on disk, the host's kernel, cgroups and memory), not constants where a real
//! value exists.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde::Serialize;

use super::errors::ApiError;
use super::{Docker, host};

/// The answer of `GET /info` (the fields of Docker's `SystemInfo` that `docker info` and
/// clients read).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Info {
    #[serde(rename = "ID")]
    id: String,
    containers: usize,
    containers_running: usize,
    containers_paused: usize,
    containers_stopped: usize,
    images: usize,
    driver: &'static str,
    driver_status: Vec<[String; 2]>,
    plugins: Plugins,
    memory_limit: bool,
    swap_limit: bool,
    cpu_cfs_period: bool,
    cpu_cfs_quota: bool,
    #[serde(rename = "CPUShares")]
    cpu_shares: bool,
    #[serde(rename = "CPUSet")]
    cpu_set: bool,
    pids_limit: bool,
    oom_kill_disable: bool,
    #[serde(rename = "IPv4Forwarding")]
    ipv4_forwarding: bool,
    bridge_nf_iptables: bool,
    bridge_nf_ip6tables: bool,
    debug: bool,
    #[serde(rename = "NFd")]
    nfd: usize,
    #[serde(rename = "NGoroutines")]
    ngoroutines: usize,
    system_time: String,
    logging_driver: &'static str,
    cgroup_driver: &'static str,
    cgroup_version: &'static str,
    #[serde(rename = "NEventsListener")]
    nevents_listener: usize,
    kernel_version: String,
    operating_system: String,
    #[serde(rename = "OSVersion")]
    os_version: String,
    #[serde(rename = "OSType")]
    os_type: &'static str,
    architecture: String,
    index_server_address: &'static str,
    registry_config: RegistryConfig,
    #[serde(rename = "NCPU")]
    ncpu: usize,
    mem_total: u64,
    docker_root_dir: String,
    http_proxy: String,
    https_proxy: String,
    no_proxy: String,
    name: String,
    labels: Vec<String>,
    experimental_build: bool,
    server_version: &'static str,
    runtimes: BTreeMap<String, RuntimeEntry>,
    default_runtime: &'static str,
    swarm: Swarm,
    live_restore_enabled: bool,
    isolation: &'static str,
    init_binary: &'static str,
    containerd_commit: Commit,
    runc_commit: Commit,
    init_commit: Commit,
    security_options: Vec<String>,
    #[serde(rename = "CDISpecDirs")]
    cdi_spec_dirs: Vec<String>,
    warnings: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Plugins {
    volume: Vec<&'static str>,
    network: Vec<&'static str>,
    authorization: Option<Vec<String>>,
    log: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct RegistryConfig {
    #[serde(rename = "InsecureRegistryCIDRs")]
    insecure_registry_cidrs: Vec<String>,
    index_configs: BTreeMap<String, serde_json::Value>,
    mirrors: Vec<String>,
}

#[derive(Debug, Serialize)]
struct RuntimeEntry {
    path: String,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct Swarm {
    #[serde(rename = "NodeID")]
    node_id: &'static str,
    node_addr: &'static str,
    local_node_state: &'static str,
    control_available: bool,
    error: &'static str,
}

#[derive(Debug, Serialize)]
struct Commit {
    #[serde(rename = "ID")]
    id: &'static str,
}

/// How many containers are in each state.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    pub total: usize,
    pub running: usize,
    pub paused: usize,
    pub stopped: usize,
}

/// Counts the instance's containers: running, paused, and the rest (created or exited) as
/// stopped, as Docker counts them.
pub(super) fn counts(rt: &berth_runtime::container::Runtime) -> Counts {
    let mut c = Counts::default();
    for (rec, _) in rt.list() {
        c.total += 1;
        if rt.is_paused(&rec) {
            c.paused += 1;
        } else if rt.is_running(&rec) {
            c.running += 1;
        } else {
            c.stopped += 1;
        }
    }
    c
}

/// Image ids in the store (an image with three tags counts once, as in Docker).
fn image_count(root: &std::path::Path) -> Result<usize, ApiError> {
    let store = berth_runtime::image::ImageStore::open(root)
        .map_err(|e| ApiError::internal(format!("opening the image store: {e}")))?;
    let list = store
        .list()
        .map_err(|e| ApiError::internal(format!("listing images: {e}")))?;
    let ids: std::collections::BTreeSet<_> = list.into_iter().map(|s| s.id).collect();
    Ok(ids.len())
}

/// `GET /info`.
pub(super) async fn info(docker: &Arc<Docker>) -> Result<Info, ApiError> {
    let d = docker.clone();
    let (counts, images) = tokio::task::spawn_blocking(move || {
        let c = counts(&d.rt);
        image_count(&d.shared.opts.root).map(|i| (c, i))
    })
    .await
    .map_err(|e| ApiError::internal(format!("counting containers: {e}")))??;
    let root = &docker.shared.opts.root;
    let controllers = host::cgroup_controllers();
    let has = |c: &str| controllers.contains(c);
    let cgroup_v2 = super::super::cgroup_mode() == "v2";
    let (os, os_version) = host::os_release();
    let exe = std::env::current_exe()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "berth".into());
    let mut runtimes = BTreeMap::new();
    runtimes.insert("berth".to_string(), RuntimeEntry { path: exe });
    for (name, bin) in [("crun", "crun"), ("runc", "runc")] {
        if let Some(p) = on_path(bin) {
            runtimes.insert(name.to_string(), RuntimeEntry { path: p });
        }
    }
    let bridge_nf = host::sysctl_on("/proc/sys/net/bridge/bridge-nf-call-iptables");
    let bridge_nf6 = host::sysctl_on("/proc/sys/net/bridge/bridge-nf-call-ip6tables");
    let mut warnings = Vec::new();
    if !host::swap_limit() {
        warnings.push("WARNING: No swap limit support".to_string());
    }
    Ok(Info {
        id: host::engine_id(root),
        containers: counts.total,
        containers_running: counts.running,
        containers_paused: counts.paused,
        containers_stopped: counts.stopped,
        images,
        // Containers run on kernel overlayfs over one directory per image layer.
        driver: "overlayfs",
        driver_status: vec![[
            "Backing Filesystem".to_string(),
            host::backing_fs(root).to_string(),
        ]],
        plugins: Plugins {
            volume: vec!["local"],
            network: vec!["bridge", "host", "none"],
            authorization: None,
            log: vec!["json-file"],
        },
        memory_limit: has("memory"),
        swap_limit: host::swap_limit(),
        cpu_cfs_period: has("cpu"),
        cpu_cfs_quota: has("cpu"),
        cpu_shares: has("cpu"),
        cpu_set: has("cpuset"),
        pids_limit: has("pids"),
        // cgroup v1's memory.oom_control, which `OomKillDisable` writes.
        oom_kill_disable: berth_runtime::container::block_io::host_support().oom_kill_disable,
        ipv4_forwarding: host::sysctl_on("/proc/sys/net/ipv4/ip_forward"),
        bridge_nf_iptables: bridge_nf,
        bridge_nf_ip6tables: bridge_nf6,
        debug: false,
        nfd: host::open_fds(),
        ngoroutines: 0,
        system_time: humantime::format_rfc3339_nanos(SystemTime::now()).to_string(),
        // Container logs are Docker's json-file lines.
        logging_driver: "json-file",
        // berth writes the cgroup tree itself, not through systemd.
        cgroup_driver: "cgroupfs",
        cgroup_version: if cgroup_v2 { "2" } else { "1" },
        nevents_listener: docker.events.listeners(),
        kernel_version: host::kernel_version(),
        operating_system: os,
        os_version,
        os_type: "linux",
        architecture: host::machine(),
        index_server_address: "https://index.docker.io/v1/",
        registry_config: RegistryConfig {
            insecure_registry_cidrs: vec!["127.0.0.0/8".into(), "::1/128".into()],
            index_configs: BTreeMap::new(),
            mirrors: Vec::new(),
        },
        ncpu: host::ncpu(),
        mem_total: host::mem_total(),
        docker_root_dir: root.display().to_string(),
        http_proxy: proxy("HTTP_PROXY"),
        https_proxy: proxy("HTTPS_PROXY"),
        no_proxy: proxy("NO_PROXY"),
        name: host::hostname(),
        labels: Vec::new(),
        experimental_build: false,
        server_version: env!("CARGO_PKG_VERSION"),
        runtimes,
        default_runtime: "berth",
        swarm: Swarm {
            node_id: "",
            node_addr: "",
            local_node_state: "inactive",
            control_available: false,
            error: "",
        },
        // Containers outlive the daemon (their shims keep them), as with live-restore.
        live_restore_enabled: true,
        isolation: "",
        init_binary: "",
        containerd_commit: Commit { id: "" },
        runc_commit: Commit { id: "" },
        init_commit: Commit { id: "" },
        // berth's own seccomp filter (Docker's profile) and a cgroup namespace per container.
        security_options: vec![
            "name=seccomp,profile=builtin".to_string(),
            "name=cgroupns".to_string(),
        ],
        cdi_spec_dirs: Vec::new(),
        warnings,
    })
}

/// The daemon's proxy setting, as dockerd reports its own environment.
fn proxy(key: &str) -> String {
    std::env::var(key)
        .or_else(|_| std::env::var(key.to_lowercase()))
        .unwrap_or_default()
}

/// The full path of an executable found on PATH.
fn on_path(bin: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}
