//! `berth push [SERVICE...]`: Compose's push, of the images the project builds (services with
//! both `build:` and `image:`) to the registries their names point at.

use std::io::Write;
use std::process::ExitCode;

use clap::Args;

use super::GlobalOpts;
use super::compose_args::load_options;
use crate::compose;
use crate::graph::ServiceGraph;
use berth_runtime::image::registry::PullOptions;

/// `berth push`.
#[derive(Args, Debug)]
pub struct PushArgs {
    /// Push what can be pushed, reporting the failures instead of stopping at the first
    #[arg(long)]
    pub ignore_push_failures: bool,
    /// Also push the images of the services these depend on
    #[arg(long)]
    pub include_deps: bool,
    /// Print nothing but errors
    #[arg(short, long)]
    pub quiet: bool,
    /// Services whose images to push (default: all)
    pub services: Vec<String>,
}

/// Pushes each selected service's built image, one after the other.
pub fn push(g: &GlobalOpts, args: PushArgs) -> anyhow::Result<ExitCode> {
    let project = compose::load(&load_options(g, &args.services, true))?;
    let keep = ServiceGraph::from_project(&project)?.select(&args.services, !args.include_deps)?;
    let store = super::image::open_store(g)?;
    let opts = PullOptions::default();
    let mut out = std::io::stdout().lock();
    let mut failed = false;
    for (name, svc) in &project.services {
        if !keep.contains(name) {
            continue;
        }
        let (Some(_), Some(image)) = (&svc.build, &svc.image) else {
            continue;
        };
        if !args.quiet {
            writeln!(out, "Pushing {name}: {image}")?;
        }
        let mut sink = std::io::sink();
        let res = if args.quiet {
            super::image::push_image(&store, image, &opts, true, &mut sink)
        } else {
            super::image::push_image(&store, image, &opts, false, &mut out)
        };
        if let Err(e) = res {
            if !args.ignore_push_failures {
                return Err(e.context(format!("pushing {name} ({image})")));
            }
            eprintln!("error: pushing {name} ({image}): {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
