//! Every way getting or using AWS credentials can fail, as typed values: the
//! caller decides on the variant (and [`AwsAuthError::is_transient`]), never on
//! the text. A refusal carries AWS's own error code ([`AwsErrorCode`]), the
//! HTTP status, and the two clocks (when keyway signed, what AWS's `Date`
//! said), so a clock far off is a fact, not a reading of "Signature expired".

use super::source::AwsSourceKind;
use crate::AuthError;
use keyway_http::HttpError;
use keyway_http::aws::AwsErrorCode;
use std::fmt;
use std::path::{Path, PathBuf};

/// SigV4 allows this much difference between the signer's clock and AWS's.
pub const MAX_CLOCK_SKEW_SECS: i64 = 15 * 60;

/// Why no AWS credentials could be had, or why AWS refused them.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AwsAuthError {
    /// No source of the chain is configured; `attempts` says why each is not.
    #[error("finding aws credentials: no source answered ({})", List(attempts))]
    NotConfigured { attempts: Vec<AwsAttempt> },

    /// A source is configured in a way that cannot work (a variable without
    /// its partner, a missing profile, a refused URI, an unreadable file).
    #[error("getting aws credentials from the {kind}: {problem}")]
    Config {
        kind: AwsSourceKind,
        problem: AwsConfigProblem,
    },

    /// A source of a kind keyway recognises but does not handle yet.
    #[error("getting aws credentials from the {kind}: {detail} is not supported yet")]
    Unsupported { kind: AwsSourceKind, detail: String },

    /// No complete answer arrived from the source's endpoint (or from an AWS
    /// API called with the credentials).
    #[error("getting aws credentials from the {kind}: {error}")]
    Transport {
        kind: AwsSourceKind,
        error: HttpError,
    },

    /// An endpoint answered with an error: the ECS agent, IMDS, or an AWS API
    /// (STS) refusing a request. `source` is where the credentials came from.
    #[error("{}", Refusal(self))]
    Rejected(Box<Rejection>),

    /// An endpoint answered 2xx with something that is not what the protocol says.
    #[error("getting aws credentials from the {kind}: {url} sent an invalid response: {reason}")]
    InvalidResponse {
        kind: AwsSourceKind,
        url: String,
        reason: String,
    },

    /// The EC2 instance has no instance profile (IMDS lists no role).
    #[error(
        "getting aws credentials from the {}: the instance has no instance profile (no IAM role)",
        AwsSourceKind::Imds
    )]
    NoInstanceProfile,

    /// KEYWAY_AWS_WEB_IDENTITY=google needs Google credentials, which failed.
    #[error(
        "getting aws credentials from the {}: KEYWAY_AWS_WEB_IDENTITY=google needs a Google ID token (audience {audience}): {cause}",
        AwsSourceKind::WebIdentity
    )]
    GoogleIdToken {
        audience: String,
        cause: Box<AuthError>,
    },

    /// Signing a request failed (never expected with valid credentials).
    #[error("signing an aws request: {0}")]
    Signing(String),
}

/// Which AWS endpoint answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AwsService {
    /// STS `AssumeRoleWithWebIdentity`.
    StsAssumeRoleWithWebIdentity,
    /// STS `GetCallerIdentity`.
    StsGetCallerIdentity,
    /// The ECS container credentials endpoint.
    EcsContainer,
    /// The EC2 instance metadata service.
    Imds,
    /// Secrets Manager (a refusal of the credentials themselves).
    SecretsManager,
}

impl AwsService {
    pub fn as_str(self) -> &'static str {
        match self {
            AwsService::StsAssumeRoleWithWebIdentity => "STS AssumeRoleWithWebIdentity",
            AwsService::StsGetCallerIdentity => "STS GetCallerIdentity",
            AwsService::EcsContainer => "the ECS container credentials endpoint",
            AwsService::Imds => "IMDS",
            AwsService::SecretsManager => "Secrets Manager",
        }
    }
}

