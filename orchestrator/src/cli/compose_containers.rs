//! The project verbs that act on existing containers. `start`, `stop`, `restart`, `kill`,
//! `pause`, `unpause` and `rm` are sent to the daemon, which runs each as a plan of the
//! engine (dependency order, every container tried) and answers what it did; this prints it.
//! `logs`, `exec`, `top`, `port`, `images`, `wait`, `ls` read the project's containers
//! (found with the engine's one members query) and the runtime directly.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use berth_runtime::container::logs::{self, Follower, LogEntry, LogOptions};
use berth_runtime::container::state::Status;
use berth_runtime::container::{ExecConfig, Runtime};

use super::GlobalOpts;
use super::compose_args::{ExecArgs, KillArgs, LogsArgs, LsArgs, PortArgs, ServicesArgs, StopArgs};
use crate::api::project::{ProjectRequest, Verb, VerbOutcome, VerbRequest};
use crate::compose::Project;
use crate::engine::labels;
use crate::engine::project_members::{self, Member, OneOffs};
use crate::graph::ServiceGraph;

mod logs_follow;
pub use logs_follow::{AttachOptions, attached, logs};

/// The loaded project, its graph and the instance's runtime.
struct Ctx {
    rt: Runtime,
    project: Project,
    graph: ServiceGraph,
    /// `--ansi`: never, always or auto (None: auto).
    ansi: Option<String>,
}

impl Ctx {
    fn load(g: &GlobalOpts) -> anyhow::Result<Ctx> {
        let project = super::compose_args::load_project(g, &[], true)?;
        let graph = ServiceGraph::from_project(&project)?;
        Ok(Ctx {
            rt: super::container::runtime(g)?,
            project,
            graph,
            ansi: g.ansi.clone(),
        })
    }

    /// The named services (all when empty); unknown names are an error, as in compose.
    fn services(&self, names: &[String]) -> anyhow::Result<BTreeSet<String>> {
        if names.is_empty() {
            return Ok(self.project.services.keys().cloned().collect());
        }
        for n in names {
            if !self.project.services.contains_key(n) {
                bail!("no such service: {n}");
            }
        }
        Ok(names.iter().cloned().collect())
    }

    /// The project's service containers (not one-offs) of the given services.
    fn members(&self, services: &BTreeSet<String>) -> Vec<Member> {
        members_of(&self.rt, &self.project.name, Some(services))
    }
}

/// The service containers (not one-offs) of `project` (of `services` when given), by
/// service and number.
fn members_of(rt: &Runtime, project: &str, services: Option<&BTreeSet<String>>) -> Vec<Member> {
    let mut out: Vec<Member> = project_members::of_project(rt, project, OneOffs::Exclude)
        .into_iter()
        .filter(|m| !m.service.is_empty() && services.is_none_or(|s| s.contains(&m.service)))
        .collect();
    project_members::sort_by_service(&mut out);
    out
}

fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Signal names (KILL, SIGTERM) or numbers.
fn parse_signal(s: &str) -> anyhow::Result<i32> {
    crate::engine::translate::parse_signal(s).ok_or_else(|| anyhow::anyhow!("unknown signal {s:?}"))
}

/// An RFC 3339 time, or a duration meaning "that long ago".
fn parse_when(s: &str) -> anyhow::Result<SystemTime> {
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t);
    }
    let d = humantime::parse_duration(s)
        .with_context(|| format!("{s:?} is neither an RFC 3339 time nor a duration (10m)"))?;
    Ok(SystemTime::now() - d)
}

/// Runs `verb` on the containers of `set` in the daemon, which plans it and runs the plan
/// with the engine's executor; answers what it did.
fn send_verb(
    g: &GlobalOpts,
    ctx: &Ctx,
    set: &BTreeSet<String>,
    verb: Verb,
) -> anyhow::Result<VerbOutcome> {
    let req = VerbRequest {
        project: ProjectRequest::of(ctx.project.clone()),
        services: set.iter().cloned().collect(),
        verb,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        let client = crate::api::client::Client::connect_or_start(&g.root, &g.run).await?;
        anyhow::Ok(client.post("/project/verb", &req).await?)
    })
}

