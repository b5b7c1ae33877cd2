//! `external_account` credentials (Workload Identity Federation, AIP-4117):
//! get a subject token from the credential source (a file, a URL, an
//! executable, or a signed AWS request), exchange it at Google STS for a
//! federated access token, then either use that token directly or trade it at
//! IAM Credentials for a service account's token (`service_account_impersonation_url`,
//! lifetime `service_account_impersonation.token_lifetime_seconds`, default 3600).
//!
//! The subject token is fetched anew for every exchange and never cached or
//! shown; the resulting token is cached by the credentials' [`Cache`](crate::cache).

use super::aws_source::{AwsConfig, AwsSubject};
use super::doc::{Doc, FileError, invalid, missing, wipe};
use super::executable::{self, ExecutableConfig};
use super::service::Service;
use super::sts;
use super::token::{AccessToken, Minted};
use crate::context::AuthContext;
use crate::error::{AuthError, GoogleCall, SubjectCause, SubjectFrom};
use crate::http;
use keyway_core::{Env, Secret};
use serde_json::Value;
use std::path::PathBuf;

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const DEFAULT_LIFETIME: u32 = 3600;

pub(crate) struct ExternalAccountConfig {
    pub audience: String,
    pub subject_token_type: String,
    pub token_url: String,
    pub impersonation_url: Option<String>,
    pub lifetime_secs: u32,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret<String>>,
    pub workforce_pool_user_project: Option<String>,
    pub quota_project_id: Option<String>,
    pub source: SubjectSource,
}

/// Where the subject token comes from.
pub(crate) enum SubjectSource {
    File {
        path: PathBuf,
        format: Format,
    },
    Url {
        url: String,
        headers: Vec<(String, Secret<String>)>,
        format: Format,
    },
    Executable(ExecutableConfig),
    Aws(AwsConfig),
}

/// How a file's or URL's content holds the token.
pub(crate) enum Format {
    Text,
    Json { field: String },
}

fn is_workforce(audience: &str) -> bool {
    audience
        .strip_prefix("//iam.googleapis.com/locations/")
        .is_some_and(|rest| rest.split('/').nth(1) == Some("workforcePools"))
}

fn http_url(field: &'static str, u: &str) -> Result<(), FileError> {
    match url::Url::parse(u) {
        Ok(p) if matches!(p.scheme(), "http" | "https") && p.has_host() => Ok(()),
        _ => Err(invalid(
            field,
            format!("{field} \"{}\" is not an http(s) URL", http::redact_url(u)),
        )),
    }
}

/// Reads an `external_account` document (after `type`).
pub(crate) fn parse(doc: &mut Doc, env: &Env) -> Result<ExternalAccountConfig, FileError> {
    let audience = doc.required("audience")?;
    let subject_token_type = doc.required("subject_token_type")?;
    let token_url = doc
        .string("token_url")?
        .unwrap_or_else(|| sts::DEFAULT_TOKEN_URL.to_owned());
    sts::check_url(Service::Sts, &token_url, env).map_err(|p| sts::url_error("token_url", p))?;
    let impersonation_url = doc.string("service_account_impersonation_url")?;
    if let Some(u) = &impersonation_url {
        sts::check_url(Service::IamCredentials, u, env)
            .map_err(|p| sts::url_error("service_account_impersonation_url", p))?;
    }
    let lifetime_secs = match doc.take_doc("service_account_impersonation")? {
        Some(mut opts) => match opts.integer("token_lifetime_seconds")? {
            None => DEFAULT_LIFETIME,
            Some(n) if (600..=43200).contains(&n) => n as u32,
            Some(n) => {
                return Err(invalid(
                    "token_lifetime_seconds",
                    format!(
                        "service_account_impersonation.token_lifetime_seconds is {n}; it must be between 600 and 43200"
                    ),
                ));
            }
        },
        None => DEFAULT_LIFETIME,
    };
    let client_id = doc.string("client_id")?;
    let client_secret = doc.secret("client_secret")?;
    if client_secret.is_some() && client_id.is_none() {
        return Err(invalid(
            "client_id",
            "client_secret is set but client_id is not",
        ));
    }
    let workforce_pool_user_project = doc.string("workforce_pool_user_project")?;
    if workforce_pool_user_project.is_some() && !is_workforce(&audience) {
        return Err(invalid(
            "workforce_pool_user_project",
            "workforce_pool_user_project is only valid with a workforce pool audience (//iam.googleapis.com/locations/…/workforcePools/…)",
        ));
    }
    let quota_project_id = doc.string("quota_project_id")?;
    let mut src = doc
        .take_doc("credential_source")?
        .ok_or_else(|| missing("credential_source"))?;
    let source = parse_source(&mut src)?;
    Ok(ExternalAccountConfig {
        audience,
        subject_token_type,
        token_url,
        impersonation_url,
        lifetime_secs,
        client_id,
        client_secret,
        workforce_pool_user_project,
        quota_project_id,
        source,
    })
}

