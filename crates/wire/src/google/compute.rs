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
    /// What gcloud reads after `instances start` (the internal and external
    /// addresses it prints) and `compute ssh` needs.
    #[serde(default)]
    pub network_interfaces: Vec<NetworkInterface>,
    #[serde(default)]
    pub disks: Vec<AttachedDisk>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduling: Option<Scheduling>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Tags>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label_fingerprint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpu_platform: String,
    #[serde(default)]
    pub can_ip_forward: bool,
    #[serde(default)]
    pub deletion_protection: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_start_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stop_timestamp: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    pub kind: String,
    pub name: String,
    pub network: String,
    pub subnetwork: String,
    #[serde(rename = "networkIP")]
    pub network_ip: String,
    pub stack_type: String,
    pub fingerprint: String,
    /// An external address: present while the instance runs (an ephemeral
    /// address is released when it stops and a new one assigned at start).
    #[serde(default)]
    pub access_configs: Vec<AccessConfig>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AccessConfig {
    pub kind: String,
    pub name: String,
    #[serde(rename = "type")]
    pub type_: String,
    #[serde(rename = "natIP", default, skip_serializing_if = "Option::is_none")]
    pub nat_ip: Option<String>,
    pub network_tier: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttachedDisk {
    pub kind: String,
    #[serde(rename = "type")]
    pub type_: String,
    pub mode: String,
    pub source: String,
    pub device_name: String,
    pub index: i32,
    pub boot: bool,
    pub auto_delete: bool,
    pub interface: String,
    /// int64 as a JSON string, as Compute sends it.
    pub disk_size_gb: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Scheduling {
    pub on_host_maintenance: String,
    pub automatic_restart: bool,
    pub preemptible: bool,
    pub provisioning_model: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Tags {
    pub fingerprint: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub items: Vec<String>,
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
