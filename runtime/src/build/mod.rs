//! Dockerfile builds: the pure half (parse, substitute, resolve stages, read the context,
//! compute cache keys and config changes) that the executor and image store will run.
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
//! Nothing in this module runs a container or touches the image store.

pub mod cache;
pub mod config;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod ignore;
pub mod plan;
pub mod stages;
pub mod syntax;
pub mod words;

pub use config::{ImageConfig, ImageConfigDelta};
pub use context::Context;
pub use dockerfile::Dockerfile;
pub use plan::{BuildPlan, CacheKey, Step, StepKind};
