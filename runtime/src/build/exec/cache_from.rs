//! `--cache-from`: local images whose history may stand in for steps this build would run,
//! by the rule of Docker's classic builder. A source serves a step when its history up to
//! the step's parent is the parent's (the same instructions, the same layers by diff id) and
//! its next history entry is the step's instruction; the step's image is then made from the
//! source's layer and this build's config, without running anything.
//!
//! berth's history names an instruction by its text, not by what it read, so only steps whose
//! outcome the text fixes are taken: RUN steps that see no build argument, and config-only
//! steps. COPY and ADD always run (they are cheap, and the layer they write is the source's
//! when the files are the same, so the chain goes on matching after them). A hit pins the
//! build to that source, as Docker does, so later steps never jump between sources.

use super::*;
use crate::build::steps::Step;

/// One history entry as the matching compares it.
#[derive(PartialEq)]
struct Entry {
    created_by: String,
    empty_layer: bool,
}

fn entries(img: &Image) -> Vec<Entry> {
    img.config
        .history()
        .as_ref()
        .map(|h| {
            h.iter()
                .map(|e| Entry {
                    created_by: e.created_by().clone().unwrap_or_default(),
                    empty_layer: e.empty_layer().unwrap_or(false),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Whether the step's outcome is fixed by its text and its parent: RUN without build
/// arguments in its environment, or a config-only step.
fn text_fixes_outcome(step: &Step, next_config: &ImageConfig) -> bool {
    match &step.kind {
        StepKind::Config => true,
        StepKind::Run(run) => run.env.iter().all(|e| {
            next_config.env.contains(e) || e == crate::container::config::DEFAULT_PATH_ENV
        }),
        StepKind::Copy(_) | StepKind::From(_) => false,
    }
}

impl Builder<'_> {
    /// The image a cache source gives for `step` on the stage so far, made now; None when no
    /// source matches (the step then runs).
    pub(super) fn cache_source_hit(
        &self,
        step: &Step,
        st: &StageState,
        next_config: &ImageConfig,
    ) -> Result<Option<Image>, BuildError> {
        let sources = {
            let cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            if cur.sources.is_empty() {
                return Ok(None);
            }
            cur.sources.clone()
        };
        if !text_fixes_outcome(step, next_config) {
            return Ok(None);
        }
        let (parent_hist, parent_diffs) = match &st.image {
            Some(p) => (entries(p), p.config.rootfs().diff_ids().clone()),
            None => (Vec::new(), Vec::new()),
        };
        for src in &sources {
            let hist = entries(src);
            let diffs = src.config.rootfs().diff_ids();
            let h = parent_hist.len();
            let l = parent_diffs.len();
            let Some(next) = hist.get(h) else {
                continue;
            };
            if hist[..h] != parent_hist[..]
                || diffs.len() < l
                || diffs[..l] != parent_diffs[..]
                || next.created_by != step.created_by
                || next.empty_layer == step.makes_layer()
            {
                continue;
            }
            let layer = if next.empty_layer {
                None
            } else {
                match src.record.layers.get(l) {
                    Some(layer) => Some(layer.clone()),
                    None => continue,
                }
            };
            let (config, healthcheck) = store_config(next_config)?;
            let new = NewImage {
                config,
                healthcheck,
                created_by: step.created_by.clone(),
                comment: None,
            };
            let img = self
                .store
                .commit_reused(
                    layer.as_ref(),
                    st.image.as_ref().map(|i| &i.id),
                    new,
                    &config_extensions(next_config),
                )
                .map_err(|source| BuildError::Store {
                    step: step.display.clone(),
                    source,
                })?;
            tracing::info!(step = %step.display, source = %src.id, "cache hit from a --cache-from image");
            let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
            cur.sources = vec![src.clone()];
            return Ok(Some(img));
        }
        Ok(None)
    }
}
