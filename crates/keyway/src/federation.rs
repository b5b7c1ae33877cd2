//! Workload Identity Federation diagnoses, for `keyway doctor` and for the
//! hints of `exec` and `get`: why Google STS or IAM Credentials refused a
//! federated workload, chosen by the typed error (the call, the OAuth error
//! code, the rpc status, the AWS chain's error), never by its text.
//!
//! When the attribute condition refuses the caller, the diagnosis shows the
//! identity as the provider maps it, the provider's condition and a
//! condition that admits the caller too (keeping whom it admits), with the
//! `gcloud … update-aws` command that sets it. The provider is read (IAM v1)
//! with the token of the person at this machine, as gcloud holds it
//! (CLOUDSDK_CORE_ACCOUNT and CLOUDSDK_AUTH_ACCESS_TOKEN_FILE): the workload
//! itself may not read its provider. The mapping and the conditions are
//! evaluated with the CEL of `keyway cloud` (Google's semantics), so the
//! condition printed is one that was checked to admit the caller.

use crate::diagnosis::{Code, Fix, Problem};
use crate::fixes;
use crate::google::{aws_presented, member_for};
use keyway_auth::{
    AuthError, AwsAuthError, CallerIdentity, Federation, GoogleCall, SubjectCause, SubjectFrom,
    SubjectSourceKind, WorkloadProvider,
};
use keyway_cloud::google::attributes::{self, Mapped};
use keyway_core::{Env, vars};
use keyway_http::google::{OAuthErrorCode, RpcStatus};
use keyway_http::{Call, Cap};
use std::collections::BTreeMap;
use std::time::Duration;

const OWNER: &str = "the project owner";
/// IAM v1 (workload identity pools), unless CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM says otherwise.
const IAM_DEFAULT: &str = "https://iam.googleapis.com/";
const PROVIDER_CAP: Cap = Cap::kib(256);
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The diagnosis of a federated workload's failure, when it is one of
/// federation's (`None` otherwise).
pub async fn problem(
    env: &Env,
    http: &reqwest::Client,
    f: &Federation,
    e: &AuthError,
) -> Option<Problem> {
    let provider = f.provider.as_ref();
    match e {
        AuthError::SubjectToken {
            from: SubjectFrom::Aws1,
            cause: SubjectCause::Aws(inner),
        } => Some(no_aws_credentials(env, provider, inner)),
        AuthError::Rejected(r)
            if r.call == GoogleCall::StsExchange
                && r.body.oauth_code() == Some(&OAuthErrorCode::InvalidTarget) =>
        {
            Some(Problem::new(
                Code::FederationAudienceMismatch,
                format!(
                    "Google STS does not know the audience {} (no such pool or provider, a disabled one, or a provider of another project number): \
                     the credential configuration must name the provider as `gcloud iam workload-identity-pools create-cred-config` writes it",
                    f.audience
                ),
            ))
        }
        AuthError::Rejected(r)
            if r.call == GoogleCall::StsExchange
                && r.body.oauth_code() == Some(&OAuthErrorCode::UnauthorizedClient) =>
        {
            let p = provider?;
            let presented = if f.subject == SubjectSourceKind::Aws1 {
                aws_presented(env, http).await
            } else {
                None
            };
            Some(match presented {
                Some(id) => condition_refused(env, http, p, &id).await,
                None => Problem::new(
                    Code::FederationConditionRefused,
                    format!(
                        "the attribute condition of provider {} in pool {} rejects this workload's identity. See the condition:",
                        p.provider, p.pool
                    ),
                )
                .fix(Fix::run(describe(p))),
            })
        }
        AuthError::Rejected(r)
            if r.call == GoogleCall::GenerateAccessToken
                && r.body.rpc().map(|r| &r.status) == Some(&RpcStatus::PermissionDenied) =>
        {
            let sa = f
                .service_account
                .clone()
                .unwrap_or_else(|| "SERVICE_ACCOUNT".into());
            let role = if f.subject == SubjectSourceKind::Aws1 {
                aws_presented(env, http).await.map(|id| id.assumed_role())
            } else {
                None
            };
            let member = member_for(f, role.as_deref())?;
            let fix = fixes::grant_on_service_account(&sa, &member, fixes::WORKLOAD_IDENTITY_USER);
            Some(Problem::new(Code::FederationMissingWorkloadIdentityUser, format!(
                "the federated identity {member} may not impersonate {sa} (or the account does not exist): it needs roles/iam.workloadIdentityUser on the service account."
            )).fix(Fix::run_as(OWNER, fix)))
        }
        _ => None,
    }
}

