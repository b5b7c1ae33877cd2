//! The ECS container-credentials API, backed by whatever AWS credentials
//! keyway resolved (the ECS endpoint itself, IMDS, web identity, or
//! AssumeRoleWithWebIdentity with a Google ID token), so that every AWS SDK
//! finds them through `AWS_CONTAINER_CREDENTIALS_FULL_URI` with no code change.
//!
//! `GET /aws/credentials` with `Authorization: TOKEN` (the value of
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN`, or the content of
//! `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE`, which the SDKs send as is)
//! answers the document the ECS agent serves: `AccessKeyId`,
//! `SecretAccessKey`, `Token`, `Expiration` (RFC 3339, UTC) and `RoleArn`
//! when keyway knows the role. A missing or wrong token is refused with 401
//! (compared in constant time), a forwarded request with 400, any method but
//! GET with 405, another path with 404; the error bodies are the agent's JSON
//! (`{"code": …, "message": …}`). When no credentials can be had: 503 if the
//! failure is transient (the SDKs retry), 500 otherwise; the reason is logged.
//!
//! Only temporary credentials are served: long-term access keys are refused
//! when the broker starts ([`Aws::new`]), since an ECS endpoint never hands
//! them out and a workload should not receive a key that does not expire.

use crate::Token;
use crate::reply::{forwarded, readable, response, secret_body};
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Response, StatusCode, header};
use keyway_auth::{AwsAuthError, AwsCredentialsProvider};
use keyway_wire::aws::ContainerCredentials;
use std::sync::Arc;

/// The path of the credentials document.
pub const PATH: &str = "/aws/credentials";

/// What the ECS API serves.
pub struct Aws {
    provider: AwsCredentialsProvider,
    role_arn: Option<String>,
    token: Arc<Token>,
}

/// Why the ECS API cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error(transparent)]
    Credentials(#[from] AwsAuthError),
    #[error(
        "the ECS credentials API hands out temporary credentials only, and keyway's AWS credentials come from {from} (a long-term access key); \
         use a role (web identity, ECS, IMDS, or KEYWAY_AWS_WEB_IDENTITY=google), or do not serve the ECS API"
    )]
    LongTerm { from: String },
}

impl Aws {
    /// Gets the credentials once (so a broker that cannot serve them fails
    /// before its workload starts) and refuses long-term keys.
    pub async fn new(provider: AwsCredentialsProvider, token: Arc<Token>) -> Result<Aws, AwsError> {
        let creds = provider.credentials().await?;
        if creds.expires_at.is_none() || creds.session_token.is_none() {
            return Err(AwsError::LongTerm {
                from: provider.source().to_string(),
            });
        }
        let role_arn = provider.role_arn().map(str::to_owned);
        Ok(Aws {
            provider,
            role_arn,
            token,
        })
    }

    /// The provider behind the API (for the background refresher).
    pub fn provider(&self) -> &AwsCredentialsProvider {
        &self.provider
    }
}

/// The ECS API alone (the broker's combined router dispatches to [`handle`]).
pub fn router(state: Arc<Aws>) -> Router {
    Router::new()
        .fallback(|State(a): State<Arc<Aws>>, req: Request| async move { handle(&a, req).await })
        .with_state(state)
}

fn agent_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    response(
        status,
        "application/json",
        serde_json::to_vec(&serde_json::json!({"code": code, "message": message}))
            .unwrap_or_default(),
    )
}

/// Serves one request of the ECS API.
pub async fn handle(a: &Aws, req: Request) -> Response<Body> {
    let (parts, _body) = req.into_parts();
    if forwarded(&parts.headers) {
        return agent_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Forwarded requests are refused.",
        );
    }
    let given = parts
        .headers
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    if !a.token.matches(given) {
        return agent_error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthorizationToken",
            "Authorization token is missing or invalid.",
        );
    }
    if !readable(&parts.method) {
        let mut r = agent_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "Only GET is allowed.",
        );
        r.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET"));
        return r;
    }
    if parts.uri.path() != PATH {
        return agent_error(StatusCode::NOT_FOUND, "NotFound", "Not found");
    }
    match a.provider.credentials().await {
        Ok(c) => {
            let (Some(token), Some(exp)) = (&c.session_token, c.expires_at) else {
                return agent_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "The credentials are not temporary.",
                );
            };
            let Ok(expiration) = jiff::Timestamp::from_second(exp) else {
                return agent_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalError",
                    "The credentials' expiry is out of range.",
                );
            };
            let mut doc = ContainerCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: c.secret_access_key.expose().clone(),
                token: token.expose().clone(),
                expiration: expiration.strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
                role_arn: a.role_arn.clone(),
            };
            let body = serde_json::to_vec(&doc).unwrap_or_default();
            zeroize::Zeroize::zeroize(&mut doc.secret_access_key);
            zeroize::Zeroize::zeroize(&mut doc.token);
            response(StatusCode::OK, "application/json", secret_body(body))
        }
        Err(e) => {
            let status = if e.is_transient() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            tracing::warn!(error = %e, status = status.as_u16(), "the ECS credentials API could not get credentials");
            agent_error(
                status,
                "CredentialsUnavailable",
                &format!("Unable to get credentials: {e}"),
            )
        }
    }
}