impl fmt::Display for AwsService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An AWS endpoint said no.
#[derive(Debug, Clone)]
pub struct Rejection {
    /// Where the credentials in use came from.
    pub source: AwsSourceKind,
    pub service: AwsService,
    /// The URL, without its query.
    pub url: String,
    pub status: u16,
    /// AWS's error code (empty [`AwsErrorCode::Other`] when the body named none).
    pub code: AwsErrorCode,
    pub message: String,
    /// For AssumeRoleWithWebIdentity: the role asked for.
    pub role_arn: Option<String>,
    /// For AssumeRoleWithWebIdentity: the identifying claims of the token
    /// presented (`iss=…, sub=…, azp=…, aud=…`), never the token.
    pub presented: Option<String>,
    /// Unix seconds at which keyway signed the request, for signed requests.
    pub signed_at: Option<i64>,
    /// Unix seconds of AWS's `Date` header.
    pub server_time: Option<i64>,
}

impl Rejection {
    /// AWS's clock minus keyway's, when both are known.
    pub fn clock_skew(&self) -> Option<i64> {
        Some(self.server_time? - self.signed_at?)
    }

    /// Whether the clocks are further apart than SigV4 allows.
    pub fn clock_skewed(&self) -> bool {
        self.clock_skew()
            .is_some_and(|s| s.abs() > MAX_CLOCK_SKEW_SECS)
    }

    pub fn is_transient(&self) -> bool {
        keyway_http::is_transient_status(self.status) || self.code.is_transient()
    }
}

struct Refusal<'a>(&'a AwsAuthError);

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AwsAuthError::Rejected(r) = self.0 else {
            return Ok(());
        };
        match r.service {
            AwsService::StsAssumeRoleWithWebIdentity => write!(
                f,
                "getting aws credentials from the {}: {} for {} at {} answered {}",
                r.source,
                r.service,
                r.role_arn.as_deref().unwrap_or("the role"),
                r.url,
                r.status
            )?,
            AwsService::StsGetCallerIdentity => write!(
                f,
                "{} with the credentials from the {} at {} answered {}",
                r.service, r.source, r.url, r.status
            )?,
            _ => write!(
                f,
                "getting aws credentials from the {}: {} answered {}",
                r.source, r.url, r.status
            )?,
        }
        if !r.code.is_empty() {
            write!(f, " {}", r.code)?;
        }
        if !r.message.is_empty() {
            write!(f, ": {}", r.message)?;
        }
        if let Some(skew) = r.clock_skew().filter(|_| r.clock_skewed()) {
            write!(
                f,
                " (AWS's clock is {} {} this machine's)",
                Minutes(skew.unsigned_abs()),
                if skew > 0 { "ahead of" } else { "behind" }
            )?;
        }
        if let Some(who) = &r.presented {
            write!(f, " (token: {who})")?;
        }
        Ok(())
    }
}

/// `1 h 5 min`, `17 min`.
struct Minutes(u64);

impl fmt::Display for Minutes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = (self.0 + 30) / 60;
        match (m / 60, m % 60) {
            (0, m) => write!(f, "{m} min"),
            (h, 0) => write!(f, "{h} h"),
            (h, m) => write!(f, "{h} h {m} min"),
        }
    }
}

/// What is wrong with a source's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AwsConfigProblem {
    /// One of a pair of variables is set without the other.
    VariableWithoutPartner {
        set: &'static str,
        missing: &'static str,
    },
    /// A variable's value is not one keyway can use.
    BadVariable { var: &'static str, reason: String },
    /// AWS_PROFILE (or AWS_DEFAULT_PROFILE) names a profile neither file has.
    NoSuchProfile {
        profile: String,
        credentials_file: PathBuf,
        config_file: PathBuf,
    },
    /// The profile named explicitly holds no usable credentials.
    ProfileWithoutKeys { profile: String },
    /// The profile has `web_identity_token_file` but no `role_arn`.
    ProfileWithoutRole { profile: String },
    /// A file could not be read; `what` says which file it is ("" when the
    /// path says enough).
    Unreadable {
        what: &'static str,
        path: PathBuf,
        reason: String,
    },
    /// A shared file is not UTF-8.
    NotUtf8 { path: PathBuf },
    /// A web identity token file is empty.
    EmptyTokenFile { path: PathBuf },
    /// An `Expiration` that is not an RFC 3339 time.
    BadExpiration { value: String },
}

