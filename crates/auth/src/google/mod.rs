//! Google credentials: what Application Default Credentials found, where it
//! found it, and what it tried first. [`GoogleCredentials`] is the handle the
//! rest of keyway uses to get access tokens, ID tokens and "who am I"; it hides
//! which flow runs underneath (refresh token, JWT bearer, metadata server) but
//! never hides where the credentials came from ([`Source`], [`Attempt`]).

mod adc;
mod authorized_user;
mod aws_source;
mod check;
mod credentials;
mod describe;
mod doc;
mod executable;
mod external;
mod file;
mod impersonated;
mod jwt;
mod metadata;
pub(crate) mod service;
mod service_account;
pub(crate) mod source;
mod sts;
mod token;

pub use crate::error::{Absent, Attempt, Outcome};
pub use adc::{credential_file, google_default};
pub use check::check_credentials_file;
pub use credentials::{GoogleCredentials, Identity};
pub use describe::{CredentialFile, Federation, SubjectSourceKind, WorkloadProvider};
pub use service::Service as GoogleService;
pub use source::{CredentialKind, Source, SourceKind};
pub use token::AccessToken;
