//! Where Google credentials come from: the places Application Default
//! Credentials look ([`SourceKind`]), the type of a credentials file
//! ([`CredentialKind`]), and exactly where the answering source found them
//! ([`Source`]).

use std::fmt;
use std::path::PathBuf;

/// The three places Application Default Credentials look, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SourceKind {
    /// The file named by GOOGLE_APPLICATION_CREDENTIALS.
    EnvFile,
    /// gcloud's `application_default_credentials.json`.
    GcloudFile,
    /// The GCE metadata server.
    MetadataServer,
}

impl SourceKind {
    /// A stable machine name: `env_file`, `gcloud_file`, `metadata_server`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::EnvFile => "env_file",
            SourceKind::GcloudFile => "gcloud_file",
            SourceKind::MetadataServer => "metadata_server",
        }
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SourceKind::EnvFile => "GOOGLE_APPLICATION_CREDENTIALS",
            SourceKind::GcloudFile => "gcloud's well-known file",
            SourceKind::MetadataServer => "metadata server",
        })
    }
}

/// The type of a credentials file keyway can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialKind {
    AuthorizedUser,
    ServiceAccount,
    /// Workload Identity Federation (AIP-4117).
    ExternalAccount,
    ImpersonatedServiceAccount,
}

impl fmt::Display for CredentialKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CredentialKind::AuthorizedUser => "authorized_user",
            CredentialKind::ServiceAccount => "service_account",
            CredentialKind::ExternalAccount => "external_account",
            CredentialKind::ImpersonatedServiceAccount => "impersonated_service_account",
        })
    }
}

/// Exactly where the credentials came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// The file named by GOOGLE_APPLICATION_CREDENTIALS. `chain` says how federated
    /// or impersonated credentials get their token (see [`Source::chain`]).
    EnvFile {
        path: PathBuf,
        kind: CredentialKind,
        chain: Option<String>,
    },
    /// gcloud's well-known ADC file.
    GcloudFile {
        path: PathBuf,
        kind: CredentialKind,
        chain: Option<String>,
    },
    /// A metadata server at `host` (host[:port]), serving the default service account.
    MetadataServer { host: String, email: Option<String> },
}

impl Source {
    pub fn kind(&self) -> SourceKind {
        match self {
            Source::EnvFile { .. } => SourceKind::EnvFile,
            Source::GcloudFile { .. } => SourceKind::GcloudFile,
            Source::MetadataServer { .. } => SourceKind::MetadataServer,
        }
    }

    /// The credentials file's type, for file sources.
    pub fn credential_kind(&self) -> Option<CredentialKind> {
        match self {
            Source::EnvFile { kind, .. } | Source::GcloudFile { kind, .. } => Some(*kind),
            Source::MetadataServer { .. } => None,
        }
    }

    /// For `external_account` and `impersonated_service_account` files, where the
    /// token comes from, e.g. "aws1 via ECS container credentials endpoint (…),
    /// region us-east-2 (AWS_REGION) → STS https://sts.googleapis.com/v1/token →
    /// impersonating sa@p.iam.gserviceaccount.com".
    pub fn chain(&self) -> Option<&str> {
        match self {
            Source::EnvFile { chain, .. } | Source::GcloudFile { chain, .. } => chain.as_deref(),
            Source::MetadataServer { .. } => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The source kind names the variable or gcloud's file.
            Source::EnvFile { path, kind, chain } | Source::GcloudFile { path, kind, chain } => {
                write!(
                    f,
                    "{kind} credentials from {} ({})",
                    path.display(),
                    self.kind()
                )?;
                Chain(chain.as_deref()).fmt(f)
            }
            Source::MetadataServer {
                host,
                email: Some(email),
            } => {
                write!(f, "metadata server at {host}, service account {email}")
            }
            Source::MetadataServer { host, email: None } => {
                write!(f, "metadata server at {host}, default service account")
            }
        }
    }
}

struct Chain<'a>(Option<&'a str>);

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(c) => write!(f, ": {c}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_read_well() {
        let s = Source::GcloudFile {
            path: "/x/application_default_credentials.json".into(),
            kind: CredentialKind::AuthorizedUser,
            chain: None,
        };
        assert_eq!(
            s.to_string(),
            "authorized_user credentials from /x/application_default_credentials.json (gcloud's well-known file)"
        );
        let s = Source::MetadataServer {
            host: "127.0.0.1:1234".into(),
            email: Some("x@y".into()),
        };
        assert_eq!(
            s.to_string(),
            "metadata server at 127.0.0.1:1234, service account x@y"
        );
        assert_eq!(s.kind().as_str(), "metadata_server");
        assert_eq!(serde_json::to_value(s.kind()).unwrap(), "metadata_server");
    }
}
