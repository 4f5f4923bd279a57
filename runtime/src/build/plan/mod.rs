//! The build plan: every step of the needed stages with its cache key, its config change, and
//! for RUN/COPY/ADD what the executor needs to produce the layer. Pure: no container runs here.
//!
//! # Cache keys (what users rely on)
//!
//! Every step's key is `sha256(parent key, step material)`, a chain like Docker's. So editing
//! instruction N changes the keys of N and of everything after it in the stage (and of stages
//! built on it), never of anything before it. The first step (FROM) is keyed by the base image
//! digest (and platform), by `scratch`, or by the final key of the stage it names.
//!
//! The material of a step is the instruction after substitution:
//! - config-only steps (ENV, LABEL, CMD, ENTRYPOINT, WORKDIR, USER, EXPOSE, VOLUME, STOPSIGNAL,
//!   HEALTHCHECK, SHELL, MAINTAINER): their [`ImageConfigDelta`], i.e. the expanded values. They
//!   make no layer but, through the chain, change the keys of later steps, as Docker does.
//! - ARG scoping follows BuildKit: global ARGs (before the first FROM) are usable in FROM lines
//!   and inside a stage once redeclared; a stage's ARGs are inherited by stages built `FROM` it.
//! - ARG: the declaration as written (names and defaults), NOT the value. A new build-arg value
//!   therefore does not invalidate the steps between the ARG and the first step that sees it.
//! - RUN: the argv (shell + command, or exec form, heredoc bodies included), user, working
//!   directory and the full environment the command gets: the config's Env plus every ARG
//!   declared in the stage so far that has a value and is not shadowed by an ENV. This is
//!   Docker's rule: a RUN is invalidated when *any* ARG in scope changes, used or not, because
//!   the shell may read it. The predefined proxy args (HTTP_PROXY, ...) are passed to RUN
//!   without being in the key unless the stage declares them, as Docker does.
//! - COPY/ADD: flags and paths after substitution, the absolute destination, and a checksum
//!   over the selected files: path relative to the source, kind, permission bits, content sha256
//!   or symlink target. Never mtime/atime/ctime, inode or owner: touching or re-checking-out a
//!   file keeps the key. ARG values reach COPY only through substitution (`COPY $SRC /x`).
//!   `COPY --from=stage` uses that stage's final key; `--from=image` its digest.

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::config::{ConfigChange, HealthConfig, ImageConfig, ImageConfigDelta, nanos};
use super::context::{Context, ContextError, field};
use super::dockerfile::{
    ArgDecl, Command, CopyArgs, Dockerfile, Instruction, InstructionKind, RunNetworkMode, Source,
};
use super::ignore::clean_path;
use super::stages::{BaseRef, StageError, StageGraph};
pub use super::steps::{
    BaseImage, BaseSource, BuildPlan, CacheKey, CopyOrigin, CopySource, CopySpec, ImageRef,
    PlanOptions, PlannedStage, RunSpec, Step, StepKind,
};
use super::words::{SubstError, expand_heredoc, expand_word, expand_words};

/// Proxy args Docker passes to RUN without an ARG declaration, and keeps out of the cache key.
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// A planning failure, located in the Dockerfile when it comes from an instruction.
#[derive(Debug, Error)]
#[error("{}{kind}", location(.file, *.line))]
pub struct PlanError {
    /// The Dockerfile's name.
    pub file: String,
    /// The instruction's line (0 when the error is not about one line, e.g. `--target`).
    pub line: usize,
    /// What went wrong.
    #[source]
    pub kind: Box<PlanErrorKind>,
}

fn location(file: &str, line: usize) -> String {
    if line == 0 {
        format!("{file}: ")
    } else {
        format!("{file}:{line}: ")
    }
}

