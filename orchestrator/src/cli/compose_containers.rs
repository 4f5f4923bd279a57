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

/// Writes prefixed log lines: `name  | line`, padded to the longest name, coloured per service.
struct Printer {
    width: usize,
    colour: bool,
    timestamps: bool,
    /// `--no-log-prefix`: the lines alone.
    no_prefix: bool,
    services: BTreeMap<String, &'static str>,
}

impl Printer {
    fn line(&mut self, prefix: &str, service: &str, e: &LogEntry) -> std::io::Result<()> {
        let n = self.services.len();
        let c = *self
            .services
            .entry(service.to_string())
            .or_insert(COLOURS[n % COLOURS.len()]);
        self.width = self.width.max(prefix.len());
        let mut text = e.log.clone();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        if self.timestamps {
            text = format!("{} {text}", e.time);
        }
        let head = format!("{prefix:<w$}  | ", w = self.width);
        let mut out = std::io::stdout().lock();
        if self.no_prefix {
            write!(out, "{text}")?;
        } else if self.colour {
            write!(out, "\x1b[{c}m{head}\x1b[0m{text}")?;
        } else {
            write!(out, "{head}{text}")?;
        }
        out.flush()
    }
}

fn entry_time(e: &LogEntry) -> SystemTime {
    humantime::parse_rfc3339(&e.time).unwrap_or(SystemTime::UNIX_EPOCH)
}

fn wants(opts: &LogOptions, e: &LogEntry) -> bool {
    let t = entry_time(e);
    opts.since.is_none_or(|s| t >= s) && opts.until.is_none_or(|u| t < u)
}

/// `berth logs`: every selected container's log, merged by time, with `service-N  |`
/// prefixes; `-f` follows, and picks up containers that appear later (a recreated or scaled
/// service) until interrupted.
pub fn logs(g: &GlobalOpts, args: LogsArgs) -> anyhow::Result<ExitCode> {
    follow_logs(g, args)
}

/// Set by the SIGINT/SIGTERM handler of attached `up`.
static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// What attached `berth up` shows and watches, beyond the logs of the selected services.
#[derive(Debug, Default)]
pub struct AttachOptions {
    /// Services named on the command line (empty: all).
    pub services: Vec<String>,
    /// `--attach`: only these services' output.
    pub attach: Vec<String>,
    /// `--no-attach`: not these services' output.
    pub no_attach: Vec<String>,
    /// `--abort-on-container-exit` (also implied by `--exit-code-from`).
    pub abort: bool,
    /// `--exit-code-from`: the exit code berth returns is this service's.
    pub exit_code_from: Option<String>,
    /// Services some other service waits for with `service_completed_successfully`: their
    /// successful exit is what is expected of them, so it does not abort the stack.
    pub completes: Vec<String>,
    /// `-t`: stop timeout when the stack is stopped.
    pub timeout: Option<u64>,
    /// `--abort-on-container-failure`: stop the stack when a container exits non-zero.
    pub abort_on_failure: bool,
    /// `--timestamps`: each line after its time.
    pub timestamps: bool,
    /// `--no-log-prefix`: the lines without `service-N  | `.
    pub no_log_prefix: bool,
    /// `--no-color`: monochrome prefixes.
    pub no_color: bool,
}

/// Why attached `up` stopped following.
enum Ended {
    Interrupted,
    /// A container exited with this code (`--abort-on-container-exit`).
    Aborted(i32),
    /// Every watched container has exited and none will be restarted.
    AllExited,
}

/// Notices containers that exit while `up` is attached: prints `service-N exited with code
/// C` once per exit, as compose does, and decides when attached mode ends.
struct ExitWatch {
    abort: bool,
    /// Only a non-zero exit aborts (`--abort-on-container-failure`).
    abort_on_failure: bool,
    completes: Vec<String>,
    services: BTreeSet<String>,
    /// Containers seen exited, with their code (forgotten when they run again).
    exited: HashMap<String, i32>,
}

