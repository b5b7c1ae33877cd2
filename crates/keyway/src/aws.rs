//! The binary's doorway to AWS: run the credential chain from the captured
//! environment, ask STS who the credentials are (for `whoami`), and explain AWS
//! failures, in particular the ECS task role versus the task execution role.

use crate::google;
use keyway_auth::{AwsAuthError, AwsChainOptions, AwsCredentialsProvider, AwsSourceKind};
use keyway_core::{Env, SystemClock};
use keyway_secrets::FetchError;

/// The AWS credential chain. `probe_default_imds`: whether IMDS at its default
/// address may be asked when nothing else answered.
pub async fn provider(
    env: &Env,
    http: &reqwest::Client,
    probe_default_imds: bool,
) -> Result<AwsCredentialsProvider, AwsAuthError> {
    let ctx = google::context(env, http);
    keyway_auth::aws_default(
        &ctx,
        AwsChainOptions {
            probe_default_imds,
            ..AwsChainOptions::default()
        },
    )
    .await
}

/// Whether this machine says it is an EC2 instance (DMI vendor, or the Xen
/// hypervisor uuid), so that `whoami` probes IMDS only where one can exist.
pub fn looks_like_ec2() -> bool {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    read("/sys/class/dmi/id/board_vendor").contains("Amazon")
        || read("/sys/class/dmi/id/sys_vendor").contains("Amazon")
        || read("/sys/hypervisor/uuid").starts_with("ec2")
}

/// Whether the environment is an ECS task's.
pub fn in_ecs(env: &Env) -> bool {
    env.non_empty("ECS_CONTAINER_METADATA_URI_V4").is_some()
        || env
            .non_empty("AWS_EXECUTION_ENV")
            .is_some_and(|v| v.starts_with("AWS_ECS"))
}

/// The caller's identity: (account, arn, user id).
pub async fn caller_identity(
    env: &Env,
    http: &reqwest::Client,
    p: &AwsCredentialsProvider,
) -> Result<(String, String, String), String> {
    let creds = p.credentials().await.map_err(|e| e.to_string())?;
    let region = p
        .region()
        .map(|(r, _)| r.to_owned())
        .unwrap_or_else(|| "us-east-1".into());
    keyway_secrets::aws::caller_identity(http, env, &SystemClock, &creds, &region).await
}

/// What to do when no AWS credentials were found.
pub fn credentials_hint(env: &Env, e: &AwsAuthError) -> Option<String> {
    match e {
        AwsAuthError::NotConfigured { .. } if in_ecs(env) => Some(
            "this ECS task has no task role, so its containers get no AWS credentials (no AWS_CONTAINER_CREDENTIALS_* variable). \
             The task execution role does not help: ECS uses it only to pull images and resolve `secrets: valueFrom` before the container starts. \
             Set taskRoleArn in the task definition to a role that may call secretsmanager:GetSecretValue on the secret."
                .into(),
        ),
        AwsAuthError::Failed { kind: AwsSourceKind::WebIdentity, reason, .. } if reason.contains("AccessDenied") => Some(
            "the role's trust policy must allow sts:AssumeRoleWithWebIdentity for this token: Principal {\"Federated\": \"accounts.google.com\"} \
             with a condition accounts.google.com:aud = the service account's unique id (the token's azp, shown above) for Google, \
             or the IAM OIDC provider's ARN with HOST:aud/HOST:sub conditions"
                .into(),
        ),
        AwsAuthError::NotConfigured { .. } => {
            Some("set AWS_PROFILE (with keys in ~/.aws/credentials) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on EC2/ECS with a role".into())
        }
        _ => None,
    }
}

/// The fix for an AWS fetch failure, when keyway can tell.
pub fn hint(e: &FetchError, p: Option<&AwsCredentialsProvider>, env: &Env) -> Option<String> {
    let source = p.map(|p| p.source().kind);
    match e {
        FetchError::AwsAccessDenied { principal, action, resource, .. } => {
            let who = principal.clone().unwrap_or_else(|| "the caller".into());
            let action = action.clone().unwrap_or_else(|| "secretsmanager:GetSecretValue".into());
            let resource = resource.clone().unwrap_or_else(|| "the secret".into());
            let role = role_name(&who);
            Some(match (source, in_ecs(env)) {
                (Some(AwsSourceKind::EcsContainer), _) | (_, true) => format!(
                    "inside an ECS task keyway acts as the task ROLE ({}); allow {action} on {resource} in its policy (or the secret's resource policy). \
                     The task EXECUTION role is not involved: it only resolves `secrets: valueFrom` when the task starts.",
                    role.unwrap_or(&who)
                ),
                (Some(AwsSourceKind::Imds), _) => format!("allow {action} on {resource} in the policy of the instance profile's role ({})", role.unwrap_or(&who)),
                _ => format!("allow {action} on {resource} for {who} (an identity policy, or the secret's resource policy)"),
            })
        }
        FetchError::NotFound { .. } => Some("list what exists (the name is case-sensitive; check the region):\n$ aws secretsmanager list-secrets".into()),
        FetchError::AwsInvalidRequest { .. } => Some("if the secret is scheduled for deletion:\n$ aws secretsmanager restore-secret --secret-id NAME".into()),
        FetchError::AwsDecryption { .. } => Some("the caller also needs kms:Decrypt on the secret's KMS key".into()),
        FetchError::AwsCredentials { message, .. } => Some(credentials_refused_hint(message, p)),
        _ => None,
    }
}

/// Why AWS refused the credentials, naming where they came from.
fn credentials_refused_hint(message: &str, p: Option<&AwsCredentialsProvider>) -> String {
    let source = p
        .map(|p| p.source().to_string())
        .unwrap_or_else(|| "the credential chain".into());
    if message.contains("Signature expired") || message.contains("Signature not yet current") {
        return format!(
            "this machine's clock is more than 15 minutes away from AWS's, so AWS rejects every signed request (the message compares the request's time with AWS's); \
             fix the clock (NTP, e.g. timedatectl set-ntp true). The credentials came from the {source}"
        );
    }
    if message.contains("ExpiredToken") || message.contains("is expired") {
        return match p.map(|p| p.source().kind) {
            Some(AwsSourceKind::Environment | AwsSourceKind::Profile) => format!(
                "the temporary credentials (session token) from the {source} have expired; nothing refreshes them there: \
                 export fresh ones (aws sts assume-role, aws configure export-credentials) or use a source that refreshes (web identity, ECS, EC2)"
            ),
            _ => format!(
                "the temporary credentials from the {source} have expired; check the machine's clock, then retry (keyway refreshes them before their Expiration)"
            ),
        };
    }
    format!(
        "AWS does not accept the credentials from the {source}; check them with keyway whoami (the key may be deleted, inactive, or of another partition)"
    )
}

/// `arn:aws:sts::ACCOUNT:assumed-role/ROLE/SESSION` → ROLE.
fn role_name(arn: &str) -> Option<&str> {
    arn.split_once(":assumed-role/")
        .and_then(|(_, r)| r.split('/').next())
}
