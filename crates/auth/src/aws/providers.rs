//! The chain's sources, one function each, and region resolution.

use super::{
    AwsAttempt, AwsAuthError, AwsChainOptions, AwsCredentials, AwsOutcome, AwsSource,
    AwsSourceKind, ImdsEndpoint,
};
use crate::AuthContext;
use crate::http::{self, Call, redact_url, send};
use keyway_core::{Secret, vars};
use keyway_http::aws::AwsError;
use keyway_wire::aws::{ContainerCredentials, ImdsCredentials};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use zeroize::Zeroize;

const ECS_HOST: &str = "http://169.254.170.2";
const IMDS_DEFAULT: &str = "http://169.254.169.254";

/// The audience of the Google ID token when KEYWAY_AWS_WEB_IDENTITY=google and
/// KEYWAY_AWS_WEB_IDENTITY_AUDIENCE is unset: the audience AWS documents for
/// tokens meant for STS (EKS service-account tokens, GitHub Actions), so one
/// trust condition (`accounts.google.com:oaud`) reads the same for all of them.
pub const DEFAULT_GOOGLE_AUDIENCE: &str = "sts.amazonaws.com";
const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// How to get fresh credentials from the source that answered.
#[derive(Debug, Clone)]
pub(super) enum Refetch {
    Static,
    Ecs { url: String },
    Imds { endpoint: String },
    WebIdentity(Box<WebIdentity>),
}

/// AssumeRoleWithWebIdentity: where the token comes from and what to assume.
#[derive(Debug, Clone)]
pub(super) struct WebIdentity {
    /// The source errors are attributed to (a profile, or the environment).
    pub kind: AwsSourceKind,
    pub token: TokenSource,
    pub role_arn: String,
    pub session_name: String,
    /// STS base URL, no trailing '/'.
    pub endpoint: String,
}

#[derive(Debug, Clone)]
pub(super) enum TokenSource {
    /// Read at every refresh (Kubernetes rotates projected tokens).
    File(PathBuf),
    /// A Google ID token of keyway's Google credentials.
    Google {
        credentials: crate::GoogleCredentials,
        audience: String,
    },
}

pub(super) struct Found {
    pub source: AwsSource,
    pub creds: AwsCredentials,
    pub fetch: Refetch,
    pub profile_region: Option<(String, &'static str)>,
}

fn failed(source: AwsSourceKind, reason: impl Into<String>) -> AwsAuthError {
    AwsAuthError::Failed {
        kind: source,
        reason: reason.into(),
        transient: false,
    }
}

/// A request that failed: transient if the underlying error is.
fn failed_request(source: AwsSourceKind, e: &crate::AuthError) -> AwsAuthError {
    AwsAuthError::Failed {
        kind: source,
        reason: e.to_string(),
        transient: e.is_transient(),
    }
}

fn record(attempts: &mut Vec<AwsAttempt>, source: AwsSourceKind, outcome: AwsOutcome) {
    tracing::debug!(%source, %outcome, "aws credential source");
    attempts.push(AwsAttempt { source, outcome });
}

/// Runs each source in order; records every attempt.
pub(super) async fn chain(
    ctx: &AuthContext,
    opts: &AwsChainOptions,
    attempts: &mut Vec<AwsAttempt>,
) -> Result<Found, AwsAuthError> {
    let env = &ctx.env;
    let profile_name = env
        .non_empty("AWS_PROFILE")
        .or(env.non_empty("AWS_DEFAULT_PROFILE"))
        .unwrap_or("default")
        .to_owned();
    let profile = if opts.consults(AwsSourceKind::Profile) {
        read_profile(ctx, &profile_name)
    } else {
        Ok(BTreeMap::new())
    };
    let profile_region = profile
        .as_ref()
        .ok()
        .and_then(|p| p.get("region").cloned())
        .map(|r| (r, "profile region"));
    let stop = |attempts: &mut Vec<AwsAttempt>, e: AwsAuthError, kind| {
        record(attempts, kind, AwsOutcome::Failed(e.to_string()));
        e
    };

    // 1. Environment.
    'environment: {
        let kind = AwsSourceKind::Environment;
        if !opts.consults(kind) {
            break 'environment;
        }
        match (
            env.non_empty("AWS_ACCESS_KEY_ID"),
            env.non_empty("AWS_SECRET_ACCESS_KEY"),
        ) {
            (Some(id), Some(secret)) => {
                record(attempts, kind, AwsOutcome::Answered);
                let creds = AwsCredentials {
                    access_key_id: id.to_owned(),
                    secret_access_key: Secret::new(secret.to_owned()),
                    session_token: env
                        .non_empty("AWS_SESSION_TOKEN")
                        .map(|t| Secret::new(t.to_owned())),
                    expires_at: None,
                };
                let source = AwsSource {
                    kind,
                    detail: "AWS_ACCESS_KEY_ID".into(),
                };
                return Ok(Found {
                    source,
                    creds,
                    fetch: Refetch::Static,
                    profile_region,
                });
            }
            (Some(_), None) => {
                return Err(stop(
                    attempts,
                    failed(
                        kind,
                        "AWS_ACCESS_KEY_ID is set but AWS_SECRET_ACCESS_KEY is not",
                    ),
                    kind,
                ));
            }
            (None, Some(_)) => {
                return Err(stop(
                    attempts,
                    failed(
                        kind,
                        "AWS_SECRET_ACCESS_KEY is set but AWS_ACCESS_KEY_ID is not",
                    ),
                    kind,
                ));
            }
            (None, None) => record(
                attempts,
                kind,
                AwsOutcome::NotConfigured("AWS_ACCESS_KEY_ID is not set".into()),
            ),
        }
    }

