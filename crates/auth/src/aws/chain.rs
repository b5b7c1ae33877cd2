//! The chain's order: each source in turn, every attempt recorded; the first
//! configured source answers, and one that is configured but fails stops the
//! chain (as the SDKs do). Then the region: AWS_REGION, AWS_DEFAULT_REGION,
//! the profile's, IMDS placement.

use super::credentials::AwsCredentials;
use super::error::{AwsAbsent, AwsAttempt, AwsAuthError, AwsOutcome};
use super::options::{AwsChainOptions, ImdsEndpoint};
use super::source::{AwsLocation, AwsSource, AwsSourceKind};
use super::web_identity::{self, TokenSource, WebIdentity};
use super::{ecs, environment, imds, profile};
use crate::context::AuthContext;
use crate::http::redact_url;
use keyway_core::vars;

/// How to get fresh credentials from the source that answered.
#[derive(Debug, Clone)]
pub(super) enum Refetch {
    Static,
    Ecs { url: String },
    Imds { endpoint: String },
    WebIdentity(Box<WebIdentity>),
}

pub(super) struct Found {
    pub source: AwsSource,
    pub creds: AwsCredentials,
    pub fetch: Refetch,
    pub profile_region: Option<(String, &'static str)>,
}

fn record(attempts: &mut Vec<AwsAttempt>, source: AwsSourceKind, outcome: AwsOutcome) {
    tracing::debug!(%source, %outcome, "aws credential source");
    attempts.push(AwsAttempt { source, outcome });
}

/// Records a configured source's failure and returns it.
fn stop(attempts: &mut Vec<AwsAttempt>, kind: AwsSourceKind, e: AwsAuthError) -> AwsAuthError {
    record(attempts, kind, AwsOutcome::Failed(Box::new(e.clone())));
    e
}

fn not_configured(attempts: &mut Vec<AwsAttempt>, kind: AwsSourceKind, why: AwsAbsent) {
    record(attempts, kind, AwsOutcome::NotConfigured(why));
}

/// Runs each source in order; records every attempt.
pub(super) async fn run(
    ctx: &AuthContext,
    opts: &AwsChainOptions,
    attempts: &mut Vec<AwsAttempt>,
) -> Result<Found, AwsAuthError> {
    let env = &ctx.env;
    let (profile_name, _) = profile::name(ctx);
    let profile = if opts.consults(AwsSourceKind::Profile) {
        profile::read(ctx, &profile_name)
    } else {
        Ok(Default::default())
    };
    let profile_region = profile
        .as_ref()
        .ok()
        .and_then(|p| p.get("region").cloned())
        .map(|r| (r, "profile region"));
    // Where STS is for a web identity (of the profile or the environment).
    let sts_region = configured_region(ctx, &profile_region).map(|(r, _)| r);
    let answered = |attempts: &mut Vec<AwsAttempt>, source: AwsSource, creds, fetch| {
        record(attempts, source.kind, AwsOutcome::Answered);
        Found {
            source,
            creds,
            fetch,
            profile_region: profile_region.clone(),
        }
    };

    // 1. Environment.
    let kind = AwsSourceKind::Environment;
    if opts.consults(kind) {
        match environment::credentials(ctx) {
            Err(e) => return Err(stop(attempts, kind, e)),
            Ok(Some(creds)) => {
                let source = AwsSource {
                    kind,
                    detail: "AWS_ACCESS_KEY_ID".into(),
                    location: AwsLocation::Environment,
                };
                return Ok(answered(attempts, source, creds, Refetch::Static));
            }
            Ok(None) => not_configured(attempts, kind, AwsAbsent::NoAccessKeyVariable),
        }
    }

    // 2. Shared files.
    let kind = AwsSourceKind::Profile;
    if opts.consults(kind) {
        let found = profile
            .and_then(|p| profile::resolve(ctx, &p))
            .map_err(|e| stop(attempts, kind, e))?;
        match found {
            Err(absent) => not_configured(attempts, kind, absent),
            Ok(profile::Found::Static(creds)) => {
                let source = AwsSource {
                    kind,
                    detail: format!("profile {profile_name}"),
                    location: AwsLocation::Profile {
                        profile: profile_name.clone(),
                    },
                };
                return Ok(answered(attempts, source, creds, Refetch::Static));
            }
            Ok(profile::Found::WebIdentity {
                token_file,
                role_arn,
                session_name,
            }) => {
                let detail = format!(
                    "profile {profile_name}: web_identity_token_file {}, role {role_arn}",
                    token_file.display()
                );
                let token = TokenSource::File(token_file);
                let wi = WebIdentity::new(ctx, kind, token, role_arn, session_name, sts_region);
                let (source, creds, fetch) = assume(ctx, wi, Some(profile_name.clone()), detail)
                    .await
                    .map_err(|e| stop(attempts, kind, e))?;
                return Ok(answered(attempts, source, creds, fetch));
            }
        }
    }

    // 3. Web identity: keyway's Google → AWS source when asked for, else the SDKs' token file.
    let kind = AwsSourceKind::WebIdentity;
    if opts.consults(kind) {
        match web_identity::from_env(ctx)
            .await
            .map_err(|e| stop(attempts, kind, e))?
        {
            Some((token, role_arn, detail)) => {
                let session = env
                    .non_empty(vars::AWS_ROLE_SESSION_NAME)
                    .map(str::to_owned);
                let wi = WebIdentity::new(ctx, kind, token, role_arn, session, sts_region);
                let (source, creds, fetch) = assume(ctx, wi, None, detail)
                    .await
                    .map_err(|e| stop(attempts, kind, e))?;
                return Ok(answered(attempts, source, creds, fetch));
            }
            None => not_configured(attempts, kind, AwsAbsent::NoWebIdentity),
        }
    }

    // 4. ECS container endpoint.
    let kind = AwsSourceKind::EcsContainer;
    if opts.consults(kind) {
        match ecs::url(ctx).map_err(|e| stop(attempts, kind, e))? {
            Some(url) => {
                let creds = ecs::credentials(ctx, &url)
                    .await
                    .map_err(|e| stop(attempts, kind, e))?;
                let shown = redact_url(&url);
                let source = AwsSource {
                    kind,
                    detail: shown.clone(),
                    location: AwsLocation::EcsContainer { url: shown },
                };
                return Ok(answered(attempts, source, creds, Refetch::Ecs { url }));
            }
            None => not_configured(attempts, kind, AwsAbsent::NoContainerEndpoint),
        }
    }

    // 5. IMDSv2.
    let kind = AwsSourceKind::Imds;
    let nothing = |attempts: &mut Vec<AwsAttempt>| AwsAuthError::NotConfigured {
        attempts: attempts.clone(),
    };
    if !opts.consults(kind) {
        return Err(nothing(attempts));
    }
    if env
        .non_empty(vars::AWS_EC2_METADATA_DISABLED)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        not_configured(attempts, kind, AwsAbsent::ImdsDisabled);
        return Err(nothing(attempts));
    }
    let endpoint = match (
        &opts.imds,
        env.non_empty(vars::AWS_EC2_METADATA_SERVICE_ENDPOINT),
    ) {
        (ImdsEndpoint::At(e), _) => e.trim_end_matches('/').to_owned(),
        (ImdsEndpoint::Unavailable(why), _) => {
            not_configured(attempts, kind, AwsAbsent::ImdsUnavailable(why.clone()));
            return Err(nothing(attempts));
        }
        (ImdsEndpoint::FromEnvironment, Some(e)) => e.trim_end_matches('/').to_owned(),
        (ImdsEndpoint::FromEnvironment, None) if opts.probe_default_imds => {
            imds::DEFAULT.to_owned()
        }
        (ImdsEndpoint::FromEnvironment, None) => {
            not_configured(attempts, kind, AwsAbsent::ImdsNotProbed);
            return Err(nothing(attempts));
        }
    };
    let policy = imds::policy(ctx, opts, &endpoint);
    match imds::credentials(ctx, &policy, &endpoint).await {
        Ok((role, creds)) => {
            let shown = redact_url(&endpoint);
            let source = AwsSource {
                kind,
                detail: format!("{shown}, role {role}"),
                location: AwsLocation::Imds {
                    endpoint: shown,
                    role,
                },
            };
            Ok(answered(
                attempts,
                source,
                creds,
                Refetch::Imds { endpoint },
            ))
        }
        // At the default address, no answer means "not on EC2".
        Err(e) if endpoint == imds::DEFAULT => {
            not_configured(attempts, kind, AwsAbsent::NoImds(Box::new(e)));
            Err(nothing(attempts))
        }
        Err(e) => Err(stop(attempts, kind, e)),
    }
}

