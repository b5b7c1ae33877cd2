//! STS `GetCallerIdentity`, the one call that says who a set of credentials is
//! (account, ARN, user id). It needs no permission, so it tells "AWS does
//! not accept these credentials" (expired, unknown key, a clock far off)
//! apart from "these credentials may not do that".

use super::call::{self, Attempt, AwsCall, sts_endpoint};
use super::error::{AwsAuthError, AwsService};
use super::provider::AwsCredentialsProvider;
use super::sign;
use crate::http::{Cap, redact_url};
use aws_sigv4::http_request::SigningSettings;
use std::time::{Duration, UNIX_EPOCH};

/// The largest GetCallerIdentity answer read (an ARN, an account, a user id).
const CALLER_IDENTITY_CAP: Cap = Cap::kib(64);

/// Who a set of AWS credentials is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallerIdentity {
    pub account: String,
    /// `arn:aws:iam::A:user/U`, `arn:aws:sts::A:assumed-role/ROLE/SESSION`, ….
    pub arn: String,
    pub user_id: String,
}

impl CallerIdentity {
    /// For a role session (`…:assumed-role/ROLE/SESSION`): the role's name.
    pub fn role_name(&self) -> Option<&str> {
        self.arn
            .split_once(":assumed-role/")
            .and_then(|(_, r)| r.split('/').next())
    }

    /// For a role session: the role's ARN (`arn:aws:iam::A:role/ROLE`).
    pub fn role_arn(&self) -> Option<String> {
        let partition = self.arn.split(':').nth(1).unwrap_or("aws");
        self.role_name()
            .map(|r| format!("arn:{partition}:iam::{}:role/{r}", self.account))
    }

    /// For a role session: `arn:aws:sts::A:assumed-role/ROLE` (the session
    /// name dropped), the value Google's default AWS attribute mapping gives
    /// `attribute.aws_role`. Other ARNs as they are.
    pub fn assumed_role(&self) -> String {
        match self.arn.split_once(":assumed-role/") {
            Some((head, rest)) => format!(
                "{head}:assumed-role/{}",
                rest.split('/').next().unwrap_or(rest)
            ),
            None => self.arn.clone(),
        }
    }

    /// For an IAM user (`…:user/[PATH/]NAME`): the user's name.
    pub fn user_name(&self) -> Option<&str> {
        let (_, rest) = self.arn.split_once(":user/")?;
        rest.rsplit('/').next()
    }
}

/// STS GetCallerIdentity with the provider's current credentials, in its
/// region (us-east-1 when it has none), signed at the context's clock.
pub async fn caller_identity(
    provider: &AwsCredentialsProvider,
) -> Result<CallerIdentity, AwsAuthError> {
    let ctx = provider.context();
    let creds = provider.credentials().await?;
    let region = provider
        .region()
        .map(|(r, _)| r.to_owned())
        .unwrap_or_else(|| "us-east-1".into());
    let url = format!("{}/", sts_endpoint(ctx, Some(&region)));
    let body: &[u8] = b"Action=GetCallerIdentity&Version=2011-06-15";
    let host = url::Url::parse(&url)
        .ok()
        .and_then(|u| {
            u.host_str().map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_owned(),
            })
        })
        .unwrap_or_default();
    let content_type = "application/x-www-form-urlencoded; charset=utf-8";
    let policy = crate::RetryPolicy {
        deadline: ctx.retry.deadline.min(Duration::from_secs(10)),
        ..ctx.retry.clone()
    };
    let reply = call::send(
        &policy,
        AwsCall {
            source: provider.source().kind,
            service: AwsService::StsGetCallerIdentity,
            doing: "calling STS GetCallerIdentity",
            url: &url,
            cap: CALLER_IDENTITY_CAP,
            role_arn: None,
            presented: None,
        },
        || {
            let millis = ctx.clock.now_millis().max(0) as u64;
            let time = UNIX_EPOCH + Duration::from_millis(millis);
            let (added, _) = sign::signature(
                "POST",
                &url,
                &[
                    ("host".into(), host.clone()),
                    ("content-type".into(), content_type.into()),
                ],
                body,
                &creds,
                &region,
                "sts",
                time,
                SigningSettings::default(),
            )
            .map_err(|e| AwsAuthError::Signing(e.to_string()))?;
            let mut request = ctx
                .http
                .post(url.as_str())
                .header("content-type", content_type)
                .body(body.to_vec());
            for (k, v) in added {
                let Some(mut value) = reqwest::header::HeaderValue::from_str(&v).ok() else {
                    return Err(AwsAuthError::Signing(format!(
                        "signing produced a bad value for {k}"
                    )));
                };
                value.set_sensitive(k != "x-amz-date");
                request = request.header(k, value);
            }
            Ok(Attempt {
                request,
                signed_at: Some(ctx.clock.now_secs()),
            })
        },
    )
    .await?;
    let text = String::from_utf8_lossy(reply.body.expose()).into_owned();
    match (
        keyway_http::aws::xml_text(&text, "Account"),
        keyway_http::aws::xml_text(&text, "Arn"),
        keyway_http::aws::xml_text(&text, "UserId"),
    ) {
        (Some(account), Some(arn), Some(user_id)) => Ok(CallerIdentity {
            account,
            arn,
            user_id,
        }),
        _ => Err(AwsAuthError::InvalidResponse {
            kind: provider.source().kind,
            url: redact_url(&url),
            reason: "an unexpected GetCallerIdentity response".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_name_their_role_or_user() {
        let c = CallerIdentity {
            account: "538104962771".into(),
            arn: "arn:aws:sts::538104962771:assumed-role/rds-to-bigquery-task/abc".into(),
            user_id: "AROA:abc".into(),
        };
        assert_eq!(c.role_name(), Some("rds-to-bigquery-task"));
        assert_eq!(
            c.role_arn().as_deref(),
            Some("arn:aws:iam::538104962771:role/rds-to-bigquery-task")
        );
        assert_eq!(
            c.assumed_role(),
            "arn:aws:sts::538104962771:assumed-role/rds-to-bigquery-task"
        );
        let u = CallerIdentity {
            account: "1".into(),
            arn: "arn:aws:iam::1:user/team/ogura".into(),
            user_id: "AIDA".into(),
        };
        assert_eq!((u.role_name(), u.user_name()), (None, Some("ogura")));
        assert_eq!(u.assumed_role(), u.arn);
    }
}
