//! The binary's one doorway to keyway-auth: build the context from the captured
//! environment, run Application Default Credentials, and describe who answered
//! (for hints and `whoami`), and explain why Workload Identity Federation
//! refused (the attribute condition, a missing workloadIdentityUser binding,
//! an ECS task without a task role).

use anyhow::Context;
use keyway_auth::{AuthContext, AuthError, CredentialKind, GoogleCredentials, Source};
use keyway_core::{Env, RealFs, Secret, SystemClock};
use keyway_http::{Call, Cap};
use std::sync::Arc;
use std::time::Duration;

pub const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The one HTTP client of a command (keyway-http's: lazy TLS roots, proxies
/// except for metadata and loopback).
pub fn http_client(env: &Env) -> reqwest::Client {
    keyway_http::client(env)
}

pub fn context(env: &Env, http: &reqwest::Client) -> AuthContext {
    AuthContext::new(
        env.clone(),
        Arc::new(RealFs),
        Arc::new(SystemClock),
        http.clone(),
    )
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

pub async fn credentials(env: &Env, http: &reqwest::Client) -> anyhow::Result<GoogleCredentials> {
    let ctx = context(env, http);
    Ok(keyway_auth::google_default(&ctx, &[CLOUD_PLATFORM.to_owned()]).await?)
}

/// An access token for the default credentials, and the credentials (to ask
/// who they are only if a hint needs it).
pub async fn token(
    env: &Env,
    http: &reqwest::Client,
) -> anyhow::Result<(Secret<String>, GoogleCredentials)> {
    let creds = credentials(env, http).await?;
    let tok = creds
        .access_token()
        .await
        .with_context(|| format!("getting an access token from {}", creds.source()))?;
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

/// Where to look when no Google credentials were found.
pub fn credentials_hint(env: &Env) -> Option<String> {
    let _ = env;
    Some("set GOOGLE_APPLICATION_CREDENTIALS to a credentials file, run `gcloud auth application-default login`, or run on a VM with a service account".into())
}

/// What an `external_account` credentials file says, as far as hints need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    pub path: std::path::PathBuf,
    /// The pool's project number, pool id and provider id (from `audience`).
    pub project_number: String,
    pub pool: String,
    pub provider: String,
    /// The service account impersonated, if any.
    pub service_account: Option<String>,
    /// Whether the subject token is a signed AWS request (`environment_id` aws1).
    pub aws: bool,
}

impl Federation {
    /// `principalSet://…/workloadIdentityPools/POOL/` + `rest`.
    fn pool_member(&self, rest: &str) -> String {
        format!(
            "principalSet://iam.googleapis.com/projects/{}/locations/global/workloadIdentityPools/{}/{rest}",
            self.project_number, self.pool
        )
    }

    /// The member for an AWS role (`attribute.aws_role`, Google's default AWS
    /// mapping), or every identity of the pool when the role is not known.
    pub fn member_for(&self, aws_role: Option<&str>) -> String {
        match aws_role {
            Some(r) if self.aws => self.pool_member(&format!("attribute.aws_role/{r}")),
            _ => self.pool_member("*"),
        }
    }
}

/// Parses an `external_account` document (None for any other type).
pub fn parse_federation(path: &std::path::Path, doc: &serde_json::Value) -> Option<Federation> {
    if doc.get("type")?.as_str()? != "external_account" {
        return None;
    }
    let audience = doc.get("audience")?.as_str()?;
    let rest = audience.strip_prefix("//iam.googleapis.com/projects/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [
        "locations",
        "global",
        "workloadIdentityPools",
        pool,
        "providers",
        provider,
    ] = parts.get(1..)?
    else {
        return None;
    };
    let service_account = doc
        .get("service_account_impersonation_url")
        .and_then(|u| u.as_str())
        .and_then(|u| u.rsplit_once("/serviceAccounts/"))
        .map(|(_, rest)| rest.split(':').next().unwrap_or(rest).to_owned());
    let aws = doc
        .pointer("/credential_source/environment_id")
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.starts_with("aws"));
    Some(Federation {
        path: path.to_path_buf(),
        project_number: parts[0].to_owned(),
        pool: (*pool).to_owned(),
        provider: (*provider).to_owned(),
        service_account,
        aws,
    })
}

/// The `external_account` file Application Default Credentials would read:
/// GOOGLE_APPLICATION_CREDENTIALS, else gcloud's well-known file.
pub fn federation(env: &Env) -> Option<Federation> {
    let path = match env.non_empty("GOOGLE_APPLICATION_CREDENTIALS") {
        Some(p) => std::path::PathBuf::from(p),
        None => {
            let dir = match env.non_empty("CLOUDSDK_CONFIG") {
                Some(d) => std::path::PathBuf::from(d),
                None => std::path::PathBuf::from(env.non_empty("HOME")?).join(".config/gcloud"),
            };
            dir.join("application_default_credentials.json")
        }
    };
    let bytes = std::fs::read(&path).ok()?;
    let doc: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    parse_federation(&path, &doc)
}

/// The AWS identity the workload presents (its ARN) and the role ARN Google's
/// default mapping puts in `attribute.aws_role`: asked of AWS STS with
/// keyway's AWS chain (best effort, hints only).
pub async fn aws_presented(env: &Env, http: &reqwest::Client) -> Option<(String, String)> {
    let ask = async {
        let p = crate::aws::provider(env, http, false).await.ok()?;
        let (_, arn, _) = crate::aws::caller_identity(env, http, &p).await.ok()?;
        Some(arn)
    };
    let arn = tokio::time::timeout(Duration::from_secs(10), ask)
        .await
        .ok()??;
    Some((arn.clone(), aws_role_attribute(&arn)))
}

/// `arn:aws:sts::A:assumed-role/ROLE/SESSION` → `arn:aws:sts::A:assumed-role/ROLE`; other ARNs unchanged.
pub fn aws_role_attribute(arn: &str) -> String {
    match arn.split_once(":assumed-role/") {
        Some((head, rest)) => format!(
            "{head}:assumed-role/{}",
            rest.split('/').next().unwrap_or(rest)
        ),
        None => arn.to_owned(),
    }
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
    let f = federation(env).filter(|f| f.service_account.is_none())?;
    let role = if f.aws {
        aws_presented(env, http).await.map(|(_, r)| r)
    } else {
        None
    };
    Some(f.member_for(role.as_deref()))
}

/// The fix when Google credentials could not be had: for Workload Identity
/// Federation, why STS or IAM Credentials refused; otherwise where to look.
pub async fn credentials_failure_hint(
    env: &Env,
    http: &reqwest::Client,
    e: &anyhow::Error,
) -> Option<String> {
    let auth = e
        .downcast_ref::<AuthError>()
        .or_else(|| e.chain().find_map(|c| c.downcast_ref::<AuthError>()));
    let Some(f) = federation(env) else {
        return credentials_hint(env);
    };
    match auth {
        Some(AuthError::SubjectToken { from, reason })
            if f.aws && from.starts_with("aws1") && reason.contains("no source answered") =>
        {
            Some(if crate::aws::in_ecs(env) {
                format!(
                    "this ECS task has no task role, so its containers get no AWS credentials (no AWS_CONTAINER_CREDENTIALS_* variable) to sign the subject token with. \
                     The task execution role does not help: ECS uses it only to pull images and resolve `secrets: valueFrom` before the container starts. \
                     Set taskRoleArn in the task definition to the role that provider {} of pool {} admits; no need to fetch and export AWS_* variables by hand",
                    f.provider, f.pool
                )
            } else {
                "aws1 signs the subject token with the workload's AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or run on ECS with a task role or on EC2 with an instance profile".into()
            })
        }
        Some(AuthError::Rejected {
            status: 400,
            summary: Some(s),
            ..
        }) if s.contains("unauthorized_client") => {
            let presented = if f.aws {
                aws_presented(env, http).await
            } else {
                None
            };
            let describe = format!(
                "gcloud iam workload-identity-pools providers describe {} --workload-identity-pool={} --location=global --project={} --format='value(attributeCondition)'",
                f.provider, f.pool, f.project_number
            );
            Some(match presented {
                Some((arn, role)) => {
                    let ecs = if crate::aws::in_ecs(env) {
                        format!(
                            " Inside an ECS task the identity presented is the task ROLE (here {}); the task EXECUTION role is used by ECS only before the container starts and is never seen by it: set taskRoleArn to the role the condition admits.",
                            role.rsplit('/').next().unwrap_or(&role)
                        )
                    } else {
                        String::new()
                    };
                    format!(
                        "Google STS refused the AWS identity this workload presented, {arn} (attribute.aws_role = {role}): the attribute condition of provider {} in pool {} does not admit it.{ecs} \
                         Run with the role the condition admits, or change the condition. See it:\n$ {describe}",
                        f.provider, f.pool
                    )
                }
                None => format!(
                    "the attribute condition of provider {} in pool {} rejects this workload's identity. See the condition:\n$ {describe}",
                    f.provider, f.pool
                ),
            })
        }
        Some(AuthError::Rejected {
            status: 403,
            summary: Some(s),
            ..
        }) if s.contains("iam.serviceAccounts.getAccessToken") => {
            let sa = f
                .service_account
                .clone()
                .unwrap_or_else(|| "SERVICE_ACCOUNT".into());
            let role = if f.aws {
                aws_presented(env, http).await.map(|(_, r)| r)
            } else {
                None
            };
            let member = f.member_for(role.as_deref());
            Some(format!(
                "the federated identity may not impersonate {sa} (or the account does not exist): it needs roles/iam.workloadIdentityUser on the service account. As the project owner:\n\
                 $ gcloud iam service-accounts add-iam-policy-binding {sa} --role=roles/iam.workloadIdentityUser --member={member}"
            ))
        }
        _ => credentials_hint(env),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn federation_files_and_members() {
        let doc = serde_json::json!({
            "type": "external_account",
            "audience": "//iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider",
            "service_account_impersonation_url": "http://127.0.0.1:9/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
            "credential_source": {"environment_id": "aws1"},
        });
        let f = parse_federation(std::path::Path::new("/c.json"), &doc).unwrap();
        assert_eq!(
            (
                f.project_number.as_str(),
                f.pool.as_str(),
                f.provider.as_str()
            ),
            ("402718395026", "bq-pool", "aws-provider")
        );
        assert_eq!(
            f.service_account.as_deref(),
            Some("sa@p.iam.gserviceaccount.com")
        );
        assert!(f.aws);
        assert_eq!(
            f.member_for(Some("arn:aws:sts::1:assumed-role/r")),
            "principalSet://iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/attribute.aws_role/arn:aws:sts::1:assumed-role/r"
        );
        assert!(
            f.member_for(None)
                .ends_with("/workloadIdentityPools/bq-pool/*")
        );
        assert_eq!(
            aws_role_attribute("arn:aws:sts::1:assumed-role/r/sess"),
            "arn:aws:sts::1:assumed-role/r"
        );
        assert_eq!(
            aws_role_attribute("arn:aws:iam::1:user/u"),
            "arn:aws:iam::1:user/u"
        );
        assert!(
            parse_federation(
                std::path::Path::new("/c.json"),
                &serde_json::json!({"type": "service_account"})
            )
            .is_none()
        );
        assert!(
            parse_federation(
                std::path::Path::new("/c.json"),
                &serde_json::json!({"type": "external_account", "audience": "x"})
            )
            .is_none()
        );
    }
}
