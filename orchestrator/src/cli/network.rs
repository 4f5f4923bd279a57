//! `berth network …`: networks (issue 5).

use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalOpts, not_yet};

/// `berth network` subcommands.
#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// List networks
    #[command(alias = "list")]
    Ls,
}

pub fn run(_g: &GlobalOpts, cmd: NetworkCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        NetworkCommand::Ls => Err(not_yet("network ls", 5)),
    }
}