impl ExitWatch {
    /// The exits seen since the last scan (as lines to print) and whether attached mode ends.
    fn scan(&mut self, ctx: &Ctx) -> (Vec<String>, Option<Ended>) {
        let mut lines = Vec::new();
        let members = ctx.members(&self.services);
        let mut first = None;
        let mut all_exited = !members.is_empty();
        let mut any_policy = false;
        for m in &members {
            any_policy |= m.rec.config.labels.contains_key(labels::RESTART);
            if ctx.rt.is_running(&m.rec) {
                self.exited.remove(&m.rec.id);
                all_exited = false;
                continue;
            }
            let Ok(st) = ctx.rt.state(&m.rec) else {
                continue;
            };
            if st.status != Status::Exited {
                all_exited = false;
                continue;
            }
            if self.exited.contains_key(&m.rec.id) {
                continue;
            }
            let code = st.exit_code.unwrap_or(0);
            self.exited.insert(m.rec.id.clone(), code);
            lines.push(format!("{} exited with code {code}", m.short()));
            let expected = code == 0 && self.completes.contains(&m.service);
            if self.abort && !expected && first.is_none() {
                first = Some(Ended::Aborted(code));
            }
            if self.abort_on_failure && code != 0 && first.is_none() {
                first = Some(Ended::Aborted(code));
            }
        }
        if first.is_some() {
            return (lines, first);
        }
        let done = all_exited && !any_policy && !self.abort;
        (lines, done.then_some(Ended::AllExited))
    }
}

/// Attached `berth up`: streams the services' logs with prefixes, picks up new containers,
/// and on Ctrl-C stops the project gracefully (a second Ctrl-C ends the CLI at once). With
/// `--abort-on-container-exit` the first container exit stops the whole project; the exit
/// code is that container's, or with `--exit-code-from` the named service's.
pub fn attached(g: &GlobalOpts, opts: AttachOptions) -> anyhow::Result<ExitCode> {
    let handler = nix::sys::signal::SigAction::new(
        nix::sys::signal::SigHandler::Handler(on_interrupt),
        nix::sys::signal::SaFlags::SA_RESETHAND,
        nix::sys::signal::SigSet::empty(),
    );
    for sig in [nix::sys::signal::SIGINT, nix::sys::signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { nix::sys::signal::sigaction(sig, &handler) }
            .context("installing the Ctrl-C handler")?;
    }
    let ctx = Ctx::load(g)?;
    let selected = ctx.services(&opts.services)?;
    ctx.services(&opts.attach)?;
    ctx.services(&opts.no_attach)?;
    let mut watched = selected.clone();
    if let Some(s) = &opts.exit_code_from {
        watched.extend(ctx.services(std::slice::from_ref(s))?);
    }
    let shown = ctx
        .project
        .attached_services(&selected, &opts.attach, &opts.no_attach);
    let args = LogsArgs {
        follow: true,
        tail: None,
        timestamps: opts.timestamps,
        since: None,
        until: None,
        no_color: opts.no_color,
        no_log_prefix: opts.no_log_prefix,
        services: shown.clone(),
    };
    let mut watch = ExitWatch {
        abort: opts.abort,
        abort_on_failure: opts.abort_on_failure,
        completes: opts.completes.clone(),
        services: watched,
        exited: HashMap::new(),
    };
    // Nothing to show (every service --no-attach'ed): follow nothing, still watch exits.
    let ended = follow_logs_of(&ctx, args, shown.is_empty(), Some(&mut watch))?;
    match &ended {
        Ended::Interrupted => eprintln!("Gracefully stopping... (press Ctrl+C again to force)"),
        Ended::Aborted(..) => eprintln!("Aborting on container exit..."),
        Ended::AllExited => return Ok(ExitCode::SUCCESS),
    }
    let all = ctx.services(&[])?;
    let verb = Verb::Stop {
        timeout: opts.timeout,
    };
    let failures = progress(send_verb(g, &ctx, &all, verb)?);
    for f in &failures {
        eprintln!("error: {f}");
    }
    let code = match (&ended, &opts.exit_code_from) {
        (_, Some(svc)) => {
            // The first of its containers that exited on its own, else how the stop ended it.
            let set: BTreeSet<String> = [svc.clone()].into();
            let members = ctx.members(&set);
            let own = members
                .iter()
                .find_map(|m| watch.exited.get(&m.rec.id).copied());
            own.or_else(|| {
                members
                    .iter()
                    .find_map(|m| ctx.rt.state(&m.rec).ok().and_then(|s| s.exit_code))
            })
            .unwrap_or(0)
        }
        (Ended::Aborted(code), None) => *code,
        _ => 0,
    };
    if !failures.is_empty() && code == 0 {
        return Ok(ExitCode::from(1));
    }
    Ok(exit_code(code))
}

fn follow_logs(g: &GlobalOpts, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let ctx = Ctx::load(g)?;
    follow_logs_of(&ctx, args, false, None)?;
    Ok(ExitCode::SUCCESS)
}

