//! Application Default Credentials in Google's order, keeping a record of every
//! source tried: GOOGLE_APPLICATION_CREDENTIALS, then gcloud's well-known file,
//! then the metadata server. A source that is not configured moves the chain on;
//! a configured source that is broken stops it (a bad file named by the user
//! must not be silently replaced by whatever comes next).

use super::authorized_user::AuthorizedUser;
use super::credentials::{GoogleCredentials, Provider, TokenCache};
use super::describe::CredentialFile;
use super::doc::FileError;
use super::external::External;
use super::file::{self, CredentialsFile};
use super::impersonated::Impersonated;
use super::metadata::{self, Detection, Metadata};
use super::service_account::ServiceAccount;
use super::source::{CredentialKind, Source, SourceKind};
use super::token::AccessToken;
use crate::context::{AuthContext, RetryPolicy};
use crate::error::{Absent, Attempt, AuthError, ConfigProblem, Outcome};
use keyway_core::{Secret, vars};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest wait for the metadata server to name its service account during detection.
const EMAIL_LOOKUP_DEADLINE: Duration = Duration::from_secs(2);

/// Finds Google credentials the way Google's client libraries do, and says
/// which source answered ([`GoogleCredentials::source`]) and why the earlier
/// ones did not ([`GoogleCredentials::attempts`]). `scopes` are requested for
/// service account and metadata-server tokens (user credentials carry the
/// scopes granted at login).
pub async fn google_default(
    ctx: &AuthContext,
    scopes: &[String],
) -> Result<GoogleCredentials, AuthError> {
    let mut attempts = Vec::new();

    // 1. The file the user named.
    let gac = vars::GOOGLE_APPLICATION_CREDENTIALS;
    match ctx.env.get(gac) {
        Some(p) if !p.is_empty() => {
            let path = PathBuf::from(p);
            let bytes = read(ctx, &path, SourceKind::EnvFile)?.ok_or_else(|| {
                invalid(
                    &path,
                    SourceKind::EnvFile,
                    None,
                    None,
                    ConfigProblem::Missing,
                )
            })?;
            attempts.push(Attempt {
                source: SourceKind::EnvFile,
                outcome: Outcome::Answered,
            });
            return from_file(ctx, path, SourceKind::EnvFile, &bytes, attempts, scopes).await;
        }
        Some(_) => attempts.push(not_configured(
            SourceKind::EnvFile,
            Absent::Empty { var: gac },
        )),
        None => attempts.push(not_configured(
            SourceKind::EnvFile,
            Absent::Unset { var: gac },
        )),
    }

    // 2. gcloud's file.
    match gcloud_file(ctx) {
        None => attempts.push(not_configured(SourceKind::GcloudFile, Absent::NoConfigDir)),
        Some(path) => match read(ctx, &path, SourceKind::GcloudFile)? {
            None => attempts.push(not_configured(
                SourceKind::GcloudFile,
                Absent::NoFile(path.clone()),
            )),
            Some(bytes) => {
                attempts.push(Attempt {
                    source: SourceKind::GcloudFile,
                    outcome: Outcome::Answered,
                });
                return from_file(ctx, path, SourceKind::GcloudFile, &bytes, attempts, scopes)
                    .await;
            }
        },
    }

    // 3. The metadata server.
    match metadata::detect(ctx).await? {
        Detection::Found { host } => {
            let m = Metadata::new(host.clone());
            // The email is provenance only: a server that answered the check but
            // stalls here must not hold up finding credentials for long.
            let policy = RetryPolicy {
                deadline: ctx.retry.deadline.min(EMAIL_LOOKUP_DEADLINE),
                ..ctx.retry.clone()
            };
            let email = match m.email(ctx, &policy).await {
                Ok(e) => Some(e),
                Err(e) => {
                    tracing::warn!(error = %e, "the metadata server answered but did not name its service account");
                    None
                }
            };
            attempts.push(Attempt {
                source: SourceKind::MetadataServer,
                outcome: Outcome::Answered,
            });
            let source = Source::MetadataServer { host, email };
            tracing::info!(source = %source, "using google credentials");
            let cache = TokenCache::new(ctx.refresh_ahead);
            Ok(GoogleCredentials::new(
                ctx,
                source,
                attempts,
                scopes,
                Provider::Metadata(m),
                cache,
            ))
        }
        Detection::NotConfigured(why) => {
            attempts.push(not_configured(SourceKind::MetadataServer, why));
            Err(nothing(attempts))
        }
        Detection::Failed(why) => {
            attempts.push(Attempt {
                source: SourceKind::MetadataServer,
                outcome: Outcome::Failed(Box::new(why)),
            });
            Err(nothing(attempts))
        }
    }
}

