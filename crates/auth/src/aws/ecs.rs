//! The ECS container credentials endpoint: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`
//! (on the ECS agent at 169.254.170.2) or `AWS_CONTAINER_CREDENTIALS_FULL_URI`
//! (https anywhere; plain http only to loopback or the ECS/EKS link-local
//! agents, as in the SDKs), with `AWS_CONTAINER_AUTHORIZATION_TOKEN[_FILE]`.
//! ECS sets these only in tasks that have a task role: the execution role
//! never reaches the container.

use super::call::{self, Attempt, AwsCall, sensitive};
use super::credentials::{AwsCredentials, expiry};
use super::error::{AwsAuthError, AwsConfigProblem, AwsService};
use super::source::AwsSourceKind;
use crate::AuthContext;
use crate::http::{self, redact_url};
use keyway_core::Secret;
use keyway_core::vars;
use keyway_wire::aws::ContainerCredentials;
use std::net::IpAddr;
use zeroize::Zeroize;

const KIND: AwsSourceKind = AwsSourceKind::EcsContainer;
const ECS_HOST: &str = "http://169.254.170.2";

fn bad(var: &'static str, reason: String) -> AwsAuthError {
    AwsAuthError::config(KIND, AwsConfigProblem::BadVariable { var, reason })
}

/// The container credentials URL, if one is configured and allowed.
pub(super) fn url(ctx: &AuthContext) -> Result<Option<String>, AwsAuthError> {
    const RELATIVE: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
    const FULL: &str = "AWS_CONTAINER_CREDENTIALS_FULL_URI";
    if let Some(rel) = ctx.env.non_empty(RELATIVE) {
        if !rel.starts_with('/') {
            return Err(bad(RELATIVE, format!("{RELATIVE} must start with '/'")));
        }
        return Ok(Some(format!("{ECS_HOST}{rel}")));
    }
    let Some(full) = ctx.env.non_empty(FULL) else {
        return Ok(None);
    };
    let u = url::Url::parse(full).map_err(|e| bad(FULL, format!("{FULL} is not a URL ({e})")))?;
    let allowed = match (u.scheme(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => {
            ip.is_loopback()
                || ip == std::net::Ipv4Addr::new(169, 254, 170, 2)
                || ip == std::net::Ipv4Addr::new(169, 254, 170, 23)
        }
        ("http", Some(url::Host::Ipv6(ip))) => IpAddr::V6(ip).is_loopback(),
        ("http", Some(url::Host::Domain(d))) => d == "localhost",
        _ => false,
    };
    if !allowed {
        return Err(bad(
            FULL,
            format!(
                "{FULL} {} is refused: plain http is allowed only to loopback or the ECS/EKS link-local agents, as in the AWS SDKs",
                redact_url(full)
            ),
        ));
    }
    Ok(Some(full.to_owned()))
}

fn token(ctx: &AuthContext) -> Result<Option<Secret<String>>, AwsAuthError> {
    if let Some(path) = ctx
        .env
        .non_empty(vars::AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE)
    {
        let mut b = ctx.fs.read(std::path::Path::new(path)).map_err(|e| {
            AwsAuthError::config(
                KIND,
                AwsConfigProblem::Unreadable {
                    what: "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                    path: path.into(),
                    reason: e.to_string(),
                },
            )
        })?;
        let t = String::from_utf8_lossy(&b).trim().to_owned();
        b.zeroize();
        return Ok(Some(Secret::new(t)));
    }
    Ok(ctx
        .env
        .non_empty(vars::AWS_CONTAINER_AUTHORIZATION_TOKEN)
        .map(|t| Secret::new(t.to_owned())))
}

/// Fresh credentials from the endpoint.
pub(super) async fn credentials(
    ctx: &AuthContext,
    url: &str,
) -> Result<AwsCredentials, AwsAuthError> {
    let token = token(ctx)?;
    let reply = call::send(
        &ctx.retry,
        AwsCall {
            source: KIND,
            service: AwsService::EcsContainer,
            doing: "getting aws container credentials",
            url,
            cap: http::TOKEN,
            role_arn: None,
            presented: None,
        },
        || {
            let r = ctx.http.get(url).header("Accept", "application/json");
            let request = match token.as_ref().and_then(|t| sensitive(t.expose())) {
                Some(v) => r.header("Authorization", v),
                None => r,
            };
            Ok(Attempt {
                request,
                signed_at: None,
            })
        },
    )
    .await?;
    let mut c: ContainerCredentials =
        serde_json::from_slice(reply.body.expose()).map_err(|_| AwsAuthError::InvalidResponse {
            kind: KIND,
            url: redact_url(url),
            reason: "it is not a credentials document".into(),
        })?;
    Ok(AwsCredentials {
        access_key_id: c.access_key_id.clone(),
        secret_access_key: Secret::new(std::mem::take(&mut c.secret_access_key)),
        session_token: Some(Secret::new(std::mem::take(&mut c.token))),
        expires_at: Some(expiry(KIND, &c.expiration)?),
    })
}
