//! `berth image …`, `berth builder …`, `berth login/logout`: the image side (issues 3 and 7).

use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::{GlobalOpts, not_yet};

/// `berth image` subcommands.
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images
    #[command(alias = "list")]
    Ls,
}

/// `berth builder` subcommands.
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove build cache
    Prune,
}

/// `berth login`.
#[derive(Args, Debug)]
pub struct LoginArgs {
    /// Registry host (default: docker.io)
    pub server: Option<String>,
}

/// `berth logout`.
#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Registry host (default: docker.io)
    pub server: Option<String>,
}

pub fn run(_g: &GlobalOpts, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ImageCommand::Ls => Err(not_yet("image ls", 3)),
    }
}

pub fn run_builder(_g: &GlobalOpts, cmd: BuilderCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BuilderCommand::Prune => Err(not_yet("builder prune", 7)),
    }
}

pub fn login(_g: &GlobalOpts, _args: LoginArgs) -> anyhow::Result<ExitCode> {
    Err(not_yet("login", 3))
}

pub fn logout(_g: &GlobalOpts, _args: LogoutArgs) -> anyhow::Result<ExitCode> {
    Err(not_yet("logout", 3))
}
