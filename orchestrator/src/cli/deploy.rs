//! `berth deploy --swarm DOCKER_HOST`: the project on a Docker Swarm. berth does what
//! `docker stack deploy` leaves to its user: builds the stack's images, pushes them to a
//! registry every node reaches, pins them by the digests pushed, converts the file to what
//! Swarm runs (`convert::swarm`), then hands it to the manager with the docker CLI (`docker
//! -H DOCKER_HOST stack deploy -c - NAME`). `--rm` removes the stack.

use std::io::Write;
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::Args;

use super::GlobalOpts;
use super::compose_args::load_options;
use super::publish::{self, Publish};
use crate::compose;
use crate::convert::swarm;

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
    let publish = Publish {
        registry: args.registry.clone(),
        insecure: args.insecure_registry,
        build_all: args.build,
        no_build: args.no_build,
    };
    publish::build(g, &project, &publish)?;
    let images = publish::push(g, &project, &publish)?;
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
