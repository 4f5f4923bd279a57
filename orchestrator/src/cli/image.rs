//! `berth image …`, `berth builder …`, `berth login/logout`: the image side.
//!
//! These commands work on the image store (`<root>/images`) directly, in the CLI process,
//! without the daemon.

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use berth_runtime::build::exec::Builder;
use berth_runtime::image::bootstrap::{self, BootstrapOptions};
use berth_runtime::image::store::{ago, human_size, split_tag};
use berth_runtime::image::{ImageStore, Reference};
use berth_runtime::image::{archive, registry};
use clap::{Args, Subcommand};
use oci_spec::image::Config;

use super::GlobalOpts;

/// `berth image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls {
        /// Also show intermediate images (untagged parents of other images, e.g. build steps)
        #[arg(short, long)]
        all: bool,
        /// Only show image ids
        #[arg(short, long)]
        quiet: bool,
        /// Show full image ids
        #[arg(long)]
        no_trunc: bool,
    },
    /// Show images as JSON
    Inspect {
        /// Image references or ids
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Give an image another name
    Tag {
        /// Existing image
        source: String,
        /// New name[:tag]
        target: String,
    },
    /// Remove images (refuses images used by containers unless -f)
    #[command(alias = "remove", alias = "rmi")]
    Rm {
        /// Remove even when in use (the image is then untagged and kept until its containers go)
        #[arg(short, long)]
        force: bool,
        /// Image references or ids
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Remove unused images and the layers only they used
    Prune {
        /// Remove all images no container uses, not only untagged ones
        #[arg(short, long)]
        all: bool,
        /// Do not prompt (berth never prompts; accepted for compatibility)
        #[arg(short, long)]
        force: bool,
    },
    /// Show the history of an image
    History {
        /// Do not truncate output
        #[arg(long)]
        no_trunc: bool,
        /// Image
        image: String,
    },
    /// Show every image's layer lineage as a tree, and which steps of the last build were
    /// cache hits
    Tree,
    /// Create an image from a rootfs tarball (FILE or - for stdin), as `docker import`
    Import {
        /// Tarball (plain, gzip or zstd) or - for stdin
        file: String,
        /// Name[:tag] for the new image
        reference: Option<String>,
        /// Apply Dockerfile instruction(s): CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, LABEL, STOPSIGNAL, VOLUME
        #[arg(short, long = "change")]
        change: Vec<String>,
    },
    /// Load images from a docker-save or OCI archive
    Load {
        /// Archive to read (default: stdin)
        #[arg(short, long)]
        input: Option<PathBuf>,
        /// Suppress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Save images to an archive readable by docker, podman and skopeo
    Save {
        /// Write to this file (default: stdout)
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Images to save
        #[arg(required = true)]
        images: Vec<String>,
    },
    /// Build a Debian base image with debootstrap (for machines without a registry)
    Bootstrap {
        /// Name[:tag] for the image, e.g. debian:bookworm
        reference: String,
        /// Debian suite
        #[arg(long, default_value = "bookworm")]
        suite: String,
        /// debootstrap variant
        #[arg(long, default_value = "minbase")]
        variant: String,
        /// Extra packages, comma-separated
        #[arg(long, value_delimiter = ',')]
        include: Vec<String>,
        /// Debian mirror (default: the host's configured mirror)
        #[arg(long)]
        mirror: Option<String>,
    },
    /// Build an image from a Dockerfile (as `docker build`; RUN steps get NAT egress on the berth-build network)
    Build(Box<super::image_build::BuildArgs>),
    /// Merge an image's layers (or those above --from) into one, keeping its whole config
    Squash {
        /// Tag for the result (repeatable; default: the squashed image takes IMAGE's tag)
        #[arg(short = 't', long = "tag")]
        tags: Vec<String>,
        /// Keep this layer and those below it (0-based index or diff id), squash the rest
        #[arg(long, value_name = "LAYER")]
        from: Option<String>,
        /// Only print the image id
        #[arg(short, long)]
        quiet: bool,
        /// The image
        image: String,
    },
    /// Per layer: size, instruction, files added/changed/deleted and bytes wasted (as dive)
    Analyze {
        /// Output format: table (default) or json
        #[arg(long)]
        format: Option<String>,
        /// The image
        image: String,
    },
    /// Pull an image from a registry
    Pull {
        /// Image reference
        reference: String,
        /// Registry (host[:port]) to reach over plain HTTP (loopback registries always are)
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure: Vec<String>,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
    },
    /// Push an image to a registry
    Push {
        /// Image reference (`registry/repository:tag`)
        reference: String,
        /// Registry (host[:port]) to reach over plain HTTP (loopback registries always are)
        #[arg(long = "insecure-registry", value_name = "HOST")]
        insecure: Vec<String>,
        /// Suppress progress output
        #[arg(short, long)]
        quiet: bool,
    },
}

/// `berth builder` subcommands.
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune,
}

/// `berth login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host (default: docker.io)
    pub server: Option<String>,
    /// Username
    #[arg(short, long)]
    pub username: Option<String>,
    /// Password (prefer --password-stdin)
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input
    #[arg(long)]
    pub password_stdin: bool,
}

