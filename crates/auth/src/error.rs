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

use crate::google::{Attempt, SourceKind};
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
        "reading google credentials from {} ({origin}): {reason}",
        path.display()
    )]
    InvalidConfig {
        path: PathBuf,
        /// How the file was found (GOOGLE_APPLICATION_CREDENTIALS or gcloud's well-known file).
        origin: SourceKind,
        /// The JSON field at fault, when one is.
        field: Option<&'static str>,
        reason: String,
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
    #[error("{doing}: {url} answered {}{}", Status(*status), Summary(summary.as_deref()))]
    Rejected {
        doing: &'static str,
        url: String,
        status: u16,
        /// Google's `error`/`error_description`, or the `google.rpc.Status` status and
        /// message, or the first line of a plain-text body.
        summary: Option<String>,
    },

    /// The server answered 2xx with something that is not what the protocol says.
    #[error("{doing}: {url} sent an invalid response: {reason}")]
    InvalidResponse {
        doing: &'static str,
        url: String,
        reason: String,
    },

    /// The subject token of `external_account` credentials could not be had:
    /// `from` names the source (the file, the URL, the executable, aws1).
    #[error("getting the subject token from {from}: {reason}")]
    SubjectToken { from: String, reason: String },

    /// Signing a JWT with a service account key failed.
    #[error("signing a jwt as {email}: {reason}")]
    Signing { email: String, reason: String },
}

impl AuthError {
    /// Whether trying again later may succeed: connection failures, timeouts and
    /// the statuses Google documents as retryable (408, 429, 500, 502, 503, 504).
    pub fn is_transient(&self) -> bool {
        match self {
            AuthError::Transport(e) => e.is_transient(),
            AuthError::Rejected { status, .. } => is_transient_status(*status),
            _ => false,
        }
    }

    /// The HTTP status, for errors that carry one.
    pub fn status(&self) -> Option<u16> {
        match self {
            AuthError::Rejected { status, .. } => Some(*status),
            _ => None,
        }
    }
}

impl keyway_http::Transient for AuthError {
    fn is_transient(&self) -> bool {
        AuthError::is_transient(self)
    }
}

struct Attempts<'a>(&'a [Attempt]);

impl fmt::Display for Attempts<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", a.source, a.outcome)?;
        }
        Ok(())
    }
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

struct Summary<'a>(Option<&'a str>);

impl fmt::Display for Summary<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, ": {s}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::google::Outcome;

    #[test]
    fn messages_are_lowercase_and_carry_context() {
        let e = AuthError::Rejected {
            doing: "getting an access token",
            url: "http://127.0.0.1:9/token".into(),
            status: 400,
            summary: Some("invalid_grant: Bad Request".into()),
        };
        assert_eq!(
            e.to_string(),
            "getting an access token: http://127.0.0.1:9/token answered 400 Bad Request: invalid_grant: Bad Request"
        );
        assert!(!e.is_transient());
        assert_eq!(e.status(), Some(400));

        let e = AuthError::NotConfigured {
            attempts: vec![
                Attempt {
                    source: SourceKind::EnvFile,
                    outcome: Outcome::NotConfigured("not set".into()),
                },
                Attempt {
                    source: SourceKind::MetadataServer,
                    outcome: Outcome::Failed("refused".into()),
                },
            ],
        };
        assert_eq!(
            e.to_string(),
            "finding google credentials: no source answered (GOOGLE_APPLICATION_CREDENTIALS: not configured: not set; metadata server: failed: refused)"
        );
    }

    #[test]
    fn transient_classification() {
        for s in [408, 429, 500, 502, 503, 504] {
            let e = AuthError::Rejected {
                doing: "x",
                url: "u".into(),
                status: s,
                summary: None,
            };
            assert!(e.is_transient(), "{s}");
        }
        for s in [400, 401, 403, 404] {
            let e = AuthError::Rejected {
                doing: "x",
                url: "u".into(),
                status: s,
                summary: None,
            };
            assert!(!e.is_transient(), "{s}");
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
