//! `berth system …`: the daemon of this instance (issue 6).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::{GlobalOpts, not_yet};
use crate::api::client::Client;
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
    /// Remove unused containers, networks, images and build cache
    Prune,
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
            let info: Info = client.get("/info").await?;
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
                .stream("/events", |ev: Event| {
                    if json {
                        println!("{}", serde_json::to_string(&ev).unwrap_or_default());
                    } else {
                        println!("{} {} {} {}", ev.time, ev.kind, ev.action, ev.id);
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
            let _: serde_json::Value = client.post("/shutdown", &serde_json::json!({})).await?;
            // Wait until the socket is gone, so a following command starts a fresh daemon.
            for _ in 0..250 {
                if !client.socket().exists() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            Ok(ExitCode::SUCCESS)
        }),
        SystemCommand::Prune => Err(not_yet("system prune", 6)),
    }
}
