//! The typed diagnosis model: what went wrong ([`Code`], a stable name for
//! each cause keyway can tell), the cause in words, and the fixes ([`Fix`]:
//! a command with the real names filled in, a file and line to change, or
//! an action outside any CLI). `exec` and `get` print a [`Problem`] as the
//! hint under a failure; `keyway doctor` prints one under each failed step
//! and serialises it in `--output json`. Every `Problem` is built by a match on
//! a typed error (see `google.rs`, `aws.rs`, `commands/resolve.rs`,
//! `commands/doctor/`), never on the text of a message.

use crate::fixes::Cmd;
use serde::Serialize;
use std::fmt;
use std::path::PathBuf;

/// Why something failed, as a stable name (`--output json`'s `code`; the
/// list is documented in README's "keyway doctor" section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    // ----- Google credentials
    /// No Application Default Credentials source answered.
    GoogleNoCredentials,
    /// GOOGLE_APPLICATION_CREDENTIALS names a file that does not exist.
    GoogleCredentialsFileMissing,
    /// The credentials file is not valid (JSON, a field, a URL).
    GoogleCredentialsFileInvalid,
    /// gcloud's user credentials were refused: expired or revoked.
    GoogleUserCredentialsExpired,
    /// GCE_METADATA_HOST names a metadata server that does not answer.
    GoogleMetadataUnreachable,
    // ----- Google access
    /// The token's OAuth scopes (a VM's access scopes) do not cover the API.
    GoogleScopeInsufficient,
    /// IAM denies a permission on the resource.
    GooglePermissionDenied,
    /// The user's own account holds the role; the VM's service account does not.
    GoogleUserHasRoleServiceAccountLacks,
    /// The reference names another project than the credentials belong to.
    GoogleProjectMismatch,
    /// The secret does not exist.
    GoogleSecretNotFound,
    /// The version does not exist.
    GoogleVersionNotFound,
    /// The version is disabled.
    GoogleVersionDisabled,
    /// The version is destroyed (it cannot come back).
    GoogleVersionDestroyed,
    /// The Secret Manager API is not enabled in the project.
    GoogleServiceDisabled,
    // ----- Workload Identity Federation
    /// The attribute condition refused the workload's identity.
    FederationConditionRefused,
    /// The audience names no provider that exists (or one that is disabled).
    FederationAudienceMismatch,
    /// The federated identity may not impersonate the service account.
    FederationMissingWorkloadIdentityUser,
    /// The credential configuration's URLs are not Google's.
    FederationBadUrl,
    /// No AWS credentials to sign the subject token with.
    FederationNoAwsCredentials,
    // ----- AWS
    /// No AWS credentials were found.
    AwsNoCredentials,
    /// An ECS task without a task role (its execution role does not help).
    AwsNoTaskRole,
    /// An ECS task whose credentials came from the EC2 node's instance role.
    AwsEcsUsesInstanceRole,
    /// The ECS container credentials endpoint did not answer.
    AwsEcsEndpointUnreachable,
    /// IAM denies the action on the resource.
    AwsAccessDenied,
    /// The temporary credentials have expired.
    AwsCredentialsExpired,
    /// This machine's clock is too far from AWS's for SigV4.
    AwsClockSkew,
    /// A long-term key with a leftover session token.
    AwsStaleSessionToken,
    /// AWS does not know the access key.
    AwsUnknownAccessKey,
    /// The signature did not verify (the secret key does not match the key id).
    AwsBadSignature,
    /// The role's trust policy refuses AssumeRoleWithWebIdentity.
    AwsTrustPolicyRefused,
    /// The secret does not exist (in this region).
    AwsSecretNotFound,
    /// The secret is scheduled for deletion.
    AwsSecretScheduledForDeletion,
    /// KMS refused to decrypt the secret.
    AwsKmsDecrypt,
    /// No region for the AWS reference.
    AwsNoRegion,
    // ----- Either
    /// The endpoint did not answer (network, override variable).
    Unreachable,
    /// Something failed that keyway has no specific diagnosis for.
    Other,
}

/// The name `--output json` uses (serde's rename is the one spelling).
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(s)) => f.write_str(&s),
            _ => f.write_str("other"),
        }
    }
}

/// One way to fix a problem.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fix {
    /// Run this command (gcloud, aws, …) as `who` (e.g. "the project owner").
    Run {
        #[serde(serialize_with = "argv")]
        command: Cmd,
        /// The shell line for `command` (quoted where a shell needs it).
        line: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        who: Option<String>,
    },
    /// Change this file (at this line).
    Edit {
        file: PathBuf,
        #[serde(skip_serializing_if = "Option::is_none")]
        line: Option<usize>,
        change: String,
    },
}

fn argv<S: serde::Serializer>(c: &Cmd, s: S) -> Result<S::Ok, S::Error> {
    c.0.serialize(s)
}

impl Fix {
    pub fn run(command: Cmd) -> Fix {
        Fix::Run {
            line: command.to_string(),
            command,
            who: None,
        }
    }

    pub fn run_as(who: &str, command: Cmd) -> Fix {
        Fix::Run {
            line: command.to_string(),
            command,
            who: Some(who.to_owned()),
        }
    }
}

/// A diagnosis: the cause in words and the fixes, in the order to apply them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub code: Code,
    pub cause: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fixes: Vec<Fix>,
}

impl Problem {
    pub fn new(code: Code, cause: impl Into<String>) -> Problem {
        Problem {
            code,
            cause: cause.into(),
            fixes: Vec::new(),
        }
    }

    pub fn fix(mut self, f: Fix) -> Problem {
        self.fixes.push(f);
        self
    }

    pub fn fixes(mut self, f: impl IntoIterator<Item = Fix>) -> Problem {
        self.fixes.extend(f);
        self
    }
}

/// The cause, then each fix on its own line (`$ command` for a command, so
/// that [`crate::output::wrap`] continues long commands with ` \`), as a hint
/// reads.
impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.cause)?;
        let mut who_said: Option<&str> = None;
        for fix in &self.fixes {
            match fix {
                Fix::Run { line, who, .. } => {
                    if let Some(w) = who.as_deref()
                        && who_said != Some(w)
                    {
                        write!(f, " As {w}:")?;
                        who_said = Some(w);
                    }
                    write!(f, "\n$ {line}")?;
                }
                Fix::Edit { file, line, change } => {
                    match line {
                        Some(n) => write!(f, "\nin {}, line {n}: {change}", file.display())?,
                        None => write!(f, "\nin {}: {change}", file.display())?,
                    }
                    who_said = None;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_reads_as_a_hint_and_serialises_with_its_code() {
        let p = Problem::new(Code::GooglePermissionDenied, "x lacks y.")
            .fix(Fix::run_as(
                "the project owner",
                Cmd::new(["gcloud", "secrets", "list"]),
            ))
            .fix(Fix::run_as(
                "the project owner",
                Cmd::new(["gcloud", "a b"]),
            ));
        assert_eq!(
            p.to_string(),
            "x lacks y. As the project owner:\n$ gcloud secrets list\n$ gcloud 'a b'"
        );
        let j = serde_json::to_value(&p).unwrap();
        assert_eq!(j["code"], "google_permission_denied");
        assert_eq!(
            j["fixes"][1]["command"],
            serde_json::json!(["gcloud", "a b"])
        );
        assert_eq!(j["fixes"][1]["line"], "gcloud 'a b'");
        assert_eq!(j["fixes"][0]["kind"], "run");
        assert_eq!(Code::AwsClockSkew.to_string(), "aws_clock_skew");
    }
}
