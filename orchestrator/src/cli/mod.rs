//! Command-line interface: clap definitions and dispatch.
//!
//! Top-level verbs act on the project (the compose verbs); single objects live in namespaces
//! (`berth container …`, `berth image …`), so that no verb means two things.

mod build_network;
pub mod closed_stdout;
mod completion;
mod compose_args;
mod compose_containers;
mod compose_lifecycle;
mod compose_ps;
mod compose_push;
mod compose_run;
mod compose_watch;
mod container;
mod convert;
mod deploy;
mod format;
mod image;
mod image_build;
mod image_squash;
mod network;
mod publish;
mod system;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand};

/// Exit status for berth's own errors, as Docker uses 125 for the engine's own failures.
pub const EXIT_BERTH_ERROR: u8 = 125;

/// berth runs multi-container stacks from Compose files, with its own runtime and network daemon.
#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// Options that select the project and the berth instance; they precede the verb, as with
/// `docker compose -f x.yaml up`.
#[derive(Args, Debug, Clone, Default)]
pub struct GlobalOpts {
    /// Compose file(s) to use, merged in order; `-` reads standard input
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project name (default: COMPOSE_PROJECT_NAME, then top-level `name:`, then the directory name)
    #[arg(short = 'p', long = "project-name", value_name = "NAME")]
    pub project_name: Option<String>,
    /// Directory that relative paths are resolved against (default: the first file's directory)
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// Environment file(s) for interpolation, instead of `.env` in the project directory
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// Enable services of this profile (repeatable; also COMPOSE_PROFILES)
    #[arg(long = "profile", value_name = "PROFILE")]
    pub profiles: Vec<String>,
    /// State directory of this berth instance
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth",
        value_name = "DIR"
    )]
    pub root: PathBuf,
    /// Runtime directory of this berth instance (daemon socket, pinned namespaces)
    #[arg(
        long,
        global = true,
        env = "BERTH_RUN",
        default_value = "/run/berth",
        value_name = "DIR"
    )]
    pub run: PathBuf,
    /// Log level (error, warn, info, debug, trace); RUST_LOG takes precedence when set
    #[arg(long, global = true, value_name = "LEVEL", default_value = "warn")]
    pub log_level: String,
    /// Print what `up` or `down` would do (the plan), change nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Progress output: auto, tty, plain, json or quiet (no progress lines)
    #[arg(long, value_name = "TYPE", env = "COMPOSE_PROGRESS", value_parser = ["auto", "tty", "plain", "json", "quiet"])]
    pub progress: Option<String>,
    /// Colour of the log prefixes: never, always or auto (on a terminal)
    #[arg(long, value_name = "WHEN", env = "COMPOSE_ANSI", value_parser = ["never", "always", "auto"])]
    pub ansi: Option<String>,
}

/// Every verb of the CLI.
#[derive(Subcommand, Debug)]
pub enum Command {
    #[command(flatten)]
    Stack(compose_args::StackCommand),
    /// Manage single containers (as `docker container …`)
    #[command(subcommand)]
    Container(container::ContainerCommand),
    /// Manage images (as `docker image …`)
    #[command(subcommand)]
    Image(image::ImageCommand),
    /// Manage networks
    #[command(subcommand)]
    Network(network::NetworkCommand),
    /// Manage named volumes
    #[command(subcommand)]
    Volume(volume::VolumeCommand),
    /// Daemon information and housekeeping
    #[command(subcommand)]
    System(system::SystemCommand),
    /// Manage the build cache
    #[command(subcommand)]
    Builder(image::BuilderCommand),
    /// Deploy the project on a Docker Swarm: build, push, pin by digest, `docker stack deploy`
    Deploy(deploy::DeployArgs),
    /// Log in to a registry
    Login(image::LoginArgs),
    /// Log out from a registry
    Logout(image::LogoutArgs),
    /// Print a shell completion script
    Completion(completion::CompletionArgs),
    /// Run the berth daemon (started on demand by the CLI, which passes its environment on)
    #[command(hide = true)]
    Daemon {
        /// Containers of a network talk through its bridge only, without the fast path (a tc
        /// program on each container's host veth that hands a frame for another container of
        /// the same network straight to it, past the bridge and the host's netfilter hooks)
        #[arg(long, env = "BERTH_NO_FAST_PATH", value_parser = clap::builder::FalseyValueParser::new())]
        no_fast_path: bool,
    },
    /// Run a container monitor (started by the daemon, one per container)
    #[command(hide = true)]
    Shim {
        /// Container state directory
        dir: PathBuf,
    },
    /// Serve the embedded DNS of every network (started by the daemon, one per instance)
    #[command(hide = true)]
    Dns {
        /// The keeper's directory (`<run>/dns`)
        dir: PathBuf,
    },
    /// Run a process inside a running container (started by `container exec`)
    #[command(hide = true)]
    ExecHelper {
        /// Container state directory
        dir: PathBuf,
        /// The exec request as JSON
        request: String,
    },
    /// Stream a tar out of (`out`) or into (`in`) a container's filesystem (`container cp`)
    #[command(hide = true)]
    CopyHelper {
        /// Container state directory
        dir: PathBuf,
        /// `out` or `in`
        direction: String,
        /// Path inside the container
        path: PathBuf,
    },
}

fn init_tracing(level: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("warn"));
    // A log line that cannot be written (its file on a full disk) is dropped: the
    // subscriber's own report of that goes through `eprintln!`, which panics when stderr
    // fails, and a shim that panics leaves its container unsupervised.
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .log_internal_errors(false)
        .init();
}

