//! `berth container …`: single containers (issue 4).

use std::process::ExitCode;

use clap::Subcommand;

use super::{GlobalOpts, not_yet};

/// `berth container` subcommands.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List single containers
    #[command(alias = "list")]
    Ls,
}

pub fn run(_g: &GlobalOpts, cmd: ContainerCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ContainerCommand::Ls => Err(not_yet("container ls", 4)),
    }
}
