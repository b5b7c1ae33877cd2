//! OAuth 2.0 as Google serves it: the token endpoint's success and error bodies,
//! `tokeninfo`, and the metadata server's token response (same fields, no scope).

use serde::{Deserialize, Serialize};

/// `POST /token` success body, and the metadata server's `.../token` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenResponse {
    pub access_token: String,
    pub expires_in: i64,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// `POST /token` error body (RFC 6749 section 5.2).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OAuthError {
    pub error: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_description: Option<String>,
}

/// `GET /tokeninfo?access_token=...` body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenInfo {
    pub azp: String,
    pub aud: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub scope: String,
    /// Seconds since the epoch, as a string (Google sends it quoted).
    pub exp: String,
    /// Seconds left, as a string.
    pub expires_in: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_type: Option<String>,
}

/// A JSON Web Key as published at `/oauth2/v3/certs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Jwk {
    pub kty: String,
    pub alg: String,
    #[serde(rename = "use")]
    pub use_: String,
    pub kid: String,
    pub n: String,
    pub e: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JwkSet {
    pub keys: Vec<Jwk>,
}

/// The content of an `authorized_user` credentials file, as
/// `gcloud auth application-default login` writes it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuthorizedUserFile {
    #[serde(rename = "type")]
    pub type_: String,
    pub client_id: String,
    pub client_secret: String,
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_project_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub universe_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A cached access token and its expiry (RFC 3339), which google-auth reads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiry: Option<String>,
}

/// The content of a `service_account` JSON key file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ServiceAccountKeyFile {
    #[serde(rename = "type")]
    pub type_: String,
    pub project_id: String,
    pub private_key_id: String,
    pub private_key: String,
    pub client_email: String,
    pub client_id: String,
    pub auth_uri: String,
    pub token_uri: String,
    pub auth_provider_x509_cert_url: String,
    pub client_x509_cert_url: String,
    pub universe_domain: String,
}
