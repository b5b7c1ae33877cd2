//! The binary's one doorway to keyway-auth: build the context from the captured
//! environment, run Application Default Credentials, and describe who answered
//! (for diagnoses and `whoami`): the VM, the federated member, the AWS identity
//! an aws1 configuration presents. Why credentials failed is told by
//! `google_failure.rs` and `federation.rs`; what the credentials file says comes
//! from keyway-auth ([`keyway_auth::credential_file`]): the binary never reads or
//! parses a credentials file itself.

use crate::context::context;
use keyway_auth::{
    AuthError, CredentialKind, Federation, GoogleCredentials, Source, SubjectSourceKind,
};
use keyway_core::{Env, Secret, vars};
use keyway_http::{Call, Cap};
use std::time::Duration;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

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
    /// For a federated token used directly: the `principalSet://…` member that
    /// names the workload (see [`federated_member`]).
    pub principal: Option<String>,
}

impl Who {
    /// The IAM member string (`serviceAccount:…`, `user:…`, or a federated
    /// workload's `principalSet://…`).
    pub fn member(&self) -> String {
        if let Some(p) = &self.principal {
            return p.clone();
        }
        format!(
            "{}:{}",
            if self.service_account {
                "serviceAccount"
            } else {
                "user"
            },
            self.email
        )
    }
}

pub async fn credentials(
    env: &Env,
    http: &reqwest::Client,
) -> Result<GoogleCredentials, AuthError> {
    let ctx = context(env, http);
    keyway_auth::google_default(&ctx, &[CLOUD_PLATFORM.to_owned()]).await
}

/// Getting a token failed: either no credentials, or the credentials that
/// were found could not give a token.
#[derive(Debug)]
pub enum TokenError {
    NoCredentials(AuthError),
    Token { source: Source, error: AuthError },
}

impl TokenError {
    pub fn auth(&self) -> &AuthError {
        match self {
            TokenError::NoCredentials(e) | TokenError::Token { error: e, .. } => e,
        }
    }
}

impl std::fmt::Display for TokenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenError::NoCredentials(e) => e.fmt(f),
            TokenError::Token { source, error } => {
                write!(f, "getting an access token from {source}: {error}")
            }
        }
    }
}

/// An access token for the default credentials, and the credentials (to ask
/// who they are only if a hint needs it).
pub async fn token(
    env: &Env,
    http: &reqwest::Client,
) -> Result<(Secret<String>, GoogleCredentials), TokenError> {
    let creds = credentials(env, http)
        .await
        .map_err(TokenError::NoCredentials)?;
    let tok = creds
        .access_token()
        .await
        .map_err(|error| TokenError::Token {
            source: creds.source().clone(),
            error,
        })?;
    Ok((tok.token, creds))
}

pub async fn who(creds: &GoogleCredentials, http: &reqwest::Client) -> Who {
    let id = creds.identity().await.ok();
    let email = id
        .as_ref()
        .and_then(|i| i.email.clone())
        .unwrap_or_default();
    let (service_account, vm) = match creds.source() {
        Source::MetadataServer { host, .. } => (true, vm_of(http, host).await),
        _ => (email.ends_with(".gserviceaccount.com"), None),
    };
    Who {
        email,
        service_account,
        vm,
        principal: None,
    }
}

/// Who the credentials are, with the member a federated token used
/// directly acts as (it has no email).
pub async fn caller(env: &Env, http: &reqwest::Client, creds: &GoogleCredentials) -> Who {
    let mut who = who(creds, http).await;
    if who.email.is_empty() {
        who.principal = federated_member(env, http, creds).await;
    }
    who
}

/// The largest metadata value `vm_of` reads (a name, a zone, a project id).
const METADATA_VALUE: Cap = Cap::kib(64);

