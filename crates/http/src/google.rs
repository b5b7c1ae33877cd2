//! Reading what Google answers when it says no, in its two shapes: OAuth 2.0
//! token endpoints (the token endpoint, STS: RFC 6749 `{"error":
//! "invalid_grant", "error_description": "…"}`) and every other API
//! (`google.rpc.Status`: `{"error": {"code": 403, "status":
//! "PERMISSION_DENIED", "message": "…", "details": [ErrorInfo…]}}`). One
//! reader for both, so every Google call is classified the same way and by
//! the codes Google documents (the OAuth error code, the rpc status, the
//! `ErrorInfo` reason and its metadata), never by the wording of a message.

use keyway_wire::google::GoogleError;
use keyway_wire::google::error::ErrorDetail;
use keyway_wire::google::oauth2::OAuthError;
use std::collections::BTreeMap;
use std::fmt;

/// An enum of the names a Google server sends, each variant written once with
/// its name: `parse` and `as_str` (and `Display`) come from that one list, and
/// any other name is kept, as sent, in `Other` (written first, so the list
/// reads unambiguously).
macro_rules! names {
    (
        $(#[$meta:meta])*
        pub enum $ty:ident {
            $(#[$ometa:meta])* Other(String),
            $($(#[$vmeta:meta])* $variant:ident = $name:literal,)*
        }
    ) => {
        $(#[$meta])*
        pub enum $ty {
            $($(#[$vmeta])* $variant,)*
            $(#[$ometa])* Other(String),
        }

        impl $ty {
            pub fn parse(s: &str) -> $ty {
                match s {
                    $($name => $ty::$variant,)*
                    other => $ty::Other(other.to_owned()),
                }
            }

            pub fn as_str(&self) -> &str {
                match self {
                    $($ty::$variant => $name,)*
                    $ty::Other(s) => s,
                }
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

names! {
    /// An RFC 6749 (section 5.2) error code, as token endpoints and Google STS
    /// (RFC 8693) send them.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum OAuthErrorCode {
        /// Any other code, as sent.
        Other(String),
        InvalidRequest = "invalid_request",
        InvalidClient = "invalid_client",
        /// The grant (refresh token, assertion, subject token) is invalid,
        /// expired or revoked.
        InvalidGrant = "invalid_grant",
        /// The client may not use this grant; Google STS: the credential is
        /// refused by the provider's attribute condition.
        UnauthorizedClient = "unauthorized_client",
        UnsupportedGrantType = "unsupported_grant_type",
        InvalidScope = "invalid_scope",
        /// RFC 8693: the audience (the workload identity provider) is not valid.
        InvalidTarget = "invalid_target",
        AccessDenied = "access_denied",
    }
}

names! {
    /// A `google.rpc.Code`, by the name Google sends in `status`.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum RpcStatus {
        /// Any other name, as sent (empty when the body named none).
        Other(String),
        InvalidArgument = "INVALID_ARGUMENT",
        FailedPrecondition = "FAILED_PRECONDITION",
        OutOfRange = "OUT_OF_RANGE",
        Unauthenticated = "UNAUTHENTICATED",
        PermissionDenied = "PERMISSION_DENIED",
        NotFound = "NOT_FOUND",
        AlreadyExists = "ALREADY_EXISTS",
        Aborted = "ABORTED",
        ResourceExhausted = "RESOURCE_EXHAUSTED",
        Cancelled = "CANCELLED",
        DataLoss = "DATA_LOSS",
        Unknown = "UNKNOWN",
        Internal = "INTERNAL",
        Unimplemented = "UNIMPLEMENTED",
        Unavailable = "UNAVAILABLE",
        DeadlineExceeded = "DEADLINE_EXCEEDED",
    }
}

names! {
    /// The `ErrorInfo.reason` values keyway acts on.
    #[derive(Debug, Clone, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum ErrorReason {
        /// Any other reason, as sent.
        Other(String),
        /// The token's OAuth scopes do not cover the API.
        AccessTokenScopeInsufficient = "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
        /// IAM refused the permission (the resource may also not exist).
        IamPermissionDenied = "IAM_PERMISSION_DENIED",
        CredentialsMissing = "CREDENTIALS_MISSING",
        AccessTokenExpired = "ACCESS_TOKEN_EXPIRED",
        AccessTokenTypeUnsupported = "ACCESS_TOKEN_TYPE_UNSUPPORTED",
        /// The API is not enabled in the project.
        ServiceDisabled = "SERVICE_DISABLED",
    }
}

/// A `google.rpc.Status` error body, with its first `ErrorInfo`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcError {
    pub code: u16,
    pub status: RpcStatus,
    pub message: String,
    pub reason: Option<ErrorReason>,
    /// The `ErrorInfo.domain` (e.g. `secretmanager.googleapis.com`).
    pub domain: Option<String>,
    /// The `ErrorInfo.metadata` (e.g. `permission`, `resource`, `service`).
    pub metadata: BTreeMap<String, String>,
}

/// An OAuth error body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthFailure {
    pub code: OAuthErrorCode,
    pub description: Option<String>,
}

/// What a Google error answer said, as far as it could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum GoogleErrorBody {
    OAuth(OAuthFailure),
    Rpc(RpcError),
    /// Neither: the first line of the body (a proxy's page, plain text), if any.
    Text(Option<String>),
}

impl GoogleErrorBody {
    /// Reads an error body.
    pub fn parse(body: &[u8]) -> GoogleErrorBody {
        if let Ok(e) = serde_json::from_slice::<OAuthError>(body) {
            return GoogleErrorBody::OAuth(OAuthFailure {
                code: OAuthErrorCode::parse(&e.error),
                description: e
                    .error_description
                    .filter(|d| !d.is_empty())
                    .map(|d| clip(&d)),
            });
        }
        if let Ok(g) = serde_json::from_slice::<GoogleError>(body) {
            let info = g.error.details.iter().find_map(|d| match d {
                ErrorDetail::ErrorInfo {
                    reason,
                    domain,
                    metadata,
                } => Some((reason, domain, metadata)),
                _ => None,
            });
            return GoogleErrorBody::Rpc(RpcError {
                code: g.error.code,
                status: RpcStatus::parse(&g.error.status),
                message: clip(&g.error.message),
                reason: info.map(|(r, _, _)| ErrorReason::parse(r)),
                domain: info.map(|(_, d, _)| d.clone()),
                metadata: info.map(|(_, _, m)| m.clone()).unwrap_or_default(),
            });
        }
        let text = String::from_utf8_lossy(body);
        GoogleErrorBody::Text(
            text.lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .map(clip),
        )
    }

    /// The OAuth error code, for token endpoints' answers.
    pub fn oauth_code(&self) -> Option<&OAuthErrorCode> {
        match self {
            GoogleErrorBody::OAuth(o) => Some(&o.code),
            _ => None,
        }
    }

    /// The rpc error, for APIs' answers.
    pub fn rpc(&self) -> Option<&RpcError> {
        match self {
            GoogleErrorBody::Rpc(r) => Some(r),
            _ => None,
        }
    }

    /// The `ErrorInfo.reason`, if any.
    pub fn reason(&self) -> Option<&ErrorReason> {
        self.rpc().and_then(|r| r.reason.as_ref())
    }

    /// An `ErrorInfo.metadata` entry.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.rpc()
            .and_then(|r| r.metadata.get(key))
            .map(String::as_str)
    }
}

impl fmt::Display for GoogleErrorBody {
    /// `invalid_grant: Bad Request`, `PERMISSION_DENIED: message`, or the text.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GoogleErrorBody::OAuth(OAuthFailure {
                code,
                description: Some(d),
            }) => write!(f, "{code}: {d}"),
            GoogleErrorBody::OAuth(OAuthFailure { code, .. }) => write!(f, "{code}"),
            GoogleErrorBody::Rpc(r) if r.status.as_str().is_empty() => {
                write!(f, "{}: {}", r.code, r.message)
            }
            GoogleErrorBody::Rpc(r) => write!(f, "{}: {}", r.status, r.message),
            GoogleErrorBody::Text(Some(t)) => f.write_str(t),
            GoogleErrorBody::Text(None) => Ok(()),
        }
    }
}

/// At most 300 printable characters.
fn clip(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.chars().count() > 300 {
        let mut out: String = cleaned.chars().take(300).collect();
        out.push('…');
        out
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oauth_rpc_and_text_bodies() {
        let b = GoogleErrorBody::parse(
            br#"{"error":"unauthorized_client","error_description":"The given credential is rejected by the attribute condition."}"#,
        );
        assert_eq!(b.oauth_code(), Some(&OAuthErrorCode::UnauthorizedClient));
        assert_eq!(
            b.to_string(),
            "unauthorized_client: The given credential is rejected by the attribute condition."
        );
        let b = GoogleErrorBody::parse(
            br#"{"error":{"code":403,"message":"Permission 'secretmanager.versions.access' denied for resource 'projects/p/secrets/s/versions/latest' (or it may not exist).","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED","domain":"secretmanager.googleapis.com","metadata":{"permission":"secretmanager.versions.access"}}]}}"#,
        );
        assert_eq!(b.reason(), Some(&ErrorReason::IamPermissionDenied));
        assert_eq!(
            b.metadata("permission"),
            Some("secretmanager.versions.access")
        );
        assert_eq!(b.rpc().unwrap().status, RpcStatus::PermissionDenied);
        assert!(b.to_string().starts_with("PERMISSION_DENIED: Permission"));
        assert_eq!(
            GoogleErrorBody::parse(b"\n <html>proxy\n"),
            GoogleErrorBody::Text(Some("<html>proxy".into()))
        );
        assert_eq!(GoogleErrorBody::parse(b""), GoogleErrorBody::Text(None));
        for c in ["invalid_grant", "invalid_target", "weird"] {
            assert_eq!(OAuthErrorCode::parse(c).as_str(), c);
        }
        for s in ["NOT_FOUND", "FAILED_PRECONDITION", "X"] {
            assert_eq!(RpcStatus::parse(s).as_str(), s);
        }
    }
}