/// What went wrong while planning.
#[derive(Debug, Error)]
pub enum PlanErrorKind {
    /// Target or stage reference problems.
    #[error(transparent)]
    Stage(#[from] StageError),
    /// Variable substitution failed.
    #[error("{instruction}: {source}")]
    Subst {
        /// The instruction keyword.
        instruction: &'static str,
        /// The substitution error.
        #[source]
        source: SubstError,
    },
    /// The caller did not resolve an image the plan needs (see [`external_images`]).
    #[error("{instruction}: image {reference:?} was not resolved by the image store")]
    MissingImage {
        /// FROM or COPY.
        instruction: &'static str,
        /// The reference.
        reference: String,
    },
    /// A COPY/ADD source problem (missing path, bad glob, unreadable file).
    #[error("{instruction}: {source}")]
    Source {
        /// COPY or ADD.
        instruction: &'static str,
        /// The context error, naming the path relative to the context.
        #[source]
        source: ContextError,
    },
    /// A value that is wrong after substitution (port, signal, chmod, empty user...).
    #[error("{instruction}: {message}")]
    BadValue {
        /// The instruction keyword.
        instruction: &'static str,
        /// What is wrong.
        message: String,
    },
    /// A valid Dockerfile feature berth does not implement yet.
    #[error("{instruction}: {what} is not supported by berth yet")]
    Unsupported {
        /// The instruction keyword.
        instruction: &'static str,
        /// The feature.
        what: String,
    },
}

/// The host's architecture in OCI/Go terms (`amd64`, `arm64`...), what builds target.
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// The automatic platform args BuildKit defines (usable in FROM; in a stage once declared).
fn platform_args() -> Vec<(String, String)> {
    let arch = host_arch();
    let platform = format!("linux/{arch}");
    let mut v = Vec::new();
    for p in ["BUILD", "TARGET"] {
        v.push((format!("{p}PLATFORM"), platform.clone()));
        v.push((format!("{p}OS"), "linux".to_string()));
        v.push((format!("{p}ARCH"), arch.to_string()));
        v.push((format!("{p}VARIANT"), String::new()));
    }
    v
}

/// Global scope: ARGs before the first FROM, plus the automatic platform args.
struct Globals {
    values: Vec<(String, Option<String>)>,
}

impl Globals {
    fn get(&self, name: &str) -> Option<String> {
        self.values
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }
    fn declared(&self, name: &str) -> bool {
        self.values.iter().any(|(n, _)| n == name)
    }
}

struct Prepared {
    globals: Globals,
    graph: StageGraph,
    consumed: BTreeSet<String>,
}

fn prepare(df: &Dockerfile, opts: &PlanOptions) -> Result<Prepared, PlanError> {
    let err = |line, kind| PlanError {
        file: df.file.clone(),
        line,
        kind: Box::new(kind),
    };
    let mut consumed = BTreeSet::new();
    let mut globals = Globals {
        values: platform_args()
            .into_iter()
            .map(|(k, v)| (k, Some(v)))
            .collect(),
    };
    let platform_count = globals.values.len();
    for ins in &df.global_args {
        if let InstructionKind::Arg(decls) = &ins.kind {
            for ArgDecl { name, default } in decls {
                let value = match opts.build_args.get(name) {
                    Some(v) => Some(v.clone()),
                    None => match default {
                        Some(d) => Some(
                            expand_word(d, df.escape, &|n: &str| globals.get(n)).map_err(
                                |source| {
                                    err(
                                        ins.line,
                                        PlanErrorKind::Subst {
                                            instruction: "ARG",
                                            source,
                                        },
                                    )
                                },
                            )?,
                        ),
                        None => globals.values[..platform_count]
                            .iter()
                            .find(|(n, _)| n == name)
                            .and_then(|(_, v)| v.clone()),
                    },
                };
                consumed.insert(name.clone());
                globals.values.push((name.clone(), value));
            }
        }
    }
    let graph = StageGraph::resolve(
        df,
        opts.target.as_deref(),
        |i| {
            let s = &df.stages[i];
            expand_word(&s.base, df.escape, &|n: &str| globals.get(n)).map_err(|source| {
                err(
                    s.line,
                    PlanErrorKind::Subst {
                        instruction: "FROM",
                        source,
                    },
                )
            })
        },
        |_, line, f| {
            // Docker (BuildKit) refuses this too: the stage graph must be known before any
            // stage's ARGs are.
            if f.contains('$') {
                return Err(err(
                    line,
                    bad(
                        "COPY",
                        format!("--from={f}: variable expansion is not supported in --from; name a stage `FROM ${{GLOBAL_ARG}} AS src` (with an ARG before the first FROM) and use --from=src"),
                    ),
                ));
            }
            expand_word(f, df.escape, &|n: &str| globals.get(n)).map_err(|source| {
                err(
                    line,
                    PlanErrorKind::Subst {
                        instruction: "COPY",
                        source,
                    },
                )
            })
        },
    )
    .map_err(|e: PlanError| e)?;
    Ok(Prepared {
        globals,
        graph,
        consumed,
    })
}

impl From<StageError> for PlanError {
    fn from(e: StageError) -> Self {
        PlanError {
            file: String::new(),
            line: e.line(),
            kind: Box::new(PlanErrorKind::Stage(e)),
        }
    }
}

/// The images the needed stages use (FROM and `COPY --from=image`), for the image store to
/// resolve (pull if needed) before [`plan`]. Deduplicated, in first-use order.
pub fn external_images(df: &Dockerfile, opts: &PlanOptions) -> Result<Vec<ImageRef>, PlanError> {
    let p = prepare(df, opts).map_err(|e| with_file(e, df))?;
    let mut out: Vec<ImageRef> = Vec::new();
    for &s in &p.graph.needed {
        let stage = &df.stages[s];
        let mut push = |reference: &str, platform: Option<String>, line| {
            if !out.iter().any(|r| r.reference == reference) {
                out.push(ImageRef {
                    reference: reference.to_string(),
                    platform,
                    line,
                });
            }
        };
        if let BaseRef::Image(r) = &p.graph.bases[s] {
            let platform = expand_platform(df, &p.globals, stage.platform.as_deref(), stage.line)?;
            push(r, platform, stage.line);
        }
        for (line, r) in &p.graph.copy_froms[s] {
            if let BaseRef::Image(r) = r {
                push(r, None, *line);
            }
        }
    }
    Ok(out)
}

fn with_file(mut e: PlanError, df: &Dockerfile) -> PlanError {
    if e.file.is_empty() {
        e.file = df.file.clone();
    }
    e
}

fn expand_platform(
    df: &Dockerfile,
    globals: &Globals,
    platform: Option<&str>,
    line: usize,
) -> Result<Option<String>, PlanError> {
    platform
        .map(|p| {
            expand_word(p, df.escape, &|n: &str| globals.get(n)).map_err(|source| PlanError {
                file: df.file.clone(),
                line,
                kind: Box::new(PlanErrorKind::Subst {
                    instruction: "FROM",
                    source,
                }),
            })
        })
        .transpose()
}

/// A stage's state while its instructions are planned.
struct StageState<'a> {
    config: ImageConfig,
    author: Option<String>,
    args: Vec<(String, Option<String>)>,
    cmd_set: bool,
    key: CacheKey,
    escape: char,
    globals: &'a Globals,
}

