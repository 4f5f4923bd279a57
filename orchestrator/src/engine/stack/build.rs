//! Building a project's images: one service's `build:` section lowered to the builder's request
//! (args, target, tags, cache, secrets, SSH agents, named contexts), and a project's builds run
//! side by side as Compose runs them.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;

use super::{Engine, blocking};

/// A boxed future: the builds of context images call each other.
type Pending<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;
use crate::api::project::BuildOptions;
use crate::compose::Project;

impl Engine {
    /// Builds a service's image from its `build:` section and tags it as the service's image
    /// (`image:` or `<project>-<service>`), with the layer cache unless `no_cache`.
    pub async fn build_service(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        no_cache: bool,
    ) -> Result<(), String> {
        self.build_service_with(project, service, no_cache, false, &BTreeMap::new())
            .await
    }

    /// [`Self::build_service`] with `berth build`'s `--pull` (re-resolve base images from
    /// their registries) and `--build-arg` values (over the service's `build.args`).
    pub async fn build_service_with(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        no_cache: bool,
        pull: bool,
        build_args: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        self.build_service_reporting(project, service, no_cache, pull, build_args, |_| {})
            .await
    }

    /// [`Self::build_service_with`], handing each finished step to `report` (the `[n/N] ...`
    /// lines `berth build` streams to its user while the build runs). The images of other
    /// services the build reads (`additional_contexts: {NAME: service:OTHER}`) are built
    /// first when the store lacks them.
    pub async fn build_service_reporting(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        no_cache: bool,
        pull: bool,
        build_args: &BTreeMap<String, String>,
        report: impl Fn(&berth_runtime::build::exec::StepReport) + Send + 'static,
    ) -> Result<(), String> {
        let opts = BuildOptions {
            no_cache,
            pull,
            build_args: build_args.clone(),
            missing_only: false,
        };
        let contexts = self.context_images(project, service, &opts, &[]).await?;
        let tag = project.image_of(service).unwrap_or_default();
        let lock = self.build_lock(&tag);
        let _held = lock.lock().await;
        self.build_locked(project, service, &opts, &contexts, report)
            .await
    }

    /// One build per image tag at a time: a build waiting on another service's image and
    /// that service's own build (an `up` runs them side by side) do not build it twice.
    fn build_lock(&self, tag: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(format!("image build {tag}"))
            .or_default()
            .clone()
    }

