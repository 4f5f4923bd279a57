//! The compose verbs of a project's lifecycle (`up`, `down`, `create`, `run`, `build`, `ps`,
//! `events`): load the project here (files and environment are the CLI's), hand it to the
//! daemon's engine, print what happened.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::GlobalOpts;
use super::compose_args::{DownArgs, UpArgs, load_options};
use crate::api::client::Client;
use crate::api::project::{
    BuildLine, BuildOptions, BuildRequest, DownOptions, DownRequest, Outcome, ProjectRequest,
    PsRow, RmiScope, UpOptions, UpRequest,
};
use crate::compose;

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

pub(super) fn load(g: &GlobalOpts, services: &[String]) -> anyhow::Result<ProjectRequest> {
    let project = super::compose_args::load_project(g, services, true)?;
    for u in project.unsupported() {
        eprintln!("warning: {u}: parsed but not supported by berth yet; ignored");
    }
    Ok(ProjectRequest::of(project))
}

pub(super) fn report(verb: &str, outcome: &Outcome) -> ExitCode {
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    for f in &outcome.failures {
        eprintln!("error: {f}");
    }
    for s in &outcome.skipped {
        eprintln!("not done: {s}");
    }
    for i in &outcome.removed_images {
        println!("{i}");
    }
    if outcome.failures.is_empty() && outcome.skipped.is_empty() {
        if super::compose_containers::shows_progress() {
            eprintln!("{verb}: {} step(s) done", outcome.done);
        }
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `berth up`.
pub fn up(g: &GlobalOpts, args: UpArgs) -> anyhow::Result<ExitCode> {
    let abort = args.abort_on_container_exit || args.exit_code_from.is_some();
    if args.abort_on_container_failure && (args.detach || args.wait) {
        bail!("--abort-on-container-failure needs attached mode: drop -d/--wait");
    }
    if args.abort_on_container_failure && abort {
        bail!("--abort-on-container-failure and --abort-on-container-exit cannot be combined");
    }
    if abort && (args.detach || args.wait) {
        bail!("--abort-on-container-exit and --exit-code-from need attached mode: drop -d/--wait");
    }
    if args.watch && args.wait {
        bail!("--watch runs until Ctrl-C: drop --wait");
    }
    if (!args.attach.is_empty() || !args.no_attach.is_empty()) && (args.detach || args.wait) {
        bail!("--attach/--no-attach choose attached output: drop -d/--wait");
    }
    let scale = parse_scale(&args.scale)?;
    if g.dry_run {
        return dry_run_up(g, &args);
    }
    let pull_always = match args.pull.as_deref() {
        None | Some("missing") => false,
        Some("always") => true,
        Some("never") => false,
        Some(other) => bail!("--pull {other:?}: use always, missing or never"),
    };
    if pull_always {
        // Before planning, so a newer image recreates its containers.
        let pulled = super::compose_containers::pull(
            g,
            super::compose_args::PullArgs {
                quiet: args.quiet_pull,
                ignore_pull_failures: false,
                include_deps: !args.no_deps,
                services: args.services.clone(),
            },
        )?;
        if pulled != ExitCode::SUCCESS {
            bail!("--pull always: pulling the services' images failed");
        }
    }
    let project = load(g, &args.services)?;
    // `pull_policy: always` and `refresh` services pull on every `up` (all of them already did
    // with --pull always; a pull of an unchanged image fetches only its manifest), `daily`,
    // `weekly` and `every_<duration>` ones when their image was last tagged longer ago than
    // that; `never` and `build` are the engine's, as is a missing image.
    let stale = super::compose_containers::stale_images(g, &project.project)?;
    let always: Vec<String> = project
        .project
        .services
        .iter()
        .filter(|(n, s)| {
            matches!(
                s.pull_policy,
                Some(compose::PullPolicy::Always | compose::PullPolicy::Refresh)
            ) || stale.contains(*n)
        })
        .filter(|(n, s)| {
            s.image.is_some() && (args.services.is_empty() || args.services.contains(n))
        })
        .map(|(n, _)| n.clone())
        .collect();
    if !pull_always && args.pull.as_deref() != Some("never") && !always.is_empty() {
        let pulled = super::compose_containers::pull(
            g,
            super::compose_args::PullArgs {
                quiet: args.quiet_pull,
                ignore_pull_failures: false,
                include_deps: false,
                services: always.clone(),
            },
        )?;
        if pulled != ExitCode::SUCCESS {
            bail!("pull_policy ({}): pulling failed", always.join(", "));
        }
    }
    let name = project.project.name.clone();
    if let Some(svc) = &args.exit_code_from
        && !project.project.services.contains_key(svc)
    {
        bail!("--exit-code-from {svc}: no such service in project {name}");
    }
    let completes: Vec<String> = project
        .project
        .services
        .values()
        .flat_map(|s| s.depends_on.iter())
        .filter(|(_, d)| d.condition == compose::DependsCondition::ServiceCompletedSuccessfully)
        .map(|(dep, _)| dep.clone())
        .collect();
    let req = UpRequest {
        project,
        options: UpOptions {
            services: args.services.clone(),
            no_deps: args.no_deps,
            force_recreate: args.force_recreate,
            no_recreate: args.no_recreate,
            remove_orphans: args.remove_orphans,
            scale,
            no_start: args.no_start,
            // Built above, with progress.
            build: false,
            no_build: args.no_build,
            pull_never: args.pull.as_deref() == Some("never"),
            renew_anon_volumes: args.renew_anon_volumes,
            dry_run: false,
        },
    };
    let rt = runtime()?;
    let outcome: Outcome = rt.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        // Images first, with their progress on screen: every image with --build, else the
        // missing ones (the daemon builds them in parallel either way).
        let builds = req
            .project
            .project
            .services
            .values()
            .any(|s| s.build.is_some());
        if builds && !args.no_build {
            let build = BuildRequest {
                project: req.project.clone(),
                services: args.services.clone(),
                with_deps: !args.no_deps,
                options: BuildOptions {
                    missing_only: !args.build,
                    ..Default::default()
                },
            };
            let failures = stream_builds(&client, &build, true).await?;
            if !failures.is_empty() {
                return anyhow::Ok(Outcome {
                    failures,
                    ..Outcome::default()
                });
            }
        }
        anyhow::Ok(client.up(&req).await?)
    })?;
    let code = report("up", &outcome);
    if args.watch && outcome.failures.is_empty() && outcome.skipped.is_empty() {
        if args.detach {
            return super::compose_watch::after_up(g, &args.services);
        }
        super::compose_watch::in_background(g, &args.services)?;
    }
    if args.wait && outcome.failures.is_empty() && outcome.skipped.is_empty() {
        let timeout = args.wait_timeout.map(std::time::Duration::from_secs);
        rt.block_on(wait_ready(g, &name, &completes, timeout))?;
        eprintln!("up: every service is running (and healthy where it has a healthcheck)");
        return Ok(code);
    }
    if !args.detach && !args.wait && outcome.failures.is_empty() && outcome.skipped.is_empty() {
        return super::compose_containers::attached(
            g,
            super::compose_containers::AttachOptions {
                services: args.services,
                attach: args.attach,
                no_attach: args.no_attach,
                abort,
                exit_code_from: args.exit_code_from,
                completes,
                timeout: args.timeout,
                abort_on_failure: args.abort_on_container_failure,
                timestamps: args.timestamps,
                no_log_prefix: args.no_log_prefix,
                no_color: args.no_color,
            },
        );
    }
    Ok(code)
}

