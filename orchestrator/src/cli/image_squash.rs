//! `berth image squash`, `image analyze` and the squash after `image build --squash`: the CLI
//! side of making images smaller without losing their config.

use std::io::Write;

use anyhow::Context;
use berth_runtime::image::analyze::{self, Analysis};
use berth_runtime::image::squash::{self, Squashed};
use berth_runtime::image::store::{human_size, tag_key};
use berth_runtime::image::{Image, ImageStore};

/// `image squash IMG [-t NEW]... [--from LAYER]`: prints the new image id. Without `-t` the
/// squashed image takes over IMG's tag (or every tag of the image when IMG is an id).
pub fn squash_cmd(
    store: &ImageStore,
    image: &str,
    tags: &[String],
    from: Option<&str>,
    quiet: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let img = store.resolve(image)?;
    let keep = match from {
        Some(l) => squash::keep_for(&img, l)?,
        None => 0,
    };
    let created_by = match from {
        Some(l) => format!("berth image squash --from {l} {image}"),
        None => format!("berth image squash {image}"),
    };
    let done = squash::squash(store, &img, keep, &created_by)?;
    let targets: Vec<String> = if !tags.is_empty() {
        tags.to_vec()
    } else {
        match tag_key(image) {
            Ok(k) if img.repo_tags.contains(&k) => vec![k],
            _ => img.repo_tags.clone(),
        }
    };
    for t in &targets {
        store
            .tag(&done.image.id, t)
            .with_context(|| format!("tagging {t}"))?;
    }
    report(&done, quiet);
    writeln!(out, "{}", done.image.id)?;
    Ok(())
}

fn report(done: &Squashed, quiet: bool) {
    if !quiet {
        eprintln!(
            "squashed {} layer(s) into one: {} -> {} ({} layer(s) now)",
            done.merged,
            human_size(done.size_before),
            human_size(done.image.size()),
            done.image.record.layers.len()
        );
    }
}

/// `image build --squash`: the layers the build added over its final FROM image become one
/// (podman's `--squash`; the base image's layers stay as they are), tagged with the build's
/// tags. A build that added no layer is left as it is.
pub fn squash_built(
    store: &ImageStore,
    built: &Image,
    base: Option<&str>,
    tags: &[String],
    quiet: bool,
) -> anyhow::Result<Image> {
    let keep = match base {
        Some(b) => squash::shared_layers(built, &store.resolve(b)?),
        None => 0,
    };
    if keep >= built.record.layers.len() {
        if !quiet {
            eprintln!("--squash: the build added no layer over its base, nothing to squash");
        }
        return Ok(built.clone());
    }
    let done = squash::squash(store, built, keep, "berth image build --squash")?;
    for t in tags {
        store
            .tag(&done.image.id, t)
            .with_context(|| format!("tagging {t}"))?;
    }
    report(&done, quiet);
    Ok(done.image)
}

/// `image analyze IMG [--format json]`.
pub fn analyze_cmd(
    store: &ImageStore,
    image: &str,
    format: Option<&str>,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let img = store.resolve(image)?;
    let a = analyze::analyze(&img)?;
    match format {
        Some("json") => {
            serde_json::to_writer_pretty(&mut *out, &a)?;
            writeln!(out)?;
        }
        None | Some("table") => print_analysis(&a, out)?,
        Some(f) => anyhow::bail!("--format {f:?}: give json or table"),
    }
    Ok(())
}

fn print_analysis(a: &Analysis, out: &mut dyn Write) -> anyhow::Result<()> {
    writeln!(
        out,
        "{:<5} {:>10} {:>7} {:>7} {:>7} {:>10}  INSTRUCTION",
        "LAYER", "SIZE", "ADDED", "CHANGED", "DELETED", "WASTED"
    )?;
    for l in &a.layers {
        let by: String = l.instruction.chars().take(60).collect();
        writeln!(
            out,
            "{:<5} {:>10} {:>7} {:>7} {:>7} {:>10}  {by}",
            l.index,
            human_size(l.size),
            l.added,
            l.changed,
            l.deleted,
            human_size(l.wasted)
        )?;
    }
    writeln!(out)?;
    writeln!(out, "Total size:  {}", human_size(a.total_size))?;
    writeln!(out, "Wasted:      {}", human_size(a.wasted))?;
    writeln!(out, "Efficiency:  {:.2} %", a.efficiency * 100.0)?;
    if !a.wasted_paths.is_empty() {
        writeln!(out)?;
        writeln!(out, "{:>6} {:>10}  PATH", "COUNT", "WASTED")?;
        for p in &a.wasted_paths {
            writeln!(
                out,
                "{:>6} {:>10}  {}",
                p.count,
                human_size(p.bytes),
                p.path
            )?;
        }
    }
    Ok(())
}