fn parse_format(src: &mut Doc) -> Result<Format, FileError> {
    let Some(mut f) = src.take_doc("format")? else {
        return Ok(Format::Text);
    };
    match f.string("type")?.as_deref() {
        None | Some("text") => Ok(Format::Text),
        Some("json") => match f.string("subject_token_field_name")? {
            Some(field) => Ok(Format::Json { field }),
            None => Err(invalid(
                "subject_token_field_name",
                "credential_source.format.subject_token_field_name is required when the format type is json",
            )),
        },
        Some(other) => Err(invalid(
            "type",
            format!("credential_source.format.type {other:?} is not text or json"),
        )),
    }
}

fn parse_source(src: &mut Doc) -> Result<SubjectSource, FileError> {
    if let Some(env_id) = src.string("environment_id")? {
        let Some(version) = env_id.strip_prefix("aws") else {
            return Err(invalid(
                "environment_id",
                format!(
                    "credential_source.environment_id {env_id:?} is not supported (expected aws1)"
                ),
            ));
        };
        if version != "1" {
            return Err(invalid(
                "environment_id",
                format!(
                    "aws version {version} is not supported in the current build (expected aws1)"
                ),
            ));
        }
        let verification_url = src.required("regional_cred_verification_url")?;
        let region_url = src.string("region_url")?;
        let url = src.string("url")?;
        let imdsv2_url = src.string("imdsv2_session_token_url")?;
        for (field, u) in [
            ("region_url", &region_url),
            ("url", &url),
            ("imdsv2_session_token_url", &imdsv2_url),
        ] {
            if let Some(u) = u {
                http_url(field, u)?;
            }
        }
        return Ok(SubjectSource::Aws(AwsConfig {
            region_url,
            url,
            verification_url,
        }));
    }
    if let Some(mut exe) = src.take_doc("executable")? {
        let command = exe.required("command")?;
        let timeout = executable::timeout_from_millis(exe.integer("timeout_millis")?)
            .map_err(|r| invalid("timeout_millis", r))?;
        let output_file = exe.string("output_file")?.map(PathBuf::from);
        return Ok(SubjectSource::Executable(ExecutableConfig {
            command,
            timeout,
            output_file,
        }));
    }
    if src.has("certificate") {
        return Err(FileError::Unsupported {
            kind: "external_account".into(),
            detail: "X.509 certificate (mTLS) subject tokens".into(),
        });
    }
    let file = src.string("file")?;
    let url = src.string("url")?;
    match (file, url) {
        (Some(_), Some(_)) => Err(invalid(
            "credential_source",
            "credential_source names both a file and a url; it must name one",
        )),
        (Some(path), None) => Ok(SubjectSource::File {
            path: PathBuf::from(path),
            format: parse_format(src)?,
        }),
        (None, Some(url)) => {
            http_url("url", &url)?;
            let headers = src.string_map("headers")?;
            Ok(SubjectSource::Url {
                url,
                headers,
                format: parse_format(src)?,
            })
        }
        (None, None) => Err(invalid(
            "credential_source",
            "credential_source has none of file, url, executable or environment_id",
        )),
    }
}

