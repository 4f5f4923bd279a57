//! `berth container …`: single containers. The CLI drives the runtime library
//! directly against `--root`/`--run` (containers run under their shims, no daemon needed),
//! from an image or a plain `--rootfs` directory. What needs the daemon goes through it: bridge
//! networks and published ports (netd and the DNS live there: `POST /v1/container/connect`,
//! `/disconnect`, `/rename`) and restart policies (`POST /v1/engine`).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{Context, bail};
use berth_runtime::container::logs::{self, LogOptions, StdSink};
use berth_runtime::container::{
    ExecConfig, MountSpec, RootfsSource, Runtime, RuntimeError, Status,
};
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::api::container::{ContainerNetworks, CreateContainer, Created};
#[cfg(test)]
use crate::engine::container_spec::{Context as SpecContext, translate};

mod attach;
mod block_io_flags;
pub(crate) mod config;
mod listing;
mod run;

use attach::*;
use config::*;
pub(crate) use listing::stats;
use listing::*;
pub(crate) use run::start_foreground;
use run::*;

/// `berth container` subcommands.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and start a container
    Run(Box<RunArgs>),
    /// Create a container without starting it
    Create(Box<RunArgs>),
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(LsArgs),
    /// Print a container's logs
    Logs(LogsArgs),
    /// Start stopped containers
    Start {
        /// Attach to the output and exit with the container's status
        #[arg(short, long)]
        attach: bool,
        /// Attach stdin too
        #[arg(short, long)]
        interactive: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Stop running containers (stop signal, then SIGKILL after the grace period)
    Stop(StopArgs),
    /// Restart containers
    Restart(StopArgs),
    /// Send a signal to running containers
    Kill {
        /// Signal name or number
        #[arg(short = 's', long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove containers
    Rm {
        /// Kill a running container first
        #[arg(short, long)]
        force: bool,
        /// Also remove the container's anonymous volumes
        #[arg(short, long)]
        volumes: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Run a command in a running container
    Exec(ExecArgs),
    /// Wait for containers to stop and print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show a container's configuration and state as JSON
    Inspect {
        /// A Go-template subset per container, e.g. '{{.State.Status}}' or
        /// '{{.NetworkSettings.IPAddress}}'
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show a container's processes
    Top { container: String },
    /// Remove every stopped container
    Prune {
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
    /// List what a container changed against its image (A added, C changed, D deleted)
    Diff { container: String },
    /// List a container's published ports: `port CONTAINER [PORT[/PROTO]]`
    Port {
        container: String,
        /// Only this container port
        port: Option<String>,
    },
    /// Copy files between a container and the host: `cp CONTAINER:PATH HOSTDIR` or
    /// `cp HOSTPATH CONTAINER:DIR`
    Cp { src: String, dst: String },
    /// Write a container's root filesystem as a tar archive
    Export {
        /// Write to a file instead of standard output
        #[arg(short, long)]
        output: Option<PathBuf>,
        container: String,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Make an image of a container's changes: `commit [-c INSTR] [-m MSG] CONTAINER [REPO[:TAG]]`
    Commit {
        /// Dockerfile instruction to apply (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, STOPSIGNAL,
        /// USER, VOLUME, WORKDIR); repeatable
        #[arg(short, long)]
        change: Vec<String>,
        /// Commit message (the history comment)
        #[arg(short, long)]
        message: Option<String>,
        /// Author
        #[arg(short, long)]
        author: Option<String>,
        /// Pause the container while committing (not supported yet: false is required for a running container)
        #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set)]
        pause: bool,
        container: String,
        reference: Option<String>,
    },
    /// Show CPU, memory, pids, network and block I/O of running containers
    Stats {
        /// Print one sample and exit
        #[arg(long = "no-stream")]
        no_stream: bool,
        /// table, json (one object per line) or a Go template over Docker's stats fields
        #[arg(long)]
        format: Option<String>,
        /// Containers (default: all running)
        containers: Vec<String>,
    },
    /// Attach to a running container's output (and stdin)
    Attach {
        /// Do not forward stdin
        #[arg(long = "no-stdin")]
        no_stdin: bool,
        container: String,
    },
}

/// Options of `run` and `create`.
#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Run in the background and print the container id
    #[arg(short, long)]
    detach: bool,
    /// Keep stdin open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (KEY=VALUE, or KEY to pass the host's value)
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read environment variables from a file
    #[arg(long = "env-file")]
    env_file: Vec<PathBuf>,
    /// Bind mount or named volume: SRC:DST[:ro]
    #[arg(short, long = "volume")]
    volume: Vec<String>,
    /// Mount a tmpfs: DST[:OPTIONS]
    #[arg(long)]
    tmpfs: Vec<String>,
    /// type=bind|volume|tmpfs,source=..,target=..[,readonly][,tmpfs-size=..][,tmpfs-mode=..]
    #[arg(long)]
    mount: Vec<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<PathBuf>,
    /// User: name, uid, uid:gid or name:group
    #[arg(short, long)]
    user: Option<String>,
    #[arg(long)]
    hostname: Option<String>,
    /// Override the image's entrypoint
    #[arg(long)]
    entrypoint: Option<String>,
    /// Run a minimal init as PID 1 that reaps zombies and forwards signals
    #[arg(long)]
    init: bool,
    /// Network: bridge (the default; made on first use), a network made by `berth network
    /// create`, host, none, or container:NAME; repeat it for more bridge networks
    #[arg(long, alias = "net")]
    network: Vec<String>,
    /// Extra DNS name of the container on its network
    #[arg(long = "network-alias", alias = "net-alias")]
    network_alias: Vec<String>,
    /// Static IPv4 address on the network
    #[arg(long)]
    ip: Option<std::net::Ipv4Addr>,
    /// MAC address of the container's interface on the network
    #[arg(long = "mac-address")]
    mac_address: Option<String>,
    /// Extra link-local address (169.254.0.0/16 or fe80::/10) on that interface (repeatable)
    #[arg(long = "link-local-ip", value_parser = crate::cli::network::link_local_ip)]
    link_local_ip: Vec<std::net::IpAddr>,
    /// Mount every volume and bind mount of another container: NAME[:ro|rw]
    #[arg(long = "volumes-from")]
    volumes_from: Vec<String>,
    /// PID namespace: host or container:NAME (the container's own when unset)
    #[arg(long)]
    pid: Option<String>,
    /// IPC namespace: private, shareable, none, host or container:NAME (private when unset)
    #[arg(long)]
    ipc: Option<String>,
    /// UTS namespace: host (the container's own when unset)
    #[arg(long)]
    uts: Option<String>,
    /// cgroup namespace: host or private (the default)
    #[arg(long)]
    cgroupns: Option<String>,
    /// NIS domain name of the container
    #[arg(long)]
    domainname: Option<String>,
    /// OCI annotation KEY=VALUE of the container
    #[arg(long)]
    annotation: Vec<String>,
    /// Write the container id to this file (refused if it exists)
    #[arg(long)]
    cidfile: Option<PathBuf>,
    /// Publish a port: [HOST_IP:][HOST_PORT]:CONTAINER_PORT[/tcp|udp] (ranges as
    /// 8000-8001:80-81); without a host port, a free one is picked
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Add NAME:IP to /etc/hosts (IP `host-gateway`: the network's gateway, the host)
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// DNS server: on a bridge network the embedded DNS forwards the container's outside
    /// names to it (loopback addresses are the host's); otherwise it goes in resolv.conf
    #[arg(long)]
    dns: Vec<std::net::IpAddr>,
    /// DNS search domain
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    /// resolv.conf option (ndots:2 ...)
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
    /// Publish every port the image exposes on a free host port
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs (e.g. 1.5)
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(long = "cpu-shares")]
    cpu_shares: Option<u64>,
    /// CPUs in which to allow execution (0-3, 0,1)
    #[arg(long = "cpuset-cpus")]
    cpuset_cpus: Option<String>,
    /// Real-time scheduling period in microseconds (cgroup v1 with RT group scheduling)
    #[arg(long = "cpu-rt-period")]
    cpu_rt_period: Option<u64>,
    /// Real-time runtime in microseconds per period, for SCHED_FIFO/SCHED_RR tasks
    #[arg(long = "cpu-rt-runtime")]
    cpu_rt_runtime: Option<u64>,
    /// The cgroup the container's cgroup is made under
    #[arg(long = "cgroup-parent")]
    cgroup_parent: Option<String>,
    /// Extra group of the container's process (name or number)
    #[arg(long = "group-add")]
    group_add: Vec<String>,
    /// The OOM killer's score adjustment (-1000 to 1000)
    #[arg(long = "oom-score-adj", allow_hyphen_values = true)]
    oom_score_adj: Option<i64>,
    /// Soft memory limit (e.g. 256m)
    #[arg(long = "memory-reservation")]
    memory_reservation: Option<String>,
    /// Memory plus swap (e.g. 1g; -1: unlimited swap)
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    memory_swap: Option<String>,
    /// Swappiness 0-100 (-1: the kernel's)
    #[arg(long = "memory-swappiness", allow_hyphen_values = true)]
    memory_swappiness: Option<i64>,
    /// Maximum number of tasks
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
    #[command(flatten)]
    block_io: block_io_flags::BlockIoFlags,
    /// Host device HOST[:CONTAINER][:PERMISSIONS] (permissions r, w, m)
    #[arg(long)]
    device: Vec<String>,
    /// Device cgroup rule `TYPE MAJOR:MINOR ACCESS` (c 1:3 mr)
    #[arg(long = "device-cgroup-rule")]
    device_cgroup_rule: Vec<String>,
    #[arg(long = "cap-add")]
    cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    cap_drop: Vec<String>,
    /// Give the container every capability and no seccomp or masked paths
    #[arg(long)]
    privileged: bool,
    /// Mount the root filesystem read-only
    #[arg(long = "read-only")]
    read_only: bool,
    /// seccomp=unconfined, no-new-privileges[=true|false]
    #[arg(long = "security-opt")]
    security_opt: Vec<String>,
    /// name=soft[:hard]
    #[arg(long)]
    ulimit: Vec<String>,
    /// Size of /dev/shm
    #[arg(long = "shm-size")]
    shm_size: Option<String>,
    /// Namespaced kernel parameter KEY=VALUE
    #[arg(long)]
    sysctl: Vec<String>,
    /// Signal that `stop` sends
    #[arg(long = "stop-signal")]
    stop_signal: Option<String>,
    /// Seconds `stop` waits before SIGKILL
    #[arg(long = "stop-timeout")]
    stop_timeout: Option<u64>,
    #[arg(short, long = "label")]
    label: Vec<String>,
    /// json-file log options: max-size=10m, max-file=3
    #[arg(long = "log-opt")]
    log_opt: Vec<String>,
    /// Restart policy: no, always, unless-stopped, on-failure[:N] (enforced by the daemon)
    #[arg(long, default_value = "no")]
    restart: String,
    /// Pull the image first: missing (when not in the store), always, never
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Run the bundle with an external OCI runtime: crun or runc (default: berth's own)
    #[arg(long)]
    runtime: Option<String>,
    /// Use DIR as the root filesystem instead of an image (as podman's --rootfs)
    #[arg(long, value_name = "DIR")]
    rootfs: Option<PathBuf>,
    /// Read labels from a file of KEY=VALUE lines
    #[arg(long = "label-file", value_name = "FILE")]
    label_file: Vec<PathBuf>,
    /// Attach to STDIN, STDOUT or STDERR (repeatable; default: stdout and stderr)
    #[arg(short, long, value_name = "STREAM")]
    attach: Vec<String>,
    /// Command that checks the container's health
    #[arg(long = "health-cmd", value_name = "CMD")]
    health_cmd: Option<String>,
    /// Time between health checks (30s, 1m)
    #[arg(long = "health-interval", value_name = "DURATION")]
    health_interval: Option<String>,
    /// Maximum time one health check may take
    #[arg(long = "health-timeout", value_name = "DURATION")]
    health_timeout: Option<String>,
    /// Consecutive failures before the container is unhealthy
    #[arg(long = "health-retries", value_name = "N")]
    health_retries: Option<i64>,
    /// Grace period during which failed checks do not count
    #[arg(long = "health-start-period", value_name = "DURATION")]
    health_start_period: Option<String>,
    /// Time between checks during the start period
    #[arg(long = "health-start-interval", value_name = "DURATION")]
    health_start_interval: Option<String>,
    /// Disable the image's HEALTHCHECK
    #[arg(long = "no-healthcheck")]
    no_healthcheck: bool,
    /// IMAGE [COMMAND [ARG...]], or COMMAND [ARG...] with --rootfs
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

/// Options of `ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show all containers (default shows running ones)
    #[arg(short, long)]
    all: bool,
    /// Only print ids
    #[arg(short, long)]
    quiet: bool,
    /// `json` (one object per line), or a Go-template subset: '{{.ID}} {{.Names}}',
    /// '{{json .}}', 'table {{.Names}}\t{{.Status}}' (fields ID, Names, Image, Command,
    /// CreatedAt, RunningFor, Status, State, Ports, Networks, Labels, Mounts)
    #[arg(long)]
    format: Option<String>,
    /// Do not truncate the id and command
    #[arg(long = "no-trunc")]
    no_trunc: bool,
    /// KEY=VALUE: name, id, status, label (KEY or KEY=VALUE), network, ancestor, exited;
    /// the same key twice matches either, different keys must all match
    #[arg(short, long)]
    filter: Vec<String>,
    /// Show the last N created containers (all states)
    #[arg(short = 'n', long = "last")]
    last: Option<usize>,
    /// Show the last created container (all states)
    #[arg(short, long)]
    latest: bool,
}

/// Options of `logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow the output while the container runs
    #[arg(short, long)]
    follow: bool,
    /// Only the last N lines ("all" for everything)
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Only logs since a time (RFC 3339) or a duration ago (10m, 1h30m)
    #[arg(long)]
    since: Option<String>,
    /// Only logs before a time (RFC 3339) or a duration ago
    #[arg(long)]
    until: Option<String>,
    container: String,
}

/// Options of `stop` and `restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing
    #[arg(short, long)]
    time: Option<u64>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// Options of `exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(short, long)]
    interactive: bool,
    #[arg(short, long)]
    tty: bool,
    #[arg(short, long)]
    detach: bool,
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short, long)]
    workdir: Option<PathBuf>,
    #[arg(short, long = "env")]
    env: Vec<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

/// The runtime of the instance selected by `--root`/`--run`; the shim is this very binary.
pub(crate) fn runtime(g: &GlobalOpts) -> anyhow::Result<Runtime> {
    let exe = std::env::current_exe().context("finding the berth executable for the shim")?;
    Ok(Runtime::new(crate::engine::stack::runtime_config(
        &g.root, &g.run, exe,
    )))
}

/// An error that carries the exit status to use (Docker's 125/126/127 or the container's).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ExitWith {
    pub code: u8,
    pub message: String,
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

pub fn run(g: &GlobalOpts, cmd: ContainerCommand) -> anyhow::Result<ExitCode> {
    let rt = runtime(g)?;
    match dispatch(&rt, g, cmd) {
        // Start failures keep Docker's status (125 berth, 126 not executable, 127 not found).
        Err(e) if error_exit_code(&e).is_some() => {
            eprintln!("berth: {e:#}");
            Ok(ExitCode::from(error_exit_code(&e).unwrap_or(125)))
        }
        other => other,
    }
}

fn dispatch(rt: &Runtime, g: &GlobalOpts, cmd: ContainerCommand) -> anyhow::Result<ExitCode> {
    let rt = rt.clone();
    match cmd {
        ContainerCommand::Run(a) => run_container(&rt, g, *a, true),
        ContainerCommand::Create(a) => run_container(&rt, g, *a, false),
        ContainerCommand::Ls(a) => ls(&rt, g, a),
        ContainerCommand::Logs(a) => show_logs(&rt, a),
        ContainerCommand::Start {
            attach,
            interactive,
            containers,
        } => {
            if attach || interactive {
                let [c] = containers.as_slice() else {
                    bail!("start -a/-i takes exactly one container");
                };
                let rec = rt.resolve(c)?;
                let stdin = interactive && rec.config.open_stdin;
                let (_, watch, stream) = rt.start_attached(&rec, stdin).map_err(start_error)?;
                attach_loop(&rt, &rec, stream, stdin)?;
                return Ok(exit_code(watch.wait()?.code));
            }
            for c in containers {
                let rec = rt.resolve(&c)?;
                rt.start(&rec).map_err(start_error)?;
                println!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Stop(a) => {
            for c in &a.containers {
                let rec = rt.resolve(c)?;
                rt.stop(&rec, a.time)?;
                println!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Restart(a) => {
            for c in &a.containers {
                let rec = rt.resolve(c)?;
                rt.stop(&rec, a.time)?;
                rt.start(&rec).map_err(start_error)?;
                println!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Kill { signal, containers } => {
            let sig = parse_signal(&signal)?;
            for c in containers {
                let rec = rt.resolve(&c)?;
                rt.kill(&rec, sig)?;
                println!("{c}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Rm {
            force,
            volumes,
            containers,
        } => {
            let mut failed = false;
            for c in containers {
                match remove_container(&rt, g, &c, force, volumes) {
                    Ok(()) => println!("{c}"),
                    Err(e) => {
                        eprintln!("berth: {c}: {e:#}");
                        failed = true;
                    }
                }
            }
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ContainerCommand::Exec(a) => {
            let rec = rt.resolve(&a.container)?;
            let code = rt.exec(
                &rec,
                &ExecConfig {
                    args: a.command,
                    env: resolve_env(&a.env),
                    user: a.user,
                    working_dir: a.workdir,
                    tty: a.tty,
                    interactive: a.interactive,
                    detach: a.detach,
                },
            )?;
            Ok(exit_code(code))
        }
        ContainerCommand::Wait { containers } => {
            let mut last = 0;
            for c in containers {
                let rec = rt.resolve(&c)?;
                let info = rt.wait(&rec)?;
                println!("{}", info.code);
                last = info.code;
            }
            let _ = last;
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Inspect { format, containers } => {
            let mut networks = container_networks(g);
            let mut out = Vec::new();
            for c in containers {
                let rec = rt.resolve(&c)?;
                let st = rt.state(&rec)?;
                out.push(serde_json::json!({
                    "Id": rec.id,
                    "Name": rec.config.name,
                    "State": {
                        "Status": st.status.as_str(),
                        "Running": st.status == Status::Running && rt.is_running(&rec),
                        "Pid": st.pid,
                        "ExitCode": st.exit_code,
                        "OOMKilled": st.oom_killed,
                        "Error": st.error,
                        "StartedAt": st.started_at.map(fmt_time),
                        "FinishedAt": st.finished_at.map(fmt_time),
                    },
                    "Created": fmt_time(st.created_at),
                    "Config": rec.config,
                    "HostConfig": {"Annotations": rec.config.annotations},
                    "NetworkSettings": networks.remove(&rec.id).map_or_else(
                        || serde_json::json!({"Networks": {}, "Ports": {}, "IPAddress": ""}),
                        |n| n.settings,
                    ),
                    "Mounts": crate::api::mounts::docker_mounts(&rt, &rec),
                    "Paths": {
                        "Dir": rec.dir,
                        "Log": rec.log_path(),
                        "NetNs": rec.netns,
                        "Cgroup": rec.cgroup,
                    },
                }));
            }
            match format {
                Some(f) => {
                    let tpl = super::format::Template::parse(&f)?;
                    for v in &out {
                        println!("{}", tpl.render(v));
                    }
                }
                None => println!("{}", serde_json::to_string_pretty(&out)?),
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Cp { src, dst } => {
            match (src.split_once(':'), dst.split_once(':')) {
                (Some((c, cpath)), None) => {
                    let rec = rt.resolve(c)?;
                    rt.copy_out(&rec, Path::new(cpath), Path::new(&dst))?;
                }
                (None, Some((c, cdir))) => {
                    let rec = rt.resolve(c)?;
                    rt.copy_in(&rec, Path::new(&src), Path::new(cdir))?;
                }
                _ => bail!("cp: exactly one of SRC and DST must be CONTAINER:PATH"),
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Export { output, container } => {
            let rec = rt.resolve(&container)?;
            match output {
                Some(p) => {
                    let mut f = std::fs::File::create(&p)
                        .with_context(|| format!("creating {}", p.display()))?;
                    rt.export(&rec, &mut f)?;
                }
                None => rt.export(&rec, &mut std::io::stdout().lock())?,
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Commit {
            change,
            message,
            author,
            pause,
            container,
            reference,
        } => {
            let rec = rt.resolve(&container)?;
            // As docker: a running container is frozen while its upper dir is read, so the
            // layer never catches a file mid-write; thawed again whatever the outcome.
            let freeze = pause && rt.is_running(&rec) && !rt.is_paused(&rec);
            if freeze {
                rt.pause(&rec)
                    .with_context(|| format!("pausing {container} for the commit"))?;
            }
            let committed =
                commit_container(g, &rt, &rec, &container, change, message, author, reference);
            if freeze {
                rt.unpause(&rec)
                    .with_context(|| format!("unpausing {container} after the commit"))?;
            }
            println!("{}", committed?);
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Rename {
            container,
            new_name,
        } => {
            let rec = rt.resolve(&container)?;
            rt.rename(&rec, &new_name)?;
            if container_networks(g).contains_key(&rec.id) {
                daemon_post::<serde_json::Value>(g, "/container/rename", &rec.id)
                    .context("updating the container's DNS names")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Stats {
            no_stream,
            format,
            containers,
        } => stats(&rt, &containers, no_stream, format.as_deref()),
        ContainerCommand::Attach {
            no_stdin,
            container,
        } => {
            let rec = rt.resolve(&container)?;
            let stdin = !no_stdin && rec.config.open_stdin;
            let stream = rt.attach(&rec, stdin)?;
            attach_loop(&rt, &rec, stream, stdin)?;
            let info = rt.wait(&rec)?;
            Ok(exit_code(info.code))
        }
        ContainerCommand::Prune { force: _ } => {
            println!("Deleted Containers:");
            let mut n = 0;
            let mut failed = false;
            // Half-made ones (a creator killed mid-way) first: no record lists them; the
            // daemon's sweep drops their endpoints once their dir and netns are gone.
            for h in rt.half_made() {
                rt.discard(&h);
                println!("{}", h.id);
                n += 1;
            }
            rt.repair_index();
            for (rec, _) in rt.list() {
                if rt.is_running(&rec) {
                    continue;
                }
                match remove_container(&rt, g, &rec.id, false, false) {
                    Ok(()) => {
                        println!("{}", rec.id);
                        n += 1;
                    }
                    Err(e) => {
                        eprintln!("berth: {}: {e:#}", rec.config.name);
                        failed = true;
                    }
                }
            }
            println!("Total: {n} container(s)");
            Ok(if failed {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        ContainerCommand::Diff { container } => {
            let rec = rt.resolve(&container)?;
            for c in rt.changes(&rec)? {
                println!("{} {}", c.kind, c.path.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Port { container, port } => {
            let rec = rt.resolve(&container)?;
            let settings = container_networks(g)
                .remove(&rec.id)
                .map(|n| n.settings)
                .unwrap_or_default();
            let want = port.map(|p| {
                if p.contains('/') {
                    p
                } else {
                    format!("{p}/tcp")
                }
            });
            let mut found = false;
            if let Some(map) = settings["Ports"].as_object() {
                for (key, list) in map {
                    if want.as_ref().is_some_and(|w| w != key) {
                        continue;
                    }
                    for b in list.as_array().into_iter().flatten() {
                        found = true;
                        let (ip, hp) = (
                            b["HostIp"].as_str().unwrap_or_default(),
                            b["HostPort"].as_str().unwrap_or_default(),
                        );
                        if want.is_some() {
                            println!("{ip}:{hp}");
                        } else {
                            println!("{key} -> {ip}:{hp}");
                        }
                    }
                }
            }
            if !found && let Some(w) = want {
                bail!("no public port {w} published for {container}");
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Top { container } => {
            let rec = rt.resolve(&container)?;
            if !rt.is_running(&rec) {
                bail!("container {container} is not running");
            }
            print_top(&rt, &rec);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn human_bytes(b: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < units.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", units[u])
    }
}

fn fmt_time(t: SystemTime) -> String {
    humantime::format_rfc3339_nanos(t).to_string()
}

/// A start failure keeps the container's exit code (126/127 ...) for the CLI.
fn start_error(e: RuntimeError) -> anyhow::Error {
    let code = e.exit_code().clamp(0, 255) as u8;
    anyhow::Error::new(ExitWith {
        code,
        message: e.to_string(),
    })
}

/// The hidden `berth shim DIR` entry point.
pub fn shim(dir: &Path) -> ExitCode {
    exit_code(berth_runtime::container::shim::main(dir))
}

/// The hidden `berth copy-helper DIR out|in PATH` entry point.
pub fn copy_helper(dir: &Path, direction: &str, path: &Path) -> ExitCode {
    exit_code(berth_runtime::container::copy::helper_main(
        dir, direction, path,
    ))
}

/// The hidden `berth exec-helper DIR JSON` entry point.
pub fn exec_helper(dir: &Path, json: &str) -> anyhow::Result<ExitCode> {
    let exec: ExecConfig = serde_json::from_str(json).context("exec-helper: bad exec request")?;
    Ok(exit_code(berth_runtime::container::exec::main(dir, &exec)))
}

/// Finds an [`ExitWith`] in the chain and returns its exit code.
fn error_exit_code(err: &anyhow::Error) -> Option<u8> {
    err.chain()
        .find_map(|e| e.downcast_ref::<ExitWith>())
        .map(|e| e.code)
}

/// Prints a container's processes as PID, PPID and command line (`container top`, `top`).
pub(crate) fn print_top(rt: &Runtime, rec: &berth_runtime::container::Record) {
    println!("{:>8} {:>8}  CMD", "PID", "PPID");
    let mut pids = rt.pids(rec);
    pids.sort();
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .unwrap_or("?")
            .to_string();
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|b| {
                b.split(|c| *c == 0)
                    .filter(|s| !s.is_empty())
                    .map(|s| String::from_utf8_lossy(s).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        println!("{pid:>8} {ppid:>8}  {cmd}");
    }
}

/// Writes the container's changes as an image; returns its id.
#[allow(clippy::too_many_arguments)]
fn commit_container(
    g: &GlobalOpts,
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    container: &str,
    changes: Vec<String>,
    message: Option<String>,
    author: Option<String>,
    reference: Option<String>,
) -> anyhow::Result<String> {
    let store = berth_runtime::image::ImageStore::open(&g.root)
        .with_context(|| format!("image store under {}", g.root.display()))?;
    let opts = berth_runtime::container::commit::CommitOptions {
        changes,
        message,
        author,
        reference,
    };
    let img = rt
        .commit(&store, rec, &opts)
        .with_context(|| format!("cannot commit container {container}"))?;
    Ok(img.id.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_ulimits_parse() {
        assert_eq!(parse_size("64m").expect("64m"), 64 << 20);
        assert_eq!(parse_size("1g").expect("1g"), 1 << 30);
        assert_eq!(parse_size("512").expect("512"), 512);
        // One grammar with Compose files: binary suffixes spelled out too.
        assert_eq!(parse_size("2GiB").expect("2GiB"), 2 << 30);
        assert!(parse_size("2 furlongs").is_err());
        let u = parse_ulimit("nofile=1024:2048").expect("ulimit");
        assert_eq!((u.soft, u.hard), (1024, 2048));
        assert_eq!(parse_ulimit("core=unlimited").expect("ulimit").soft, -1);
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(parse_signal("term").expect("sig"), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").expect("sig"), libc::SIGKILL);
        assert_eq!(parse_signal("9").expect("sig"), 9);
    }

    #[test]
    fn publish_forms_follow_docker() {
        let (key, b) = publish_binding("127.0.0.1:8080:80/udp").expect("full");
        assert_eq!(
            (key.as_str(), b.host_ip.as_str(), b.host_port.as_str()),
            ("80/udp", "127.0.0.1", "8080")
        );
        let (key, b) = publish_binding("80").expect("container port only");
        assert_eq!((key.as_str(), b.host_port.as_str()), ("80/tcp", ""));
        let (key, b) = publish_binding("127.0.0.1::53/udp").expect("ip, no host port");
        assert_eq!((key.as_str(), b.host_ip.as_str()), ("53/udp", "127.0.0.1"));
        let (key, b) = publish_binding("8000-8001:80-81").expect("range");
        assert_eq!(
            (key.as_str(), b.host_port.as_str()),
            ("80-81/tcp", "8000-8001")
        );
        assert!(publish_binding("x:80").is_err());
    }

    #[test]
    fn both_front_ends_refuse_an_unknown_security_opt_naming_it() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            run: RunArgs,
        }
        let cli = Cli::parse_from([
            "x",
            "--rootfs",
            "/",
            "--network",
            "none",
            "--security-opt",
            "bogus=1",
            "--memory",
            "2GiB",
            "true",
        ]);
        let (name, spec) = run_spec(&cli.run).expect("lowered");
        assert_eq!(spec.host_config.memory, 2 << 30);
        let err = translate(&name, &spec, &SpecContext::default()).expect_err("refused");
        assert!(err.to_string().contains("bogus=1"), "{err}");
    }

    #[test]
    fn mount_flags_parse_like_docker() {
        let m = parse_mount("type=volume,source=data,target=/data,readonly").expect("volume");
        assert!(m.r#type == "volume" && m.source == "data" && m.read_only);
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m,tmpfs-mode=1770").expect("tmpfs");
        let t = m.tmpfs_options.expect("tmpfs options");
        assert_eq!((t.size_bytes, t.mode), (Some(1 << 20), Some(0o1770)));
        assert!(parse_mount("type=bind,source=/nonexistent-x,target=/x").is_err());
        assert!(parse_mount("type=volume,target=rel").is_err());
    }
}