/// `--scale SERVICE=N` flags as a map.
fn parse_scale(flags: &[String]) -> anyhow::Result<BTreeMap<String, u32>> {
    let mut scale = BTreeMap::new();
    for s in flags {
        let (svc, n) = s
            .split_once('=')
            .with_context(|| format!("--scale {s:?}: expected SERVICE=N"))?;
        let n: u32 = n
            .parse()
            .with_context(|| format!("--scale {s:?}: {n:?} is not a number"))?;
        scale.insert(svc.to_string(), n);
    }
    Ok(scale)
}

/// `berth --dry-run up`: the plan the engine would run (one step per line, after the steps
/// it waits for); nothing is pulled, built, created or started.
fn dry_run_up(g: &GlobalOpts, args: &UpArgs) -> anyhow::Result<ExitCode> {
    let scale = parse_scale(&args.scale)?;
    let req = UpRequest {
        project: load(g, &args.services)?,
        options: UpOptions {
            services: args.services.clone(),
            no_deps: args.no_deps,
            force_recreate: args.force_recreate,
            no_recreate: args.no_recreate,
            remove_orphans: args.remove_orphans,
            scale,
            no_start: args.no_start,
            build: args.build,
            no_build: args.no_build,
            pull_never: args.pull.as_deref() == Some("never"),
            renew_anon_volumes: args.renew_anon_volumes,
            dry_run: true,
        },
    };
    let outcome: Outcome = runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.up(&req).await?)
    })?;
    print!("{}", outcome.plan);
    Ok(ExitCode::SUCCESS)
}

