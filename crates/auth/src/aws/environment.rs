//! The environment source: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`
//! (and `AWS_SESSION_TOKEN` for temporary credentials), as every SDK reads
//! them first. Nothing refreshes them: temporary ones expire where they are.

use super::credentials::AwsCredentials;
use super::error::{AwsAuthError, AwsConfigProblem};
use super::source::AwsSourceKind;
use crate::AuthContext;
use keyway_core::Secret;
use keyway_core::vars;

/// The credentials the variables hold; `Ok(None)` when neither is set.
pub(super) fn credentials(ctx: &AuthContext) -> Result<Option<AwsCredentials>, AwsAuthError> {
    let env = &ctx.env;
    let half = |set, missing| {
        AwsAuthError::config(
            AwsSourceKind::Environment,
            AwsConfigProblem::VariableWithoutPartner { set, missing },
        )
    };
    match (
        env.non_empty(vars::AWS_ACCESS_KEY_ID),
        env.non_empty(vars::AWS_SECRET_ACCESS_KEY),
    ) {
        (Some(id), Some(secret)) => Ok(Some(AwsCredentials {
            access_key_id: id.to_owned(),
            secret_access_key: Secret::new(secret.to_owned()),
            session_token: env
                .non_empty(vars::AWS_SESSION_TOKEN)
                .map(|t| Secret::new(t.to_owned())),
            expires_at: None,
        })),
        (Some(_), None) => Err(half("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")),
        (None, Some(_)) => Err(half("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID")),
        (None, None) => Ok(None),
    }
}