    /// The store ids of the images of the services `service`'s build reads
    /// (`service:OTHER` contexts), by service; an image the store lacks is built first.
    /// `waiting` holds the builds waiting on this one: meeting one of them again is a cycle.
    fn context_images<'a>(
        self: &'a Arc<Self>,
        project: &'a Project,
        service: &'a str,
        opts: &'a BuildOptions,
        waiting: &'a [String],
    ) -> Pending<'a, Result<BTreeMap<String, String>, String>> {
        Box::pin(async move {
            let mut out = BTreeMap::new();
            let Some(b) = project.services.get(service).and_then(|s| s.build.as_ref()) else {
                return Ok(out);
            };
            for (name, other) in b.service_contexts() {
                if out.contains_key(&other) {
                    continue;
                }
                let bad = |m: String| {
                    format!(
                        "building service {service}: build.additional_contexts: {name}=service:{other}: {m}"
                    )
                };
                if other == service || waiting.contains(&other) {
                    let mut cycle: Vec<&str> = waiting.iter().map(String::as_str).collect();
                    cycle.extend([service, &other]);
                    let from = cycle.iter().position(|s| *s == other).unwrap_or(0);
                    return Err(bad(format!(
                        "the builds of services {} read each other's images in a cycle",
                        cycle[from..].join(" -> ")
                    )));
                }
                let svc = project
                    .services
                    .get(&other)
                    .ok_or_else(|| bad("no such service".into()))?;
                if svc.build.is_none() {
                    return Err(bad(
                        "that service has no build: section (name its image as docker-image://IMAGE)".into(),
                    ));
                }
                let tag = project.image_of(&other).unwrap_or_default();
                if self.images.resolve(&tag).is_err() {
                    let mut next = waiting.to_vec();
                    next.push(service.to_string());
                    let contexts = self.context_images(project, &other, opts, &next).await?;
                    let lock = self.build_lock(&tag);
                    let _held = lock.lock().await;
                    // Built meanwhile by the build that held the lock: used as it is.
                    if self.images.resolve(&tag).is_err() {
                        self.build_locked(project, &other, opts, &contexts, |_| {})
                            .await?;
                    }
                }
                let img = self
                    .images
                    .resolve(&tag)
                    .map_err(|e| bad(format!("its image {tag}: {e}")))?;
                out.insert(other, img.id.to_string());
            }
            Ok(out)
        })
    }

    /// Builds `service` once its build lock is held and the images it reads are known
    /// (`contexts`, by service).
    async fn build_locked(
        self: &Arc<Self>,
        project: &Project,
        service: &str,
        opts: &BuildOptions,
        contexts: &BTreeMap<String, String>,
        report: impl Fn(&berth_runtime::build::exec::StepReport) + Send + 'static,
    ) -> Result<(), String> {
        use berth_runtime::build::exec::{BuildRequest, Builder};
        let (no_cache, pull, build_args) = (opts.no_cache, opts.pull, &opts.build_args);
        let svc = project
            .services
            .get(service)
            .ok_or_else(|| format!("no such service: {service}"))?;
        let b = svc
            .build
            .clone()
            .ok_or_else(|| format!("service {service} has no build: section"))?;
        let context = PathBuf::from(&b.context);
        // The builder makes the host's platform: a list naming only it is what is built; one
        // naming others was warned about by the loader, and the host's image is built.
        if let Some(p) = b.platforms.as_ref()
            && !crate::compose::only_host_platform(p)
        {
            tracing::warn!(
                service,
                "build.platforms lists platforms besides the host's: building the host's only"
            );
        }
        let options = berth_runtime::build::steps::PlanOptions {
            build_args: b
                .args
                .iter()
                .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
                .chain(build_args.iter().map(|(k, v)| (k.clone(), v.clone())))
                .collect(),
            target: b.target.clone(),
            labels: b.labels.clone(),
            contexts: Default::default(),
        };
        let mut tags = vec![project.image_of(service).unwrap_or_default()];
        tags.extend(
            b.tags
                .iter()
                .filter(|t| !tags.contains(t))
                .cloned()
                .collect::<Vec<_>>(),
        );
        let (cache_images, cache_dirs) =
            super::super::build_options::cache_from(&b, &project.working_dir)
                .map_err(|e| format!("building service {service}: {e}"))?;
        let req = BuildRequest {
            dockerfile: b.dockerfile.as_ref().map(|d| context.join(d)),
            context,
            dockerfile_inline: b.dockerfile_inline.clone(),
            options,
            tags,
            no_cache: no_cache || b.no_cache.unwrap_or(false),
            pull: pull || b.pull.unwrap_or(false),
            pull_options: Default::default(),
            run: super::super::build_options::run_options(&b)
                .map_err(|e| format!("building service {service}: {e}"))?,
            cache_from: cache_images,
            secrets: compose_build_secrets(
                project,
                service,
                b.secrets
                    .as_ref()
                    .map(serde_json::to_value)
                    .transpose()
                    .map_err(|e| format!("service {service}: build.secrets: {e}"))?
                    .as_ref(),
            )?,
            ssh: super::super::build_options::ssh(&b, &project.environment, &project.working_dir)
                .map_err(|e| format!("building service {service}: {e}"))?,
            contexts: super::super::build_options::additional_contexts(
                &b,
                &project.working_dir,
                |other| {
                    contexts
                        .get(other)
                        .cloned()
                        .ok_or_else(|| format!("the image of service {other} is not built"))
                },
            )
            .map_err(|e| format!("building service {service}: {e}"))?,
            cache_import: cache_dirs,
            cache_export: super::super::build_options::cache_to(&b, &project.working_dir)
                .map_err(|e| format!("building service {service}: {e}"))?,
        };
        let e = self.clone();
        let svc_name = service.to_string();
        let net = super::super::build_net::EngineBuildNetwork::new(
            self.clone(),
            tokio::runtime::Handle::current(),
        );
        blocking(move || {
            Builder::new(&e.images, &e.runtime, &e.root)
                .with_network(&net)
                .build(&req, |step| {
                    tracing::info!(service = %svc_name, step = %step.display, cached = step.cached, "build");
                    report(step);
                })
                .map(|_| ())
                .map_err(|err| format!("building service {svc_name}: {err}"))
        })
        .await
    }

    /// Builds the images of `services` (those with `build:`) side by side, as compose does:
    /// builds mostly wait on downloads and single-threaded steps, so on two cores three
    /// apt-get builds overlap well. A build that reads another service's image
    /// (`additional_contexts: {NAME: service:OTHER}`) waits for OTHER's, which is built too
    /// when not asked for; a service whose dependency failed is not built. Services sharing
    /// one image tag build it once. `report` gets each finished step with its service.
    /// Answers one failure per failed build, in service order.
    pub async fn build_services(
        self: &Arc<Self>,
        project: &Project,
        services: &BTreeSet<String>,
        opts: &BuildOptions,
        report: impl Fn(&str, &berth_runtime::build::exec::StepReport) + Send + Sync + 'static,
    ) -> Vec<String> {
        let waves = match super::build_order::build_waves(project, services) {
            Ok(w) => w,
            Err(e) => return vec![e],
        };
        let project = Arc::new(project.clone());
        let report = Arc::new(report);
        let mut tags = BTreeSet::new();
        let mut failures = Vec::new();
        let mut failed = BTreeSet::new();
        for wave in waves {
            let mut builds = tokio::task::JoinSet::new();
            for name in wave {
                let Some(svc) = project.services.get(&name) else {
                    continue;
                };
                let tag = project.image_of(&name).unwrap_or_default();
                if svc.build.is_none() || !tags.insert(tag.clone()) {
                    continue;
                }
                let deps = super::build_order::context_services(&project, &name);
                if let Some(dep) = deps.iter().find(|d| failed.contains(*d)) {
                    failures.push((
                        name.clone(),
                        format!("building service {name}: not built: it reads the image of service {dep}, whose build failed"),
                    ));
                    failed.insert(name);
                    continue;
                }
                // `pull_policy: build` builds on every `up`, as compose does.
                let always = svc.pull_policy == Some(crate::compose::PullPolicy::Build);
                if opts.missing_only && !always && self.images.resolve(&tag).is_ok() {
                    continue;
                }
                let (e, p, r, o) = (self.clone(), project.clone(), report.clone(), opts.clone());
                builds.spawn(async move {
                    let service = name.clone();
                    let result = e
                        .build_service_reporting(
                            &p,
                            &name,
                            o.no_cache,
                            o.pull,
                            &o.build_args,
                            move |s| r(&service, s),
                        )
                        .await;
                    (name, result)
                });
            }
            while let Some(done) = builds.join_next().await {
                match done {
                    Ok((_, Ok(()))) => {}
                    Ok((name, Err(e))) => {
                        failed.insert(name.clone());
                        failures.push((name, e));
                    }
                    Err(e) => failures.push((String::new(), format!("a build task failed: {e}"))),
                }
            }
        }
        failures.sort();
        failures.into_iter().map(|(_, e)| e).collect()
    }
}

