//! Reading a credentials file without using it: the parsing entry point that
//! the fuzz targets (`fuzz/`) drive, and that a tool can use to check a file
//! before pointing GOOGLE_APPLICATION_CREDENTIALS at it. It runs exactly the
//! parser Application Default Credentials runs, and reports its errors as ADC
//! would for a GOOGLE_APPLICATION_CREDENTIALS file at `path`.

use super::file::{self, CredentialsFile, FileError};
use super::{CredentialKind, SourceKind};
use crate::error::AuthError;
use keyway_core::{Env, Secret};
use std::path::Path;

/// The kind of credentials `bytes` hold, or the error ADC would give for them.
/// Nothing is fetched and no file is read; `env` supplies only the endpoint
/// overrides the parser consults.
pub fn check_credentials_file(
    path: &Path,
    bytes: &[u8],
    env: &Env,
) -> Result<CredentialKind, AuthError> {
    let origin = SourceKind::EnvFile;
    let parsed = file::parse(&Secret::new(bytes.to_vec()), env).map_err(|e| match e {
        FileError::Invalid { field, reason } => AuthError::InvalidConfig {
            path: path.to_owned(),
            origin,
            field,
            reason,
        },
        FileError::Unsupported { kind, detail } => AuthError::Unsupported {
            path: path.to_owned(),
            origin,
            kind,
            detail,
        },
    })?;
    Ok(match parsed {
        CredentialsFile::AuthorizedUser(_) => CredentialKind::AuthorizedUser,
        CredentialsFile::ServiceAccount(_) => CredentialKind::ServiceAccount,
        CredentialsFile::ExternalAccount(_) => CredentialKind::ExternalAccount,
        CredentialsFile::Impersonated(_) => CredentialKind::ImpersonatedServiceAccount,
    })
}