/// `up --wait`: until every container runs (healthy where checked), or exited 0 when a
/// dependent waits for its completion; fails at once on an unhealthy or failed container.
async fn wait_ready(
    g: &GlobalOpts,
    project: &str,
    completes: &[String],
    timeout: Option<std::time::Duration>,
) -> anyhow::Result<()> {
    wait_ready_of(g, project, completes, timeout, None).await
}

pub(super) async fn wait_ready_of(
    g: &GlobalOpts,
    project: &str,
    completes: &[String],
    timeout: Option<std::time::Duration>,
    only: Option<&[String]>,
) -> anyhow::Result<()> {
    let client = Client::new(&g.run);
    let start = std::time::Instant::now();
    loop {
        let mut rows: Vec<PsRow> = client.ps(project, true).await?;
        if let Some(only) = only {
            rows.retain(|r| only.contains(&r.service));
        }
        let mut pending = Vec::new();
        for r in &rows {
            let done_job = completes.contains(&r.service) && r.exit_code == Some(0);
            match (r.status.as_str(), r.health.as_deref()) {
                ("running", Some("unhealthy")) => bail!("container {} is unhealthy", r.name),
                ("running", Some("healthy")) | ("running", None) => {}
                ("running", Some(_)) => pending.push(r.name.clone()),
                _ if done_job => {}
                (status, _) => bail!(
                    "container {} is {status} (exit code {})",
                    r.name,
                    r.exit_code.map_or("?".to_string(), |c| c.to_string())
                ),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        if timeout.is_some_and(|t| start.elapsed() > t) {
            bail!("--wait-timeout: still waiting for {}", pending.join(", "));
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// `berth down`.
pub fn down(g: &GlobalOpts, args: DownArgs) -> anyhow::Result<ExitCode> {
    let rmi = match args.rmi.as_deref() {
        None => None,
        Some("local") => Some(RmiScope::Local),
        Some("all") => Some(RmiScope::All),
        Some(other) => bail!("--rmi {other:?}: use local or all"),
    };
    if g.dry_run && !args.services.is_empty() {
        bail!("--dry-run: down prints its plan for the whole project only (drop the services)");
    }
    if !args.services.is_empty() {
        if rmi.is_some() {
            bail!("--rmi removes the project's images: not with services named");
        }
        return super::compose_containers::down_services(g, &args);
    }
    let project = load(g, &[])?;
    let req = DownRequest {
        project,
        options: DownOptions {
            volumes: args.volumes,
            remove_orphans: args.remove_orphans,
            rmi,
            timeout: args.timeout,
            dry_run: g.dry_run,
        },
    };
    let outcome: Outcome = runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.down(&req).await?)
    })?;
    if g.dry_run {
        print!("{}", outcome.plan);
        return Ok(ExitCode::SUCCESS);
    }
    Ok(report("down", &outcome))
}

/// `berth build`: builds the images of the services with a `build:` section, in the daemon.
pub fn build(g: &GlobalOpts, args: super::compose_args::BuildArgs) -> anyhow::Result<ExitCode> {
    let project = load(g, &args.services)?;
    // `--build-arg KEY` takes the value from this shell's environment (not the daemon's).
    let build_args = args
        .build_args
        .iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect();
    let req = BuildRequest {
        project,
        services: args.services,
        with_deps: false,
        options: BuildOptions {
            no_cache: args.no_cache,
            pull: args.pull,
            build_args,
            missing_only: false,
        },
    };
    let failures = runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        stream_builds(&client, &req, false).await
    })?;
    for f in &failures {
        eprintln!("error: {f}");
    }
    Ok(if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Runs the builds of `req` in the daemon, printing each finished step as it comes
/// (`service: [n/N] INSTR 1.2s` or `CACHED`; on stderr when `to_stderr`, as `up` does);
/// answers the failures.
pub(super) async fn stream_builds(
    client: &Client,
    req: &BuildRequest,
    to_stderr: bool,
) -> anyhow::Result<Vec<String>> {
    let mut failures = None;
    client
        .build(req, |line: BuildLine| match line {
            BuildLine::Step {
                service,
                display,
                cached,
                elapsed_ms,
            } => {
                let how = if cached {
                    " CACHED".to_string()
                } else {
                    format!(" {:.1}s", elapsed_ms as f64 / 1000.0)
                };
                if to_stderr {
                    eprintln!("{service}: {display}{how}");
                } else {
                    println!("{service}: {display}{how}");
                }
                true
            }
            BuildLine::Done { failures: f } => {
                failures = Some(f);
                false
            }
        })
        .await?;
    failures.ok_or_else(|| anyhow::anyhow!("the daemon ended the build stream without an outcome"))
}

/// `berth create`: the services' networks, volumes and containers, none started.
pub fn create(g: &GlobalOpts, args: super::compose_args::ServicesArgs) -> anyhow::Result<ExitCode> {
    let project = load(g, &args.services)?;
    let req = UpRequest {
        project,
        options: UpOptions {
            services: args.services,
            no_start: true,
            ..UpOptions::default()
        },
    };
    let outcome: Outcome = runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.up(&req).await?)
    })?;
    Ok(report("create", &outcome))
}

