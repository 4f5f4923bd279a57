//! Project routes: `POST /v1/up`, `/v1/down`, `/v1/build` (NDJSON progress), `/v1/run`,
//! `/v1/rm`, `/v1/project/verb`, `GET /v1/ps`, and the single-container network routes
//! `POST /v1/container/{connect,disconnect,rename}`: their bodies, options and answers.

use std::collections::BTreeMap;
use std::path::PathBuf;

use berth_netd::ports::PortMapping;
use serde::{Deserialize, Serialize};

use crate::compose::{Port, Project, ServiceVolume};

/// A project as the CLI sends it: the model plus what serde skips in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProjectRequest {
    pub project: Project,
    pub working_dir: PathBuf,
    pub compose_files: Vec<PathBuf>,
    /// The variables of the CLI's environment the project's builds read: those top-level
    /// secrets name with `environment:` (`build.secrets`), and `SSH_AUTH_SOCK` and `HOME`
    /// when a build forwards an SSH agent (`build.ssh`). They become the project's
    /// environment in the daemon, which never stores them (the model skips it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub build_env: BTreeMap<String, String>,
}

impl ProjectRequest {
    /// The request for a loaded project, carrying the environment its builds read.
    pub fn of(project: Project) -> ProjectRequest {
        let mut names: Vec<&str> = project
            .secrets
            .values()
            .filter_map(|s| s.environment.as_deref())
            .collect();
        let ssh = project
            .services
            .values()
            .any(|s| s.build.as_ref().is_some_and(|b| b.ssh.is_some()));
        if ssh {
            names.extend(["SSH_AUTH_SOCK", "HOME"]);
        }
        let build_env = names
            .into_iter()
            .filter_map(|n| Some((n.to_string(), project.environment.get(n)?.clone())))
            .collect();
        ProjectRequest {
            working_dir: project.working_dir.clone(),
            compose_files: project.compose_files.clone(),
            build_env,
            project,
        }
    }

    /// The project with its skipped fields restored.
    pub fn into_project(self) -> Project {
        let mut p = self.project;
        p.working_dir = self.working_dir;
        p.compose_files = self.compose_files;
        p.environment = self.build_env;
        p
    }
}

/// What `berth up` was asked to do, beyond the project itself. Images are pulled or built
/// before planning (so a rebuilt image is seen as changed); the plan only fetches missing ones.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct UpOptions {
    /// Services named on the command line (empty: all).
    pub services: Vec<String>,
    pub no_deps: bool,
    pub force_recreate: bool,
    pub no_recreate: bool,
    pub remove_orphans: bool,
    /// `--scale svc=N` overrides.
    pub scale: BTreeMap<String, u32>,
    pub no_start: bool,
    /// `--build`: build images with a `build:` section before planning.
    #[serde(default)]
    pub build: bool,
    /// `--no-build`: a missing image of a service with `build:` is an error, not a build.
    #[serde(default)]
    pub no_build: bool,
    /// `--pull never`: a missing image is an error, not a pull.
    #[serde(default)]
    pub pull_never: bool,
    /// `-V`: recreate the containers (as `--force-recreate`) with fresh anonymous volumes
    /// instead of the previous containers' ones.
    #[serde(default)]
    pub renew_anon_volumes: bool,
    /// `--dry-run`: answer the plan (in `Outcome::plan`), change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Body of `POST /v1/up`.
#[derive(Serialize, Deserialize)]
pub struct UpRequest {
    pub project: ProjectRequest,
    pub options: UpOptions,
}

/// What `berth down` was asked to do.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DownOptions {
    /// `-v`: remove the project's named volumes and the anonymous volumes of the containers
    /// it removes too.
    pub volumes: bool,
    pub remove_orphans: bool,
    /// `--rmi local|all`: remove the images built for the project (`local`: those without
    /// an `image:` of their own) or every service's image (`all`) once the containers are gone.
    #[serde(default)]
    pub rmi: Option<RmiScope>,
    /// `-t`: seconds to wait for each container's stop before killing it.
    #[serde(default)]
    pub timeout: Option<u64>,
    /// `--dry-run`: answer the plan (in `Outcome::plan`), change nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// Which images `down --rmi` removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RmiScope {
    /// Images berth built and named `<project>-<service>` (no `image:` in the service).
    Local,
    /// Every image the project's services use.
    All,
}

/// Body of `POST /v1/down`.
#[derive(Serialize, Deserialize)]
pub struct DownRequest {
    pub project: ProjectRequest,
    pub options: DownOptions,
}

