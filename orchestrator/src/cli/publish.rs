//! The images a cluster pulls: what `berth deploy --swarm` and `berth convert kubernetes
//! --registry` share. Builds the stack's images that are missing, pushes each built one to a
//! registry every node reaches, and answers the references pinned by the digests pushed; or,
//! without a push, pins the images whose registry digest the local store already knows and
//! names the others.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{Context, bail};

use super::GlobalOpts;
use super::compose_args::BuildArgs;
use crate::compose::Project;
use berth_runtime::image::Reference;
use berth_runtime::image::registry::PullOptions;

/// Where and how the built images go.
#[derive(Debug, Clone, Default)]
pub struct Publish {
    /// Registry the nodes pull from (`host[:port][/path]`); `None`: where each image's name
    /// points.
    pub registry: Option<String>,
    /// Push over plain HTTP.
    pub insecure: bool,
    /// Rebuild every image that has a build section.
    pub build_all: bool,
    /// Never build.
    pub no_build: bool,
}

impl Publish {
    /// Where service `name`'s built `image` goes: under the registry with its own repository
    /// path and tag, or unchanged.
    fn target(&self, image: &str) -> anyhow::Result<(String, String)> {
        let r: Reference = image.parse().with_context(|| format!("image {image:?}"))?;
        let tag = r.tag.clone().unwrap_or_else(|| "latest".into());
        let target = match &self.registry {
            Some(reg) => format!("{}/{}:{tag}", reg.trim_end_matches('/'), r.repository),
            None => image.to_string(),
        };
        Ok((target, tag))
    }
}

/// The images the stack builds; a service that runs one of them without a build section of
/// its own (a worker on the web app's image) is published with it.
fn built_images(project: &Project) -> BTreeSet<String> {
    project
        .services
        .iter()
        .filter(|(_, svc)| svc.build.is_some())
        .filter_map(|(name, _)| project.image_of(name))
        .collect()
}

/// Services with a build section whose image is to be built now.
fn to_build(g: &GlobalOpts, project: &Project, p: &Publish) -> anyhow::Result<Vec<String>> {
    if p.no_build {
        return Ok(Vec::new());
    }
    let store = super::image::open_store(g)?;
    Ok(project
        .services
        .iter()
        .filter(|(_, svc)| svc.build.is_some())
        .filter(|(name, _)| {
            p.build_all
                || project
                    .image_of(name)
                    .is_none_or(|img| store.resolve_id(&img).is_err())
        })
        .map(|(name, _)| name.clone())
        .collect())
}

/// Builds the stack's images that are missing (all of them with `build_all`).
pub fn build(g: &GlobalOpts, project: &Project, p: &Publish) -> anyhow::Result<()> {
    let services = to_build(g, project, p)?;
    if services.is_empty() {
        return Ok(());
    }
    let code = super::compose_lifecycle::build(
        g,
        BuildArgs {
            no_cache: false,
            pull: false,
            build_args: Vec::new(),
            services,
        },
    )?;
    if code != ExitCode::SUCCESS {
        bail!("building the stack's images failed");
    }
    Ok(())
}

/// Pushes each built service's image (to the registry under its own repository path, or
/// where its name points) and answers the pinned references, by service.
pub fn push(
    g: &GlobalOpts,
    project: &Project,
    p: &Publish,
) -> anyhow::Result<BTreeMap<String, String>> {
    use berth_runtime::image::push::{self, PushProgress};
    let store = super::image::open_store(g)?;
    let mut opts = PullOptions::default();
    let mut pinned = BTreeMap::new();
    // One push per image, however many services run it.
    let mut pushed: BTreeMap<String, String> = BTreeMap::new();
    let built = built_images(project);
    for name in project.services.keys() {
        let Some(image) = project.image_of(name).filter(|i| built.contains(i)) else {
            continue;
        };
        if let Some(pin) = pushed.get(&image) {
            pinned.insert(name.clone(), pin.clone());
            continue;
        }
        let (target, tag) = p
            .target(&image)
            .with_context(|| format!("service {name:?}"))?;
        if p.registry.is_some() {
            let id = store
                .resolve_id(&image)
                .with_context(|| format!("service {name:?}: image {image:?}"))?;
            store
                .tag(&id, &target)
                .with_context(|| format!("tagging {image} as {target}"))?;
        }
        let tr: Reference = target.parse()?;
        if p.insecure {
            opts.insecure.push(tr.registry.clone());
        }
        eprintln!("Pushing {name}: {target}");
        let quiet = |_: PushProgress| {};
        let res = push::push(&store, &target, &opts, &quiet)
            .with_context(|| format!("pushing {name} ({target})"))?;
        // Remembered, as Docker does: a later conversion pins it without a push.
        let id = store.resolve_id(&target)?;
        store
            .add_repo_digest(&id, &format!("{}@{}", tr.name(), res.digest))
            .with_context(|| format!("recording the digest of {target}"))?;
        let pin = format!("{}:{tag}@{}", tr.name(), res.digest);
        eprintln!("{name}: {pin}");
        pushed.insert(image, pin.clone());
        pinned.insert(name.clone(), pin);
    }
    Ok(pinned)
}

/// Each service not in `pushed`, its image as the cluster pulls it (a built one under the
/// registry), pinned by the registry digest the local store recorded for that repository
/// when it has one. The warnings name each service left unpinned and why.
pub fn pin_known(
    g: &GlobalOpts,
    project: &Project,
    p: &Publish,
    pushed: &BTreeMap<String, String>,
) -> anyhow::Result<(BTreeMap<String, String>, Vec<String>)> {
    let store = super::image::open_store(g)?;
    let mut images = BTreeMap::new();
    let mut warnings = Vec::new();
    let built = built_images(project);
    for name in project.services.keys() {
        if pushed.contains_key(name) {
            continue;
        }
        let Some(image) = project.image_of(name) else {
            continue;
        };
        let is_built = built.contains(&image);
        let (target, tag) = if is_built {
            p.target(&image)
                .with_context(|| format!("service {name:?}"))?
        } else {
            let r: Reference = image
                .parse()
                .with_context(|| format!("service {name:?}: image {image:?}"))?;
            if r.digest.is_some() {
                continue;
            }
            (image.clone(), r.tag.unwrap_or_else(|| "latest".into()))
        };
        let tr: Reference = target
            .parse()
            .with_context(|| format!("service {name:?}: image {target:?}"))?;
        let known = store.resolve(&image).ok().and_then(|img| {
            img.record.repo_digests.iter().find_map(|rd| {
                let (n, digest) = rd.split_once('@')?;
                let r: Reference = n.parse().ok()?;
                (r.name() == tr.name()).then(|| digest.to_string())
            })
        });
        match known {
            Some(digest) => {
                images.insert(name.clone(), format!("{}:{tag}@{digest}", tr.name()));
            }
            None => {
                let how = if is_built {
                    "--push pushes and pins it"
                } else {
                    "pulling it records one"
                };
                warnings.push(format!(
                    "service {name:?}: image: {target} is not pinned: the local store knows no \
                     digest of it in {} ({how})",
                    tr.registry
                ));
                if is_built {
                    images.insert(name.clone(), target);
                }
            }
        }
    }
    Ok((images, warnings))
}
