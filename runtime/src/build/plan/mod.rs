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
//!
//! This file prepares the stages and walks them (`plan`, `external_images`); `instruction`
//! plans one instruction.

mod instruction;

use std::collections::{BTreeSet, HashMap};
use std::str::FromStr;

use sha2::{Digest, Sha256};
use thiserror::Error;

use super::config::{ConfigChange, HealthConfig, ImageConfig, ImageConfigDelta, nanos};
use super::context::{Context, ContextError, field};
use super::dockerfile::{
    ArgDecl, Command, CopyArgs, Dockerfile, Instruction, InstructionKind, RunNetworkMode, Source,
};
use super::ignore::{IgnoreRules, clean_path};
use super::mounts::{MountKind, RawMount, RunMount};
use super::stages::{BaseRef, StageError, StageGraph};
pub use super::steps::{
    BaseImage, BaseSource, BuildPlan, CacheKey, CopyOrigin, CopySource, CopySpec, ImageRef,
    MountOrigin, PlanOptions, PlannedMount, PlannedStage, RunSpec, Step, StepKind,
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
    // A named context stands in for the name it has, wherever a stage or image is named.
    let named = |name: String| opts.contexts.get(&name).cloned().unwrap_or(name);
    let graph = StageGraph::resolve(
        df,
        opts.target.as_deref(),
        |i| {
            let s = &df.stages[i];
            expand_word(&s.base, df.escape, &|n: &str| globals.get(n))
                .map(named)
                .map_err(|source| {
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
            expand_word(f, df.escape, &|n: &str| globals.get(n))
                .map(named)
                .map_err(|source| {
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

/// A base image's ONBUILD triggers as instructions of the child stage (on its FROM line).
/// Triggers reading another stage or image (`--from`) are refused: the child's stage graph
/// was resolved without them.
fn onbuild_triggers(
    df: &Dockerfile,
    stage: &super::dockerfile::Stage,
    base: &str,
    triggers: &[String],
) -> Result<Vec<Instruction>, PlanError> {
    let err = |message: String| PlanError {
        file: df.file.clone(),
        line: stage.line,
        kind: Box::new(PlanErrorKind::BadValue {
            instruction: "FROM",
            message,
        }),
    };
    let mut out = Vec::new();
    for t in triggers {
        let text = format!("FROM scratch\n{t}\n");
        let parsed = Dockerfile::parse(&text, "ONBUILD")
            .map_err(|e| err(format!("ONBUILD trigger {t:?} of base image {base}: {e}")))?;
        for mut ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
            let reads_other = match &ins.kind {
                InstructionKind::Copy(c) => c.from.is_some(),
                InstructionKind::Run { mounts, .. } => mounts.iter().any(|m| m.from().is_some()),
                _ => false,
            };
            if reads_other {
                return Err(err(format!(
                    "ONBUILD trigger {t:?} of base image {base}: --from in a trigger is not supported"
                )));
            }
            ins.line = stage.line;
            ins.text = format!("ONBUILD {}", ins.text);
            out.push(ins);
        }
    }
    Ok(out)
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
        // The base image's ONBUILD triggers run first, as if written right after FROM.
        let mut triggers: Vec<Instruction> = Vec::new();
        let (base, base_material, config) = match &planner.prepared.graph.bases[si] {
            BaseRef::Scratch => (
                BaseSource::Scratch,
                "scratch".to_string(),
                ImageConfig::default(),
            ),
            BaseRef::Image(r) => {
                let img = planner.image("FROM", r).map_err(|k| err(stage.line, k))?;
                triggers = onbuild_triggers(df, stage, r, &img.config.on_build)?;
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
        let instructions: Vec<&Instruction> =
            triggers.iter().chain(stage.instructions.iter()).collect();
        let total = instructions.len() + 1;
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
        for (n, ins) in instructions.into_iter().enumerate() {
            let n_from = match &ins.kind {
                InstructionKind::Copy(c) if c.from.is_some() => 1,
                InstructionKind::Run { mounts, .. } => {
                    mounts.iter().filter(|m| m.from().is_some()).count()
                }
                _ => 0,
            };
            let from: Vec<&BaseRef> = froms.by_ref().take(n_from).map(|(_, r)| r).collect();
            let (kind, delta, material) = planner
                .instruction(&mut st, ins, &from, &mut consumed)
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
