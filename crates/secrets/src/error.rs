//! Why a reference could not be resolved. Each variant is a different fix for
//! the user, so the classification follows the clouds' own signals, read into
//! typed codes by keyway-http: for Google the HTTP status, the
//! `google.rpc.Status` code and the `ErrorInfo` reason and metadata; for AWS
//! the error code (and, for a refused signature, AWS's clock beside ours).
//! Never the wording of a message. No variant ever carries a secret value.

use keyway_auth::AwsAuthError;
use keyway_auth::aws::Rejection;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The token's OAuth scopes do not cover Secret Manager (403 ACCESS_TOKEN_SCOPE_INSUFFICIENT).
    #[error(
        "reading {reference}: the access token's scopes do not cover Secret Manager (403 ACCESS_TOKEN_SCOPE_INSUFFICIENT)"
    )]
    InsufficientScopes { reference: String },
    /// IAM denied the permission, or the secret does not exist and the caller may not know (403).
    #[error(
        "reading {reference}: permission '{permission}' denied (403 PERMISSION_DENIED; the secret may also not exist)"
    )]
    PermissionDenied {
        reference: String,
        /// The permission IAM checked (its `ErrorInfo.metadata.permission`,
        /// else the one the call needs).
        permission: String,
        /// The resource it was checked on, when Google says.
        resource: Option<String>,
        message: String,
    },
    /// The secret or version does not exist (and the caller may see that it does not).
    /// `code` is the cloud's own name for it: `404 NOT_FOUND`, `ResourceNotFoundException`.
    #[error("reading {reference}: {message} ({code})")]
    NotFound {
        reference: String,
        message: String,
        code: &'static str,
    },
    /// The version exists but is disabled or destroyed.
    #[error("reading {reference}: {message} (400 FAILED_PRECONDITION)")]
    NotEnabled { reference: String, message: String },
    /// The API is not enabled in the project (403 SERVICE_DISABLED).
    #[error("reading {reference}: {message} (403 SERVICE_DISABLED)")]
    ServiceDisabled { reference: String, message: String },
    /// The credentials were refused (401).
    #[error("reading {reference}: the credentials were refused (401 UNAUTHENTICATED): {message}")]
    Unauthenticated { reference: String, message: String },
    /// Any other answer from the API.
    #[error("reading {reference}: {url} answered {status}: {message}")]
    Rejected {
        reference: String,
        url: String,
        status: u16,
        message: String,
    },
    /// The service asked to slow down or failed briefly (an AWS throttling or
    /// transient error code, whatever the status): worth retrying.
    #[error("reading {reference}: {url} answered {status} {code}: {message}")]
    Throttled {
        reference: String,
        url: String,
        status: u16,
        code: String,
        message: String,
    },
    /// No complete answer arrived: unreachable, too slow, or larger than the
    /// API can send (keyway-http's one description of a transport failure).
    #[error("reading {reference}: {error}")]
    Transport {
        reference: String,
        error: keyway_http::HttpError,
    },
    /// The payload arrived damaged (CRC32C mismatch) or in an unexpected shape.
    #[error("reading {reference}: {reason}")]
    Corrupt { reference: String, reason: String },
    /// The JSON field the reference names could not be taken from the payload.
    #[error("reading {reference}: {reason}")]
    Field {
        reference: String,
        reason: crate::field::FieldError,
    },
    #[error("reading {reference}: no Google credentials were found")]
    NoCredentials { reference: String },
    /// AWS IAM refused (AccessDeniedException): no policy allows the action.
    #[error("reading {reference}: access denied (AccessDeniedException): {message}")]
    AwsAccessDenied { reference: String, message: String },
    /// KMS could not decrypt the secret with the caller's permissions.
    #[error(
        "reading {reference}: the secret could not be decrypted (DecryptionFailure): {message}"
    )]
    AwsDecryption { reference: String, message: String },
    /// The secret cannot be read now (e.g. it is marked for deletion).
    #[error("reading {reference}: {message} (InvalidRequestException)")]
    AwsInvalidRequest { reference: String, message: String },
    /// The AWS credential chain could not give credentials (at a refresh):
    /// transient when the source's failure is.
    #[error("reading {reference}: {error}")]
    AwsCredentials {
        reference: String,
        error: AwsAuthError,
    },
    /// AWS refused the credentials themselves: expired, unknown, or a
    /// signature that did not verify (a wrong key, or a clock far off:
    /// [`Rejection::clock_skew`]).
    #[error("reading {reference}: the AWS credentials are not usable: {} {}{}", rejection.code, rejection.message, Skew(rejection))]
    AwsRefused {
        reference: String,
        rejection: Box<Rejection>,
    },
    #[error(
        "reading {reference}: no AWS region (set AWS_REGION, a profile region, or use the secret's ARN)"
    )]
    AwsNoRegion { reference: String },
    #[error("reading {reference}: no AWS credentials were found")]
    NoAwsCredentials { reference: String },
    #[error("internal error: {0}")]
    Internal(String),
}

/// ` (AWS's clock is … this machine's)` when the clocks are too far apart.
struct Skew<'a>(&'a Rejection);

impl std::fmt::Display for Skew<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.clock_skew().filter(|_| self.0.clock_skewed()) {
            Some(s) => write!(
                f,
                " (AWS's clock is {} min {} this machine's)",
                (s.unsigned_abs() + 30) / 60,
                if s > 0 { "ahead of" } else { "behind" }
            ),
            None => Ok(()),
        }
    }
}

impl FetchError {
    /// Worth retrying: the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Transport { error, .. } => error.is_transient(),
            FetchError::AwsCredentials { error, .. } => error.is_transient(),
            FetchError::Throttled { .. } => true,
            FetchError::Rejected { status, .. } => keyway_http::is_transient_status(*status),
            _ => false,
        }
    }
}

impl keyway_http::Transient for FetchError {
    fn is_transient(&self) -> bool {
        FetchError::is_transient(self)
    }
}