impl fmt::Display for AwsConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AwsConfigProblem::*;
        match self {
            VariableWithoutPartner { set, missing } => {
                write!(f, "{set} is set but {missing} is not")
            }
            BadVariable { reason, .. } => f.write_str(reason),
            NoSuchProfile {
                profile,
                credentials_file,
                config_file,
            } => no_profile(f, profile, credentials_file, config_file),
            ProfileWithoutKeys { profile } => write!(
                f,
                "profile '{profile}' has no aws_access_key_id/aws_secret_access_key"
            ),
            ProfileWithoutRole { profile } => write!(
                f,
                "profile '{profile}' has web_identity_token_file but no role_arn"
            ),
            Unreadable {
                what: "",
                path,
                reason,
            } => write!(f, "reading {}: {reason}", path.display()),
            Unreadable { what, path, reason } => {
                write!(f, "reading the {what} {}: {reason}", path.display())
            }
            NotUtf8 { path } => write!(f, "{} is not UTF-8", path.display()),
            EmptyTokenFile { path } => {
                write!(f, "the web identity token file {} is empty", path.display())
            }
            BadExpiration { value } => {
                write!(f, "Expiration '{value}' is not an RFC 3339 time")
            }
        }
    }
}

impl AwsAuthError {
    /// Whether trying again later may succeed: the endpoint was unreachable or
    /// slow, answered a transient status (408, 429, 5xx) or a code the SDKs
    /// retry (throttling, `IDPCommunicationError`), or the Google credentials
    /// behind a web identity failed transiently. Configuration mistakes and
    /// refusals are not.
    pub fn is_transient(&self) -> bool {
        match self {
            AwsAuthError::Transport { error, .. } => error.is_transient(),
            AwsAuthError::Rejected(r) => r.is_transient(),
            AwsAuthError::GoogleIdToken { cause, .. } => cause.is_transient(),
            _ => false,
        }
    }

    /// The source the error is about, when one is.
    pub fn source_kind(&self) -> Option<AwsSourceKind> {
        match self {
            AwsAuthError::Config { kind, .. }
            | AwsAuthError::Unsupported { kind, .. }
            | AwsAuthError::Transport { kind, .. }
            | AwsAuthError::InvalidResponse { kind, .. } => Some(*kind),
            AwsAuthError::Rejected(r) => Some(r.source),
            AwsAuthError::NoInstanceProfile => Some(AwsSourceKind::Imds),
            AwsAuthError::GoogleIdToken { .. } => Some(AwsSourceKind::WebIdentity),
            AwsAuthError::NotConfigured { .. } | AwsAuthError::Signing(_) => None,
        }
    }

    /// The refusal, for [`AwsAuthError::Rejected`].
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            AwsAuthError::Rejected(r) => Some(r),
            _ => None,
        }
    }

    pub(crate) fn config(kind: AwsSourceKind, problem: AwsConfigProblem) -> Self {
        AwsAuthError::Config { kind, problem }
    }
}

impl keyway_http::Transient for AwsAuthError {
    fn is_transient(&self) -> bool {
        AwsAuthError::is_transient(self)
    }
}

/// What trying one source of the AWS chain gave.
pub type AwsOutcome = crate::error::ChainOutcome<AwsAbsent, AwsAuthError>;

/// Why a source does not apply here.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum AwsAbsent {
    /// `AWS_ACCESS_KEY_ID` is not set.
    NoAccessKeyVariable,
    /// No profile of that name in either shared file (the default profile,
    /// not named by the user).
    NoProfile {
        profile: String,
        credentials_file: PathBuf,
        config_file: PathBuf,
    },
    /// The (default) profile holds no keys.
    ProfileWithoutKeys { profile: String },
    /// Neither AWS_WEB_IDENTITY_TOKEN_FILE nor KEYWAY_AWS_WEB_IDENTITY is set.
    NoWebIdentity,
    /// Neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor _FULL_URI is set.
    NoContainerEndpoint,
    /// AWS_EC2_METADATA_DISABLED=true.
    ImdsDisabled,
    /// IMDS was not probed (no endpoint set, and this does not look like EC2).
    ImdsNotProbed,
    /// The chain's options say IMDS is not available, and why.
    ImdsUnavailable(String),
    /// Nothing answered at IMDS's default address (not on EC2).
    NoImds(Box<AwsAuthError>),
}

