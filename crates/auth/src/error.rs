//! Every way getting credentials can fail, as one enum whose variants are the
//! caller's decisions: nothing is configured (say what was tried), the
//! configuration is wrong or not supported (stop and tell the user), the
//! upstream failed (transient or not), or it did not answer in time.
//!
//! Context lives in fields: the file path, the environment variable, the URL
//! (always without its query string, which can carry an audience or scopes and,
//! in other protocols, credentials), the HTTP status and a short summary of
//! Google's error body. No variant can hold a token, a refresh token, a client
//! secret or a private key: the code that builds these errors never sees them
//! as plain strings.

use crate::aws::{AwsAuthError, SigningError};
use crate::google::service::Service as GoogleService;
use crate::google::source::SourceKind;
use keyway_http::google::GoogleErrorBody;
use keyway_http::is_transient_status;
use std::fmt;
use std::path::PathBuf;

/// Why credentials could not be found or used.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No Application Default Credentials source answered; `attempts` says why each did not.
    #[error(
        "finding google credentials: no source answered ({})",
        Attempts(attempts)
    )]
    NotConfigured { attempts: Vec<Attempt> },

    /// A credentials file is missing, unreadable, not JSON, lacks a field, or has a bad value.
    #[error(
        "reading google credentials from {} ({origin}): {problem}{}",
        path.display(),
        Line(*line, problem)
    )]
    InvalidConfig {
        path: PathBuf,
        /// How the file was found (GOOGLE_APPLICATION_CREDENTIALS or gcloud's well-known file).
        origin: SourceKind,
        /// The JSON field at fault, when one is.
        field: Option<&'static str>,
        /// The line of the file where that field is (or where the JSON broke).
        line: Option<usize>,
        problem: ConfigProblem,
    },

    /// An environment variable keyway reads has a value it cannot use.
    #[error("reading {var}: {reason}")]
    InvalidEnv { var: &'static str, reason: String },

    /// A credentials file of a type Google defines but keyway does not handle yet.
    #[error(
        "reading google credentials from {} ({origin}): {kind} credentials are not supported yet ({detail})",
        path.display()
    )]
    Unsupported {
        path: PathBuf,
        origin: SourceKind,
        /// The file's `type`, e.g. `external_account`.
        kind: String,
        detail: String,
    },

    /// The credentials cannot do what was asked (e.g. an ID token from user credentials).
    #[error("{doing}: not possible with {kind} credentials: {detail}")]
    OperationUnsupported {
        doing: &'static str,
        kind: String,
        detail: String,
    },

    /// No complete answer arrived: the connection failed (refused, reset, DNS,
    /// TLS), the server did not answer in time, or its answer was larger than
    /// the call allows. keyway-http's one description of a transport failure.
    #[error(transparent)]
    Transport(#[from] keyway_http::HttpError),

    /// The server answered with an error status.
    #[error("{}", Refusal(self))]
    Rejected(Box<Rejection>),

    /// The server answered 2xx with something that is not what the protocol says.
    #[error("{doing}: {url} sent an invalid response: {reason}")]
    InvalidResponse {
        doing: &'static str,
        url: String,
        reason: String,
    },

    /// The subject token of `external_account` credentials could not be had:
    /// `from` names the source (the file, the URL, the executable, aws1).
    #[error("getting the subject token from {from}: {cause}")]
    SubjectToken {
        from: SubjectFrom,
        cause: SubjectCause,
    },

    /// Signing a JWT with a service account key failed.
    #[error("signing a jwt as {email}: {reason}")]
    Signing { email: String, reason: String },

    /// GCE_METADATA_HOST (or GCE_METADATA_ROOT) names a metadata server that
    /// does not answer as one.
    #[error("{var} is {host}, but {cause}")]
    MetadataUnreachable {
        var: &'static str,
        host: String,
        cause: Box<AuthError>,
    },
}

/// Which Google endpoint a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GoogleCall {
    /// The OAuth token endpoint, refreshing user credentials.
    RefreshUser,
    /// The OAuth token endpoint, a service account key's JWT-bearer grant (access token).
    ServiceAccountToken,
    /// The same, for an ID token.
    ServiceAccountIdToken,
    /// Google STS, exchanging a subject token (Workload Identity Federation).
    StsExchange,
    /// IAM Credentials `generateAccessToken` (impersonation).
    GenerateAccessToken,
    /// IAM Credentials `generateIdToken`.
    GenerateIdToken,
    /// The metadata server's token.
    MetadataToken,
    /// The metadata server's service account email.
    MetadataEmail,
    /// The metadata server's service account scopes (the VM's access scopes).
    MetadataScopes,
    /// The metadata server's ID token.
    MetadataIdToken,
    /// A metadata server's root, checking that it is one.
    MetadataPing,
    /// A URL-sourced subject token.
    SubjectTokenUrl,
}

