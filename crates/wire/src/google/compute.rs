//! The slice of Compute Engine v1 the local cloud serves: instances and zone operations.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub kind: String,
    pub id: String,
    pub creation_timestamp: String,
    pub name: String,
    pub machine_type: String,
    pub status: String,
    pub zone: String,
    #[serde(default)]
    pub service_accounts: Vec<ServiceAccountRef>,
    pub metadata: Metadata,
    pub self_link: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceAccountRef {
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Metadata {
    pub kind: String,
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<MetadataItem>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MetadataItem {
    pub key: String,
    pub value: String,
}

/// Body of `instances.setServiceAccount`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct SetServiceAccountRequest {
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    pub kind: String,
    pub id: String,
    pub name: String,
    pub zone: String,
    pub operation_type: String,
    pub target_link: String,
    pub target_id: String,
    pub status: String,
    pub user: String,
    pub progress: i32,
    pub insert_time: String,
    pub start_time: String,
    pub end_time: String,
    pub self_link: String,
}
