//! `berth image build`: its flags and the build in the CLI process (the image store and
//! runtime directly, RUN steps on the daemon's build network), then `--squash`.

use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::Context;
use berth_runtime::build::exec::{
    BuildRequest, BuildSecret, BuildSsh, Builder, CacheSource, NamedContext, parse_cache_from,
    parse_cache_to,
};
use berth_runtime::build::plan::PlanOptions;
use berth_runtime::image::{ImageStore, Reference, registry};

use super::GlobalOpts;

/// The flags of `berth image build` (as `docker build`'s).
#[derive(clap::Args, Debug)]
pub struct BuildArgs {
    /// Name[:tag] for the result (repeatable)
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Dockerfile (default: CONTEXT/Dockerfile; - reads it from stdin)
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Build-time variable KEY=VALUE (KEY alone takes it from the environment)
    #[arg(long = "build-arg", value_name = "KEY=VALUE")]
    pub build_args: Vec<String>,
    /// Set a label on the result (KEY=VALUE)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub labels: Vec<String>,
    /// Build this stage
    #[arg(long)]
    pub target: Option<String>,
    /// Run every step, ignoring the build cache
    #[arg(long)]
    pub no_cache: bool,
    /// Pull the base images again from their registries, even when the store has them
    #[arg(long)]
    pub pull: bool,
    /// Registry (host[:port]) to reach over plain HTTP for --pull (loopback registries always are)
    #[arg(long = "insecure-registry", value_name = "HOST")]
    pub insecure: Vec<String>,
    /// Secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable; never stored in the image or cache)
    #[arg(long = "secret", value_name = "id=ID,src=FILE")]
    pub secrets: Vec<String>,
    /// SSH agent for RUN --mount=type=ssh: default (SSH_AUTH_SOCK), ID or ID=SOCKET (repeatable; forwarded, never stored)
    #[arg(long = "ssh", value_name = "default|ID=SOCKET")]
    pub ssh: Vec<String>,
    /// Named context for FROM/COPY --from/RUN --mount=from: NAME=DIR or NAME=docker-image://REF (repeatable)
    #[arg(long = "build-context", value_name = "NAME=PATH")]
    pub build_contexts: Vec<String>,
    /// Only print the image id
    #[arg(short, long)]
    pub quiet: bool,
    /// Add NAME:IP to the /etc/hosts of RUN steps (repeatable)
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_hosts: Vec<String>,
    /// Network of RUN steps: default, host or none
    #[arg(long)]
    pub network: Option<String>,
    /// Size of /dev/shm of RUN steps (`64m`, bytes)
    #[arg(long = "shm-size", value_name = "SIZE")]
    pub shm_size: Option<String>,
    /// Resource limit of RUN steps, name=soft[:hard] (repeatable)
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    pub ulimits: Vec<String>,
    /// Cache source: a local IMAGE whose layers may serve, or type=local,src=DIR (repeatable)
    #[arg(long = "cache-from", value_name = "IMAGE|type=local,src=DIR")]
    pub cache_from: Vec<String>,
    /// Export the build's cache to a directory: type=local,dest=DIR
    #[arg(long = "cache-to", value_name = "type=local,dest=DIR")]
    pub cache_to: Option<String>,
    /// Squash the layers the build added over its base image into one (as podman)
    #[arg(long)]
    pub squash: bool,
    /// Build context directory
    pub context: PathBuf,
}