impl GoogleCall {
    /// What keyway was doing, for messages and logs.
    pub const fn doing(self) -> &'static str {
        match self {
            GoogleCall::RefreshUser => "refreshing user credentials",
            GoogleCall::ServiceAccountToken => "getting an access token for a service account key",
            GoogleCall::ServiceAccountIdToken => "getting an id token for a service account key",
            GoogleCall::StsExchange => "exchanging the subject token at Google STS",
            GoogleCall::GenerateAccessToken => {
                "impersonating a service account (generateAccessToken)"
            }
            GoogleCall::GenerateIdToken => {
                "getting an id token for an impersonated service account (generateIdToken)"
            }
            GoogleCall::MetadataToken => "getting an access token from the metadata server",
            GoogleCall::MetadataEmail => {
                "reading the service account's email from the metadata server"
            }
            GoogleCall::MetadataScopes => {
                "reading the service account's scopes from the metadata server"
            }
            GoogleCall::MetadataIdToken => "getting an id token from the metadata server",
            GoogleCall::MetadataPing => "checking for a metadata server",
            GoogleCall::SubjectTokenUrl => "getting the subject token",
        }
    }
}

/// A Google endpoint said no.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub call: GoogleCall,
    /// The URL, without its query.
    pub url: String,
    pub status: u16,
    /// What the body said: the OAuth error code, or the rpc status with its
    /// `ErrorInfo` reason and metadata.
    pub body: GoogleErrorBody,
    /// Unix seconds of the server's `Date` header.
    pub server_time: Option<i64>,
}

struct Refusal<'a>(&'a AuthError);

impl fmt::Display for Refusal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let AuthError::Rejected(r) = self.0 else {
            return Ok(());
        };
        write!(
            f,
            "{}: {} answered {}",
            r.call.doing(),
            r.url,
            Status(r.status)
        )?;
        let body = r.body.to_string();
        if !body.is_empty() {
            write!(f, ": {body}")?;
        }
        Ok(())
    }
}

/// What is wrong with a credentials file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigProblem {
    /// The file does not exist.
    Missing,
    /// The file exists but cannot be read.
    Unreadable(String),
    /// The content is not JSON (serde_json's description, with line and column).
    NotJson(String),
    /// The JSON is not an object.
    NotAnObject,
    /// A required field is absent (or null, or empty).
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    /// A URL that is not the Google endpoint AIP-4117 requires for it.
    NotGoogleEndpoint {
        /// `token_url`, `service_account_impersonation_url`.
        field: &'static str,
        /// STS or IAM Credentials (which also names the endpoint override
        /// that would make another origin acceptable).
        service: GoogleService,
        url: String,
    },
    /// The `type` names no credentials type Google defines.
    UnknownType(String),
    /// A problem inside an impersonated file's `source_credentials`.
    InSourceCredentials(Box<ConfigProblem>),
    /// Any other invalid value, described.
    Invalid(String),
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ConfigProblem::*;
        match self {
            Missing => f.write_str("the file does not exist"),
            Unreadable(e) => write!(f, "cannot read the file ({e})"),
            NotJson(e) => write!(f, "not valid JSON ({e})"),
            NotAnObject => f.write_str("expected a JSON object"),
            MissingField(field) => write!(f, "missing field \"{field}\""),
            WrongType { field, expected } => write!(f, "field \"{field}\" must be {expected}"),
            NotGoogleEndpoint {
                field,
                service,
                url,
            } => write!(
                f,
                "{field} \"{url}\" is not a Google {service} endpoint: it must be https://{service}.googleapis.com/… or a regional or \
                 private form of it (AIP-4117); to use another endpoint (such as a local emulator), set {var} to its base URL",
                service = service.name(),
                var = service.override_var()
            ),
            UnknownType(t) => write!(
                f,
                "unknown credentials type \"{t}\" (expected authorized_user, service_account, external_account, external_account_authorized_user or impersonated_service_account)"
            ),
            InSourceCredentials(p) => write!(f, "source_credentials: {p}"),
            Invalid(reason) => f.write_str(reason),
        }
    }
}

/// Where an `external_account` subject token comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubjectFrom {
    File(PathBuf),
    Url(String),
    Executable(String),
    Aws1,
}