impl StageState<'_> {
    /// Substitution lookup: ENV wins over ARG, as in Docker.
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(v) = self.config.env_get(name) {
            return Some(v.to_string());
        }
        self.args
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.clone())
    }
    fn word(&self, instruction: &'static str, w: &str) -> Result<String, PlanErrorKind> {
        expand_word(w, self.escape, &|n: &str| self.lookup(n)).map_err(|source| {
            PlanErrorKind::Subst {
                instruction,
                source,
            }
        })
    }
    fn words(&self, instruction: &'static str, w: &str) -> Result<Vec<String>, PlanErrorKind> {
        expand_words(w, self.escape, &|n: &str| self.lookup(n)).map_err(|source| {
            PlanErrorKind::Subst {
                instruction,
                source,
            }
        })
    }
    fn shell_argv(&self, c: &Command) -> Vec<String> {
        match c {
            Command::Exec(v) => v.clone(),
            Command::Shell(s) => {
                let mut v = self.config.shell_or_default();
                v.push(s.clone());
                v
            }
        }
    }
    fn workdir(&self) -> String {
        self.config
            .working_dir
            .clone()
            .filter(|w| !w.is_empty())
            .unwrap_or_else(|| "/".to_string())
    }
    /// ARGs in scope with a value and not shadowed by ENV: what RUN sees and is keyed on.
    fn visible_args(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = Vec::new();
        for (n, v) in &self.args {
            out.retain(|(o, _)| o != n);
            if let Some(v) = v
                && self.config.env_get(n).is_none()
            {
                out.push((n.clone(), v.clone()));
            }
        }
        out
    }
}

fn bad(instruction: &'static str, message: impl Into<String>) -> PlanErrorKind {
    PlanErrorKind::BadValue {
        instruction,
        message: message.into(),
    }
}

