//! Starts the local cloud's listeners on loopback and describes them in
//! `DATA/endpoints.json`, which `keyway cloud env` reads to print the variables
//! that point a process at this cloud.

use crate::cloud::Cloud;
use keyway_core::LoopbackAddr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

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
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn abort(self) {
        for t in self.tasks {
            t.abort();
        }
    }
}

async fn bind(addr: LoopbackAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(addr.get()).await?;
    let a = l.local_addr()?;
    Ok((l, a))
}

fn spawn(l: TcpListener, router: axum::Router) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(l, router).await {
            tracing::error!(%e, "a local cloud listener stopped");
        }
    })
}

/// Binds the Google API port (`google` may be port 0 for ephemeral) and one
/// ephemeral port per instance, and serves them until aborted.
pub async fn start(cloud: Arc<Cloud>, google: LoopbackAddr) -> std::io::Result<Running> {
    let mut tasks = Vec::new();
    let (l, addr) = bind(google).await?;
    tasks.push(spawn(l, crate::google::router(cloud.clone())));
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
        let (l, a) = bind(LoopbackAddr::new(SocketAddr::new(google.get().ip(), 0)).unwrap_or(LoopbackAddr::ephemeral())).await?;
        tasks.push(spawn(l, crate::metadata::router(cloud.clone(), key)));
        instances.insert(name, InstanceEndpoint { project, zone, metadata: a.to_string() });
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
            users.insert(email.clone(), UserEndpoint { cloudsdk_config: cloud.user_config_dir(email).display().to_string(), project });
        }
    }
    Ok(Running { endpoints: Endpoints { pid: std::process::id(), google: base, instances, users }, tasks })
}

impl Endpoints {
    pub fn write(&self, data_dir: &Path) -> std::io::Result<()> {
        let body = serde_json::to_vec_pretty(self).unwrap_or_default();
        crate::crypto::write_private(&data_dir.join("endpoints.json"), &body)
    }

    pub fn read(data_dir: &Path) -> Result<Endpoints, String> {
        let path = data_dir.join("endpoints.json");
        let body = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e} (is `keyway cloud up` running with this --data directory?)", path.display()))?;
        serde_json::from_slice(&body).map_err(|e| format!("{} is not a keyway endpoints file: {e}", path.display()))
    }
}
