//! The `keyway` binary: capture the environment once, parse the command line,
//! run the command, print an error once (with its causes and, when the fix is
//! known, a hint) and exit. Nothing here or below panics on output: see
//! [`output`].

mod aws;
mod cli;
mod commands;
mod context;
mod diagnosis;
mod federation;
mod fixes;
mod google;
mod google_failure;
mod logging;
mod output;

use clap::Parser;
use keyway_core::Env;
use output::errln;
use std::process::ExitCode;

/// Columns an error line may take before it is wrapped.
pub const WIDTH: usize = 100;

fn main() -> ExitCode {
    // The one place the process environment is read; everything below gets it as a value.
    let env = Env::from_process();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `keyway exec` keeps env(1)'s and docker's convention for every failure
    // of keyway's own before the command starts, usage errors included: 125.
    let failed = if subcommand(&args) == Some("exec") {
        commands::EXIT_KEYWAY_FAILED
    } else {
        1
    };
    let cli = match cli::Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e, (failed != 1).then_some(failed)),
    };
    logging::init(&env, cli.verbose, cli.quiet);
    match commands::run(cli, env) {
        Ok(code) => code,
        Err(e) => match e.downcast_ref::<Failed>() {
            Some(f) => {
                errln!("{}", f.message);
                ExitCode::from(f.status.unwrap_or(failed))
            }
            None => {
                report(&e);
                ExitCode::from(failed)
            }
        },
    }
}

/// A failure a command has laid out itself (a block of failures, each with
/// its diagnosis), for `main` to print, once, as it is; and the status to
/// exit with when it is not the command's usual one.
#[derive(Debug)]
pub struct Failed {
    pub message: String,
    pub status: Option<u8>,
}

impl std::fmt::Display for Failed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failed {}

impl Failed {
    pub fn error(message: String) -> anyhow::Error {
        Failed {
            message,
            status: None,
        }
        .into()
    }
}

/// The subcommand named on the command line: the first argument after the
/// program's that is not an option (keyway's global options, -v and -q, take
/// no value).
fn subcommand(args: &[std::ffi::OsString]) -> Option<&str> {
    args.iter()
        .skip(1)
        .map(|a| a.to_str())
        .find(|a| !a.is_some_and(|a| a.starts_with('-')))
        .flatten()
}

/// Prints `error: …` and each cause on its own line, wrapped at [`WIDTH`].
pub fn report(e: &anyhow::Error) {
    errln!("error: {}", output::wrap(&e.to_string(), 7, 4, WIDTH));
    for cause in e.chain().skip(1) {
        errln!(
            "  caused by: {}",
            output::wrap(&cause.to_string(), 13, 4, WIDTH)
        );
    }
}

/// `--help` and `--version` go to stdout through [`output`] (so a closed pipe
/// or a full disk is handled as for any command); usage errors go to stderr
/// with clap's status (2), or `usage_status` when the subcommand has its own.
fn clap_exit(e: clap::Error, usage_status: Option<u8>) -> ExitCode {
    let rendered = e.render().to_string();
    match e.kind() {
        _ if !e.use_stderr() => match output::stdout(rendered.as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(w) => {
                report(&w.into());
                ExitCode::from(1)
            }
        },
        _ => {
            output::stderr(rendered.as_bytes());
            ExitCode::from(usage_status.unwrap_or_else(|| u8::try_from(e.exit_code()).unwrap_or(2)))
        }
    }
}
