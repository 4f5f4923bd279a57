//! The plan's data: the steps a build is made of and what the executor needs for each.
//!
//! Produced by [`super::plan::plan`]; see `build/mod.rs` for how a plan is executed.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::config::{ImageConfig, ImageConfigDelta};
use super::context::{SelectedSource, field};
pub use super::dockerfile::RunNetworkMode;
use super::mounts::RunMount;

/// A step's cache key: `sha256:<hex>`, stable across runs and machines.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CacheKey(pub String);

impl fmt::Display for CacheKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl CacheKey {
    /// Chain a step onto its parent: `sha256(parent, tag, material)`, fields length-prefixed.
    pub(crate) fn chain(parent: Option<&CacheKey>, tag: &str, material: &[u8]) -> CacheKey {
        let mut h = Sha256::new();
        field(&mut h, parent.map(|k| k.0.as_bytes()).unwrap_or(b""));
        field(&mut h, tag.as_bytes());
        field(&mut h, material);
        CacheKey(format!("sha256:{}", hex::encode(h.finalize())))
    }
}

/// An image the image store resolved: digest (identity for the cache) and config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BaseImage {
    /// The manifest or config digest, `sha256:...`.
    pub digest: String,
    /// Its runtime config (Env, WorkingDir, Shell... are inherited by the stage).
    pub config: ImageConfig,
}

/// An image the build needs from the store, with where it is used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The reference after substitution, as written in FROM or COPY --from.
    pub reference: String,
    /// `FROM --platform` after substitution.
    pub platform: Option<String>,
    /// The line using it.
    pub line: usize,
}

/// What the build was asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanOptions {
    /// `--build-arg K=V`.
    pub build_args: BTreeMap<String, String>,
    /// `--target`.
    pub target: Option<String>,
    /// `--label` / compose `build.labels`: set on the final image's config only (they make no
    /// layer and change no cache key, as in Docker).
    pub labels: BTreeMap<String, String>,
    /// Named build contexts: the image reference standing for each name that `FROM`,
    /// `COPY --from` and `RUN --mount=from=` may use (over a stage of that name, as BuildKit).
    pub contexts: BTreeMap<String, String>,
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BaseSource {
    /// Empty rootfs and config.
    Scratch,
    /// A store image: its layers are the stage's first lowers.
    Image {
        /// As written.
        reference: String,
        /// Resolved digest.
        digest: String,
    },
    /// The result of an earlier stage (its last step's layers).
    Stage(usize),
}

/// Where COPY/ADD reads from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopyOrigin {
    /// The build context ([`CopySource::Context`] sources).
    Context,
    /// The final rootfs of an earlier stage ([`CopySource::Path`] sources).
    Stage(usize),
    /// The rootfs of a store image ([`CopySource::Path`] sources).
    Image {
        /// As written.
        reference: String,
        /// Resolved digest.
        digest: String,
    },
}

/// One COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// Selected in the context: copy [`Context::members`](super::context::Context::members) of it.
    Context(SelectedSource),
    /// A path or glob inside the `--from` stage or image rootfs (symlinks resolved in its root).
    Path(String),
    /// ADD of an http(s) URL: downloaded when the step runs (never extracted), checked
    /// against `CopySpec::checksum` when given.
    Url(String),
    /// A heredoc: a file named `name` with this content (already expanded when unquoted).
    Inline {
        /// The delimiter, used as the file name when the destination is a directory.
        name: String,
        /// The file content.
        content: String,
    },
}

/// Everything the executor needs to run COPY/ADD into a new layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// ADD (local tar archives are extracted) rather than COPY.
    pub add: bool,
    /// Where sources are read.
    pub origin: CopyOrigin,
    /// The sources in order.
    pub sources: Vec<CopySource>,
    /// Absolute destination; a trailing `/` is kept.
    pub dest: String,
    /// The destination is certainly a directory (trailing `/`, or several sources). Otherwise a
    /// file source lands at `dest` itself unless `dest` already is a directory in the parent
    /// rootfs (Docker's rule), which only the executor can see.
    pub dest_is_dir: bool,
    /// `--chown` after substitution (names are resolved in the parent rootfs' /etc/passwd).
    pub chown: Option<String>,
    /// `--chmod` as permission bits.
    pub chmod: Option<u32>,
    /// `--link` was given.
    pub link: bool,
    /// `COPY --parents`: each source keeps its path (from the context root, or from a `/./`
    /// marker in it) under the destination.
    pub parents: bool,
    /// With `parents`, per source (aligned with `sources`), the leading part of its context
    /// path that is not kept (what precedes a `/./` in the written path; empty otherwise).
    pub parent_strip: Vec<String>,
    /// `--exclude` patterns after substitution (`.dockerignore` syntax, matched against paths
    /// relative to each source): matching paths are left out.
    pub exclude: Vec<String>,
    /// `ADD --checksum`: the `sha256:<hex>` the single source must have.
    pub checksum: Option<String>,
}

