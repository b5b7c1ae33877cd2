//! [`aws_default`] runs the chain once; the [`AwsCredentialsProvider`] it
//! returns keeps where the credentials came from, every source tried, the
//! region, and a cache that refetches from the answering source ahead of expiry.

use super::chain;
use super::credentials::AwsCredentials;
use super::error::{AwsAttempt, AwsAuthError};
use super::options::AwsChainOptions;
use super::source::{AwsLocation, AwsSource};
use crate::cache::{Cache, CacheStatus};
use crate::context::AuthContext;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Replaced this long before their Expiration (capped at half their lifetime):
/// botocore's advisory refresh window, so credentials keyway hands to an SDK
/// (through the broker's ECS API) are never already inside the SDK's own window.
const REFRESH_AHEAD: Duration = Duration::from_secs(15 * 60);

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
    cache: Cache<AwsCredentials, AwsAuthError>,
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
    pub fn status(&self) -> Option<CacheStatus> {
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
            cache: Cache::seeded(REFRESH_AHEAD, found.creds, ctx.clock.now_secs()),
        }),
    })
}
