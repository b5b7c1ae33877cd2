//! keyway-auth answers "who am I, and can I get a token?" for the rest of keyway.
//!
//! Google Application Default Credentials are found in Google's order
//! ([`google_default`]) and always say which source answered and what was tried
//! before it, because "it works on my laptop but not in CI" is usually a question
//! of which credentials were picked up. Every credential keeps a token cache that
//! refreshes ahead of expiry, sends one upstream request however many callers
//! wait, and retries transient failures within a deadline.
//!
//! AWS credentials come from the SDKs' chain ([`aws_default`]), with the
//! same provenance: which source answered, and why the others did not.
//!
//! Nothing here reads the process environment, the real filesystem or the clock
//! directly: all of it comes in an [`AuthContext`]. Tokens, refresh tokens,
//! client secrets and private keys are [`keyway_core::Secret`]s from the moment
//! they are read, so they cannot reach a log line, an error or a `Debug` print.

pub mod aws;
mod cache;
pub use cache::CacheStatus;
mod context;
mod error;
pub mod google;
mod http;

pub use aws::{
    AwsAttempt, AwsAuthError, AwsChainOptions, AwsCredentials, AwsCredentialsProvider, AwsOutcome,
    AwsSource, AwsSourceKind, ImdsEndpoint, aws_default,
};
pub use context::{
    AuthContext, DEFAULT_METADATA_PROBE_TIMEOUT, DEFAULT_REFRESH_AHEAD, RetryPolicy,
};
pub use error::AuthError;
pub use google::{
    AccessToken, Attempt, CredentialKind, GoogleCredentials, Identity, Outcome, Source, SourceKind,
    google_default,
};
pub use keyway_http::HttpError;
