//! Why Google credentials could not be had, as a [`Problem`]: the
//! configuration itself (a credentials file missing or invalid at its line,
//! a URL Google's libraries refuse, user credentials Google no longer
//! accepts, a metadata server named but silent), then Workload Identity
//! Federation ([`crate::federation`]), else where ADC looks. For `exec`'s and
//! `get`'s hints and `keyway doctor` alike; every choice a match on the typed
//! [`AuthError`].

use crate::diagnosis::{Code, Fix, Problem};
use crate::fixes;
use crate::google;
use keyway_auth::{AuthError, ConfigProblem, GoogleCall};
use keyway_core::Env;
use keyway_http::google::OAuthErrorCode;

/// Where to look when no Google credentials were found.
pub const CREDENTIALS_HINT: &str = "set GOOGLE_APPLICATION_CREDENTIALS to a credentials file, run `gcloud auth application-default login`, or run on a VM with a service account";

/// The diagnosis when Google credentials could not be had: the credentials
/// file itself (missing, invalid at a line, a URL that is not Google's), user
/// credentials expired or revoked, a metadata server that does not answer,
/// and for Workload Identity Federation why STS or IAM Credentials refused.
pub async fn credentials_problem(
    env: &Env,
    http: &reqwest::Client,
    e: &AuthError,
) -> Option<Problem> {
    if let Some(p) = configuration_problem(e) {
        return Some(p);
    }
    // No source answered, but one was named and failed (a metadata server
    // GCE_METADATA_HOST names that does not answer): that one's diagnosis.
    if let AuthError::NotConfigured { attempts } = e
        && let Some(p) = attempts
            .iter()
            .filter_map(|a| a.outcome.failure())
            .find_map(configuration_problem)
    {
        return Some(p);
    }
    let Some(f) = google::federation(env, http) else {
        return Some(no_credentials(e));
    };
    match crate::federation::problem(env, http, &f, e).await {
        Some(p) => Some(p),
        None => Some(no_credentials(e)),
    }
}

/// Problems of the configuration itself, whatever the credentials' type: a
/// file that is missing or invalid (at its line), user credentials Google no
/// longer accepts, a metadata server named but silent.
pub fn configuration_problem(e: &AuthError) -> Option<Problem> {
    match e {
        AuthError::InvalidConfig {
            path,
            origin,
            problem: ConfigProblem::Missing,
            ..
        } => Some(Problem::new(
            Code::GoogleCredentialsFileMissing,
            format!(
                "{} names {}, which does not exist: point it at the credentials file, or unset it so that ADC looks at gcloud's file and the metadata server",
                origin,
                path.display()
            ),
        )),
        AuthError::InvalidConfig {
            path,
            line,
            problem,
            ..
        } => {
            let code = match problem {
                ConfigProblem::NotGoogleEndpoint { .. } => Code::FederationBadUrl,
                _ => Code::GoogleCredentialsFileInvalid,
            };
            let change = match problem {
                ConfigProblem::NotGoogleEndpoint { field, service, .. } => format!(
                    "set {field} to a https://{}.googleapis.com URL (Google's libraries refuse any other host before they send anything; \
                     {} points keyway at another one), or regenerate the file with `gcloud iam workload-identity-pools create-cred-config`",
                    service.name(),
                    service.override_var()
                ),
                ConfigProblem::NotJson(parser) => format!(
                    "make it valid JSON (the parser said: {parser}; it notices a missing or extra comma only at the next token)"
                ),
                ConfigProblem::MissingField(field) => format!("add the field \"{field}\""),
                ConfigProblem::WrongType { field, expected } => {
                    format!("make the field \"{field}\" {expected}")
                }
                other => other.to_string(),
            };
            Some(
                Problem::new(
                    code,
                    format!("the credentials file {} is not valid.", path.display()),
                )
                .fix(Fix::Edit {
                    file: path.clone(),
                    line: *line,
                    change,
                }),
            )
        }
        AuthError::Rejected(r)
            if r.call == GoogleCall::RefreshUser
                && r.body.oauth_code() == Some(&OAuthErrorCode::InvalidGrant) =>
        {
            Some(
                Problem::new(
                    Code::GoogleUserCredentialsExpired,
                    "Google refused the user credentials' refresh token (invalid_grant): it has expired or was revoked \
                     (a password change, `gcloud auth application-default revoke`, or an organisation's session length). Log in again:",
                )
                .fix(Fix::run(fixes::Cmd::new([
                    "gcloud",
                    "auth",
                    "application-default",
                    "login",
                ]))),
            )
        }
        AuthError::MetadataUnreachable { var, host, .. } => Some(Problem::new(
            Code::GoogleMetadataUnreachable,
            format!(
                "{var} is {host}, but nothing there answers as a metadata server: start what it names (`keyway serve`, or run under `keyway exec --broker`), or unset {var}"
            ),
        )),
        _ => None,
    }
}

fn no_credentials(e: &AuthError) -> Problem {
    let code = match e {
        AuthError::NotConfigured { .. } => Code::GoogleNoCredentials,
        _ => Code::Other,
    };
    Problem::new(code, CREDENTIALS_HINT)
}
