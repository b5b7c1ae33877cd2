//! Google credentials: what Application Default Credentials found, where it
//! found it, and what it tried first. [`GoogleCredentials`] is the handle the
//! rest of keyway uses to get access tokens, ID tokens and "who am I"; it hides
//! which flow runs underneath (refresh token, JWT bearer, metadata server) but
//! never hides where the credentials came from ([`Source`], [`Attempt`]).

mod adc;
mod authorized_user;
mod aws_source;
mod check;
mod describe;
mod executable;
mod external;
mod file;
mod impersonated;
mod jwt;
mod metadata;
mod service_account;
mod sts;

pub use adc::{credential_file, google_default};
pub use check::check_credentials_file;
pub use describe::{CredentialFile, Federation, SubjectSourceKind, WorkloadProvider};
pub use sts::Service as GoogleService;

use crate::cache::{Cache, CacheStatus, Expiring, Keyed};
use crate::context::AuthContext;
use crate::error::AuthError;
use crate::http::{self, Reply};
use keyway_core::Secret;
use keyway_wire::google::oauth2::TokenResponse;
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The three places Application Default Credentials look, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceKind {
    /// The file named by GOOGLE_APPLICATION_CREDENTIALS.
    EnvFile,
    /// gcloud's `application_default_credentials.json`.
    GcloudFile,
    /// The GCE metadata server.
    MetadataServer,
}

impl SourceKind {
    /// A stable machine name: `env_file`, `gcloud_file`, `metadata_server`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::EnvFile => "env_file",
            SourceKind::GcloudFile => "gcloud_file",
            SourceKind::MetadataServer => "metadata_server",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::EnvFile => "GOOGLE_APPLICATION_CREDENTIALS",
            SourceKind::GcloudFile => "gcloud's well-known file",
            SourceKind::MetadataServer => "metadata server",
        })
    }
}

/// What happened when one source was tried.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The source does not apply here (variable unset, no file, no metadata server).
    NotConfigured(Absent),
    /// The source was configured but could not be used.
    Failed(Box<AuthError>),
    /// This source provided the credentials.
    Answered,
}

impl Outcome {
    /// The failure, for [`Outcome::Failed`].
    pub fn failure(&self) -> Option<&AuthError> {
        match self {
            Outcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::NotConfigured(why) => write!(f, "not configured: {why}"),
            Outcome::Failed(why) => write!(f, "failed: {why}"),
            Outcome::Answered => f.write_str("answered"),
        }
    }
}

/// Why a source does not apply here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Absent {
    /// The variable is not set.
    Unset { var: &'static str },
    /// The variable is set but empty.
    Empty { var: &'static str },
    /// Neither CLOUDSDK_CONFIG nor HOME is set.
    NoConfigDir,
    /// No file at the path.
    NoFile(PathBuf),
    /// NO_GCE_CHECK is set.
    NoGceCheck,
    /// Nothing answered the probe at `host` within `waited`.
    NoMetadataServer {
        host: String,
        /// GCE_METADATA_IP, when it named the address.
        var: Option<&'static str>,
        waited: std::time::Duration,
    },
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Absent::Unset { var } => write!(f, "{var} is not set"),
            Absent::Empty { var } => write!(f, "{var} is set but empty"),
            Absent::NoConfigDir => write!(
                f,
                "neither {} nor {} is set, so there is no gcloud configuration directory",
                keyway_core::vars::CLOUDSDK_CONFIG,
                keyway_core::vars::HOME
            ),
            Absent::NoFile(p) => write!(f, "no file at {}", p.display()),
            Absent::NoGceCheck => write!(
                f,
                "{} is set, so no metadata server was looked for",
                keyway_core::vars::NO_GCE_CHECK
            ),
            Absent::NoMetadataServer { host, var, waited } => {
                write!(f, "no metadata server answered at {host}")?;
                if let Some(v) = var {
                    write!(f, " (from {v})")?;
                }
                write!(f, " within {waited:?} (not on Google Cloud?)")
            }
        }
    }
}

/// One source tried, and its outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub source: SourceKind,
    pub outcome: Outcome,
}

/// The type of a credentials file keyway can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    AuthorizedUser,
    ServiceAccount,
    /// Workload Identity Federation (AIP-4117).
    ExternalAccount,
    ImpersonatedServiceAccount,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::AuthorizedUser => "authorized_user",
            CredentialKind::ServiceAccount => "service_account",
            CredentialKind::ExternalAccount => "external_account",
            CredentialKind::ImpersonatedServiceAccount => "impersonated_service_account",
        })
    }
}

/// Exactly where the credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The file named by GOOGLE_APPLICATION_CREDENTIALS. `chain` says how federated
    /// or impersonated credentials get their token (see [`Source::chain`]).
    EnvFile {
        path: PathBuf,
        kind: CredentialKind,
        chain: Option<String>,
    },
    /// gcloud's well-known ADC file.
    GcloudFile {
        path: PathBuf,
        kind: CredentialKind,
        chain: Option<String>,
    },
    /// A metadata server at `host` (host[:port]), serving the default service account.
    MetadataServer { host: String, email: Option<String> },
}