    // 2. Shared files.
    'profile: {
        let kind = AwsSourceKind::Profile;
        if !opts.consults(kind) {
            break 'profile;
        }
        let explicit = env.non_empty("AWS_PROFILE").is_some()
            || env.non_empty("AWS_DEFAULT_PROFILE").is_some();
        match profile {
            Err(e) => return Err(stop(attempts, failed(kind, e), kind)),
            Ok(p) if p.is_empty() => {
                let why = format!(
                    "no profile '{profile_name}' in {} or {}",
                    files(ctx).0.display(),
                    files(ctx).1.display()
                );
                if explicit {
                    return Err(stop(attempts, failed(kind, why), kind));
                }
                record(attempts, kind, AwsOutcome::NotConfigured(why));
            }
            Ok(p) => match (p.get("aws_access_key_id"), p.get("aws_secret_access_key")) {
                (Some(id), Some(secret)) => {
                    record(attempts, kind, AwsOutcome::Answered);
                    let creds = AwsCredentials {
                        access_key_id: id.clone(),
                        secret_access_key: Secret::new(secret.clone()),
                        session_token: p.get("aws_session_token").map(|t| Secret::new(t.clone())),
                        expires_at: None,
                    };
                    let source = AwsSource {
                        kind,
                        detail: format!("profile {profile_name}"),
                    };
                    return Ok(Found {
                        source,
                        creds,
                        fetch: Refetch::Static,
                        profile_region,
                    });
                }
                _ if p.contains_key("web_identity_token_file") => {
                    let file = p
                        .get("web_identity_token_file")
                        .cloned()
                        .unwrap_or_default();
                    let Some(role_arn) = p.get("role_arn").cloned() else {
                        let e = failed(
                            kind,
                            format!(
                                "profile '{profile_name}' has web_identity_token_file but no role_arn"
                            ),
                        );
                        return Err(stop(attempts, e, kind));
                    };
                    let session_name = p
                        .get("role_session_name")
                        .cloned()
                        .unwrap_or_else(|| generated_session(ctx));
                    let region = env
                        .non_empty("AWS_REGION")
                        .or(env.non_empty("AWS_DEFAULT_REGION"))
                        .or(p.get("region").map(String::as_str));
                    let wi = WebIdentity {
                        kind,
                        token: TokenSource::File(PathBuf::from(&file)),
                        role_arn: role_arn.clone(),
                        session_name,
                        endpoint: sts_endpoint(ctx, region),
                    };
                    let fetch = Refetch::WebIdentity(Box::new(wi));
                    let creds = refetch(ctx, opts, &fetch)
                        .await
                        .map_err(|e| stop(attempts, e, kind))?;
                    record(attempts, kind, AwsOutcome::Answered);
                    let source = AwsSource {
                        kind,
                        detail: format!(
                            "profile {profile_name}: web_identity_token_file {file}, role {role_arn}"
                        ),
                    };
                    return Ok(Found {
                        source,
                        creds,
                        fetch,
                        profile_region,
                    });
                }
                _ => {
                    let other = [
                        "role_arn",
                        "credential_process",
                        "sso_session",
                        "sso_start_url",
                        "credential_source",
                    ]
                    .into_iter()
                    .find(|k| p.contains_key(*k));
                    match other {
                        Some(k) => {
                            let e = AwsAuthError::Unsupported {
                                kind,
                                detail: format!("profile '{profile_name}' with {k}"),
                            };
                            return Err(stop(attempts, e, kind));
                        }
                        None if explicit => {
                            return Err(stop(
                                attempts,
                                failed(
                                    kind,
                                    format!(
                                        "profile '{profile_name}' has no aws_access_key_id/aws_secret_access_key"
                                    ),
                                ),
                                kind,
                            ));
                        }
                        None => record(
                            attempts,
                            kind,
                            AwsOutcome::NotConfigured(format!(
                                "profile '{profile_name}' holds no keys"
                            )),
                        ),
                    }
                }
            },
        }
    }

    // 3. Web identity: keyway's Google → AWS source when asked for, else the SDKs' token file.
    'web_identity: {
        let kind = AwsSourceKind::WebIdentity;
        if !opts.consults(kind) {
            break 'web_identity;
        }
        let region = env
            .non_empty("AWS_REGION")
            .or(env.non_empty("AWS_DEFAULT_REGION"))
            .or(profile_region.as_ref().map(|(r, _)| r.as_str()));
        let role_arn = env.non_empty(vars::AWS_ROLE_ARN);
        let session_name = || {
            env.non_empty(vars::AWS_ROLE_SESSION_NAME)
                .map(str::to_owned)
                .unwrap_or_else(|| generated_session(ctx))
        };
        let configured = match (
            env.non_empty(vars::KEYWAY_AWS_WEB_IDENTITY),
            env.non_empty(vars::AWS_WEB_IDENTITY_TOKEN_FILE),
        ) {
            (Some(v), _) if v.eq_ignore_ascii_case("google") => {
                let Some(role_arn) = role_arn else {
                    return Err(stop(
                        attempts,
                        failed(
                            kind,
                            "KEYWAY_AWS_WEB_IDENTITY=google is set but AWS_ROLE_ARN is not (the role to assume)",
                        ),
                        kind,
                    ));
                };
                let audience = env
                    .non_empty(vars::KEYWAY_AWS_WEB_IDENTITY_AUDIENCE)
                    .unwrap_or(DEFAULT_GOOGLE_AUDIENCE)
                    .to_owned();
                // Boxed: Google's default credentials may be federated from AWS (aws1),
                // which makes this future recursive in type. At run time aws1 uses a chain
                // without web identity, so the recursion stops there.
                let credentials = Box::pin(crate::google_default(ctx, &[CLOUD_PLATFORM.to_owned()]))
                .await
                .map_err(|e| stop(attempts, failed(kind, format!("KEYWAY_AWS_WEB_IDENTITY=google needs Google credentials for the ID token: {e}")), kind))?;
                let detail = format!(
                    "KEYWAY_AWS_WEB_IDENTITY=google: a Google ID token (audience {audience}) from {}, role {role_arn}",
                    credentials.source()
                );
                Some((
                    TokenSource::Google {
                        credentials,
                        audience,
                    },
                    role_arn.to_owned(),
                    detail,
                ))
            }
            (Some(v), _) => {
                return Err(stop(
                    attempts,
                    failed(
                        kind,
                        format!(
                            "KEYWAY_AWS_WEB_IDENTITY='{v}' is not understood (the only value is 'google')"
                        ),
                    ),
                    kind,
                ));
            }
            (None, Some(file)) => {
                let Some(role_arn) = role_arn else {
                    return Err(stop(
                        attempts,
                        failed(
                            kind,
                            "AWS_WEB_IDENTITY_TOKEN_FILE is set but AWS_ROLE_ARN is not (the role to assume)",
                        ),
                        kind,
                    ));
                };
                Some((
                    TokenSource::File(PathBuf::from(file)),
                    role_arn.to_owned(),
                    format!("AWS_WEB_IDENTITY_TOKEN_FILE {file}, role {role_arn}"),
                ))
            }
            (None, None) => None,
        };
        match configured {
            Some((token, role_arn, detail)) => {
                let wi = WebIdentity {
                    kind,
                    token,
                    role_arn,
                    session_name: session_name(),
                    endpoint: sts_endpoint(ctx, region),
                };
                let fetch = Refetch::WebIdentity(Box::new(wi));
                let creds = refetch(ctx, opts, &fetch)
                    .await
                    .map_err(|e| stop(attempts, e, kind))?;
                record(attempts, kind, AwsOutcome::Answered);
                return Ok(Found {
                    source: AwsSource { kind, detail },
                    creds,
                    fetch,
                    profile_region,
                });
            }
            None => record(
                attempts,
                kind,
                AwsOutcome::NotConfigured(
                    "AWS_WEB_IDENTITY_TOKEN_FILE (or KEYWAY_AWS_WEB_IDENTITY) is not set".into(),
                ),
            ),
        }
    }

    // 4. ECS container endpoint.
    'ecs: {
        let kind = AwsSourceKind::EcsContainer;
        if !opts.consults(kind) {
            break 'ecs;
        }
        if let Some(url) = ecs_url(ctx).map_err(|e| stop(attempts, failed(kind, e), kind))? {
            let fetch = Refetch::Ecs { url: url.clone() };
            let creds = refetch(ctx, opts, &fetch)
                .await
                .map_err(|e| stop(attempts, e, kind))?;
            record(attempts, kind, AwsOutcome::Answered);
            return Ok(Found {
                source: AwsSource {
                    kind,
                    detail: redact_url(&url),
                },
                creds,
                fetch,
                profile_region,
            });
        }
        record(
            attempts,
            kind,
            AwsOutcome::NotConfigured(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI are not set".into(),
            ),
        );
    }

    // 5. IMDSv2.
    let kind = AwsSourceKind::Imds;
    let not_configured = |attempts: &mut Vec<AwsAttempt>, why: String| {
        record(attempts, kind, AwsOutcome::NotConfigured(why));
        AwsAuthError::NotConfigured {
            attempts: attempts.clone(),
        }
    };
    if !opts.consults(kind) {
        return Err(AwsAuthError::NotConfigured {
            attempts: attempts.clone(),
        });
    }
    if env
        .non_empty("AWS_EC2_METADATA_DISABLED")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Err(not_configured(
            attempts,
            "AWS_EC2_METADATA_DISABLED=true".into(),
        ));
    }
    let endpoint = match (
        &opts.imds,
        env.non_empty("AWS_EC2_METADATA_SERVICE_ENDPOINT"),
    ) {
        (ImdsEndpoint::At(e), _) => e.trim_end_matches('/').to_owned(),
        (ImdsEndpoint::Unavailable(why), _) => return Err(not_configured(attempts, why.clone())),
        (ImdsEndpoint::FromEnvironment, Some(e)) => e.trim_end_matches('/').to_owned(),
        (ImdsEndpoint::FromEnvironment, None) if opts.probe_default_imds => IMDS_DEFAULT.to_owned(),
        (ImdsEndpoint::FromEnvironment, None) => {
            return Err(not_configured(
                attempts,
                "not probed (no AWS_EC2_METADATA_SERVICE_ENDPOINT, and this does not look like EC2)"
                    .into(),
            ));
        }
    };
    let fetch = Refetch::Imds {
        endpoint: endpoint.clone(),
    };
    match refetch(ctx, opts, &fetch).await {
        Ok(creds) => {
            record(attempts, kind, AwsOutcome::Answered);
            Ok(Found {
                source: AwsSource {
                    kind,
                    detail: redact_url(&endpoint),
                },
                creds,
                fetch,
                profile_region,
            })
        }
        // At the default address, no answer means "not on EC2".
        Err(e) if endpoint == IMDS_DEFAULT => {
            record(
                attempts,
                kind,
                AwsOutcome::NotConfigured(format!("no instance metadata service ({e})")),
            );
            Err(AwsAuthError::NotConfigured {
                attempts: attempts.clone(),
            })
        }
        Err(e) => Err(stop(attempts, e, kind)),
    }
}

