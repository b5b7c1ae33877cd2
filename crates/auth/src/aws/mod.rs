//! The AWS credential chain, in the SDKs' order, with provenance: environment
//! variables, the shared credentials/config files (static keys of a profile,
//! or its `web_identity_token_file`), web identity (AssumeRoleWithWebIdentity
//! with AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, or, keyway's own, a Google
//! ID token when KEYWAY_AWS_WEB_IDENTITY=google), the ECS container endpoint
//! (RELATIVE or FULL URI, with the authorization token or token file), then
//! IMDSv2. Each source is tried in turn and recorded as an [`AwsAttempt`]; the
//! first that is configured answers, and one that is configured but fails
//! stops the chain (as the SDKs do) with an error that says which. One file
//! per source (`environment.rs`, `profile.rs`, `web_identity.rs`, `ecs.rs`,
//! `imds.rs`), the order in `chain.rs`, what it consults in `options.rs`, the
//! provider that runs it and caches the answer in `provider.rs`, the
//! credentials in `credentials.rs` and where they came from in `source.rs`,
//! one way of calling AWS in `call.rs`, and STS's GetCallerIdentity ("who are
//! these credentials?") in `sts.rs`. This file only names them.
//!
//! Implemented directly on reqwest rather than with aws-config: keyway needs to
//! know which provider answered and why the others did not, to read the
//! environment, files and clock from its [`AuthContext`](crate::AuthContext) (so tests describe a
//! machine as data), and to point IMDS and the ECS endpoint at loopback.
//! Temporary credentials are cached until shortly before their Expiration (the
//! ECS endpoint is rate-limited). Secret keys and session tokens are
//! [`Secret`](keyway_core::Secret)s: no `Debug`, error or log line shows them. Every failure is a
//! typed [`AwsAuthError`] that knows whether it is transient.

mod call;
mod chain;
mod credentials;
mod ecs;
mod environment;
mod error;
mod imds;
mod options;
mod profile;
mod provider;
mod sign;
mod source;
mod sts;
mod web_identity;

pub use credentials::AwsCredentials;
pub use error::{
    AwsAbsent, AwsAttempt, AwsAuthError, AwsConfigProblem, AwsOutcome, AwsService,
    MAX_CLOCK_SKEW_SECS, Rejection,
};
pub use keyway_http::aws::{AwsErrorCode, AwsErrorKind};
pub use options::{AwsChainOptions, ImdsEndpoint};
pub use profile::parse_ini;
pub use provider::{AwsCredentialsProvider, aws_default};
pub use sign::{SigningError, signature};
pub use source::{AwsLocation, AwsSource, AwsSourceKind, WebIdentityToken};
pub use sts::{CallerIdentity, caller_identity};
pub use web_identity::DEFAULT_GOOGLE_AUDIENCE;

pub(crate) use imds::region_of_zone_url;

#[cfg(test)]
mod tests;
