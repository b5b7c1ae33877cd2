//! Google's REST APIs, served on one loopback port (their paths do not collide):
//! OAuth2 (`/token`, `/tokeninfo`, `/oauth2/v3/certs`), Secret Manager v1,
//! Cloud Resource Manager v1 (project IAM), IAM v1 (service-account keys,
//! workload identity pools), Compute v1 (instances), and Workload Identity
//! Federation's STS (`/v1/token`) and IAM Credentials (`:generateAccessToken`,
//! `:generateIdToken`). Paths follow Google's `…/resource:verb` style, which
//! axum's router cannot express, so this module parses the path itself and
//! dispatches on its segments.
//!
//! Access control is decided in Google's order: a missing, foreign or expired
//! token is 401 UNAUTHENTICATED; a token whose scopes do not cover the API is
//! 403 ACCESS_TOKEN_SCOPE_INSUFFICIENT; a principal without the IAM permission
//! is 403 PERMISSION_DENIED, the same answer whether or not the resource exists.

pub mod attributes;
pub mod compute;
pub mod iamapi;
pub mod iamcredentials;
pub mod oauth2;
pub mod resourcemanager;
pub mod secretmanager;
pub mod sts;
pub mod wip;

use crate::cloud::{Caller, Cloud, TokenProblem};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use keyway_wire::google::error::{ErrorDetail, GoogleError, LegacyError, reason};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
pub const CLOUD_PLATFORM_RO: &str = "https://www.googleapis.com/auth/cloud-platform.read-only";

/// An error answered in Google's shape.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: GoogleError,
    www_authenticate: bool,
}

pub type Reply = Result<Response, ApiError>;

impl ApiError {
    pub fn new(code: u16, status: &str, message: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            body: GoogleError::new(code, status, message),
            www_authenticate: false,
        }
    }

    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(400, "INVALID_ARGUMENT", message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        Self::new(400, "FAILED_PRECONDITION", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NOT_FOUND", message)
    }

    pub fn already_exists(message: impl Into<String>) -> Self {
        Self::new(409, "ALREADY_EXISTS", message)
    }

    pub fn aborted(message: impl Into<String>) -> Self {
        Self::new(409, "ABORTED", message)
    }

    /// A 500 that says nothing about internals; the cause goes to the log.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error while serving a request");
        Self::new(500, "INTERNAL", "Internal error encountered.")
    }

    pub fn unknown_path(method: &Method, path: &str) -> Self {
        Self::new(
            404,
            "NOT_FOUND",
            format!("The requested URL {path} was not found on this server (method {method})."),
        )
    }

    /// IAM said no (or the resource does not exist and the caller may not know).
    pub fn permission_denied(permission: &str, resource: &str) -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            format!(
                "Permission '{permission}' denied for resource '{resource}' (or it may not exist)."
            ),
        )
        .with_info(
            reason::IAM_PERMISSION_DENIED,
            "iam.googleapis.com",
            &[("permission", permission), ("resource", resource)],
        )
    }

    pub fn scope_insufficient(service: &str, method: &str) -> Self {
        Self::new(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
        )
        .with_info(
            reason::SCOPE_INSUFFICIENT,
            "googleapis.com",
            &[("service", service), ("method", method)],
        )
    }

    fn unauthenticated(message: &str, why: &str, service: &str, method: &str) -> Self {
        let mut e = Self::new(401, "UNAUTHENTICATED", message).with_info(
            why,
            "googleapis.com",
            &[("service", service), ("method", method)],
        );
        e.www_authenticate = true;
        e
    }

    /// Adds Google's `ErrorInfo`: why, the domain that says so, and its metadata.
    pub fn with_info(mut self, reason: &str, domain: &str, metadata: &[(&str, &str)]) -> Self {
        self.body = self.body.with_detail(ErrorDetail::ErrorInfo {
            reason: reason.into(),
            domain: domain.into(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        });
        self
    }

    /// Adds Compute Engine's legacy `errors` entry.
    pub fn legacy(mut self, reason: &str) -> Self {
        let message = self.body.error.message.clone();
        self.body.error.errors.push(LegacyError {
            message,
            domain: "global".into(),
            reason: reason.into(),
        });
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self.body).unwrap_or_default();
        let mut r = (self.status, body).into_response();
        let h = r.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        if self.www_authenticate {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"https://accounts.google.com/\""),
            );
        }
        r
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        ApiError::internal(&e)
    }
}

impl From<crate::error::CloudError> for ApiError {
    fn from(e: crate::error::CloudError) -> Self {
        ApiError::internal(&e)
    }
}

/// A parsed request.
pub struct Req {
    pub method: Method,
    pub path: String,
    /// Percent-decoded path segments; the last one without its `:verb`.
    pub segments: Vec<String>,
    pub verb: Option<String>,
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Req {
    pub fn parse(method: Method, uri: &Uri, headers: HeaderMap, body: Bytes) -> Req {
        let path = uri.path().to_owned();
        let mut segments: Vec<String> = path
            .split('/')
            .skip(1)
            .map(|s| {
                percent_encoding::percent_decode_str(s)
                    .decode_utf8_lossy()
                    .into_owned()
            })
            .collect();
        if segments.last().is_some_and(|s| s.is_empty()) && segments.len() > 1 {
            segments.pop();
        }
        let mut verb = None;
        if let Some(last) = segments.last_mut()
            && let Some(i) = last.find(':')
        {
            verb = Some(last[i + 1..].to_owned());
            last.truncate(i);
        }
        let query = uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        Req {
            method,
            path,
            segments,
            verb,
            query,
            headers,
            body,
        }
    }

    pub fn q(&self, k: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }

    /// `$alt=json;enum-encoding=int`, which Google's generated REST clients send.
    pub fn enums_as_ints(&self) -> bool {
        self.q("$alt")
            .is_some_and(|v| v.contains("enum-encoding=int"))
    }

    /// The body as JSON; an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ApiError> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &self.body
        };
        serde_json::from_slice(body)
            .map_err(|e| ApiError::invalid_argument(format!("Invalid JSON payload received. {e}")))
    }

    pub fn seg(&self, i: usize) -> &str {
        self.segments.get(i).map(String::as_str).unwrap_or("")
    }
}

