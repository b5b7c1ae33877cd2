//! AWS wire shapes: Secrets Manager's JSON 1.1 bodies, the JSON error body of
//! JSON-protocol services, and the credential documents served by the ECS
//! container-credentials endpoint and by IMDS. STS speaks XML (query protocol);
//! its documents are small and written by the local cloud directly.

pub mod secretsmanager;

use serde::{Deserialize, Serialize};

/// The error body of a JSON-protocol service (`{"__type": "...", "Message": "..."}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct JsonError {
    #[serde(rename = "__type")]
    pub type_: String,
    #[serde(rename = "Message", alias = "message")]
    pub message: String,
}

/// `GET $AWS_CONTAINER_CREDENTIALS_FULL_URI` (ECS task role credentials).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    /// RFC 3339, UTC (`2026-11-23T19:28:37Z`).
    pub expiration: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
}

/// `GET /latest/meta-data/iam/security-credentials/ROLE` (IMDS).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "PascalCase")]
pub struct ImdsCredentials {
    pub code: String,
    pub last_updated: String,
    #[serde(rename = "Type")]
    pub type_: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub token: String,
    pub expiration: String,
}
