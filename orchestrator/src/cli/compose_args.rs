//! The clap arguments of the compose verbs and their dispatch: the verbs act on the project
//! found from the working directory or `-f`/`-p` (`compose_lifecycle.rs` hands it to the
//! daemon's engine, `compose_containers.rs` acts on its existing containers).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use anyhow::{Context, bail};

use super::GlobalOpts;
use crate::compose::{self, LoadOptions};
use crate::graph::ServiceGraph;

/// Top-level verbs that act on a whole project.
#[derive(Subcommand, Debug)]
pub enum StackCommand {
    /// Create and start the project's containers
    // `-V` is --renew-anon-volumes here, as in compose (berth -V still prints the version).
    #[command(disable_version_flag = true)]
    Up(UpArgs),
    /// Stop and remove the project's containers and networks
    Down(DownArgs),
    /// List the project's containers
    Ps(PsArgs),
    /// Show service logs
    Logs(LogsArgs),
    /// Run a command in a running service container
    Exec(ExecArgs),
    /// Run a one-off command in a new container of a service
    Run(RunArgs),
    /// Create the services' containers without starting them
    Create(ServicesArgs),
    /// Start existing service containers
    Start(ServicesArgs),
    /// Stop service containers
    Stop(StopArgs),
    /// Restart service containers
    Restart(StopArgs),
    /// Kill service containers
    Kill(KillArgs),
    /// Remove stopped service containers
    Rm(RmArgs),
    /// Pause service containers
    Pause(ServicesArgs),
    /// Unpause service containers
    Unpause(ServicesArgs),
    /// Show the processes of service containers
    Top(ServicesArgs),
    /// Print the public port of a published service port
    Port(PortArgs),
    /// List the images used by the project's containers
    Images(ImagesArgs),
    /// Pull service images
    Pull(PullArgs),
    /// Build service images
    Build(BuildArgs),
    /// Wait for service containers to stop, print their exit codes
    Wait(ServicesArgs),
    /// List running projects
    Ls(LsArgs),
    /// Live resource usage of service containers
    Stats(StatsArgs),
    /// Copy files between a service container and the host
    Cp(CpArgs),
    /// Stream the project's events
    Events(EventsArgs),
    /// Validate the project and print its fully resolved model
    Config(ConfigArgs),
    /// Convert the project for another engine (Kubernetes manifests)
    Convert(super::convert::ConvertArgs),
    /// Follow the services' develop.watch rules: sync, restart or rebuild on file changes
    Watch(super::compose_watch::WatchArgs),
    /// Push the images of services that are built (`build:` and `image:`)
    Push(super::compose_push::PushArgs),
}

/// `berth up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Detached: start in the background and return
    #[arg(short, long)]
    pub detach: bool,
    /// Build images before starting
    #[arg(long, conflicts_with = "no_build")]
    pub build: bool,
    /// Never build images
    #[arg(long)]
    pub no_build: bool,
    /// Pull policy: always, missing, never
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Recreate containers even if their configuration is unchanged
    #[arg(long, conflicts_with = "no_recreate")]
    pub force_recreate: bool,
    /// Keep existing containers even if their configuration changed
    #[arg(long)]
    pub no_recreate: bool,
    /// Recreate the containers with fresh anonymous volumes instead of the previous
    /// containers' ones (implies --force-recreate)
    #[arg(short = 'V', long, conflicts_with = "no_recreate")]
    pub renew_anon_volumes: bool,
    /// Do not start the selected services' dependencies
    #[arg(long)]
    pub no_deps: bool,
    /// Remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Scale a service: SERVICE=N (repeatable)
    #[arg(long, value_name = "SERVICE=N")]
    pub scale: Vec<String>,
    /// Wait for services to be running or healthy (implies -d)
    #[arg(long)]
    pub wait: bool,
    /// Maximum seconds to wait with --wait
    #[arg(long, value_name = "SECONDS")]
    pub wait_timeout: Option<u64>,
    /// Shutdown timeout in seconds
    #[arg(short, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Stop all containers when any container stops
    #[arg(long)]
    pub abort_on_container_exit: bool,
    /// Return the exit code of this service's container (implies --abort-on-container-exit)
    #[arg(long, value_name = "SERVICE")]
    pub exit_code_from: Option<String>,
    /// Create but do not start
    #[arg(long)]
    pub no_start: bool,
    /// Attach only to these services' output
    #[arg(long, value_name = "SERVICE")]
    pub attach: Vec<String>,
    /// Do not attach to these services' output
    #[arg(long, value_name = "SERVICE")]
    pub no_attach: Vec<String>,
    /// Follow the services' develop.watch rules once up (Ctrl-C ends it)
    #[arg(short = 'w', long)]
    pub watch: bool,
    /// Stop all containers when any container exits with a non-zero code
    #[arg(long)]
    pub abort_on_container_failure: bool,
    /// Show timestamps in the attached output
    #[arg(long)]
    pub timestamps: bool,
    /// The attached output without `service-N  | ` prefixes
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Monochrome attached output
    #[arg(long)]
    pub no_color: bool,
    /// Pull without printing progress
    #[arg(long)]
    pub quiet_pull: bool,
    /// Answer yes to prompts (berth asks none; accepted as Compose's `-y`)
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Services to start (default: all)
    pub services: Vec<String>,
}