impl Source {
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::EnvFile { .. } => SourceKind::EnvFile,
            Source::GcloudFile { .. } => SourceKind::GcloudFile,
            Source::MetadataServer { .. } => SourceKind::MetadataServer,
        }
    }

    /// The credentials file's type, for file sources.
    pub fn credential_kind(&self) -> Option<CredentialKind> {
        match self {
            Source::EnvFile { kind, .. } | Source::GcloudFile { kind, .. } => Some(*kind),
            Source::MetadataServer { .. } => None,
        }
    }

    /// For `external_account` and `impersonated_service_account` files, where the
    /// token comes from, e.g. "aws1 via ECS container credentials endpoint (…),
    /// region us-east-2 (AWS_REGION) → STS https://sts.googleapis.com/v1/token →
    /// impersonating sa@p.iam.gserviceaccount.com".
    pub fn chain(&self) -> Option<&str> {
        match self {
            Source::EnvFile { chain, .. } | Source::GcloudFile { chain, .. } => chain.as_deref(),
            Source::MetadataServer { .. } => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::EnvFile { path, kind, chain } => {
                write!(
                    f,
                    "{kind} credentials from {} (GOOGLE_APPLICATION_CREDENTIALS)",
                    path.display()
                )?;
                Chain(chain.as_deref()).fmt(f)
            }
            Source::GcloudFile { path, kind, chain } => {
                write!(
                    f,
                    "{kind} credentials from {} (gcloud's well-known file)",
                    path.display()
                )?;
                Chain(chain.as_deref()).fmt(f)
            }
            Source::MetadataServer {
                host,
                email: Some(email),
            } => {
                write!(f, "metadata server at {host}, service account {email}")
            }
            Source::MetadataServer { host, email: None } => {
                write!(f, "metadata server at {host}, default service account")
            }
        }
    }
}

struct Chain<'a>(Option<&'a str>);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, ": {c}"),
            None => Ok(()),
        }
    }
}

/// An OAuth2 access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// The scopes the token carries, when the issuer says (or, for a service
    /// account key, the scopes it was minted for).
    pub scopes: Option<Vec<String>>,
}

/// Who the credentials are, as far as can be told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub email: Option<String>,
    pub scopes: Option<Vec<String>>,
    /// Expiry of the current access token, unix seconds.
    pub expires_at: Option<i64>,
}

impl Expiring for AccessToken {
    fn expires_at(&self) -> Option<i64> {
        Some(self.expires_at)
    }
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

enum Provider {
    AuthorizedUser(authorized_user::AuthorizedUser),
    ServiceAccount(service_account::ServiceAccount),
    Metadata(metadata::Metadata),
    External(Box<external::External>),
    Impersonated(Box<impersonated::Impersonated>),
}

/// A token endpoint's answer.
pub(crate) struct Minted {
    pub token: AccessToken,
    /// The `email` claim of an ID token sent along, if any.
    pub email: Option<String>,
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
    fn new(
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
            Provider::Impersonated(i) => i.quota_project_id(),
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
                    Provider::Impersonated(i) => i.fetch_token(&inner.ctx, scopes).await?,
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
            Provider::Impersonated(i) => (Some(i.email().to_owned()), token.scopes.clone()),
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
            Provider::Impersonated(i) => i.id_token(&inner.ctx, audience).await,
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

/// Reads a token endpoint's (or metadata server's) token response.
/// `default_scopes` fills in when the response names none.
pub(crate) fn token_from_reply(
    reply: &Reply,
    doing: &'static str,
    url: &str,
    now: i64,
    default_scopes: Option<&[String]>,
) -> Result<Minted, AuthError> {
    let TokenResponse {
        access_token,
        expires_in,
        token_type: _,
        scope,
        id_token,
        refresh_token,
    } = http::parse_json(
        reply,
        doing,
        url,
        "a token response with access_token and expires_in",
    )?;
    let token = Secret::new(access_token);
    drop(refresh_token.map(Secret::new));
    let id_token = id_token.map(Secret::new);
    let invalid = |reason: &str| AuthError::InvalidResponse {
        doing,
        url: http::redact_url(url),
        reason: reason.into(),
    };
    if token.expose().is_empty() {
        return Err(invalid("the access_token is empty"));
    }
    if expires_in <= 0 {
        return Err(invalid(&format!(
            "expires_in is {expires_in}; a token must live a positive number of seconds"
        )));
    }
    let scopes = match scope {
        Some(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        None => default_scopes
            .filter(|s| !s.is_empty())
            .map(<[String]>::to_vec),
    };
    let email = id_token
        .as_ref()
        .and_then(jwt::claims_unverified)
        .and_then(|c| c.get("email").and_then(|e| e.as_str()).map(str::to_owned));
    Ok(Minted {
        token: AccessToken {
            token,
            expires_at: now.saturating_add(expires_in),
            scopes,
        },
        email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read_well() {
        let s = Source::GcloudFile {
            path: "/x/application_default_credentials.json".into(),
            kind: CredentialKind::AuthorizedUser,
            chain: None,
        };
        assert_eq!(
            s.to_string(),
            "authorized_user credentials from /x/application_default_credentials.json (gcloud's well-known file)"
        );
        let s = Source::MetadataServer {
            host: "127.0.0.1:1234".into(),
            email: Some("x@y".into()),
        };
        assert_eq!(
            s.to_string(),
            "metadata server at 127.0.0.1:1234, service account x@y"
        );
        assert_eq!(s.kind().as_str(), "metadata_server");
        assert_eq!(serde_json::to_value(s.kind()).unwrap(), "metadata_server");
    }

    #[test]
    fn access_token_debug_is_redacted() {
        let t = AccessToken {
            token: Secret::new("ya29.sekrit".into()),
            expires_at: 1,
            scopes: None,
        };
        assert!(!format!("{t:?}").contains("sekrit"));
    }
}
