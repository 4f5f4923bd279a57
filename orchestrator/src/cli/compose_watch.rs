//! `berth watch [SERVICE...]` and `berth up --watch`: the CLI asks the daemon to follow the
//! services' `develop.watch` rules and prints what it does until Ctrl-C, which closes the
//! stream and so ends the watch in the daemon.

use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use super::GlobalOpts;
use super::compose_args::{UpArgs, load_options};
use crate::api::client::Client;
use crate::api::project::ProjectRequest;
use crate::api::watch::{WatchEvent, WatchRequest};
use crate::compose;

/// `berth watch`.
#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Do not build and start the services before watching
    #[arg(long)]
    pub no_up: bool,
    /// Print only errors
    #[arg(long)]
    pub quiet: bool,
    /// Services to watch (default: every service with develop.watch rules)
    pub services: Vec<String>,
}

/// `berth watch`: `up -d` of the services (unless `--no-up`), then the watch in the
/// foreground.
pub fn watch(g: &GlobalOpts, args: WatchArgs) -> anyhow::Result<ExitCode> {
    if !args.no_up {
        let code = super::compose_lifecycle::up(g, detached_up(&args.services))?;
        if code != ExitCode::SUCCESS {
            return Ok(code);
        }
    }
    let project = load(g, &args.services, args.no_up)?;
    foreground(g, project, args.services, args.quiet)
}

/// `up --watch -d`: the watch in the foreground once the project is up.
pub fn after_up(g: &GlobalOpts, services: &[String]) -> anyhow::Result<ExitCode> {
    let project = load(g, services, false)?;
    foreground(g, project, services.to_vec(), false)
}

/// `up --watch` (attached): the watch runs on its own thread while the CLI attaches to the
/// containers' output; it ends with the process.
pub fn in_background(g: &GlobalOpts, services: &[String]) -> anyhow::Result<()> {
    let project = load(g, services, false)?;
    let (root, run) = (g.root.clone(), g.run.clone());
    let services = services.to_vec();
    std::thread::Builder::new()
        .name("watch".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                eprintln!("error: watch: cannot start the async runtime");
                return;
            };
            let req = WatchRequest { project, services };
            if let Err(e) = rt.block_on(stream(&root, &run, &req, false)) {
                eprintln!("error: watch: {e:#}");
            }
        })
        .context("cannot start the watch thread")?;
    Ok(())
}

fn detached_up(services: &[String]) -> UpArgs {
    UpArgs {
        detach: true,
        build: false,
        no_build: false,
        pull: None,
        force_recreate: false,
        no_recreate: false,
        renew_anon_volumes: false,
        no_deps: false,
        remove_orphans: false,
        scale: Vec::new(),
        wait: false,
        wait_timeout: None,
        timeout: None,
        abort_on_container_exit: false,
        exit_code_from: None,
        no_start: false,
        attach: Vec::new(),
        no_attach: Vec::new(),
        watch: false,
        abort_on_container_failure: false,
        timestamps: false,
        no_log_prefix: false,
        no_color: false,
        quiet_pull: false,
        yes: false,
        services: services.to_vec(),
    }
}

fn load(g: &GlobalOpts, services: &[String], warn: bool) -> anyhow::Result<ProjectRequest> {
    let project = compose::load(&load_options(g, services, true))?;
    if warn {
        for u in project.unsupported() {
            eprintln!("warning: {u}: parsed but not supported by berth yet; ignored");
        }
    }
    Ok(ProjectRequest::of(project))
}

fn foreground(
    g: &GlobalOpts,
    project: ProjectRequest,
    services: Vec<String>,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let req = WatchRequest { project, services };
    rt.block_on(async {
        tokio::select! {
            r = stream(&g.root, &g.run, &req, quiet) => {
                r?;
                eprintln!("watch: the daemon ended the watch");
                anyhow::Ok(ExitCode::from(1))
            }
            _ = tokio::signal::ctrl_c() => {
                // Leaving drops the stream: the daemon stops watching.
                eprintln!("watch: stopped");
                anyhow::Ok(ExitCode::SUCCESS)
            }
        }
    })
}

async fn stream(
    root: &std::path::Path,
    run: &std::path::Path,
    req: &WatchRequest,
    quiet: bool,
) -> anyhow::Result<()> {
    let client = Client::connect_or_start(root, run).await?;
    client
        .watch(req, |ev| {
            match &ev {
                WatchEvent::Error { .. } => eprintln!("{ev}"),
                _ if quiet => {}
                _ => println!("{ev}"),
            }
            true
        })
        .await
        .context("watch")
}
