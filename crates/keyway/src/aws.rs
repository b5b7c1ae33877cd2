//! The binary's doorway to AWS: run the credential chain from the captured
//! environment, and explain AWS failures, in particular the ECS task role
//! versus the task execution role. Every explanation is chosen by matching
//! the typed error (AWS's error code, the service, the two clocks), never
//! its text.

use crate::context;
use crate::diagnosis::{Code, Fix, Problem};
use crate::fixes::{self, AwsPrincipal, Cmd};
use keyway_auth::aws::{AwsErrorKind, AwsService, Rejection};
use keyway_auth::{
    AwsAuthError, AwsChainOptions, AwsCredentialsProvider, AwsSourceKind, CallerIdentity,
};
use keyway_core::vars;
use keyway_core::{Env, Reference};
use keyway_secrets::FetchError;

/// The AWS credential chain. `probe_default_imds`: whether IMDS at its default
/// address may be asked when nothing else answered.
pub async fn provider(
    env: &Env,
    http: &reqwest::Client,
    probe_default_imds: bool,
) -> Result<AwsCredentialsProvider, AwsAuthError> {
    let ctx = context::context(env, http);
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
    read("/sys/class/dmi/id/board_vendor").starts_with("Amazon")
        || read("/sys/class/dmi/id/sys_vendor").starts_with("Amazon")
        || read("/sys/hypervisor/uuid").starts_with("ec2")
}

/// Whether the environment is an ECS task's.
pub fn in_ecs(env: &Env) -> bool {
    env.non_empty(vars::ECS_CONTAINER_METADATA_URI_V4).is_some()
        || env
            .non_empty(vars::AWS_EXECUTION_ENV)
            .is_some_and(|v| v.starts_with("AWS_ECS"))
}

pub const NO_TASK_ROLE: &str = "this ECS task has no task role, so its containers get no AWS credentials (no AWS_CONTAINER_CREDENTIALS_* variable). \
     The task execution role does not help: ECS uses it only to pull images and resolve `secrets: valueFrom` before the container starts. \
     Set taskRoleArn in the task definition to a role that may call secretsmanager:GetSecretValue on the secret.";

/// The diagnosis when no AWS credentials could be had.
pub fn credentials_problem(env: &Env, e: &AwsAuthError) -> Option<Problem> {
    match e {
        AwsAuthError::NotConfigured { .. } if in_ecs(env) => {
            Some(Problem::new(Code::AwsNoTaskRole, NO_TASK_ROLE))
        }
        AwsAuthError::NotConfigured { .. } => Some(Problem::new(
            Code::AwsNoCredentials,
            "set AWS_PROFILE (with keys in ~/.aws/credentials) or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run on EC2/ECS with a role",
        )),
        AwsAuthError::Transport {
            kind: AwsSourceKind::EcsContainer,
            ..
        } => {
            // The SDKs' order: the relative URI (on ECS's link-local address) first.
            let named = match (
                env.non_empty(vars::AWS_CONTAINER_CREDENTIALS_RELATIVE_URI),
                env.non_empty(vars::AWS_CONTAINER_CREDENTIALS_FULL_URI),
            ) {
                (Some(rel), _) => format!(
                    "{} is {rel} (so http://169.254.170.2{rel})",
                    vars::AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
                ),
                (None, Some(full)) => {
                    format!("{} is {full}", vars::AWS_CONTAINER_CREDENTIALS_FULL_URI)
                }
                (None, None) => "the ECS container credentials endpoint".to_owned(),
            };
            Some(Problem::new(
                Code::AwsEcsEndpointUnreachable,
                format!(
                    "{named}, but nothing there answers: outside ECS, unset the variable; inside, check that the task's network mode \
                     reaches 169.254.170.2, or that the broker a _FULL_URI names is running"
                ),
            ))
        }
        AwsAuthError::Rejected(r)
            if r.service == AwsService::StsAssumeRoleWithWebIdentity
                && r.code.kind() == AwsErrorKind::AccessDenied =>
        {
            Some(Problem::new(
                Code::AwsTrustPolicyRefused,
                "the role's trust policy must allow sts:AssumeRoleWithWebIdentity for this token: Principal {\"Federated\": \"accounts.google.com\"} \
                 with a condition accounts.google.com:aud = the service account's unique id (the token's azp, shown above) for Google, \
                 or the IAM OIDC provider's ARN with HOST:aud/HOST:sub conditions",
            ))
        }
        AwsAuthError::Rejected(r) => refused_problem(r, None),
        _ => None,
    }
}

/// Facts a diagnosis of an AWS failure may use, asked only when something failed.
#[derive(Default)]
pub struct Facts {
    /// Who the credentials are (GetCallerIdentity), when AWS still accepts them.
    pub identity: Option<CallerIdentity>,
    /// A long-term key (`AKIA…`) with a session token beside it.
    pub stale_session_token: bool,
}

/// Gathers [`Facts`] for diagnoses.
pub async fn facts(p: &AwsCredentialsProvider) -> Facts {
    let stale_session_token = p
        .credentials()
        .await
        .is_ok_and(|c| c.is_long_term_key() && c.session_token.is_some());
    Facts {
        identity: keyway_auth::caller_identity(p).await.ok(),
        stale_session_token,
    }
}

