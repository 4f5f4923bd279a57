//! `berth run`: a one-off container of a service, with the flags of `docker compose run`
//! (`-u`, `-w`, `-l`, `--cap-add/--cap-drop` override the service; `-P` publishes its ports;
//! `--build`, `--pull`, `--remove-orphans` prepare the project first).

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::GlobalOpts;
use super::compose_args::RunArgs;
use super::compose_lifecycle::{load, report, runtime, stream_builds, wait_ready_of};
use crate::api::client::Client;
use crate::api::project::{
    BuildOptions, BuildRequest, OneOff, Outcome, ProjectRequest, RmRequest, RunRequest, UpOptions,
    UpRequest,
};
use crate::compose;

/// The `--scale` that starts `deps` without scaling any of them down: a dependency that runs
/// more containers than its file asks for (an earlier `up --scale`) keeps them, as `docker
/// compose run` leaves a scaled service alone.
fn keep_replicas(
    project: &compose::Project,
    deps: &[String],
    rows: &[crate::api::project::PsRow],
) -> BTreeMap<String, u32> {
    let mut scale = BTreeMap::new();
    for dep in deps {
        let have = rows.iter().filter(|r| &r.service == dep).count() as u32;
        let want = project.services.get(dep).map_or(1, |s| s.replicas());
        if have > want {
            scale.insert(dep.clone(), have);
        }
    }
    scale
}