/// A 200 with a JSON body.
pub fn ok_json<T: Serialize>(v: &T, enums_as_ints: bool) -> Response {
    let mut value = serde_json::to_value(v).unwrap_or_default();
    if enums_as_ints {
        ints(&mut value);
    }
    let body = serde_json::to_vec(&value).unwrap_or_default();
    (
        [(header::CONTENT_TYPE, "application/json; charset=UTF-8")],
        body,
    )
        .into_response()
}

/// Rewrites the enum fields the local cloud emits (`state` of a SecretVersion)
/// to their numbers.
fn ints(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, val) in m.iter_mut() {
                if k == "state"
                    && let Some(s) = val
                        .as_str()
                        .and_then(keyway_wire::google::secretmanager::VersionState::parse)
                {
                    *val = serde_json::Value::from(s.number());
                    continue;
                }
                ints(val);
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(ints),
        _ => {}
    }
}

/// The caller behind the request's bearer token.
pub fn authenticate(
    cloud: &Cloud,
    req: &Req,
    service: &str,
    method: &str,
) -> Result<Caller, ApiError> {
    let Some(auth) = req
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(ApiError::unauthenticated(
            "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            reason::CREDENTIALS_MISSING,
            service,
            method,
        ));
    };
    let token = auth
        .strip_prefix("Bearer ")
        .or_else(|| auth.strip_prefix("bearer "))
        .unwrap_or("")
        .trim();
    // A JWT signed with a service-account key is accepted as that account, as
    // Google does for clients that skip the token exchange ("self-signed JWT").
    if !token.starts_with(crate::crypto::TOKEN_PREFIX)
        && token.bytes().filter(|b| *b == b'.').count() == 2
        && let Ok(c) =
            oauth2::verify_service_account_jwt(cloud, token, oauth2::Audience::Service(service))
    {
        let scopes = match &c.scope {
            Some(s) => s.split_whitespace().map(str::to_owned).collect(),
            // Addressed to this API: full access to it, as cloud-platform gives.
            None => vec![CLOUD_PLATFORM.to_owned()],
        };
        return Ok(Caller {
            member: format!("serviceAccount:{}", c.iss),
            scopes,
            expires_at: c.exp,
            federated: None,
        });
    }
    match cloud.verify_access_token(token) {
        Ok(c) => Ok(c),
        Err(p) => Err(ApiError::unauthenticated(
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
            if p == TokenProblem::Expired {
                reason::ACCESS_TOKEN_EXPIRED
            } else {
                reason::ACCESS_TOKEN_TYPE_UNSUPPORTED
            },
            service,
            method,
        )),
    }
}

/// Fails unless the caller's token carries one of `accepted`.
pub fn require_scope(
    caller: &Caller,
    accepted: &[&str],
    service: &str,
    method: &str,
) -> Result<(), ApiError> {
    if caller.scopes.iter().any(|s| accepted.contains(&s.as_str())) {
        Ok(())
    } else {
        Err(ApiError::scope_insufficient(service, method))
    }
}

/// The router for the Google API port.
pub fn router(cloud: Arc<Cloud>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(cloud)
}

async fn handle(
    State(cloud): State<Arc<Cloud>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let req = Req::parse(method.clone(), &uri, headers, body);
    let reply = if req.method == Method::GET {
        dispatch(&cloud, &req)
    } else {
        // Writes wait on fsync; keep them off the async workers.
        match tokio::task::spawn_blocking(move || dispatch(&cloud, &req)).await {
            Ok(r) => r,
            Err(e) => Err(ApiError::internal(&e)),
        }
    };
    let response = reply.unwrap_or_else(IntoResponse::into_response);
    // The path never carries a secret; the query may (tokeninfo), so it is not logged.
    tracing::debug!(%method, path = %uri.path(), status = response.status().as_u16(), "google api");
    response
}

fn dispatch(cloud: &Arc<Cloud>, req: &Req) -> Reply {
    let s: Vec<&str> = req.segments.iter().map(String::as_str).collect();
    if iamcredentials::handles(req) {
        return iamcredentials::dispatch(cloud, req);
    }
    match s.as_slice() {
        ["v1", "token"] => sts::token(cloud, req),
        [
            "v1",
            "projects",
            _,
            "locations",
            "global",
            "workloadIdentityPools",
            ..,
        ] => wip::dispatch(cloud, req),
        ["token"] | ["oauth2", "v4", "token"] => oauth2::token(cloud, req),
        ["tokeninfo"] | ["oauth2", "v3", "tokeninfo"] => oauth2::tokeninfo(cloud, req),
        ["oauth2", "v3", "certs"] => oauth2::certs(cloud),
        ["v1", "projects", _, "secrets", ..] => secretmanager::dispatch(cloud, req),
        ["v1", "projects", _, "serviceAccounts", ..] => iamapi::dispatch(cloud, req),
        ["v1", "projects", _] => resourcemanager::dispatch(cloud, req),
        ["compute", "v1", "projects", _, "zones", _, ..] => compute::dispatch(cloud, req),
        _ => Err(ApiError::unknown_path(&req.method, &req.path)),
    }
}
