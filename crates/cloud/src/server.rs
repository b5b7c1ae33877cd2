//! Starts the local cloud's listeners on loopback (the Google API port, one
//! metadata server per GCE VM, the AWS API port, one IMDS per EC2 instance and
//! one ECS agent endpoint per task), all served through keyway-serve (one
//! connection cap, header/idle/request timeouts and size caps for them all),
//! and describes them in `DATA/endpoints.json`, which `keyway cloud env`
//! reads to print the variables that point a process at this cloud.

use crate::cloud::Cloud;
use keyway_core::LoopbackAddr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

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

pub struct Running {
    pub endpoints: Endpoints,
    /// Serves every listener above under one connection cap and set of limits.
    server: keyway_serve::Server,
}

impl Running {
    /// Stops at once: listeners and connections close without waiting.
    pub fn abort(self) {
        self.server.abort();
    }

    /// Stops accepting, lets requests in progress finish, then closes.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }

    /// What the listeners have done (connections open, refused, timed out).
    pub fn stats(&self) -> keyway_serve::Stats {
        self.server.stats()
    }
}

/// Binds the Google API port (`google` may be port 0 for ephemeral) and one
/// ephemeral port per instance, and serves them with keyway-serve's default
/// limits until stopped.
pub async fn start(cloud: Arc<Cloud>, google: LoopbackAddr) -> std::io::Result<Running> {
    let server = keyway_serve::Server::new(keyway_serve::Limits::default());
    let addr = server
        .bind(google, crate::google::router(cloud.clone()))
        .await?;
    let base = format!("http://{addr}");
    let mut instances = BTreeMap::new();
    let list: Vec<(String, String, String, String)> = cloud
        .store
        .read()
        .instances
        .iter()
        .map(|(k, i)| (k.clone(), i.project.clone(), i.zone.clone(), i.name.clone()))
        .collect();
    for (key, project, zone, name) in list {
        let a = server
            .bind(
                LoopbackAddr::new(SocketAddr::new(google.get().ip(), 0))
                    .unwrap_or(LoopbackAddr::ephemeral()),
                crate::metadata::router(cloud.clone(), key),
            )
            .await?;
        instances.insert(
            name,
            InstanceEndpoint {
                project,
                zone,
                metadata: a.to_string(),
            },
        );
    }
    let mut users = BTreeMap::new();
    {
        let st = cloud.store.read();
        for email in st.users.keys() {
            let member = format!("user:{email}");
            let project = st
                .projects
                .values()
                .find(|p| p.iam.bindings.iter().any(|b| b.members.contains(&member)))
                .or_else(|| st.projects.values().next())
                .map(|p| p.id.clone());
            users.insert(
                email.clone(),
                UserEndpoint {
                    cloudsdk_config: cloud.user_config_dir(email).display().to_string(),
                    project,
                },
            );
        }
    }
    let aws = crate::aws::Aws::new(cloud.clone()).map_err(std::io::Error::other)?;
    let ip = google.get().ip();
    let any = || LoopbackAddr::new(SocketAddr::new(ip, 0)).unwrap_or(LoopbackAddr::ephemeral());
    let a = server.bind(any(), crate::aws::router(aws.clone())).await?;
    let aws_base = format!("http://{a}");
    let (ec2_list, task_list) = {
        let st = cloud.store.read();
        (
            st.aws.ec2.values().cloned().collect::<Vec<_>>(),
            st.aws.tasks.values().cloned().collect::<Vec<_>>(),
        )
    };
    let mut ec2 = BTreeMap::new();
    for i in ec2_list {
        let a = server
            .bind(
                any(),
                crate::aws::compute::imds_router(aws.clone(), i.name.clone()),
            )
            .await?;
        ec2.insert(
            i.name.clone(),
            Ec2Endpoint {
                account: i.account,
                region: i.region,
                instance_id: i.instance_id,
                imds: format!("http://{a}/"),
            },
        );
    }
    let mut ecs = BTreeMap::new();
    for t in task_list {
        let a = server
            .bind(
                any(),
                crate::aws::compute::ecs_router(aws.clone(), t.name.clone()),
            )
            .await?;
        ecs.insert(
            t.name.clone(),
            TaskEndpoint {
                account: t.account.clone(),
                region: t.region.clone(),
                agent: format!("http://{a}"),
                credentials_path: t
                    .task_role_arn
                    .as_ref()
                    .map(|_| format!("/v2/credentials/{}", t.credentials_id)),
                metadata_path: format!("/v4/{}", t.task_id),
            },
        );
    }
    let mut aws_users = BTreeMap::new();
    {
        let st = cloud.store.read();
        for u in st.aws.users.values() {
            let region = st
                .aws
                .secrets
                .values()
                .filter(|s| s.account == u.account)
                .map(|s| s.region.clone())
                .chain(
                    st.aws
                        .tasks
                        .values()
                        .filter(|t| t.account == u.account)
                        .map(|t| t.region.clone()),
                )
                .chain(
                    st.aws
                        .ec2
                        .values()
                        .filter(|i| i.account == u.account)
                        .map(|i| i.region.clone()),
                )
                .next()
                .unwrap_or_else(|| "us-east-1".into());
            let file = cloud
                .data_dir
                .join("aws")
                .join("users")
                .join(&u.account)
                .join(&u.name)
                .join("credentials");
            aws_users.insert(
                format!("{}/{}", u.account, u.name),
                AwsUserEndpoint {
                    credentials_file: file.display().to_string(),
                    region,
                },
            );
        }
    }
    let endpoints = Endpoints {
        pid: std::process::id(),
        google: base,
        instances,
        users,
        aws: aws_base,
        ec2,
        tasks: ecs,
        aws_users,
        control_token: aws.control_token.clone(),
    };
    Ok(Running { endpoints, server })
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