/// aws1 found no AWS credentials to sign the subject token with (or the
/// source that should have given them failed: that source's own diagnosis).
fn no_aws_credentials(
    env: &Env,
    provider: Option<&WorkloadProvider>,
    inner: &AwsAuthError,
) -> Problem {
    if !matches!(inner, AwsAuthError::NotConfigured { .. }) {
        // A source was there but failed (an ECS endpoint that does not answer, …).
        if let Some(p) = crate::aws::credentials_problem(env, inner) {
            return p;
        }
    }
    if crate::aws::in_ecs(env) {
        Problem::new(
            Code::FederationNoAwsCredentials,
            format!(
                "this ECS task has no task role, so its containers get no AWS credentials (no AWS_CONTAINER_CREDENTIALS_* variable) to sign the subject token with. \
                 The task execution role does not help: ECS uses it only to pull images and resolve `secrets: valueFrom` before the container starts. \
                 Set taskRoleArn in the task definition to the role that provider {} of pool {} admits; no need to fetch and export AWS_* variables by hand",
                provider.map(|p| p.provider.as_str()).unwrap_or("?"),
                provider.map(|p| p.pool.as_str()).unwrap_or("?"),
            ),
        )
    } else {
        Problem::new(
            Code::FederationNoAwsCredentials,
            "aws1 signs the subject token with the workload's AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), or run on ECS with a task role or on EC2 with an instance profile",
        )
    }
}

fn describe(p: &WorkloadProvider) -> fixes::Cmd {
    fixes::describe_provider(&p.name())
}

/// The provider as IAM v1 describes it (what the diagnosis needs).
struct ProviderView {
    condition: Option<String>,
    mapping: BTreeMap<String, String>,
}

/// Why the provider could not be read.
enum Unread {
    /// No gcloud identity of the person at this machine.
    NoPerson,
    /// IAM answered this status (the person may not read the provider, …).
    Refused(u16),
    /// No usable answer.
    NoAnswer,
}

