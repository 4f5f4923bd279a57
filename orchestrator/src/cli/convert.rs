//! `berth convert kubernetes`: the project as Kubernetes manifests, one YAML file per object
//! (`-o DIR`) or one multi-document stream on stdout; `berth convert swarm`: the file `docker
//! stack deploy` reads. A warning per key left out, on stderr.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::compose_args::load_options;
use super::publish::{self, Publish};
use crate::compose;
use crate::convert::kubernetes::{self, kustomize};
use crate::convert::swarm;

/// `berth convert`.
#[derive(Args, Debug)]
pub struct ConvertArgs {
    #[command(subcommand)]
    target: ConvertTarget,
}

/// What to convert the project for.
#[derive(Subcommand, Debug)]
enum ConvertTarget {
    /// Kubernetes manifests: Deployments/StatefulSets, Services, claims, ConfigMaps, Secrets
    Kubernetes(KubernetesArgs),
    /// The file `docker stack deploy -c` reads (images as named: `berth deploy` pins them)
    Swarm {
        /// No routing mesh (nodes without IPVS): ports in host mode, DNS round robin
        #[arg(long)]
        no_mesh: bool,
    },
}

/// `berth convert kubernetes`.
#[derive(Args, Debug)]
struct KubernetesArgs {
    /// Write one file per object into this directory (made if missing) instead of stdout
    #[arg(short, long, value_name = "DIR", required_if_eq_any = [("kustomize", "true"), ("helm", "true")])]
    output: Option<PathBuf>,
    /// Also write DIR/kustomization.yaml listing the manifests (`kubectl apply -k DIR`)
    #[arg(long, conflicts_with = "helm")]
    kustomize: bool,
    /// The namespace kustomize puts every object in
    #[arg(long, value_name = "NS", requires = "kustomize")]
    namespace: Option<String>,
    /// A label kustomize adds to every object and selector (commonLabels), repeatable
    #[arg(long = "label", value_name = "KEY=VALUE", requires = "kustomize")]
    labels: Vec<String>,
    /// Write a Helm chart into DIR instead (Chart.yaml, values.yaml, templates/)
    #[arg(long)]
    helm: bool,
    /// Registry the cluster pulls the built images from (host[:port][/path]); images are
    /// pinned by digest where the digest is known
    #[arg(long, value_name = "REGISTRY")]
    registry: Option<String>,
    /// Build the missing images and push them to the registry first, then pin the digests
    #[arg(long, requires = "registry")]
    push: bool,
    /// Push over plain HTTP (as Docker's insecure-registries)
    #[arg(long, requires = "push")]
    insecure_registry: bool,
}

/// Loads the project, converts it, writes the manifests; warnings go to stderr by name.
pub fn run(g: &GlobalOpts, args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let args = match args.target {
        ConvertTarget::Kubernetes(args) => args,
        ConvertTarget::Swarm { no_mesh } => return to_swarm(g, no_mesh),
    };
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l
            .split_once('=')
            .with_context(|| format!("--label {l:?}: expected KEY=VALUE"))?;
        labels.insert(k.to_string(), v.to_string());
    }
    let project = compose::load(&load_options(g, &[], true))?;
    let mut images = BTreeMap::new();
    if args.registry.is_some() {
        let p = Publish {
            registry: args.registry.clone(),
            insecure: args.insecure_registry,
            ..Publish::default()
        };
        if args.push {
            publish::build(g, &project, &p)?;
            images = publish::push(g, &project, &p)?;
        }
        let (known, warnings) = publish::pin_known(g, &project, &p, &images)?;
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        images.extend(known);
    }
    let conv = kubernetes::convert_with(&project, &images).context("converting to Kubernetes")?;
    for w in &conv.warnings {
        eprintln!("warning: {w}");
    }
    let Some(dir) = args.output else {
        let text = conv.to_yaml_stream();
        use std::io::Write;
        std::io::stdout()
            .lock()
            .write_all(text.as_bytes())
            .context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    };
    let mut files = Vec::new();
    if args.helm {
        for f in kubernetes::helm::chart(&project, &conv)? {
            files.push((dir.join(&f.path), f.text));
        }
    } else {
        for m in &conv.manifests {
            files.push((dir.join(&m.file), kubernetes::yaml::to_string(&m.object)));
        }
        if args.kustomize {
            let opts = kustomize::Options {
                namespace: args.namespace.clone(),
                labels,
            };
            let k = kustomize::kustomization(&conv, &opts)?;
            files.push((
                dir.join("kustomization.yaml"),
                kubernetes::yaml::to_string(&k),
            ));
        }
    }
    for (path, text) in &files {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let n = conv.manifests.len();
    let dir = dir.display();
    if args.helm {
        eprintln!("wrote a Helm chart of {n} manifests to {dir}");
    } else if args.kustomize {
        eprintln!("wrote {n} manifests to {dir}, listed in kustomization.yaml");
    } else {
        eprintln!("wrote {n} manifests to {dir}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the stack file for `docker stack deploy` on stdout.
fn to_swarm(g: &GlobalOpts, no_mesh: bool) -> anyhow::Result<ExitCode> {
    let project = compose::load(&load_options(g, &[], true))?;
    let opts = swarm::Options {
        no_mesh,
        ..Default::default()
    };
    let conv = swarm::convert(&project, &opts).context("converting for Swarm")?;
    for w in &conv.warnings {
        eprintln!("warning: {w}");
    }
    let text = conv.to_yaml().context("rendering YAML")?;
    use std::io::Write;
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}
