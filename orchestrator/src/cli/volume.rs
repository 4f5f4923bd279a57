//! `berth volume …`: volumes under `<root>/volumes/NAME/_data`. Volumes are plain
//! directories of the instance, so these commands need no daemon.

use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::bail;
use berth_runtime::container::volumes::VolumeInfo;
use clap::Subcommand;

use super::GlobalOpts;

/// `berth volume` subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// Create a volume (a random name when none is given)
    Create {
        /// Only the `local` driver exists
        #[arg(short, long, default_value = "local")]
        driver: String,
        /// Label KEY=VALUE (repeatable)
        #[arg(long = "label")]
        labels: Vec<String>,
        /// The local driver's option KEY=VALUE (repeatable): `type`, `o`, `device`, as
        /// `-o type=tmpfs -o device=tmpfs -o o=size=64m` (or the bind form `type=none`,
        /// `o=bind`, `device=/dir`)
        #[arg(short = 'o', long = "opt")]
        opts: Vec<String>,
        name: Option<String>,
    },
    /// List volumes
    #[command(alias = "list")]
    Ls {
        /// Only print names
        #[arg(short, long)]
        quiet: bool,
        /// `json` (one object per line) or a template such as '{{.Name}}'
        #[arg(long)]
        format: Option<String>,
        /// dangling=true|false (mounted by no container), name=SUBSTRING, label=KEY[=VALUE]
        #[arg(short, long)]
        filter: Vec<String>,
    },
    /// Show volumes as JSON
    Inspect {
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove volumes (never one a container mounts)
    #[command(alias = "remove")]
    Rm {
        /// Do not fail on volumes that do not exist
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        volumes: Vec<String>,
    },
    /// Remove unused anonymous volumes (every unused volume with -a)
    Prune {
        #[arg(short, long)]
        all: bool,
        /// Do not ask (berth never asks)
        #[arg(short, long)]
        force: bool,
    },
}

fn json(v: &VolumeInfo) -> serde_json::Value {
    serde_json::json!({
        "Name": v.name,
        "Driver": "local",
        "Mountpoint": v.mountpoint,
        "CreatedAt": v.meta.created,
        "Labels": v.meta.labels,
        "Scope": "local",
        "Anonymous": v.meta.anonymous,
        "Options": (!v.meta.options.is_empty()).then_some(&v.meta.options),
        "UsedBy": v.used_by,
    })
}

pub fn run(g: &GlobalOpts, cmd: VolumeCommand) -> anyhow::Result<ExitCode> {
    let rt = super::container::runtime(g)?;
    match cmd {
        VolumeCommand::Create {
            driver,
            labels,
            opts,
            name,
        } => {
            if driver != "local" {
                bail!("volume driver {driver:?} is not supported (only \"local\")");
            }
            let mut map = BTreeMap::new();
            for l in &labels {
                let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
                map.insert(k.to_string(), v.to_string());
            }
            let mut options = BTreeMap::new();
            for o in &opts {
                let Some((k, v)) = o.split_once('=') else {
                    bail!("--opt {o:?}: expected KEY=VALUE");
                };
                options.insert(k.to_string(), v.to_string());
            }
            let v = if options.is_empty() {
                rt.volume_create(name.as_deref(), map, false)?
            } else if let Some(device) = crate::compose::bind_device(&options) {
                let device = std::path::PathBuf::from(device);
                rt.volume_create_bound(name.as_deref(), map, options, &device)?
            } else {
                rt.volume_create_mounted(name.as_deref(), map, options)?
            };
            println!("{}", v.name);
        }
        VolumeCommand::Ls {
            quiet,
            format,
            filter,
        } => {
            let mut all = rt.volume_list();
            for f in &filter {
                let keep: Box<dyn Fn(&VolumeInfo) -> bool> = match f.split_once('=') {
                    Some(("dangling", v @ ("true" | "1" | "false" | "0"))) => {
                        let want = v == "true" || v == "1";
                        Box::new(move |x| x.dangling() == want)
                    }
                    Some(("name", n)) => {
                        let n = n.to_string();
                        Box::new(move |x| x.name.contains(&n))
                    }
                    Some(("label", l)) => {
                        let l = l.to_string();
                        Box::new(move |x| x.has_label(&l))
                    }
                    _ => bail!(
                        "--filter {f:?}: expected dangling=true|false, name=NAME or label=KEY[=VALUE]"
                    ),
                };
                all.retain(|v| keep(v));
            }
            match format.as_deref() {
                _ if quiet => all.iter().for_each(|v| println!("{}", v.name)),
                Some("json") => {
                    for v in &all {
                        println!("{}", json(v));
                    }
                }
                Some(t) => {
                    let tpl = super::format::Template::parse(t)?;
                    let rows: Vec<_> = all.iter().map(json).collect();
                    print!(
                        "{}",
                        tpl.render_all(&rows, &|f| match f {
                            "Name" => "VOLUME NAME".into(),
                            f => super::format::default_header(f),
                        })
                    );
                }
                None => {
                    println!("{:<8}  {:<64}  IN USE BY", "DRIVER", "VOLUME NAME");
                    for v in &all {
                        println!("{:<8}  {:<64}  {}", "local", v.name, v.used_by.join(", "));
                    }
                }
            }
        }
        VolumeCommand::Inspect { volumes } => {
            let mut out = Vec::new();
            for name in &volumes {
                out.push(json(&rt.volume_inspect(name)?));
            }
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
        VolumeCommand::Rm { force, volumes } => {
            let mut failed = false;
            for name in &volumes {
                match rt.volume_remove(name) {
                    Ok(()) => println!("{name}"),
                    Err(berth_runtime::container::volumes::VolumeError::NotFound(_)) if force => {}
                    Err(e) => {
                        eprintln!("berth: cannot remove volume {name}: {e}");
                        failed = true;
                    }
                }
            }
            if failed {
                return Ok(ExitCode::from(1));
            }
        }
        VolumeCommand::Prune { all, force: _ } => {
            let gone = rt.volume_prune(all)?;
            for n in &gone {
                println!("Deleted volume {n}");
            }
            println!("Total reclaimed: {} volume(s)", gone.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}
