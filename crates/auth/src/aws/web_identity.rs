//! Web identity: STS `AssumeRoleWithWebIdentity` (unsigned) with a token from
//! a file (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN, or a profile's
//! `web_identity_token_file`; re-read at every refresh, as Kubernetes rotates
//! projected tokens), or, keyway's own, a Google ID token of keyway's Google
//! credentials (KEYWAY_AWS_WEB_IDENTITY=google).

use super::call::{self, Attempt, AwsCall, sts_endpoint};
use super::credentials::{AwsCredentials, expiry};
use super::error::{AwsAuthError, AwsConfigProblem, AwsService};
use super::source::{AwsSourceKind, WebIdentityToken};
use crate::AuthContext;
use crate::http;
use keyway_core::{Secret, vars};
use std::path::PathBuf;
use zeroize::Zeroize;

/// The audience of the Google ID token when KEYWAY_AWS_WEB_IDENTITY=google and
/// KEYWAY_AWS_WEB_IDENTITY_AUDIENCE is unset: the audience AWS documents for
/// tokens meant for STS (EKS service-account tokens, GitHub Actions), so one
/// trust condition (`accounts.google.com:oaud`) reads the same for all of them.
pub const DEFAULT_GOOGLE_AUDIENCE: &str = "sts.amazonaws.com";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// AssumeRoleWithWebIdentity: where the token comes from and what to assume.
#[derive(Debug, Clone)]
pub(super) struct WebIdentity {
    /// The source errors are attributed to (a profile, or the environment).
    pub kind: AwsSourceKind,
    pub token: TokenSource,
    pub role_arn: String,
    pub session_name: String,
    /// STS base URL, no trailing '/'.
    pub endpoint: String,
}

#[derive(Debug, Clone)]
pub(super) enum TokenSource {
    /// Read at every refresh (Kubernetes rotates projected tokens).
    File(PathBuf),
    /// A Google ID token of keyway's Google credentials.
    Google {
        credentials: crate::GoogleCredentials,
        audience: String,
    },
}

impl TokenSource {
    pub(super) fn describe(&self) -> WebIdentityToken {
        match self {
            TokenSource::File(p) => WebIdentityToken::File(p.clone()),
            TokenSource::Google { audience, .. } => WebIdentityToken::Google {
                audience: audience.clone(),
            },
        }
    }
}

impl WebIdentity {
    /// A web identity that the source `kind` configures: the session name when
    /// one is set, else `keyway-UNIXTIME` (the SDKs generate one too); STS as
    /// the SDKs find it for `region`.
    pub(super) fn new(
        ctx: &AuthContext,
        kind: AwsSourceKind,
        token: TokenSource,
        role_arn: String,
        session_name: Option<String>,
        region: Option<&str>,
    ) -> Self {
        WebIdentity {
            kind,
            token,
            role_arn,
            session_name: session_name
                .unwrap_or_else(|| format!("keyway-{}", ctx.clock.now_secs())),
            endpoint: sts_endpoint(ctx, region),
        }
    }
}

/// What the environment configures: the token source, the role and a
/// description; `Ok(None)` when neither variable is set.
pub(super) async fn from_env(
    ctx: &AuthContext,
) -> Result<Option<(TokenSource, String, String)>, AwsAuthError> {
    let kind = AwsSourceKind::WebIdentity;
    let env = &ctx.env;
    let role_arn = env.non_empty(vars::AWS_ROLE_ARN);
    let no_role = |set: &'static str| {
        AwsAuthError::config(
            kind,
            AwsConfigProblem::BadVariable {
                var: vars::AWS_ROLE_ARN,
                reason: format!("{set} is set but AWS_ROLE_ARN is not (the role to assume)"),
            },
        )
    };
    match (
        env.non_empty(vars::KEYWAY_AWS_WEB_IDENTITY),
        env.non_empty(vars::AWS_WEB_IDENTITY_TOKEN_FILE),
    ) {
        (Some(v), _) if v.eq_ignore_ascii_case("google") => {
            let role_arn = role_arn.ok_or_else(|| no_role("KEYWAY_AWS_WEB_IDENTITY=google"))?;
            let audience = env
                .non_empty(vars::KEYWAY_AWS_WEB_IDENTITY_AUDIENCE)
                .unwrap_or(DEFAULT_GOOGLE_AUDIENCE)
                .to_owned();
            // Boxed: Google's default credentials may be federated from AWS (aws1),
            // which makes this future recursive in type. At run time aws1 uses a chain
            // without web identity, so the recursion stops there.
            let credentials = Box::pin(crate::google_default(ctx, &[CLOUD_PLATFORM.to_owned()]))
                .await
                .map_err(|e| AwsAuthError::GoogleIdToken {
                    audience: audience.clone(),
                    cause: Box::new(e),
                })?;
            let detail = format!(
                "KEYWAY_AWS_WEB_IDENTITY=google: a Google ID token (audience {audience}) from {}, role {role_arn}",
                credentials.source()
            );
            Ok(Some((
                TokenSource::Google {
                    credentials,
                    audience,
                },
                role_arn.to_owned(),
                detail,
            )))
        }
        (Some(v), _) => Err(AwsAuthError::config(
            kind,
            AwsConfigProblem::BadVariable {
                var: vars::KEYWAY_AWS_WEB_IDENTITY,
                reason: format!(
                    "KEYWAY_AWS_WEB_IDENTITY='{v}' is not understood (the only value is 'google')"
                ),
            },
        )),
        (None, Some(file)) => {
            let role_arn = role_arn.ok_or_else(|| no_role("AWS_WEB_IDENTITY_TOKEN_FILE"))?;
            Ok(Some((
                TokenSource::File(PathBuf::from(file)),
                role_arn.to_owned(),
                format!("AWS_WEB_IDENTITY_TOKEN_FILE {file}, role {role_arn}"),
            )))
        }
        (None, None) => Ok(None),
    }
}

