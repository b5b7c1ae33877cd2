//! The error envelope of Google's REST APIs (`google.rpc.Status` in JSON):
//! `{"error": {"code": 403, "message": "...", "status": "PERMISSION_DENIED", "details": [...]}}`.
//! Clients read `status` and the `ErrorInfo.reason` in `details` to tell, for example,
//! a scope problem (ACCESS_TOKEN_SCOPE_INSUFFICIENT) from an IAM denial (IAM_PERMISSION_DENIED).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoogleError {
    pub error: ErrorBody,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    pub code: u16,
    pub message: String,
    #[serde(default)]
    pub status: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<ErrorDetail>,
    /// Compute Engine (and other older APIs) also send this legacy list.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<LegacyError>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LegacyError {
    pub message: String,
    pub domain: String,
    pub reason: String,
}

/// One entry of `details`. keyway emits and reads `google.rpc.ErrorInfo` and
/// `google.rpc.BadRequest`; anything else is kept as raw JSON.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "@type")]
pub enum ErrorDetail {
    #[serde(rename = "type.googleapis.com/google.rpc.ErrorInfo")]
    ErrorInfo {
        reason: String,
        domain: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        metadata: BTreeMap<String, String>,
    },
    #[serde(rename = "type.googleapis.com/google.rpc.BadRequest")]
    BadRequest {
        #[serde(rename = "fieldViolations", default)]
        field_violations: Vec<FieldViolation>,
    },
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FieldViolation {
    /// The path of the field (`policy.bindings[0]`); Google leaves it out
    /// for a violation at the top of the request.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
    pub description: String,
}

impl GoogleError {
    pub fn new(code: u16, status: &str, message: impl Into<String>) -> Self {
        GoogleError {
            error: ErrorBody {
                code,
                message: message.into(),
                status: status.to_owned(),
                details: Vec::new(),
                errors: Vec::new(),
            },
        }
    }

    pub fn with_detail(mut self, d: ErrorDetail) -> Self {
        self.error.details.push(d);
        self
    }

    /// The `ErrorInfo.reason`, if the body carries one.
    pub fn reason(&self) -> Option<&str> {
        self.error.details.iter().find_map(|d| match d {
            ErrorDetail::ErrorInfo { reason, .. } => Some(reason.as_str()),
            _ => None,
        })
    }

    /// The `ErrorInfo.metadata` entry `key`, if present.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.error.details.iter().find_map(|d| match d {
            ErrorDetail::ErrorInfo { metadata, .. } => metadata.get(key).map(String::as_str),
            _ => None,
        })
    }
}

/// `ErrorInfo` reasons the local cloud emits and clients interpret.
pub mod reason {
    pub const SCOPE_INSUFFICIENT: &str = "ACCESS_TOKEN_SCOPE_INSUFFICIENT";
    pub const IAM_PERMISSION_DENIED: &str = "IAM_PERMISSION_DENIED";
    pub const CREDENTIALS_MISSING: &str = "CREDENTIALS_MISSING";
    pub const ACCESS_TOKEN_EXPIRED: &str = "ACCESS_TOKEN_EXPIRED";
    pub const ACCESS_TOKEN_TYPE_UNSUPPORTED: &str = "ACCESS_TOKEN_TYPE_UNSUPPORTED";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_real_scope_error() {
        // The shape Google returns for a token without cloud-platform.
        let body = r#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ACCESS_TOKEN_SCOPE_INSUFFICIENT","domain":"googleapis.com","metadata":{"service":"secretmanager.googleapis.com","method":"google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion"}}]}}"#;
        let e: GoogleError = serde_json::from_str(body).unwrap();
        assert_eq!(e.reason(), Some(reason::SCOPE_INSUFFICIENT));
        assert_eq!(e.metadata("service"), Some("secretmanager.googleapis.com"));
    }

    #[test]
    fn unknown_detail_types_are_kept_parseable() {
        let body = r#"{"error":{"code":400,"message":"x","status":"INVALID_ARGUMENT","details":[{"@type":"type.googleapis.com/google.rpc.Help","links":[]}]}}"#;
        let e: GoogleError = serde_json::from_str(body).unwrap();
        assert_eq!(e.error.details, vec![ErrorDetail::Other]);
    }
}