type Followers = HashMap<String, (Follower, String, String)>;

/// Prints what the followers have that is new, merged by time.
fn drain(
    followers: &mut Followers,
    printer: &mut Printer,
    opts: &LogOptions,
) -> anyhow::Result<()> {
    let mut batch: Vec<(SystemTime, String, String, LogEntry)> = Vec::new();
    for (f, prefix, service) in followers.values_mut() {
        for e in f.poll().into_iter().filter(|e| wants(opts, e)) {
            batch.push((entry_time(&e), prefix.clone(), service.clone(), e));
        }
    }
    batch.sort_by_key(|(t, ..)| *t);
    for (_, prefix, service, e) in &batch {
        printer
            .line(prefix, service, e)
            .context("writing to stdout")?;
    }
    Ok(())
}

/// Prints the logs `args` asks for; when following, until Ctrl-C or until `watch` says the
/// attached `up` is over. `none` follows no service at all (every one `--no-attach`ed).
fn follow_logs_of(
    ctx: &Ctx,
    args: LogsArgs,
    none: bool,
    mut watch: Option<&mut ExitWatch>,
) -> anyhow::Result<Ended> {
    let set = if none {
        BTreeSet::new()
    } else {
        ctx.services(&args.services)?
    };
    let tail = match args.tail.as_deref() {
        None | Some("all") | Some("-1") => None,
        Some(n) => Some(
            n.parse::<usize>()
                .with_context(|| format!("invalid --tail {n:?}"))?,
        ),
    };
    let opts = LogOptions {
        tail,
        timestamps: args.timestamps,
        since: args.since.as_deref().map(parse_when).transpose()?,
        until: args.until.as_deref().map(parse_when).transpose()?,
    };
    let members = ctx.members(&set);
    let mut printer = Printer {
        width: members.iter().map(|m| m.short().len()).max().unwrap_or(0),
        colour: match ctx.ansi.as_deref() {
            Some("never") => false,
            Some("always") => !args.no_color,
            _ => !args.no_color && std::io::stdout().is_terminal(),
        },
        timestamps: args.timestamps,
        no_prefix: args.no_log_prefix,
        services: BTreeMap::new(),
    };
    // Followers first, so that nothing written between the read and the follow is lost.
    let mut followers: Followers = HashMap::new();
    let mut merged: Vec<(SystemTime, String, String, LogEntry)> = Vec::new();
    for m in &members {
        let path = m.rec.log_path();
        if args.follow {
            followers.insert(
                m.rec.id.clone(),
                (Follower::new(&path, false), m.short(), m.service.clone()),
            );
        }
        let all: Vec<LogEntry> = logs::read_all(&path)
            .into_iter()
            .filter(|e| wants(&opts, e))
            .collect();
        let start = tail.map_or(0, |n| all.len().saturating_sub(n));
        for e in all.into_iter().skip(start) {
            merged.push((entry_time(&e), m.short(), m.service.clone(), e));
        }
    }
    merged.sort_by_key(|(t, ..)| *t);
    for (_, prefix, service, e) in &merged {
        printer
            .line(prefix, service, e)
            .context("writing to stdout")?;
    }
    if !args.follow {
        return Ok(Ended::AllExited);
    }
    let mut last_scan = Instant::now();
    let mut last_exit_scan = Instant::now();
    loop {
        if last_scan.elapsed() >= Duration::from_millis(500) {
            last_scan = Instant::now();
            for m in ctx.members(&set) {
                followers.entry(m.rec.id.clone()).or_insert_with(|| {
                    tracing::debug!(container = %m.rec.config.name, "logs: following a new container");
                    (
                        Follower::new(&m.rec.log_path(), true),
                        m.short(),
                        m.service.clone(),
                    )
                });
            }
        }
        drain(&mut followers, &mut printer, &opts)?;
        if watch.is_some() && INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(Ended::Interrupted);
        }
        if let Some(w) = watch.as_deref_mut()
            && last_exit_scan.elapsed() >= Duration::from_millis(200)
        {
            last_exit_scan = Instant::now();
            let (exits, ended) = w.scan(ctx);
            if !exits.is_empty() {
                // A container's last lines come before its exit.
                drain(&mut followers, &mut printer, &opts)?;
                let mut out = std::io::stdout().lock();
                for line in exits {
                    writeln!(out, "{line}").context("writing to stdout")?;
                }
            }
            if let Some(ended) = ended {
                return Ok(ended);
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

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