/// The STS refusal of an AWS identity by the provider's attribute condition.
async fn condition_refused(
    env: &Env,
    http: &reqwest::Client,
    p: &WorkloadProvider,
    id: &CallerIdentity,
) -> Problem {
    let role = id.assumed_role();
    let assertion = serde_json::json!({"arn": id.arn, "account": id.account, "userid": id.user_id});
    let ecs = if crate::aws::in_ecs(env) {
        format!(
            " Inside an ECS task the identity presented is the task ROLE (here {}); the task EXECUTION role is used by ECS only before the container starts and is never seen by it: \
             set taskRoleArn in the task definition to a role the condition admits.",
            id.role_name().unwrap_or(&role)
        )
    } else {
        String::new()
    };
    let head = format!(
        "Google STS refused the AWS identity this workload presented, {}: the attribute condition of provider {} in pool {} does not admit it.{ecs}",
        id.arn, p.provider, p.pool
    );
    let view = match read_provider(env, http, p).await {
        Ok(v) => v,
        Err(why) => {
            let why = match why {
                Unread::NoPerson => format!(
                    "keyway could not read the condition (it reads the provider as the person at this machine: set {} and {} as gcloud has them)",
                    vars::CLOUDSDK_CORE_ACCOUNT,
                    vars::CLOUDSDK_AUTH_ACCESS_TOKEN_FILE
                ),
                Unread::Refused(s) => {
                    format!("IAM answered {s} when keyway read the provider's condition")
                }
                Unread::NoAnswer => {
                    "IAM did not answer when keyway read the provider's condition".to_owned()
                }
            };
            return Problem::new(
                Code::FederationConditionRefused,
                format!(
                    "{head} As Google's default AWS mapping maps it: google.subject = {}, attribute.aws_role = {role}. {why}. \
                     Run with a role the condition admits, or add `|| attribute.aws_role == '{role}'` to the condition \
                     (gcloud iam workload-identity-pools providers update-aws {} --attribute-condition=…). See it:",
                    id.arn, p.name()
                ),
            )
            .fix(Fix::run(describe(p)));
        }
    };
    let mapped = attributes::map_attributes(&view.mapping, &assertion).ok();
    let shown = match &mapped {
        Some(m) => mapped_text(m),
        None => format!(
            "(the mapping {} does not evaluate for it)",
            view.mapping
                .iter()
                .map(|(k, v)| format!("{k} = {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let condition = view.condition.as_deref().unwrap_or("");
    let admitted = admitted_roles(condition);
    let other_fix = match admitted.as_slice() {
        [] => "Run with a role the condition admits".to_owned(),
        roles => format!(
            "Run with a role the condition admits ({})",
            roles.join(" or ")
        ),
    };
    let mut cause = format!(
        "{head} The identity, as the provider maps it: {shown}. The condition: {condition}. {other_fix}, "
    );
    let new = mapped
        .as_ref()
        .filter(|m| m.attributes.contains_key("aws_role"))
        .map(|_| admitting(condition, &role))
        .filter(|new| {
            mapped
                .as_ref()
                .is_some_and(|m| attributes::condition_holds(new, &assertion, m).unwrap_or(false))
        });
    match new {
        Some(new) => {
            cause.push_str(&format!(
                "or let the condition admit this role too (it keeps whom it admits): {new}"
            ));
            Problem::new(Code::FederationConditionRefused, cause).fix(Fix::run_as(
                OWNER,
                fixes::set_provider_condition(&p.name(), true, &new),
            ))
        }
        None => {
            cause.push_str(
                "or change the condition so that it admits this identity (the provider maps no attribute.aws_role for it)",
            );
            Problem::new(Code::FederationConditionRefused, cause).fix(Fix::run(describe(p)))
        }
    }
}

/// `google.subject = …, attribute.NAME = …` for the mapped attributes.
fn mapped_text(m: &Mapped) -> String {
    let mut parts = vec![format!("google.subject = {}", m.subject)];
    if !m.groups.is_empty() {
        parts.push(format!("google.groups = [{}]", m.groups.join(", ")));
    }
    for (k, v) in &m.attributes {
        parts.push(format!("attribute.{k} = {v}"));
    }
    parts.join(", ")
}

/// A condition that admits `role` as well as whom `condition` admits: the
/// `==` or `in [...]` forms on attribute.aws_role are extended, anything
/// else is or-ed with a test for the role. No condition: only the role.
fn admitting(condition: &str, role: &str) -> String {
    let c = condition.trim();
    let quoted = format!("'{role}'");
    if c.is_empty() {
        return format!("attribute.aws_role == {quoted}");
    }
    let literal = |s: &str| {
        let s = s.trim();
        (s.len() >= 2
            && s.starts_with('\'')
            && s.ends_with('\'')
            && !s[1..s.len() - 1].contains(['\'', '\\']))
        .then(|| s.to_owned())
    };
    if let Some(rest) = c.strip_prefix("attribute.aws_role") {
        let rest = rest.trim_start();
        if let Some(one) = rest.strip_prefix("==").and_then(literal) {
            return format!("attribute.aws_role in [{one}, {quoted}]");
        }
        if let Some(list) = rest
            .strip_prefix("in")
            .map(str::trim)
            .and_then(|l| l.strip_prefix('['))
            .and_then(|l| l.strip_suffix(']'))
        {
            let items: Option<Vec<String>> = list
                .split(',')
                .filter(|i| !i.trim().is_empty())
                .map(literal)
                .collect();
            if let Some(mut items) = items {
                items.push(quoted);
                return format!("attribute.aws_role in [{}]", items.join(", "));
            }
        }
    }
    format!("({c}) || attribute.aws_role == {quoted}")
}

/// The IAM roles a condition names as `arn:aws:sts::ACCOUNT:assumed-role/NAME`
/// literals, as role ARNs (`arn:aws:iam::ACCOUNT:role/NAME`).
fn admitted_roles(condition: &str) -> Vec<String> {
    condition
        .split('\'')
        .skip(1)
        .step_by(2)
        .filter_map(|lit| {
            let (head, name) = lit.split_once(":assumed-role/")?;
            let account = head.strip_prefix("arn:aws:sts::")?;
            (!name.is_empty() && !name.contains('/'))
                .then(|| format!("arn:aws:iam::{account}:role/{name}"))
        })
        .collect()
}

/// Reads the provider with the token of the person at this machine.
async fn read_provider(
    env: &Env,
    http: &reqwest::Client,
    p: &WorkloadProvider,
) -> Result<ProviderView, Unread> {
    let (_, token) = crate::google::gcloud_person(env).ok_or(Unread::NoPerson)?;
    let mut base = env
        .non_empty(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_IAM)
        .unwrap_or(IAM_DEFAULT)
        .to_owned();
    if !base.ends_with('/') {
        base.push('/');
    }
    let url = format!("{base}v1/{}", p.name());
    let call = Call {
        doing: "reading the workload identity pool provider",
        url: &url,
        cap: PROVIDER_CAP,
    };
    let request = http.get(url.as_str()).bearer_auth(token.expose());
    let reply = keyway_http::exchange(request, CALL_TIMEOUT, &call)
        .await
        .map_err(|e| {
            tracing::debug!(error = %e, "reading the provider for a diagnosis");
            Unread::NoAnswer
        })?;
    if reply.status != 200 {
        return Err(Unread::Refused(reply.status));
    }
    let v: serde_json::Value =
        serde_json::from_slice(reply.body.expose()).map_err(|_| Unread::NoAnswer)?;
    let mut mapping: BTreeMap<String, String> = v["attributeMapping"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default();
    if mapping.is_empty() && v.get("aws").is_some() {
        mapping = attributes::default_aws_mapping();
    }
    Ok(ProviderView {
        condition: v["attributeCondition"].as_str().map(str::to_owned),
        mapping,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str = "arn:aws:sts::538104962771:assumed-role/rds-to-bigquery-task";
    const EXEC: &str = "arn:aws:sts::538104962771:assumed-role/ecsTaskExecutionRole";

    fn holds(cond: &str, arn: &str) -> bool {
        let a = serde_json::json!({"arn": arn, "account": "538104962771", "userid": "AROA:x"});
        let m = attributes::map_attributes(&attributes::default_aws_mapping(), &a).unwrap();
        attributes::condition_holds(cond, &a, &m).unwrap()
    }

    #[test]
    fn the_condition_printed_admits_the_caller_and_keeps_whom_it_admitted() {
        let before = format!("attribute.aws_role == '{TASK}'");
        let after = admitting(&before, EXEC);
        assert_eq!(after, format!("attribute.aws_role in ['{TASK}', '{EXEC}']"));
        assert!(holds(&after, &format!("{EXEC}/s1")) && holds(&after, &format!("{TASK}/s2")));
        assert!(!holds(
            &after,
            "arn:aws:sts::538104962771:assumed-role/other/s"
        ));
        let list = admitting(&after, "arn:aws:sts::538104962771:assumed-role/third");
        assert!(list.ends_with(", 'arn:aws:sts::538104962771:assumed-role/third']"));
        assert!(holds(&list, &format!("{TASK}/s")));
        // Another form: or-ed, still admitting the old ones.
        let other = "assertion.arn.startsWith('arn:aws:sts::538104962771:assumed-role/rds-')";
        let or = admitting(other, EXEC);
        assert_eq!(or, format!("({other}) || attribute.aws_role == '{EXEC}'"));
        assert!(holds(&or, &format!("{TASK}/s")) && holds(&or, &format!("{EXEC}/s")));
        assert_eq!(
            admitting("", EXEC),
            format!("attribute.aws_role == '{EXEC}'")
        );
    }

    #[test]
    fn roles_a_condition_admits() {
        assert_eq!(
            admitted_roles(&format!("attribute.aws_role in ['{TASK}', 'x']")),
            ["arn:aws:iam::538104962771:role/rds-to-bigquery-task"]
        );
        assert!(admitted_roles("true").is_empty());
    }
}
