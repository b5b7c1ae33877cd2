//! The shared config and credentials files (`~/.aws/config`,
//! `~/.aws/credentials`, or AWS_CONFIG_FILE / AWS_SHARED_CREDENTIALS_FILE):
//! the profile AWS_PROFILE (or AWS_DEFAULT_PROFILE, else `default`) names,
//! with static keys or a `web_identity_token_file` and `role_arn`. The
//! credentials file wins over the config file for the same key, as in the SDKs.

use super::credentials::AwsCredentials;
use super::error::{AwsAbsent, AwsAuthError, AwsConfigProblem};
use super::source::AwsSourceKind;
use crate::AuthContext;
use keyway_core::Secret;
use keyway_core::vars;
use std::collections::BTreeMap;
use std::path::PathBuf;

const KIND: AwsSourceKind = AwsSourceKind::Profile;

/// The profile's name and whether the user named it.
pub(super) fn name(ctx: &AuthContext) -> (String, bool) {
    match ctx
        .env
        .non_empty(vars::AWS_PROFILE)
        .or(ctx.env.non_empty(vars::AWS_DEFAULT_PROFILE))
    {
        Some(p) => (p.to_owned(), true),
        None => ("default".to_owned(), false),
    }
}

/// The credentials and config files.
pub(super) fn files(ctx: &AuthContext) -> (PathBuf, PathBuf) {
    let home = PathBuf::from(ctx.env.non_empty(vars::HOME).unwrap_or("/"));
    let creds = ctx
        .env
        .non_empty(vars::AWS_SHARED_CREDENTIALS_FILE)
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = ctx
        .env
        .non_empty(vars::AWS_CONFIG_FILE)
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    (creds, config)
}

/// The profile's keys from both files (the credentials file wins). Empty: no such profile.
pub(super) fn read(
    ctx: &AuthContext,
    name: &str,
) -> Result<BTreeMap<String, String>, AwsAuthError> {
    let (creds_path, config_path) = files(ctx);
    let mut out = BTreeMap::new();
    for (path, section) in [
        (
            config_path,
            if name == "default" {
                "default".to_owned()
            } else {
                format!("profile {name}")
            },
        ),
        (creds_path, name.to_owned()),
    ] {
        let text = match ctx.fs.read(&path) {
            Ok(b) => String::from_utf8(b).map_err(|_| {
                AwsAuthError::config(KIND, AwsConfigProblem::NotUtf8 { path: path.clone() })
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(AwsAuthError::config(
                    KIND,
                    AwsConfigProblem::Unreadable {
                        what: "",
                        path,
                        reason: e.to_string(),
                    },
                ));
            }
        };
        let mut ini = parse_ini(&text);
        if let Some(s) = ini.remove(&section) {
            out.extend(s);
        }
    }
    Ok(out)
}

/// What a profile holds.
pub(super) enum Found {
    Static(AwsCredentials),
    WebIdentity {
        token_file: PathBuf,
        role_arn: String,
        session_name: Option<String>,
    },
}

/// The profile's credentials, why it does not apply, or why it cannot work.
pub(super) fn resolve(
    ctx: &AuthContext,
    profile: &BTreeMap<String, String>,
) -> Result<Result<Found, AwsAbsent>, AwsAuthError> {
    let (name, explicit) = name(ctx);
    if profile.is_empty() {
        let (credentials_file, config_file) = files(ctx);
        if explicit {
            return Err(AwsAuthError::config(
                KIND,
                AwsConfigProblem::NoSuchProfile {
                    profile: name,
                    credentials_file,
                    config_file,
                },
            ));
        }
        return Ok(Err(AwsAbsent::NoProfile {
            profile: name,
            credentials_file,
            config_file,
        }));
    }
    if let (Some(id), Some(secret)) = (
        profile.get("aws_access_key_id"),
        profile.get("aws_secret_access_key"),
    ) {
        return Ok(Ok(Found::Static(AwsCredentials {
            access_key_id: id.clone(),
            secret_access_key: Secret::new(secret.clone()),
            session_token: profile
                .get("aws_session_token")
                .map(|t| Secret::new(t.clone())),
            expires_at: None,
        })));
    }
    if let Some(file) = profile.get("web_identity_token_file") {
        let Some(role_arn) = profile.get("role_arn") else {
            return Err(AwsAuthError::config(
                KIND,
                AwsConfigProblem::ProfileWithoutRole { profile: name },
            ));
        };
        return Ok(Ok(Found::WebIdentity {
            token_file: PathBuf::from(file),
            role_arn: role_arn.clone(),
            session_name: profile.get("role_session_name").cloned(),
        }));
    }
    let other = [
        "role_arn",
        "credential_process",
        "sso_session",
        "sso_start_url",
        "credential_source",
    ]
    .into_iter()
    .find(|k| profile.contains_key(*k));
    match other {
        Some(k) => Err(AwsAuthError::Unsupported {
            kind: KIND,
            detail: format!("profile '{name}' with {k}"),
        }),
        None if explicit => Err(AwsAuthError::config(
            KIND,
            AwsConfigProblem::ProfileWithoutKeys { profile: name },
        )),
        None => Ok(Err(AwsAbsent::ProfileWithoutKeys { profile: name })),
    }
}

/// A minimal INI reader for the AWS files: `[section]`, `key = value`, `#`/`;` comments.
/// Keys are lower-cased; values are trimmed.
pub fn parse_ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(s) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = s.split_whitespace().collect::<Vec<_>>().join(" ");
            out.entry(name.clone()).or_default();
            current = Some(name);
        } else if let (Some(sec), Some((k, v))) = (&current, line.split_once('=')) {
            out.entry(sec.clone())
                .or_default()
                .insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    out
}