/// A service's `build.secrets` (short: a top-level secret's name; long: `{source, target}`,
/// `target` being the id the Dockerfile names) as the builder's secrets: a top-level secret's
/// `file`, or its `environment` variable from the project's environment.
fn compose_build_secrets(
    project: &crate::compose::model::Project,
    service: &str,
    refs: Option<&serde_json::Value>,
) -> Result<Vec<berth_runtime::build::exec::BuildSecret>, String> {
    use berth_runtime::build::exec::{BuildSecret, SecretSource};
    let Some(refs) = refs else {
        return Ok(Vec::new());
    };
    let bad = |m: String| format!("service {service}: build.secrets: {m}");
    let list = refs
        .as_array()
        .ok_or_else(|| bad("expected a list".into()))?;
    let mut out = Vec::new();
    for r in list {
        let (source, id) = match r {
            serde_json::Value::String(s) => (s.clone(), s.clone()),
            serde_json::Value::Object(o) => {
                let source = o
                    .get("source")
                    .and_then(|v| v.as_str())
                    .ok_or_else(|| bad("an entry has no source".into()))?
                    .to_string();
                let id = o
                    .get("target")
                    .and_then(|v| v.as_str())
                    .map_or_else(|| source.clone(), str::to_string);
                (source, id)
            }
            other => return Err(bad(format!("unexpected entry {other}"))),
        };
        let obj = project
            .secrets
            .get(&source)
            .ok_or_else(|| bad(format!("no top-level secret {source:?}")))?;
        let src = if let Some(f) = &obj.file {
            SecretSource::File(f.into())
        } else if let Some(var) = &obj.environment {
            match project.environment.get(var) {
                Some(v) => SecretSource::Value(v.clone().into_bytes()),
                None => SecretSource::Env(var.clone()),
            }
        } else {
            return Err(bad(format!(
                "secret {source:?} needs file: or environment: to be used in a build"
            )));
        };
        out.push(BuildSecret { id, source: src });
    }
    Ok(out)
}
