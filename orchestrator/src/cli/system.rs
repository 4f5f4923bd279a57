//! `berth system …`: the daemon of this instance and its housekeeping.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use std::path::Path;

use super::GlobalOpts;
use crate::api::client::Client;
use crate::api::network::NetworkPruneResponse;
use crate::api::project::RmRequest;
use crate::api::{Event, Info};

/// `berth system` subcommands.
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show what the daemon of this instance is and how it runs (starts it if needed)
    Info(FormatArgs),
    /// Stream the daemon's events (containers, networks, images, reconcile repairs)
    Events(FormatArgs),
    /// Stop the daemon of this instance, if one runs
    Shutdown,
    /// Remove stopped containers, unused networks, dangling images and the build cache
    Prune(PruneArgs),
    /// Print the daemon's Docker API address, for `export DOCKER_HOST=$(berth system docker-host)` (starts the daemon if needed)
    DockerHost,
}

/// `berth system prune`.
#[derive(Args, Debug)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only dangling (untagged) ones
    #[arg(short, long)]
    pub all: bool,
    /// Remove named volumes no container uses too
    #[arg(long)]
    pub volumes: bool,
    /// Do not prompt (berth never prompts; accepted for compatibility)
    #[arg(short, long)]
    pub force: bool,
}

/// Output format option shared by the system verbs.
#[derive(Args, Debug)]
pub struct FormatArgs {
    /// Output format: text or json
    #[arg(long, default_value = "text", value_name = "FORMAT")]
    pub format: String,
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub fn run(g: &GlobalOpts, cmd: SystemCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SystemCommand::Info(args) => runtime()?.block_on(async {
            let client = Client::connect_or_start(&g.root, &g.run).await?;
            let info: Info = client.info().await?;
            if args.format == "json" {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("Version:     {}", info.version);
                println!("Daemon PID:  {}", info.pid);
                println!("Root:        {}", info.root);
                println!("Run:         {}", info.run);
                println!("Cgroups:     {}", info.cgroup);
                println!(
                    "Started:     {} ({} s ago)",
                    info.started_at, info.uptime_secs
                );
            }
            Ok(ExitCode::SUCCESS)
        }),
        SystemCommand::Events(args) => runtime()?.block_on(async {
            let client = Client::connect_or_start(&g.root, &g.run).await?;
            let json = args.format == "json";
            client
                .events(|ev: Event| {
                    if json {
                        println!("{}", serde_json::to_string(&ev).unwrap_or_default());
                    } else {
                        match ev.attributes.get("message") {
                            // Reconcile repairs and subnet conflicts say what happened.
                            Some(m) => {
                                println!("{} {} {} {}: {m}", ev.time, ev.kind, ev.action, ev.id)
                            }
                            None => println!("{} {} {} {}", ev.time, ev.kind, ev.action, ev.id),
                        }
                    }
                    true
                })
                .await?;
            Ok(ExitCode::SUCCESS)
        }),
        SystemCommand::Shutdown => runtime()?.block_on(async {
            let client = Client::new(&g.run);
            if !client.ping().await {
                eprintln!("no berth daemon answers at {}", client.socket().display());
                return Ok(ExitCode::SUCCESS);
            }
            client.shutdown().await?;
            // Wait until the socket is gone, so a following command starts a fresh daemon.
            for _ in 0..250 {
                if !client.socket().exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(ExitCode::SUCCESS)
        }),
        SystemCommand::Prune(args) => prune(g, args),
        SystemCommand::DockerHost => runtime()?.block_on(async {
            Client::connect_or_start(&g.root, &g.run).await?;
            let run = std::path::absolute(&g.run).unwrap_or_else(|_| g.run.clone());
            // The daemon serves the Docker Engine API on `docker.sock` beside `berth.sock`.
            println!("unix://{}", run.join("docker.sock").display());
            Ok(ExitCode::SUCCESS)
        }),
    }
}

/// Bytes under `path` (files only, symlinks not followed); what removing it frees.
fn du(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| du(&e.path()))
        .sum()
}

/// `berth system prune`: stopped containers (through the daemon, which detaches them from
/// their networks), networks without endpoints, the build cache, dangling images (every
/// unused one with `-a`), unused named volumes with `--volumes`; prints what went and the
/// space reclaimed.
fn prune(g: &GlobalOpts, args: PruneArgs) -> anyhow::Result<ExitCode> {
    let _ = args.force;
    let rt = super::container::runtime(g)?;
    let mut reclaimed = 0u64;
    let mut failed = false;

    let stopped: Vec<_> = rt
        .list()
        .into_iter()
        .filter(|(r, _)| !rt.is_running(r))
        .map(|(r, _)| r)
        .collect();
    let ids: Vec<String> = stopped.iter().map(|r| r.id.clone()).collect();
    let sizes: u64 = stopped.iter().map(|r| du(&r.dir)).sum();
    let (failures, nets): (Vec<String>, NetworkPruneResponse) = runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        let failures = if ids.is_empty() {
            Vec::new()
        } else {
            client
                .rm(&RmRequest {
                    ids,
                    volumes: false,
                })
                .await?
        };
        let nets = client.network_prune().await?;
        anyhow::Ok((failures, nets))
    })?;
    if !stopped.is_empty() {
        println!("Deleted Containers:");
        for r in &stopped {
            if !failures.iter().any(|f| f.starts_with(&r.id)) {
                println!("{}", r.id);
            }
        }
        println!();
        reclaimed += sizes;
    }
    for f in &failures {
        eprintln!("error: removing container {f}");
        failed = true;
    }
    if !nets.networks_deleted.is_empty() {
        println!("Deleted Networks:");
        nets.networks_deleted.iter().for_each(|n| println!("{n}"));
        println!();
    }
    if let Some(e) = &nets.error {
        eprintln!("berth: {e}");
        failed = true;
    }

    if args.volumes {
        let users: std::collections::BTreeSet<String> = rt
            .list()
            .into_iter()
            .flat_map(|(r, _)| r.config.mounts.clone())
            .filter_map(|m| match m {
                berth_runtime::container::MountSpec::Volume { name, .. } => Some(name),
                _ => None,
            })
            .collect();
        let dir = g.root.join("volumes");
        let mut gone = Vec::new();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            if users.contains(&name) || !e.path().is_dir() {
                continue;
            }
            let size = du(&e.path());
            match std::fs::remove_dir_all(e.path()) {
                Ok(()) => {
                    reclaimed += size;
                    gone.push(name);
                }
                Err(err) => {
                    eprintln!("error: removing volume {name}: {err}");
                    failed = true;
                }
            }
        }
        if !gone.is_empty() {
            println!("Deleted Volumes:");
            gone.iter().for_each(|v| println!("{v}"));
            println!();
        }
    }

    let store = berth_runtime::image::ImageStore::open(&g.root)
        .with_context(|| format!("opening the image store under {}", g.root.display()))?;
    let (entries, cache_bytes) =
        berth_runtime::build::exec::Builder::new(&store, &rt, &g.root).prune()?;
    reclaimed += cache_bytes;
    let report = store.prune(args.all)?;
    reclaimed += report.reclaimed;
    if !report.untagged.is_empty() || !report.deleted.is_empty() {
        println!("Deleted Images:");
        report
            .untagged
            .iter()
            .for_each(|t| println!("untagged: {t}"));
        report.deleted.iter().for_each(|d| println!("deleted: {d}"));
        println!();
    }
    println!("Deleted build cache entries: {entries}");
    println!("Total reclaimed space: {}", human(reclaimed));
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn human(b: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{b}B")
    } else {
        format!("{v:.2}{}", units[u])
    }
}
