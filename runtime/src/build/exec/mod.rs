//! Executes a [`BuildPlan`]: the half of the builder that runs containers and writes the image
//! store, so that a Dockerfile becomes a tagged image with Docker's cache behaviour.
//!
//! Every step commits an intermediate image on top of the previous one (as Docker's classic
//! builder does): a RUN/COPY step with its layer, a config-only step with an empty-layer
//! history entry. The [`BuildCache`] maps each step's cache key to that intermediate image id
//! (stored in [`CacheEntry::layer`]), so a hit is one lookup and a fully cached build creates
//! no container and writes no layer; the final image is the target stage's last intermediate.
//!
//! RUN gets a network namespace of its own, attached through the caller's [`RunNetwork`] to
//! the build network (NAT egress, resolv.conf naming the host's real upstream resolvers)
//! before it starts and detached when the step ends, pass or fail. `RUN --network=none` gets
//! loopback only, `RUN --network=host` the host's namespace.
//!
//! This file walks the plan (stages, cache lookups, progress, the cache index); `step` runs
//! and commits one step.
//!
//! [`BuildPlan`]: super::BuildPlan

mod cache_dir;
mod cache_from;
mod named_contexts;
mod prune;
mod run_host;
mod run_mounts;
mod ssh_agent;
mod step;

pub use cache_dir::{CacheSource, parse_cache_from, parse_cache_to};
pub use named_contexts::{NamedContext, NamedSource};
pub use prune::{CacheRecord, PruneReport, cache_records};
pub use run_host::BuildEvent;
pub use run_mounts::{BuildSecret, SecretSource};
pub use ssh_agent::BuildSsh;

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use oci_spec::image::Config;

use super::cache::{BuildCache, CacheEntry, CacheError, StepOutcome};
use super::config::ImageConfig;
use super::context::{Context, ContextError, DigestCache};
use super::copy;
use super::dockerfile::{Dockerfile, ParseError};
use super::ignore::IgnoreError;
use super::network::{RunNetwork, RunNetworkError};
use super::plan::{self, CacheKey, PlanError};
use super::steps::{
    BaseImage, BaseSource, CopyOrigin, CopySource, CopySpec, PlanOptions, RunNetworkMode, RunSpec,
    StepKind,
};
use crate::container::{ContainerConfig, NetworkMode, RootfsSource, Runtime, RuntimeError, logs};
use crate::image::diff::{self, DiffError};
use crate::image::store::Healthcheck;
use crate::image::store::LayerDraft;
use crate::image::{Digest, Image, ImageStore, NewImage, StoreError};
use crate::inroot::{self, Follow, InRoot};

