//! `berth volume …`: named volumes (issue 4).

use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalOpts, not_yet};

/// `berth volume` subcommands.
#[derive(Subcommand, Debug)]
pub enum VolumeCommand {
    /// List named volumes
    #[command(alias = "list")]
    Ls,
}

pub fn run(_g: &GlobalOpts, cmd: VolumeCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        VolumeCommand::Ls => Err(not_yet("volume ls", 4)),
    }
}
