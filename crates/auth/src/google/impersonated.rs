//! `impersonated_service_account` credentials (what `gcloud auth
//! application-default login --impersonate-service-account` writes): source
//! credentials of any supported type (user, service account key, external
//! account) whose token calls IAM Credentials `generateAccessToken` on the
//! target service account, through a chain of `delegates` when given.

use super::doc::{Doc, FileError, invalid, missing};
use super::service::Service;
use super::source::Source;
use super::sts;
use super::token::Minted;
use crate::context::AuthContext;
use crate::error::AuthError;
use keyway_core::{Env, Secret};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
/// Lifetime asked of generateAccessToken (as google-auth does).
const LIFETIME_SECS: u32 = 3600;

pub(crate) struct ImpersonatedConfig {
    pub url: String,
    pub email: String,
    pub delegates: Vec<String>,
    pub scopes: Vec<String>,
    pub quota_project_id: Option<String>,
}

/// The file's own fields, and its `source_credentials` document for the
/// caller to read as a credentials file of its own.
pub(crate) fn parse(doc: &mut Doc, env: &Env) -> Result<(ImpersonatedConfig, Doc), FileError> {
    let url = doc.required("service_account_impersonation_url")?;
    sts::check_url(Service::IamCredentials, &url, env)
        .map_err(|p| sts::url_error("service_account_impersonation_url", p))?;
    let email = sts::target_email(&url).ok_or_else(|| {
        invalid(
            "service_account_impersonation_url",
            "service_account_impersonation_url does not name a service account (…/serviceAccounts/EMAIL:generateAccessToken)",
        )
    })?;
    let delegates = doc.string_list("delegates")?;
    let scopes = doc.string_list("scopes")?;
    let quota_project_id = doc.string("quota_project_id")?;
    let source = doc
        .take_doc("source_credentials")?
        .ok_or_else(|| missing("source_credentials"))?;
    let cfg = ImpersonatedConfig {
        url,
        email,
        delegates,
        scopes,
        quota_project_id,
    };
    Ok((cfg, source))
}

/// The target of the impersonation. The source credentials are the caller's:
/// it hands their token to each call.
pub(crate) struct Impersonated(ImpersonatedConfig);

impl Impersonated {
    pub(crate) fn new(cfg: ImpersonatedConfig) -> Self {
        Impersonated(cfg)
    }

    pub(crate) fn email(&self) -> &str {
        &self.0.email
    }

    /// The file's own `quota_project_id` (the caller falls back on the source's).
    pub(crate) fn quota_project_id(&self) -> Option<&str> {
        self.0.quota_project_id.as_deref()
    }

    /// "authorized_user source credentials → impersonating sa@… (delegates …)",
    /// where `src` is where the source credentials came from.
    pub(crate) fn chain(&self, src: &Source) -> String {
        let kind = src
            .credential_kind()
            .map(|k| k.to_string())
            .unwrap_or_else(|| "source".into());
        let via = match src.chain() {
            Some(c) => format!("{kind} source credentials ({c})"),
            None => format!("{kind} source credentials"),
        };
        let delegates = if self.0.delegates.is_empty() {
            String::new()
        } else {
            format!(" via delegates {}", self.0.delegates.join(", "))
        };
        format!("{via} → impersonating {}{delegates}", self.0.email)
    }

    fn delegates(&self) -> Option<&[String]> {
        (!self.0.delegates.is_empty()).then_some(self.0.delegates.as_slice())
    }

    /// An access token of the target, asked for with `source`, a
    /// cloud-platform token of the source credentials.
    pub(crate) async fn fetch_token(
        &self,
        ctx: &AuthContext,
        source: &Secret<String>,
        requested: &[String],
    ) -> Result<Minted, AuthError> {
        let scopes: Vec<String> = if !requested.is_empty() {
            requested.to_vec()
        } else if !self.0.scopes.is_empty() {
            self.0.scopes.clone()
        } else {
            vec![CLOUD_PLATFORM.to_owned()]
        };
        let token = sts::generate_access_token(
            ctx,
            &self.0.url,
            source,
            &scopes,
            self.delegates(),
            LIFETIME_SECS,
            self.quota_project_id(),
        )
        .await?;
        Ok(Minted { token, email: None })
    }

    /// An ID token of the target, asked for with a token of the source.
    pub(crate) async fn id_token(
        &self,
        ctx: &AuthContext,
        source: &Secret<String>,
        audience: &str,
    ) -> Result<Secret<String>, AuthError> {
        sts::generate_id_token(ctx, &self.0.url, source, audience, self.delegates()).await
    }
}
