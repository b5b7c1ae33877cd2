//! The command line, as clap sees it. Help text here is the user's manual: keep it true.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(name = "keyway", version, about = "Secrets and cloud credentials for any workload, on any cloud.", long_about = None)]
pub struct Cli {
    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace). KEYWAY_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The local, offline cloud: Google APIs with real IAM decisions on an embedded store.
    #[command(subcommand)]
    Cloud(CloudCommand),
}

#[derive(Debug, Subcommand)]
pub enum CloudCommand {
    /// Start the local cloud and serve until SIGINT or SIGTERM.
    ///
    /// Seeds an empty data directory from the world file; afterwards the store is
    /// the truth (changes made through the APIs survive restarts) and the world
    /// file is not re-read unless --reset is given. Every server binds loopback on
    /// an ephemeral port; when ready, one JSON line describing them is printed on
    /// stdout and written to DATA/endpoints.json.
    Up(UpArgs),
    /// Print shell exports that make a process behave as if it ran on an
    /// instance of the local cloud, or as a logged-in user. Use: eval "$(keyway cloud env ...)"
    Env(EnvArgs),
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// The local cloud's data directory.
    #[arg(long, env = "KEYWAY_CLOUD_DATA", default_value = ".keyway-cloud")]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// The world file (TOML) that seeds an empty store.
    #[arg(long)]
    pub world: Option<PathBuf>,
    #[command(flatten)]
    pub data: DataArgs,
    /// The master key that encrypts payloads at rest (created if the store is new).
    /// Default: DATA/master.key. Keep it apart from the data directory to separate key and data.
    #[arg(long, env = "KEYWAY_CLOUD_KEY_FILE")]
    pub key_file: Option<PathBuf>,
    /// Delete the store (and its master key, if it is in DATA) first and seed again from --world.
    #[arg(long)]
    pub reset: bool,
    /// Address of the Google API server; must be loopback. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: String,
}

#[derive(Debug, Args)]
pub struct EnvArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Act as a process on this VM: its metadata server answers for it.
    #[arg(long, conflicts_with = "user", required_unless_present = "user")]
    pub instance: Option<String>,
    /// Act as this user after `gcloud auth application-default login`.
    #[arg(long)]
    pub user: Option<String>,
}