impl fmt::Display for SubjectFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectFrom::File(p) => write!(f, "the file {}", p.display()),
            SubjectFrom::Url(u) => write!(f, "the URL {u}"),
            SubjectFrom::Executable(c) => write!(f, "the executable `{c}`"),
            SubjectFrom::Aws1 => f.write_str("aws1 (AWS credentials)"),
        }
    }
}

/// Why the subject token could not be had.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum SubjectCause {
    /// The file could not be read.
    Unreadable(String),
    /// The content holds no usable token (empty, not text, not JSON, no such field).
    BadContent(String),
    /// The executable is not allowed, failed, timed out or answered badly.
    Executable(String),
    /// aws1: the AWS credential chain gave no credentials.
    Aws(Box<AwsAuthError>),
    /// aws1: no AWS region to sign for.
    NoAwsRegion,
    /// aws1: the request could not be signed.
    Signing(SigningError),
    /// aws1: `regional_cred_verification_url` is not a usable URL.
    BadVerificationUrl(String),
}

impl fmt::Display for SubjectCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SubjectCause::Unreadable(e) => write!(f, "cannot read it ({e})"),
            SubjectCause::BadContent(e) | SubjectCause::Executable(e) => f.write_str(e),
            SubjectCause::Aws(e) => e.fmt(f),
            SubjectCause::NoAwsRegion => f.write_str(
                "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or give the credential source a region_url",
            ),
            SubjectCause::Signing(e) => e.fmt(f),
            SubjectCause::BadVerificationUrl(u) => {
                write!(f, "regional_cred_verification_url {u:?} is not a URL with a host")
            }
        }
    }
}

impl AuthError {
    /// Whether trying again later may succeed: connection failures, timeouts and
    /// the statuses Google documents as retryable (408, 429, 500, 502, 503,
    /// 504), and, for aws1, a transient failure of the AWS credential chain.
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Transport(e) => e.is_transient(),
            AuthError::Rejected(r) => is_transient_status(r.status),
            AuthError::SubjectToken {
                cause: SubjectCause::Aws(e),
                ..
            } => e.is_transient(),
            _ => false,
        }
    }

    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            AuthError::Rejected(r) => Some(r.status),
            _ => None,
        }
    }

    /// The refusal, for [`AuthError::Rejected`].
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            AuthError::Rejected(r) => Some(r),
            _ => None,
        }
    }
}

impl keyway_http::Transient for AuthError {
    fn is_transient(&self) -> bool {
        AuthError::is_transient(self)
    }
}

/// ` (line N)`, unless the problem already says where (a JSON syntax error).
/// What happened when one source of a chain was tried: Google's
/// ([`Outcome`]) and AWS's ([`AwsOutcome`](crate::AwsOutcome)), each with its
/// own reasons `A` for "not configured" and its own error `E`.
#[derive(Debug, Clone)]
pub enum ChainOutcome<A, E> {
    /// The source does not apply here (variable unset, no file, no metadata server).
    NotConfigured(A),
    /// The source was configured but could not be used.
    Failed(Box<E>),
    /// This source provided the credentials.
    Answered,
}

/// What happened when one source of Google's chain was tried.
pub type Outcome = ChainOutcome<Absent, AuthError>;

impl<A, E> ChainOutcome<A, E> {
    /// The failure, for [`ChainOutcome::Failed`].
    pub fn failure(&self) -> Option<&E> {
        match self {
            ChainOutcome::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl<A: fmt::Display, E: fmt::Display> fmt::Display for ChainOutcome<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainOutcome::NotConfigured(why) => write!(f, "not configured: {why}"),
            ChainOutcome::Failed(why) => write!(f, "failed: {why}"),
            ChainOutcome::Answered => f.write_str("answered"),
        }
    }
}

/// Why a source does not apply here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Absent {
    /// The variable is not set.
    Unset { var: &'static str },
    /// The variable is set but empty.
    Empty { var: &'static str },
    /// Neither CLOUDSDK_CONFIG nor HOME is set.
    NoConfigDir,
    /// No file at the path.
    NoFile(PathBuf),
    /// NO_GCE_CHECK is set.
    NoGceCheck,
    /// Nothing answered the probe at `host` within `waited`.
    NoMetadataServer {
        host: String,
        /// GCE_METADATA_IP, when it named the address.
        var: Option<&'static str>,
        waited: std::time::Duration,
    },
}

impl fmt::Display for Absent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Absent::Unset { var } => write!(f, "{var} is not set"),
            Absent::Empty { var } => write!(f, "{var} is set but empty"),
            Absent::NoConfigDir => write!(
                f,
                "neither {} nor {} is set, so there is no gcloud configuration directory",
                keyway_core::vars::CLOUDSDK_CONFIG,
                keyway_core::vars::HOME
            ),
            Absent::NoFile(p) => write!(f, "no file at {}", p.display()),
            Absent::NoGceCheck => write!(
                f,
                "{} is set, so no metadata server was looked for",
                keyway_core::vars::NO_GCE_CHECK
            ),
            Absent::NoMetadataServer { host, var, waited } => {
                write!(f, "no metadata server answered at {host}")?;
                if let Some(v) = var {
                    write!(f, " (from {v})")?;
                }
                write!(f, " within {waited:?} (not on Google Cloud?)")
            }
        }
    }
}

