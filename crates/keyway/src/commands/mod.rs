//! One module per command; `run` maps the parsed command line to them.

mod cloud;

use crate::cli::{Cli, CloudCommand, Command};
use std::process::ExitCode;

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Cloud(CloudCommand::Up(a)) => cloud::up(a),
        Command::Cloud(CloudCommand::Env(a)) => cloud::env(a),
    }
}
