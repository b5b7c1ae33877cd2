//! [`GoogleCredentials`]: the handle the rest of keyway uses to get access
//! tokens, ID tokens and "who am I", whichever flow runs underneath (refresh
//! token, JWT bearer, metadata server, federation, impersonation), with one
//! token cache per scope set and one ID-token cache per audience.

use super::authorized_user::AuthorizedUser;
use super::describe::CredentialFile;
use super::external::External;
use super::impersonated::Impersonated;
use super::jwt;
use super::metadata::Metadata;
use super::service_account::ServiceAccount;
use super::source::{CredentialKind, Source};
use super::token::AccessToken;
use crate::cache::{Cache, CacheStatus, Expiring, Keyed};
use crate::context::AuthContext;
use crate::error::{Attempt, AuthError};
use keyway_core::Secret;
use std::fmt;
use std::sync::{Arc, Mutex};

/// Who the credentials are, as far as can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub email: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Expiry of the current access token, unix seconds.
    pub expires_at: Option<i64>,
}

/// The access-token cache of one set of scopes.
pub(crate) type TokenCache = Cache<AccessToken, AuthError>;

/// A Google-signed ID token and its `exp`.
#[derive(Clone)]
struct IdToken {
    token: Secret<String>,
    expires_at: i64,
}

impl Expiring for IdToken {
    fn expires_at(&self) -> Option<i64> {
        Some(self.expires_at)
    }
}

/// How many audiences keep a cached ID token (a broker's callers choose them).
const ID_TOKEN_AUDIENCES: usize = 64;

/// Credentials found by [`google_default`]. Cheap to clone; clones share one
/// token cache. [`GoogleCredentials::with_scopes`] makes a handle on the same
/// source with its own scopes and cache.
#[derive(Clone)]
pub struct GoogleCredentials {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    scopes: Vec<String>,
    cache: TokenCache,
}

/// What every scope set of one source shares.
struct Shared {
    ctx: AuthContext,
    source: Source,
    attempts: Vec<Attempt>,
    provider: Provider,
    /// An email learned from an ID token that came with a refresh.
    learned_email: Mutex<Option<String>>,
    /// ID tokens by audience.
    id_tokens: Keyed<String, IdToken, AuthError>,
    /// What the credentials file said, for file sources.
    file: std::sync::OnceLock<CredentialFile>,
}

/// The flow underneath. Impersonated credentials call IAM Credentials with a
/// token of their source credentials, which are a `GoogleCredentials` too.
pub(super) enum Provider {
    AuthorizedUser(AuthorizedUser),
    ServiceAccount(ServiceAccount),
    Metadata(Metadata),
    External(Box<External>),
    Impersonated {
        target: Box<Impersonated>,
        source: GoogleCredentials,
    },
}

impl fmt::Debug for GoogleCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GoogleCredentials")
            .field("source", &self.inner.shared.source)
            .field("scopes", &self.inner.scopes)
            .finish_non_exhaustive()
    }
}

impl GoogleCredentials {
    pub(super) fn new(
        ctx: &AuthContext,
        source: Source,
        attempts: Vec<Attempt>,
        scopes: &[String],
        provider: Provider,
        cache: TokenCache,
    ) -> Self {
        GoogleCredentials {
            inner: Arc::new(Inner {
                shared: Arc::new(Shared {
                    ctx: ctx.clone(),
                    source,
                    attempts,
                    provider,
                    learned_email: Mutex::new(None),
                    id_tokens: Keyed::new(ID_TOKEN_AUDIENCES, ctx.refresh_ahead),
                    file: std::sync::OnceLock::new(),
                }),
                scopes: scopes.to_vec(),
                cache,
            }),
        }
    }

    /// The same credentials asking for other scopes, with a token cache of
    /// their own. Sources whose scopes are fixed upstream (a metadata server, a
    /// user's refresh token) return the tokens they have whatever is asked.
    pub fn with_scopes(&self, scopes: &[String]) -> GoogleCredentials {
        GoogleCredentials {
            inner: Arc::new(Inner {
                shared: self.inner.shared.clone(),
                scopes: scopes.to_vec(),
                cache: TokenCache::new(self.inner.shared.ctx.refresh_ahead),
            }),
        }
    }

    /// Records what the credentials file said (set once, when built from a file).
    pub(crate) fn with_file(self, file: CredentialFile) -> Self {
        let _ = self.inner.shared.file.set(file);
        self
    }

    /// What the credentials file said (its type, account, and federation
    /// settings), for credentials read from a file.
    pub fn file(&self) -> Option<&CredentialFile> {
        self.inner.shared.file.get()
    }

    /// Where these credentials came from.
    pub fn source(&self) -> &Source {
        &self.inner.shared.source
    }

    /// Every source tried, in order, ending with the one that answered.
    pub fn attempts(&self) -> &[Attempt] {
        &self.inner.shared.attempts
    }

    /// What the access-token cache holds (expiry, when it is due for refresh,
    /// whether the last refresh failed); `None` before the first token.
    pub fn token_status(&self) -> Option<CacheStatus> {
        self.inner.cache.status()
    }

    /// The scopes requested for access tokens.
    pub fn requested_scopes(&self) -> &[String] {
        &self.inner.scopes
    }

    /// The `quota_project_id` of an authorized_user file, or the `project_id` of a
    /// service account key.
    pub fn project_hint(&self) -> Option<&str> {
        match &self.inner.shared.provider {
            Provider::AuthorizedUser(u) => u.quota_project_id(),
            Provider::ServiceAccount(s) => s.project_id(),
            Provider::Metadata(_) => None,
            Provider::External(e) => e.quota_project_id(),
            Provider::Impersonated { target, source } => {
                target.quota_project_id().or_else(|| source.project_hint())
            }
        }
    }

