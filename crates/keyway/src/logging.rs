//! Diagnostics go to stderr through `tracing`. `-v` raises the level (info,
//! debug, trace); `KEYWAY_LOG` takes an env-filter directive and wins over `-v`.
//! No code path logs a secret value: values are `Secret`s, which print as
//! `[redacted]`.

use tracing_subscriber::EnvFilter;

pub fn init(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info",
        (_, 2) => "debug",
        _ => "trace",
    };
    let filter = std::env::var("KEYWAY_LOG")
        .ok()
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new(format!("{level},hyper=warn,h2=warn,rustls=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}
