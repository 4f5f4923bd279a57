//! Fixture Dockerfiles: every instruction and every refusal, planned end to end without root.
//!
//! Each directory under `tests/fixtures/build/` is one case: a `Dockerfile`, optionally
//! `options` (`--build-arg K=V` / `--target S` lines) and a `context/` directory, and either
//! `expected.plan` (a rendering of the plan) or `expected.error` (the exact message).
//! `BERTH_UPDATE_GOLDEN=1` rewrites the expectations (review the diff before committing).

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};

use berth_runtime::build::ImageConfig;
use berth_runtime::build::context::Context;
use berth_runtime::build::copy;
use berth_runtime::build::dockerfile::Dockerfile;
use berth_runtime::build::plan::{
    self, BaseImage, BuildPlan, CopySource, MountOrigin, PlanOptions, StepKind,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/build")
}

/// Images a fixture's FROM lines name get a digest derived from the name and a small config,
/// as the image store would return them.
fn fake_store(refs: &[plan::ImageRef]) -> HashMap<String, BaseImage> {
    refs.iter()
        .map(|r| {
            let digest = format!("sha256:{:0>64}", r.reference.len());
            let config = ImageConfig {
                env: vec![
                    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                    format!("BASE={}", r.reference),
                ],
                cmd: Some(vec!["base-cmd".into()]),
                ..Default::default()
            };
            (r.reference.clone(), BaseImage { digest, config })
        })
        .collect()
}