/// One source tried, and its outcome.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub source: SourceKind,
    pub outcome: Outcome,
}

struct Line<'a>(Option<usize>, &'a ConfigProblem);

impl fmt::Display for Line<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.0, self.1) {
            (_, ConfigProblem::NotJson(_)) | (None, _) => Ok(()),
            (Some(n), _) => write!(f, " (line {n})"),
        }
    }
}

struct Attempts<'a>(&'a [Attempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_attempts(f, self.0.iter().map(|a| (&a.source, &a.outcome)))
    }
}

/// `source: outcome; source: outcome; …`, the one way a credential chain's
/// attempts are listed (Google's and AWS's alike).
pub(crate) fn write_attempts<S: fmt::Display, O: fmt::Display>(
    f: &mut fmt::Formatter<'_>,
    attempts: impl Iterator<Item = (S, O)>,
) -> fmt::Result {
    for (i, (source, outcome)) in attempts.enumerate() {
        if i > 0 {
            f.write_str("; ")?;
        }
        write!(f, "{source}: {outcome}")?;
    }
    Ok(())
}

struct Status(u16);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let reason = reqwest::StatusCode::from_u16(self.0)
            .ok()
            .and_then(|s| s.canonical_reason());
        match reason {
            Some(r) => write!(f, "{} {}", self.0, r),
            None => write!(f, "{}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::{Absent, Outcome};

    #[test]
    fn messages_are_lowercase_and_carry_context() {
        let e = AuthError::Rejected(Box::new(Rejection {
            call: GoogleCall::RefreshUser,
            url: "http://127.0.0.1:9/token".into(),
            status: 400,
            body: GoogleErrorBody::parse(
                br#"{"error":"invalid_grant","error_description":"Bad Request"}"#,
            ),
            server_time: None,
        }));
        assert_eq!(
            e.to_string(),
            "refreshing user credentials: http://127.0.0.1:9/token answered 400 Bad Request: invalid_grant: Bad Request"
        );
        assert!(!e.is_transient());
        assert_eq!(e.status(), Some(400));

        let e = AuthError::NotConfigured {
            attempts: vec![
                Attempt {
                    source: SourceKind::EnvFile,
                    outcome: Outcome::NotConfigured(Absent::Unset {
                        var: "GOOGLE_APPLICATION_CREDENTIALS",
                    }),
                },
                Attempt {
                    source: SourceKind::MetadataServer,
                    outcome: Outcome::Failed(Box::new(AuthError::InvalidEnv {
                        var: "GCE_METADATA_HOST",
                        reason: "refused".into(),
                    })),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "finding google credentials: no source answered (GOOGLE_APPLICATION_CREDENTIALS: not configured: GOOGLE_APPLICATION_CREDENTIALS is not set; metadata server: failed: reading GCE_METADATA_HOST: refused)"
        );
    }

    fn rejected(status: u16) -> AuthError {
        AuthError::Rejected(Box::new(Rejection {
            call: GoogleCall::StsExchange,
            url: "u".into(),
            status,
            body: GoogleErrorBody::Text(None),
            server_time: None,
        }))
    }

    #[test]
    fn transient_classification() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(rejected(s).is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404] {
            assert!(!rejected(s).is_transient(), "{s}");
        }
        assert!(
            AuthError::Transport(keyway_http::HttpError::Timeout {
                doing: "x",
                url: "u".into(),
                after: std::time::Duration::from_secs(1)
            })
            .is_transient()
        );
        assert!(
            AuthError::Transport(keyway_http::HttpError::Unreachable {
                doing: "x",
                url: "u".into(),
                reason: "r".into()
            })
            .is_transient()
        );
        assert!(
            !AuthError::Transport(keyway_http::HttpError::TooLarge {
                doing: "x",
                url: "u".into(),
                cap: keyway_http::Cap::mib(1),
                seen: keyway_http::Seen::AtLeast(2 << 20),
            })
            .is_transient()
        );
    }
}