/// Why a build failed, naming the step, file or image at fault.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile could not be read.
    #[error("reading {path}")]
    ReadDockerfile {
        /// The file.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The Dockerfile does not parse.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// Planning failed (bad instruction, unknown stage, ...), with file:line.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// `.dockerignore` is invalid.
    #[error(transparent)]
    Ignore(#[from] IgnoreError),
    /// The context could not be read, or a COPY source is missing.
    #[error("{step}")]
    Context {
        /// The step (`[2/5] COPY app /app`), or `build context`.
        step: String,
        #[source]
        source: ContextError,
    },
    /// A base image is not in the store.
    #[error("base image {reference} (pull it first: berth image pull {reference})")]
    BaseImage {
        /// As written in FROM / COPY --from.
        reference: String,
        #[source]
        source: StoreError,
    },
    /// `--pull` could not fetch a base image from its registry.
    #[error("--pull: cannot pull base image {reference}")]
    Pull {
        /// As written in FROM / COPY --from.
        reference: String,
        #[source]
        source: Box<crate::image::registry::RegistryError>,
    },
    /// The image store failed during a step.
    #[error("{step}: image store")]
    Store {
        /// The step.
        step: String,
        #[source]
        source: StoreError,
    },
    /// The container of a RUN step could not be created, started or waited for.
    #[error("{step}: running the container")]
    Runtime {
        /// The step.
        step: String,
        #[source]
        source: RuntimeError,
    },
    /// RUN exited non-zero.
    #[error(
        "{step} failed: {command:?} exited with code {code}{}",
        if output.is_empty() { String::new() } else { format!("\n--- last output ---\n{output}") }
    )]
    RunFailed {
        /// The step (`[3/7] RUN make`).
        step: String,
        /// The command run.
        command: Vec<String>,
        /// Its exit code.
        code: i32,
        /// The last lines of its output.
        output: String,
    },
    /// Turning a step's changes into a layer failed.
    #[error("{step}: writing the layer")]
    Diff {
        /// The step.
        step: String,
        #[source]
        source: DiffError,
    },
    /// Writing COPY files or the scratch directory failed.
    #[error("{step}: {op} {path}")]
    Io {
        /// The step.
        step: String,
        /// What was done.
        op: &'static str,
        /// The path at fault.
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A user or group of `--chown` is not in the image's /etc/passwd or /etc/group.
    #[error("{step}: --chown {spec}: no {what} {name:?} in the image")]
    UnknownOwner {
        /// The step.
        step: String,
        /// The `--chown` value.
        spec: String,
        /// `user` or `group`.
        what: &'static str,
        /// The name looked up.
        name: String,
    },
    /// A feature of the plan this executor does not run yet (refused, never skipped).
    #[error("{step}: not supported by the executor yet: {what}")]
    Unsupported {
        /// The step.
        step: String,
        /// What is missing.
        what: &'static str,
    },
    /// The build network could not be wired for a RUN step.
    #[error("{step}")]
    Network {
        /// The step.
        step: String,
        #[source]
        source: RunNetworkError,
    },
    /// The cache index could not be read or written.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// ADD of a URL failed: unreachable, an HTTP error, or not the `--checksum` given.
    #[error("{step}: ADD {url}: {message}")]
    Download {
        /// The step.
        step: String,
        /// The URL.
        url: String,
        /// What went wrong (both digests on a mismatch).
        message: String,
    },
    /// A build secret is missing, unreadable, or required and not given.
    #[error("{step}: {message}")]
    Secret {
        /// The step, or `build secrets`.
        step: String,
        /// What is wrong, naming the secret (never its value).
        message: String,
    },
    /// A cache directory (`--cache-from type=local` / `--cache-to type=local`) could not be
    /// read or written.
    #[error("build cache directory {dir}: {message}")]
    CacheDir {
        /// The directory.
        dir: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A config could not be converted between the builder's and the store's shapes.
    #[error("converting the image config: {0}")]
    Config(#[source] serde_json::Error),
}

/// What to build: the `docker build` options.
#[derive(Debug, Clone, Default)]
pub struct BuildRequest {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile; `<context>/Dockerfile` when None.
    pub dockerfile: Option<PathBuf>,
    /// Dockerfile text given inline (compose `dockerfile_inline`); wins over `dockerfile`.
    pub dockerfile_inline: Option<String>,
    /// Build args, target and labels.
    pub options: PlanOptions,
    /// Tags for the result (`name:tag`); may be empty.
    pub tags: Vec<String>,
    /// `--no-cache`: run every step, then record the results for the next build.
    pub no_cache: bool,
    /// `--pull`: resolve every base image (FROM, COPY --from=image) from its registry again
    /// instead of the store's copy.
    pub pull: bool,
    /// How `pull` reaches registries (insecure registries, attempts, credentials).
    pub pull_options: crate::image::registry::PullOptions,
    /// How RUN containers are set up (network, extra hosts, /dev/shm, ulimits, privilege).
    pub run: super::run_options::RunOptions,
    /// `--cache-from`: local images whose steps may serve as cache where their history
    /// matches this build's (Docker's classic builder's rule); missing ones are skipped.
    pub cache_from: Vec<String>,
    /// Secrets `RUN --mount=type=secret` may use; never stored anywhere by the build.
    pub secrets: Vec<BuildSecret>,
    /// SSH agents `RUN --mount=type=ssh` may reach; never stored anywhere by the build.
    pub ssh: Vec<BuildSsh>,
    /// Named contexts (`--build-context`): directories or images standing for a name.
    pub contexts: Vec<NamedContext>,
    /// `--cache-from type=local,src=DIR`: cache directories loaded before the build.
    pub cache_import: Vec<PathBuf>,
    /// `--cache-to type=local,dest=DIR`: where this build's steps are exported after it.
    pub cache_export: Option<PathBuf>,
}

/// One step as it went, for progress output.
#[derive(Debug, Clone)]
pub struct StepReport {
    /// `[3/7] RUN make`.
    pub display: String,
    /// Served from the cache (FROM always is: it only names the base).
    pub cached: bool,
    /// The step is a FROM (Docker prints no CACHED for it).
    pub from: bool,
    /// Wall time of the step.
    pub elapsed_ms: u128,
    /// The image the step produced or reused (None for FROM scratch).
    pub image: Option<String>,
}

/// The built image and how each step went.
#[derive(Debug)]
pub struct BuildResult {
    /// The image (tagged with every requested tag).
    pub image: Image,
    /// The steps of the needed stages, in order.
    pub steps: Vec<StepReport>,
    /// Warnings of the planner (unused build args ...).
    pub warnings: Vec<String>,
}

impl BuildResult {
    /// The image the final stage starts FROM (None for FROM scratch): what `build --squash`
    /// keeps under the one layer it makes of the rest.
    pub fn final_base(&self) -> Option<&str> {
        self.steps.iter().rev().find(|s| s.from)?.image.as_deref()
    }
}

/// Runs builds against one berth instance: its image store, container runtime and cache.
pub struct Builder<'a> {
    store: &'a ImageStore,
    runtime: &'a Runtime,
    dir: PathBuf,
    network: Option<&'a dyn RunNetwork>,
    /// Whether this build attached anything (so `release` is called once at its end).
    attached: std::sync::atomic::AtomicBool,
    /// Who hears RUN steps start and their output as it comes.
    events: Option<&'a (dyn Fn(&BuildEvent) + Sync)>,
    /// The running build's RUN options and cache sources.
    current: std::sync::Mutex<run_host::PerBuild>,
}

/// Label of RUN containers: `builder prune` removes any a killed build left behind.
pub const BUILD_LABEL: &str = "berth.build.step";

/// The builder's state directory under the instance root (cache index, digest caches, tmp).
pub fn builder_dir(root: &Path) -> PathBuf {
    root.join("builder")
}

/// One step of the instance's last build, for `berth image tree`.
#[derive(Debug, Clone)]
pub struct LastBuildStep {
    /// `[3/7] RUN make`.
    pub display: String,
    /// Served from the cache.
    pub hit: bool,
    /// The intermediate image the step produced or reused (None for FROM).
    pub image: Option<String>,
}

/// The steps of the last build of the instance under `root` and whether each was a cache hit
/// (the cache index records them), so users can see why a build took as long as it did.
pub fn last_build(root: &Path) -> Result<Vec<LastBuildStep>, BuildError> {
    let cache = BuildCache::open(&builder_dir(root).join("cache.json"))?;
    Ok(cache
        .last_build()
        .iter()
        .map(|o| LastBuildStep {
            display: o.display.clone(),
            hit: o.hit,
            image: cache.get(&o.key).and_then(|e| e.layer.clone()),
        })
        .collect())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn builder_config_of(img: &Image) -> ImageConfig {
    img.raw_config
        .get("config")
        .and_then(|c| serde_json::from_value(c.clone()).ok())
        .unwrap_or_default()
}

/// Docker's config extensions the OCI schema lacks and the builder keeps: `Shell`, so that
/// shell-form RUN/CMD of images built FROM this one use it, and `OnBuild`, the triggers such
/// builds run first, as with Docker.
fn config_extensions(cfg: &ImageConfig) -> serde_json::Map<String, serde_json::Value> {
    let mut ext = serde_json::Map::new();
    if let Some(shell) = &cfg.shell {
        ext.insert("Shell".into(), serde_json::json!(shell));
    }
    if !cfg.on_build.is_empty() {
        ext.insert("OnBuild".into(), serde_json::json!(cfg.on_build));
    }
    ext
}

/// The store's shapes of a builder config (runtime config + Docker's Healthcheck extension).
fn store_config(cfg: &ImageConfig) -> Result<(Config, Option<Healthcheck>), BuildError> {
    let mut value = serde_json::to_value(cfg).map_err(BuildError::Config)?;
    let hc = value
        .as_object_mut()
        .and_then(|o| o.remove("Healthcheck"))
        .map(serde_json::from_value::<Healthcheck>)
        .transpose()
        .map_err(BuildError::Config)?;
    if let Some(o) = value.as_object_mut() {
        o.remove("Shell");
        o.remove("OnBuild");
    }
    let config: Config = serde_json::from_value(value).map_err(BuildError::Config)?;
    Ok((config, hc))
}

/// Where a stage is: its current image (None = empty scratch) and config.
#[derive(Clone)]
struct StageState {
    image: Option<Image>,
    config: ImageConfig,
}

impl<'a> Builder<'a> {
    /// A builder over an instance's store and runtime; its state lives in `builder_dir(root)`.
    pub fn new(store: &'a ImageStore, runtime: &'a Runtime, root: &Path) -> Builder<'a> {
        Builder {
            store,
            runtime,
            dir: builder_dir(root),
            network: None,
            attached: std::sync::atomic::AtomicBool::new(false),
            events: None,
            current: Default::default(),
        }
    }

    /// The build network RUN steps use by default; without one they get loopback only.
    pub fn with_network(mut self, network: &'a dyn RunNetwork) -> Builder<'a> {
        self.network = Some(network);
        self
    }

    fn cache_path(&self) -> PathBuf {
        self.dir.join("cache.json")
    }

    /// Read-modify-write of the cache index under `cache.lock`, so that builds running side by
    /// side (compose services) never lose each other's entries.
    fn update_cache(&self, f: impl FnOnce(&mut BuildCache)) -> Result<(), BuildError> {
        let lock_path = self.dir.join("cache.lock");
        fs::create_dir_all(&self.dir).map_err(|source| CacheError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let _lock = crate::image::lock::FileLock::exclusive(&lock_path).map_err(|source| {
            CacheError::Io {
                path: lock_path.clone(),
                source,
            }
        })?;
        let mut c = BuildCache::open(&self.cache_path())?;
        f(&mut c);
        c.save()?;
        Ok(())
    }

    fn digest_cache_path(&self, context: &Path) -> PathBuf {
        let canon = fs::canonicalize(context).unwrap_or_else(|_| context.to_path_buf());
        let d = Digest::of_bytes(canon.as_os_str().as_encoded_bytes());
        self.dir.join("contexts").join(format!("{}.json", d.hex()))
    }

    /// Builds `req`; `progress` sees each step as it finishes (for `[n/N] ... CACHED` lines).
    pub fn build(
        &self,
        req: &BuildRequest,
        progress: impl FnMut(&StepReport),
    ) -> Result<BuildResult, BuildError> {
        let res = self
            .begin(req)
            .and_then(|()| self.build_steps(req, progress));
        if self
            .attached
            .swap(false, std::sync::atomic::Ordering::Relaxed)
            && let Some(n) = self.network
        {
            n.release();
        }
        res
    }

    fn build_steps(
        &self,
        req: &BuildRequest,
        mut progress: impl FnMut(&StepReport),
    ) -> Result<BuildResult, BuildError> {
        let io_err = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| BuildError::Io {
                step: "builder".into(),
                op,
                path,
                source,
            }
        };
        for sub in ["contexts", "tmp"] {
            fs::create_dir_all(self.dir.join(sub))
                .map_err(io_err("creating", &self.dir.join(sub)))?;
        }
        let df_path = req
            .dockerfile
            .clone()
            .unwrap_or_else(|| req.context.join("Dockerfile"));
        let (src, file) = match &req.dockerfile_inline {
            Some(s) => (s.clone(), "Dockerfile".to_string()),
            None => (
                fs::read_to_string(&df_path).map_err(|source| BuildError::ReadDockerfile {
                    path: df_path.clone(),
                    source,
                })?,
                df_path.display().to_string(),
            ),
        };
        let df = Dockerfile::parse(&src, &file)?;
        // Every secret given must be readable, used or not: a typo in a path fails at once.
        for s in &req.secrets {
            s.read().map_err(|message| BuildError::Secret {
                step: "build secrets".into(),
                message,
            })?;
        }
        for a in &req.ssh {
            a.check().map_err(|message| BuildError::Secret {
                step: "build ssh agents".into(),
                message,
            })?;
        }
        let (contexts, context_images) = self.named_contexts(&req.contexts)?;
        let options = PlanOptions {
            contexts,
            ..req.options.clone()
        };
        let mut bases = HashMap::new();
        for r in plan::external_images(&df, &options)? {
            if bases.contains_key(&r.reference) {
                continue;
            }
            let img = if req.pull && !context_images.contains(&r.reference) {
                tracing::info!(image = %r.reference, "pulling base image (--pull)");
                crate::image::registry::pull(self.store, &r.reference, &req.pull_options, &|_| {})
                    .map_err(|source| BuildError::Pull {
                    reference: r.reference.clone(),
                    source: Box::new(source),
                })?
            } else {
                self.store
                    .resolve(&r.reference)
                    .map_err(|source| BuildError::BaseImage {
                        reference: r.reference.clone(),
                        source,
                    })?
            };
            bases.insert(
                r.reference.clone(),
                BaseImage {
                    digest: img.id.to_string(),
                    config: builder_config_of(&img),
                },
            );
        }
        let ctx_err = |source| BuildError::Context {
            step: "build context".into(),
            source,
        };
        let dc_path = self.digest_cache_path(&req.context);
        let digests: DigestCache = fs::read(&dc_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        let df_for_ignore = if req.dockerfile_inline.is_some() {
            None
        } else {
            Some(df_path.as_path())
        };
        let t_scan = Instant::now();
        let ctx = Context::scan_for(&req.context, df_for_ignore)
            .map_err(ctx_err)?
            .with_digest_cache(digests);
        let t_plan = Instant::now();
        let bp = plan::plan(&df, &options, &ctx, &bases)?;
        tracing::debug!(
            entries = ctx.entries().len(),
            scan_ms = (t_plan - t_scan).as_millis() as u64,
            plan_ms = t_plan.elapsed().as_millis() as u64,
            "context scanned, plan made (content checksums included)"
        );
        if !req.cache_import.is_empty() {
            let n = self.import_cache_dirs(&req.cache_import)?;
            tracing::debug!(entries = n, "cache directories imported");
        }
        let mut cache = BuildCache::open(&self.cache_path())?;
        let mut outcomes = Vec::new();
        let mut reports = Vec::new();
        let mut stage_results: HashMap<usize, StageState> = HashMap::new();
        for stage in &bp.stages {
            let mut st = StageState {
                image: None,
                config: ImageConfig::default(),
            };
            let mut prev_key = None;
            for step in &bp.steps[stage.steps.clone()] {
                let t0 = Instant::now();
                let mut cached = false;
                match &step.kind {
                    StepKind::From(base) => {
                        st =
                            match base {
                                BaseSource::Scratch => StageState {
                                    image: None,
                                    config: ImageConfig::default(),
                                },
                                BaseSource::Image { reference, digest } => {
                                    let img = self.store.resolve(digest).map_err(|source| {
                                        BuildError::BaseImage {
                                            reference: reference.clone(),
                                            source,
                                        }
                                    })?;
                                    let mut config = builder_config_of(&img);
                                    config.on_build.clear();
                                    StageState {
                                        image: Some(img),
                                        config,
                                    }
                                }
                                BaseSource::Stage(i) => stage_results.get(i).cloned().ok_or(
                                    BuildError::Unsupported {
                                        step: step.display.clone(),
                                        what: "FROM a stage that was not built before",
                                    },
                                )?,
                            };
                        cached = true;
                    }
                    _ => {
                        let mut next_config = st.config.clone();
                        step.delta.apply(&mut next_config);
                        let hit = if req.no_cache {
                            None
                        } else {
                            cache
                                .get(&step.cache_key)
                                .and_then(|e| e.layer.as_deref())
                                .and_then(|id| self.store.resolve(id).ok())
                        };
                        let image = match hit {
                            Some(img) => {
                                cached = true;
                                img
                            }
                            None => {
                                let img = match self.cache_source_hit(step, &st, &next_config)? {
                                    Some(img) => {
                                        cached = true;
                                        img
                                    }
                                    None => self.execute(
                                        step,
                                        &st,
                                        &next_config,
                                        &ctx,
                                        &stage_results,
                                        req,
                                    )?,
                                };
                                let size = img.layer_sizes.last().copied().unwrap_or(0);
                                let entry = CacheEntry {
                                    key: step.cache_key.clone(),
                                    parent: prev_key.clone(),
                                    created_by: step.created_by.clone(),
                                    layer: Some(img.id.to_string()),
                                    size: if step.makes_layer() { size } else { 0 },
                                    created: now_secs(),
                                    last_used: now_secs(),
                                };
                                cache.insert(entry.clone());
                                // Saved at once: a later failing step keeps this one cached.
                                self.update_cache(|c| c.insert(entry))?;
                                img
                            }
                        };
                        st = StageState {
                            image: Some(image),
                            config: next_config,
                        };
                    }
                }
                prev_key = Some(step.cache_key.clone());
                outcomes.push(StepOutcome {
                    key: step.cache_key.clone(),
                    display: step.display.clone(),
                    hit: cached,
                });
                let rep = StepReport {
                    display: step.display.clone(),
                    cached,
                    from: matches!(step.kind, StepKind::From(_)),
                    elapsed_ms: t0.elapsed().as_millis(),
                    image: st.image.as_ref().map(|i| i.id.to_string()),
                };
                progress(&rep);
                reports.push(rep);
            }
            stage_results.insert(stage.index, st);
        }
        if let Some(dest) = &req.cache_export {
            let keys: Vec<CacheKey> = outcomes.iter().map(|o| o.key.clone()).collect();
            self.export_cache_dir(dest, &cache, &keys)?;
        }
        let now = now_secs();
        self.update_cache(|c| {
            for o in &outcomes {
                c.touch(&o.key, now);
            }
            c.record_build(outcomes);
        })?;
        if let Ok(bytes) = serde_json::to_vec(&ctx.digest_cache()) {
            let tmp = dc_path.with_extension("tmp");
            if fs::write(&tmp, bytes).is_ok() {
                let _ = fs::rename(&tmp, &dc_path);
            }
        }
        let target = bp.target_stage();
        let mut fin = stage_results
            .remove(&target.index)
            .ok_or(BuildError::Unsupported {
                step: target.label.clone(),
                what: "a target stage without steps",
            })?;
        // Build labels change no cache key (as in Docker): add them on top when missing.
        if fin.config != target.config {
            let created_by = format!(
                "LABEL {}",
                req.options
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            // Cached too, so a rebuild with the same labels gives the same image id.
            let cfg_json = serde_json::to_vec(&target.config).map_err(BuildError::Config)?;
            let key = CacheKey(format!(
                "{}+config:{}",
                target.final_key.0,
                Digest::of_bytes(&cfg_json).hex()
            ));
            let hit = (!req.no_cache)
                .then(|| cache.get(&key).and_then(|e| e.layer.clone()))
                .flatten()
                .and_then(|id| self.store.resolve(&id).ok());
            let img = match hit {
                Some(img) => img,
                None => {
                    let img = self.commit(
                        "final config",
                        None,
                        fin.image.as_ref(),
                        &target.config,
                        created_by.clone(),
                    )?;
                    let entry = CacheEntry {
                        key,
                        parent: Some(target.final_key.clone()),
                        created_by,
                        layer: Some(img.id.to_string()),
                        size: 0,
                        created: now_secs(),
                        last_used: now_secs(),
                    };
                    self.update_cache(|c| c.insert(entry))?;
                    img
                }
            };
            fin.image = Some(img);
        }
        let image = match fin.image {
            Some(i) => i,
            None => self.commit("scratch", None, None, &target.config, "FROM scratch".into())?,
        };
        for t in &req.tags {
            self.store
                .tag(&image.id, t)
                .map_err(|source| BuildError::Store {
                    step: format!("tagging {t}"),
                    source,
                })?;
        }
        let image = self
            .store
            .resolve(image.id.as_str())
            .map_err(|source| BuildError::Store {
                step: "reading the result".into(),
                source,
            })?;
        tracing::info!(image = %image.id, steps = reports.len(), "build done");
        Ok(BuildResult {
            image,
            steps: reports,
            warnings: bp.warnings.clone(),
        })
    }
}