/// The diagnosis of an AWS fetch failure, when keyway can tell.
pub fn problem(
    e: &FetchError,
    reference: &Reference,
    p: Option<&AwsCredentialsProvider>,
    env: &Env,
    facts: &Facts,
) -> Option<Problem> {
    let source = p.map(|p| p.source().kind);
    match e {
        FetchError::AwsAccessDenied { .. } => {
            let id = facts.identity.as_ref()?;
            let Reference::AwsSecretsManager {
                region, secret_id, ..
            } = reference
            else {
                return None;
            };
            let region = region
                .clone()
                .or_else(|| p.and_then(|p| p.region()).map(|(r, _)| r.to_owned()))
                .unwrap_or_else(|| "us-east-1".into());
            let resource = fixes::secret_resource(secret_id, &region, &id.account);
            let action = "secretsmanager:GetSecretValue";
            let doc = fixes::allow_policy(action, &resource);
            let principal = AwsPrincipal::of(id);
            let fix = fixes::put_policy(&principal, "keyway-read-secret", &doc).map(Fix::run);
            let denied = format!(
                "{} may not {action} on {resource}: no statement of its policies (nor the secret's resource policy) allows it.",
                id.arn
            );
            let whose = match (source, in_ecs(env), &principal) {
                (Some(AwsSourceKind::EcsContainer), _, AwsPrincipal::Role(role))
                | (_, true, AwsPrincipal::Role(role)) => format!(
                    "Inside an ECS task keyway acts as the task ROLE ({role}): the statement belongs in its policy. \
                     The task EXECUTION role is not involved: it only resolves `secrets: valueFrom` when the task starts."
                ),
                (Some(AwsSourceKind::Imds), _, AwsPrincipal::Role(role)) => format!(
                    "The statement belongs in the policy of the instance profile's role ({role})."
                ),
                _ => "The statement belongs in an identity policy of the caller, or in the secret's resource policy.".to_owned(),
            };
            let cause = format!(
                "{denied} {whose} The statement to add: {}",
                fixes::allow_statement(action, &resource)
            );
            Some(Problem::new(Code::AwsAccessDenied, cause).fixes(fix))
        }
        FetchError::NotFound { .. } => Some(
            Problem::new(
                Code::AwsSecretNotFound,
                "list what exists (the name is case-sensitive; check the region):",
            )
            .fix(Fix::run(Cmd::new([
                "aws",
                "secretsmanager",
                "list-secrets",
            ]))),
        ),
        FetchError::AwsInvalidRequest { .. } => {
            let Reference::AwsSecretsManager { secret_id, .. } = reference else {
                return None;
            };
            Some(
                Problem::new(
                    Code::AwsSecretScheduledForDeletion,
                    "if the secret is scheduled for deletion:",
                )
                .fix(Fix::run(Cmd::new([
                    "aws",
                    "secretsmanager",
                    "restore-secret",
                    "--secret-id",
                    secret_id,
                ]))),
            )
        }
        FetchError::AwsDecryption { .. } => Some(Problem::new(
            Code::AwsKmsDecrypt,
            "the caller also needs kms:Decrypt on the secret's KMS key",
        )),
        FetchError::AwsNoRegion { .. } => Some(Problem::new(
            Code::AwsNoRegion,
            "set AWS_REGION (or the profile's region), or write the secret's full ARN in the reference",
        )),
        FetchError::AwsRefused { rejection, .. } => refused_problem(rejection, Some(facts)),
        FetchError::AwsCredentials { error, .. } => credentials_problem(env, error),
        _ => None,
    }
}

/// Why AWS refused the credentials themselves, naming where they came from:
/// a clock far off (AWS's `Date` against ours), expired temporary
/// credentials, a long-term key with a session token, or a key AWS does not know.
pub fn refused_problem(r: &Rejection, facts: Option<&Facts>) -> Option<Problem> {
    let source = r.source;
    if r.clock_skewed() {
        return Some(Problem::new(
            Code::AwsClockSkew,
            format!(
                "this machine's clock is more than 15 minutes away from AWS's (AWS's Date header against the time keyway signed at), \
             so AWS rejects every signed request; fix the clock (NTP, e.g. timedatectl set-ntp true). The credentials came from the {source}"
            ),
        ));
    }
    Some(match r.code.kind() {
        AwsErrorKind::ExpiredCredentials => Problem::new(
            Code::AwsCredentialsExpired,
            match source {
                AwsSourceKind::Environment | AwsSourceKind::Profile => format!(
                    "the temporary credentials (session token) from the {source} have expired; nothing refreshes them there: \
                     export fresh ones (aws sts assume-role, aws configure export-credentials) or use a source that refreshes (web identity, ECS, EC2)"
                ),
                _ => format!(
                    "the temporary credentials from the {source} have expired; check the machine's clock, then retry (keyway refreshes them before their Expiration)"
                ),
            },
        ),
        AwsErrorKind::UnknownCredentials if facts.is_some_and(|f| f.stale_session_token) => {
            Problem::new(
                Code::AwsStaleSessionToken,
                format!(
                    "the {source} holds a long-term access key (AKIA…) and a session token beside it: AWS refuses a long-term key sent with any session token. \
             The session token is left over from earlier temporary credentials{}",
                    if source == AwsSourceKind::Environment {
                        "; in the shell that runs keyway:"
                    } else {
                        ": remove aws_session_token from the profile"
                    }
                ),
            )
            .fixes(
                (source == AwsSourceKind::Environment)
                    .then(|| Fix::run(Cmd::new(["unset", vars::AWS_SESSION_TOKEN]))),
            )
        }
        AwsErrorKind::UnknownCredentials => Problem::new(
            Code::AwsUnknownAccessKey,
            format!(
                "AWS does not know the access key from the {source} (deleted, inactive, or of another account or partition); check them with keyway whoami"
            ),
        ),
        AwsErrorKind::BadSignature => Problem::new(
            Code::AwsBadSignature,
            format!(
                "the signature did not verify: the secret access key from the {source} does not belong to its access key id"
            ),
        ),
        _ => return None,
    })
}
