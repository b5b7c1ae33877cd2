//! Why a reference could not be resolved. Each variant is a different fix for
//! the user, so the classification follows Google's own signals: the HTTP
//! status, the `google.rpc.Status` code and the `ErrorInfo.reason`.
//! No variant ever carries a secret value.

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
        permission: String,
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
    Field { reference: String, reason: String },
    #[error("reading {reference}: no Google credentials were found")]
    NoCredentials { reference: String },
    /// AWS IAM refused (AccessDeniedException); who, what and on what, as AWS said.
    #[error("reading {reference}: access denied (AccessDeniedException): {message}")]
    AwsAccessDenied {
        reference: String,
        principal: Option<String>,
        action: Option<String>,
        resource: Option<String>,
        message: String,
    },
    /// KMS could not decrypt the secret with the caller's permissions.
    #[error(
        "reading {reference}: the secret could not be decrypted (DecryptionFailure): {message}"
    )]
    AwsDecryption { reference: String, message: String },
    /// The secret cannot be read now (e.g. it is marked for deletion).
    #[error("reading {reference}: {message} (InvalidRequestException)")]
    AwsInvalidRequest { reference: String, message: String },
    /// The AWS credentials were refused, expired, or could not be had.
    #[error("reading {reference}: the AWS credentials are not usable: {message}")]
    AwsCredentials { reference: String, message: String },
    #[error(
        "reading {reference}: no AWS region (set AWS_REGION, a profile region, or use the secret's ARN)"
    )]
    AwsNoRegion { reference: String },
    #[error("reading {reference}: no AWS credentials were found")]
    NoAwsCredentials { reference: String },
    #[error("internal error: {0}")]
    Internal(String),
}

impl FetchError {
    /// Worth retrying: the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        match self {
            FetchError::Transport { error, .. } => error.is_transient(),
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
