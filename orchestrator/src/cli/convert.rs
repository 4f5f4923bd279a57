//! `berth convert kubernetes`: the project as Kubernetes manifests, one YAML file per object
//! (`-o DIR`) or one multi-document stream on stdout; `berth convert swarm`: the file `docker
//! stack deploy` reads. A warning per key left out, on stderr.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};

use super::GlobalOpts;
use super::compose_args::load_options;
use crate::compose;
use crate::convert::{kubernetes, swarm};

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
    Kubernetes {
        /// Write one file per object into this directory (made if missing) instead of stdout
        #[arg(short, long, value_name = "DIR")]
        output: Option<PathBuf>,
    },
    /// The file `docker stack deploy -c` reads (images as named: `berth deploy` pins them)
    Swarm {
        /// No routing mesh (nodes without IPVS): ports in host mode, DNS round robin
        #[arg(long)]
        no_mesh: bool,
    },
}

/// Loads the project, converts it, writes the manifests; warnings go to stderr by name.
pub fn run(g: &GlobalOpts, args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let output = match args.target {
        ConvertTarget::Kubernetes { output } => output,
        ConvertTarget::Swarm { no_mesh } => return to_swarm(g, no_mesh),
    };
    let project = compose::load(&load_options(g, &[], true))?;
    let conv = kubernetes::convert(&project).context("converting to Kubernetes")?;
    for w in &conv.warnings {
        eprintln!("warning: {w}");
    }
    match output {
        None => {
            let text = conv.to_yaml_stream().context("rendering YAML")?;
            use std::io::Write;
            std::io::stdout()
                .lock()
                .write_all(text.as_bytes())
                .context("writing to stdout")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for m in &conv.manifests {
                let path = dir.join(&m.file);
                let text = yaml_serde::to_string(&m.object).context("rendering YAML")?;
                std::fs::write(&path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            eprintln!(
                "wrote {} manifests to {}",
                conv.manifests.len(),
                dir.display()
            );
        }
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