/// `80`, `80/udp`, `8000-8010/tcp` into `port/proto` entries.
fn parse_ports(spec: &str) -> Result<Vec<String>, PlanErrorKind> {
    let (ports, proto) = match spec.split_once('/') {
        Some((p, proto)) => (p, proto.to_ascii_lowercase()),
        None => (spec, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(bad(
            "EXPOSE",
            format!("invalid protocol {proto:?} in {spec:?} (tcp, udp or sctp)"),
        ));
    }
    if ports.contains(':') {
        return Err(bad(
            "EXPOSE",
            format!(
                "{spec:?}: EXPOSE does not take IP or host-port mappings; publish ports when running the container"
            ),
        ));
    }
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| bad("EXPOSE", format!("invalid port {s:?} in {spec:?}")))
    };
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (num(a)?, num(b)?),
        None => (num(ports)?, num(ports)?),
    };
    if lo > hi {
        return Err(bad("EXPOSE", format!("invalid port range {spec:?}")));
    }
    Ok((lo..=hi).map(|p| format!("{p}/{proto}")).collect())
}

/// A signal Docker would accept: a number, a name with or without SIG, or RTMIN+n/RTMAX-n.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if let Some(rest) = name
        .strip_prefix("RTMIN")
        .or_else(|| name.strip_prefix("RTMAX"))
    {
        return rest.is_empty()
            || rest
                .strip_prefix(['+', '-'])
                .is_some_and(|n| n.parse::<u8>().is_ok_and(|n| n <= 30));
    }
    nix::sys::signal::Signal::from_str(&format!("SIG{name}")).is_ok()
}

/// Join a COPY destination or WORKDIR with the current working directory, keeping a trailing
/// `/` (it means "directory" for COPY).
fn absolute(workdir: &str, p: &str) -> String {
    let trailing = p.ends_with('/') || p == "." || p.ends_with("/.");
    let joined = if p.starts_with('/') {
        clean_path(p)
    } else {
        clean_path(&format!("{workdir}/{p}"))
    };
    if trailing && joined != "/" {
        format!("{joined}/")
    } else {
        joined
    }
}

/// The RUN argv for shell form with heredocs, as BuildKit runs it.
fn run_with_heredocs(
    st: &StageState,
    cmd: &str,
    heredocs: &[super::syntax::Heredoc],
) -> (Vec<String>, Option<String>) {
    let only_marker = heredocs.len() == 1 && {
        let t = cmd.trim();
        let h = &heredocs[0];
        let names = [
            format!("<<{}", h.name),
            format!("<<-{}", h.name),
            format!("<<\"{}\"", h.name),
            format!("<<-\"{}\"", h.name),
            format!("<<'{}'", h.name),
            format!("<<-'{}'", h.name),
        ];
        names.iter().any(|n| n == t)
    };
    if only_marker {
        let content = heredocs[0].content.clone();
        if content.starts_with("#!") {
            return (Vec::new(), Some(content));
        }
        let mut v = st.config.shell_or_default();
        v.push(content);
        return (v, None);
    }
    // The shell reads the heredocs itself: hand it the command followed by the bodies.
    let mut script = cmd.to_string();
    for h in heredocs {
        script.push('\n');
        script.push_str(&h.content);
        script.push_str(&h.name);
    }
    let mut v = st.config.shell_or_default();
    v.push(script);
    (v, None)
}

/// What a later stage takes from a planned one: its final key, config, author and ARGs
/// (BuildKit: ARGs declared in a stage are inherited by the stages based on it).
#[derive(Clone)]
struct StageResult {
    key: CacheKey,
    config: ImageConfig,
    author: Option<String>,
    args: Vec<(String, Option<String>)>,
}

struct Planner<'a> {
    opts: &'a PlanOptions,
    ctx: &'a Context,
    bases: &'a HashMap<String, BaseImage>,
    prepared: &'a Prepared,
    stage_results: HashMap<usize, StageResult>,
}

