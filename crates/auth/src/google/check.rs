//! Reading a credentials file without using it: the parsing entry point that
//! the fuzz targets (`fuzz/`) drive, and that a tool can use to check a file
//! before pointing GOOGLE_APPLICATION_CREDENTIALS at it. It runs exactly the
//! parser Application Default Credentials runs, and reports its errors as ADC
//! would for a GOOGLE_APPLICATION_CREDENTIALS file at `path`.

use super::file::CredentialsFile;
use super::source::{CredentialKind, SourceKind};
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
    let parsed = super::adc::parse(env, path, SourceKind::EnvFile, &Secret::new(bytes.to_vec()))?;
    Ok(match parsed {
        CredentialsFile::AuthorizedUser(_) => CredentialKind::AuthorizedUser,
        CredentialsFile::ServiceAccount(_) => CredentialKind::ServiceAccount,
        CredentialsFile::ExternalAccount(_) => CredentialKind::ExternalAccount,
        CredentialsFile::Impersonated(..) => CredentialKind::ImpersonatedServiceAccount,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_kind_or_the_error_adc_would_give() {
        let path = Path::new("/etc/creds.json");
        let env = Env::new();
        let user = include_bytes!("../../tests/data/authorized_user.json");
        assert_eq!(
            check_credentials_file(path, user, &env).unwrap(),
            CredentialKind::AuthorizedUser
        );
        let e = check_credentials_file(path, br#"{"type":"nope"}"#, &env).unwrap_err();
        assert!(
            matches!(
                e,
                AuthError::InvalidConfig {
                    field: Some("type"),
                    ..
                }
            ),
            "{e:?}"
        );
        assert!(e.to_string().contains("/etc/creds.json"), "{e}");
        let secret = br#"{"type":"authorized_user","client_id":"c","client_secret":"s3cr3t-value","refresh_token":7}"#;
        let e = check_credentials_file(path, secret, &env).unwrap_err();
        assert!(!format!("{e} {e:?}").contains("s3cr3t-value"), "{e:?}");
    }
}