/// The credentials and config files.
fn files(ctx: &AuthContext) -> (PathBuf, PathBuf) {
    let home = PathBuf::from(ctx.env.non_empty("HOME").unwrap_or("/"));
    let creds = ctx
        .env
        .non_empty("AWS_SHARED_CREDENTIALS_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let config = ctx
        .env
        .non_empty("AWS_CONFIG_FILE")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/config"));
    (creds, config)
}

/// The profile's keys from both files (the credentials file wins). Empty: no such profile.
fn read_profile(ctx: &AuthContext, name: &str) -> Result<BTreeMap<String, String>, String> {
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
            Ok(b) => {
                String::from_utf8(b).map_err(|_| format!("{} is not UTF-8", path.display()))?
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(format!("reading {}: {e}", path.display())),
        };
        let mut ini = parse_ini(&text);
        if let Some(s) = ini.remove(&section) {
            out.extend(s);
        }
    }
    Ok(out)
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

/// The container credentials URL, if one is configured and allowed.
pub(super) fn ecs_url(ctx: &AuthContext) -> Result<Option<String>, String> {
    if let Some(rel) = ctx.env.non_empty("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI") {
        if !rel.starts_with('/') {
            return Err("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must start with '/'".into());
        }
        return Ok(Some(format!("{ECS_HOST}{rel}")));
    }
    let Some(full) = ctx.env.non_empty("AWS_CONTAINER_CREDENTIALS_FULL_URI") else {
        return Ok(None);
    };
    let u = url::Url::parse(full)
        .map_err(|e| format!("AWS_CONTAINER_CREDENTIALS_FULL_URI is not a URL ({e})"))?;
    let allowed = match (u.scheme(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Ipv4(ip))) => {
            ip.is_loopback()
                || ip == std::net::Ipv4Addr::new(169, 254, 170, 2)
                || ip == std::net::Ipv4Addr::new(169, 254, 170, 23)
        }
        ("http", Some(url::Host::Ipv6(ip))) => IpAddr::V6(ip).is_loopback(),
        ("http", Some(url::Host::Domain(d))) => d == "localhost",
        _ => false,
    };
    if !allowed {
        return Err(format!(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI {} is refused: plain http is allowed only to loopback or the ECS/EKS link-local agents, as in the AWS SDKs",
            redact_url(full)
        ));
    }
    Ok(Some(full.to_owned()))
}

