//! `impersonated_service_account` credentials (what `gcloud auth
//! application-default login --impersonate-service-account` writes): source
//! credentials of any supported type (user, service account key, external
//! account) whose token calls IAM Credentials `generateAccessToken` on the
//! target service account, through a chain of `delegates` when given.

use super::file::{CredentialsFile, Doc, FileError, invalid, parse_doc};
use super::sts::{self, Service};
use super::{GoogleCredentials, Minted};
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
    /// Taken out when the credentials are built.
    pub source: Option<Box<CredentialsFile>>,
}

pub(crate) fn parse(doc: &mut Doc, env: &Env) -> Result<ImpersonatedConfig, FileError> {
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
    let mut src = doc
        .take_doc("source_credentials")?
        .ok_or_else(|| super::file::missing("source_credentials"))?;
    let source = parse_doc(&mut src, env, true).map_err(|e| match e {
        FileError::Invalid { field, problem } => FileError::Invalid {
            field,
            problem: crate::error::ConfigProblem::InSourceCredentials(Box::new(problem)),
        },
        FileError::Unsupported { kind, detail } => FileError::Unsupported {
            kind,
            detail: format!("{detail} (as source_credentials)"),
        },
    })?;
    Ok(ImpersonatedConfig {
        url,
        email,
        delegates,
        scopes,
        quota_project_id,
        source: Some(Box::new(source)),
    })
}

pub(crate) struct Impersonated {
    url: String,
    email: String,
    delegates: Vec<String>,
    scopes: Vec<String>,
    quota_project_id: Option<String>,
    source: GoogleCredentials,
}

impl Impersonated {
    /// `source` are the ready source credentials built from the config's `source`.
    pub(crate) fn new(cfg: ImpersonatedConfig, source: GoogleCredentials) -> Self {
        Impersonated {
            url: cfg.url,
            email: cfg.email,
            delegates: cfg.delegates,
            scopes: cfg.scopes,
            quota_project_id: cfg.quota_project_id,
            source,
        }
    }

    pub(crate) fn email(&self) -> &str {
        &self.email
    }

    pub(crate) fn quota_project_id(&self) -> Option<&str> {
        self.quota_project_id
            .as_deref()
            .or_else(|| self.source.project_hint())
    }

    /// "authorized_user source credentials → impersonating sa@… (delegates …)".
    pub(crate) fn chain(&self) -> String {
        let src = self.source.source();
        let kind = src
            .credential_kind()
            .map(|k| k.to_string())
            .unwrap_or_else(|| "source".into());
        let via = match src.chain() {
            Some(c) => format!("{kind} source credentials ({c})"),
            None => format!("{kind} source credentials"),
        };
        let delegates = if self.delegates.is_empty() {
            String::new()
        } else {
            format!(" via delegates {}", self.delegates.join(", "))
        };
        format!("{via} → impersonating {}{delegates}", self.email)
    }

    fn delegates(&self) -> Option<&[String]> {
        (!self.delegates.is_empty()).then_some(self.delegates.as_slice())
    }

    pub(crate) async fn fetch_token(
        &self,
        ctx: &AuthContext,
        requested: &[String],
    ) -> Result<Minted, AuthError> {
        let scopes: Vec<String> = if !requested.is_empty() {
            requested.to_vec()
        } else if !self.scopes.is_empty() {
            self.scopes.clone()
        } else {
            vec![CLOUD_PLATFORM.to_owned()]
        };
        // Boxed: the source is itself a GoogleCredentials (one level deep).
        let source = Box::pin(self.source.access_token()).await?;
        let token = sts::generate_access_token(
            ctx,
            &self.url,
            &source.token,
            &scopes,
            self.delegates(),
            LIFETIME_SECS,
            self.quota_project_id.as_deref(),
        )
        .await?;
        Ok(Minted { token, email: None })
    }

    pub(crate) async fn id_token(
        &self,
        ctx: &AuthContext,
        audience: &str,
    ) -> Result<Secret<String>, AuthError> {
        let source = Box::pin(self.source.access_token()).await?;
        sts::generate_id_token(ctx, &self.url, &source.token, audience, self.delegates()).await
    }
}