/// `berth down`.
#[derive(Args, Debug)]
pub struct DownArgs {
    /// Also remove named volumes declared in the file and anonymous volumes
    #[arg(short, long)]
    pub volumes: bool,
    /// Remove images: `local` (those without a custom tag) or `all`
    #[arg(long, value_name = "TYPE")]
    pub rmi: Option<String>,
    /// Remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Shutdown timeout in seconds
    #[arg(short, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Services whose containers go (default: the whole project, networks too)
    pub services: Vec<String>,
}

/// `berth ps`.
#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show stopped containers too
    #[arg(short, long)]
    pub all: bool,
    /// Only container ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Only service names
    #[arg(long)]
    pub services: bool,
    /// Output format: table, json (one object per line, as Compose) or a Go template
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only containers in this state: paused, restarting, removing, running, dead, created,
    /// exited (repeatable)
    #[arg(long, value_name = "STATE")]
    pub status: Vec<String>,
    /// Filter by a property: status=STATE
    #[arg(long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// Don't truncate ids and commands
    #[arg(long)]
    pub no_trunc: bool,
    /// Include orphaned services (not declared by the project); `--orphans=false` leaves them out
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub orphans: bool,
    /// Services to list
    pub service_names: Vec<String>,
}

/// `berth logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines from the end of each log
    #[arg(short = 'n', long, value_name = "N")]
    pub tail: Option<String>,
    /// Show timestamps
    #[arg(short, long)]
    pub timestamps: bool,
    /// Logs since a timestamp or relative time (e.g. 10m)
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Logs until a timestamp or relative time
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Monochrome output
    #[arg(long)]
    pub no_color: bool,
    /// The lines without their `service-N  | ` prefix
    #[arg(long)]
    pub no_log_prefix: bool,
    /// Services to show
    pub services: Vec<String>,
}

/// `berth exec`.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Run in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Disable pseudo-tty allocation
    #[arg(short = 'T', long = "no-tty")]
    pub no_tty: bool,
    /// Keep standard input open (the default; accepted as `docker compose exec -i`)
    #[arg(short, long, hide = true)]
    pub interactive: bool,
    /// Allocate a pseudo-tty (the default on a terminal; accepted as `docker compose exec -t`)
    #[arg(short, long, hide = true)]
    pub tty: bool,
    /// Run as this user
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Index of the container when the service has several replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Service name
    pub service: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

