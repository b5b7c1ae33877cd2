//! [`AwsCredentials`]: one set of AWS keys, with the expiry temporary ones
//! carry (read from an `Expiration` by [`expiry`]). Nothing here shows a
//! secret: the keys are [`Secret`]s and `Debug` shows only the key id's prefix.

use super::error::{AwsAuthError, AwsConfigProblem};
use super::source::AwsSourceKind;
use keyway_core::Secret;
use std::fmt;

/// One set of AWS credentials.
#[derive(Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: Secret<String>,
    pub session_token: Option<Secret<String>>,
    /// Unix seconds; `None` for long-term keys.
    pub expires_at: Option<i64>,
}

impl fmt::Debug for AwsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The access key id identifies, it does not authenticate; still, show only its prefix.
        let id: String = self.access_key_id.chars().take(4).collect();
        f.debug_struct("AwsCredentials")
            .field("access_key_id", &format_args!("{id}…"))
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

impl AwsCredentials {
    /// Whether the access key id is a long-term IAM user key (`AKIA…`), which
    /// AWS refuses with any session token beside it.
    pub fn is_long_term_key(&self) -> bool {
        self.access_key_id.starts_with("AKIA")
    }
}

impl crate::cache::Expiring for AwsCredentials {
    fn expires_at(&self) -> Option<i64> {
        self.expires_at
    }
}

/// An RFC 3339 `Expiration`, in unix seconds.
pub(super) fn expiry(source: AwsSourceKind, s: &str) -> Result<i64, AwsAuthError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| AwsAuthError::Config {
            kind: source,
            problem: AwsConfigProblem::BadExpiration {
                value: s.chars().take(40).collect(),
            },
        })
}