/// `--progress quiet`: no progress lines (set once, before the verb runs).
static QUIET_PROGRESS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Records `--progress` for the progress printers of this process.
pub(super) fn set_progress(mode: Option<&str>) {
    QUIET_PROGRESS.store(mode == Some("quiet"), std::sync::atomic::Ordering::Relaxed);
}

/// Whether progress lines are printed (`--progress quiet` turns them off).
pub(super) fn shows_progress() -> bool {
    !QUIET_PROGRESS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Prints a verb's progress lines and answers its failures.
fn progress(outcome: VerbOutcome) -> Vec<String> {
    if shows_progress() {
        for line in &outcome.progress {
            eprintln!("{line}");
        }
    }
    outcome.failures
}

fn finish(failures: Vec<String>) -> ExitCode {
    for f in &failures {
        eprintln!("error: {f}");
    }
    if failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `berth stop`: dependents first.
pub fn stop(g: &GlobalOpts, args: StopArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let verb = Verb::Stop {
        timeout: args.timeout,
    };
    Ok(finish(progress(send_verb(g, &ctx, &set, verb)?)))
}

/// `berth start`: dependencies first; running containers are left alone.
pub fn start(g: &GlobalOpts, args: ServicesArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let outcome = send_verb(g, &ctx, &set, Verb::Start)?;
    if outcome.members == 0 {
        bail!(
            "project {}: no containers to start (run `berth up` first)",
            ctx.project.name
        );
    }
    Ok(finish(progress(outcome)))
}

/// `berth restart`: stops (dependents first), then starts (dependencies first).
pub fn restart(g: &GlobalOpts, args: StopArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let verb = Verb::Restart {
        timeout: args.timeout,
    };
    Ok(finish(progress(send_verb(g, &ctx, &set, verb)?)))
}

/// `berth kill`: signals the running containers, dependents first.
pub fn kill(g: &GlobalOpts, args: KillArgs) -> anyhow::Result<ExitCode> {
    let signal = parse_signal(&args.signal)?;
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    Ok(finish(progress(send_verb(
        g,
        &ctx,
        &set,
        Verb::Kill { signal },
    )?)))
}

/// `berth wait`: blocks until every selected container has exited, prints each exit code.
pub fn wait(g: &GlobalOpts, args: ServicesArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let members = ctx.members(&set);
    let mut last = 0;
    for m in &members {
        let info = ctx.rt.wait(&m.rec)?;
        println!("{}", info.code);
        last = info.code;
    }
    Ok(exit_code(last))
}

/// `berth top`: the processes of each running container.
pub fn top(g: &GlobalOpts, args: ServicesArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    for m in ctx.members(&set) {
        if !ctx.rt.is_running(&m.rec) {
            continue;
        }
        println!("{}", m.rec.config.name);
        super::container::print_top(&ctx.rt, &m.rec);
        println!();
    }
    Ok(ExitCode::SUCCESS)
}

/// `berth images`: the image each container was created from.
pub fn images(g: &GlobalOpts, args: super::compose_args::ImagesArgs) -> anyhow::Result<ExitCode> {
    let json = match args.format.as_deref() {
        None | Some("table") => false,
        Some("json") => true,
        Some(other) => bail!("--format {other:?}: use table or json"),
    };
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let mut rows = Vec::new();
    for m in ctx.members(&set) {
        let image = ctx.project.image_of(&m.service).unwrap_or_default();
        let id = m
            .rec
            .config
            .labels
            .get(labels::IMAGE)
            .cloned()
            .unwrap_or_default();
        rows.push((m.rec.config.name.clone(), image, id));
    }
    if args.quiet {
        let mut ids: Vec<&str> = rows.iter().map(|(_, _, id)| id.as_str()).collect();
        ids.dedup();
        ids.iter().for_each(|id| println!("{id}"));
    } else if json {
        // As Compose: one array, the repository and tag apart.
        let items: Vec<serde_json::Value> = rows
            .iter()
            .map(|(name, image, id)| {
                let (repo, tag) = split_reference(image);
                serde_json::json!({
                    "ID": id,
                    "ContainerName": name,
                    "Repository": repo,
                    "Tag": tag,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&items)?);
    } else {
        println!("{:<28} {:<32} IMAGE ID", "CONTAINER", "IMAGE");
        for (name, image, id) in &rows {
            let id = id.strip_prefix("sha256:").unwrap_or(id);
            let short: String = id.chars().take(12).collect();
            println!("{name:<28} {image:<32} {short}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `repo[:tag]` (a registry's `host:port/` is part of the repository; no tag is `latest`).
fn split_reference(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    let slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[slash..].rfind(':') {
        Some(i) => (&image[..slash + i], &image[slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// The one container of `service` with number `index`.
fn pick(ctx: &Ctx, service: &str, index: u32) -> anyhow::Result<Member> {
    let set = ctx.services(&[service.to_string()])?;
    ctx.members(&set)
        .into_iter()
        .find(|m| m.number == index)
        .with_context(|| {
            format!(
                "service {service:?} has no container number {index} in project {}",
                ctx.project.name
            )
        })
}

/// `berth exec`: a command in a running service container; its exit code is ours.
pub fn exec(g: &GlobalOpts, args: ExecArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let m = pick(&ctx, &args.service, args.index)?;
    if !ctx.rt.is_running(&m.rec) {
        bail!("container {} is not running", m.rec.config.name);
    }
    // As compose: stdin is always forwarded, a tty unless -T or stdin is not a terminal.
    let tty = !args.no_tty && !args.detach && std::io::stdin().is_terminal();
    let env = args
        .env
        .iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect();
    let code = ctx.rt.exec(
        &m.rec,
        &ExecConfig {
            args: args.command,
            env,
            user: args.user,
            working_dir: args.workdir.map(Into::into),
            tty,
            interactive: !args.detach,
            detach: args.detach,
        },
    )?;
    Ok(exit_code(code))
}

/// `berth port`: the host address a container port is published on, from netd's state.
pub fn port(g: &GlobalOpts, args: PortArgs) -> anyhow::Result<ExitCode> {
    let proto = args.protocol.to_ascii_lowercase();
    if proto != "tcp" && proto != "udp" {
        bail!("--protocol {:?}: use tcp or udp", args.protocol);
    }
    let ctx = Ctx::load(g)?;
    let m = pick(&ctx, &args.service, args.index)?;
    let store = berth_netd::state::StateStore::open(&g.root)
        .with_context(|| format!("opening netd state under {}", g.root.display()))?;
    let state = store
        .load()
        .with_context(|| format!("reading netd state under {}", g.root.display()))?;
    for ep in state.endpoints.iter().filter(|e| e.container == m.rec.id) {
        for p in &ep.ports {
            let p_proto = format!("{:?}", p.protocol).to_ascii_lowercase();
            if p_proto != proto {
                continue;
            }
            let last = p.container_port.saturating_add(p.count.saturating_sub(1));
            if (p.container_port..=last).contains(&args.private_port) {
                let host_port = p.host_port + (args.private_port - p.container_port);
                let ip = match p.host_ip {
                    None => "0.0.0.0".to_string(),
                    Some(std::net::IpAddr::V6(a)) => format!("[{a}]"),
                    Some(i) => i.to_string(),
                };
                println!("{ip}:{host_port}");
                return Ok(ExitCode::SUCCESS);
            }
        }
    }
    bail!(
        "no port {}/{proto} published for {}",
        args.private_port,
        m.rec.config.name
    )
}

/// `berth ls`: the projects of this instance, from the labels of their containers.
pub fn ls(g: &GlobalOpts, args: LsArgs) -> anyhow::Result<ExitCode> {
    let rt = super::container::runtime(g)?;
    #[derive(Default, serde::Serialize)]
    struct Row {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Status")]
        status: String,
        #[serde(rename = "ConfigFiles")]
        config_files: String,
        #[serde(skip)]
        counts: BTreeMap<&'static str, usize>,
    }
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (rec, state) in rt.list() {
        let Some(project) = rec.config.labels.get(labels::PROJECT) else {
            continue;
        };
        let running = state.status == Status::Running && rt.is_running(&rec);
        let row = rows.entry(project.clone()).or_default();
        row.name = project.clone();
        if let Some(files) = rec.config.labels.get(labels::CONFIG_FILES) {
            row.config_files = files.clone();
        }
        let word = if running {
            "running"
        } else {
            state.status.as_str()
        };
        *row.counts.entry(word).or_default() += 1;
    }
    let mut out: Vec<Row> = rows
        .into_values()
        .filter(|r| args.all || r.counts.contains_key("running"))
        .collect();
    for r in &mut out {
        r.status = r
            .counts
            .iter()
            .map(|(w, n)| format!("{w}({n})"))
            .collect::<Vec<_>>()
            .join(", ");
    }
    if args.quiet {
        out.iter().for_each(|r| println!("{}", r.name));
    } else if args.format.as_deref() == Some("json") {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("{:<24} {:<24} CONFIG FILES", "NAME", "STATUS");
        for r in &out {
            println!("{:<24} {:<24} {}", r.name, r.status, r.config_files);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Colours of the service prefixes, in compose's order of choice.
const COLOURS: [&str; 6] = ["36", "33", "32", "35", "34", "31"];

/// `berth pause` / `unpause`: freezes (thaws) the running containers of the services with
/// the cgroup freezer; their processes keep their state and get no CPU meanwhile.
pub fn freeze(g: &GlobalOpts, args: ServicesArgs, pause: bool) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let verb = if pause { Verb::Pause } else { Verb::Unpause };
    Ok(finish(progress(send_verb(g, &ctx, &set, verb)?)))
}

/// `berth rm`: removes the project's stopped containers (running ones too with `-s`, which
/// stops them first, or `-f`). The daemon does the removal, because detaching from netd
/// (address, DNS names, published ports) lives there.
pub fn rm(g: &GlobalOpts, args: super::compose_args::RmArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let verb = Verb::Rm {
        stop: args.stop || args.force,
        volumes: args.volumes,
    };
    let outcome = send_verb(g, &ctx, &set, verb)?;
    for w in &outcome.warnings {
        eprintln!("{w}");
    }
    for name in &outcome.removed {
        println!("{name}");
    }
    Ok(finish(outcome.failures))
}

/// `berth down SERVICE...`: stops (dependents first) and removes the named services'
/// containers, their anonymous volumes too with `-v`; the project's networks and named
/// volumes stay for the other services.
pub fn down_services(
    g: &GlobalOpts,
    args: &super::compose_args::DownArgs,
) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let stop = Verb::Stop {
        timeout: args.timeout,
    };
    let mut failures = progress(send_verb(g, &ctx, &set, stop)?);
    let rm = Verb::Rm {
        stop: true,
        volumes: args.volumes,
    };
    let outcome = send_verb(g, &ctx, &set, rm)?;
    for name in &outcome.removed {
        eprintln!("Container {name}  Removed");
    }
    failures.extend(outcome.failures);
    Ok(finish(failures))
}

/// `berth pull`: pulls the image of every selected service that names one (`image:`), in
/// parallel; a service built from its `build:` section only is skipped. Failures name the
/// service.
pub fn pull(g: &GlobalOpts, args: super::compose_args::PullArgs) -> anyhow::Result<ExitCode> {
    use berth_runtime::image::registry;
    let ctx = Ctx::load(g)?;
    let mut set = ctx.services(&args.services)?;
    if args.include_deps {
        set = ctx
            .graph
            .select(&args.services, false)?
            .into_iter()
            .collect();
    }
    let store = berth_runtime::image::ImageStore::open(&g.root)
        .with_context(|| format!("opening the image store under {}", g.root.display()))?;
    let mut jobs: Vec<(String, String)> = Vec::new();
    for name in &set {
        let Some(svc) = ctx.project.services.get(name) else {
            continue;
        };
        match &svc.image {
            Some(image) => jobs.push((name.clone(), image.clone())),
            None => eprintln!("Service {name}  Skipped: no image: to pull (built from build:)"),
        }
    }
    let failures: Vec<String> = std::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .iter()
            .map(|(service, image)| {
                let store = &store;
                let quiet = args.quiet;
                s.spawn(move || {
                    if !quiet {
                        eprintln!("Service {service}  Pulling {image}");
                    }
                    registry::pull(store, image, &registry::PullOptions::default(), &|_| {})
                        .map(|img| {
                            if !quiet {
                                eprintln!("Service {service}  Pulled {}", img.id);
                            }
                        })
                        .map_err(|e| format!("service {service}: pulling {image}: {e}"))
                })
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|h| match h.join() {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e),
                Err(_) => Some("a pull thread panicked".to_string()),
            })
            .collect()
    });
    for f in &failures {
        eprintln!("error: {f}");
    }
    Ok(if failures.is_empty() || args.ignore_pull_failures {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The services whose `pull_policy` is an age (`daily`, `weekly`, `every_<duration>`) and whose
/// image is in the store but was last tagged (pulled, loaded, built) longer ago than that, or
/// at a time not recorded. A missing image is left to `up`'s own pull.
pub fn stale_images(
    g: &GlobalOpts,
    project: &crate::compose::Project,
) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let aged: Vec<(&String, &String, std::time::Duration)> = project
        .services
        .iter()
        .filter_map(|(n, s)| Some((n, s.image.as_ref()?, s.pull_policy.as_ref()?.max_age()?)))
        .collect();
    let mut out = std::collections::BTreeSet::new();
    if aged.is_empty() {
        return Ok(out);
    }
    let store = berth_runtime::image::ImageStore::open(&g.root)
        .with_context(|| format!("opening the image store under {}", g.root.display()))?;
    let now = std::time::SystemTime::now();
    for (name, image, max) in aged {
        if store.resolve_id(image).is_err() {
            continue;
        }
        let fresh = store
            .last_tagged(image)
            .ok()
            .flatten()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age <= max);
        if !fresh {
            out.insert(name.clone());
        }
    }
    Ok(out)
}

/// `berth stats`: `container stats` over the project's running containers.
pub fn stats(g: &GlobalOpts, args: super::compose_args::StatsArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let set = ctx.services(&args.services)?;
    let ids: Vec<String> = ctx
        .members(&set)
        .into_iter()
        .filter(|m| ctx.rt.is_running(&m.rec))
        .map(|m| m.rec.id)
        .collect();
    if ids.is_empty() {
        // `container stats` with no names means every container of the instance.
        bail!("project {}: no running containers", ctx.project.name);
    }
    super::container::stats(&ctx.rt, &ids, args.no_stream, args.format.as_deref())
}

/// `berth cp SERVICE:SRC DEST` and `berth cp SRC SERVICE:DEST`: `container cp` with the
/// service's container (number `--index`).
pub fn cp(g: &GlobalOpts, args: super::compose_args::CpArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    let side = |s: &str| -> Option<(String, String)> {
        let (svc, path) = s.split_once(':')?;
        ctx.project
            .services
            .contains_key(svc)
            .then(|| (svc.to_string(), path.to_string()))
    };
    match (side(&args.source), side(&args.dest)) {
        (Some((svc, cpath)), None) => {
            let m = pick(&ctx, &svc, args.index)?;
            ctx.rt
                .copy_out(&m.rec, Path::new(&cpath), Path::new(&args.dest))
                .with_context(|| format!("copying {cpath} out of {}", m.rec.config.name))?;
        }
        (None, Some((svc, cpath))) => {
            let m = pick(&ctx, &svc, args.index)?;
            ctx.rt
                .copy_in(&m.rec, Path::new(&args.source), Path::new(&cpath))
                .with_context(|| format!("copying {} into {}", args.source, m.rec.config.name))?;
        }
        (Some(_), Some(_)) => bail!("cp: copying between two containers is not supported"),
        (None, None) => bail!(
            "cp: one of SOURCE and DEST must be SERVICE:PATH with a service of project {}",
            ctx.project.name
        ),
    }
    Ok(ExitCode::SUCCESS)
}

/// The Compose files and working directory a project's containers were made from (their
/// labels), for verbs given `-p NAME` and no file, as Compose finds them.
pub(super) fn recorded_files(
    g: &GlobalOpts,
    project: &str,
) -> anyhow::Result<Option<(String, String)>> {
    let rt = super::container::runtime(g)?;
    let members = project_members::of_project(&rt, project, OneOffs::Include);
    Ok(members.iter().find_map(|m| {
        let l = &m.rec.config.labels;
        Some((
            l.get(labels::CONFIG_FILES)?.clone(),
            l.get(labels::WORKING_DIR)?.clone(),
        ))
    }))
}

#[cfg(test)]
mod tests {
    use super::split_reference;

    #[test]
    fn references_split_into_repository_and_tag() {
        assert_eq!(split_reference("busybox:e2e"), ("busybox", "e2e"));
        assert_eq!(split_reference("nginx"), ("nginx", "latest"));
        assert_eq!(
            split_reference("reg:5000/team/app:1.2"),
            ("reg:5000/team/app", "1.2")
        );
        assert_eq!(split_reference("reg:5000/app"), ("reg:5000/app", "latest"));
    }
}
