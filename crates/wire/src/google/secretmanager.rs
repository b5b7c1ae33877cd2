//! Secret Manager v1 REST resources (`google.cloud.secretmanager.v1`), in the
//! proto3 JSON mapping: camelCase names, int64 as strings, bytes as base64.

use serde::{Deserialize, Deserializer, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Secret {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub create_time: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version_aliases: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

/// `SecretVersion.State`. Reads the enum's name or its number.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum VersionState {
    StateUnspecified,
    Enabled,
    Disabled,
    Destroyed,
}

impl VersionState {
    pub fn number(self) -> i64 {
        match self {
            VersionState::StateUnspecified => 0,
            VersionState::Enabled => 1,
            VersionState::Disabled => 2,
            VersionState::Destroyed => 3,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            VersionState::StateUnspecified => "STATE_UNSPECIFIED",
            VersionState::Enabled => "ENABLED",
            VersionState::Disabled => "DISABLED",
            VersionState::Destroyed => "DESTROYED",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "STATE_UNSPECIFIED" | "0" => VersionState::StateUnspecified,
            "ENABLED" | "1" => VersionState::Enabled,
            "DISABLED" | "2" => VersionState::Disabled,
            "DESTROYED" | "3" => VersionState::Destroyed,
            _ => return None,
        })
    }
}

impl<'de> Deserialize<'de> for VersionState {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        let s = match &v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            _ => String::new(),
        };
        VersionState::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown SecretVersion state {v}")))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersion {
    pub name: String,
    pub create_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_time: Option<String>,
    pub state: VersionState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_status: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
    #[serde(default)]
    pub client_specified_payload_checksum: bool,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SecretPayload {
    /// base64 of the payload bytes.
    #[serde(default)]
    pub data: String,
    #[serde(
        default,
        with = "crate::int64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub data_crc32c: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AccessSecretVersionResponse {
    pub name: String,
    pub payload: SecretPayload,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct AddSecretVersionRequest {
    #[serde(default)]
    pub payload: Option<SecretPayload>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListSecretsResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<Secret>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
    #[serde(default)]
    pub total_size: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ListSecretVersionsResponse {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<SecretVersion>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub next_page_token: String,
    #[serde(default)]
    pub total_size: i32,
}

/// Body of `:enable`, `:disable`, `:destroy`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VersionActionRequest {
    #[serde(default)]
    pub etag: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_reads_names_and_numbers() {
        let a: VersionState = serde_json::from_str("\"ENABLED\"").unwrap();
        let b: VersionState = serde_json::from_str("2").unwrap();
        assert_eq!(a, VersionState::Enabled);
        assert_eq!(b, VersionState::Disabled);
        assert!(serde_json::from_str::<VersionState>("\"BOGUS\"").is_err());
    }

    #[test]
    fn crc_is_an_int64_string() {
        let p = SecretPayload {
            data: "aGk=".into(),
            data_crc32c: Some(4294967295),
        };
        let s = serde_json::to_string(&p).unwrap();
        assert!(s.contains("\"dataCrc32c\":\"4294967295\""), "{s}");
        let back: SecretPayload =
            serde_json::from_str(r#"{"data":"aGk=","dataCrc32c":12}"#).unwrap();
        assert_eq!(back.data_crc32c, Some(12));
    }
}
