//! Executing one step of a build: RUN in a container of its own (with its network and
//! guard), COPY/ADD from the context or another stage into a layer draft, and committing the
//! result as the next intermediate image.

use super::*;

/// The removal guard of a RUN container: it is detached from the build network and removed
/// even when the build fails or panics.
pub(super) struct ContainerGuard<'a> {
    runtime: &'a Runtime,
    rec: crate::container::Record,
    network: Option<&'a dyn RunNetwork>,
}

impl Drop for ContainerGuard<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.network
            && let Err(e) = n.detach(&self.rec.id)
        {
            tracing::warn!(container = %self.rec.id, error = %e, "detaching a build container");
        }
        if let Err(e) = self.runtime.remove(&self.rec, true) {
            tracing::warn!(container = %self.rec.id, error = %e, "removing a build container");
        }
    }
}

/// Runs its closure when dropped (timing logs on every exit path).
pub(super) struct Finally<F: FnMut()>(F);

impl<F: FnMut()> Drop for Finally<F> {
    fn drop(&mut self) {
        (self.0)()
    }
}

/// A scratch directory removed on drop.
pub(super) struct ScratchDir(pub(super) PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A step's new layer: a tar file (RUN: written before its container goes) or a directory
/// in the store that becomes the layer as it is (COPY/ADD: each file is written once; the
/// store hashes its tar for the diff id without writing it).
pub(super) enum Layer {
    Tar(PathBuf),
    Draft(LayerDraft),
}

impl Builder<'_> {
    pub(super) fn commit(
        &self,
        step: &str,
        layer: Option<Layer>,
        parent: Option<&Image>,
        cfg: &ImageConfig,
        created_by: String,
    ) -> Result<Image, BuildError> {
        let (config, healthcheck) = store_config(cfg)?;
        let extensions = config_extensions(cfg);
        let new = NewImage {
            config,
            healthcheck,
            created_by,
            comment: None,
        };
        let store_err = |source| BuildError::Store {
            step: step.to_string(),
            source,
        };
        let parent = parent.map(|i| &i.id);
        let t0 = Instant::now();
        let _done = Finally(|| {
            tracing::debug!(
                step,
                ms = t0.elapsed().as_millis() as u64,
                "layer committed"
            )
        });
        match layer {
            Some(Layer::Tar(p)) => {
                let res = fs::File::open(&p)
                    .map_err(|source| BuildError::Io {
                        step: step.to_string(),
                        op: "opening",
                        path: p.to_path_buf(),
                        source,
                    })
                    .and_then(|mut f| {
                        self.store
                            .commit_extended(Some(&mut f), parent, new, &extensions)
                            .map_err(store_err)
                    });
                let _ = fs::remove_file(&p);
                res
            }
            Some(Layer::Draft(draft)) => self
                .store
                .commit_dir(draft, parent, new, &extensions)
                .map_err(store_err),
            None => self
                .store
                .commit_extended(None, parent, new, &extensions)
                .map_err(store_err),
        }
    }

    /// Runs a step that missed the cache and commits its intermediate image.
    pub(super) fn execute(
        &self,
        step: &crate::build::steps::Step,
        st: &StageState,
        next_config: &ImageConfig,
        ctx: &Context,
        stages: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Result<Image, BuildError> {
        let parent = st.image.as_ref();
        let layer = match &step.kind {
            StepKind::Run(run) => Some(Layer::Tar(self.run_step(
                &step.display,
                run,
                parent,
                ctx,
                stages,
                req,
            )?)),
            StepKind::Copy(spec) if !matches!(spec.origin, CopyOrigin::Context) => Some(
                Layer::Draft(self.copy_from_step(&step.display, spec, parent, stages)?),
            ),
            StepKind::Copy(spec) => Some(Layer::Draft(self.copy_step(
                &step.display,
                spec,
                parent,
                ctx,
            )?)),
            StepKind::Config | StepKind::From(_) => None,
        };
        self.commit(
            &step.display,
            layer,
            parent,
            next_config,
            step.created_by.clone(),
        )
    }

    /// A fresh layer directory in the store for a COPY/ADD step to fill.
    fn draft(&self, step: &str) -> Result<LayerDraft, BuildError> {
        self.store
            .layer_draft()
            .map_err(|source| BuildError::Store {
                step: step.to_string(),
                source,
            })
    }

    pub(super) fn scratch(&self, step: &str, what: &str) -> Result<ScratchDir, BuildError> {
        let p = self.dir.join("tmp").join(format!(
            "{what}-{}-{}",
            std::process::id(),
            Digest::of_bytes(format!("{step}{:?}", Instant::now()).as_bytes()).short()
        ));
        fs::create_dir_all(&p).map_err(|source| BuildError::Io {
            step: step.to_string(),
            op: "creating",
            path: p.clone(),
            source,
        })?;
        Ok(ScratchDir(p))
    }

    /// Writes `upper` as a layer tar under the scratch dir and returns the tar's path.
    fn diff_to_tar(&self, step: &str, upper: &Path) -> Result<PathBuf, BuildError> {
        let tar = self.dir.join("tmp").join(format!(
            "layer-{}-{}.tar",
            std::process::id(),
            Digest::of_bytes(format!("{step}{:?}", Instant::now()).as_bytes()).short()
        ));
        let f = fs::File::create(&tar).map_err(|source| BuildError::Io {
            step: step.to_string(),
            op: "creating",
            path: tar.clone(),
            source,
        })?;
        let w = io::BufWriter::new(f);
        let w = diff::write_upper_diff(upper, w).map_err(|source| BuildError::Diff {
            step: step.to_string(),
            source,
        })?;
        // No fsync: the file is read back into the store at once and deleted; the store
        // makes its own copy durable.
        w.into_inner().map_err(|e| BuildError::Io {
            step: step.to_string(),
            op: "writing",
            path: tar.clone(),
            source: e.into_error(),
        })?;
        Ok(tar)
    }

    fn run_step(
        &self,
        display: &str,
        run: &RunSpec,
        parent: Option<&Image>,
        ctx: &Context,
        stages: &HashMap<usize, StageState>,
        req: &BuildRequest,
    ) -> Result<PathBuf, BuildError> {
        // A `#!` heredoc runs as a file placed in the container's upper dir before start and
        // taken out again before the diff, so it never lands in the layer.
        const SCRIPT: &str = ".berth-build-script";
        let argv = match &run.script {
            Some(_) => vec![format!("/{SCRIPT}")],
            None => run.argv.clone(),
        };
        let layers = parent.map(|i| i.layer_dirs()).unwrap_or_default();
        let mut cfg = ContainerConfig::new(RootfsSource::Layers(layers.clone()), argv.clone());
        cfg.env = run.env.clone();
        if !cfg.env.iter().any(|e| e.starts_with("PATH=")) {
            cfg.env
                .insert(0, crate::container::config::DEFAULT_PATH_ENV.to_string());
        }
        cfg.user = run.user.clone();
        cfg.working_dir = Some(PathBuf::from(&run.workdir));
        // Held until the layer is written: cache locks, scratch copies, secret files.
        let mounts = self.prepare_mounts(display, run, &layers, ctx, stages, req)?;
        cfg.mounts.extend(mounts.specs.iter().cloned());
        cfg.env.extend(mounts.env.iter().cloned());
        let mode = self.run_network(run.network);
        let network = match mode {
            RunNetworkMode::Default => self.network,
            RunNetworkMode::None | RunNetworkMode::Host => None,
        };
        cfg.network = match mode {
            RunNetworkMode::Host => NetworkMode::Host,
            RunNetworkMode::None => NetworkMode::None,
            RunNetworkMode::Default if network.is_some() => NetworkMode::New,
            RunNetworkMode::Default => NetworkMode::None,
        };
        if let Some(n) = network {
            cfg.resolv_conf = Some(n.resolv_conf());
        }
        cfg.labels
            .insert(BUILD_LABEL.to_string(), display.to_string());
        self.apply_run_options(&mut cfg);
        let rt_err = |source| BuildError::Runtime {
            step: display.to_string(),
            source,
        };
        let rec = self.runtime.create(cfg).map_err(rt_err)?;
        let mut guard = ContainerGuard {
            runtime: self.runtime,
            rec,
            network: None,
        };
        if let Some(n) = network {
            let netns = guard.rec.netns.clone().ok_or(BuildError::Unsupported {
                step: display.to_string(),
                what: "a RUN container without a network namespace pin",
            })?;
            self.attached
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // Detach even when attach failed half-way: detaching what is not there is a no-op.
            guard.network = Some(n);
            n.attach(&guard.rec.id, &netns)
                .map_err(|source| BuildError::Network {
                    step: display.to_string(),
                    source,
                })?;
        }
        self.add_extra_hosts(&guard.rec, display)?;
        let step_text = display;
        tracing::debug!(container = %guard.rec.id, step = step_text, "RUN");
        let script_path = guard.rec.dir.join("upper").join(SCRIPT);
        if let Some(text) = &run.script {
            let io = |source| BuildError::Io {
                step: display.to_string(),
                op: "writing the RUN script",
                path: script_path.clone(),
                source,
            };
            fs::write(&script_path, text).map_err(io)?;
            fs::set_permissions(&script_path, fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
        let exit = self.start_and_wait(&guard.rec, display).map_err(rt_err)?;
        if run.script.is_some() {
            let _ = fs::remove_file(&script_path);
        }
        if exit.code != 0 {
            let entries = logs::read_all(&guard.rec.log_path());
            let text: String = entries.iter().map(|e| e.log.as_str()).collect();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(10)..].join("\n");
            return Err(BuildError::RunFailed {
                step: display.to_string(),
                command: match &run.script {
                    Some(text) => vec![text.clone()],
                    None => run.argv.clone(),
                },
                code: exit.code,
                output: tail,
            });
        }
        let upper = guard.rec.dir.join("upper");
        self.remove_mount_stubs(display, &upper, &mounts)?;
        self.diff_to_tar(display, &upper)
    }

    /// COPY --from=stage|image: the source rootfs is flattened (whiteouts applied) into a
    /// scratch dir, each source path is copied with Docker's destination rules, owned by root
    /// (or `--chown`) with `--chmod` applied.
    fn copy_from_step(
        &self,
        display: &str,
        spec: &CopySpec,
        parent: Option<&Image>,
        stages: &HashMap<usize, StageState>,
    ) -> Result<LayerDraft, BuildError> {
        let source_image = match &spec.origin {
            CopyOrigin::Stage(i) => stages.get(i).and_then(|s| s.image.clone()),
            CopyOrigin::Image { reference, digest } => Some(self.store.resolve(digest).map_err(
                |source| BuildError::BaseImage {
                    reference: reference.clone(),
                    source,
                },
            )?),
            CopyOrigin::Context => None,
        };
        let src_root = self.scratch(display, "from")?;
        if let Some(img) = &source_image {
            self.store
                .flatten(img, &src_root.0)
                .map_err(|source| BuildError::Store {
                    step: display.to_string(),
                    source,
                })?;
        }
        let layers = parent.map(|i| i.layer_dirs()).unwrap_or_default();
        let view = copy::image_view(display, &layers)?;
        let owner = match &spec.chown {
            Some(c) => copy::resolve_owner(display, c, view.as_ref())?,
            None => (0, 0),
        };
        let dest_exists_dir = copy::is_dir_in(view.as_ref(), &spec.dest);
        let src = InRoot::open(&src_root.0, Follow::InRoot).map_err(copy::step_io(
            display,
            "opening",
            &src_root.0,
        ))?;
        let paths: Vec<&str> = spec
            .sources
            .iter()
            .filter_map(|s| match s {
                CopySource::Path(p) => Some(p.as_str()),
                _ => None,
            })
            .collect();
        // Wildcards in the last path component expand against the source rootfs.
        let mut expanded: Vec<String> = Vec::new();
        for p in paths {
            let rel = p.trim_start_matches('/').trim_end_matches('/');
            let (dir, last) = rel.rsplit_once('/').unwrap_or(("", rel));
            if !last.contains(['*', '?', '[']) {
                expanded.push(rel.to_string());
                continue;
            }
            if dir.contains(['*', '?', '[']) {
                return Err(BuildError::Unsupported {
                    step: display.to_string(),
                    what: "wildcards before the last component of a COPY --from source",
                });
            }
            let m = globset::Glob::new(last)
                .map(|g| g.compile_matcher())
                .map_err(|_| BuildError::Unsupported {
                    step: display.to_string(),
                    what: "this wildcard pattern in a COPY --from source",
                })?;
            let mut names: Vec<String> = src
                .dir(dir.as_bytes(), None)
                .and_then(|d| inroot::list_dir(d.as_fd()))
                .into_iter()
                .flatten()
                .map(|n| String::from_utf8_lossy(&n).into_owned())
                .filter(|n| m.is_match(n))
                .collect();
            if names.is_empty() {
                return Err(BuildError::Io {
                    step: display.to_string(),
                    op: "finding the COPY --from source",
                    path: PathBuf::from(p),
                    source: io::Error::from(io::ErrorKind::NotFound),
                });
            }
            names.sort();
            for n in names {
                expanded.push(if dir.is_empty() {
                    n
                } else {
                    format!("{dir}/{n}")
                });
            }
        }
        let into_dir = spec.dest_is_dir || dest_exists_dir || expanded.len() > 1;
        let upper = self.draft(display)?;
        let root = copy::layer_root(display, upper.path(), &layers)?;
        let dest_rel = spec.dest.trim_start_matches('/').trim_end_matches('/');
        for p in &expanded {
            let rel = p.as_str();
            // The source's parents resolve inside the source rootfs, its last component is
            // not followed (a link is copied as a link).
            let is_dir = src
                .lstat(rel.as_bytes())
                .map_err(copy::step_io(
                    display,
                    "finding the COPY --from source",
                    format!("/{p}"),
                ))?
                .ok_or_else(|| BuildError::Io {
                    step: display.to_string(),
                    op: "finding the COPY --from source",
                    path: PathBuf::from(format!("/{p}")),
                    source: io::Error::from(io::ErrorKind::NotFound),
                })
                .map(|st| inroot::is_dir(&st))?;
            let dest = if is_dir || !into_dir {
                dest_rel.to_string()
            } else {
                let name = rel.rsplit('/').next().unwrap_or(rel);
                format!("{dest_rel}/{name}")
            };
            copy::copy_tree(display, &src, rel, &root, &dest, owner, spec.chmod)?;
        }
        Ok(upper)
    }

    fn copy_step(
        &self,
        display: &str,
        spec: &CopySpec,
        parent: Option<&Image>,
        ctx: &Context,
    ) -> Result<LayerDraft, BuildError> {
        if !matches!(spec.origin, CopyOrigin::Context) {
            return Err(BuildError::Unsupported {
                step: display.to_string(),
                what: "COPY --from (stage or image)",
            });
        }
        let layers = parent.map(|i| i.layer_dirs()).unwrap_or_default();
        let view = copy::image_view(display, &layers)?;
        let dest_is_dir = copy::is_dir_in(view.as_ref(), &spec.dest);
        let items =
            copy::context_items(spec, ctx, dest_is_dir).map_err(|source| BuildError::Context {
                step: display.to_string(),
                source,
            })?;
        let owner = match &spec.chown {
            Some(c) => Some(copy::resolve_owner(display, c, view.as_ref())?),
            None => None,
        };
        let upper = self.draft(display)?;
        let t0 = Instant::now();
        let step_name = display;
        let _done = Finally(|| {
            tracing::debug!(
                step = step_name,
                items = items.len(),
                ms = t0.elapsed().as_millis() as u64,
                "COPY wrote its layer directory"
            )
        });
        let root = copy::layer_root(display, upper.path(), &layers)?;
        copy::write_items(display, &items, ctx, &root, owner)?;
        Ok(upper)
    }
}
