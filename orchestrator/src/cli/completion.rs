//! `berth completion SHELL`: completion scripts generated from the clap definition, so they
//! never drift from the real options.

use clap::Args;
use clap_complete::Shell;

/// Arguments of `berth completion`.
#[derive(Args, Debug)]
pub struct CompletionArgs {
    /// Shell to generate the script for
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn run(args: CompletionArgs, cmd: &mut clap::Command) {
    clap_complete::generate(args.shell, cmd, "berth", &mut std::io::stdout());
}
