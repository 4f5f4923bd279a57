//! The `berth` binary under test. Cargo only hands a package's own binaries to its tests
//! (`CARGO_BIN_EXE_*`), and this crate is not the `berth` package, so the binary is built
//! here, once per test process, with the cargo that runs the tests: a test never drives a
//! stale binary left over from an earlier build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The path of a freshly built `berth` binary (built on first use, then reused by every test
/// of the process). Panics with cargo's output when the build fails.
pub fn berth_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(build_berth)
}

/// The workspace root (the tests crate sits one level below it).
pub fn workspace_root() -> &'static Path {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest)
}

/// Runs `cargo build -p berth --bin berth` in the profile this test was built with and
/// returns the executable cargo reports. The cargo is the one running the tests (`CARGO`),
/// and the target dir is the inherited one (`CARGO_TARGET_DIR` or the workspace's), so when
/// nothing changed this is a no-op that only checks freshness.
fn build_berth() -> PathBuf {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.args([
        "build",
        "-p",
        "berth",
        "--bin",
        "berth",
        "--message-format=json",
    ])
    .arg("--manifest-path")
    .arg(workspace_root().join("Cargo.toml"))
    .current_dir(workspace_root());
    // Cargo describes the test's own package to the test process (CARGO_MANIFEST_DIR,
    // CARGO_PKG_*); passed on, they look like a changed environment to build scripts that
    // watch them (ring's does), and the binary would be rebuilt here and again by the next
    // plain `cargo build`.
    for (key, _) in std::env::vars_os() {
        let k = key.to_string_lossy();
        if k.starts_with("CARGO_MANIFEST_")
            || k.starts_with("CARGO_PKG_")
            || matches!(
                &*k,
                "CARGO_CRATE_NAME" | "CARGO_BIN_NAME" | "CARGO_PRIMARY_PACKAGE"
            )
        {
            cmd.env_remove(&key);
        }
    }
    match profile() {
        Some(p) if p == "debug" => {}
        Some(p) if p == "release" => {
            cmd.arg("--release");
        }
        Some(p) => {
            cmd.args(["--profile", &p]);
        }
        None => {}
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cargo:?} to build the berth binary: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "building the berth binary (`{} build -p berth`) failed ({}):\n{}\n{}",
        cargo.to_string_lossy(),
        out.status,
        String::from_utf8_lossy(&out.stderr),
        diagnostics(&stdout)
    );
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "berth")
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| {
            panic!("`cargo build -p berth` succeeded but named no berth executable:\n{stdout}")
        })
}

/// The rendered compiler messages in cargo's JSON output, for a failed build's report.
fn diagnostics(json: &str) -> String {
    json.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|m| m["message"]["rendered"].as_str().map(String::from))
        .collect()
}

/// The profile directory this test executable was built in (`debug`, `release`, ...): the
/// test is `<target>/[<triple>/]<profile>/deps/<name>-<hash>`.
fn profile() -> Option<String> {
    let exe = std::env::current_exe().ok()?;
    let deps = exe.parent()?;
    if deps.file_name()? != "deps" {
        return None;
    }
    Some(deps.parent()?.file_name()?.to_string_lossy().into_owned())
}

/// Cargo's target directory of this test executable (the ancestor holding `CACHEDIR.TAG`),
/// for scratch files that must not land in /tmp.
pub fn target_dir() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file())
        .map(Path::to_path_buf)
}