/// Everything the executor needs to run a RUN step in a container on the parent rootfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The process (`[shell..., command]` for shell form). Empty when `script` is set.
    pub argv: Vec<String>,
    /// A heredoc starting with `#!`: write it to an executable file inside the container and
    /// run that file (BuildKit's behaviour for `RUN <<EOF` with a shebang).
    pub script: Option<String>,
    /// `KEY=value`: the config Env, then the ARGs in scope, then undeclared proxy args.
    pub env: Vec<String>,
    /// USER in effect (may be `name[:group]`, resolved in the rootfs).
    pub user: Option<String>,
    /// WORKDIR in effect (created if missing, as Docker does).
    pub workdir: String,
    /// `RUN --network=...`.
    pub network: RunNetworkMode,
    /// `RUN --mount=...`, in order.
    pub mounts: Vec<PlannedMount>,
}

/// A RUN mount and where its files come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedMount {
    /// The mount as the user wrote it, expanded and checked.
    pub mount: RunMount,
    /// Its files (bind; the seed of a new cache).
    pub origin: MountOrigin,
}

/// Where a bind mount's files (or a new cache mount's first content) come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOrigin {
    /// Nothing: tmpfs, secrets, a cache without `from=`.
    None,
    /// The build context's `source` path (`.dockerignore` applied, links kept inside it).
    Context(SelectedSource),
    /// An earlier stage's final rootfs.
    Stage(usize),
    /// An image of the store.
    Image {
        /// As written.
        reference: String,
        /// Resolved digest.
        digest: String,
    },
}

/// What kind of work a step is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepKind {
    /// Start the stage's rootfs from a base.
    From(BaseSource),
    /// Run a command: a container on the parent rootfs; its upper dir is the new layer.
    Run(RunSpec),
    /// COPY/ADD files: into an upper dir over the parent rootfs; the upper dir is the new layer.
    Copy(CopySpec),
    /// Config-only (ENV, ARG, LABEL, ...): apply [`Step::delta`], no layer.
    Config,
}

/// One step of the build, as shown to the user and executed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Stage index.
    pub stage: usize,
    /// 1-based position within the stage (FROM is 1).
    pub index: usize,
    /// Number of steps in the stage.
    pub total: usize,
    /// The Dockerfile line.
    pub line: usize,
    /// `[3/7] RUN make` (single stage) or `[build 3/7] RUN make`.
    pub display: String,
    /// The history `created_by` text (the instruction as written).
    pub created_by: String,
    /// The work.
    pub kind: StepKind,
    /// The cache key of the result of this step.
    pub cache_key: CacheKey,
    /// The config change (empty for FROM/RUN/COPY/ADD).
    pub delta: ImageConfigDelta,
}

impl Step {
    /// True for RUN/COPY/ADD: the step makes a layer.
    pub fn makes_layer(&self) -> bool {
        matches!(self.kind, StepKind::Run(_) | StepKind::Copy(_))
    }
}

/// A needed stage after planning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    /// Stage index.
    pub index: usize,
    /// Name or `stage-N`.
    pub label: String,
    /// Its base.
    pub base: BaseSource,
    /// Its steps' range in [`BuildPlan::steps`].
    pub steps: std::ops::Range<usize>,
    /// Key of its last step: what later stages depending on it chain on.
    pub final_key: CacheKey,
    /// Its config after every step.
    pub config: ImageConfig,
    /// MAINTAINER, if any (Docker's `author`).
    pub author: Option<String>,
}

/// The whole build, ready for the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildPlan {
    /// Steps of the needed stages, stage by stage in file order (a valid execution order).
    pub steps: Vec<Step>,
    /// Needed stages only, in file order.
    pub stages: Vec<PlannedStage>,
    /// Index of the target stage in [`BuildPlan::stages`].
    pub target: usize,
    /// Warnings for the user (unused build args, notes from the parser).
    pub warnings: Vec<String>,
}

impl BuildPlan {
    /// The target stage: its config and final key make the image.
    pub fn target_stage(&self) -> &PlannedStage {
        &self.stages[self.target]
    }
}

/// One line per step (`[3/7] RUN make  sha256:0a1b2c3d4e5f layer`), for `--dry-run` output and
/// debug logs.
impl fmt::Display for BuildPlan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            let short = s.cache_key.0.get(..19).unwrap_or(&s.cache_key.0);
            let what = match &s.kind {
                StepKind::From(_) => "base",
                StepKind::Run(_) | StepKind::Copy(_) => "layer",
                StepKind::Config => "config",
            };
            writeln!(f, "{}  {short} {what}", s.display)?;
        }
        for w in &self.warnings {
            writeln!(f, "warning: {w}")?;
        }
        Ok(())
    }
}