/// Assumes a web identity's role; `profile` and `detail` say where the
/// identity was configured (a profile, or the environment).
async fn assume(
    ctx: &AuthContext,
    wi: WebIdentity,
    profile: Option<String>,
    detail: String,
) -> Result<(AwsSource, AwsCredentials, Refetch), AwsAuthError> {
    let creds = web_identity::assume_role(ctx, &wi).await?;
    let source = AwsSource {
        kind: wi.kind,
        detail,
        location: AwsLocation::WebIdentity {
            profile,
            role_arn: wi.role_arn.clone(),
            token: wi.token.describe(),
        },
    };
    Ok((source, creds, Refetch::WebIdentity(Box::new(wi))))
}

/// AWS_REGION, AWS_DEFAULT_REGION, then the profile's region: the region and
/// where it came from.
fn configured_region<'a>(
    ctx: &'a AuthContext,
    profile: &'a Option<(String, &'static str)>,
) -> Option<(&'a str, &'static str)> {
    [vars::AWS_REGION, vars::AWS_DEFAULT_REGION]
        .into_iter()
        .find_map(|var| ctx.env.non_empty(var).map(|r| (r, var)))
        .or(profile.as_ref().map(|(r, from)| (r.as_str(), *from)))
}

/// Fresh credentials from the source that answered (static ones never need it).
pub(super) async fn refetch(
    ctx: &AuthContext,
    opts: &AwsChainOptions,
    fetch: &Refetch,
) -> Result<AwsCredentials, AwsAuthError> {
    match fetch {
        // Static credentials carry no expiry, so they are never asked to refresh.
        Refetch::Static => Err(AwsAuthError::Unsupported {
            kind: AwsSourceKind::Environment,
            detail: "refreshing static credentials".into(),
        }),
        Refetch::WebIdentity(wi) => web_identity::assume_role(ctx, wi).await,
        Refetch::Ecs { url } => ecs::credentials(ctx, url).await,
        Refetch::Imds { endpoint } => {
            let policy = imds::policy(ctx, opts, endpoint);
            imds::credentials(ctx, &policy, endpoint)
                .await
                .map(|(_, c)| c)
        }
    }
}

/// AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then IMDS placement
/// (asked only when IMDS is where the credentials came from).
pub(super) async fn region(
    ctx: &AuthContext,
    opts: &AwsChainOptions,
    profile: Option<(String, &'static str)>,
    fetch: &Refetch,
) -> Option<(String, &'static str)> {
    if let Some((r, from)) = configured_region(ctx, &profile) {
        return Some((r.to_owned(), from));
    }
    if let Refetch::Imds { endpoint } = fetch {
        let policy = imds::policy(ctx, opts, endpoint);
        let r = imds::region(ctx, &policy, endpoint).await.ok()?;
        return Some((r, "IMDS placement/region"));
    }
    None
}