fn ecs_token(ctx: &AuthContext) -> Result<Option<Secret<String>>, String> {
    if let Some(path) = ctx.env.non_empty("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE") {
        let mut b = ctx
            .fs
            .read(std::path::Path::new(path))
            .map_err(|e| format!("reading AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE {path}: {e}"))?;
        let t = String::from_utf8_lossy(&b).trim().to_owned();
        b.zeroize();
        return Ok(Some(Secret::new(t)));
    }
    Ok(ctx
        .env
        .non_empty("AWS_CONTAINER_AUTHORIZATION_TOKEN")
        .map(|t| Secret::new(t.to_owned())))
}

/// A header value marked sensitive (kept out of HTTP-level debug output).
fn sensitive(v: &str) -> Option<reqwest::header::HeaderValue> {
    let mut h = reqwest::header::HeaderValue::from_str(v).ok()?;
    h.set_sensitive(true);
    Some(h)
}

fn expiry(kind: AwsSourceKind, s: &str) -> Result<i64, AwsAuthError> {
    s.parse::<jiff::Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| failed(kind, format!("Expiration '{s}' is not an RFC 3339 time")))
}

/// `keyway-UNIXTIME`, when no session name is configured (the SDKs generate one too).
fn generated_session(ctx: &AuthContext) -> String {
    format!("keyway-{}", ctx.clock.now_secs())
}