/// What an `up` or `down` did: the plan as text and how its execution went.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub plan: String,
    pub warnings: Vec<String>,
    pub done: usize,
    pub failures: Vec<String>,
    pub skipped: Vec<String>,
    /// Images `down --rmi` removed (untagged or deleted), as `image rm` reports them.
    #[serde(default)]
    pub removed_images: Vec<String>,
}

/// The query of `GET /v1/ps?project=NAME[&all=1]`: the project and whether stopped
/// containers are listed too.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PsQuery {
    pub project: Option<String>,
    pub all: bool,
}

impl PsQuery {
    /// Reads a query string; unknown keys are ignored. Public so the fuzz target can feed
    /// it arbitrary queries.
    pub fn parse(query: &str) -> Self {
        let mut q = PsQuery::default();
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("project", v)) => q.project = Some(super::decode_segment(v)),
                Some(("all", v)) => q.all = v == "1" || v == "true",
                _ => {}
            }
        }
        q
    }

    /// The query string the client sends.
    pub fn to_query(&self) -> String {
        let mut out = Vec::new();
        if let Some(p) = &self.project {
            out.push(format!("project={}", super::encode_segment(p)));
        }
        out.push(format!("all={}", if self.all { 1 } else { 0 }));
        out.join("&")
    }
}

/// One container of a project as `berth ps` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PsRow {
    pub id: String,
    pub name: String,
    pub service: String,
    pub image: String,
    pub command: String,
    pub status: String,
    pub health: Option<String>,
    pub exit_code: Option<i32>,
    pub ports: Vec<String>,
    /// Creation time, seconds since the epoch (Compose's `CreatedAt` and `RunningFor`).
    #[serde(default)]
    pub created: i64,
    /// Docker's status line (`Up 3 seconds`, `Exited (0) 2 minutes ago`).
    #[serde(default)]
    pub status_line: String,
    /// Docker's `RunningFor` (`4 seconds ago`), the table's CREATED.
    #[serde(default)]
    pub running_for: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Named volumes by name and binds by host path, in mount order.
    #[serde(default)]
    pub mounts: Vec<String>,
    /// How many of `mounts` are named or anonymous volumes.
    #[serde(default)]
    pub local_volumes: usize,
    /// The networks the container is attached to, by name.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// Body of `POST /v1/rm`: the containers, and whether their anonymous volumes go too.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RmRequest {
    pub ids: Vec<String>,
    /// `rm -v`, `run --rm`: remove the containers' anonymous volumes (unless another
    /// container mounts one).
    #[serde(default)]
    pub volumes: bool,
}

/// What `berth run` overrides in the service for its one-off container.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OneOff {
    pub command: Vec<String>,
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<String>,
    pub name: Option<String>,
    pub tty: bool,
    /// `-p`: ports to publish (the service's own are never published for a one-off).
    #[serde(default)]
    pub ports: Vec<Port>,
    /// `-v`: extra mounts.
    #[serde(default)]
    pub volumes: Vec<ServiceVolume>,
    /// `--use-aliases`: the one-off answers to the service's network aliases too (without
    /// it, only to its own name, so that it takes none of the service's traffic).
    #[serde(default)]
    pub use_aliases: bool,
}

/// Body of `POST /v1/run`.
#[derive(Serialize, Deserialize)]
pub struct RunRequest {
    pub project: ProjectRequest,
    pub service: String,
    pub run: OneOff,
}

/// How the services' images are built: `berth build`'s flags and `up`'s "only what is
/// missing" pre-build.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct BuildOptions {
    /// `--no-cache`: run every step.
    #[serde(default)]
    pub no_cache: bool,
    /// `--pull`: re-resolve base images from their registries.
    #[serde(default)]
    pub pull: bool,
    /// `--build-arg KEY=VALUE`, over each service's `build.args`.
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    /// Skip services whose image is already in the store (`up` without `--build`).
    #[serde(default)]
    pub missing_only: bool,
}

/// Body of `POST /v1/build`.
#[derive(Serialize, Deserialize)]
pub struct BuildRequest {
    pub project: ProjectRequest,
    /// The services to build (all with `build:` when empty).
    pub services: Vec<String>,
    /// Also the services that `services` depend on (`up --build web` builds web's
    /// dependencies too; `berth build web` builds web only).
    #[serde(default)]
    pub with_deps: bool,
    #[serde(flatten)]
    pub options: BuildOptions,
}

/// One line of `POST /v1/build`'s NDJSON answer.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum BuildLine {
    /// A step finished (`[3/7] RUN make`), from the cache or run.
    Step {
        service: String,
        display: String,
        cached: bool,
        elapsed_ms: u64,
    },
    /// Every requested build ended; the failures, each naming its service.
    Done { failures: Vec<String> },
}