/// `berth logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host (default: docker.io)
    pub server: Option<String>,
}

/// The image store under `--root`.
pub(crate) fn open_store(g: &GlobalOpts) -> anyhow::Result<ImageStore> {
    ImageStore::open(&g.root)
        .with_context(|| format!("opening the image store under {}", g.root.display()))
}

/// Runs one `berth image` command against the store under `--root`.
pub fn run(g: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    let store = open_store(g)?;
    let mut out = io::stdout().lock();
    match cmd {
        ImageCommand::Ls {
            all,
            quiet,
            no_trunc,
        } => {
            let mut rows = store.list()?;
            if !all {
                // Docker's rule: an untagged image that is the parent of another is an
                // intermediate (a build step), not a dangling image worth listing.
                let parents: std::collections::BTreeSet<_> = rows
                    .iter()
                    .filter_map(|r| store.resolve(r.id.as_str()).ok())
                    .filter_map(|i| i.record.parent)
                    .collect();
                rows.retain(|r| r.repository != "<none>" || !parents.contains(&r.id));
            }
            if quiet {
                let mut seen = std::collections::BTreeSet::new();
                for r in rows {
                    if seen.insert(r.id.clone()) {
                        writeln!(
                            out,
                            "{}",
                            if no_trunc {
                                r.id.as_str()
                            } else {
                                r.id.short()
                            }
                        )?;
                    }
                }
                return Ok(ExitCode::SUCCESS);
            }
            let table: Vec<[String; 5]> = rows
                .iter()
                .map(|r| {
                    let id = if no_trunc {
                        r.id.to_string()
                    } else {
                        r.id.short().to_owned()
                    };
                    [
                        r.repository.clone(),
                        r.tag.clone(),
                        id,
                        ago(r.created.as_deref()),
                        human_size(r.size),
                    ]
                })
                .collect();
            print_table(
                &mut out,
                ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
                &table,
            )?;
        }
        ImageCommand::Inspect { images } => {
            let mut docs = Vec::new();
            let mut failed = false;
            for r in &images {
                match store.resolve(r) {
                    Ok(img) => docs.push(inspect_json(&img)),
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            serde_json::to_writer_pretty(&mut out, &docs)?;
            writeln!(out)?;
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        ImageCommand::Tag { source, target } => {
            let id = store.resolve_id(&source)?;
            store.tag(&id, &target)?;
        }
        ImageCommand::Rm { force, images } => {
            let mut failed = false;
            for r in &images {
                match store.remove(r, force) {
                    Ok(rep) => print_removal(&mut out, &rep)?,
                    Err(e) => {
                        eprintln!("berth: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        ImageCommand::Prune { all, force: _ } => {
            let rep = store.prune(all)?;
            print_removal(&mut out, &rep)?;
            writeln!(out, "Total reclaimed space: {}", human_size(rep.reclaimed))?;
        }
        ImageCommand::History { no_trunc, image } => {
            let rows = store.history(&image)?;
            let table: Vec<[String; 4]> = rows
                .iter()
                .map(|h| {
                    let by = if no_trunc || h.created_by.chars().count() <= 45 {
                        h.created_by.clone()
                    } else {
                        h.created_by.chars().take(44).collect::<String>() + "…"
                    };
                    [
                        ago(h.created.as_deref()),
                        by,
                        human_size(h.size),
                        h.comment.clone(),
                    ]
                })
                .collect();
            print_table(
                &mut out,
                ["CREATED", "CREATED BY", "SIZE", "COMMENT"],
                &table,
            )?;
        }
        ImageCommand::Tree => {
            write!(out, "{}", store.tree()?)?;
            let steps = berth_runtime::build::exec::last_build(&g.root)?;
            if !steps.is_empty() {
                writeln!(out, "\nLast build:")?;
                for s in steps {
                    let what = if s.image.is_none() && s.display.contains("] FROM ") {
                        ""
                    } else if s.hit {
                        "CACHED"
                    } else {
                        "built"
                    };
                    let id = s
                        .image
                        .as_deref()
                        .map(|i| i.trim_start_matches("sha256:"))
                        .map(|i| &i[..i.len().min(12)])
                        .unwrap_or("");
                    writeln!(out, "  {:<7} {:<12} {}", what, id, s.display)?;
                }
            }
        }
        ImageCommand::Import {
            file,
            reference,
            change,
        } => {
            let mut config = Config::default();
            for c in &change {
                apply_change(&mut config, c)?;
            }
            let mut input: Box<dyn Read> = if file == "-" {
                Box::new(io::stdin().lock())
            } else {
                Box::new(fs::File::open(&file).with_context(|| format!("opening {file}"))?)
            };
            let img = store.import(&mut input, &file, config)?;
            if let Some(r) = reference {
                store.tag(&img.id, &r)?;
            }
            writeln!(out, "{}", img.id)?;
        }
        ImageCommand::Load { input, quiet } => {
            let loaded = match &input {
                Some(p) => {
                    let f =
                        fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
                    archive::load(&store, f, None)
                }
                None => archive::load(&store, io::stdin().lock(), None),
            }
            .context("loading images")?;
            if !quiet {
                for l in loaded {
                    if l.tags.is_empty() {
                        writeln!(out, "Loaded image ID: {}", l.id)?;
                    }
                    for t in l.tags {
                        let (r, tag) = split_tag(&t);
                        writeln!(out, "Loaded image: {r}:{tag}")?;
                    }
                }
            }
        }
        ImageCommand::Save { output, images } => match output {
            Some(path) => {
                let tmp = path.with_file_name(format!(
                    ".{}.tmp-{}",
                    path.file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    std::process::id()
                ));
                let f = fs::File::create(&tmp)
                    .with_context(|| format!("creating {}", tmp.display()))?;
                let res = archive::save(&store, &images, io::BufWriter::new(f));
                if let Err(e) = res {
                    let _ = fs::remove_file(&tmp);
                    return Err(e).context("saving images");
                }
                fs::rename(&tmp, &path)
                    .with_context(|| format!("renaming into {}", path.display()))?;
            }
            None => {
                if io::IsTerminal::is_terminal(&out) {
                    bail!(
                        "refusing to write an archive to a terminal; use -o FILE or redirect stdout"
                    );
                }
                archive::save(&store, &images, io::BufWriter::new(out)).context("saving images")?;
            }
        },
        ImageCommand::Bootstrap {
            reference,
            suite,
            variant,
            include,
            mirror,
        } => {
            reference.parse::<Reference>()?;
            let opts = BootstrapOptions {
                suite,
                variant,
                include,
                mirror,
            };
            let img = bootstrap::bootstrap(&store, &reference, &opts)?;
            writeln!(out, "{}", img.id)?;
        }
        ImageCommand::Build(args) => super::image_build::build_cmd(g, &store, *args, &mut out)?,
        ImageCommand::Squash {
            tags,
            from,
            quiet,
            image,
        } => {
            super::image_squash::squash_cmd(
                &store,
                &image,
                &tags,
                from.as_deref(),
                quiet,
                &mut out,
            )?;
        }
        ImageCommand::Analyze { format, image } => {
            super::image_squash::analyze_cmd(&store, &image, format.as_deref(), &mut out)?;
        }
        ImageCommand::Pull {
            reference,
            insecure,
            quiet,
        } => {
            let opts = registry::PullOptions {
                insecure,
                ..Default::default()
            };
            let bars = PullBars::new(quiet);
            let show = |p: registry::Progress| bars.event(p);
            let img = registry::pull(&store, &reference, &opts, &show)?;
            if !quiet {
                eprintln!("Digest: {}", img.manifest_digest);
            }
            writeln!(out, "{}", img.id)?;
        }
        ImageCommand::Push {
            reference,
            insecure,
            quiet,
        } => {
            let opts = registry::PullOptions {
                insecure,
                ..Default::default()
            };
            push_image(&store, &reference, &opts, quiet, &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Pushes one image, printing what `docker push` prints: the repository, a line per layer,
/// and `TAG: digest: sha256:… size: N`.
pub fn push_image(
    store: &berth_runtime::image::ImageStore,
    reference: &str,
    opts: &registry::PullOptions,
    quiet: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    use berth_runtime::image::push::{self, PushProgress};
    let r: berth_runtime::image::Reference = reference.parse()?;
    if !quiet {
        writeln!(out, "The push refers to repository [{}]", r.name())?;
        out.flush()?;
    }
    // Progress comes on this thread, between our own writes: each line goes out as it happens.
    let show = |p: PushProgress| {
        if quiet {
            return;
        }
        let line = match p {
            PushProgress::Pushing(..) => return,
            PushProgress::Pushed(d) => format!("{}: Pushed", d.short()),
            PushProgress::Exists(d) => format!("{}: Layer already exists", d.short()),
            PushProgress::Mounted(d, from) => format!("{}: Mounted from {from}", d.short()),
        };
        println!("{line}");
    };
    let res = push::push(store, reference, opts, &show)?;
    if quiet {
        writeln!(out, "{}", res.digest)?;
    } else {
        writeln!(
            out,
            "{}: digest: {} size: {}",
            res.tag, res.digest, res.size
        )?;
    }
    Ok(())
}

/// One progress bar per layer being downloaded (hidden when stderr is not a terminal).
struct PullBars {
    quiet: bool,
    multi: indicatif::MultiProgress,
    bars: std::sync::Mutex<std::collections::HashMap<String, indicatif::ProgressBar>>,
}

impl PullBars {
    fn new(quiet: bool) -> Self {
        PullBars {
            quiet,
            multi: indicatif::MultiProgress::new(),
            bars: Default::default(),
        }
    }

    /// Bars on a terminal, plain lines otherwise (logs, CI).
    fn line(&self, s: String) {
        if io::IsTerminal::is_terminal(&io::stderr()) {
            let _ = self.multi.println(s);
        } else {
            eprintln!("{s}");
        }
    }

    fn event(&self, p: registry::Progress) {
        if self.quiet {
            return;
        }
        let Ok(mut bars) = self.bars.lock() else {
            return;
        };
        match p {
            registry::Progress::Present(d) => {
                self.line(format!("{}: already exists", d.short()));
            }
            registry::Progress::Downloading(d, size) => {
                let bar = self.multi.add(indicatif::ProgressBar::new(size));
                if let Ok(style) = indicatif::ProgressStyle::with_template(
                    "{prefix}: {bar:30} {bytes}/{total_bytes}",
                ) {
                    bar.set_style(style);
                }
                bar.set_prefix(d.short().to_owned());
                bars.insert(d.to_string(), bar);
            }
            registry::Progress::Bytes(d, n) => {
                if let Some(b) = bars.get(d.as_str()) {
                    b.inc(n);
                }
            }
            registry::Progress::Done(d) => {
                if let Some(b) = bars.remove(d.as_str()) {
                    b.finish_and_clear();
                }
                self.line(format!("{}: pull complete", d.short()));
            }
        }
    }
}

fn print_removal(
    out: &mut impl Write,
    rep: &berth_runtime::image::store::RemoveReport,
) -> io::Result<()> {
    for t in &rep.untagged {
        let (r, tag) = split_tag(t);
        writeln!(out, "Untagged: {r}:{tag}")?;
    }
    for d in &rep.deleted {
        writeln!(out, "Deleted: {d}")?;
    }
    for d in &rep.kept_in_use {
        writeln!(out, "Kept: {d} (in use by a container)")?;
    }
    Ok(())
}

fn print_table<const N: usize>(
    out: &mut impl Write,
    head: [&str; N],
    rows: &[[String; N]],
) -> io::Result<()> {
    let mut w = [0usize; N];
    for (i, h) in head.iter().enumerate() {
        w[i] = h.chars().count();
    }
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == N {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<width$}   ", width = w[i]));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(head.to_vec()))?;
    for r in rows {
        writeln!(out, "{}", line(r.iter().map(|s| s.as_str()).collect()))?;
    }
    Ok(())
}

fn inspect_json(img: &berth_runtime::image::Image) -> serde_json::Value {
    let tags: Vec<String> = img
        .repo_tags
        .iter()
        .map(|t| {
            let (r, tag) = split_tag(t);
            format!("{r}:{tag}")
        })
        .collect();
    let dirs: Vec<String> = img
        .layer_dirs()
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    serde_json::json!({
        "Id": img.id,
        "RepoTags": tags,
        "RepoDigests": img.record.repo_digests,
        "Parent": img.record.parent.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        "Created": img.config.created(),
        "Author": img.config.author(),
        "Architecture": img.raw_config.get("architecture"),
        "Os": img.raw_config.get("os"),
        "Size": img.size(),
        "Config": img.raw_config.get("config"),
        "RootFS": {"Type": "layers", "Layers": img.config.rootfs().diff_ids()},
        "GraphDriver": {"Name": "overlay", "Data": {"LowerDir": dirs.join(":")}},
        "Metadata": {"Manifest": img.manifest_digest, "ManifestMediaType": img.record.manifest_media_type, "Added": img.record.added},
    })
}

/// Applies one `--change` Dockerfile instruction to an image config.
fn apply_change(c: &mut Config, change: &str) -> anyhow::Result<()> {
    let change = change.trim();
    let (instr, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    let list = |s: &str| -> anyhow::Result<Vec<String>> {
        if s.starts_with('[') {
            serde_json::from_str(s)
                .with_context(|| format!("invalid JSON array in --change {change:?}"))
        } else {
            Ok(vec!["/bin/sh".into(), "-c".into(), s.into()])
        }
    };
    let kv = |s: &str| -> (String, String) {
        match s.split_once('=') {
            Some((k, v)) => (k.to_owned(), v.trim_matches('"').to_owned()),
            None => match s.split_once(char::is_whitespace) {
                Some((k, v)) => (k.to_owned(), v.trim().to_owned()),
                None => (s.to_owned(), String::new()),
            },
        }
    };
    match instr.to_ascii_uppercase().as_str() {
        "CMD" => c.set_cmd(Some(list(rest)?)),
        "ENTRYPOINT" => c.set_entrypoint(Some(list(rest)?)),
        "ENV" => {
            let (k, v) = kv(rest);
            let mut env = c.env().clone().unwrap_or_default();
            env.retain(|e| e.split('=').next() != Some(k.as_str()));
            env.push(format!("{k}={v}"));
            c.set_env(Some(env))
        }
        "WORKDIR" => c.set_working_dir(Some(rest.to_owned())),
        "USER" => c.set_user(Some(rest.to_owned())),
        "STOPSIGNAL" => c.set_stop_signal(Some(rest.to_owned())),
        "EXPOSE" => {
            let mut ports = c.exposed_ports().clone().unwrap_or_default();
            for p in rest.split_whitespace() {
                ports.push(if p.contains('/') {
                    p.to_owned()
                } else {
                    format!("{p}/tcp")
                });
            }
            c.set_exposed_ports(Some(ports))
        }
        "VOLUME" => {
            let mut v = c.volumes().clone().unwrap_or_default();
            v.extend(if rest.starts_with('[') {
                list(rest)?
            } else {
                rest.split_whitespace().map(String::from).collect()
            });
            c.set_volumes(Some(v))
        }
        "LABEL" => {
            let (k, v) = kv(rest);
            let mut l = c.labels().clone().unwrap_or_default();
            l.insert(k, v);
            c.set_labels(Some(l))
        }
        other => bail!(
            "unsupported --change instruction {other:?} (CMD, ENTRYPOINT, ENV, WORKDIR, USER, EXPOSE, VOLUME, LABEL, STOPSIGNAL)"
        ),
    };
    Ok(())
}

/// Runs one `berth builder` command.
pub fn run_builder(g: &GlobalOpts, cmd: BuilderCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BuilderCommand::Prune => {
            let store = open_store(g)?;
            let rt = super::container::runtime(g)?;
            let (entries, reclaimed) = Builder::new(&store, &rt, &g.root).prune()?;
            println!(
                "Deleted build cache entries: {entries}\nTotal reclaimed space: {}",
                human_size(reclaimed)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `berth login`: verifies credentials against the registry, then stores them as `docker login` does.
pub fn login(_g: &GlobalOpts, args: LoginArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.unwrap_or_else(|| "docker.io".into());
    let Some(user) = args.username else {
        bail!("--username is required (berth does not prompt)")
    };
    let password = match (args.password, args.password_stdin) {
        (Some(p), false) => p,
        (None, true) => {
            let mut s = String::new();
            io::stdin().read_to_string(&mut s)?;
            s.trim_end_matches(['\n', '\r']).to_owned()
        }
        _ => bail!("give exactly one of --password and --password-stdin"),
    };
    let file = berth_runtime::image::login::login(
        &server,
        &user,
        &password,
        &registry::PullOptions::default(),
    )?;
    println!("Login Succeeded (credentials in {})", file.display());
    Ok(ExitCode::SUCCESS)
}

/// `berth logout`: forgets the stored credentials of a registry.
pub fn logout(_g: &GlobalOpts, args: LogoutArgs) -> anyhow::Result<ExitCode> {
    let server = args.server.unwrap_or_else(|| "docker.io".into());
    let file = registry::default_auth_file();
    if registry::store_credentials(&file, &server, None)? {
        println!("Removing login credentials for {server}");
    } else {
        println!("Not logged in to {server}");
    }
    Ok(ExitCode::SUCCESS)
}
