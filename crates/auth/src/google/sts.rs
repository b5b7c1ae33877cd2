//! The two Google endpoints federation talks to: the Security Token Service
//! (RFC 8693 token exchange at `token_url`) and IAM Credentials
//! (`generateAccessToken` / `generateIdToken` on a service account).
//!
//! Endpoint rules (AIP-4117): a credentials file is data a workload may be
//! handed, and its `token_url` receives the subject token, its impersonation
//! URL the federated token. So `token_url` must be Google's STS over https
//! (`sts.googleapis.com`, regional `sts.LOC.rep.googleapis.com`, and the
//! location and Private Service Connect forms google-auth accepted), and the
//! impersonation URL Google's IAM Credentials in the same forms. The one way
//! past this is explicit: a URL with the same origin (scheme, host, port) as
//! the user's `CLOUDSDK_API_ENDPOINT_OVERRIDES_STS` (for `token_url`) or
//! `CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS` (for impersonation) is
//! accepted too; that is how the local cloud is reached.

use super::doc::FileError;
use super::service::Service;
use super::token::{AccessToken, Minted};
use crate::context::AuthContext;
use crate::error::{AuthError, ConfigProblem, GoogleCall};
use crate::http;
use keyway_core::{Env, Secret};
use serde_json::json;

pub(crate) const DEFAULT_TOKEN_URL: &str = "https://sts.googleapis.com/v1/token";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// What STS is asked for when the federated token only serves to impersonate
/// (what google-auth sends).
pub(crate) const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// One DNS label: not empty, no dot (the URL parser already refused spaces,
/// slashes and backslashes in a host).
fn label(s: &str) -> bool {
    !s.is_empty() && !s.contains('.')
}

/// Whether `host` (lower case) is one of Google's names for `service`.
fn google_host(service: &str, host: &str) -> bool {
    let Some(base) = host
        .strip_suffix(".mtls.googleapis.com")
        .or_else(|| host.strip_suffix(".googleapis.com"))
    else {
        return false;
    };
    // service.googleapis.com
    if base == service {
        return true;
    }
    // LOC.service.googleapis.com
    if let Some(loc) = base.strip_suffix(&format!(".{service}")) {
        return label(loc);
    }
    // LOC-service.googleapis.com
    if let Some(loc) = base.strip_suffix(&format!("-{service}")) {
        return label(loc);
    }
    if let Some(rest) = base.strip_prefix(&format!("{service}.")) {
        // service.LOC.googleapis.com, and the regional service.LOC.rep.googleapis.com
        return label(rest) || rest.strip_suffix(".rep").is_some_and(label);
    }
    // service-ENDPOINT.p.googleapis.com (Private Service Connect)
    if let Some(rest) = base.strip_prefix(&format!("{service}-")) {
        return rest.strip_suffix(".p").is_some_and(label);
    }
    false
}

/// (scheme, host, port) of a URL.
fn origin(u: &url::Url) -> (String, Option<String>, Option<u16>) {
    (
        u.scheme().to_owned(),
        u.host_str().map(str::to_ascii_lowercase),
        u.port_or_known_default(),
    )
}

/// A URL refused by [`check_url`].
#[derive(Debug)]
pub(crate) struct UrlRefused {
    service: Service,
    url: String,
}

/// The file error for a refused URL in `field`.
pub(crate) fn url_error(field: &'static str, r: UrlRefused) -> FileError {
    FileError::Invalid {
        field: Some(field),
        problem: ConfigProblem::NotGoogleEndpoint {
            field,
            service: r.service,
            url: r.url,
        },
    }
}

/// Checks a `token_url` or impersonation URL against Google's hosts, or the
/// origin of the user's endpoint override.
pub(crate) fn check_url(service: Service, raw: &str, env: &Env) -> Result<(), UrlRefused> {
    let shown = http::redact_url(raw);
    let name = service.name();
    if let Some(base) = env.non_empty(service.override_var())
        && let (Ok(o), Ok(u)) = (url::Url::parse(base), url::Url::parse(raw))
        && origin(&o) == origin(&u)
        && matches!(u.scheme(), "http" | "https")
    {
        return Ok(());
    }
    let allowed = !raw.chars().any(char::is_whitespace)
        && raw
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
        && match url::Url::parse(raw) {
            Ok(u) => {
                u.scheme() == "https"
                    && u.username().is_empty()
                    && u.password().is_none()
                    && u.port().is_none()
                    && u.host_str()
                        .is_some_and(|h| google_host(name, &h.to_ascii_lowercase()))
            }
            Err(_) => false,
        };
    if allowed {
        return Ok(());
    }
    Err(UrlRefused {
        service,
        url: shown,
    })
}