impl fmt::Display for AwsAbsent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AwsAbsent::NoAccessKeyVariable => f.write_str("AWS_ACCESS_KEY_ID is not set"),
            AwsAbsent::NoProfile {
                profile,
                credentials_file,
                config_file,
            } => no_profile(f, profile, credentials_file, config_file),
            AwsAbsent::ProfileWithoutKeys { profile } => {
                write!(f, "profile '{profile}' holds no keys")
            }
            AwsAbsent::NoWebIdentity => {
                f.write_str("AWS_WEB_IDENTITY_TOKEN_FILE (or KEYWAY_AWS_WEB_IDENTITY) is not set")
            }
            AwsAbsent::NoContainerEndpoint => {
                f.write_str("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set")
            }
            AwsAbsent::ImdsDisabled => f.write_str("AWS_EC2_METADATA_DISABLED=true"),
            AwsAbsent::ImdsNotProbed => f.write_str(
                "not probed (no AWS_EC2_METADATA_SERVICE_ENDPOINT, and this does not look like EC2)",
            ),
            AwsAbsent::ImdsUnavailable(why) => f.write_str(why),
            AwsAbsent::NoImds(e) => write!(f, "no instance metadata service ({e})"),
        }
    }
}

/// One source tried, and its outcome.
#[derive(Debug, Clone)]
pub struct AwsAttempt {
    pub source: AwsSourceKind,
    pub outcome: AwsOutcome,
}

/// A profile in neither shared file: the default one ([`AwsAbsent::NoProfile`])
/// or one the user named ([`AwsConfigProblem::NoSuchProfile`]).
fn no_profile(
    f: &mut fmt::Formatter<'_>,
    profile: &str,
    credentials_file: &Path,
    config_file: &Path,
) -> fmt::Result {
    write!(
        f,
        "no profile '{profile}' in {} or {}",
        credentials_file.display(),
        config_file.display()
    )
}

struct List<'a>(&'a [AwsAttempt]);

impl fmt::Display for List<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::error::write_attempts(f, self.0.iter().map(|a| (&a.source, &a.outcome)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection(status: u16, code: &str) -> Rejection {
        Rejection {
            source: AwsSourceKind::Environment,
            service: AwsService::StsGetCallerIdentity,
            url: "http://127.0.0.1:1/".into(),
            status,
            code: AwsErrorCode::parse(code),
            message: "m".into(),
            role_arn: None,
            presented: None,
            signed_at: Some(1_000_000),
            server_time: Some(1_000_000 + 3600),
        }
    }

    #[test]
    fn transient_by_status_code_and_transport() {
        assert!(AwsAuthError::Rejected(Box::new(rejection(503, ""))).is_transient());
        assert!(AwsAuthError::Rejected(Box::new(rejection(400, "Throttling"))).is_transient());
        assert!(!AwsAuthError::Rejected(Box::new(rejection(403, "AccessDenied"))).is_transient());
        assert!(
            AwsAuthError::Transport {
                kind: AwsSourceKind::Imds,
                error: HttpError::Unreachable {
                    doing: "x",
                    url: "u".into(),
                    reason: "refused".into()
                }
            }
            .is_transient()
        );
        assert!(!AwsAuthError::NoInstanceProfile.is_transient());
    }

    #[test]
    fn skew_is_a_fact_from_the_two_clocks() {
        let r = rejection(403, "SignatureDoesNotMatch");
        assert_eq!(r.clock_skew(), Some(3600));
        assert!(r.clock_skewed());
        let e = AwsAuthError::Rejected(Box::new(r));
        assert!(
            e.to_string()
                .ends_with("(AWS's clock is 1 h ahead of this machine's)"),
            "{e}"
        );
        let mut r = rejection(403, "SignatureDoesNotMatch");
        r.server_time = Some(1_000_000 + 60);
        assert!(!r.clock_skewed());
    }
}