/// Identifying claims of a JWT (unverified, for explanations): never the token itself.
fn token_identity(token: &str) -> String {
    use base64::Engine;
    let claims: Option<serde_json::Value> = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(c) = claims else {
        return String::new();
    };
    let mut parts = Vec::new();
    for k in ["iss", "sub", "azp", "aud", "email"] {
        match c.get(k) {
            Some(serde_json::Value::String(v)) => parts.push(format!("{k}={v}")),
            Some(v @ serde_json::Value::Array(_)) => parts.push(format!("{k}={v}")),
            _ => {}
        }
    }
    parts.join(", ")
}

/// Reads the token and calls STS AssumeRoleWithWebIdentity (unsigned).
pub(super) async fn assume_role(
    ctx: &AuthContext,
    wi: &WebIdentity,
) -> Result<AwsCredentials, AwsAuthError> {
    let kind = wi.kind;
    let token: Secret<String> = match &wi.token {
        TokenSource::File(path) => {
            let mut b = ctx.fs.read(path).map_err(|e| {
                AwsAuthError::config(
                    kind,
                    AwsConfigProblem::Unreadable {
                        what: "web identity token file",
                        path: path.clone(),
                        reason: e.to_string(),
                    },
                )
            })?;
            let t = Secret::new(String::from_utf8_lossy(&b).trim().to_owned());
            b.zeroize();
            if t.expose().is_empty() {
                return Err(AwsAuthError::config(
                    kind,
                    AwsConfigProblem::EmptyTokenFile { path: path.clone() },
                ));
            }
            t
        }
        // Boxed: Google credentials may themselves be federated from AWS
        // (external_account aws1), which makes this future recursive in type.
        TokenSource::Google {
            credentials,
            audience,
        } => Box::pin(credentials.id_token(audience))
            .await
            .map_err(|e| AwsAuthError::GoogleIdToken {
                audience: audience.clone(),
                cause: Box::new(e),
            })?,
    };
    let url = format!("{}/", wi.endpoint);
    let body = Secret::new(
        form_urlencoded_pairs(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", &wi.role_arn),
            ("RoleSessionName", &wi.session_name),
            ("WebIdentityToken", token.expose()),
        ])
        .into_bytes(),
    );
    let presented = token_identity(token.expose());
    let reply = call::send(
        &ctx.retry,
        AwsCall {
            source: kind,
            service: AwsService::StsAssumeRoleWithWebIdentity,
            doing: "calling STS AssumeRoleWithWebIdentity",
            url: &url,
            cap: http::TOKEN,
            role_arn: Some(&wi.role_arn),
            presented: Some(&presented),
        },
        || {
            Ok(Attempt {
                request: ctx
                    .http
                    .post(url.as_str())
                    .header(
                        "Content-Type",
                        "application/x-www-form-urlencoded; charset=utf-8",
                    )
                    .header("Accept", "text/xml")
                    .body(body.expose().clone()),
                signed_at: None,
            })
        },
    )
    .await?;
    // The answer holds the secret key: kept in a Secret (zeroised when dropped).
    let text = Secret::new(String::from_utf8_lossy(reply.body.expose()).into_owned());
    let field = |t: &str| {
        keyway_http::aws::xml_text(text.expose(), t).ok_or_else(|| AwsAuthError::InvalidResponse {
            kind,
            url: http::redact_url(&url),
            reason: format!("an AssumeRoleWithWebIdentity response without {t}"),
        })
    };
    Ok(AwsCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expires_at: Some(expiry(kind, &field("Expiration")?)?),
    })
}

/// `k=v&…`, form-encoded.
fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
