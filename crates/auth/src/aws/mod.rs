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
//! `imds.rs`), the order in `chain.rs`, one way of calling AWS in `call.rs`,
//! and STS's GetCallerIdentity ("who are these credentials?") in `sts.rs`.
//!
//! Implemented directly on reqwest rather than with aws-config: keyway needs to
//! know which provider answered and why the others did not, to read the
//! environment, files and clock from its [`AuthContext`] (so tests describe a
//! machine as data), and to point IMDS and the ECS endpoint at loopback.
//! Temporary credentials are cached until shortly before their Expiration (the
//! ECS endpoint is rate-limited). Secret keys and session tokens are
//! [`Secret`]s: no `Debug`, error or log line shows them. Every failure is a
//! typed [`AwsAuthError`] that knows whether it is transient.

mod call;
mod chain;
mod ecs;
mod environment;
mod error;
mod imds;
mod profile;
mod sign;
mod sts;
mod web_identity;

use crate::AuthContext;
use keyway_core::Secret;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use error::{AwsAuthError, AwsConfigProblem, AwsService, MAX_CLOCK_SKEW_SECS, Rejection};
pub use keyway_http::aws::{AwsErrorCode, AwsErrorKind};
pub use profile::parse_ini;
pub use sign::{SigningError, signature};
pub use sts::{CallerIdentity, caller_identity};
pub use web_identity::DEFAULT_GOOGLE_AUDIENCE;

pub(crate) use imds::region_of_zone_url;

/// Replaced this long before their Expiration (capped at half their lifetime):
/// botocore's advisory refresh window, so credentials keyway hands to an SDK
/// (through the broker's ECS API) are never already inside the SDK's own window.
const REFRESH_AHEAD: Duration = Duration::from_secs(15 * 60);

/// One set of AWS credentials.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
    /// Unix seconds; `None` for long-term keys.
    pub expires_at: Option<i64>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The access key id identifies, it does not authenticate; still, show only its prefix.
        let id: String = self.access_key_id.chars().take(4).collect();
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &format_args!("{id}…"))
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AwsCredentials {
    /// Whether the access key id is a long-term IAM user key (`AKIA…`), which
    /// AWS refuses with any session token beside it.
    pub fn is_long_term_key(&self) -> bool {
        self.access_key_id.starts_with("AKIA")
    }
}

/// The sources of the chain, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsSourceKind {
    Environment,
    Profile,
    WebIdentity,
    EcsContainer,
    Imds,
}

impl AwsSourceKind {
    /// Every source, in the chain's order.
    pub const ALL: [AwsSourceKind; 5] = [
        AwsSourceKind::Environment,
        AwsSourceKind::Profile,
        AwsSourceKind::WebIdentity,
        AwsSourceKind::EcsContainer,
        AwsSourceKind::Imds,
    ];

    /// A stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsSourceKind::Environment => "environment",
            AwsSourceKind::Profile => "profile",
            AwsSourceKind::WebIdentity => "web_identity",
            AwsSourceKind::EcsContainer => "ecs_container",
            AwsSourceKind::Imds => "imds",
        }
    }
}

impl fmt::Display for AwsSourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwsSourceKind::Environment => "environment (AWS_ACCESS_KEY_ID)",
            AwsSourceKind::Profile => "shared config/credentials files",
            AwsSourceKind::WebIdentity => "web identity (AssumeRoleWithWebIdentity)",
            AwsSourceKind::EcsContainer => "ECS container credentials endpoint",
            AwsSourceKind::Imds => "EC2 instance metadata (IMDSv2)",
        })
    }
}

/// Which source answered, and where exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSource {
    pub kind: AwsSourceKind,
    /// The profile and file, the endpoint URL, or the variable, for people.
    pub detail: String,
    /// The same, as data.
    pub location: AwsLocation,
}

/// Where exactly a source found the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwsLocation {
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    Environment,
    /// A profile of the shared files (static keys).
    Profile { profile: String },
    /// AssumeRoleWithWebIdentity (a token file, or keyway's Google ID token),
    /// from the environment or a profile.
    WebIdentity {
        profile: Option<String>,
        role_arn: String,
        token: WebIdentityToken,
    },
    /// The ECS container credentials endpoint (URL without query).
    EcsContainer { url: String },
    /// IMDSv2, for the instance profile's role.
    Imds { endpoint: String, role: String },
}

