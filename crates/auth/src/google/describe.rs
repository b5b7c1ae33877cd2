//! What a credentials file says, as data and without its secrets: its type,
//! whose it is, and for Workload Identity Federation the pool, provider,
//! project number, impersonated service account and subject-token source.
//! The binary (its hints, `keyway doctor`) reads these instead of reading or
//! parsing a credentials file itself.

use super::external::{ExternalAccountConfig, SubjectSource};
use super::file::CredentialsFile;
use super::source::{CredentialKind, SourceKind};
use super::sts;
use crate::http::redact_url;
use std::path::{Path, PathBuf};

/// A parsed credentials file, described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFile {
    pub path: PathBuf,
    /// How it was found (GOOGLE_APPLICATION_CREDENTIALS or gcloud's file).
    pub origin: SourceKind,
    pub kind: CredentialKind,
    /// `authorized_user`: the account gcloud recorded (if it did);
    /// `service_account`: `client_email`; `impersonated_service_account`: the target.
    pub account: Option<String>,
    /// `quota_project_id`, or a service account key's `project_id`.
    pub project: Option<String>,
    /// The token endpoint (`token_uri`, or STS's `token_url`), without query.
    pub token_url: Option<String>,
    /// For `external_account` files.
    pub federation: Option<Federation>,
}

/// The Workload Identity Federation settings of an `external_account` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Federation {
    /// The STS audience as written (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/P/providers/R`).
    pub audience: String,
    /// The pool and provider the audience names, when it names a workload identity pool.
    pub provider: Option<WorkloadProvider>,
    /// The service account impersonated (from `service_account_impersonation_url`).
    pub service_account: Option<String>,
    /// `service_account_impersonation_url`, without query.
    pub impersonation_url: Option<String>,
    pub subject_token_type: String,
    pub subject: SubjectSourceKind,
}

/// A workload identity pool provider, as an audience names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadProvider {
    pub project_number: String,
    pub location: String,
    pub pool: String,
    pub provider: String,
}

impl WorkloadProvider {
    /// `projects/N/locations/L/workloadIdentityPools/P/providers/R`.
    pub fn name(&self) -> String {
        format!(
            "projects/{}/locations/{}/workloadIdentityPools/{}/providers/{}",
            self.project_number, self.location, self.pool, self.provider
        )
    }

    /// `projects/N/locations/L/workloadIdentityPools/P`.
    pub fn pool_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/workloadIdentityPools/{}",
            self.project_number, self.location, self.pool
        )
    }

    /// The audience an `external_account` file for this provider carries.
    pub fn audience(&self) -> String {
        format!("//iam.googleapis.com/{}", self.name())
    }

    /// `principalSet://iam.googleapis.com/projects/N/locations/L/workloadIdentityPools/P/` + `rest`.
    pub fn principal_set(&self, rest: &str) -> String {
        format!(
            "principalSet://iam.googleapis.com/{}/{rest}",
            self.pool_name()
        )
    }

    /// Parses an audience; `None` unless it names a workload identity pool provider.
    pub fn from_audience(audience: &str) -> Option<WorkloadProvider> {
        let rest = audience.strip_prefix("//iam.googleapis.com/projects/")?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [
            number,
            "locations",
            location,
            "workloadIdentityPools",
            pool,
            "providers",
            provider,
        ] = parts.as_slice()
        else {
            return None;
        };
        if [number, location, pool, provider]
            .iter()
            .any(|p| p.is_empty())
        {
            return None;
        }
        Some(WorkloadProvider {
            project_number: (*number).to_owned(),
            location: (*location).to_owned(),
            pool: (*pool).to_owned(),
            provider: (*provider).to_owned(),
        })
    }
}

/// Where an `external_account` file says the subject token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectSourceKind {
    File(PathBuf),
    Url(String),
    Executable(String),
    /// A signed AWS GetCallerIdentity request (`environment_id` aws1).
    Aws1,
}

impl CredentialFile {
    pub(crate) fn of(path: &Path, origin: SourceKind, parsed: &CredentialsFile) -> CredentialFile {
        let base = |kind| CredentialFile {
            path: path.to_owned(),
            origin,
            kind,
            account: None,
            project: None,
            token_url: None,
            federation: None,
        };
        match parsed {
            CredentialsFile::AuthorizedUser(c) => CredentialFile {
                account: c.account.clone(),
                project: c.quota_project_id.clone(),
                token_url: Some(redact_url(&c.token_uri)),
                ..base(CredentialKind::AuthorizedUser)
            },
            CredentialsFile::ServiceAccount(c) => CredentialFile {
                account: Some(c.client_email.clone()),
                project: c.project_id.clone(),
                token_url: Some(redact_url(&c.token_uri)),
                ..base(CredentialKind::ServiceAccount)
            },
            CredentialsFile::ExternalAccount(c) => CredentialFile {
                account: c.impersonation_url.as_deref().and_then(sts::target_email),
                project: c.quota_project_id.clone(),
                token_url: Some(redact_url(&c.token_url)),
                federation: Some(federation(c)),
                ..base(CredentialKind::ExternalAccount)
            },
            CredentialsFile::Impersonated(c, _) => CredentialFile {
                account: Some(c.email.clone()),
                project: c.quota_project_id.clone(),
                ..base(CredentialKind::ImpersonatedServiceAccount)
            },
        }
    }
}

fn federation(c: &ExternalAccountConfig) -> Federation {
    Federation {
        audience: c.audience.clone(),
        provider: WorkloadProvider::from_audience(&c.audience),
        service_account: c.impersonation_url.as_deref().and_then(sts::target_email),
        impersonation_url: c.impersonation_url.as_deref().map(redact_url),
        subject_token_type: c.subject_token_type.clone(),
        subject: match &c.source {
            SubjectSource::File { path, .. } => SubjectSourceKind::File(path.clone()),
            SubjectSource::Url { url, .. } => SubjectSourceKind::Url(redact_url(url)),
            SubjectSource::Executable(e) => SubjectSourceKind::Executable(e.command.clone()),
            SubjectSource::Aws(_) => SubjectSourceKind::Aws1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audiences_name_their_provider() {
        let p = WorkloadProvider::from_audience("//iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider").unwrap();
        assert_eq!(
            (
                p.project_number.as_str(),
                p.pool.as_str(),
                p.provider.as_str()
            ),
            ("402718395026", "bq-pool", "aws-provider")
        );
        assert_eq!(
            p.principal_set("attribute.aws_role/arn:aws:sts::1:assumed-role/r"),
            "principalSet://iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/attribute.aws_role/arn:aws:sts::1:assumed-role/r"
        );
        assert_eq!(
            p.audience(),
            "//iam.googleapis.com/projects/402718395026/locations/global/workloadIdentityPools/bq-pool/providers/aws-provider"
        );
        assert!(
            WorkloadProvider::from_audience(
                "//iam.googleapis.com/locations/global/workforcePools/p/providers/x"
            )
            .is_none()
        );
        assert!(WorkloadProvider::from_audience("x").is_none());
    }
}