/// Name, zone and project of the VM behind a metadata server (best effort:
/// hints only). One quick attempt each, through keyway-http.
pub async fn vm_of(http: &reqwest::Client, host: &str) -> Option<Vm> {
    let get = |path: &str| {
        let url = format!("http://{host}/computeMetadata/v1/{path}");
        async move {
            let call = Call {
                doing: "reading the VM's metadata",
                url: &url,
                cap: METADATA_VALUE,
            };
            let request = http.get(url.as_str()).header("Metadata-Flavor", "Google");
            let reply = keyway_http::exchange(request, Duration::from_secs(2), &call)
                .await
                .map_err(|e| tracing::debug!(error = %e, "no VM details for the hint"))
                .ok()?;
            if reply.status != 200 || !reply.metadata_flavor() {
                return None;
            }
            String::from_utf8(reply.body.expose().clone()).ok()
        }
    };
    let name = get("instance/name").await?;
    let zone = get("instance/zone").await?;
    let project = get("project/project-id").await?;
    Some(Vm {
        name,
        zone: zone.rsplit('/').next().unwrap_or(&zone).to_owned(),
        project,
    })
}

/// The federation settings of the credentials file ADC reads, if it is an
/// `external_account` file (as keyway-auth parsed it).
pub fn federation(env: &Env, http: &reqwest::Client) -> Option<Federation> {
    keyway_auth::credential_file(&context(env, http))
        .ok()
        .flatten()
        .and_then(|f| f.federation)
}

/// The member for an AWS role (`attribute.aws_role`, Google's default AWS
/// mapping), or every identity of the pool when the role is not known.
pub fn member_for(f: &Federation, aws_role: Option<&str>) -> Option<String> {
    let p = f.provider.as_ref()?;
    Some(match aws_role {
        Some(r) if f.subject == SubjectSourceKind::Aws1 => {
            p.principal_set(&format!("attribute.aws_role/{r}"))
        }
        _ => p.principal_set("*"),
    })
}

/// Who the workload is on the AWS side: GetCallerIdentity with keyway's
/// AWS chain (best effort, hints only).
pub async fn aws_presented(
    env: &Env,
    http: &reqwest::Client,
) -> Option<keyway_auth::CallerIdentity> {
    let ask = async {
        let p = crate::aws::provider(env, http, false).await.ok()?;
        keyway_auth::caller_identity(&p).await.ok()
    };
    tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .ok()?
}

/// For credentials that are a federated token used directly: the member that
/// names this workload in IAM policies.
pub async fn federated_member(
    env: &Env,
    http: &reqwest::Client,
    creds: &GoogleCredentials,
) -> Option<String> {
    if creds.source().credential_kind() != Some(CredentialKind::ExternalAccount) {
        return None;
    }
    let f = creds
        .file()
        .and_then(|f| f.federation.clone())
        .filter(|f| f.service_account.is_none())?;
    let role = if f.subject == SubjectSourceKind::Aws1 {
        aws_presented(env, http).await.map(|id| id.assumed_role())
    } else {
        None
    };
    member_for(&f, role.as_deref())
}

/// The person at this machine as gcloud holds them: gcloud's active account
/// (CLOUDSDK_CORE_ACCOUNT) and the access token gcloud is told to use
/// (CLOUDSDK_AUTH_ACCESS_TOKEN_FILE, one line, at most 64 KiB). `keyway
/// doctor` asks with it what the workload itself may not (a provider's
/// condition, the person's own permissions).
pub fn gcloud_person(env: &Env) -> Option<(String, Secret<String>)> {
    use std::io::Read;
    let account = env.non_empty(vars::CLOUDSDK_CORE_ACCOUNT)?;
    let path = env.non_empty(vars::CLOUDSDK_AUTH_ACCESS_TOKEN_FILE)?;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(64 * 1024).read_to_string(&mut text))
        .ok()?;
    let token = text.trim();
    (!token.is_empty()).then(|| (account.to_owned(), Secret::new(token.to_owned())))
}
