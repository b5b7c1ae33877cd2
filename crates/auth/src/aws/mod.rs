//! The AWS credential chain, in the SDKs' order, with provenance: environment
//! variables, the shared credentials/config files (static keys of a profile,
//! or its `web_identity_token_file`), web identity (AssumeRoleWithWebIdentity
//! with AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, or, keyway's own, a Google
//! ID token when KEYWAY_AWS_WEB_IDENTITY=google), the ECS container endpoint
//! (RELATIVE or FULL URI, with the authorization token or token file), then
//! IMDSv2. Each source is tried in turn and recorded as an [`AwsAttempt`]; the
//! first that is configured answers, and one that is configured but fails
//! stops the chain (as the SDKs do) with an error that says which.
//!
//! Implemented directly on reqwest rather than with aws-config: keyway needs to
//! know which provider answered and why the others did not, to read the
//! environment, files and clock from its [`AuthContext`] (so tests describe a
//! machine as data), and to point IMDS and the ECS endpoint at loopback.
//! Temporary credentials are cached until shortly before their Expiration (the
//! ECS endpoint is rate-limited). Secret keys and session tokens are
//! [`Secret`]s: no `Debug`, error or log line shows them.

mod providers;
mod sign;

use crate::AuthContext;
use keyway_core::Secret;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use providers::{DEFAULT_GOOGLE_AUDIENCE, parse_ini};
pub use sign::signature;

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
    /// The profile and file, the endpoint URL, or the variable.
    pub detail: String,
}

impl fmt::Display for AwsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = self.kind.to_string();
        // The environment source's name already says which variable it is.
        if kind.contains(&self.detail) {
            f.write_str(&kind)
        } else {
            write!(f, "{kind} ({})", self.detail)
        }
    }
}

/// What trying one source gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsOutcome {
    NotConfigured(String),
    Failed(String),
    Answered,
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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsAttempt {
    pub source: AwsSourceKind,
    pub outcome: AwsOutcome,
}

/// Why no AWS credentials could be had.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AwsAuthError {
    #[error("finding aws credentials: no source answered ({})", list(attempts))]
    NotConfigured { attempts: Vec<AwsAttempt> },
    /// A source is configured but cannot be used (bad file, bad variable, refused URI, failed request).
    /// `transient`: the request failed in a way that may succeed later (unreachable, 5xx, throttled).
    #[error("getting aws credentials from the {kind}: {reason}")]
    Failed {
        kind: AwsSourceKind,
        reason: String,
        transient: bool,
    },
    #[error("getting aws credentials from the {kind}: {detail} is not supported yet")]
    Unsupported { kind: AwsSourceKind, detail: String },
}

impl AwsAuthError {
    /// Whether trying again later may succeed (the source was unreachable,
    /// answered 5xx or throttled); configuration mistakes and refusals are not.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AwsAuthError::Failed {
                transient: true,
                ..
            }
        )
    }
}

impl crate::cache::Expiring for AwsCredentials {
    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

fn list(attempts: &[AwsAttempt]) -> String {
    attempts
        .iter()
        .map(|a| format!("{}: {}", a.source, a.outcome))
        .collect::<Vec<_>>()
        .join("; ")
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

impl AwsSourceKind {
    /// Every source, in the chain's order.
    pub const ALL: [AwsSourceKind; 5] = [
        AwsSourceKind::Environment,
        AwsSourceKind::Profile,
        AwsSourceKind::WebIdentity,
        AwsSourceKind::EcsContainer,
        AwsSourceKind::Imds,
    ];
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
    fetch: providers::Refetch,
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
                    providers::refetch(&inner.ctx, &inner.options, &inner.fetch).await
                },
            )
            .await
    }

    /// The role these credentials are a session of, when keyway assumed it
    /// (web identity); `None` when the source does not say.
    pub fn role_arn(&self) -> Option<&str> {
        match &self.inner.fetch {
            providers::Refetch::WebIdentity(wi) => Some(&wi.role_arn),
            _ => None,
        }
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
    let found = providers::chain(ctx, &options, &mut attempts).await?;
    let region = providers::region(ctx, &options, found.profile_region.clone(), &found.fetch).await;
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
