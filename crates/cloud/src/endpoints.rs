//! What a running local cloud serves, and where: `DATA/endpoints.json` (and
//! the control token beside it, `DATA/control.token`), written by the running
//! cloud and read by `keyway cloud env` to print the variables that point a
//! process at this cloud, and by the data directory's lock to name the cloud
//! that holds it.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// What a running local cloud serves, and where.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Endpoints {
    pub pid: u32,
    /// Base URL of the Google APIs (`http://127.0.0.1:PORT`).
    pub google: String,
    /// Instance name → its metadata server.
    pub instances: BTreeMap<String, InstanceEndpoint>,
    /// User email → what a developer logged in as that user has.
    #[serde(default)]
    pub users: BTreeMap<String, UserEndpoint>,
    /// Base URL of the AWS APIs (STS, Secrets Manager): the value of AWS_ENDPOINT_URL.
    #[serde(default)]
    pub aws: String,
    /// EC2 instance name → its IMDS.
    #[serde(default)]
    pub ec2: BTreeMap<String, Ec2Endpoint>,
    /// ECS task name → its agent endpoint (credentials and task metadata).
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskEndpoint>,
    /// IAM user (`ACCOUNT/NAME`) → its shared credentials file and a default region.
    #[serde(default)]
    pub aws_users: BTreeMap<String, AwsUserEndpoint>,
    /// Guards the AWS port's `/_keyway/` control calls; kept in
    /// `DATA/control.token` (0600), never printed.
    #[serde(skip)]
    pub control_token: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Ec2Endpoint {
    pub account: String,
    pub region: String,
    pub instance_id: String,
    /// `http://127.0.0.1:PORT/`, the value of AWS_EC2_METADATA_SERVICE_ENDPOINT.
    pub imds: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AwsUserEndpoint {
    /// `DATA/aws/users/ACCOUNT/NAME/credentials` (profile `default`).
    pub credentials_file: String,
    /// The region of the account's first secret, task or instance (else us-east-1).
    pub region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TaskEndpoint {
    pub account: String,
    pub region: String,
    /// `http://127.0.0.1:PORT`.
    pub agent: String,
    /// The credentials path (`/v2/credentials/ID`), only if the task has a task role.
    pub credentials_path: Option<String>,
    /// The task metadata path (`/v4/TASK_ID`).
    pub metadata_path: String,
    /// For the EC2 launch type: the IMDS of the instance the task runs on
    /// (`http://127.0.0.1:PORT/`), which its containers reach too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_imds: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct UserEndpoint {
    /// A CLOUDSDK_CONFIG directory holding the user's application_default_credentials.json.
    pub cloudsdk_config: String,
    /// The project the user has a role in (the first one), for GOOGLE_CLOUD_PROJECT.
    pub project: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceEndpoint {
    pub project: String,
    pub zone: String,
    /// `host:port`, the value of GCE_METADATA_HOST.
    pub metadata: String,
}

impl Endpoints {
    /// The files [`Endpoints::write`] writes, with their contents.
    fn files(&self) -> [(&'static str, Vec<u8>); 2] {
        [
            ("control.token", self.control_token.as_bytes().to_vec()),
            (
                "endpoints.json",
                serde_json::to_vec_pretty(self).unwrap_or_default(),
            ),
        ]
    }

    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        for (name, body) in self.files() {
            crate::crypto::write_private(&data_dir.join(name), &body)?;
        }
        Ok(())
    }

    /// Removes what [`Endpoints::write`] wrote, but only files that still
    /// hold it: never another instance's.
    pub fn remove_written(&self, data_dir: &Path) {
        for (name, body) in self.files() {
            let path = data_dir.join(name);
            if std::fs::read(&path).is_ok_and(|b| b == body) {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    pub fn read(data_dir: &Path) -> Result<Endpoints, String> {
        let path = data_dir.join("endpoints.json");
        let body = std::fs::read(&path).map_err(|e| {
            format!(
                "cannot read {}: {e} (is `keyway cloud up` running with this --data directory?)",
                path.display()
            )
        })?;
        let mut ep: Endpoints = serde_json::from_slice(&body)
            .map_err(|e| format!("{} is not a keyway endpoints file: {e}", path.display()))?;
        ep.control_token = std::fs::read_to_string(data_dir.join("control.token"))
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Ok(ep)
    }
}