/// Where a web identity token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebIdentityToken {
    File(PathBuf),
    /// A Google ID token (KEYWAY_AWS_WEB_IDENTITY=google) for this audience.
    Google {
        audience: String,
    },
}

impl fmt::Display for AwsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            // The environment source's name already says which variable it is.
            AwsLocation::Environment => write!(f, "{}", self.kind),
            _ => write!(f, "{} ({})", self.kind, self.detail),
        }
    }
}

/// What trying one source gave.
#[derive(Debug, Clone)]
pub enum AwsOutcome {
    NotConfigured(AwsAbsent),
    Failed(Box<AwsAuthError>),
    Answered,
}

impl AwsOutcome {
    /// The failure, for [`AwsOutcome::Failed`].
    pub fn failure(&self) -> Option<&AwsAuthError> {
        match self {
            AwsOutcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for AwsOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwsOutcome::NotConfigured(why) => write!(f, "not configured: {why}"),
            AwsOutcome::Failed(why) => write!(f, "failed: {why}"),
            AwsOutcome::Answered => f.write_str("answered"),
        }
    }
}

/// Why a source does not apply here.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AwsAbsent {
    /// `AWS_ACCESS_KEY_ID` is not set.
    NoAccessKeyVariable,
    /// No profile of that name in either shared file (the default profile,
    /// not named by the user).
    NoProfile {
        profile: String,
        credentials_file: PathBuf,
        config_file: PathBuf,
    },
    /// The (default) profile holds no keys.
    ProfileWithoutKeys { profile: String },
    /// Neither AWS_WEB_IDENTITY_TOKEN_FILE nor KEYWAY_AWS_WEB_IDENTITY is set.
    NoWebIdentity,
    /// Neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set.
    NoContainerEndpoint,
    /// AWS_EC2_METADATA_DISABLED=true.
    ImdsDisabled,
    /// IMDS was not probed (no endpoint set, and this does not look like EC2).
    ImdsNotProbed,
    /// The chain's options say IMDS is not available, and why.
    ImdsUnavailable(String),
    /// Nothing answered at IMDS's default address (not on EC2).
    NoImds(Box<AwsAuthError>),
}

impl fmt::Display for AwsAbsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwsAbsent::NoAccessKeyVariable => f.write_str("AWS_ACCESS_KEY_ID is not set"),
            AwsAbsent::NoProfile {
                profile,
                credentials_file,
                config_file,
            } => write!(
                f,
                "no profile '{profile}' in {} or {}",
                credentials_file.display(),
                config_file.display()
            ),
            AwsAbsent::ProfileWithoutKeys { profile } => {
                write!(f, "profile '{profile}' holds no keys")
            }
            AwsAbsent::NoWebIdentity => {
                f.write_str("AWS_WEB_IDENTITY_TOKEN_FILE (or KEYWAY_AWS_WEB_IDENTITY) is not set")
            }
            AwsAbsent::NoContainerEndpoint => {
                f.write_str("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set")
            }
            AwsAbsent::ImdsDisabled => f.write_str("AWS_EC2_METADATA_DISABLED=true"),
            AwsAbsent::ImdsNotProbed => f.write_str(
                "not probed (no AWS_EC2_METADATA_SERVICE_ENDPOINT, and this does not look like EC2)",
            ),
            AwsAbsent::ImdsUnavailable(why) => f.write_str(why),
            AwsAbsent::NoImds(e) => write!(f, "no instance metadata service ({e})"),
        }
    }
}

/// One source tried, and its outcome.
#[derive(Debug, Clone)]
pub struct AwsAttempt {
    pub source: AwsSourceKind,
    pub outcome: AwsOutcome,
}

impl crate::cache::Expiring for AwsCredentials {
    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

/// Options of the chain: which sources it consults and how IMDS is reached.
/// A narrower chain is a typed choice here (as aws-config's provider
/// configuration is), never a rewritten environment.
#[derive(Debug, Clone)]
pub struct AwsChainOptions {
    /// The sources consulted, in the chain's fixed order whatever the order
    /// here; the others are skipped and not reported as tried.
    pub sources: Vec<AwsSourceKind>,
    /// Where IMDS is.
    pub imds: ImdsEndpoint,
    /// With [`ImdsEndpoint::FromEnvironment`] and no endpoint set: whether to
    /// probe IMDS at its default address when nothing else answered.
    pub probe_default_imds: bool,
    /// Timeout of each IMDS request (the SDKs use 1 s).
    pub imds_timeout: Duration,
}

/// How the chain finds IMDS. `AWS_EC2_METADATA_DISABLED=true` turns it off in
/// every case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImdsEndpoint {
    /// `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else the default address (only if
    /// `probe_default_imds`), as the SDKs do.
    FromEnvironment,
    /// This base URL (no trailing '/'), e.g. from a credential file.
    At(String),
    /// None: the reason is reported as the source's "not configured".
    Unavailable(String),
}