/// `berth events`: the daemon's event stream, only what concerns this project's containers
/// (of the given services); text as compose prints it, or one JSON object per line.
pub fn events(g: &GlobalOpts, args: super::compose_args::EventsArgs) -> anyhow::Result<ExitCode> {
    let project = compose::load(&load_options(g, &[], true))?;
    for s in &args.services {
        if !project.services.contains_key(s) {
            bail!("no such service: {s}");
        }
    }
    let name = project.name.clone();
    runtime()?.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        client
            .events(|ev: crate::api::Event| {
                let a = &ev.attributes;
                let whole_project = ev.kind == "project" && ev.id == name;
                if a.get("project") != Some(&name) && !whole_project {
                    return true;
                }
                let service = a.get("service").cloned().unwrap_or_default();
                if !args.services.is_empty() && !whole_project && !args.services.contains(&service)
                {
                    return true;
                }
                if args.json {
                    println!("{}", serde_json::to_string(&ev).unwrap_or_default());
                } else {
                    let attrs: Vec<String> = a
                        .iter()
                        .filter(|(k, _)| k.as_str() != "project")
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect();
                    let attrs = if attrs.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", attrs.join(", "))
                    };
                    println!("{} {} {} {}{attrs}", ev.time, ev.kind, ev.action, ev.id);
                }
                use std::io::Write;
                // A closed pipe ends the stream.
                std::io::stdout().flush().is_ok()
            })
            .await?;
        anyhow::Ok(ExitCode::SUCCESS)
    })
}
