//! The `berth` binary: the CLI, and (hidden) the daemon and shim entry points.

fn main() -> std::process::ExitCode {
    berth::cli::main(|root, run, fast_path| {
        berth::daemon::run(berth::daemon::DaemonOptions {
            root,
            run,
            fast_path,
        })?;
        Ok(())
    })
}
