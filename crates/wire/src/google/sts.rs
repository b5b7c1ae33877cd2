//! Security Token Service (`sts.googleapis.com/v1/token`, RFC 8693 token
//! exchange) and the IAM Service Account Credentials API
//! (`iamcredentials.googleapis.com`), as Workload Identity Federation uses them.

use serde::{Deserialize, Serialize};

pub const GRANT_TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
pub const TOKEN_TYPE_ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const TOKEN_TYPE_JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
pub const TOKEN_TYPE_ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
pub const TOKEN_TYPE_AWS4: &str = "urn:ietf:params:aws:token-type:aws4_request";

/// The STS token-exchange success body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StsTokenResponse {
    pub access_token: String,
    pub issued_token_type: String,
    pub token_type: String,
    pub expires_in: i64,
}

/// The subject token of an AWS provider: a signed `GetCallerIdentity` request,
/// serialised as JSON (and URL-encoded by the clients).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AwsSubjectToken {
    pub url: String,
    pub method: String,
    pub headers: Vec<AwsHeader>,
    /// Signed body, if a client sent one (GetCallerIdentity has none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AwsHeader {
    pub key: String,
    pub value: String,
}

/// `POST …/serviceAccounts/EMAIL:generateAccessToken` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct GenerateAccessTokenRequest {
    #[serde(default)]
    pub delegates: Option<Vec<String>>,
    #[serde(default)]
    pub scope: Option<Vec<String>>,
    /// A protobuf Duration (`"3600s"`).
    #[serde(default)]
    pub lifetime: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct GenerateAccessTokenResponse {
    pub access_token: String,
    /// RFC 3339.
    pub expire_time: String,
}

/// `POST …/serviceAccounts/EMAIL:generateIdToken` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct GenerateIdTokenRequest {
    #[serde(default)]
    pub delegates: Option<Vec<String>>,
    #[serde(default)]
    pub audience: Option<String>,
    #[serde(default)]
    pub include_email: Option<bool>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GenerateIdTokenResponse {
    pub token: String,
}
