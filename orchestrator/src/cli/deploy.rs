//! `berth deploy --swarm DOCKER_HOST`: the project on a Docker Swarm. berth does what
//! `docker stack deploy` leaves to its user: builds the stack's images, pushes them to a
//! registry every node reaches, pins them by the digests pushed, converts the file to what
//! Swarm runs (`convert::swarm`), then hands it to the manager with the docker CLI (`docker
//! -H DOCKER_HOST stack deploy -c - NAME`). `--rm` removes the stack.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use super::GlobalOpts;
use super::compose_args::{BuildArgs, load_options};
use crate::compose::{self, Project};
use crate::convert::swarm;
use berth_runtime::image::registry::PullOptions;

/// `berth deploy`.
#[derive(Args, Debug)]
pub struct DeployArgs {
    /// The Swarm manager's Docker API (unix:///path, tcp://host:port, ssh://...)
    #[arg(long, value_name = "DOCKER_HOST")]
    swarm: String,
    /// Compose file(s), as before the verb (`berth -f FILE deploy` works too)
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    files: Vec<std::path::PathBuf>,
    /// Project name, which names the stack (as before the verb)
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    project_name: Option<String>,
    /// Registry the nodes pull from (host[:port][/path]); the built images are pushed there.
    /// Default: where each image's name points
    #[arg(long, value_name = "REGISTRY")]
    registry: Option<String>,
    /// Push to the registry over plain HTTP (as Docker's insecure-registries)
    #[arg(long)]
    insecure_registry: bool,
    /// Rebuild every image that has a build section (default: build only the missing ones)
    #[arg(long, conflicts_with = "no_build")]
    build: bool,
    /// Never build: push the images as they are in the store
    #[arg(long)]
    no_build: bool,
    /// No routing mesh (nodes without IPVS): publish ports on the nodes that run a task and
    /// find tasks by DNS round robin
    #[arg(long)]
    no_mesh: bool,
    /// Print the converted file instead of deploying it (after building and pushing)
    #[arg(long)]
    dry_run: bool,
    /// Remove the stack from the swarm instead of deploying it
    #[arg(long, conflicts_with_all = ["build", "no_build", "dry_run", "registry"])]
    rm: bool,
    /// The docker CLI to run
    #[arg(long, value_name = "PATH", default_value = "docker")]
    docker: String,
}

/// Builds, pushes, pins, converts, deploys (or removes, with `--rm`).
pub fn run(g: &GlobalOpts, args: DeployArgs) -> anyhow::Result<ExitCode> {
    let mut g = g.clone();
    g.files.extend(args.files.iter().cloned());
    if args.project_name.is_some() {
        g.project_name.clone_from(&args.project_name);
    }
    let g = &g;
    let project = compose::load(&load_options(g, &[], true))?;
    let stack = project.name.clone();
    if args.rm {
        return docker(&args, &["stack", "rm", &stack], None);
    }
    build(g, &project, &args)?;
    let images = push(g, &project, &args)?;
    let conv = swarm::convert(
        &project,
        &swarm::Options {
            images,
            no_mesh: args.no_mesh,
        },
    )
    .context("converting for Swarm")?;
    for w in &conv.warnings {
        eprintln!("warning: {w}");
    }
    let yaml = conv.to_yaml().context("rendering the stack file")?;
    if args.dry_run {
        std::io::stdout()
            .lock()
            .write_all(yaml.as_bytes())
            .context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    docker(&args, &["stack", "deploy", "-c", "-", &stack], Some(&yaml))
}

/// Services with a build section whose image is to be built now.
fn to_build(g: &GlobalOpts, project: &Project, args: &DeployArgs) -> anyhow::Result<Vec<String>> {
    if args.no_build {
        return Ok(Vec::new());
    }
    let store = super::image::open_store(g)?;
    Ok(project
        .services
        .iter()
        .filter(|(_, svc)| svc.build.is_some())
        .filter(|(name, _)| {
            args.build
                || project
                    .image_of(name)
                    .is_none_or(|img| store.resolve_id(&img).is_err())
        })
        .map(|(name, _)| name.clone())
        .collect())
}

fn build(g: &GlobalOpts, project: &Project, args: &DeployArgs) -> anyhow::Result<()> {
    let services = to_build(g, project, args)?;
    if services.is_empty() {
        return Ok(());
    }
    let code = super::compose_lifecycle::build(
        g,
        BuildArgs {
            no_cache: false,
            pull: false,
            build_args: Vec::new(),
            services,
        },
    )?;
    if code != ExitCode::SUCCESS {
        bail!("building the stack's images failed");
    }
    Ok(())
}

/// Pushes each built service's image (to `--registry` under its own repository path, or
/// where its name points) and answers the pinned references, by service.
fn push(
    g: &GlobalOpts,
    project: &Project,
    args: &DeployArgs,
) -> anyhow::Result<BTreeMap<String, String>> {
    use berth_runtime::image::Reference;
    use berth_runtime::image::push::{self, PushProgress};
    let store = super::image::open_store(g)?;
    let mut opts = PullOptions::default();
    let mut pinned = BTreeMap::new();
    // One push per image, however many services run it.
    let mut pushed: BTreeMap<String, String> = BTreeMap::new();
    for (name, svc) in &project.services {
        if svc.build.is_none() {
            continue;
        }
        let Some(image) = project.image_of(name) else {
            continue;
        };
        if let Some(p) = pushed.get(&image) {
            pinned.insert(name.clone(), p.clone());
            continue;
        }
        let r: Reference = image
            .parse()
            .with_context(|| format!("service {name:?}: image {image:?}"))?;
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let target = match &args.registry {
            Some(reg) => {
                let target = format!("{}/{}:{tag}", reg.trim_end_matches('/'), r.repository);
                let id = store
                    .resolve_id(&image)
                    .with_context(|| format!("service {name:?}: image {image:?}"))?;
                store
                    .tag(&id, &target)
                    .with_context(|| format!("tagging {image} as {target}"))?;
                target
            }
            None => image.clone(),
        };
        let tr: Reference = target.parse()?;
        if args.insecure_registry {
            opts.insecure.push(tr.registry.clone());
        }
        eprintln!("Pushing {name}: {target}");
        let quiet = |_: PushProgress| {};
        let res = push::push(&store, &target, &opts, &quiet)
            .with_context(|| format!("pushing {name} ({target})"))?;
        let pin = format!("{}:{tag}@{}", tr.name(), res.digest);
        eprintln!("{name}: {pin}");
        pushed.insert(image, pin.clone());
        pinned.insert(name.clone(), pin);
    }
    Ok(pinned)
}

/// Runs the docker CLI against the manager, `stdin` piped in when given.
fn docker(args: &DeployArgs, argv: &[&str], stdin: Option<&str>) -> anyhow::Result<ExitCode> {
    let mut cmd = Command::new(&args.docker);
    cmd.arg("-H").arg(&args.swarm).args(argv);
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd
        .spawn()
        .with_context(|| format!("running {} (the docker CLI)", args.docker))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .context("writing the stack file to docker")?;
    }
    let status = child.wait().context("waiting for the docker CLI")?;
    if !status.success() {
        bail!(
            "{} -H {} {} failed ({status})",
            args.docker,
            args.swarm,
            argv.join(" ")
        );
    }
    Ok(ExitCode::SUCCESS)
}
