//! Dockerfile builds: the pure half (parse, substitute, resolve stages, read the context,
//! compute cache keys and config changes) that the executor ([`exec`]) and image store run.
//!
//! The flow the daemon follows:
//! 1. [`Dockerfile::parse`] the file (errors carry `Dockerfile:LINE`).
//! 2. [`plan::external_images`] names the base images (and `COPY --from=image` images) the
//!    needed stages use; the image store resolves each to a digest and config.
//! 3. [`Context::scan`] reads the build context with `.dockerignore` applied.
//! 4. [`plan::plan`] gives a [`BuildPlan`]: every step with its display text, cache key,
//!    config delta, and for RUN/COPY/ADD everything the executor needs to produce a layer.
//! 5. The executor walks the steps: a [`cache::BuildCache`] hit reuses the recorded layer; a
//!    miss runs RUN in a container on the parent rootfs, or writes [`copy::context_items`]
//!    for COPY/ADD, and records the new layer. Config-only steps apply their delta.
//!
//! Everything above is pure; [`exec`] is the executor that runs containers and writes the
//! image store. What a caller (CLI, engine) uses:
//!
//! ```no_run
//! # fn f(store: &berth_runtime::image::ImageStore, rt: &berth_runtime::container::Runtime)
//! # -> Result<(), berth_runtime::build::exec::BuildError> {
//! use berth_runtime::build::exec::{BuildRequest, Builder};
//! let root = std::path::Path::new("/var/lib/berth");
//! let req = BuildRequest {
//!     context: "/srv/app".into(),
//!     dockerfile: Some("/srv/app/Dockerfile.prod".into()), // compose: context.join(dockerfile)
//!     tags: vec!["myproject-web".into()],
//!     ..Default::default() // build args/target/labels in `options`, `no_cache`, inline text
//! };
//! let res = Builder::new(store, rt, root).build(&req, |s| eprintln!("{}", s.display))?;
//! println!("{}", res.image.id);
//! # Ok(()) }
//! ```
//!
//! # Executing a plan (the contract for the executor and image store)
//!
//! Steps come stage by stage in file order; a stage only uses earlier stages. Per stage keep
//! the list of layers so far and the [`ImageConfig`] (start from the base; `PlannedStage::config`
//! is the end result, already computed).
//! - [`StepKind::From`]: `Scratch` = no layers; `Image` = the store image's layers (by the
//!   digest in the plan); `Stage(i)` = the layers of stage `i` after its last step.
//! - [`StepKind::Run`]: if [`cache::BuildCache`] has `cache_key` (and its layer exists), reuse
//!   it. Else mount overlayfs (lowers = the layers so far, a fresh upper), create
//!   `RunSpec::workdir` if missing, run `RunSpec::argv` (or write `RunSpec::script` to an
//!   executable temp file and run it) as `RunSpec::user` with exactly `RunSpec::env`, on the
//!   build network ([`network::RunNetwork`]; `RunSpec::network` may ask for none or host). Exit 0: the upper dir (with overlay whiteouts turned into OCI whiteouts) is
//!   the new layer; record it under `cache_key` with the previous step's key as parent. Failure:
//!   report `Step::display`, the command, the exit code and the last output lines; remove the
//!   container.
//! - [`StepKind::Copy`]: same cache check; on a miss, write into a fresh upper dir over the
//!   layers so far. `CopyOrigin::Context`: [`copy::context_items`] lists each path to create
//!   (dirs, files read from [`Context::host_path`], symlinks as links, heredoc files, archives to
//!   extract for ADD), given whether `CopySpec::dest` already is a directory in the parent rootfs.
//!   `CopyOrigin::Stage`/`Image`: resolve each `CopySource::Path` (globs, symlinks scoped to that
//!   rootfs) in the source stage's or image's rootfs and apply the same destination rules.
//!   Apply `chown` (names looked up in the parent rootfs' /etc/passwd and /etc/group) and
//!   `chmod`. The upper dir is the layer.
//! - [`StepKind::Config`]: nothing to run; the step's delta is already in the stage config.
//!   History gets `created_by` with `empty_layer: true`.
//!
//! The image = the target stage's layers + `PlannedStage::config` (+ `author`) + one history
//! entry per step. Save `Context::digest_cache()` for the next build of the same directory.

pub mod cache;
pub mod config;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod exec;
pub mod ignore;
pub mod mounts;
pub mod network;
pub mod plan;
pub mod run_options;
pub mod stages;
pub mod steps;
pub mod syntax;
pub mod words;

pub use config::{ImageConfig, ImageConfigDelta};
pub use context::Context;
pub use dockerfile::Dockerfile;
pub use plan::{BuildPlan, CacheKey, Step, StepKind};
pub use run_options::RunOptions;