/// STS's base URL as the SDKs find it: AWS_ENDPOINT_URL_STS, AWS_ENDPOINT_URL,
/// the regional endpoint, else the global one.
pub(super) fn sts_endpoint(ctx: &AuthContext, region: Option<&str>) -> String {
    if let Some(u) = ctx
        .env
        .non_empty(vars::AWS_ENDPOINT_URL_STS)
        .or(ctx.env.non_empty(vars::AWS_ENDPOINT_URL))
    {
        return u.trim_end_matches('/').to_owned();
    }
    match region {
        Some(r) => format!("https://sts.{r}.amazonaws.com"),
        None => "https://sts.amazonaws.com".to_owned(),
    }
}

/// An AWS error answer's code and message; a body that is neither AWS's XML
/// nor its JSON is summed up by its first line.
fn aws_error_of(reply: &http::Reply) -> AwsError {
    keyway_http::aws::error_of(reply.body.expose(), reply.header("x-amzn-errortype"))
        .unwrap_or_else(|| AwsError {
            code: String::new(),
            message: String::from_utf8_lossy(reply.body.expose())
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default()
                .chars()
                .take(200)
                .collect(),
        })
}

/// One AssumeRoleWithWebIdentity attempt that failed: retried when the
/// transport failed transiently, the status is transient, or the code is one
/// the SDKs retry (`IDPCommunicationError`, throttling).
enum StsFailure {
    Transport(keyway_http::HttpError),
    Refused { status: u16, error: AwsError },
}