/// `berth run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits
    #[arg(long)]
    pub rm: bool,
    /// Do not start linked services
    #[arg(long)]
    pub no_deps: bool,
    /// Set environment variables
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Bind mount a volume
    #[arg(short, long = "volume", value_name = "SPEC")]
    pub volumes: Vec<String>,
    /// Publish a container port
    #[arg(short, long = "publish", value_name = "SPEC")]
    pub publish: Vec<String>,
    /// Override the image's entrypoint
    #[arg(long, value_name = "CMD")]
    pub entrypoint: Option<String>,
    /// Container name
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,
    /// Disable pseudo-tty allocation
    #[arg(short = 'T', long = "no-tty")]
    pub no_tty: bool,
    /// Keep standard input open (the default)
    #[arg(short, long)]
    pub interactive: bool,
    /// Allocate a pseudo-tty (the default on a terminal; accepted as `docker compose run -t`)
    #[arg(short, long, hide = true)]
    pub tty: bool,
    /// Run as this user (name or uid[:gid])
    #[arg(short, long, value_name = "USER")]
    pub user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long, value_name = "DIR")]
    pub workdir: Option<String>,
    /// Add or override a label (KEY=VALUE)
    #[arg(short, long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Add Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long, value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// Publish the service's ports too, as its file maps them
    #[arg(short = 'P', long)]
    pub service_ports: bool,
    /// Give the container the service's network aliases (the service name, `aliases:`)
    #[arg(long)]
    pub use_aliases: bool,
    /// Build the images before starting
    #[arg(long)]
    pub build: bool,
    /// Pull the image first: always, missing, never or policy (the default: the file's)
    #[arg(long, value_name = "POLICY")]
    pub pull: Option<String>,
    /// Pull without printing progress
    #[arg(long)]
    pub quiet_pull: bool,
    /// Print nothing on standard output (the name of a detached container)
    #[arg(short, long)]
    pub quiet: bool,
    /// Remove containers of services no longer in the file
    #[arg(long)]
    pub remove_orphans: bool,
    /// Service name
    pub service: String,
    /// Command and arguments
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Verbs that take only a list of services.
#[derive(Args, Debug)]
pub struct ServicesArgs {
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth images`.
#[derive(Args, Debug)]
pub struct ImagesArgs {
    /// Output format: table or json (as Compose's)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Only image ids
    #[arg(short, long)]
    pub quiet: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth pull`.
#[derive(Args, Debug)]
pub struct PullArgs {
    /// No progress output
    #[arg(short, long)]
    pub quiet: bool,
    /// Report pull failures but exit 0
    #[arg(long)]
    pub ignore_pull_failures: bool,
    /// Pull the images of the services' dependencies too
    #[arg(long)]
    pub include_deps: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth stats`.
#[derive(Args, Debug)]
pub struct StatsArgs {
    /// One sample, then exit
    #[arg(long)]
    pub no_stream: bool,
    /// table, json (one object per line) or a Go template (`{{.Name}} {{.CPUPerc}}`)
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth events`.
#[derive(Args, Debug)]
pub struct EventsArgs {
    /// One JSON object per line
    #[arg(long)]
    pub json: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth stop` / `berth restart`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Shutdown timeout in seconds
    #[arg(short, long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth kill`.
#[derive(Args, Debug)]
pub struct KillArgs {
    /// Signal to send
    #[arg(short, long, default_value = "SIGKILL")]
    pub signal: String,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Do not ask for confirmation
    #[arg(short, long)]
    pub force: bool,
    /// Stop the containers first
    #[arg(short, long)]
    pub stop: bool,
    /// Remove anonymous volumes too
    #[arg(short, long)]
    pub volumes: bool,
    /// Services (default: all)
    pub services: Vec<String>,
}

/// `berth port`.
#[derive(Args, Debug)]
pub struct PortArgs {
    /// tcp or udp
    #[arg(long, default_value = "tcp")]
    pub protocol: String,
    /// Index of the container when the service has several replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// Service name
    pub service: String,
    /// Private port
    pub private_port: u16,
}

/// `berth build`.
#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Do not use the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Always pull newer versions of base images
    #[arg(long)]
    pub pull: bool,
    /// Set build-time variables
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Services to build (default: all with `build:`)
    pub services: Vec<String>,
}

/// `berth ls`.
#[derive(Args, Debug)]
pub struct LsArgs {
    /// Show stopped projects too
    #[arg(short, long)]
    pub all: bool,
    /// Only project names
    #[arg(short, long)]
    pub quiet: bool,
    /// Output format: table or json
    #[arg(long, value_name = "FORMAT")]
    pub format: Option<String>,
}

/// `berth cp`.
#[derive(Args, Debug)]
pub struct CpArgs {
    /// Index of the container when the service has several replicas
    #[arg(long, default_value_t = 1)]
    pub index: u32,
    /// SERVICE:SRC_PATH or a host path
    pub source: String,
    /// SERVICE:DEST_PATH or a host path
    pub dest: String,
}

/// `berth config`.
#[derive(Args, Debug)]
pub struct ConfigArgs {
    /// Output format: yaml or json
    #[arg(long, default_value = "yaml", value_name = "FORMAT")]
    pub format: String,
    /// Print the service names, one per line
    #[arg(long)]
    pub services: bool,
    /// Print the volume names, one per line
    #[arg(long)]
    pub volumes: bool,
    /// Print the network names, one per line
    #[arg(long)]
    pub networks: bool,
    /// Print the profile names, one per line
    #[arg(long)]
    pub profiles: bool,
    /// Print the image names, one per line
    #[arg(long)]
    pub images: bool,
    /// Only validate; the exit status tells
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the config hash of SERVICE (`*` for all)
    #[arg(long, value_name = "SERVICE")]
    pub hash: Option<String>,
    /// Do not interpolate variables
    #[arg(long)]
    pub no_interpolate: bool,
    /// Write the output to this file instead of standard output
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// Services to include (default: all)
    pub service_names: Vec<String>,
}

/// The loader options the global flags ask for.
pub(crate) fn load_options(g: &GlobalOpts, services: &[String], interpolate: bool) -> LoadOptions {
    LoadOptions {
        files: g.files.clone(),
        project_name: g.project_name.clone(),
        project_directory: g.project_directory.clone(),
        env_files: g.env_files.clone(),
        profiles: g.profiles.clone(),
        services: services.to_vec(),
        interpolate,
        ..LoadOptions::default()
    }
}

/// Loads the project the global flags name. With `-p NAME` and no file found, the files the
/// project's containers were made from (their labels) are loaded, so that `ps`, `logs`,
/// `stop`, `down`, `rm` ... reach a project by name from any directory, as with Compose.
pub(crate) fn load_project(
    g: &GlobalOpts,
    services: &[String],
    interpolate: bool,
) -> anyhow::Result<compose::Project> {
    let mut opts = load_options(g, services, interpolate);
    let name = match (compose::load(&opts), &g.project_name) {
        (Err(compose::LoadError::NoComposeFile { .. }), Some(name)) if g.files.is_empty() => {
            name.clone()
        }
        (loaded, _) => return Ok(loaded?),
    };
    let Some((files, dir)) = super::compose_containers::recorded_files(g, &name)? else {
        bail!("no Compose file found, and project {name} has no containers to find its files by");
    };
    opts.files = files
        .split(',')
        .filter(|f| !f.is_empty() && *f != "-")
        .map(std::path::PathBuf::from)
        .collect();
    if opts.files.is_empty() {
        bail!("project {name} was made from standard input: give its file with -f");
    }
    if opts.project_directory.is_none() {
        opts.project_directory = Some(dir.into());
    }
    compose::load(&opts).with_context(|| {
        format!("project {name}: loading {files}, the files its containers were made from")
    })
}

/// `berth config`: load, validate, print the resolved model or one of its lists.
fn config(g: &GlobalOpts, args: ConfigArgs) -> anyhow::Result<ExitCode> {
    let format = args.format.to_ascii_lowercase();
    if format != "yaml" && format != "json" {
        anyhow::bail!("unknown --format {:?}: use yaml or json", args.format);
    }
    let opts = load_options(g, &args.service_names, !args.no_interpolate);
    let mut project = compose::load(&opts)?;
    if !args.service_names.is_empty() {
        let graph = ServiceGraph::from_project(&project)?;
        let keep = graph.select(&args.service_names, false)?;
        project.services.retain(|name, _| keep.contains(name));
    }
    for u in project.unsupported() {
        tracing::warn!("{u} is parsed but not supported by berth yet");
    }
    if args.quiet {
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    let lines = |items: Vec<String>| -> String { items.into_iter().map(|s| s + "\n").collect() };
    if args.services {
        out = lines(project.services.keys().cloned().collect());
    } else if args.volumes {
        out = lines(project.volumes.keys().cloned().collect());
    } else if args.networks {
        out = lines(project.networks.keys().cloned().collect());
    } else if args.profiles {
        out = lines(project.all_profiles());
    } else if args.images {
        let names: Vec<String> = project.services.keys().cloned().collect();
        out = lines(names.iter().filter_map(|n| project.image_of(n)).collect());
    } else if let Some(which) = &args.hash {
        let names: Vec<String> = if which == "*" {
            project.services.keys().cloned().collect()
        } else {
            which.split(',').map(|s| s.trim().to_string()).collect()
        };
        for n in names {
            let svc = project
                .services
                .get(&n)
                .ok_or_else(|| anyhow::anyhow!("no such service: {n:?}"))?;
            out.push_str(&format!("{n} {}\n", compose::service_hash(svc)));
        }
    } else {
        let mut tree = project.to_yaml_value().context("rendering the model")?;
        // Compose's JSON without interpolation is its raw tree, without the empty values.
        compose::render::compose_shape(&mut tree, format == "json" && !args.no_interpolate);
        if !args.no_interpolate {
            compose::escape_dollars(&mut tree);
        }
        out = if format == "json" {
            let mut s = serde_json::to_string_pretty(&tree).context("rendering JSON")?;
            s.push('\n');
            s
        } else {
            yaml_serde::to_string(&tree).context("rendering YAML")?
        };
    }
    match &args.output {
        Some(path) => {
            std::fs::write(path, out).with_context(|| format!("writing {}", path.display()))?
        }
        None => {
            use std::io::Write;
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(out.as_bytes())
                .context("writing to stdout")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(g: &GlobalOpts, cmd: StackCommand) -> anyhow::Result<ExitCode> {
    super::compose_containers::set_progress(g.progress.as_deref());
    // Verbs that only read may run as they are; of those that change things, up and down
    // print their plan.
    let reads_or_plans = matches!(
        cmd,
        StackCommand::Up(_)
            | StackCommand::Down(_)
            | StackCommand::Config(_)
            | StackCommand::Ps(_)
            | StackCommand::Ls(_)
            | StackCommand::Images(_)
            | StackCommand::Logs(_)
            | StackCommand::Top(_)
            | StackCommand::Port(_)
            | StackCommand::Convert(_)
    );
    if g.dry_run && !reads_or_plans {
        bail!("--dry-run is supported by up and down (and verbs that change nothing)");
    }
    match cmd {
        StackCommand::Config(args) => config(g, args),
        StackCommand::Build(args) => super::compose_lifecycle::build(g, args),
        StackCommand::Up(args) => super::compose_lifecycle::up(g, args),
        StackCommand::Down(args) => super::compose_lifecycle::down(g, args),
        StackCommand::Ps(args) => super::compose_ps::ps(g, args),
        StackCommand::Logs(args) => super::compose_containers::logs(g, args),
        StackCommand::Exec(args) => super::compose_containers::exec(g, args),
        StackCommand::Run(args) => super::compose_run::run(g, args),
        StackCommand::Create(args) => super::compose_lifecycle::create(g, args),
        StackCommand::Start(args) => super::compose_containers::start(g, args),
        StackCommand::Stop(args) => super::compose_containers::stop(g, args),
        StackCommand::Restart(args) => super::compose_containers::restart(g, args),
        StackCommand::Kill(args) => super::compose_containers::kill(g, args),
        StackCommand::Rm(args) => super::compose_containers::rm(g, args),
        StackCommand::Pause(args) => super::compose_containers::freeze(g, args, true),
        StackCommand::Unpause(args) => super::compose_containers::freeze(g, args, false),
        StackCommand::Top(args) => super::compose_containers::top(g, args),
        StackCommand::Port(args) => super::compose_containers::port(g, args),
        StackCommand::Images(args) => super::compose_containers::images(g, args),
        StackCommand::Pull(args) => super::compose_containers::pull(g, args),
        StackCommand::Wait(args) => super::compose_containers::wait(g, args),
        StackCommand::Ls(args) => super::compose_containers::ls(g, args),
        StackCommand::Stats(args) => super::compose_containers::stats(g, args),
        StackCommand::Cp(args) => super::compose_containers::cp(g, args),
        StackCommand::Events(args) => super::compose_lifecycle::events(g, args),
        StackCommand::Convert(args) => super::convert::run(g, args),
        StackCommand::Watch(args) => super::compose_watch::watch(g, args),
        StackCommand::Push(args) => super::compose_push::push(g, args),
    }
}
