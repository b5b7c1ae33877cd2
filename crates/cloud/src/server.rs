//! Starts the local cloud's listeners on loopback (the Google API port, one
//! metadata server per GCE VM, the AWS API port, one IMDS per EC2 instance and
//! one ECS agent endpoint per task), all served through keyway-serve (one
//! connection cap, header/idle/request timeouts and size caps for them all),
//! and describes them as [`Endpoints`] (written to `DATA/endpoints.json`).

pub use crate::endpoints::{
    AwsUserEndpoint, Ec2Endpoint, Endpoints, InstanceEndpoint, TaskEndpoint, UserEndpoint,
};

use crate::cloud::Cloud;
use keyway_core::LoopbackAddr;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

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
    // One IMDS per instance and one agent per task, each on a port of its own.
    let bind = |app| server.bind(any(), app);
    let mut ec2 = BTreeMap::new();
    for i in ec2_list {
        let a = bind(crate::aws::compute::imds_router(
            aws.clone(),
            i.name.clone(),
        ))
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
        let a = bind(crate::aws::compute::ecs_router(aws.clone(), t.name.clone())).await?;
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
                node_imds: t
                    .instance
                    .as_ref()
                    .and_then(|n| ec2.get(n))
                    .map(|e| e.imds.clone()),
            },
        );
    }
    let mut aws_users = BTreeMap::new();
    {
        let st = cloud.store.read();
        for u in st.aws.users.values() {
            // The region of the account's first secret, else task, else instance.
            let placed = (st.aws.secrets.values().map(|s| (&s.account, &s.region)))
                .chain(st.aws.tasks.values().map(|t| (&t.account, &t.region)))
                .chain(st.aws.ec2.values().map(|i| (&i.account, &i.region)));
            let region = placed
                .filter(|(account, _)| **account == u.account)
                .map(|(_, region)| region.clone())
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
