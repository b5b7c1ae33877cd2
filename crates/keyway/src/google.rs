//! The binary's one doorway to keyway-auth: build the context from the captured
//! environment, run Application Default Credentials, and describe who answered
//! (for hints and `whoami`).

use anyhow::Context;
use keyway_auth::{AuthContext, GoogleCredentials, Source};
use keyway_core::{Env, RealFs, Secret, SystemClock};
use std::sync::Arc;
use std::time::Duration;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

pub fn http_client() -> reqwest::Client {
    crate::http::client()
}

pub fn context(env: &Env, http: &reqwest::Client) -> AuthContext {
    AuthContext::new(env.clone(), Arc::new(RealFs), Arc::new(SystemClock), http.clone())
}

/// The VM a metadata-server identity runs on.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Vm {
    pub name: String,
    pub zone: String,
    pub project: String,
}

/// Who the credentials are, as far as hints need.
#[derive(Debug, Clone)]
pub struct Who {
    pub email: String,
    pub service_account: bool,
    pub vm: Option<Vm>,
}

impl Who {
    /// The IAM member string (`serviceAccount:…` or `user:…`).
    pub fn member(&self) -> String {
        format!("{}:{}", if self.service_account { "serviceAccount" } else { "user" }, self.email)
    }
}

pub async fn credentials(env: &Env, http: &reqwest::Client) -> anyhow::Result<GoogleCredentials> {
    let ctx = context(env, http);
    Ok(keyway_auth::google_default(&ctx, &[CLOUD_PLATFORM.to_owned()]).await?)
}

/// An access token for the default credentials, and the credentials (to ask
/// who they are only if a hint needs it).
pub async fn token(env: &Env, http: &reqwest::Client) -> anyhow::Result<(Secret<String>, GoogleCredentials)> {
    let creds = credentials(env, http).await?;
    let tok = creds.access_token().await.with_context(|| format!("getting an access token from {}", creds.source()))?;
    Ok((tok.token, creds))
}

pub async fn who(creds: &GoogleCredentials, http: &reqwest::Client) -> Who {
    let id = creds.identity().await.ok();
    let email = id.as_ref().and_then(|i| i.email.clone()).unwrap_or_default();
    let (service_account, vm) = match creds.source() {
        Source::MetadataServer { host, .. } => (true, vm_of(http, host).await),
        _ => (email.ends_with(".gserviceaccount.com"), None),
    };
    Who { email, service_account, vm }
}

/// Name, zone and project of the VM behind a metadata server (best effort: hints only).
pub async fn vm_of(http: &reqwest::Client, host: &str) -> Option<Vm> {
    let get = |path: &str| {
        let url = format!("http://{host}/computeMetadata/v1/{path}");
        async move {
            let r = http.get(url).header("Metadata-Flavor", "Google").timeout(Duration::from_secs(2)).send().await.ok()?;
            if !r.status().is_success() {
                return None;
            }
            r.text().await.ok()
        }
    };
    let name = get("instance/name").await?;
    let zone = get("instance/zone").await?;
    let project = get("project/project-id").await?;
    Some(Vm { name, zone: zone.rsplit('/').next().unwrap_or(&zone).to_owned(), project })
}

/// Where to look when no Google credentials were found.
pub fn credentials_hint(env: &Env) -> Option<String> {
    let _ = env;
    Some("set GOOGLE_APPLICATION_CREDENTIALS to a credentials file, run `gcloud auth application-default login`, or run on a VM with a service account".into())
}