/// The daemon's entry point, handed in by the binary so the CLI does not import the daemon
/// (the layers go cli -> api client; daemon -> engine).
/// `fast_path` is false with `berth daemon --no-fast-path` (or `BERTH_NO_FAST_PATH`).
pub type DaemonEntry = fn(root: PathBuf, run: PathBuf, fast_path: bool) -> anyhow::Result<()>;

/// Parses the command line, runs the command and maps errors to exit statuses; `berth daemon`
/// runs `daemon`.
pub fn main(daemon: DaemonEntry) -> ExitCode {
    let start_report = crate::api::client::take_daemon_report();
    // The shim runs once per container start and lives as long as its container: it skips
    // building the whole clap command tree (the runtime always calls it as `berth shim DIR`).
    let mut argv = std::env::args_os().skip(1);
    if let (Some(verb), Some(dir), None) = (argv.next(), argv.next(), argv.next())
        && verb == "shim"
        && !dir.as_encoded_bytes().starts_with(b"-")
    {
        init_tracing("warn");
        return container::shim(std::path::Path::new(&dir));
    }
    // The DNS keeper, started by the daemon as `berth dns DIR`: small and long-lived too.
    let mut argv = std::env::args_os().skip(1);
    if let (Some(verb), Some(dir), None) = (argv.next(), argv.next(), argv.next())
        && verb == "dns"
        && !dir.as_encoded_bytes().starts_with(b"-")
    {
        init_tracing("info");
        return dns_keeper(std::path::Path::new(&dir));
    }
    // As `Cli::parse()`, without freeing the command tree at the end: a short-lived CLI
    // spends ~0.6 M instructions dropping it (only the long-lived daemon frees it).
    let mut cmd = Cli::command();
    let mut matches = cmd.get_matches_mut();
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut cmd).exit());
    if matches!(cli.command, Command::Daemon { .. }) {
        drop(cmd);
    } else {
        std::mem::forget(cmd);
    }
    init_tracing(&cli.global.log_level);
    // The CLI's output may go to a reader that leaves early (`berth ps | head -1`); the daemon
    // and the helpers write logs and report to their parent instead.
    let prints = !matches!(
        cli.command,
        Command::Daemon { .. }
            | Command::Shim { .. }
            | Command::ExecHelper { .. }
            | Command::CopyHelper { .. }
    );
    if prints {
        closed_stdout::install();
    }
    match run(cli, daemon) {
        Ok(code) => code,
        Err(err) => {
            if prints {
                closed_stdout::exit_if_stdout_closed();
            }
            // A daemon started by the CLI tells it why, on a pipe: its log may be on the full
            // disk that made it fail.
            if let Some(fd) = &start_report {
                let _ = nix::unistd::write(fd, format!("{err:#}").as_bytes());
            }
            let _ = std::io::Write::write_all(
                &mut std::io::stderr(),
                format!("berth: {err:#}\n").as_bytes(),
            );
            ExitCode::from(EXIT_BERTH_ERROR)
        }
    }
}

/// `berth dns DIR`: the DNS keeper (see `berth_netd::dns::keeper`).
fn dns_keeper(dir: &std::path::Path) -> ExitCode {
    match berth_netd::dns::keeper::run(dir) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(err = %crate::api::error::error_chain(&err), "dns keeper");
            ExitCode::from(EXIT_BERTH_ERROR)
        }
    }
}

fn run(cli: Cli, daemon: DaemonEntry) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    if g.dry_run && !matches!(cli.command, Command::Stack(_)) {
        anyhow::bail!("--dry-run is supported by the project verbs up and down");
    }
    match cli.command {
        Command::Stack(cmd) => compose_args::run(g, cmd),
        Command::Container(cmd) => container::run(g, cmd),
        Command::Image(cmd) => image::run(g, cmd),
        Command::Builder(cmd) => image::run_builder(g, cmd),
        Command::Deploy(args) => deploy::run(g, args),
        Command::Login(args) => image::login(g, args),
        Command::Logout(args) => image::logout(g, args),
        Command::Network(cmd) => network::run(g, cmd),
        Command::Volume(cmd) => volume::run(g, cmd),
        Command::System(cmd) => system::run(g, cmd),
        Command::Completion(args) => {
            completion::run(args, &mut Cli::command());
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon { no_fast_path } => {
            daemon(g.root.clone(), g.run.clone(), !no_fast_path)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Shim { dir } => Ok(container::shim(&dir)),
        Command::Dns { dir } => Ok(dns_keeper(&dir)),
        Command::ExecHelper { dir, request } => container::exec_helper(&dir, &request),
        Command::CopyHelper {
            dir,
            direction,
            path,
        } => Ok(container::copy_helper(&dir, &direction, &path)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn the_daemon_takes_the_fast_path_switch() {
        let on = Cli::try_parse_from(["berth", "daemon"]).expect("parse");
        let off = Cli::try_parse_from(["berth", "daemon", "--no-fast-path"]).expect("parse");
        if std::env::var_os("BERTH_NO_FAST_PATH").is_none() {
            assert!(matches!(
                on.command,
                Command::Daemon {
                    no_fast_path: false
                }
            ));
        }
        assert!(matches!(
            off.command,
            Command::Daemon { no_fast_path: true }
        ));
    }

    #[test]
    fn file_and_project_precede_the_verb() {
        let cli = Cli::try_parse_from([
            "berth", "-f", "a.yaml", "-f", "b.yaml", "-p", "demo", "config",
        ])
        .expect("parse");
        assert_eq!(cli.global.files.len(), 2);
        assert_eq!(cli.global.project_name.as_deref(), Some("demo"));
    }
}