impl Planner<'_> {
    fn image(
        &self,
        instruction: &'static str,
        reference: &str,
    ) -> Result<&BaseImage, PlanErrorKind> {
        self.bases
            .get(reference)
            .ok_or_else(|| PlanErrorKind::MissingImage {
                instruction,
                reference: reference.to_string(),
            })
    }

    fn copy(
        &self,
        st: &StageState,
        add: bool,
        c: &CopyArgs,
        from: Option<&BaseRef>,
    ) -> Result<(CopySpec, Vec<u8>), PlanErrorKind> {
        let kw: &'static str = if add { "ADD" } else { "COPY" };
        let mut h = Sha256::new();
        field(&mut h, kw.as_bytes());
        let origin = match from {
            None => CopyOrigin::Context,
            Some(BaseRef::Stage(s)) => {
                let key = self.stage_results.get(s).map(|r| &r.key).ok_or_else(|| {
                    bad(kw, format!("stage {s} was not planned before it is used"))
                })?;
                field(&mut h, key.0.as_bytes());
                CopyOrigin::Stage(*s)
            }
            Some(BaseRef::Image(r)) => {
                let img = self.image(kw, r)?;
                field(&mut h, img.digest.as_bytes());
                CopyOrigin::Image {
                    reference: r.clone(),
                    digest: img.digest.clone(),
                }
            }
            Some(BaseRef::Scratch) => {
                return Err(bad(kw, "--from=scratch has no files to copy"));
            }
        };
        let chown = c.chown.as_deref().map(|v| st.word(kw, v)).transpose()?;
        let chmod = match &c.chmod {
            None => None,
            Some(v) => {
                let v = st.word(kw, v)?;
                match u32::from_str_radix(&v, 8) {
                    Ok(m) if m <= 0o7777 && !v.is_empty() => Some(m),
                    _ => {
                        return Err(bad(
                            kw,
                            format!(
                                "--chmod={v:?}: expected octal permission bits like 644 or 0755"
                            ),
                        ));
                    }
                }
            }
        };
        field(&mut h, chown.as_deref().unwrap_or("").as_bytes());
        field(&mut h, format!("{chmod:?}").as_bytes());
        field(&mut h, if c.link { b"link" } else { b"" });
        let mut sources = Vec::new();
        for s in &c.sources {
            match s {
                Source::Heredoc(hd) => {
                    let content = if hd.expand {
                        expand_heredoc(&hd.content, st.escape, &|n: &str| st.lookup(n)).map_err(
                            |source| PlanErrorKind::Subst {
                                instruction: kw,
                                source,
                            },
                        )?
                    } else {
                        hd.content.clone()
                    };
                    field(&mut h, b"inline");
                    field(&mut h, hd.name.as_bytes());
                    field(&mut h, content.as_bytes());
                    sources.push(CopySource::Inline {
                        name: hd.name.clone(),
                        content,
                    });
                }
                Source::Path(p) => {
                    let p = st.word(kw, p)?;
                    if add && (p.contains("://") || p.starts_with("git@")) {
                        return Err(PlanErrorKind::Unsupported {
                            instruction: kw,
                            what: format!("a URL or git source ({p})"),
                        });
                    }
                    if matches!(origin, CopyOrigin::Context) {
                        let selected =
                            self.ctx
                                .select(&p)
                                .map_err(|source| PlanErrorKind::Source {
                                    instruction: kw,
                                    source,
                                })?;
                        for sel in selected {
                            field(&mut h, b"context");
                            self.ctx.hash_source(&sel, &mut h).map_err(|source| {
                                PlanErrorKind::Source {
                                    instruction: kw,
                                    source,
                                }
                            })?;
                            sources.push(CopySource::Context(sel));
                        }
                    } else {
                        field(&mut h, b"path");
                        field(&mut h, p.as_bytes());
                        sources.push(CopySource::Path(p));
                    }
                }
            }
        }
        let dest_raw = st.word(kw, &c.dest)?;
        if dest_raw.is_empty() {
            return Err(bad(kw, "the destination is empty"));
        }
        let dest = absolute(&st.workdir(), &dest_raw);
        // Docker's rule: several sources (given or from a glob) need a `dir/` destination; a
        // glob matching one file copies it like a plain file source.
        let several = sources.len() > 1;
        if several && !dest.ends_with('/') {
            return Err(bad(
                kw,
                format!(
                    "with more than one source file the destination must be a directory and end with a / (got {dest_raw:?})"
                ),
            ));
        }
        field(&mut h, dest.as_bytes());
        let spec = CopySpec {
            add,
            origin,
            sources,
            dest_is_dir: dest.ends_with('/') || several,
            dest,
            chown,
            chmod,
            link: c.link,
        };
        Ok((spec, h.finalize().to_vec()))
    }

    fn instruction(
        &self,
        st: &mut StageState,
        ins: &Instruction,
        from: Option<&BaseRef>,
        consumed: &mut BTreeSet<String>,
    ) -> Result<(StepKind, ImageConfigDelta, Vec<u8>), PlanErrorKind> {
        use ConfigChange as C;
        let kw = ins.kind.keyword();
        let delta = |c| ImageConfigDelta::one(c);
        let (kind, delta): (StepKind, ImageConfigDelta) = match &ins.kind {
            InstructionKind::Run {
                command,
                heredocs,
                network,
            } => {
                let (argv, script) = match command {
                    Command::Shell(s) if !heredocs.is_empty() => run_with_heredocs(st, s, heredocs),
                    c => (st.shell_argv(c), None),
                };
                let mut env = st.config.env.clone();
                let mut keyed_env = env.clone();
                for (k, v) in st.visible_args() {
                    env.push(format!("{k}={v}"));
                    keyed_env.push(format!("{k}={v}"));
                }
                for p in PROXY_ARGS {
                    if let Some(v) = self.opts.build_args.get(p)
                        && !st.args.iter().any(|(n, _)| n == p)
                        && st.config.env_get(p).is_none()
                    {
                        env.push(format!("{p}={v}"));
                    }
                }
                let spec = RunSpec {
                    argv,
                    script,
                    env,
                    user: st.config.user.clone(),
                    workdir: st.workdir(),
                    network: *network,
                };
                let mut material = serde_json::json!({
                    "argv": spec.argv, "script": spec.script, "env": keyed_env,
                    "user": spec.user, "workdir": spec.workdir,
                });
                // The network is part of what ran (as in BuildKit), but the default one leaves
                // the key as it was before `--network` existed, so old caches still hit.
                if *network != RunNetworkMode::Default {
                    material["network"] = serde_json::json!(network);
                }
                return Ok((
                    StepKind::Run(spec),
                    ImageConfigDelta::default(),
                    material.to_string().into_bytes(),
                ));
            }
            InstructionKind::Copy(c) | InstructionKind::Add(c) => {
                let add = matches!(ins.kind, InstructionKind::Add(_));
                let (spec, material) = self.copy(st, add, c, from)?;
                return Ok((StepKind::Copy(spec), ImageConfigDelta::default(), material));
            }
            InstructionKind::Arg(decls) => {
                for ArgDecl { name, default } in decls {
                    let value = match self.opts.build_args.get(name) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(st.word("ARG", d)?),
                            None => {
                                if st.globals.declared(name) {
                                    st.globals.get(name)
                                } else {
                                    platform_args()
                                        .into_iter()
                                        .find(|(n, _)| n == name)
                                        .map(|(_, v)| v)
                                }
                            }
                        },
                    };
                    consumed.insert(name.clone());
                    st.args.push((name.clone(), value));
                }
                let material = serde_json::json!(
                    decls
                        .iter()
                        .map(|d| (&d.name, &d.default))
                        .collect::<Vec<_>>()
                );
                return Ok((
                    StepKind::Config,
                    ImageConfigDelta::default(),
                    material.to_string().into_bytes(),
                ));
            }
            InstructionKind::Env(pairs) | InstructionKind::Label(pairs) => {
                // Every value sees the variables as they were before this instruction.
                let mut out = Vec::new();
                for (k, v) in pairs {
                    let k = st.word(kw, k)?;
                    if k.is_empty() {
                        return Err(bad(kw, "a name is empty after substitution"));
                    }
                    out.push((k, st.word(kw, v)?));
                }
                if matches!(ins.kind, InstructionKind::Env(_)) {
                    (StepKind::Config, delta(C::Env(out)))
                } else {
                    (StepKind::Config, delta(C::Labels(out)))
                }
            }
            InstructionKind::Maintainer(m) => (StepKind::Config, delta(C::Author(m.clone()))),
            InstructionKind::Workdir(w) => {
                let w = st.word(kw, w)?;
                if w.is_empty() {
                    return Err(bad(kw, "the path is empty after substitution"));
                }
                let abs = absolute(&st.workdir(), &w);
                let abs = if abs.len() > 1 {
                    abs.trim_end_matches('/').to_string()
                } else {
                    abs
                };
                (StepKind::Config, delta(C::WorkingDir(abs)))
            }
            InstructionKind::User(u) => {
                let u = st.word(kw, u)?;
                if u.is_empty() {
                    return Err(bad(kw, "the user is empty after substitution"));
                }
                (StepKind::Config, delta(C::User(u)))
            }
            InstructionKind::Expose(words) => {
                let mut ports = Vec::new();
                for w in words {
                    for p in st.words(kw, w)? {
                        ports.extend(parse_ports(&p)?);
                    }
                }
                (StepKind::Config, delta(C::ExposedPorts(ports)))
            }
            InstructionKind::Volume(paths) => {
                let mut out = Vec::new();
                for p in paths {
                    let p = st.word(kw, p)?;
                    if p.trim().is_empty() {
                        return Err(bad(kw, "a volume path is empty after substitution"));
                    }
                    out.push(p);
                }
                (StepKind::Config, delta(C::Volumes(out)))
            }
            InstructionKind::StopSignal(s) => {
                let s = st.word(kw, s)?;
                if !valid_signal(&s) {
                    return Err(bad(kw, format!("invalid signal {s:?}")));
                }
                (StepKind::Config, delta(C::StopSignal(s)))
            }
            InstructionKind::Cmd(c) => {
                // Docker: only a non-empty CMD keeps a later ENTRYPOINT from clearing it.
                st.cmd_set = !matches!(c, Command::Exec(v) if v.is_empty());
                (StepKind::Config, delta(C::Cmd(st.shell_argv(c))))
            }
            InstructionKind::Entrypoint(c) => (
                StepKind::Config,
                delta(C::Entrypoint {
                    entrypoint: st.shell_argv(c),
                    reset_cmd: !st.cmd_set,
                }),
            ),
            InstructionKind::Shell(s) => (StepKind::Config, delta(C::Shell(s.clone()))),
            InstructionKind::Healthcheck(h) => {
                let hc = match h {
                    None => HealthConfig {
                        test: vec!["NONE".into()],
                        ..Default::default()
                    },
                    Some((o, c)) => HealthConfig {
                        test: match c {
                            Command::Exec(v) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                            Command::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                        },
                        interval: nanos(o.interval),
                        timeout: nanos(o.timeout),
                        start_period: nanos(o.start_period),
                        start_interval: nanos(o.start_interval),
                        retries: o.retries.unwrap_or(0),
                    },
                };
                (StepKind::Config, delta(C::Healthcheck(hc)))
            }
        };
        // Serializing plain strings and vectors cannot fail; the delta is the step's material.
        let material = serde_json::to_vec(&delta).unwrap_or_default();
        Ok((kind, delta, material))
    }
}

