//! `logs` (with `--follow`, `--since`, `--until`, `--tail`, prefixes and colours) and the
//! attached `up`/`start -a`: the containers' logs merged in time order, followed until the
//! containers exit or the user interrupts.

use super::*;

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
