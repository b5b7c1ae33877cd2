//! The commands that fix things, built from typed facts with the real names
//! filled in: one place for `exec`'s hints and `keyway doctor`, so a fix reads
//! the same wherever it is printed. Each is a [`Cmd`] (an argv), shown as one
//! shell line whose arguments are quoted only where a shell needs it, so the
//! line a user copies runs exactly that argv.

use serde::Serialize;
use std::fmt;

/// A command line: the program and its arguments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cmd(pub Vec<String>);

impl Cmd {
    pub fn new<I, S>(argv: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Cmd(argv.into_iter().map(Into::into).collect())
    }
}

impl fmt::Display for Cmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(&sh_quote(a))?;
        }
        Ok(())
    }
}

/// `arg` as a POSIX shell word: unchanged when it holds only safe characters
/// (an `--flag=` prefix may stay outside the quotes), else single-quoted.
pub fn sh_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./:=@,+%^".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) {
        return arg.to_owned();
    }
    let quoted = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    // --flag=value: quote the value only, as people write it.
    if let Some((flag, value)) = arg.split_once('=')
        && flag.starts_with("--")
        && flag.chars().all(safe)
    {
        return format!("{flag}={}", quoted(value));
    }
    quoted(arg)
}

pub const ACCESSOR: &str = "roles/secretmanager.secretAccessor";
pub const SECRET_VIEWER: &str = "roles/secretmanager.viewer";

/// The narrowest predefined role that grants a Secret Manager permission.
pub fn role_granting(permission: &str) -> &'static str {
    match permission {
        "secretmanager.versions.access" => ACCESSOR,
        _ => SECRET_VIEWER,
    }
}
pub const WORKLOAD_IDENTITY_USER: &str = "roles/iam.workloadIdentityUser";

/// The three commands that change a VM's access scopes (it must be stopped).
pub fn vm_scopes(project: &str, zone: &str, vm: &str, service_account: &str) -> Vec<Cmd> {
    let zone = format!("--zone={zone}");
    let project = format!("--project={project}");
    vec![
        Cmd::new([
            "gcloud",
            "compute",
            "instances",
            "stop",
            vm,
            &zone,
            &project,
        ]),
        Cmd::new([
            "gcloud",
            "compute",
            "instances",
            "set-service-account",
            vm,
            &zone,
            &format!("--service-account={service_account}"),
            "--scopes=cloud-platform",
            &project,
        ]),
        Cmd::new([
            "gcloud",
            "compute",
            "instances",
            "start",
            vm,
            &zone,
            &project,
        ]),
    ]
}

/// Grants `role` to `member` on one secret.
pub fn grant_on_secret(project: &str, secret: &str, member: &str, role: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "secrets",
        "add-iam-policy-binding",
        secret,
        &format!("--project={project}"),
        &format!("--member={member}"),
        &format!("--role={role}"),
    ])
}

/// Grants `role` to `member` on a service account (who may act as it). The
/// account's email names its project, so no `--project` is needed.
pub fn grant_on_service_account(service_account: &str, member: &str, role: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        service_account,
        &format!("--role={role}"),
        &format!("--member={member}"),
    ])
}

/// Lists a secret's versions (what exists, and each one's state).
pub fn list_versions(project: &str, secret: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "secrets",
        "versions",
        "list",
        secret,
        &format!("--project={project}"),
    ])
}

/// Enables a secret version.
pub fn enable_version(project: &str, secret: &str, version: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "secrets",
        "versions",
        "enable",
        version,
        &format!("--secret={secret}"),
        &format!("--project={project}"),
    ])
}

/// Shows a workload identity pool provider's attribute condition. The
/// provider is named in full (`projects/NUMBER/locations/L/workloadIdentityPools/P/providers/R`),
/// as a credential configuration's audience names it: gcloud refuses a
/// project number in `--project`, but takes it in a full resource name.
pub fn describe_provider(provider: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "iam",
        "workload-identity-pools",
        "providers",
        "describe",
        provider,
        "--format=value(attributeCondition)",
    ])
}

/// Sets a provider's attribute condition (`provider` named in full, as for
/// [`describe_provider`]).
pub fn set_provider_condition(provider: &str, aws: bool, condition: &str) -> Cmd {
    Cmd::new([
        "gcloud",
        "iam",
        "workload-identity-pools",
        "providers",
        if aws { "update-aws" } else { "update-oidc" },
        provider,
        &format!("--attribute-condition={condition}"),
    ])
}