/// One STS token exchange.
pub(crate) struct Exchange<'a> {
    pub token_url: &'a str,
    pub audience: &'a str,
    pub scopes: &'a [String],
    pub subject_token: &'a Secret<String>,
    pub subject_token_type: &'a str,
    /// `client_id` and `client_secret`, sent as HTTP Basic authentication.
    pub client: Option<(&'a str, &'a Secret<String>)>,
    /// The workforce pool user project, sent as `options` when there is no client.
    pub user_project: Option<&'a str>,
}

/// `POST token_url` with the RFC 8693 form; the federated access token.
pub(crate) async fn exchange(ctx: &AuthContext, x: &Exchange<'_>) -> Result<Minted, AuthError> {
    const CALL: GoogleCall = GoogleCall::StsExchange;
    const DOING: &str = CALL.doing();
    let now = ctx.clock.now_secs();
    let scope = x.scopes.join(" ");
    let options = match (x.client, x.user_project) {
        (None, Some(p)) => Some(json!({ "userProject": p }).to_string()),
        _ => None,
    };
    let url = x.token_url;
    let reply = http::send(&ctx.retry, CALL, url, http::TOKEN, false, || {
        let mut form: Vec<(&str, &str)> = vec![
            ("grant_type", TOKEN_EXCHANGE),
            ("audience", x.audience),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token", x.subject_token.expose().as_str()),
            ("subject_token_type", x.subject_token_type),
        ];
        if !scope.is_empty() {
            form.push(("scope", scope.as_str()));
        }
        if let Some(o) = &options {
            form.push(("options", o.as_str()));
        }
        let req = ctx.http.post(url).form(&form);
        match x.client {
            Some((id, secret)) => req.basic_auth(id, Some(secret.expose())),
            None => req,
        }
    })
    .await?;
    let mut minted = super::token::token_from_reply(&reply, DOING, url, now, Some(x.scopes))?;
    minted.email = None;
    Ok(minted)
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct GenerateAccessTokenResponse {
    access_token: String,
    expire_time: String,
}

#[derive(serde::Deserialize)]
struct GenerateIdTokenResponse {
    token: String,
}

fn bearer(token: &Secret<String>) -> Result<reqwest::header::HeaderValue, AuthError> {
    let mut v = reqwest::header::HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .map_err(|_| AuthError::InvalidResponse {
            doing: "using an access token",
            url: String::new(),
            reason: "the token is not a valid HTTP header value".into(),
        })?;
    v.set_sensitive(true);
    Ok(v)
}

/// IAM Credentials `generateAccessToken` as `bearer`: a token of the target
/// service account for `scopes`, living `lifetime_secs`.
pub(crate) async fn generate_access_token(
    ctx: &AuthContext,
    url: &str,
    auth: &Secret<String>,
    scopes: &[String],
    delegates: Option<&[String]>,
    lifetime_secs: u32,
    quota_project: Option<&str>,
) -> Result<AccessToken, AuthError> {
    const CALL: GoogleCall = GoogleCall::GenerateAccessToken;
    const DOING: &str = CALL.doing();
    let auth = bearer(auth)?;
    let body = json!({
        "delegates": delegates,
        "scope": scopes,
        "lifetime": format!("{lifetime_secs}s"),
    });
    let reply = http::send(&ctx.retry, CALL, url, http::TOKEN, false, || {
        let r = ctx
            .http
            .post(url)
            .header(reqwest::header::AUTHORIZATION, auth.clone())
            .json(&body);
        match quota_project {
            Some(p) => r.header("x-goog-user-project", p),
            None => r,
        }
    })
    .await?;
    let GenerateAccessTokenResponse {
        access_token,
        expire_time,
    } = http::parse_json(
        &reply,
        DOING,
        url,
        "a response with accessToken and expireTime",
    )?;
    let token = Secret::new(access_token);
    let invalid = |reason: String| AuthError::InvalidResponse {
        doing: DOING,
        url: http::redact_url(url),
        reason,
    };
    if token.expose().is_empty() {
        return Err(invalid("the accessToken is empty".into()));
    }
    let expires_at = expire_time
        .parse::<jiff::Timestamp>()
        .map_err(|_| {
            invalid(format!(
                "expireTime {expire_time:?} is not an RFC 3339 time"
            ))
        })?
        .as_second();
    Ok(AccessToken {
        token,
        expires_at,
        scopes: Some(scopes.to_vec()),
    })
}

/// The `generateIdToken` URL of a `…:generateAccessToken` URL.
pub(crate) fn id_token_url(access_token_url: &str) -> String {
    match access_token_url.strip_suffix(":generateAccessToken") {
        Some(base) => format!("{base}:generateIdToken"),
        None => access_token_url.to_owned(),
    }
}

/// IAM Credentials `generateIdToken` as `bearer`, for `audience`, with the email claim.
pub(crate) async fn generate_id_token(
    ctx: &AuthContext,
    access_token_url: &str,
    auth: &Secret<String>,
    audience: &str,
    delegates: Option<&[String]>,
) -> Result<Secret<String>, AuthError> {
    const CALL: GoogleCall = GoogleCall::GenerateIdToken;
    const DOING: &str = CALL.doing();
    let url = id_token_url(access_token_url);
    let auth = bearer(auth)?;
    let body = json!({ "audience": audience, "includeEmail": true, "delegates": delegates });
    let reply = http::send(&ctx.retry, CALL, &url, http::TOKEN, false, || {
        ctx.http
            .post(url.as_str())
            .header(reqwest::header::AUTHORIZATION, auth.clone())
            .json(&body)
    })
    .await?;
    let GenerateIdTokenResponse { token } =
        http::parse_json(&reply, DOING, &url, "a response with token")?;
    let token = Secret::new(token);
    if token.expose().is_empty() {
        return Err(AuthError::InvalidResponse {
            doing: DOING,
            url: http::redact_url(&url),
            reason: "the token is empty".into(),
        });
    }
    Ok(token)
}

/// The service account email in an impersonation URL (`…/serviceAccounts/EMAIL:generateAccessToken`).
pub(crate) fn target_email(url: &str) -> Option<String> {
    let after = url.rsplit_once("/serviceAccounts/")?.1;
    let email = after.split(':').next()?;
    (!email.is_empty()).then(|| email.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::vars;

    fn constants() -> serde_json::Value {
        serde_json::from_str(include_str!(
            "../../tests/data/google-auth-test-constants.json"
        ))
        .unwrap()
    }

    fn list(c: &serde_json::Value, name: &str) -> Vec<String> {
        c["files"]["tests/test_identity_pool.py"]["constants"][name]["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn google_auth_url_lists_are_honoured() {
        let c = constants();
        let env = Env::new();
        for (name, service, valid) in [
            ("VALID_TOKEN_URLS", Service::Sts, true),
            ("INVALID_TOKEN_URLS", Service::Sts, false),
            (
                "VALID_SERVICE_ACCOUNT_IMPERSONATION_URLS",
                Service::IamCredentials,
                true,
            ),
            (
                "INVALID_SERVICE_ACCOUNT_IMPERSONATION_URLS",
                Service::IamCredentials,
                false,
            ),
        ] {
            let urls = list(&c, name);
            assert!(urls.len() >= 9, "{name}");
            for u in urls {
                assert_eq!(check_url(service, &u, &env).is_ok(), valid, "{name}: {u:?}");
            }
        }
        // The regional endpoints of AIP-4117.
        assert!(
            check_url(
                Service::Sts,
                "https://sts.us-east1.rep.googleapis.com/v1/token",
                &env
            )
            .is_ok()
        );
        assert!(
            check_url(
                Service::Sts,
                "https://sts.us-east1.rep.evil.com/v1/token",
                &env
            )
            .is_err()
        );
    }

    #[test]
    fn only_the_override_origin_opens_the_rule() {
        let env = Env::new();
        let e = check_url(Service::Sts, "http://127.0.0.1:5057/v1/token?x=1", &env).unwrap_err();
        let FileError::Invalid { problem, .. } = url_error("token_url", e) else {
            panic!()
        };
        let e = problem.to_string();
        assert!(
            e.contains("\"http://127.0.0.1:5057/v1/token\" is not a Google sts endpoint"),
            "{e}"
        );
        assert!(e.contains("CLOUDSDK_API_ENDPOINT_OVERRIDES_STS"), "{e}");
        let env = Env::new().with(
            vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_STS,
            "http://127.0.0.1:5057/",
        );
        assert!(check_url(Service::Sts, "http://127.0.0.1:5057/v1/token", &env).is_ok());
        assert!(check_url(Service::Sts, "http://127.0.0.1:5058/v1/token", &env).is_err());
        assert!(check_url(Service::Sts, "http://localhost:5057/v1/token", &env).is_err());
        // The STS override does not open IAM Credentials.
        assert!(check_url(Service::IamCredentials, "http://127.0.0.1:5057/v1/x", &env).is_err());
    }

    #[test]
    fn id_token_url_and_email_come_from_the_impersonation_url() {
        let u = "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken";
        assert_eq!(
            id_token_url(u),
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateIdToken"
        );
        assert_eq!(
            target_email(u).as_deref(),
            Some("sa@p.iam.gserviceaccount.com")
        );
        assert_eq!(target_email("https://x/"), None);
    }
}
