//! Everything a credential provider may touch, passed in as one value. Library
//! code never reads the process environment, the real filesystem or the wall
//! clock itself, so a test describes a whole machine (variables, files, time,
//! endpoints) as data and the binary captures the real ones once.

use keyway_core::{Clock, Env, Fs};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The environment, filesystem, clock and HTTP client credential code uses,
/// plus its timing tunables.
#[derive(Clone)]
pub struct AuthContext {
    pub env: Env,
    pub fs: Arc<dyn Fs>,
    pub clock: Arc<dyn Clock>,
    pub http: reqwest::Client,
    /// How long the metadata-server probe waits for an answer. A laptop has no
    /// metadata server and must not block long (default 500 ms).
    pub metadata_probe_timeout: Duration,
    /// A cached token is replaced this long before it expires (default 3 min 45 s,
    /// as Google's libraries do). Capped at half the token's lifetime, so a
    /// short-lived token is still reused.
    pub refresh_ahead: Duration,
    /// Retries and timeouts for every request to a token endpoint or metadata server.
    pub retry: RetryPolicy,
}

/// How requests are retried: keyway-http's one policy (transient failures
/// retried with full-jitter exponential backoff inside a deadline).
pub use keyway_http::RetryPolicy;

/// The default metadata probe timeout.
pub const DEFAULT_METADATA_PROBE_TIMEOUT: Duration = Duration::from_millis(500);
/// The default refresh-ahead margin (Google's libraries use 3 min 45 s).
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(225);

impl AuthContext {
    /// A context with default tunables.
    pub fn new(env: Env, fs: Arc<dyn Fs>, clock: Arc<dyn Clock>, http: reqwest::Client) -> Self {
        AuthContext {
            env,
            fs,
            clock,
            http,
            metadata_probe_timeout: DEFAULT_METADATA_PROBE_TIMEOUT,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for AuthContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Env's Debug prints variable names only.
        f.debug_struct("AuthContext")
            .field("env", &self.env)
            .field("metadata_probe_timeout", &self.metadata_probe_timeout)
            .field("refresh_ahead", &self.refresh_ahead)
            .field("retry", &self.retry)
            .finish_non_exhaustive()
    }
}