/// The subject token inside a file's or URL's content.
fn extract(content: Secret<Vec<u8>>, format: &Format) -> Result<Secret<String>, String> {
    match format {
        Format::Text => {
            let text = std::str::from_utf8(content.expose())
                .map_err(|_| "the content is not UTF-8 text".to_owned())?;
            let token = text.trim();
            if token.is_empty() {
                return Err("the content is empty".into());
            }
            Ok(Secret::new(token.to_owned()))
        }
        Format::Json { field } => {
            let mut v: Value = serde_json::from_slice(content.expose()).map_err(|e| {
                format!(
                    "the content is not JSON (line {} column {})",
                    e.line(),
                    e.column()
                )
            })?;
            let token = match v.as_object_mut().and_then(|o| o.remove(field)) {
                Some(Value::String(s)) if !s.is_empty() => Ok(Secret::new(s)),
                Some(mut other) => {
                    wipe(&mut other);
                    Err(format!(
                        "the JSON field \"{field}\" is empty or not a string"
                    ))
                }
                None => Err(format!(
                    "the JSON has no field \"{field}\" (subject_token_field_name)"
                )),
            };
            wipe(&mut v);
            token
        }
    }
}

/// A ready `external_account` credential.
pub(crate) struct External {
    cfg: ExternalAccountConfig,
    aws: Option<AwsSubject>,
    email: Option<String>,
}

impl External {
    /// Takes the configuration; an aws1 source runs its AWS chain now, so the
    /// provenance can say which AWS source answered.
    pub(crate) async fn new(
        ctx: &AuthContext,
        cfg: ExternalAccountConfig,
    ) -> Result<Self, AuthError> {
        let aws = match &cfg.source {
            SubjectSource::Aws(a) => Some(AwsSubject::resolve(ctx, a).await?),
            _ => None,
        };
        let email = cfg.impersonation_url.as_deref().and_then(sts::target_email);
        Ok(External { cfg, aws, email })
    }

    /// The impersonated service account, if any.
    pub(crate) fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    pub(crate) fn quota_project_id(&self) -> Option<&str> {
        self.cfg.quota_project_id.as_deref()
    }

    /// The STS audience: the pool provider's full resource name.
    pub(crate) fn audience(&self) -> &str {
        &self.cfg.audience
    }

    /// "aws1 via … → STS https://sts.googleapis.com/v1/token → impersonating sa@p.iam…"
    pub(crate) fn chain(&self) -> String {
        let source = match (&self.cfg.source, &self.aws) {
            (_, Some(a)) => a.describe(),
            (SubjectSource::File { path, .. }, _) => format!("file {}", path.display()),
            (SubjectSource::Url { url, .. }, _) => format!("url {}", http::redact_url(url)),
            (SubjectSource::Executable(e), _) => format!("executable `{}`", e.command),
            (SubjectSource::Aws(_), None) => "aws1".into(),
        };
        let to = match &self.email {
            Some(e) => format!("impersonating {e}"),
            None if self.cfg.impersonation_url.is_some() => {
                "impersonating a service account".into()
            }
            None => "federated token used directly".into(),
        };
        format!(
            "{source} → STS {} → {to}",
            http::redact_url(&self.cfg.token_url)
        )
    }

    async fn subject_token(&self, ctx: &AuthContext) -> Result<Secret<String>, AuthError> {
        let cfg = &self.cfg;
        match &cfg.source {
            SubjectSource::File { path, format } => {
                let from = || SubjectFrom::File(path.clone());
                let content = ctx.fs.read(path).map_err(|e| AuthError::SubjectToken {
                    from: from(),
                    cause: SubjectCause::Unreadable(e.to_string()),
                })?;
                extract(Secret::new(content), format).map_err(|reason| AuthError::SubjectToken {
                    from: from(),
                    cause: SubjectCause::BadContent(reason),
                })
            }
            SubjectSource::Url {
                url,
                headers,
                format,
            } => {
                let reply = http::send(
                    &ctx.retry,
                    GoogleCall::SubjectTokenUrl,
                    url,
                    http::METADATA_VALUE,
                    false,
                    || {
                        let mut r = ctx.http.get(url.as_str());
                        for (k, v) in headers {
                            if let Ok(mut value) =
                                reqwest::header::HeaderValue::from_str(v.expose())
                            {
                                value.set_sensitive(true);
                                r = r.header(k.as_str(), value);
                            }
                        }
                        r
                    },
                )
                .await?;
                extract(reply.body, format).map_err(|reason| AuthError::SubjectToken {
                    from: SubjectFrom::Url(http::redact_url(url)),
                    cause: SubjectCause::BadContent(reason),
                })
            }
            SubjectSource::Executable(e) => {
                let req = executable::Request {
                    audience: &cfg.audience,
                    token_type: &cfg.subject_token_type,
                    impersonated_email: self.email.as_deref(),
                };
                executable::subject_token(ctx, e, &req).await
            }
            SubjectSource::Aws(_) => match &self.aws {
                Some(a) => a.subject_token(ctx, &cfg.audience).await,
                None => Err(AuthError::SubjectToken {
                    from: SubjectFrom::Aws1,
                    cause: SubjectCause::BadContent("AWS credentials were not resolved".into()),
                }),
            },
        }
    }

