//! One module per command; `run` maps the parsed command line to them.

mod broker;
mod cloud;
mod doctor;
mod exec;
mod get;
mod resolve;
mod serve;
mod token;
mod watch;
mod whoami;

pub use exec::EXIT_KEYWAY_FAILED;

use crate::cli::{Cli, CloudCommand, Command};
use keyway_core::Env;
use std::process::ExitCode;

/// Runs the command in `env`, the process environment `main` captured.
pub fn run(cli: Cli, env: Env) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Exec(a) => exec::run(a, env),
        Command::Get(a) => get::run(a, env),
        Command::Whoami(a) => whoami::run(a, env),
        Command::Doctor(a) => doctor::run(a, env),
        Command::Token(a) => token::run(a, env),
        Command::Serve(a) => serve::run(a, env),
        Command::Cloud(CloudCommand::Up(a)) => cloud::up(a, &env),
        Command::Cloud(CloudCommand::Env(a)) => cloud::env(a, &env),
        Command::Cloud(CloudCommand::CredConfig(a)) => cloud::cred_config(a, &env),
    }
}
