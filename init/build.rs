//! Links the init without the C runtime: it has its own `_start` and makes raw syscalls,
//! so it is a fully static executable of a few KiB with no loader, libc or relocations.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var_os("CARGO_FEATURE_STANDALONE").is_some() {
        for arg in ["-nostartfiles", "-nostdlib", "-static", "-Wl,--gc-sections"] {
            println!("cargo:rustc-link-arg-bin=berth-init={arg}");
        }
    }
}