impl keyway_http::Transient for StsFailure {
    fn is_transient(&self) -> bool {
        match self {
            StsFailure::Transport(e) => e.is_transient(),
            StsFailure::Refused { status, error } => {
                keyway_http::is_transient_status(*status) || error.is_transient()
            }
        }
    }
}

impl std::fmt::Display for StsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StsFailure::Transport(e) => e.fmt(f),
            StsFailure::Refused { status, error } => {
                write!(f, "answered {status} {}: {}", error.code, error.message)
            }
        }
    }
}

/// Identifying claims of a JWT (unverified, for explanations): never the token itself.
fn token_identity(token: &str) -> String {
    use base64::Engine;
    let claims: Option<serde_json::Value> = token
        .split('.')
        .nth(1)
        .and_then(|c| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(c)
                .ok()
        })
        .and_then(|b| serde_json::from_slice(&b).ok());
    let Some(c) = claims else {
        return String::new();
    };
    let mut parts = Vec::new();
    for k in ["iss", "sub", "azp", "aud", "email"] {
        match c.get(k) {
            Some(serde_json::Value::String(v)) => parts.push(format!("{k}={v}")),
            Some(v @ serde_json::Value::Array(_)) => parts.push(format!("{k}={v}")),
            _ => {}
        }
    }
    parts.join(", ")
}

