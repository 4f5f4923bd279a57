//! Links the `berth` executable as a fixed-address (non-PIE) binary.
//!
//! `berth` is exec'd for every container start (the CLI, then `berth shim`), and one shim
//! stays alive per running container. As a PIE, the dynamic loader rewrites ~85k relative
//! relocations at each exec (about a third of the shim's start-up instructions) and each
//! shim keeps its own dirty copy of the relocated `.data.rel.ro` (~670 KiB). Resolved at link
//! time instead, those pages stay clean and shared by every process of the binary. The cost:
//! no ASLR for the main image (libraries, heap and stacks stay randomised).
//! Only the binaries of this package get the flag: tests, examples and proc-macros keep the
//! target's default.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}