impl AwsChainOptions {
    /// Whether the chain consults `kind`.
    pub fn consults(&self, kind: AwsSourceKind) -> bool {
        self.sources.contains(&kind)
    }
}

impl Default for AwsChainOptions {
    /// The SDKs' chain: every source, IMDS from the environment, probed at its
    /// default address.
    fn default() -> Self {
        AwsChainOptions {
            sources: AwsSourceKind::ALL.to_vec(),
            imds: ImdsEndpoint::FromEnvironment,
            probe_default_imds: true,
            imds_timeout: Duration::from_secs(1),
        }
    }
}

/// The credentials the chain found, with where from, the region, and a cache.
#[derive(Clone)]
pub struct AwsCredentialsProvider {
    inner: Arc<Inner>,
}

struct Inner {
    ctx: AuthContext,
    options: AwsChainOptions,
    source: AwsSource,
    attempts: Vec<AwsAttempt>,
    region: Option<(String, &'static str)>,
    fetch: chain::Refetch,
    cache: crate::cache::Cache<AwsCredentials, AwsAuthError>,
}

impl fmt::Debug for AwsCredentialsProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentialsProvider")
            .field("source", &self.inner.source)
            .field("region", &self.inner.region)
            .finish_non_exhaustive()
    }
}

impl AwsCredentialsProvider {
    pub fn source(&self) -> &AwsSource {
        &self.inner.source
    }

    /// Every source tried, in order, the answering one last.
    pub fn attempts(&self) -> &[AwsAttempt] {
        &self.inner.attempts
    }

    /// The region, and where it came from (`AWS_REGION`, `profile default`, `IMDS placement`).
    pub fn region(&self) -> Option<(&str, &str)> {
        self.inner.region.as_ref().map(|(r, w)| (r.as_str(), *w))
    }

    /// The role these credentials are a session of, when keyway assumed it
    /// (web identity).
    pub fn role_arn(&self) -> Option<&str> {
        match &self.inner.source.location {
            AwsLocation::WebIdentity { role_arn, .. } => Some(role_arn),
            _ => None,
        }
    }

    /// The context the chain ran in (calls made with these credentials use it).
    pub(crate) fn context(&self) -> &AuthContext {
        &self.inner.ctx
    }

    /// Current credentials: the cached ones unless they are due for refresh
    /// (then one refresh for all concurrent callers; while it runs, or shortly
    /// after it failed, the cached ones as long as they are valid).
    pub async fn credentials(&self) -> Result<AwsCredentials, AwsAuthError> {
        let inner = &*self.inner;
        inner
            .cache
            .get(
                || inner.ctx.clock.now_secs(),
                || async {
                    tracing::debug!(source = %inner.source, "aws credentials due for refresh");
                    chain::refetch(&inner.ctx, &inner.options, &inner.fetch).await
                },
            )
            .await
    }

    /// What the credentials cache holds: expiry, when a refresh is due, whether
    /// the last refresh failed.
    pub fn status(&self) -> Option<crate::cache::CacheStatus> {
        self.inner.cache.status()
    }
}

/// Runs the chain.
pub async fn aws_default(
    ctx: &AuthContext,
    options: AwsChainOptions,
) -> Result<AwsCredentialsProvider, AwsAuthError> {
    let mut attempts = Vec::new();
    let found = chain::run(ctx, &options, &mut attempts).await?;
    let region = chain::region(ctx, &options, found.profile_region.clone(), &found.fetch).await;
    tracing::debug!(source = %found.source, region = ?region, "aws credentials found");
    Ok(AwsCredentialsProvider {
        inner: Arc::new(Inner {
            ctx: ctx.clone(),
            options,
            source: found.source,
            attempts,
            region,
            fetch: found.fetch,
            cache: crate::cache::Cache::seeded(REFRESH_AHEAD, found.creds, ctx.clock.now_secs()),
        }),
    })
}

#[cfg(test)]
mod tests;