/// Reads the token and calls STS AssumeRoleWithWebIdentity (unsigned).
async fn assume_role_with_web_identity(
    ctx: &AuthContext,
    wi: &WebIdentity,
) -> Result<AwsCredentials, AwsAuthError> {
    let kind = wi.kind;
    let token: Secret<String> = match &wi.token {
        TokenSource::File(path) => {
            let mut b = ctx.fs.read(path).map_err(|e| {
                failed(
                    kind,
                    format!(
                        "reading the web identity token file {}: {e}",
                        path.display()
                    ),
                )
            })?;
            let t = Secret::new(String::from_utf8_lossy(&b).trim().to_owned());
            b.zeroize();
            if t.expose().is_empty() {
                return Err(failed(
                    kind,
                    format!("the web identity token file {} is empty", path.display()),
                ));
            }
            t
        }
        // Boxed: Google credentials may themselves be federated from AWS
        // (external_account aws1), which makes this future recursive in type.
        TokenSource::Google {
            credentials,
            audience,
        } => Box::pin(credentials.id_token(audience))
            .await
            .map_err(|e| AwsAuthError::Failed {
                kind,
                reason: format!(
                    "getting a Google ID token (audience {audience}) from {}: {e}",
                    credentials.source()
                ),
                transient: e.is_transient(),
            })?,
    };
    let url = format!("{}/", wi.endpoint);
    let body = Secret::new(
        form_urlencoded_pairs(&[
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", &wi.role_arn),
            ("RoleSessionName", &wi.session_name),
            ("WebIdentityToken", token.expose()),
        ])
        .into_bytes(),
    );
    let doing = "calling STS AssumeRoleWithWebIdentity";
    let call = Call {
        doing,
        url: &url,
        cap: http::TOKEN,
    };
    let reply = keyway_http::with_retries(&ctx.retry, doing, &url, |_, timeout| {
        let req = ctx
            .http
            .post(url.as_str())
            .header(
                "Content-Type",
                "application/x-www-form-urlencoded; charset=utf-8",
            )
            .header("Accept", "text/xml")
            .body(body.expose().clone());
        async move {
            let reply = keyway_http::exchange(req, timeout, &call)
                .await
                .map_err(StsFailure::Transport)?;
            if (200..300).contains(&reply.status) {
                return Ok(reply);
            }
            let error = aws_error_of(&reply);
            Err(StsFailure::Refused {
                status: reply.status,
                error,
            })
        }
    })
    .await;
    let reply = match reply {
        Ok(r) => r,
        Err(StsFailure::Transport(e)) => {
            return Err(AwsAuthError::Failed {
                kind,
                reason: e.to_string(),
                transient: e.is_transient(),
            });
        }
        Err(StsFailure::Refused { status, error }) => {
            let AwsError { code, message } = error;
            let mut reason = format!(
                "STS AssumeRoleWithWebIdentity for {} at {} answered {status} {code}: {message}",
                wi.role_arn,
                redact_url(&url)
            );
            let who = token_identity(token.expose());
            match code.as_str() {
                "AccessDenied" => reason.push_str(&format!(
                    "; the role's trust policy does not allow this token ({who})"
                )),
                "InvalidIdentityToken" | "ExpiredTokenException" if !who.is_empty() => {
                    reason.push_str(&format!(" (token: {who})"))
                }
                _ => {}
            }
            return Err(failed(kind, reason));
        }
    };
    // The answer holds the secret key: kept in a Secret (zeroised when dropped).
    let text = Secret::new(String::from_utf8_lossy(reply.body.expose()).into_owned());
    let field = |t: &str| {
        keyway_http::aws::xml_text(text.expose(), t).ok_or_else(|| {
            failed(
                kind,
                format!(
                    "{} sent an AssumeRoleWithWebIdentity response without {t}",
                    redact_url(&url)
                ),
            )
        })
    };
    Ok(AwsCredentials {
        access_key_id: field("AccessKeyId")?,
        secret_access_key: Secret::new(field("SecretAccessKey")?),
        session_token: Some(Secret::new(field("SessionToken")?)),
        expires_at: Some(expiry(kind, &field("Expiration")?)?),
    })
}

/// `k=v&…`, form-encoded.
fn form_urlencoded_pairs(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Fresh credentials from the ECS endpoint or IMDS (static ones never need it).
pub(super) async fn refetch(
    ctx: &AuthContext,
    opts: &AwsChainOptions,
    fetch: &Refetch,
) -> Result<AwsCredentials, AwsAuthError> {
    match fetch {
        Refetch::Static => Err(failed(
            AwsSourceKind::Environment,
            "static credentials cannot be refreshed",
        )),
        Refetch::WebIdentity(wi) => assume_role_with_web_identity(ctx, wi).await,
        Refetch::Ecs { url } => {
            let kind = AwsSourceKind::EcsContainer;
            let token = ecs_token(ctx).map_err(|e| failed(kind, e))?;
            let reply = send(
                &ctx.retry,
                Call {
                    doing: "getting aws container credentials",
                    url,
                    cap: http::TOKEN,
                },
                false,
                || {
                    let r = ctx
                        .http
                        .get(url.as_str())
                        .header("Accept", "application/json");
                    match token.as_ref().and_then(|t| sensitive(t.expose())) {
                        Some(v) => r.header("Authorization", v),
                        None => r,
                    }
                },
            )
            .await
            .map_err(|e| failed_request(kind, &e))?;
            let mut c: ContainerCredentials =
                serde_json::from_slice(reply.body.expose()).map_err(|_| {
                    failed(
                        kind,
                        format!("{} did not send a credentials document", redact_url(url)),
                    )
                })?;
            let creds = AwsCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: Secret::new(std::mem::take(&mut c.secret_access_key)),
                session_token: Some(Secret::new(std::mem::take(&mut c.token))),
                expires_at: Some(expiry(kind, &c.expiration)?),
            };
            Ok(creds)
        }
        Refetch::Imds { endpoint } => {
            let kind = AwsSourceKind::Imds;
            let mut policy = ctx.retry.clone();
            policy.attempt_timeout = opts.imds_timeout;
            if endpoint == IMDS_DEFAULT {
                // Probing: one quick try.
                policy.max_attempts = 1;
            }
            let token = imds_token(ctx, &policy, endpoint)
                .await
                .map_err(|e| failed(kind, e))?;
            let base = format!("{endpoint}/latest/meta-data/iam/security-credentials/");
            let role = imds_get(ctx, &policy, &base, http::METADATA_VALUE, &token)
                .await
                .map_err(|e| failed(kind, e))?;
            let role = role.expose().lines().next().unwrap_or("").trim().to_owned();
            if role.is_empty() {
                return Err(failed(
                    kind,
                    "the instance has no instance profile (no IAM role)",
                ));
            }
            let doc = imds_get(ctx, &policy, &format!("{base}{role}"), http::TOKEN, &token)
                .await
                .map_err(|e| failed(kind, e))?;
            let mut c: ImdsCredentials = serde_json::from_str(doc.expose())
                .map_err(|_| failed(kind, "IMDS did not send a credentials document"))?;
            if c.code != "Success" {
                return Err(failed(kind, format!("IMDS answered Code={}", c.code)));
            }
            Ok(AwsCredentials {
                access_key_id: c.access_key_id.clone(),
                secret_access_key: Secret::new(std::mem::take(&mut c.secret_access_key)),
                session_token: Some(Secret::new(std::mem::take(&mut c.token))),
                expires_at: Some(expiry(kind, &c.expiration)?),
            })
        }
    }
}

