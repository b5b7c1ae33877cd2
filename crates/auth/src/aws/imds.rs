//! EC2 instance metadata, IMDSv2 only: a session token from `PUT
//! /latest/api/token`, then the instance profile's role name and its
//! credentials under `/latest/meta-data/iam/security-credentials/`, and the
//! region from `placement/region` (or an availability zone URL, for aws1).

use super::call::{self, Attempt, AwsCall, sensitive};
use super::credentials::{AwsCredentials, expiry};
use super::error::{AwsAuthError, AwsService};
use super::options::AwsChainOptions;
use super::source::AwsSourceKind;
use crate::AuthContext;
use crate::context::RetryPolicy;
use crate::http::{self, Cap, redact_url};
use keyway_core::Secret;
use keyway_wire::aws::ImdsCredentials;

const KIND: AwsSourceKind = AwsSourceKind::Imds;
pub(super) const DEFAULT: &str = "http://169.254.169.254";

/// The retry policy for IMDS: each request limited to the chain's IMDS
/// timeout, and one quick try when probing the default address.
pub(super) fn policy(ctx: &AuthContext, opts: &AwsChainOptions, endpoint: &str) -> RetryPolicy {
    let mut policy = ctx.retry.clone();
    policy.attempt_timeout = opts.imds_timeout;
    if endpoint == DEFAULT {
        policy.max_attempts = 1;
    }
    policy
}

fn imds_call<'a>(doing: &'static str, url: &'a str, cap: Cap) -> AwsCall<'a> {
    AwsCall {
        source: KIND,
        service: AwsService::Imds,
        doing,
        url,
        cap,
        role_arn: None,
        presented: None,
    }
}

/// A session token (`ttl` seconds).
async fn token(
    ctx: &AuthContext,
    policy: &RetryPolicy,
    endpoint: &str,
    ttl: &'static str,
) -> Result<Secret<String>, AwsAuthError> {
    let url = format!("{endpoint}/latest/api/token");
    let reply = call::send(
        policy,
        imds_call(
            "getting an IMDSv2 session token",
            &url,
            http::METADATA_VALUE,
        ),
        || {
            Ok(Attempt {
                request: ctx
                    .http
                    .put(url.as_str())
                    .header("X-aws-ec2-metadata-token-ttl-seconds", ttl),
                signed_at: None,
            })
        },
    )
    .await?;
    Ok(Secret::new(
        String::from_utf8_lossy(reply.body.expose())
            .trim()
            .to_owned(),
    ))
}

/// `GET url` with the session token; `cap`: the largest answer read.
async fn get(
    ctx: &AuthContext,
    policy: &RetryPolicy,
    doing: &'static str,
    url: &str,
    cap: Cap,
    token: &Secret<String>,
) -> Result<Secret<String>, AwsAuthError> {
    let value = sensitive(token.expose()).ok_or_else(|| AwsAuthError::InvalidResponse {
        kind: KIND,
        url: redact_url(url),
        reason: "the IMDS session token is not a valid header value".into(),
    })?;
    let reply = call::send(policy, imds_call(doing, url, cap), || {
        Ok(Attempt {
            request: ctx
                .http
                .get(url)
                .header("X-aws-ec2-metadata-token", value.clone()),
            signed_at: None,
        })
    })
    .await?;
    Ok(Secret::new(
        String::from_utf8_lossy(reply.body.expose()).into_owned(),
    ))
}

/// The instance profile's role name and fresh credentials.
pub(super) async fn credentials(
    ctx: &AuthContext,
    policy: &RetryPolicy,
    endpoint: &str,
) -> Result<(String, AwsCredentials), AwsAuthError> {
    let token = token(ctx, policy, endpoint, "21600").await?;
    let base = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
    let role = get(
        ctx,
        policy,
        "reading the instance profile's role",
        &base,
        http::METADATA_VALUE,
        &token,
    )
    .await?;
    let role = role.expose().lines().next().unwrap_or("").trim().to_owned();
    if role.is_empty() {
        return Err(AwsAuthError::NoInstanceProfile);
    }
    let url = format!("{base}{role}");
    let doc = get(
        ctx,
        policy,
        "reading the instance profile's credentials",
        &url,
        http::TOKEN,
        &token,
    )
    .await?;
    let invalid = |reason: String| AwsAuthError::InvalidResponse {
        kind: KIND,
        url: redact_url(&url),
        reason,
    };
    let mut c: ImdsCredentials = serde_json::from_str(doc.expose())
        .map_err(|_| invalid("it is not a credentials document".into()))?;
    if c.code != "Success" {
        return Err(invalid(format!("IMDS answered Code={}", c.code)));
    }
    let creds = AwsCredentials {
        access_key_id: c.access_key_id.clone(),
        secret_access_key: Secret::new(std::mem::take(&mut c.secret_access_key)),
        session_token: Some(Secret::new(std::mem::take(&mut c.token))),
        expires_at: Some(expiry(KIND, &c.expiration)?),
    };
    Ok((role, creds))
}

/// `placement/region`.
pub(super) async fn region(
    ctx: &AuthContext,
    policy: &RetryPolicy,
    endpoint: &str,
) -> Result<String, AwsAuthError> {
    let token = token(ctx, policy, endpoint, "21600").await?;
    let r = get(
        ctx,
        policy,
        "reading the region from instance metadata",
        &format!("{endpoint}/latest/meta-data/placement/region"),
        http::METADATA_VALUE,
        &token,
    )
    .await?;
    Ok(r.expose().trim().to_owned())
}

/// The region of an availability-zone URL (aws1's `region_url`, e.g.
/// `…/placement/availability-zone` answering `us-east-2b`), asked of the IMDS
/// at `endpoint` (the URL's path on that endpoint).
pub(crate) async fn region_of_zone_url(
    ctx: &AuthContext,
    endpoint: &str,
    region_url: &str,
) -> Result<String, AwsAuthError> {
    let path = url::Url::parse(region_url)
        .map(|u| u.path().to_owned())
        .map_err(|_| AwsAuthError::InvalidResponse {
            kind: KIND,
            url: redact_url(region_url),
            reason: "region_url is not a URL".into(),
        })?;
    let url = format!("{endpoint}{path}");
    let token = token(ctx, &ctx.retry, endpoint, "300").await?;
    let zone = get(
        ctx,
        &ctx.retry,
        "reading the AWS region from instance metadata",
        &url,
        http::METADATA_VALUE,
        &token,
    )
    .await?;
    let zone = zone.expose().trim().to_owned();
    let mut region = zone.clone();
    region.pop();
    if region.is_empty() || !zone.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(AwsAuthError::InvalidResponse {
            kind: KIND,
            url: redact_url(&url),
            reason: format!("answered {zone:?}, not an availability zone"),
        });
    }
    Ok(region)
}