/// Builds as `args` say and prints the image id.
pub fn build_cmd(
    g: &GlobalOpts,
    store: &ImageStore,
    args: BuildArgs,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let BuildArgs {
        tags,
        file,
        build_args,
        labels,
        target,
        no_cache,
        pull,
        insecure,
        secrets,
        ssh,
        build_contexts,
        quiet,
        add_hosts,
        network,
        shm_size,
        ulimits,
        cache_from,
        cache_to,
        squash,
        context,
    } = args;
    let run = build_run_options(
        &add_hosts,
        network.as_deref(),
        shm_size.as_deref(),
        &ulimits,
    )?;
    let secrets = secrets
        .iter()
        .map(|s| BuildSecret::parse(s).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let ssh = ssh
        .iter()
        .map(|s| {
            BuildSsh::parse(s, || std::env::var("SSH_AUTH_SOCK").ok()).map_err(anyhow::Error::msg)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let cwd = std::env::current_dir().context("the current directory")?;
    let (mut cache_images, mut cache_import) = (Vec::new(), Vec::new());
    for c in &cache_from {
        match parse_cache_from(c).map_err(|e| anyhow::anyhow!("--cache-from {e}"))? {
            CacheSource::Image(i) => cache_images.push(i),
            CacheSource::Dir(d) => cache_import.push(cwd.join(d)),
        }
    }
    let cache_export = cache_to
        .as_deref()
        .map(|c| parse_cache_to(c).map(|d| cwd.join(d)))
        .transpose()
        .map_err(|e| anyhow::anyhow!("--cache-to {e}"))?;
    let contexts = build_contexts
        .iter()
        .map(|s| NamedContext::parse(s, &cwd).map_err(anyhow::Error::msg))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for t in &tags {
        t.parse::<Reference>()
            .with_context(|| format!("invalid tag {t:?}"))?;
    }
    let kv = |items: Vec<String>, from_env: bool| {
        items
            .into_iter()
            .filter_map(|a| match a.split_once('=') {
                Some((k, v)) => Some((k.to_string(), v.to_string())),
                None if from_env => std::env::var(&a).ok().map(|v| (a, v)),
                None => Some((a, String::new())),
            })
            .collect()
    };
    // `-f -` reads the Dockerfile from stdin, as docker build does.
    let (file, inline) = match file {
        Some(f) if f.as_os_str() == "-" => {
            let mut text = String::new();
            io::stdin()
                .read_to_string(&mut text)
                .context("reading the Dockerfile from stdin")?;
            (None, Some(text))
        }
        other => (other, None),
    };
    let req = BuildRequest {
        context,
        dockerfile: file,
        dockerfile_inline: inline,
        options: PlanOptions {
            build_args: kv(build_args, true),
            target,
            labels: kv(labels, false),
            contexts: Default::default(),
        },
        tags: tags.clone(),
        no_cache,
        pull,
        pull_options: registry::PullOptions {
            insecure,
            ..Default::default()
        },
        run,
        cache_from: cache_images,
        secrets,
        ssh,
        contexts,
        cache_import,
        cache_export,
    };
    let rt = super::container::runtime(g)?;
    let net = super::build_network::DaemonBuildNetwork::new(&g.root, &g.run)
        .context("cannot start the tokio runtime")?;
    let builder = Builder::new(store, &rt, &g.root).with_network(&net);
    let t0 = std::time::Instant::now();
    let res = builder.build(&req, |s| {
        if !quiet {
            if s.from {
                eprintln!("{}", s.display);
            } else if s.cached {
                eprintln!("{} CACHED", s.display);
            } else {
                eprintln!("{} {:.1}s", s.display, s.elapsed_ms as f64 / 1000.0);
            }
        }
    })?;
    let image = match squash {
        true => {
            super::image_squash::squash_built(store, &res.image, res.final_base(), &tags, quiet)?
        }
        false => res.image.clone(),
    };
    if !quiet {
        for w in &res.warnings {
            eprintln!("warning: {w}");
        }
        eprintln!(
            "built {} in {:.2}s",
            image.id.short(),
            t0.elapsed().as_secs_f64()
        );
    }
    writeln!(out, "{}", image.id)?;
    Ok(())
}

/// `--add-host`, `--network`, `--shm-size` and `--ulimit` of `image build` in the runtime's
/// build options (the ones Compose's `build:` and Docker's `POST /build` fill too).
fn build_run_options(
    add_hosts: &[String],
    network: Option<&str>,
    shm_size: Option<&str>,
    ulimits: &[String],
) -> anyhow::Result<berth_runtime::build::RunOptions> {
    use berth_runtime::build::RunOptions;
    let extra_hosts = add_hosts
        .iter()
        .map(|h| RunOptions::parse_extra_host(h).context("--add-host"))
        .collect::<anyhow::Result<_>>()?;
    let ulimits = ulimits
        .iter()
        .map(|u| {
            let u = super::container::config::parse_ulimit(u)?;
            Ok(berth_runtime::container::config::Ulimit {
                name: u.name,
                soft: u64::try_from(u.soft).unwrap_or(u64::MAX),
                hard: u64::try_from(u.hard).unwrap_or(u64::MAX),
            })
        })
        .collect::<anyhow::Result<_>>()?;
    Ok(RunOptions {
        network: RunOptions::parse_network(network.unwrap_or("")).context("--network")?,
        extra_hosts,
        shm_size: shm_size
            .map(|s| crate::compose::units::parse_size(s).map_err(anyhow::Error::msg))
            .transpose()
            .context("--shm-size")?
            .filter(|n| *n > 0),
        ulimits,
        privileged: false,
    })
}