    /// The federated token from STS for `scopes`.
    async fn federated(&self, ctx: &AuthContext, scopes: &[String]) -> Result<Minted, AuthError> {
        let subject = self.subject_token(ctx).await?;
        let cfg = &self.cfg;
        let client = match (&cfg.client_id, &cfg.client_secret) {
            (Some(id), Some(secret)) => Some((id.as_str(), secret)),
            _ => None,
        };
        let x = sts::Exchange {
            token_url: &cfg.token_url,
            audience: &cfg.audience,
            scopes,
            subject_token: &subject,
            subject_token_type: &cfg.subject_token_type,
            client,
            user_project: cfg.workforce_pool_user_project.as_deref(),
        };
        sts::exchange(ctx, &x).await
    }

    pub(crate) async fn fetch_token(
        &self,
        ctx: &AuthContext,
        scopes: &[String],
    ) -> Result<Minted, AuthError> {
        let scopes: Vec<String> = if scopes.is_empty() {
            vec![CLOUD_PLATFORM.to_owned()]
        } else {
            scopes.to_vec()
        };
        let Some(url) = &self.cfg.impersonation_url else {
            return self.federated(ctx, &scopes).await;
        };
        let fed = self.federated(ctx, &[sts::IAM_SCOPE.to_owned()]).await?;
        let token: AccessToken = sts::generate_access_token(
            ctx,
            url,
            &fed.token.token,
            &scopes,
            None,
            self.cfg.lifetime_secs,
            self.cfg.quota_project_id.as_deref(),
        )
        .await?;
        Ok(Minted { token, email: None })
    }

    pub(crate) async fn id_token(
        &self,
        ctx: &AuthContext,
        audience: &str,
    ) -> Result<Secret<String>, AuthError> {
        let Some(url) = &self.cfg.impersonation_url else {
            return Err(AuthError::OperationUnsupported {
                doing: "getting an id token",
                kind: "external_account".into(),
                detail: "Google issues ID tokens only to service accounts; add service_account_impersonation_url to the credentials \
                         (gcloud iam workload-identity-pools create-cred-config --service-account=…)"
                    .into(),
            });
        };
        let fed = self.federated(ctx, &[sts::IAM_SCOPE.to_owned()]).await?;
        sts::generate_id_token(ctx, url, &fed.token.token, audience, None).await
    }
}

#[cfg(test)]
mod tests {
    use super::super::file::{CredentialsFile, parse as parse_file};
    use super::*;
    use keyway_core::vars;

    fn parse(json: &str, env: &Env) -> Result<ExternalAccountConfig, FileError> {
        match parse_file(&Secret::new(json.as_bytes().to_vec()), env) {
            Ok(CredentialsFile::ExternalAccount(c)) => Ok(c),
            Ok(_) => panic!("not external"),
            Err(e) => Err(e),
        }
    }

    fn field_of(r: Result<ExternalAccountConfig, FileError>) -> (Option<&'static str>, String) {
        match r {
            Err(FileError::Invalid { field, problem }) => (field, problem.to_string()),
            Err(e) => panic!("{e:?}"),
            Ok(_) => panic!("parsed"),
        }
    }

    const AUD: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/POOL_ID/providers/PROVIDER_ID";

