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
//! same provenance: which source answered, and why the others did not; and
//! [`caller_identity`] says who they are (STS GetCallerIdentity).
//!
//! Every failure is a typed value that answers `is_transient()` where it is
//! built ([`AuthError`], [`AwsAuthError`]): the source, the OAuth/STS error
//! code or AWS's error code, the HTTP status, Google's rpc status and
//! `ErrorInfo` reason, the server's clock. What a credentials file says is
//! exposed as data ([`credential_file`], [`GoogleCredentials::file`]).
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
    AwsAbsent, AwsAttempt, AwsAuthError, AwsChainOptions, AwsCredentials, AwsCredentialsProvider,
    AwsLocation, AwsOutcome, AwsSource, AwsSourceKind, CallerIdentity, ImdsEndpoint, aws_default,
    caller_identity,
};
pub use context::{
    AuthContext, DEFAULT_METADATA_PROBE_TIMEOUT, DEFAULT_REFRESH_AHEAD, RetryPolicy,
};
pub use error::{
    AuthError, ChainOutcome, ConfigProblem, GoogleCall, Rejection, SubjectCause, SubjectFrom,
};
pub use google::{
    Absent, AccessToken, Attempt, CredentialFile, CredentialKind, Federation, GoogleCredentials,
    Identity, Outcome, Source, SourceKind, SubjectSourceKind, WorkloadProvider, credential_file,
    google_default,
};
pub use keyway_http::HttpError;