fn render(p: &BuildPlan, ctx: &Context) -> String {
    let mut out = String::new();
    for s in &p.steps {
        out.push_str(&s.display);
        out.push('\n');
        let detail = match &s.kind {
            StepKind::From(b) => format!("from {b:?}"),
            StepKind::Run(r) => format!(
                "run argv={:?} script={:?} user={:?} workdir={} env={:?}{}{}",
                r.argv,
                r.script,
                r.user,
                r.workdir,
                r.env,
                match r.network {
                    berth_runtime::build::steps::RunNetworkMode::Default => String::new(),
                    n => format!(" network={n:?}"),
                },
                r.mounts
                    .iter()
                    .map(|m| {
                        let origin = match &m.origin {
                            MountOrigin::None => String::new(),
                            MountOrigin::Context(sel) => format!(" context:{}", sel.rel),
                            MountOrigin::Stage(i) => format!(" stage:{i}"),
                            MountOrigin::Image { reference, .. } => format!(" image:{reference}"),
                        };
                        format!(
                            "\n    mount {}{origin}",
                            serde_json::to_string(&m.mount).unwrap_or_default()
                        )
                    })
                    .collect::<String>()
            ),
            StepKind::Copy(c) => {
                let srcs: Vec<String> = c
                    .sources
                    .iter()
                    .map(|s| match s {
                        CopySource::Context(sel) => {
                            let members: Vec<&str> = ctx
                                .members(sel)
                                .map(|i| ctx.entries()[i].rel.as_str())
                                .collect();
                            format!("{}{{{}}}", sel.rel, members.join(","))
                        }
                        CopySource::Path(p) => format!("path:{p}"),
                        CopySource::Url(u) => format!("url:{u}"),
                        CopySource::Inline { name, content } => {
                            format!("inline:{name}={content:?}")
                        }
                    })
                    .collect();
                let items = if c.parents || !c.exclude.is_empty() || c.checksum.is_some() {
                    let dests: Vec<String> = copy::context_items(c, ctx, false)
                        .map(|v| v.into_iter().map(|i| i.dest).collect())
                        .unwrap_or_default();
                    format!(
                        " parents={} exclude={:?} checksum={:?} items=[{}]",
                        c.parents,
                        c.exclude,
                        c.checksum,
                        dests.join(" ")
                    )
                } else {
                    String::new()
                };
                format!(
                    "{} origin={:?} dest={} dest_is_dir={} chown={:?} chmod={:?} link={} sources=[{}]{items}",
                    if c.add { "add" } else { "copy" },
                    c.origin,
                    c.dest,
                    c.dest_is_dir,
                    c.chown,
                    c.chmod.map(|m| format!("{m:o}")),
                    c.link,
                    srcs.join(" ")
                )
            }
            StepKind::Config => format!(
                "config {}",
                serde_json::to_string(&s.delta).unwrap_or_default()
            ),
        };
        out.push_str("    ");
        out.push_str(&detail);
        out.push('\n');
    }
    for st in &p.stages {
        out.push_str(&format!(
            "stage {} ({}) config: {}\n",
            st.index,
            st.label,
            serde_json::to_string(&st.config).unwrap_or_default()
        ));
        if let Some(a) = &st.author {
            out.push_str(&format!("stage {} author: {a}\n", st.index));
        }
    }
    out.push_str(&format!("target: {}\n", p.stages[p.target].label));
    for w in &p.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

fn run_case(dir: &Path) -> Result<String, String> {
    let src = fs::read_to_string(dir.join("Dockerfile")).map_err(|e| e.to_string())?;
    let mut opts = PlanOptions::default();
    if let Ok(o) = fs::read_to_string(dir.join("options")) {
        for line in o.lines() {
            if let Some(kv) = line.strip_prefix("--build-arg ") {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                opts.build_args.insert(k.to_string(), v.to_string());
            } else if let Some(kv) = line.strip_prefix("--label ") {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                opts.labels.insert(k.to_string(), v.to_string());
            } else if let Some(t) = line.strip_prefix("--target ") {
                opts.target = Some(t.to_string());
            }
        }
    }
    let df = Dockerfile::parse(&src, "Dockerfile").map_err(|e| e.to_string())?;
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let ctx_dir = dir.join("context");
    let ctx_dir = if ctx_dir.is_dir() {
        ctx_dir
    } else {
        empty.path().to_path_buf()
    };
    let ctx = Context::scan(&ctx_dir).map_err(|e| e.to_string())?;
    let images = plan::external_images(&df, &opts).map_err(|e| e.to_string())?;
    let store = fake_store(&images);
    let p = plan::plan(&df, &opts, &ctx, &store).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for i in &images {
        out.push_str(&format!(
            "image {} platform={:?} line={}\n",
            i.reference, i.platform, i.line
        ));
    }
    out.push_str(&render(&p, &ctx));
    out.push_str("-- summary\n");
    for line in p.to_string().lines() {
        // Keys are checked by build_cache_keys.rs; keep goldens free of them.
        match line.split_once("  sha256:") {
            Some((display, rest)) => {
                let what = rest.rsplit(' ').next().unwrap_or("");
                out.push_str(&format!("{display} ({what})\n"));
            }
            None => out.push_str(&format!("{line}\n")),
        }
    }
    // The platform args depend on the host; keep the goldens portable.
    let arch = plan::host_arch();
    Ok(out
        .replace(&format!("linux/{arch}"), "linux/$HOSTARCH")
        .replace(&format!("ARCH={arch}\""), "ARCH=$HOSTARCH\""))
}

#[test]
fn dockerfile_fixtures() {
    let update = std::env::var_os("BERTH_UPDATE_GOLDEN").is_some();
    let mut cases: Vec<PathBuf> = fs::read_dir(fixtures())
        .expect("fixtures dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    assert!(cases.len() > 30, "fixtures missing: {}", cases.len());
    let mut failures = Vec::new();
    for dir in &cases {
        let name = dir
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let got = run_case(dir);
        let plan_file = dir.join("expected.plan");
        let err_file = dir.join("expected.error");
        let (file, text, other) = match &got {
            Ok(t) => (plan_file, t.clone(), err_file),
            Err(e) => (err_file, format!("{e}\n"), plan_file),
        };
        if update {
            fs::write(&file, &text).expect("write golden");
            let _ = fs::remove_file(&other);
            continue;
        }
        match fs::read_to_string(&file) {
            Ok(want) if want == text => {}
            Ok(want) => failures.push(format!("{name}: got\n{text}\nwant\n{want}")),
            Err(_) => failures.push(format!(
                "{name}: got {} but {} is missing:\n{text}",
                if got.is_ok() { "a plan" } else { "an error" },
                file.display()
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
