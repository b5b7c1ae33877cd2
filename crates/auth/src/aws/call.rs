//! One way every AWS source calls its endpoint (the ECS agent, IMDS, STS;
//! and where STS is, for the two STS calls): through keyway-http (retries inside the policy's deadline, the answer
//! capped), with a non-2xx answer read by keyway-http's AWS error reader into
//! a typed [`Rejection`] that keeps AWS's `Date` beside the time keyway signed
//! at. Transient refusals (5xx, 429, throttling codes) are retried; the rest
//! return at once.

use super::error::{AwsAuthError, AwsService, Rejection};
use super::source::AwsSourceKind;
use crate::context::{AuthContext, RetryPolicy};
use crate::http::{Call, Cap, Reply, redact_url};
use keyway_core::vars;
use keyway_http::aws::{AwsError, AwsErrorCode};

/// STS's base URL (AssumeRoleWithWebIdentity, GetCallerIdentity) as the SDKs
/// find it: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL, the regional endpoint,
/// else the global one. No trailing '/'.
pub(super) fn sts_endpoint(ctx: &AuthContext, region: Option<&str>) -> String {
    if let Some(u) = ctx
        .env
        .non_empty(vars::AWS_ENDPOINT_URL_STS)
        .or(ctx.env.non_empty(vars::AWS_ENDPOINT_URL))
    {
        return u.trim_end_matches('/').to_owned();
    }
    match region {
        Some(r) => format!("https://sts.{r}.amazonaws.com"),
        None => "https://sts.amazonaws.com".to_owned(),
    }
}

/// One call to an AWS endpoint, for its errors.
#[derive(Clone, Copy)]
pub(super) struct AwsCall<'a> {
    /// Where the credentials in play come from (the source being tried).
    pub source: AwsSourceKind,
    pub service: AwsService,
    pub doing: &'static str,
    pub url: &'a str,
    pub cap: Cap,
    /// For AssumeRoleWithWebIdentity: the role asked for.
    pub role_arn: Option<&'a str>,
    /// For AssumeRoleWithWebIdentity: the token's identifying claims.
    pub presented: Option<&'a str>,
}

/// A request of one attempt, and the time it was signed at (signed requests).
pub(super) struct Attempt {
    pub request: reqwest::RequestBuilder,
    pub signed_at: Option<i64>,
}

/// Sends the request `build` makes (once per attempt) until a 2xx reply.
pub(super) async fn send(
    policy: &RetryPolicy,
    call: AwsCall<'_>,
    build: impl Fn() -> Result<Attempt, AwsAuthError>,
) -> Result<Reply, AwsAuthError> {
    let http_call = Call {
        doing: call.doing,
        url: call.url,
        cap: call.cap,
    };
    keyway_http::with_retries(policy, call.doing, call.url, |_, timeout| {
        let attempt = build();
        async move {
            let Attempt { request, signed_at } = attempt?;
            let reply = keyway_http::exchange(request, timeout, &http_call)
                .await
                .map_err(|error| AwsAuthError::Transport {
                    kind: call.source,
                    error,
                })?;
            if (200..300).contains(&reply.status) {
                return Ok(reply);
            }
            Err(rejected(&call, &reply, signed_at))
        }
    })
    .await
}

/// The typed refusal in a non-2xx reply.
fn rejected(call: &AwsCall<'_>, reply: &Reply, signed_at: Option<i64>) -> AwsAuthError {
    let AwsError { code, message } = error_of(reply);
    AwsAuthError::Rejected(Box::new(Rejection {
        source: call.source,
        service: call.service,
        url: redact_url(call.url),
        status: reply.status,
        code,
        message,
        role_arn: call.role_arn.map(str::to_owned),
        presented: call.presented.filter(|p| !p.is_empty()).map(str::to_owned),
        signed_at,
        server_time: reply.date(),
    }))
}

/// An AWS error answer's code and message; a body that is neither AWS's XML
/// nor its JSON is summed up by its first line (and has no code).
fn error_of(reply: &Reply) -> AwsError {
    keyway_http::aws::error_of(reply.body.expose(), reply.header("x-amzn-errortype"))
        .unwrap_or_else(|| AwsError {
            code: AwsErrorCode::Other(String::new()),
            message: String::from_utf8_lossy(reply.body.expose())
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect(),
        })
}

/// A header value marked sensitive (kept out of HTTP-level debug output).
pub(super) fn sensitive(v: &str) -> Option<reqwest::header::HeaderValue> {
    let mut h = reqwest::header::HeaderValue::from_str(v).ok()?;
    h.set_sensitive(true);
    Some(h)
}
