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
    ContainerConfig, ExecConfig, MountSpec, NetworkMode, RootfsSource, Runtime, RuntimeConfig,
    RuntimeError, Status, Ulimit,
};
use clap::{Args, Subcommand};

use super::GlobalOpts;
use crate::engine::stack::{ContainerConnect, ContainerNetwork, DEFAULT_BRIDGE};
use berth_runtime::container::volumes::anonymous_name;

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
    /// Mount every volume and bind mount of another container: NAME[:ro|rw]
    #[arg(long = "volumes-from")]
    volumes_from: Vec<String>,
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
    /// Maximum number of tasks
    #[arg(long = "pids-limit")]
    pids_limit: Option<i64>,
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
    let mut cfg = RuntimeConfig::new(g.root.clone(), g.run.clone(), exe);
    // Lets test instances keep their cgroups apart (and prove they leave none).
    if let Ok(parent) = std::env::var("BERTH_CGROUP_PARENT")
        && !parent.is_empty()
    {
        cfg.cgroup_parent = parent;
    }
    Ok(Runtime::new(cfg))
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
        ContainerCommand::Ls(a) => ls(&rt, &g.root, a),
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
            let netd = netd_state(&g.root);
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
                    "NetworkSettings": network_settings(&netd, &rec.id),
                    "Mounts": inspect_mounts(&rt, &rec),
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
            if has_endpoints(&g.root, &rec.id) {
                daemon_post::<serde_json::Value>(g, "/container/rename", &rec.id)
                    .context("updating the container's DNS names")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Stats {
            no_stream,
            containers,
        } => stats(&rt, &containers, no_stream),
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
            let settings = network_settings(&netd_state(&g.root), &rec.id);
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

/// CPU % over a one-second sample, as `docker stats` (100 % = one CPU).
pub(crate) fn stats(rt: &Runtime, names: &[String], no_stream: bool) -> anyhow::Result<ExitCode> {
    loop {
        let recs: Vec<_> = if names.is_empty() {
            rt.list()
                .into_iter()
                .filter(|(r, _)| rt.is_running(r))
                .map(|(r, _)| r)
                .collect()
        } else {
            names
                .iter()
                .map(|n| rt.resolve(n))
                .collect::<Result<_, _>>()?
        };
        let first: Vec<_> = recs.iter().map(|r| rt.stats(r)).collect();
        let t0 = std::time::Instant::now();
        std::thread::sleep(Duration::from_secs(1));
        let dt = t0.elapsed().as_nanos() as f64;
        println!(
            "{:<12}  {:<20}  {:>7}  {:>22}  {:>6}  {:>20}  {:>20}  {:>5}",
            "CONTAINER ID",
            "NAME",
            "CPU %",
            "MEM USAGE / LIMIT",
            "MEM %",
            "NET I/O",
            "BLOCK I/O",
            "PIDS"
        );
        for (rec, before) in recs.iter().zip(first) {
            let (Some((a, _, _)), Some((b, rx, tx))) = (before, rt.stats(rec)) else {
                continue;
            };
            let cpu = (b.cpu_ns.saturating_sub(a.cpu_ns)) as f64 / dt * 100.0;
            let limit = b.memory_limit.unwrap_or_else(|| {
                // No limit: the host's memory, as Docker shows.
                std::fs::read_to_string("/proc/meminfo")
                    .ok()
                    .and_then(|m| {
                        m.lines()
                            .find_map(|l| l.strip_prefix("MemTotal:"))
                            .and_then(|v| v.trim().trim_end_matches(" kB").parse::<u64>().ok())
                    })
                    .map_or(0, |k| k * 1024)
            });
            let mem_pct = if limit > 0 {
                b.memory as f64 / limit as f64 * 100.0
            } else {
                0.0
            };
            println!(
                "{:<12}  {:<20}  {:>6.2}%  {:>22}  {:>5.2}%  {:>20}  {:>20}  {:>5}",
                &rec.id[..12],
                rec.config.name,
                cpu,
                format!("{} / {}", human_bytes(b.memory), human_bytes(limit)),
                mem_pct,
                format!("{} / {}", human_bytes(rx), human_bytes(tx)),
                format!("{} / {}", human_bytes(b.io_read), human_bytes(b.io_write)),
                b.pids
            );
        }
        if no_stream {
            return Ok(ExitCode::SUCCESS);
        }
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

/// Signal names (KILL, SIGTERM) or numbers.
fn parse_signal(s: &str) -> anyhow::Result<i32> {
    crate::engine::translate::parse_signal(s).ok_or_else(|| anyhow::anyhow!("unknown signal {s:?}"))
}

/// `KEY` alone takes the host's value (dropped when unset), as Docker does.
fn resolve_env(list: &[String]) -> Vec<String> {
    list.iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

/// A size as Compose files write it (`64m`, `1g`, `2GiB`, bytes): one grammar for both.
fn parse_size(s: &str) -> anyhow::Result<u64> {
    crate::compose::units::parse_size(s).map_err(anyhow::Error::msg)
}

fn parse_ulimit(s: &str) -> anyhow::Result<Ulimit> {
    let (name, vals) = s
        .split_once('=')
        .with_context(|| format!("invalid ulimit {s:?} (expected name=soft[:hard])"))?;
    let parse = |v: &str| -> anyhow::Result<u64> {
        if v == "-1" || v == "unlimited" {
            return Ok(u64::MAX);
        }
        v.parse()
            .with_context(|| format!("invalid ulimit value {v:?} in {s:?}"))
    };
    let (soft, hard) = match vals.split_once(':') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => (parse(vals)?, parse(vals)?),
    };
    Ok(Ulimit {
        name: name.to_string(),
        soft,
        hard,
    })
}

fn parse_volume(v: &str) -> anyhow::Result<MountSpec> {
    let parts: Vec<&str> = v.split(':').collect();
    let (src, dst, opts) = match parts.as_slice() {
        [src, dst] => (*src, *dst, ""),
        [src, dst, opts] => (*src, *dst, *opts),
        [dst] if dst.starts_with('/') => {
            return Ok(MountSpec::Volume {
                name: anonymous_name(),
                target: dst.into(),
                read_only: false,
            });
        }
        _ => bail!("invalid volume {v:?} (expected SRC:DST[:ro])"),
    };
    if !dst.starts_with('/') {
        bail!("invalid volume {v:?}: the container path must be absolute");
    }
    let read_only = opts.split(',').any(|o| o == "ro");
    if src.starts_with('/') || src.starts_with('.') {
        let source = std::fs::canonicalize(src)
            .with_context(|| format!("bind mount source {src:?} does not exist"))?;
        Ok(MountSpec::Bind {
            source,
            target: dst.into(),
            read_only,
        })
    } else {
        Ok(MountSpec::Volume {
            name: src.to_string(),
            target: dst.into(),
            read_only,
        })
    }
}

/// The image to run, pulled from its registry per `--pull` (missing, always, never).
fn image_for_run(
    store: &berth_runtime::image::ImageStore,
    image: &str,
    pull: &str,
) -> anyhow::Result<berth_runtime::image::Image> {
    let fetch = || {
        berth_runtime::image::registry::pull(store, image, &Default::default(), &|_| {})
            .with_context(|| format!("pulling {image}"))
    };
    match pull {
        "always" => fetch(),
        "missing" => match store.resolve(image) {
            Ok(img) => Ok(img),
            Err(_) => {
                eprintln!("Unable to find image '{image}' locally; pulling it");
                fetch().with_context(|| {
                    format!(
                        "image {image:?} is not in the store and could not be pulled; make it with \
                         `berth image load`, `import`, `build` or `bootstrap`"
                    )
                })
            }
        },
        "never" => store.resolve(image).with_context(|| {
            format!(
                "image {image:?}: not in the store (--pull never); get it with `berth image pull`, \
                 `load`, `import` or `bootstrap`"
            )
        }),
        other => bail!("--pull {other:?}: expected missing, always or never"),
    }
}

/// The volume name of a volume mount.
fn volume_name(m: &MountSpec) -> Option<String> {
    match m {
        MountSpec::Volume { name, .. } => Some(name.clone()),
        _ => None,
    }
}

/// Docker's `--mount` key=value syntax.
fn parse_mount(spec: &str) -> anyhow::Result<MountSpec> {
    let mut kind = "volume".to_string();
    let (mut source, mut target, mut read_only) = (None, None, false);
    let mut tmpfs_opts = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = part.split_once('=').unwrap_or((part, "true"));
        match k {
            "type" => kind = v.to_string(),
            "source" | "src" => source = Some(v.to_string()),
            "target" | "destination" | "dst" => target = Some(v.to_string()),
            "readonly" | "ro" => read_only = v != "false" && v != "0",
            "tmpfs-size" => tmpfs_opts.push(format!("size={v}")),
            "tmpfs-mode" => tmpfs_opts.push(format!("mode={v}")),
            other => bail!("--mount {spec:?}: option {other:?} is not supported"),
        }
    }
    let target = target.with_context(|| format!("--mount {spec:?}: target is required"))?;
    if !target.starts_with('/') {
        bail!("--mount {spec:?}: the target must be an absolute path");
    }
    Ok(match kind.as_str() {
        "bind" => {
            let src = source.with_context(|| format!("--mount {spec:?}: source is required"))?;
            MountSpec::Bind {
                source: std::fs::canonicalize(&src)
                    .with_context(|| format!("bind mount source {src:?} does not exist"))?,
                target: target.into(),
                read_only,
            }
        }
        "volume" => MountSpec::Volume {
            name: source.unwrap_or_else(anonymous_name),
            target: target.into(),
            read_only,
        },
        "tmpfs" => MountSpec::Tmpfs {
            target: target.into(),
            options: tmpfs_opts,
        },
        other => bail!("--mount {spec:?}: type {other:?} is not supported (bind, volume, tmpfs)"),
    })
}

/// The image a container runs, when it runs one (recorded so `image rm` knows it is in use).
type ImageId = Option<String>;

/// Refuses a control character in the flags whose values become lines of the container's
/// /etc/hosts, /etc/hostname or resolv.conf (or DNS names), before anything is made.
fn check_name_file_flags(a: &RunArgs) -> anyhow::Result<()> {
    use crate::engine::resolv::one_line;
    let lists: [(&str, &[String], &'static str); 4] = [
        ("--add-host", &a.add_host, "/etc/hosts"),
        ("--dns-search", &a.dns_search, "/etc/resolv.conf"),
        ("--dns-option", &a.dns_option, "/etc/resolv.conf"),
        ("--network-alias", &a.network_alias, "/etc/hosts"),
    ];
    if let Some(h) = &a.hostname {
        one_line("--hostname", h, "/etc/hostname")?;
    }
    for (flag, values, file) in lists {
        for v in values {
            one_line(flag, v, file)?;
        }
    }
    Ok(())
}

fn build_config(
    rt: &Runtime,
    root: &Path,
    a: &RunArgs,
) -> anyhow::Result<(ContainerConfig, ImageId)> {
    check_name_file_flags(a)?;
    let entrypoint = a
        .entrypoint
        .as_ref()
        .map(|ep| shell_words::split(ep).with_context(|| format!("entrypoint {ep:?}")))
        .transpose()?;
    let mut image_volumes: Vec<String> = Vec::new();
    let (mut cfg, image_id) = match &a.rootfs {
        Some(rootfs) => {
            let rootfs = std::fs::canonicalize(rootfs)
                .with_context(|| format!("rootfs directory {}", rootfs.display()))?;
            let mut args = entrypoint.unwrap_or_default();
            args.extend(a.args.iter().cloned());
            (ContainerConfig::new(RootfsSource::Dir(rootfs), args), None)
        }
        None => {
            let (image, cmd) = a
                .args
                .split_first()
                .context("an IMAGE is needed (or --rootfs DIR)")?;
            let store = berth_runtime::image::ImageStore::open(root)
                .with_context(|| format!("image store under {}", root.display()))?;
            let img = image_for_run(&store, image, &a.pull)?;
            let overrides = berth_runtime::container::config::ProcessOverrides {
                entrypoint,
                cmd: cmd.to_vec(),
                env: Vec::new(),
                user: None,
                working_dir: None,
            };
            let cfg = ContainerConfig::from_image(img.layer_dirs(), &img.config, overrides);
            image_volumes = img
                .config
                .config()
                .as_ref()
                .and_then(|c| c.volumes().clone())
                .unwrap_or_default();
            (cfg, Some(img.id.to_string()))
        }
    };
    cfg.name = a.name.clone().unwrap_or_default();
    for f in &a.env_file {
        let iter =
            dotenvy::from_path_iter(f).with_context(|| format!("env file {}", f.display()))?;
        for item in iter {
            let (k, v) = item.with_context(|| format!("env file {}", f.display()))?;
            cfg.env.push(format!("{k}={v}"));
        }
    }
    cfg.env.extend(resolve_env(&a.env));
    if a.tty && !cfg.env.iter().any(|e| e.starts_with("TERM=")) {
        cfg.env.push("TERM=xterm".into());
    }
    let mut anonymous = Vec::new();
    for v in &a.volume {
        let m = parse_volume(v)?;
        if !v.contains(':') {
            anonymous.extend(volume_name(&m));
        }
        cfg.mounts.push(m);
    }
    for spec in &a.mount {
        let m = parse_mount(spec)?;
        if matches!(m, MountSpec::Volume { .. })
            && !spec
                .split(',')
                .any(|p| p.starts_with("source=") || p.starts_with("src="))
        {
            anonymous.extend(volume_name(&m));
        }
        cfg.mounts.push(m);
    }
    // The image's VOLUMEs that no mount covers get an anonymous volume, as Docker does.
    for target in image_volumes {
        let covered = cfg.mounts.iter().any(|m| match m {
            MountSpec::Bind { target: t, .. }
            | MountSpec::Volume { target: t, .. }
            | MountSpec::Tmpfs { target: t, .. } => t == Path::new(&target),
        });
        if !covered && target.starts_with('/') {
            let name = anonymous_name();
            anonymous.push(name.clone());
            cfg.mounts.push(MountSpec::Volume {
                name,
                target: target.into(),
                read_only: false,
            });
        }
    }
    cfg.anonymous_volumes = anonymous;
    // --volumes-from: the other container's volumes and binds, at the same places.
    for spec in &a.volumes_from {
        let (name, mode) = match spec.rsplit_once(':') {
            Some((n, m @ ("ro" | "rw"))) => (n, m),
            _ => (spec.as_str(), ""),
        };
        let other = rt
            .resolve(name)
            .with_context(|| format!("--volumes-from {spec}"))?;
        for m in &other.config.mounts {
            let mut m = m.clone();
            match &mut m {
                MountSpec::Bind { read_only, .. } | MountSpec::Volume { read_only, .. } => {
                    match mode {
                        "ro" => *read_only = true,
                        "rw" => *read_only = false,
                        _ => {}
                    }
                }
                MountSpec::Tmpfs { .. } => continue,
            }
            cfg.mounts.push(m);
        }
    }
    for t in &a.tmpfs {
        let (target, opts) = t.split_once(':').unwrap_or((t, ""));
        cfg.mounts.push(MountSpec::Tmpfs {
            target: target.into(),
            options: opts
                .split(',')
                .filter(|o| !o.is_empty())
                .map(str::to_string)
                .collect(),
        });
    }
    if a.workdir.is_some() {
        cfg.working_dir = a.workdir.clone();
    }
    if a.user.is_some() {
        cfg.user = a.user.clone();
    }
    cfg.hostname = a.hostname.clone();
    let network = network_of(a);
    if (!a.publish.is_empty() || a.publish_all) && !is_named_network(&network) {
        bail!("-p/--publish needs a bridge network, not --network {network}");
    }
    if (a.ip.is_some() || a.mac_address.is_some() || !a.network_alias.is_empty())
        && !is_named_network(&network)
    {
        bail!(
            "--ip, --mac-address and --network-alias need a bridge network, not --network {network}"
        );
    }
    cfg.network = match network.as_str() {
        "none" => NetworkMode::None,
        "host" => NetworkMode::Host,
        other if other.starts_with("container:") => {
            let target = rt.resolve(&other["container:".len()..])?;
            match (&target.netns, &target.config.network) {
                (Some(ns), _) => NetworkMode::Join(ns.clone()),
                (None, NetworkMode::Join(ns)) => NetworkMode::Join(ns.clone()),
                _ => NetworkMode::Host,
            }
        }
        // A bridge network: attached by the daemon's netd once the container exists.
        _ => NetworkMode::New,
    };
    cfg.resources.memory = a
        .memory
        .as_deref()
        .map(parse_size)
        .transpose()?
        .map(|m| m as i64);
    cfg.resources.cpus = a.cpus;
    cfg.resources.cpu_shares = a.cpu_shares;
    cfg.resources.cpuset_cpus = a.cpuset_cpus.clone();
    cfg.resources.pids_limit = a.pids_limit;
    cfg.cap_add = a.cap_add.clone();
    cfg.cap_drop = a.cap_drop.clone();
    cfg.privileged = a.privileged;
    cfg.read_only = a.read_only;
    for o in &a.security_opt {
        let opt = berth_runtime::container::SecurityOpt::parse(o).map_err(anyhow::Error::msg)?;
        if opt == berth_runtime::container::SecurityOpt::NotApplied {
            eprintln!(
                "warning: security option {o:?} is not applied (berth loads no AppArmor or SELinux policy)"
            );
        }
        opt.apply(&mut cfg);
    }
    for u in &a.ulimit {
        cfg.ulimits.push(parse_ulimit(u)?);
    }
    if let Some(s) = &a.shm_size {
        cfg.shm_size = parse_size(s)?;
    }
    let mut sysctls = BTreeMap::new();
    for s in &a.sysctl {
        let (k, v) = s
            .split_once('=')
            .with_context(|| format!("invalid sysctl {s:?} (expected KEY=VALUE)"))?;
        sysctls.insert(k.to_string(), v.to_string());
    }
    cfg.sysctls = sysctls;
    if let Some(s) = &a.stop_signal {
        cfg.stop_signal = parse_signal(s)?;
    }
    if let Some(t) = a.stop_timeout {
        cfg.stop_timeout = t;
    }
    for o in &a.log_opt {
        match o.split_once('=') {
            Some(("max-size", v)) => cfg.log_max_size = parse_size(v)?,
            Some(("max-file", v)) => {
                cfg.log_max_files = v
                    .parse()
                    .with_context(|| format!("--log-opt {o:?}: max-file must be a number"))?
            }
            _ => bail!("--log-opt {o:?} is not supported (max-size=SIZE, max-file=N)"),
        }
    }
    for l in &a.label {
        let (k, v) = l.split_once('=').unwrap_or((l, ""));
        cfg.labels.insert(k.to_string(), v.to_string());
    }
    if a.restart != "no" {
        let valid = matches!(
            a.restart.as_str(),
            "always" | "unless-stopped" | "on-failure"
        ) || a
            .restart
            .strip_prefix("on-failure:")
            .is_some_and(|n| n.parse::<u32>().is_ok());
        if !valid {
            bail!(
                "--restart {:?}: expected no, always, unless-stopped or on-failure[:N]",
                a.restart
            );
        }
        if a.rm {
            bail!(
                "--restart {} and --rm conflict: a removed container cannot restart",
                a.restart
            );
        }
        cfg.labels
            .insert(crate::engine::labels::RESTART.into(), a.restart.clone());
    }
    // On a bridge network the servers are the embedded DNS's upstreams for this container
    // (names of the network still resolve); otherwise they go into its resolv.conf.
    if !a.dns.is_empty() && is_named_network(&network) {
        let list: Vec<String> = a.dns.iter().map(ToString::to_string).collect();
        cfg.labels
            .insert(crate::engine::labels::DNS_SERVERS.into(), list.join(","));
    }
    cfg.init = a.init;
    cfg.oci_runtime = a.runtime.clone().filter(|r| r != "berth");
    cfg.tty = a.tty;
    cfg.open_stdin = a.interactive;
    cfg.auto_remove = a.rm;
    Ok((cfg, image_id))
}

fn run_container(
    rt: &Runtime,
    g: &GlobalOpts,
    a: RunArgs,
    start: bool,
) -> anyhow::Result<ExitCode> {
    let (cfg, image_id) = build_config(rt, &g.root, &a)?;
    // -P: every port the image exposes ("80/tcp"), each on a free host port.
    let exposed: Vec<String> = match (a.publish_all, a.rootfs.is_none(), a.args.first()) {
        (true, true, Some(image)) => berth_runtime::image::ImageStore::open(&g.root)
            .and_then(|s| s.resolve(image))
            .ok()
            .and_then(|i| {
                i.config
                    .config()
                    .as_ref()
                    .and_then(|c| c.exposed_ports().clone())
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let connect = network_request(&a, &exposed)?;
    if let Some(p) = &a.cidfile
        && p.exists()
    {
        bail!("--cidfile {}: the file exists already", p.display());
    }
    let rec = rt.create(cfg).map_err(start_error)?;
    if let Some(p) = &a.cidfile
        && let Err(e) = std::fs::write(p, &rec.id)
    {
        let _ = rt.remove(&rec, true);
        return Err(anyhow::Error::new(e).context(format!("writing --cidfile {}", p.display())));
    }
    for name in &rec.config.anonymous_volumes {
        if let Err(e) = rt.volume_mark(name, BTreeMap::new(), true) {
            let _ = rt.remove(&rec, true);
            rt.remove_anonymous_volumes(&rec);
            return Err(e.into());
        }
    }
    if let Some(id) = image_id {
        let p = rec
            .dir
            .join(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE);
        std::fs::write(&p, id).with_context(|| format!("writing {}", p.display()))?;
        if let Some(reference) = a.args.first() {
            let _ = std::fs::write(rec.dir.join(IMAGE_REF_FILE), reference);
        }
    }
    if connect.is_none()
        && let Err(e) = local_name_files(&a, &rec)
    {
        let _ = rt.remove(&rec, true);
        rt.remove_anonymous_volumes(&rec);
        return Err(e);
    }
    if let Some(mut req) = connect {
        req.container = rec.id.clone();
        if let Err(e) = daemon_post::<Vec<String>>(g, "/container/connect", &req) {
            let _ = rt.remove(&rec, true);
            rt.remove_anonymous_volumes(&rec);
            return Err(e.context(format!("cannot connect container {}", rec.config.name)));
        }
    }
    // Restart policies are the daemon's: make sure it watches this instance.
    if a.restart != "no" {
        daemon_post::<serde_json::Value>(g, "/engine", &serde_json::json!({}))
            .context("starting the daemon that enforces --restart")?;
    }
    let attached = is_named_network(&network_of(&a));
    let code = if !start {
        println!("{}", rec.id);
        Ok(ExitCode::SUCCESS)
    } else if a.detach {
        match rt.start(&rec) {
            Ok(_) => {
                println!("{}", rec.id);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => Err(start_error(e)),
        }
    } else {
        start_foreground(rt, &rec, a.interactive, a.tty)
    };
    // `--rm`: the shim removed the container when it exited (or failed to start); its
    // endpoints and DNS names go too (a detached one is swept by the daemon when it exits).
    if attached && a.rm && (!a.detach || code.is_err()) && !rec.dir.exists() {
        disconnect(g, &rec.id);
    }
    code
}

/// The `--network` value in effect: `bridge` (made on first use) unless one is given, as
/// with Docker.
fn network_of(a: &RunArgs) -> String {
    match a.network.first().map(String::as_str) {
        Some("default") | None => DEFAULT_BRIDGE.into(),
        Some(n) => n.into(),
    }
}

/// A bridge network that netd attaches (not none, host or container:X).
fn is_named_network(n: &str) -> bool {
    !matches!(n, "none" | "host" | "") && !n.starts_with("container:")
}

/// What to ask the daemon to attach, for a bridge network.
/// A free host port for `proto` right now (the kernel's ephemeral range, as Docker's).
fn free_port(proto: &str) -> anyhow::Result<u16> {
    let port = if proto == "udp" {
        std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.local_addr())
    } else {
        std::net::TcpListener::bind("0.0.0.0:0").and_then(|s| s.local_addr())
    }
    .context("finding a free host port")?
    .port();
    Ok(port)
}

/// Docker's `-p` forms, with a free host port where none is given (`80`, `127.0.0.1::80`).
fn parse_publish(p: &str) -> anyhow::Result<berth_netd::ports::PortMapping> {
    let (body, proto) = match p.rsplit_once('/') {
        Some((b, proto)) => (b, proto),
        None => (p, "tcp"),
    };
    let parts: Vec<&str> = body.split(':').collect();
    let filled = match parts.as_slice() {
        [cont] => format!("{}:{cont}/{proto}", free_port(proto)?),
        [ip, "", cont] => format!("{ip}:{}:{cont}/{proto}", free_port(proto)?),
        ["", cont] => format!("{}:{cont}/{proto}", free_port(proto)?),
        _ => p.to_string(),
    };
    if filled != p && body.contains('-') {
        bail!("-p {p:?}: a port range needs its host ports (HOST-RANGE:CONTAINER-RANGE)");
    }
    filled
        .parse::<berth_netd::ports::PortMapping>()
        .with_context(|| format!("-p {p:?}"))
}

fn network_request(a: &RunArgs, exposed: &[String]) -> anyhow::Result<Option<ContainerConnect>> {
    let network = network_of(a);
    if !is_named_network(&network) {
        if a.network.len() > 1 {
            bail!("--network {network} cannot be combined with other networks");
        }
        return Ok(None);
    }
    // More --network values: further bridge networks (eth1 ...), no aliases or fixed address.
    let mut more = Vec::new();
    for n in a.network.iter().skip(1) {
        if !is_named_network(n) {
            bail!("--network {n} cannot be combined with other networks");
        }
        more.push(ContainerNetwork {
            name: if n == "default" {
                DEFAULT_BRIDGE.into()
            } else {
                n.clone()
            },
            ..ContainerNetwork::default()
        });
    }
    let mut ports = Vec::new();
    for p in a.publish.iter().chain(exposed) {
        ports.push(parse_publish(p)?);
    }
    Ok(Some(ContainerConnect {
        container: String::new(),
        networks: std::iter::once(ContainerNetwork {
            name: network,
            aliases: a.network_alias.clone(),
            ipv4_address: a.ip,
            mac_address: a.mac_address.clone(),
        })
        .chain(more)
        .collect(),
        ports,
        extra_hosts: extra_hosts(a)?,
        dns_search: a.dns_search.clone(),
        dns_options: a.dns_option.clone(),
    }))
}

/// `--add-host NAME:IP` (or NAME=IP) pairs.
fn extra_hosts(a: &RunArgs) -> anyhow::Result<Vec<(String, String)>> {
    a.add_host
        .iter()
        .map(|h| {
            let (name, ip) = h
                .split_once(['=', ':'])
                .with_context(|| format!("--add-host {h:?}: expected NAME:IP"))?;
            if ip != "host-gateway" && ip.parse::<std::net::IpAddr>().is_err() {
                bail!("--add-host {h:?}: {ip:?} is not an IP address or host-gateway");
            }
            Ok((name.to_string(), ip.to_string()))
        })
        .collect()
}

/// `--add-host`, `--dns*` for a container without a bridge network: its /etc/hosts and
/// /etc/resolv.conf (bind-mounted at start) are edited in place.
fn local_name_files(a: &RunArgs, rec: &berth_runtime::container::Record) -> anyhow::Result<()> {
    let network = network_of(a);
    let hosts = extra_hosts(a)?;
    if !hosts.is_empty() {
        let p = rec.dir.join("hosts");
        let mut content = std::fs::read_to_string(&p).unwrap_or_default();
        for (name, ip) in hosts {
            let ip = match (ip.as_str(), network.as_str()) {
                ("host-gateway", "host") => "127.0.0.1".to_string(),
                ("host-gateway", _) => {
                    bail!("--add-host {name}:host-gateway needs a bridge network or host")
                }
                _ => ip,
            };
            let addr: std::net::IpAddr = ip
                .parse()
                .with_context(|| format!("--add-host {name}:{ip}: not an IP address"))?;
            content.push_str(&crate::engine::resolv::hosts_entry(addr, &name)?);
        }
        std::fs::write(&p, content).with_context(|| format!("writing {}", p.display()))?;
    }
    if !a.dns.is_empty() || !a.dns_search.is_empty() || !a.dns_option.is_empty() {
        let p = rec.dir.join("resolv.conf");
        let old = std::fs::read_to_string(&p).unwrap_or_default();
        let out =
            crate::engine::resolv::override_resolv(&old, &a.dns, &a.dns_search, &a.dns_option)?;
        std::fs::write(&p, out).with_context(|| format!("writing {}", p.display()))?;
    }
    Ok(())
}

/// One JSON call to the instance's daemon (started when none answers).
fn daemon_post<T: serde::de::DeserializeOwned>(
    g: &GlobalOpts,
    route: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<T> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let client = crate::api::client::Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.post(route, body).await?)
    })
}

/// Drops a removed container's endpoints and DNS names in the daemon; reports failures.
fn disconnect(g: &GlobalOpts, id: &str) {
    match daemon_post::<Vec<String>>(g, "/container/disconnect", &vec![id.to_string()]) {
        Ok(failures) => {
            for f in failures {
                eprintln!("berth: {f}");
            }
        }
        Err(e) => eprintln!("berth: detaching {id} from its networks: {e:#}"),
    }
}

/// Whether netd has endpoints of this container (read from its state file: no daemon needed).
fn has_endpoints(root: &Path, id: &str) -> bool {
    netd_state(root).endpoints.iter().any(|e| e.container == id)
}

/// netd's recorded networks and endpoints, read from its state file (empty when none).
fn netd_state(root: &Path) -> berth_netd::state::State {
    std::fs::read(root.join("netd").join("state.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<berth_netd::state::State>(&b).ok())
        .unwrap_or_default()
}

/// `NetworkSettings` of `inspect`, in Docker's shape: networks with address, gateway,
/// aliases, MAC; published ports as `"80/tcp": [{"HostIp", "HostPort"}]`.
fn network_settings(netd: &berth_netd::state::State, id: &str) -> serde_json::Value {
    let mut networks = serde_json::Map::new();
    let mut ports = serde_json::Map::new();
    for ep in netd.endpoints.iter().filter(|e| e.container == id) {
        let net = netd.networks.get(&ep.network);
        networks.insert(
            net.map(|n| n.name.clone())
                .unwrap_or_else(|| ep.network.clone()),
            serde_json::json!({
                "NetworkID": ep.network,
                "IPAddress": ep.address.to_string(),
                "IPPrefixLen": net.map(|n| n.subnet.prefix()),
                "Gateway": net.map(|n| n.gateway.to_string()),
                "MacAddress": ep.mac,
                "Aliases": ep.aliases,
                "Interface": ep.ifname,
            }),
        );
        for p in &ep.ports {
            for (host, cont) in p.pairs() {
                let binding = serde_json::json!({
                    "HostIp": p.host_ip.map(|i| i.to_string()).unwrap_or_else(|| "0.0.0.0".into()),
                    "HostPort": host.to_string(),
                });
                let key = format!("{cont}/{}", p.protocol.as_str());
                match ports.get_mut(&key).and_then(|v| v.as_array_mut()) {
                    Some(list) => list.push(binding),
                    None => {
                        ports.insert(key, serde_json::json!([binding]));
                    }
                }
            }
        }
    }
    // Docker's top-level address: the first network's.
    let first = netd.endpoints.iter().find(|e| e.container == id);
    serde_json::json!({
        "Networks": networks,
        "Ports": ports,
        "IPAddress": first.map(|e| e.address.to_string()).unwrap_or_default(),
    })
}

/// `rm`: removes the container and, when it was on bridge networks, its endpoints and DNS
/// names (through the daemon, which owns netd).
fn remove_container(
    rt: &Runtime,
    g: &GlobalOpts,
    what: &str,
    force: bool,
    volumes: bool,
) -> anyhow::Result<()> {
    let rec = rt.resolve(what)?;
    rt.remove(&rec, force)?;
    if has_endpoints(&g.root, &rec.id) {
        disconnect(g, &rec.id);
    }
    if volumes && let Some(e) = rt.remove_anonymous_volumes(&rec).into_iter().next() {
        return Err(e.into());
    }
    Ok(())
}

/// Starts a created container in the foreground: attached with `-i`/`-t`, else following its
/// log; returns its exit status (also used by `berth run`).
pub(crate) fn start_foreground(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    interactive: bool,
    tty: bool,
) -> anyhow::Result<ExitCode> {
    let rec = rec.clone();
    if interactive || tty {
        let (_, watch, stream) = rt.start_attached(&rec, interactive).map_err(start_error)?;
        attach_loop(rt, &rec, stream, interactive)?;
        let info = watch.wait()?;
        return Ok(exit_code(info.code));
    }
    // Foreground: follow the log while the container runs, then exit with its status.
    let mut follower = logs::Follower::new(&rec.log_path(), true);
    let proxy = SigProxy::new();
    let (_, watch) = rt.start_watched(&rec).map_err(start_error)?;
    let opts = LogOptions::default();
    let mut sink = StdSink;
    loop {
        for e in follower.poll() {
            let _ = logs::LogSink::entry(&mut sink, &e, &opts);
        }
        let mut fds = vec![nix::poll::PollFd::new(
            watch.as_fd(),
            nix::poll::PollFlags::POLLIN,
        )];
        if let Some(p) = &proxy {
            fds.push(nix::poll::PollFd::new(
                std::os::fd::AsFd::as_fd(&p.fd),
                nix::poll::PollFlags::POLLIN,
            ));
        }
        if nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(50u16)).is_err() {
            break;
        }
        let ready = |f: &nix::poll::PollFd| f.revents().is_some_and(|r| !r.is_empty());
        if fds.get(1).is_some_and(ready)
            && let Some(p) = &proxy
        {
            p.forward(rt, &rec);
        }
        if ready(&fds[0]) {
            break;
        }
    }
    let info = watch.wait()?;
    for e in follower.poll() {
        let _ = logs::LogSink::entry(&mut sink, &e, &opts);
    }
    let _ = std::io::stdout().flush();
    Ok(exit_code(info.code))
}

/// A container as `ls --format` sees it: docker's `ps --format json` fields, all strings.
fn ls_row(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    st: &berth_runtime::container::State,
    netd: &berth_netd::state::State,
    no_trunc: bool,
) -> serde_json::Value {
    let running = st.status == Status::Running && rt.is_running(rec);
    let ago = |t: SystemTime| {
        let d = SystemTime::now().duration_since(t).unwrap_or_default();
        format!(
            "{} ago",
            humantime::format_duration(Duration::from_secs(d.as_secs()))
        )
    };
    let (status, state) = match (st.status, running) {
        (Status::Running, true) => (
            format!("Up {}", st.started_at.map(ago).unwrap_or_default())
                .trim_end_matches(" ago")
                .to_string(),
            "running",
        ),
        (Status::Created, _) => ("Created".to_string(), "created"),
        // Recorded as running but its shim is gone (killed, or the host rebooted).
        (Status::Running, false) => ("Dead (shim gone)".to_string(), "dead"),
        _ => (
            format!(
                "Exited ({}) {}",
                st.exit_code.unwrap_or(0),
                st.finished_at.map(ago).unwrap_or_default()
            ),
            "exited",
        ),
    };
    let mut cmd = shell_words::join(&rec.config.args);
    if !no_trunc && cmd.chars().count() > 20 {
        cmd = cmd.chars().take(19).collect::<String>() + "…";
    }
    let image = std::fs::read_to_string(rec.dir.join(IMAGE_REF_FILE))
        .ok()
        .or_else(|| rec.config.labels.get(crate::engine::labels::IMAGE).cloned())
        .or_else(|| {
            std::fs::read_to_string(
                rec.dir
                    .join(berth_runtime::image::store::CONTAINER_IMAGE_ID_FILE),
            )
            .ok()
        })
        .map(|i| {
            let i = i.trim().to_string();
            match i.strip_prefix("sha256:") {
                Some(h) if !no_trunc => h.chars().take(12).collect(),
                _ => i,
            }
        })
        .unwrap_or_else(|| match &rec.config.rootfs {
            RootfsSource::Dir(d) => d.display().to_string(),
            RootfsSource::Layers(_) => String::new(),
        });
    let mut ports = Vec::new();
    let mut networks = Vec::new();
    for ep in netd.endpoints.iter().filter(|e| e.container == rec.id) {
        if let Some(n) = netd.networks.get(&ep.network) {
            networks.push(n.name.clone());
        }
        for p in &ep.ports {
            // Display names the host address only when one was given.
            let any = if p.host_ip.is_none() { "0.0.0.0:" } else { "" };
            ports.push(format!("{any}{p}"));
        }
    }
    let mounts: Vec<String> = rec
        .config
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind { source, .. } => source.display().to_string(),
            MountSpec::Volume { name, .. } => name.clone(),
            MountSpec::Tmpfs { target, .. } => target.display().to_string(),
        })
        .collect();
    let labels: Vec<String> = rec
        .config
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    let id = if no_trunc { &rec.id[..] } else { &rec.id[..12] };
    serde_json::json!({
        "ID": id,
        "Names": rec.config.name,
        "Image": image,
        "Command": format!("{cmd:?}"),
        "CreatedAt": humantime::format_rfc3339_seconds(st.created_at).to_string(),
        "RunningFor": ago(st.created_at),
        "Status": status,
        "State": state,
        "Ports": ports.join(", "),
        "Networks": networks.join(","),
        "Labels": labels.join(","),
        "Mounts": mounts.join(","),
    })
}

/// `Mounts` of `inspect`, in Docker's shape (volumes with their host directory).
fn inspect_mounts(rt: &Runtime, rec: &berth_runtime::container::Record) -> serde_json::Value {
    let list: Vec<serde_json::Value> = rec
        .config
        .mounts
        .iter()
        .map(|m| match m {
            MountSpec::Bind {
                source,
                target,
                read_only,
            } => serde_json::json!({
                "Type": "bind", "Source": source, "Destination": target, "RW": !read_only,
            }),
            MountSpec::Volume {
                name,
                target,
                read_only,
            } => serde_json::json!({
                "Type": "volume", "Name": name, "Source": rt.volume_dir(name),
                "Destination": target, "RW": !read_only,
                "Anonymous": rec.config.anonymous_volumes.contains(name),
            }),
            MountSpec::Tmpfs { target, options } => serde_json::json!({
                "Type": "tmpfs", "Destination": target, "Options": options, "RW": true,
            }),
        })
        .collect();
    serde_json::Value::Array(list)
}

/// The file in a container's dir that keeps the image reference the user gave (`ls` shows it).
const IMAGE_REF_FILE: &str = "image-ref";

fn ls(rt: &Runtime, root: &Path, a: LsArgs) -> anyhow::Result<ExitCode> {
    let netd = netd_state(root);
    let mut filters: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in &a.filter {
        let (k, v) = f
            .split_once('=')
            .with_context(|| format!("--filter {f:?}: expected KEY=VALUE"))?;
        if !matches!(
            k,
            "name" | "id" | "status" | "label" | "network" | "ancestor" | "exited"
        ) {
            bail!(
                "--filter {f:?}: unknown key {k:?} (name, id, status, label, network, ancestor, exited)"
            );
        }
        filters
            .entry(k.to_string())
            .or_default()
            .push(v.to_string());
    }
    let last = if a.latest { Some(1) } else { a.last };
    // A status or exit-code filter looks at stopped containers without -a.
    let everything =
        a.all || last.is_some() || filters.contains_key("status") || filters.contains_key("exited");
    // Newest first, as docker.
    let mut all = rt.list();
    all.reverse();
    let mut rows: Vec<serde_json::Value> = Vec::new();
    for (rec, st) in &all {
        let row = ls_row(rt, rec, st, &netd, a.no_trunc);
        let field = |k: &str| row[k].as_str().unwrap_or_default().to_string();
        let matches = |key: &str, test: &dyn Fn(&str) -> bool| {
            filters
                .get(key)
                .is_none_or(|vals| vals.iter().any(|v| test(v)))
        };
        let keep = matches("name", &|v| rec.config.name.contains(v))
            && matches("id", &|v| rec.id.starts_with(v))
            && matches("status", &|v| field("State") == v)
            && matches("label", &|v| match v.split_once('=') {
                Some((k, val)) => rec.config.labels.get(k).is_some_and(|x| x == val),
                None => rec.config.labels.contains_key(v),
            })
            && matches("network", &|v| field("Networks").split(',').any(|n| n == v))
            && matches("ancestor", &|v| field("Image") == v)
            && matches("exited", &|v| {
                field("State") == "exited"
                    && st.exit_code.map(|c| c.to_string()).as_deref() == Some(v)
            });
        if keep && (everything || row["State"] == "running") {
            rows.push(row);
        }
    }
    if let Some(n) = last {
        rows.truncate(n);
    }
    let field = |r: &serde_json::Value, k: &str| r[k].as_str().unwrap_or_default().to_string();
    if a.quiet {
        for r in &rows {
            println!("{}", field(r, "ID"));
        }
        return Ok(ExitCode::SUCCESS);
    }
    let template = match a.format.as_deref() {
        Some("json") => {
            for r in &rows {
                println!("{r}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        Some(t) if t != "table" => t.to_string(),
        _ => "table {{.ID}}\\t{{.Image}}\\t{{.Command}}\\t{{.RunningFor}}\\t{{.Status}}\\t{{.Ports}}\\t{{.Names}}"
            .to_string(),
    };
    let tpl = super::format::Template::parse(&template)?;
    print!(
        "{}",
        tpl.render_all(&rows, &|f| match f {
            "ID" => "CONTAINER ID".into(),
            "RunningFor" => "CREATED".into(),
            f => super::format::default_header(f),
        })
    );
    Ok(ExitCode::SUCCESS)
}

/// An RFC 3339 time, or a duration meaning "that long ago".
fn parse_when(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s)
        .with_context(|| format!("{s:?} is neither an RFC 3339 time nor a duration (10m)"))?;
    Ok(SystemTime::now() - d)
}

fn show_logs(rt: &Runtime, a: LogsArgs) -> anyhow::Result<ExitCode> {
    let rec = rt.resolve(&a.container)?;
    let tail = match a.tail.as_str() {
        "all" | "-1" => None,
        n => Some(n.parse().with_context(|| format!("invalid --tail {n:?}"))?),
    };
    let opts = LogOptions {
        tail,
        timestamps: a.timestamps,
        since: a.since.as_deref().map(parse_when).transpose()?,
        until: a.until.as_deref().map(parse_when).transpose()?,
    };
    let mut alive = || rt.is_running(&rec);
    let follow: Option<&mut dyn FnMut() -> bool> = if a.follow { Some(&mut alive) } else { None };
    logs::print(&rec.log_path(), &opts, &mut StdSink, follow)?;
    Ok(ExitCode::SUCCESS)
}

/// Passes SIGINT/SIGTERM/SIGHUP/SIGQUIT that reach the CLI on to the container (Docker's
/// default `--sig-proxy`), instead of dying and leaving the container running unasked.
struct SigProxy {
    fd: nix::sys::signalfd::SignalFd,
}

impl SigProxy {
    fn new() -> Option<SigProxy> {
        use nix::sys::signal::{SigSet, Signal};
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            mask.add(s);
        }
        mask.thread_block().ok()?;
        let fd = nix::sys::signalfd::SignalFd::with_flags(
            &mask,
            nix::sys::signalfd::SfdFlags::SFD_NONBLOCK | nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
        )
        .ok()?;
        Some(SigProxy { fd })
    }

    fn forward(&self, rt: &Runtime, rec: &berth_runtime::container::Record) {
        while let Ok(Some(info)) = self.fd.read_signal() {
            let _ = rt.kill(rec, info.ssi_signo as i32);
        }
    }
}

/// Restores the terminal mode when dropped.
struct RawMode(Option<nix::sys::termios::Termios>);

impl RawMode {
    fn enter(on: bool) -> RawMode {
        use nix::sys::termios::{SetArg, cfmakeraw, tcgetattr, tcsetattr};
        let stdin = std::io::stdin();
        if !on {
            return RawMode(None);
        }
        let Ok(saved) = tcgetattr(&stdin) else {
            return RawMode(None);
        };
        let mut raw = saved.clone();
        cfmakeraw(&mut raw);
        let _ = tcsetattr(&stdin, SetArg::TCSANOW, &raw);
        RawMode(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin(),
                nix::sys::termios::SetArg::TCSANOW,
                t,
            );
        }
    }
}

/// Relays our stdin to an attach stream and its output to our stdout/stderr until the
/// container's side closes.
fn attach_loop(
    rt: &Runtime,
    rec: &berth_runtime::container::Record,
    stream: std::os::unix::net::UnixStream,
    stdin: bool,
) -> anyhow::Result<()> {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::io::Read;
    use std::os::fd::AsFd;
    let tty = rec.config.tty;
    let input = std::io::stdin();
    let is_term = nix::unistd::isatty(&input).unwrap_or(false);
    if tty && is_term {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes into the struct we own.
        if unsafe { libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_row > 0 {
            let _ = rt.resize(rec, ws.ws_row, ws.ws_col);
        }
    }
    let _raw = RawMode::enter(tty && stdin && is_term);
    let proxy = SigProxy::new();
    let mut stdin_open = stdin;
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    loop {
        let mut fds = vec![PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
        if let Some(p) = &proxy {
            fds.push(PollFd::new(p.fd.as_fd(), PollFlags::POLLIN));
        }
        let sig_at = fds.len() - 1;
        if stdin_open {
            fds.push(PollFd::new(input.as_fd(), PollFlags::POLLIN));
        }
        poll(&mut fds, PollTimeout::NONE).context("waiting for the container's output")?;
        let s_ready = fds[0].revents().is_some_and(|r| !r.is_empty());
        let sig_ready = proxy.is_some() && fds[sig_at].revents().is_some_and(|r| !r.is_empty());
        let i_ready = stdin_open
            && fds
                .last()
                .and_then(|f| f.revents())
                .is_some_and(|r| !r.is_empty());
        if sig_ready && let Some(p) = &proxy {
            p.forward(rt, rec);
        }
        if s_ready {
            let n = (&stream).read(&mut buf).unwrap_or(0);
            if n == 0 {
                break;
            }
            if tty {
                out.write_all(&buf[..n])?;
                out.flush()?;
            } else {
                pending.extend_from_slice(&buf[..n]);
                while pending.len() >= 8 {
                    let len = u32::from_be_bytes([pending[4], pending[5], pending[6], pending[7]])
                        as usize;
                    if pending.len() < 8 + len {
                        break;
                    }
                    let frame: Vec<u8> = pending.drain(..8 + len).collect();
                    if frame[0] == 2 {
                        err.write_all(&frame[8..])?;
                        err.flush()?;
                    } else {
                        out.write_all(&frame[8..])?;
                        out.flush()?;
                    }
                }
            }
        }
        if i_ready {
            let n = nix::unistd::read(&input, &mut buf).unwrap_or(0);
            if n == 0 {
                stdin_open = false;
                let _ = stream.shutdown(std::net::Shutdown::Write);
            } else if (&stream).write_all(&buf[..n]).is_err() {
                stdin_open = false;
            }
        }
    }
    Ok(())
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
        assert!(parse_ulimit("nofile").is_err());
        assert_eq!(parse_signal("term").expect("sig"), libc::SIGTERM);
        assert_eq!(parse_signal("SIGKILL").expect("sig"), libc::SIGKILL);
        assert_eq!(parse_signal("9").expect("sig"), 9);
    }

    #[test]
    fn publish_forms_follow_docker() {
        let m = parse_publish("127.0.0.1:8080:80/udp").expect("full");
        assert_eq!(m.to_string(), "127.0.0.1:8080->80/udp");
        let m = parse_publish("80").expect("container port only");
        assert!(m.host_port > 0 && m.container_port == 80 && m.host_ip.is_none());
        let m = parse_publish("127.0.0.1::53/udp").expect("ip, no host port");
        assert_eq!(m.container_port, 53);
        assert_eq!(m.host_ip, Some(std::net::IpAddr::from([127, 0, 0, 1])));
        assert!(parse_publish("80-81").is_err(), "a range needs host ports");
        assert!(parse_publish("x:80").is_err());
    }

    #[test]
    fn mount_flags_parse_like_docker() {
        match parse_mount("type=volume,source=data,target=/data,readonly").expect("volume") {
            MountSpec::Volume {
                name, read_only, ..
            } => assert!(name == "data" && read_only),
            other => panic!("{other:?}"),
        }
        match parse_mount("type=tmpfs,dst=/t,tmpfs-size=1m").expect("tmpfs") {
            MountSpec::Tmpfs { options, .. } => assert_eq!(options, vec!["size=1m"]),
            other => panic!("{other:?}"),
        }
        assert!(parse_mount("type=bind,source=/nonexistent-x,target=/x").is_err());
        assert!(parse_mount("type=volume,target=rel").is_err());
    }
}