/// A project verb on the services' existing containers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verb", rename_all = "lowercase")]
pub enum Verb {
    /// Starts the containers that are not running.
    Start,
    /// Stops the containers (`-t`: seconds before SIGKILL, else each one's own grace).
    Stop { timeout: Option<u64> },
    /// Stops every container, then starts them again.
    Restart { timeout: Option<u64> },
    /// Sends `signal` to the running containers.
    Kill { signal: i32 },
    /// Freezes the running containers.
    Pause,
    /// Thaws the paused containers.
    Unpause,
    /// Removes the stopped containers; running ones too (stopped first) with `stop`.
    Rm { stop: bool, volumes: bool },
}

/// Body of `POST /v1/project/verb`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerbRequest {
    pub project: ProjectRequest,
    /// The services acted on (all when empty).
    pub services: Vec<String>,
    pub verb: Verb,
}

/// What a project verb did, for the CLI to print.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerbOutcome {
    /// How many containers the selected services have (`start` with none is an error).
    pub members: usize,
    /// `Container NAME  Stopped` (Started, Killed, ...) lines, in the order the steps ended.
    pub progress: Vec<String>,
    /// Names of the containers `rm` removed (or tried to), in listing order.
    pub removed: Vec<String>,
    /// What was left alone and why (`rm` without `-s` on a running container).
    pub warnings: Vec<String>,
    /// `NAME: why` per failed step (`ID: why` for removals), in plan order.
    pub failures: Vec<String>,
}

/// One network a single container joins (`berth container run --network NAME`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerNetwork {
    /// Network name or id; `bridge` is made on first use (the network Docker users expect).
    pub name: String,
    /// Extra DNS names on this network (`--network-alias`).
    pub aliases: Vec<String>,
    /// Static address (`--ip`).
    pub ipv4_address: Option<std::net::Ipv4Addr>,
    /// Static MAC (`--mac-address`), else derived from the address.
    #[serde(default)]
    pub mac_address: Option<String>,
    /// Static IPv6 address (`--ip6`, Compose's `ipv6_address`).
    #[serde(default)]
    pub ipv6_address: Option<std::net::Ipv6Addr>,
    /// Join order (compose `priority`, higher first) before the listed order is counted in.
    #[serde(default)]
    pub priority: i32,
    /// Which network carries the default route (Docker's `GwPriority`, compose
    /// `gw_priority`): the highest; ties to a dual-stack network, then the first name.
    #[serde(default)]
    pub gw_priority: i32,
    /// The interface's name inside the container (compose `interface_name`), else `ethN`.
    #[serde(default)]
    pub interface_name: Option<String>,
    /// Extra link-local addresses on the interface (`--link-local-ip`, `link_local_ips`).
    #[serde(default)]
    pub link_local_ips: Vec<std::net::IpAddr>,
    /// Sysctls of the interface (Docker's `com.docker.network.endpoint.sysctls`), `IFNAME`
    /// standing for it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sysctls: Vec<(String, String)>,
}

/// Body of `POST /v1/container/connect`: attach a created single container before it starts.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerConnect {
    /// Container id.
    pub container: String,
    /// In priority order (the join order); netd gives the default route and the published
    /// ports to the one of the highest `gw_priority` (see `ContainerNetwork::gw_priority`).
    pub networks: Vec<ContainerNetwork>,
    /// `-p/--publish`.
    pub ports: Vec<PortMapping>,
    /// `--add-host NAME:IP` lines for /etc/hosts (`host-gateway` is the first network's
    /// gateway).
    #[serde(default)]
    pub extra_hosts: Vec<(String, String)>,
    /// `--dns-search`, `--dns-option`: replace the host's in resolv.conf.
    #[serde(default)]
    pub dns_search: Vec<String>,
    #[serde(default)]
    pub dns_options: Vec<String>,
    /// Legacy links `(alias, container name)`: the alias resolves to that container for this
    /// container alone (compose `external_links`).
    #[serde(default)]
    pub links: Vec<(String, String)>,
}

/// Answer of `POST /v1/container/rename`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RenameReply {
    /// The container whose DNS names now follow its new name.
    pub renamed: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ps_query_round_trips() {
        let q = PsQuery {
            project: Some("my app&x".into()),
            all: true,
        };
        assert_eq!(PsQuery::parse(&q.to_query()), q);
        assert_eq!(
            PsQuery::parse("project=demo&all=0&junk"),
            PsQuery {
                project: Some("demo".into()),
                all: false
            }
        );
        assert_eq!(PsQuery::parse(""), PsQuery::default());
    }
}