/// `berth run`: a one-off container of a service, its dependencies started first (and waited
/// for), with the service's networks but not its published ports (unless `-P`) nor its
/// network aliases (unless `--use-aliases`), as compose does.
pub fn run(g: &GlobalOpts, args: RunArgs) -> anyhow::Result<ExitCode> {
    use std::io::IsTerminal;
    let pull = match args.pull.as_deref() {
        None | Some("policy") | Some("missing") => false,
        Some("always") => true,
        Some("never") => false,
        Some(other) => bail!("--pull {other:?}: use always, missing, never or policy"),
    };
    if pull {
        let pulled = super::compose_containers::pull(
            g,
            super::compose_args::PullArgs {
                quiet: args.quiet || args.quiet_pull,
                ignore_pull_failures: false,
                include_deps: false,
                services: vec![args.service.clone()],
            },
        )?;
        if pulled != ExitCode::SUCCESS {
            bail!(
                "--pull always: pulling the image of {} failed",
                args.service
            );
        }
    }
    let mut req = load(g, std::slice::from_ref(&args.service))?;
    let mut ports = Vec::new();
    for spec in &args.publish {
        let values = compose::canon::parse_port_spec(spec)
            .map_err(|e| anyhow::anyhow!("-p {spec:?}: {e}"))?;
        for v in values {
            ports.push(
                yaml_serde::from_value::<compose::Port>(v)
                    .with_context(|| format!("-p {spec:?}"))?,
            );
        }
    }
    let volumes = args
        .volumes
        .iter()
        .map(|v| run_volume(v, &req.working_dir))
        .collect::<anyhow::Result<Vec<_>>>()?;
    override_service(&mut req, &args, &mut ports)?;
    let name = req.project.name.clone();
    let graph = crate::graph::ServiceGraph::from_project(&req.project)?;
    let mut deps: Vec<String> = graph
        .select(std::slice::from_ref(&args.service), false)?
        .into_iter()
        .filter(|s| s != &args.service)
        .collect();
    if args.no_deps {
        deps.clear();
    }
    let entrypoint = args
        .entrypoint
        .as_deref()
        .map(|e| shell_words::split(e).with_context(|| format!("--entrypoint {e:?}")))
        .transpose()?;
    let tty = !args.no_tty && std::io::stdin().is_terminal();
    let rt = runtime()?;
    let id: String = rt.block_on(async {
        let client = Client::connect_or_start(&g.root, &g.run).await?;
        if args.build {
            build_first(&client, &req, &args, &deps).await?;
        }
        if args.remove_orphans {
            remove_orphans(&client, &req).await?;
        }
        if !deps.is_empty() {
            let up = UpRequest {
                project: req.clone(),
                options: UpOptions {
                    services: deps.clone(),
                    scale: keep_replicas(&req.project, &deps, &client.ps(&name, true).await?),
                    ..UpOptions::default()
                },
            };
            let outcome: Outcome = client.up(&up).await?;
            if report("up", &outcome) != ExitCode::SUCCESS {
                bail!("the dependencies of {} did not start", args.service);
            }
            wait_ready_of(
                g,
                &name,
                &[],
                Some(std::time::Duration::from_secs(300)),
                Some(&deps),
            )
            .await?;
        }
        let body = RunRequest {
            project: req,
            service: args.service.clone(),
            run: OneOff {
                command: args.command.clone(),
                entrypoint,
                env: args.env.clone(),
                name: args.name.clone(),
                tty,
                ports,
                volumes,
                use_aliases: args.use_aliases,
            },
        };
        anyhow::Ok(client.run(&body).await?)
    })?;
    let runtime = super::container::runtime(g)?;
    let rec = runtime.resolve(&id)?;
    if args.detach {
        runtime.start(&rec)?;
        if !args.quiet {
            println!("{}", rec.config.name);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let code = super::container::start_foreground(&runtime, &rec, tty, tty);
    if args.rm {
        let failures: Vec<String> = rt.block_on(async {
            let client = Client::new(&g.run);
            // As `docker compose run --rm`: the one-off's anonymous volumes go with it.
            let req = RmRequest {
                ids: vec![id.clone()],
                volumes: true,
            };
            anyhow::Ok(client.rm(&req).await?)
        })?;
        for f in failures {
            eprintln!("berth: removing the one-off container: {f}");
        }
    }
    code
}

/// What `-u`, `-w`, `-l`, `--cap-add`, `--cap-drop` and `-P` change in the service for its
/// one-off container (`-P` adds the service's own ports to those `-p` asks for).
fn override_service(
    req: &mut ProjectRequest,
    args: &RunArgs,
    ports: &mut Vec<compose::Port>,
) -> anyhow::Result<()> {
    let svc = req
        .project
        .services
        .get_mut(&args.service)
        .ok_or_else(|| anyhow::anyhow!("no such service: {}", args.service))?;
    if let Some(user) = &args.user {
        svc.user = Some(user.clone());
    }
    if let Some(dir) = &args.workdir {
        svc.working_dir = Some(dir.clone());
    }
    for label in &args.labels {
        let (k, v) = label.split_once('=').unwrap_or((label.as_str(), ""));
        if k.is_empty() {
            bail!("-l {label:?}: expected KEY=VALUE");
        }
        svc.labels.insert(k.to_string(), v.to_string());
    }
    for cap in &args.cap_add {
        svc.cap_drop.retain(|c| !c.eq_ignore_ascii_case(cap));
        svc.cap_add.push(cap.clone());
    }
    for cap in &args.cap_drop {
        svc.cap_add.retain(|c| !c.eq_ignore_ascii_case(cap));
        svc.cap_drop.push(cap.clone());
    }
    if args.service_ports {
        let mut own = svc.ports.clone();
        own.append(ports);
        *ports = own;
    }
    Ok(())
}

/// `run --build` builds the image of the service and of its dependencies (none with
/// `--no-deps`) before anything starts.
async fn build_first(
    client: &Client,
    req: &ProjectRequest,
    args: &RunArgs,
    deps: &[String],
) -> anyhow::Result<()> {
    let mut services = vec![args.service.clone()];
    services.extend(deps.iter().cloned());
    let builds = services.iter().any(|s| {
        req.project
            .services
            .get(s)
            .is_some_and(|svc| svc.build.is_some())
    });
    if !builds {
        return Ok(());
    }
    let build = BuildRequest {
        project: req.clone(),
        services,
        with_deps: false,
        options: BuildOptions {
            missing_only: false,
            ..Default::default()
        },
    };
    let failures = stream_builds(client, &build, true).await?;
    if !failures.is_empty() {
        bail!("building: {}", failures.join("; "));
    }
    Ok(())
}

/// `run --remove-orphans`: the project's containers of services no longer in the file go
/// (stopped first).
async fn remove_orphans(client: &Client, req: &ProjectRequest) -> anyhow::Result<()> {
    let rows = client.ps(&req.project.name, true).await?;
    let ids: Vec<String> = rows
        .into_iter()
        .filter(|r| !req.project.services.contains_key(&r.service))
        .map(|r| r.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let failures = client
        .rm(&RmRequest {
            ids,
            volumes: false,
        })
        .await?;
    for f in failures {
        eprintln!("error: removing an orphan container: {f}");
    }
    Ok(())
}

/// `run -v SRC:DST[:ro|rw]`: a bind mount when SRC is a path (relative to the project
/// directory), else the named volume SRC, as compose's short syntax; `run -v /DST`: an
/// anonymous volume (removed with the container by `--rm`).
fn run_volume(spec: &str, project_dir: &std::path::Path) -> anyhow::Result<compose::ServiceVolume> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] if dst.starts_with('/') => {
            return Ok(compose::ServiceVolume {
                kind: compose::VolumeType::Volume,
                source: None,
                target: dst.to_string(),
                read_only: false,
                consistency: None,
                bind: None,
                volume: None,
                tmpfs: None,
                image: None,
            });
        }
        [dst] => bail!(
            "-v {spec:?}: an anonymous volume needs an absolute path in the container (e.g. /{dst})"
        ),
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => bail!("-v {spec:?}: expected SOURCE:TARGET[:ro|rw] or /TARGET"),
    };
    if src.is_empty() || !dst.starts_with('/') {
        bail!("-v {spec:?}: needs a source and an absolute target path");
    }
    let read_only = match mode {
        "" | "rw" => false,
        "ro" => true,
        m => bail!("-v {spec:?}: unknown mode {m:?} (ro or rw)"),
    };
    let bind = src.starts_with(['/', '.', '~']);
    let source = if !bind {
        src.to_string()
    } else if let Some(rest) = src.strip_prefix('~') {
        let home = std::env::var("HOME").context("-v with ~: HOME is not set")?;
        format!("{home}{rest}")
    } else {
        compose::canon::clean(&project_dir.join(src))
            .display()
            .to_string()
    };
    Ok(compose::ServiceVolume {
        kind: if bind {
            compose::VolumeType::Bind
        } else {
            compose::VolumeType::Volume
        },
        source: Some(source),
        target: dst.to_string(),
        read_only,
        consistency: None,
        bind: None,
        volume: None,
        tmpfs: None,
        image: None,
    })
}