/// The IAM policy statement allowing `action` on `resource`.
pub fn allow_statement(action: &str, resource: &str) -> serde_json::Value {
    serde_json::json!({"Effect": "Allow", "Action": action, "Resource": resource})
}

/// An IAM policy document allowing `action` on `resource`.
pub fn allow_policy(action: &str, resource: &str) -> String {
    serde_json::json!({
        "Version": "2012-10-17",
        "Statement": [allow_statement(action, resource)],
    })
    .to_string()
}

/// Puts an inline policy on a role or a user (`aws iam put-role-policy` /
/// `put-user-policy`).
pub fn put_policy(principal: &AwsPrincipal, policy_name: &str, document: &str) -> Option<Cmd> {
    let (verb, flag, name) = match principal {
        AwsPrincipal::Role(r) => ("put-role-policy", "--role-name", r.as_str()),
        AwsPrincipal::User(u) => ("put-user-policy", "--user-name", u.as_str()),
        AwsPrincipal::Other => return None,
    };
    Some(Cmd::new([
        "aws",
        "iam",
        verb,
        flag,
        name,
        "--policy-name",
        policy_name,
        "--policy-document",
        document,
    ]))
}

/// Who an AWS caller is, as IAM policies are attached to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsPrincipal {
    Role(String),
    User(String),
    Other,
}

impl AwsPrincipal {
    pub fn of(id: &keyway_auth::CallerIdentity) -> AwsPrincipal {
        match (id.role_name(), id.user_name()) {
            (Some(r), _) => AwsPrincipal::Role(r.to_owned()),
            (None, Some(u)) => AwsPrincipal::User(u.to_owned()),
            _ => AwsPrincipal::Other,
        }
    }
}

/// The secret's ARN pattern for a policy: the ARN given (with `-*` when it
/// lacks the six-character suffix AWS adds), or all versions of the name in
/// the caller's account and region.
pub fn secret_resource(secret_id: &str, region: &str, account: &str) -> String {
    if let Some(rest) = secret_id.strip_prefix("arn:") {
        let name = rest.splitn(6, ':').nth(5).unwrap_or_default();
        // A full ARN ends in -XXXXXX (six characters AWS chose).
        let full = name
            .rsplit_once('-')
            .is_some_and(|(_, s)| s.len() == 6 && s.chars().all(|c| c.is_ascii_alphanumeric()));
        if full {
            return secret_id.to_owned();
        }
        return format!("{secret_id}-*");
    }
    format!("arn:aws:secretsmanager:{region}:{account}:secret:{secret_id}-*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_quote_only_what_a_shell_needs() {
        let c = set_provider_condition(
            "projects/4/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider",
            true,
            "attribute.aws_role in ['a', 'b']",
        );
        assert_eq!(
            c.to_string(),
            "gcloud iam workload-identity-pools providers update-aws projects/4/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider \
             --attribute-condition='attribute.aws_role in ['\\''a'\\'', '\\''b'\\'']'"
        );
        let g = grant_on_secret(
            "p",
            "s",
            "serviceAccount:1-compute@developer.gserviceaccount.com",
            ACCESSOR,
        );
        assert_eq!(
            g.to_string(),
            "gcloud secrets add-iam-policy-binding s --project=p --member=serviceAccount:1-compute@developer.gserviceaccount.com --role=roles/secretmanager.secretAccessor"
        );
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(
            sh_quote("--format=value(attributeCondition)"),
            "--format='value(attributeCondition)'"
        );
    }

    #[test]
    fn secret_resources() {
        assert_eq!(
            secret_resource("app/db", "eu-west-1", "1"),
            "arn:aws:secretsmanager:eu-west-1:1:secret:app/db-*"
        );
        assert_eq!(
            secret_resource("arn:aws:secretsmanager:r:1:secret:app/db", "x", "2"),
            "arn:aws:secretsmanager:r:1:secret:app/db-*"
        );
        assert_eq!(
            secret_resource("arn:aws:secretsmanager:r:1:secret:app/db-AbC123", "x", "2"),
            "arn:aws:secretsmanager:r:1:secret:app/db-AbC123"
        );
    }
}
