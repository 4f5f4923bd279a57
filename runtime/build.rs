//! Builds berth's container init (the workspace's `init/` crate, package `berth-init`) for
//! the runtime to embed: a no_std, no_main binary that needs `panic = "abort"` and a static,
//! non-relocatable link, which a workspace member cannot ask for its own package. So it is
//! built here by a nested cargo, in release with those settings, into `<target>/berth-init`
//! (its own target dir: the outer build holds the lock of its own), and copied to `OUT_DIR`.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let ws = manifest
        .parent()
        .expect("the runtime sits in the workspace");
    let init = ws.join("init");
    for p in ["Cargo.toml", "build.rs", "src"] {
        println!("cargo:rerun-if-changed={}", init.join(p).display());
    }
    println!("cargo:rerun-if-changed=build.rs");
    let target = env::var("TARGET").expect("TARGET");
    let target_dir = outer_target_dir(&out, &target)
        .unwrap_or_else(|| out.clone())
        .join("berth-init");
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(ws)
        .args(["build", "--release", "--locked", "-p", "berth-init"])
        .args(["--bin", "berth-init", "--features", "standalone"])
        .args(["--target", &target])
        .arg("--target-dir")
        .arg(&target_dir)
        .arg("--manifest-path")
        .arg(ws.join("Cargo.toml"));
    for c in [
        "profile.release.panic=\"abort\"",
        "profile.release.opt-level=\"s\"",
        "profile.release.codegen-units=1",
        "profile.release.debug=false",
        "profile.release.strip=true",
        "profile.release.lto=true",
        // Fully static, at a fixed address: nothing to relocate, no loader.
        "build.rustflags=[\"-Ctarget-feature=+crt-static\", \"-Crelocation-model=static\"]",
    ] {
        cmd.args(["--config", c]);
    }
    // The outer build's settings are not the init's.
    for v in [
        "RUSTFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_RUSTFLAGS",
    ] {
        cmd.env_remove(v);
    }
    let status = cmd.status().expect("running cargo to build berth-init");
    assert!(status.success(), "building berth-init failed: {status}");
    let bin = target_dir.join(&target).join("release").join("berth-init");
    std::fs::copy(&bin, out.join("berth-init"))
        .unwrap_or_else(|e| panic!("copying {}: {e}", bin.display()));
}

/// The outer build's target dir, from `OUT_DIR` = `<target-dir>[/<triple>]/<profile>/build/
/// <package>/out`.
fn outer_target_dir(out: &Path, target: &str) -> Option<PathBuf> {
    let build = out.ancestors().nth(2)?;
    if build.file_name()? != "build" {
        return None;
    }
    let mut dir = build.parent()?.parent()?;
    if dir.file_name()? == target {
        dir = dir.parent()?;
    }
    Some(dir.to_path_buf())
}
