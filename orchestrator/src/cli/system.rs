//! `berth system …`: the daemon (issue 6).

use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalOpts, not_yet};

/// `berth system` subcommands.
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show what the daemon runs
    #[command(alias = "list")]
    Ls,
}

pub fn run(_g: &GlobalOpts, cmd: SystemCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SystemCommand::Ls => Err(not_yet("system ls", 6)),
    }
}