fn nothing(attempts: Vec<Attempt>) -> AuthError {
    tracing::debug!(?attempts, "no google credentials found");
    AuthError::NotConfigured { attempts }
}

fn not_configured(source: SourceKind, why: Absent) -> Attempt {
    tracing::debug!(%source, %why, "credentials source not configured");
    Attempt {
        source,
        outcome: Outcome::NotConfigured(why),
    }
}

fn invalid(
    path: &Path,
    origin: SourceKind,
    field: Option<&'static str>,
    line: Option<usize>,
    problem: ConfigProblem,
) -> AuthError {
    AuthError::InvalidConfig {
        path: path.to_owned(),
        origin,
        field,
        line,
        problem,
    }
}

/// `$CLOUDSDK_CONFIG/application_default_credentials.json`, else
/// `$HOME/.config/gcloud/application_default_credentials.json`.
fn gcloud_file(ctx: &AuthContext) -> Option<PathBuf> {
    let dir = match ctx.env.non_empty(vars::CLOUDSDK_CONFIG) {
        Some(d) => PathBuf::from(d),
        None => Path::new(ctx.env.non_empty(vars::HOME)?)
            .join(".config")
            .join("gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}

/// The file's bytes; `Ok(None)` when it does not exist, `Err` when it
/// exists but cannot be read.
fn read(
    ctx: &AuthContext,
    path: &Path,
    origin: SourceKind,
) -> Result<Option<Secret<Vec<u8>>>, AuthError> {
    match ctx.fs.read(path) {
        Ok(bytes) => Ok(Some(Secret::new(bytes))),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(invalid(
            path,
            origin,
            None,
            None,
            ConfigProblem::Unreadable(e.to_string()),
        )),
    }
}

/// The credentials file Application Default Credentials would read
/// (GOOGLE_APPLICATION_CREDENTIALS, else gcloud's well-known file), parsed
/// and described without its secrets and without any network call: what it
/// is, whose, and for Workload Identity Federation its pool, provider,
/// service account and subject-token source. `Ok(None)` when neither is
/// there (the metadata server is next); the same error as
/// [`google_default`] when the file is missing or invalid.
pub fn credential_file(ctx: &AuthContext) -> Result<Option<CredentialFile>, AuthError> {
    let (path, origin) = match ctx.env.non_empty(vars::GOOGLE_APPLICATION_CREDENTIALS) {
        Some(p) => (PathBuf::from(p), SourceKind::EnvFile),
        None => match gcloud_file(ctx) {
            Some(p) => (p, SourceKind::GcloudFile),
            None => return Ok(None),
        },
    };
    let Some(bytes) = read(ctx, &path, origin)? else {
        return match origin {
            SourceKind::EnvFile => Err(invalid(&path, origin, None, None, ConfigProblem::Missing)),
            _ => Ok(None),
        };
    };
    let parsed = parse(&ctx.env, &path, origin, &bytes)?;
    Ok(Some(CredentialFile::of(&path, origin, &parsed)))
}

/// The parsed file, or its error with the field's line (`env` supplies only
/// the endpoint overrides the parser consults).
pub(super) fn parse(
    env: &keyway_core::Env,
    path: &Path,
    origin: SourceKind,
    bytes: &Secret<Vec<u8>>,
) -> Result<CredentialsFile, AuthError> {
    file::parse(bytes, env).map_err(|e| match e {
        FileError::Invalid { field, problem } => {
            let line = match (&problem, field) {
                (ConfigProblem::NotJson(_), _) => file::json_error_line(bytes),
                (_, Some(f)) => file::line_of_key(bytes.expose(), f),
                _ => None,
            };
            invalid(path, origin, field, line, problem)
        }
        FileError::Unsupported { kind, detail } => AuthError::Unsupported {
            path: path.to_owned(),
            origin,
            kind,
            detail,
        },
    })
}

async fn from_file(
    ctx: &AuthContext,
    path: PathBuf,
    origin: SourceKind,
    bytes: &Secret<Vec<u8>>,
    attempts: Vec<Attempt>,
    scopes: &[String],
) -> Result<GoogleCredentials, AuthError> {
    let parsed = parse(&ctx.env, &path, origin, bytes)?;
    let described = CredentialFile::of(&path, origin, &parsed);
    let creds = match parsed {
        CredentialsFile::Impersonated(cfg, inner) => {
            // The source credentials need a cloud-platform token to call IAM Credentials.
            let source = build(
                ctx,
                &path,
                origin,
                *inner,
                Vec::new(),
                &[CLOUD_PLATFORM.to_owned()],
            )
            .await?;
            let target = Impersonated::new(cfg);
            let chain = target.chain(source.source());
            GoogleCredentials::new(
                ctx,
                source_of(
                    &path,
                    origin,
                    CredentialKind::ImpersonatedServiceAccount,
                    Some(chain),
                ),
                attempts,
                scopes,
                Provider::Impersonated {
                    target: Box::new(target),
                    source,
                },
                TokenCache::new(ctx.refresh_ahead),
            )
        }
        other => build(ctx, &path, origin, other, attempts, scopes).await?,
    };
    tracing::info!(source = %creds.source(), "using google credentials");
    Ok(creds.with_file(described))
}

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

fn source_of(
    path: &Path,
    origin: SourceKind,
    kind: CredentialKind,
    chain: Option<String>,
) -> Source {
    match origin {
        SourceKind::GcloudFile => Source::GcloudFile {
            path: path.to_owned(),
            kind,
            chain,
        },
        _ => Source::EnvFile {
            path: path.to_owned(),
            kind,
            chain,
        },
    }
}

/// Credentials of a non-impersonated type.
async fn build(
    ctx: &AuthContext,
    path: &Path,
    origin: SourceKind,
    parsed: CredentialsFile,
    attempts: Vec<Attempt>,
    scopes: &[String],
) -> Result<GoogleCredentials, AuthError> {
    let (source, provider, cache) = match parsed {
        CredentialsFile::AuthorizedUser(mut cfg) => {
            let now = ctx.clock.now_secs();
            let cache = match cfg.cached.take() {
                Some((token, expires_at)) if expires_at > now => TokenCache::seeded(
                    ctx.refresh_ahead,
                    AccessToken {
                        token,
                        expires_at,
                        scopes: None,
                    },
                    now,
                ),
                _ => TokenCache::new(ctx.refresh_ahead),
            };
            (
                source_of(path, origin, CredentialKind::AuthorizedUser, None),
                Provider::AuthorizedUser(AuthorizedUser::new(cfg)),
                cache,
            )
        }
        CredentialsFile::ServiceAccount(cfg) => (
            source_of(path, origin, CredentialKind::ServiceAccount, None),
            Provider::ServiceAccount(ServiceAccount::new(cfg)),
            TokenCache::new(ctx.refresh_ahead),
        ),
        CredentialsFile::ExternalAccount(cfg) => {
            let e = External::new(ctx, cfg).await?;
            (
                source_of(
                    path,
                    origin,
                    CredentialKind::ExternalAccount,
                    Some(e.chain()),
                ),
                Provider::External(Box::new(e)),
                TokenCache::new(ctx.refresh_ahead),
            )
        }
        CredentialsFile::Impersonated(..) => {
            return Err(invalid(
                path,
                origin,
                Some("source_credentials"),
                None,
                ConfigProblem::Invalid("impersonated_service_account credentials cannot be the source of other impersonated credentials".into()),
            ));
        }
    };
    Ok(GoogleCredentials::new(
        ctx, source, attempts, scopes, provider, cache,
    ))
}