/// Plan the build: parse results + options + the context + the resolved images in, every step
/// with its cache key and work out. Fails on the first bad instruction, with file:line.
pub fn plan(
    df: &Dockerfile,
    opts: &PlanOptions,
    ctx: &Context,
    bases: &HashMap<String, BaseImage>,
) -> Result<BuildPlan, PlanError> {
    let prepared = prepare(df, opts).map_err(|e| with_file(e, df))?;
    let mut consumed = prepared.consumed.clone();
    let mut planner = Planner {
        opts,
        ctx,
        bases,
        prepared: &prepared,
        stage_results: HashMap::new(),
    };
    let multi = df.stages.len() > 1;
    let mut steps = Vec::new();
    let mut stages = Vec::new();
    for &si in &planner.prepared.graph.needed {
        let stage = &df.stages[si];
        let err = |line, kind| PlanError {
            file: df.file.clone(),
            line,
            kind: Box::new(kind),
        };
        let platform =
            expand_platform(df, &prepared.globals, stage.platform.as_deref(), stage.line)?;
        let mut inherited_args = Vec::new();
        let mut inherited_author = None;
        let (base, base_material, config) = match &planner.prepared.graph.bases[si] {
            BaseRef::Scratch => (
                BaseSource::Scratch,
                "scratch".to_string(),
                ImageConfig::default(),
            ),
            BaseRef::Image(r) => {
                let img = planner.image("FROM", r).map_err(|k| err(stage.line, k))?;
                if !img.config.on_build.is_empty() {
                    return Err(err(
                        stage.line,
                        PlanErrorKind::Unsupported {
                            instruction: "FROM",
                            what: format!(
                                "running the ONBUILD triggers of base image {r} ({})",
                                img.config.on_build.join("; ")
                            ),
                        },
                    ));
                }
                let mut config = img.config.clone();
                config.on_build.clear();
                (
                    BaseSource::Image {
                        reference: r.clone(),
                        digest: img.digest.clone(),
                    },
                    format!("image {}", img.digest),
                    config,
                )
            }
            BaseRef::Stage(b) => {
                let r = planner.stage_results.get(b).cloned().ok_or_else(|| {
                    err(
                        stage.line,
                        bad(
                            "FROM",
                            format!("stage {b} was not planned before it is used"),
                        ),
                    )
                })?;
                inherited_args = r.args;
                inherited_author = r.author;
                (BaseSource::Stage(*b), format!("stage {}", r.key), r.config)
            }
        };
        let material = format!("{base_material} platform={}", platform.unwrap_or_default());
        let total = stage.instructions.len() + 1;
        let prefix = |i: usize| {
            if multi {
                format!("[{} {i}/{total}]", stage.label())
            } else {
                format!("[{i}/{total}]")
            }
        };
        let first = steps.len();
        let from_key = CacheKey::chain(None, "FROM", material.as_bytes());
        steps.push(Step {
            stage: si,
            index: 1,
            total,
            line: stage.line,
            display: format!("{} {}", prefix(1), stage.text),
            created_by: stage.text.clone(),
            kind: StepKind::From(base.clone()),
            cache_key: from_key.clone(),
            delta: ImageConfigDelta::default(),
        });
        let mut st = StageState {
            config,
            author: inherited_author,
            args: inherited_args,
            cmd_set: false,
            key: from_key,
            escape: df.escape,
            globals: &prepared.globals,
        };
        let mut froms = planner.prepared.graph.copy_froms[si].iter();
        for (n, ins) in stage.instructions.iter().enumerate() {
            let from = match &ins.kind {
                InstructionKind::Copy(c) if c.from.is_some() => froms.next().map(|(_, r)| r),
                _ => None,
            };
            let (kind, delta, material) = planner
                .instruction(&mut st, ins, from, &mut consumed)
                .map_err(|k| err(ins.line, k))?;
            if let Some(a) = delta.apply(&mut st.config) {
                st.author = Some(a);
            }
            let key = CacheKey::chain(Some(&st.key), ins.kind.keyword(), &material);
            st.key = key.clone();
            let first_line = ins.text.lines().next().unwrap_or("");
            steps.push(Step {
                stage: si,
                index: n + 2,
                total,
                line: ins.line,
                display: format!("{} {first_line}", prefix(n + 2)),
                created_by: ins.text.clone(),
                kind,
                cache_key: key,
                delta,
            });
        }
        planner.stage_results.insert(
            si,
            StageResult {
                key: st.key.clone(),
                config: st.config.clone(),
                author: st.author.clone(),
                args: st.args.clone(),
            },
        );
        stages.push(PlannedStage {
            index: si,
            label: stage.label(),
            base,
            steps: first..steps.len(),
            final_key: st.key,
            config: st.config,
            author: st.author,
        });
    }
    let mut warnings: Vec<String> = df.notes.clone();
    let unused: Vec<&String> = opts
        .build_args
        .keys()
        .filter(|k| !consumed.contains(*k) && !PROXY_ARGS.contains(&k.as_str()))
        .collect();
    if !unused.is_empty() {
        warnings.push(format!(
            "one or more build-args were not consumed: {}",
            unused
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let target = stages
        .iter()
        .position(|s| s.index == prepared.graph.target)
        .unwrap_or(stages.len().saturating_sub(1));
    if let Some(t) = stages.get_mut(target) {
        for (k, v) in &opts.labels {
            t.config.labels.insert(k.clone(), v.clone());
        }
    }
    tracing::debug!(steps = steps.len(), stages = stages.len(), "build planned");
    Ok(BuildPlan {
        steps,
        stages,
        target,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_ports("80").unwrap(), vec!["80/tcp"]);
        assert_eq!(parse_ports("53/UDP").unwrap(), vec!["53/udp"]);
        assert_eq!(parse_ports("90-92/tcp").unwrap().len(), 3);
        assert!(parse_ports("1.2.3.4:80:80").is_err());
        assert!(parse_ports("80/foo").is_err());
        assert!(parse_ports("92-90").is_err());
        assert!(parse_ports("x").is_err());
    }

    #[test]
    fn signals() {
        for s in ["SIGTERM", "term", "9", "SIGRTMIN+3", "QUIT"] {
            assert!(valid_signal(s), "{s}");
        }
        for s in ["SIGFOO", "0", "99", "RTMIN+99"] {
            assert!(!valid_signal(s), "{s}");
        }
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(absolute("/app", "."), "/app/");
        assert_eq!(absolute("/app", "x/"), "/app/x/");
        assert_eq!(absolute("/app", "/y"), "/y");
        assert_eq!(absolute("/", "a/../b"), "/b");
        assert_eq!(absolute("/", "/"), "/");
    }
}
