//! Where AWS credentials come from: the chain's sources ([`AwsSourceKind`])
//! and exactly where the answering one found them ([`AwsSource`]).

use std::fmt;
use std::path::PathBuf;

/// The sources of the chain, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AwsSourceKind {
    Environment,
    Profile,
    WebIdentity,
    EcsContainer,
    Imds,
}

impl AwsSourceKind {
    /// Every source, in the chain's order.
    pub const ALL: [AwsSourceKind; 5] = [
        AwsSourceKind::Environment,
        AwsSourceKind::Profile,
        AwsSourceKind::WebIdentity,
        AwsSourceKind::EcsContainer,
        AwsSourceKind::Imds,
    ];

    /// A stable machine name.
    pub fn as_str(self) -> &'static str {
        match self {
            AwsSourceKind::Environment => "environment",
            AwsSourceKind::Profile => "profile",
            AwsSourceKind::WebIdentity => "web_identity",
            AwsSourceKind::EcsContainer => "ecs_container",
            AwsSourceKind::Imds => "imds",
        }
    }
}

impl fmt::Display for AwsSourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AwsSourceKind::Environment => "environment (AWS_ACCESS_KEY_ID)",
            AwsSourceKind::Profile => "shared config/credentials files",
            AwsSourceKind::WebIdentity => "web identity (AssumeRoleWithWebIdentity)",
            AwsSourceKind::EcsContainer => "ECS container credentials endpoint",
            AwsSourceKind::Imds => "EC2 instance metadata (IMDSv2)",
        })
    }
}

/// Which source answered, and where exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsSource {
    pub kind: AwsSourceKind,
    /// The profile and file, the endpoint URL, or the variable, for people.
    pub detail: String,
    /// The same, as data.
    pub location: AwsLocation,
}

/// Where exactly a source found the credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwsLocation {
    /// `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`).
    Environment,
    /// A profile of the shared files (static keys).
    Profile { profile: String },
    /// AssumeRoleWithWebIdentity (a token file, or keyway's Google ID token),
    /// from the environment or a profile.
    WebIdentity {
        profile: Option<String>,
        role_arn: String,
        token: WebIdentityToken,
    },
    /// The ECS container credentials endpoint (URL without query).
    EcsContainer { url: String },
    /// IMDSv2, for the instance profile's role.
    Imds { endpoint: String, role: String },
}

/// Where a web identity token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebIdentityToken {
    File(PathBuf),
    /// A Google ID token (KEYWAY_AWS_WEB_IDENTITY=google) for this audience.
    Google {
        audience: String,
    },
}

impl fmt::Display for AwsSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.location {
            // The environment source's name already says which variable it is.
            AwsLocation::Environment => write!(f, "{}", self.kind),
            _ => write!(f, "{} ({})", self.kind, self.detail),
        }
    }
}