    #[test]
    fn every_source_parses() {
        let env = Env::new();
        let base = |src: &str| {
            format!(
                r#"{{"type":"external_account","audience":"{AUD}","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","token_url":"https://sts.googleapis.com/v1/token","credential_source":{src}}}"#
            )
        };
        let c = parse(&base(r#"{"file":"/var/run/secrets/goog.id/token"}"#), &env).unwrap();
        assert!(matches!(
            c.source,
            SubjectSource::File {
                format: Format::Text,
                ..
            }
        ));
        assert_eq!(c.lifetime_secs, 3600);
        let c = parse(
            &base(r#"{"url":"http://fakeurl.com","headers":{"Metadata":"True"},"format":{"type":"json","subject_token_field_name":"access_token"}}"#),
            &env,
        )
        .unwrap();
        let SubjectSource::Url {
            headers,
            format: Format::Json { field },
            ..
        } = c.source
        else {
            panic!()
        };
        assert_eq!((headers.len(), field.as_str()), (1, "access_token"));
        let c = parse(&base(r#"{"executable":{"command":"/bin/tok --x","timeout_millis":5000,"output_file":"/tmp/o"}}"#), &env).unwrap();
        let SubjectSource::Executable(e) = c.source else {
            panic!()
        };
        assert_eq!(e.timeout.as_millis(), 5000);
        let c = parse(
            &base(r#"{"environment_id":"aws1","region_url":"http://169.254.169.254/latest/meta-data/placement/availability-zone","url":"http://169.254.169.254/latest/meta-data/iam/security-credentials","regional_cred_verification_url":"https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}"#),
            &env,
        )
        .unwrap();
        assert!(matches!(c.source, SubjectSource::Aws(_)));
    }

    #[test]
    fn bad_files_name_the_field() {
        let env = Env::new();
        let with = |extra: &str, src: &str| {
            format!(
                r#"{{"type":"external_account","audience":"{AUD}","subject_token_type":"urn:ietf:params:oauth:token-type:jwt"{extra},"credential_source":{src}}}"#
            )
        };
        let file = r#"{"file":"/t"}"#;
        let (f, r) = field_of(parse(
            &with(r#","token_url":"https://evil.example.com/v1/token""#, file),
            &env,
        ));
        assert_eq!(f, Some("token_url"));
        assert!(r.contains("is not a Google sts endpoint"), "{r}");
        let (f, _) = field_of(parse(
            &with(
                r#","service_account_impersonation_url":"https://sts.googleapis.com/v1/x""#,
                file,
            ),
            &env,
        ));
        assert_eq!(f, Some("service_account_impersonation_url"));
        let (f, r) = field_of(parse(
            &with(
                r#","service_account_impersonation":{"token_lifetime_seconds":599}"#,
                file,
            ),
            &env,
        ));
        assert_eq!(f, Some("token_lifetime_seconds"));
        assert!(r.contains("between 600 and 43200"), "{r}");
        // What else is wrong, and the field each file names.
        for (extra, source, field) in [
            (
                r#","workforce_pool_user_project":"p""#,
                file,
                "workforce_pool_user_project",
            ),
            (
                "",
                r#"{"executable":{"command":"x","timeout_millis":121000}}"#,
                "timeout_millis",
            ),
            (
                "",
                r#"{"environment_id":"aws2","regional_cred_verification_url":"x"}"#,
                "environment_id",
            ),
            (
                "",
                r#"{"url":"http://x","format":{"type":"json"}}"#,
                "subject_token_field_name",
            ),
            ("", "{}", "credential_source"),
        ] {
            let (f, _) = field_of(parse(&with(extra, source), &env));
            assert_eq!(f, Some(field), "{extra} {source}");
        }
        // The override opens exactly its origin.
        let env = Env::new().with(
            vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_STS,
            "http://127.0.0.1:9/",
        );
        assert!(
            parse(
                &with(r#","token_url":"http://127.0.0.1:9/v1/token""#, file),
                &env
            )
            .is_ok()
        );
    }

    #[test]
    fn text_and_json_content() {
        let s = |t: &str| Secret::new(t.as_bytes().to_vec());
        assert_eq!(extract(s("tok\n"), &Format::Text).unwrap().expose(), "tok");
        let j = Format::Json {
            field: "access_token".into(),
        };
        assert_eq!(
            extract(s(r#"{"access_token":"tok"}"#), &j)
                .unwrap()
                .expose(),
            "tok"
        );
        let e = extract(s(r#"{"other":"SECRET"}"#), &j).unwrap_err();
        assert!(
            e.contains("no field \"access_token\"") && !e.contains("SECRET"),
            "{e}"
        );
    }
}