    /// For Workload Identity Federation, the provider's resource name (the STS
    /// audience, `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/…`).
    pub fn federation_audience(&self) -> Option<&str> {
        match &self.inner.shared.provider {
            Provider::External(e) => Some(e.audience()),
            _ => None,
        }
    }

    /// An access token: the cached one while fresh (or while a refresh is in
    /// flight, or shortly after one failed, as long as it is valid), else one
    /// refresh shared by all concurrent callers.
    pub async fn access_token(&self) -> Result<AccessToken, AuthError> {
        let scopes = &self.inner.scopes;
        let inner = &*self.inner.shared;
        let clock = || inner.ctx.clock.now_secs();
        self.inner
            .cache
            .get(clock, || async {
                let minted = match &inner.provider {
                    Provider::AuthorizedUser(u) => u.fetch_token(&inner.ctx).await?,
                    Provider::ServiceAccount(s) => s.fetch_token(&inner.ctx, scopes).await?,
                    Provider::Metadata(m) => m.fetch_token(&inner.ctx, scopes).await?,
                    Provider::External(e) => e.fetch_token(&inner.ctx, scopes).await?,
                    Provider::Impersonated { target, source } => {
                        // Boxed: the source is itself a GoogleCredentials (one level deep).
                        let source = Box::pin(source.access_token()).await?;
                        target.fetch_token(&inner.ctx, &source.token, scopes).await?
                    }
                };
                if let Some(email) = minted.email {
                    *inner.learned_email.lock().unwrap_or_else(|p| p.into_inner()) = Some(email);
                }
                tracing::debug!(source = %inner.source, expires_at = minted.token.expires_at, "obtained an access token");
                Ok(minted.token)
            })
            .await
    }

    /// Who these credentials are: the email, the scopes of the current token and
    /// its expiry. Gets (or reuses) an access token.
    pub async fn identity(&self) -> Result<Identity, AuthError> {
        let token = self.access_token().await?;
        let inner = &*self.inner.shared;
        let (email, scopes) = match &inner.provider {
            Provider::AuthorizedUser(u) => {
                let learned = inner
                    .learned_email
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                (
                    u.account().map(str::to_owned).or(learned),
                    token.scopes.clone(),
                )
            }
            Provider::ServiceAccount(s) => (Some(s.email().to_owned()), token.scopes.clone()),
            Provider::Metadata(m) => {
                let email = match &inner.source {
                    Source::MetadataServer { email: Some(e), .. } => Some(e.clone()),
                    _ => Some(m.email(&inner.ctx, &inner.ctx.retry).await?),
                };
                (email, Some(m.scopes(&inner.ctx).await?))
            }
            Provider::External(e) => (e.email().map(str::to_owned), token.scopes.clone()),
            Provider::Impersonated { target, .. } => {
                (Some(target.email().to_owned()), token.scopes.clone())
            }
        };
        Ok(Identity {
            email,
            scopes,
            expires_at: Some(token.expires_at),
        })
    }

    /// The scopes the current access token carries, as its issuer says: the
    /// token response's `scope` (or, for a service account key or an
    /// impersonated account, the scopes it was minted for), else, for a
    /// metadata server (whose token response names none), the instance's access
    /// scopes from `service-accounts/default/scopes`: on GCE a token carries
    /// exactly those, whatever was asked. `None` when the issuer does not say.
    pub async fn granted_scopes(&self) -> Result<Option<Vec<String>>, AuthError> {
        let token = self.access_token().await?;
        if token.scopes.is_some() {
            return Ok(token.scopes);
        }
        match &self.inner.shared.provider {
            Provider::Metadata(m) => Ok(Some(m.scopes(&self.inner.shared.ctx).await?)),
            _ => Ok(None),
        }
    }

    /// A Google-signed ID token for `audience`, cached per audience like access
    /// tokens (refreshed ahead of its `exp`, one refresh for concurrent callers).
    /// Service account keys and metadata servers sign their own; impersonated and
    /// federated credentials (with impersonation) ask IAM Credentials `generateIdToken`.
    pub async fn id_token(&self, audience: &str) -> Result<Secret<String>, AuthError> {
        let inner = &*self.inner.shared;
        let cache = inner.id_tokens.get(&audience.to_owned());
        let clock = || inner.ctx.clock.now_secs();
        let t = cache
            .get(clock, || async {
                let now = inner.ctx.clock.now_secs();
                let token = self.fetch_id_token(audience).await?;
                // Unverified: the issuer is who we just asked; only the expiry matters here.
                let expires_at = jwt::claims_unverified(&token)
                    .and_then(|c| c.get("exp").and_then(serde_json::Value::as_i64))
                    .unwrap_or(now);
                Ok(IdToken { token, expires_at })
            })
            .await?;
        Ok(t.token)
    }

    async fn fetch_id_token(&self, audience: &str) -> Result<Secret<String>, AuthError> {
        let inner = &*self.inner.shared;
        match &inner.provider {
            Provider::Metadata(m) => m.id_token(&inner.ctx, audience).await,
            Provider::ServiceAccount(s) => s.id_token(&inner.ctx, audience).await,
            Provider::External(e) => e.id_token(&inner.ctx, audience).await,
            Provider::Impersonated { target, source } => {
                let source = Box::pin(source.access_token()).await?;
                target.id_token(&inner.ctx, &source.token, audience).await
            }
            Provider::AuthorizedUser(_) => Err(AuthError::OperationUnsupported {
                doing: "getting an id token",
                kind: CredentialKind::AuthorizedUser.to_string(),
                detail: "Google issues ID tokens for arbitrary audiences only to service accounts; use a service account key, \
                         or run where a metadata server is available"
                    .into(),
            }),
        }
    }
}