async fn imds_token(
    ctx: &AuthContext,
    policy: &crate::RetryPolicy,
    endpoint: &str,
) -> Result<Secret<String>, String> {
    let url = format!("{endpoint}/latest/api/token");
    let reply = send(
        policy,
        Call {
            doing: "getting an IMDSv2 session token",
            url: &url,
            cap: http::METADATA_VALUE,
        },
        false,
        || {
            ctx.http
                .put(url.as_str())
                .header("X-aws-ec2-metadata-token-ttl-seconds", "21600")
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Secret::new(
        String::from_utf8_lossy(reply.body.expose())
            .trim()
            .to_owned(),
    ))
}

/// `GET url` from IMDS with the session token; `cap`: the largest answer read.
async fn imds_get(
    ctx: &AuthContext,
    policy: &crate::RetryPolicy,
    url: &str,
    cap: http::Cap,
    token: &Secret<String>,
) -> Result<Secret<String>, String> {
    let value =
        sensitive(token.expose()).ok_or("the IMDS session token is not a valid header value")?;
    let call = Call {
        doing: "reading instance metadata",
        url,
        cap,
    };
    let reply = send(policy, call, false, || {
        ctx.http
            .get(url)
            .header("X-aws-ec2-metadata-token", value.clone())
    })
    .await
    .map_err(|e| e.to_string())?;
    Ok(Secret::new(
        String::from_utf8_lossy(reply.body.expose()).into_owned(),
    ))
}

/// AWS_REGION, AWS_DEFAULT_REGION, the profile's region, then IMDS placement
/// (asked only when IMDS is where the credentials came from).
pub(super) async fn region(
    ctx: &AuthContext,
    opts: &AwsChainOptions,
    profile: Option<(String, &'static str)>,
    fetch: &Refetch,
) -> Option<(String, &'static str)> {
    for var in ["AWS_REGION", "AWS_DEFAULT_REGION"] {
        if let Some(r) = ctx.env.non_empty(var) {
            return Some((
                r.to_owned(),
                if var == "AWS_REGION" {
                    "AWS_REGION"
                } else {
                    "AWS_DEFAULT_REGION"
                },
            ));
        }
    }
    if profile.is_some() {
        return profile;
    }
    if let Refetch::Imds { endpoint } = fetch {
        let mut policy = ctx.retry.clone();
        policy.attempt_timeout = opts.imds_timeout;
        let token = imds_token(ctx, &policy, endpoint).await.ok()?;
        let r = imds_get(
            ctx,
            &policy,
            &format!("{endpoint}/latest/meta-data/placement/region"),
            http::METADATA_VALUE,
            &token,
        )
        .await
        .ok()?;
        return Some((r.expose().trim().to_owned(), "IMDS placement/region"));
    }
    None
}
