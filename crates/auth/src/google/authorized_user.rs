//! User credentials (`authorized_user`, what `gcloud auth application-default
//! login` writes): trade the long-lived refresh token for an access token at the
//! file's token endpoint. This is the "it just worked on my laptop / in Colab" case.

use super::Minted;
use super::file::AuthorizedUserConfig;
use crate::context::AuthContext;
use crate::error::{AuthError, GoogleCall};
use crate::http;
use keyway_core::Secret;

pub(crate) struct AuthorizedUser {
    client_id: String,
    client_secret: Secret<String>,
    refresh_token: Secret<String>,
    token_uri: String,
    account: Option<String>,
    quota_project_id: Option<String>,
}

impl AuthorizedUser {
    /// Takes the configuration; its cached token (if any) is for the caller to seed the cache.
    pub(crate) fn new(cfg: AuthorizedUserConfig) -> Self {
        let AuthorizedUserConfig {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
            account,
            quota_project_id,
            cached: _,
        } = cfg;
        AuthorizedUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
            account,
            quota_project_id,
        }
    }

    pub(crate) fn account(&self) -> Option<&str> {
        self.account.as_deref()
    }

    pub(crate) fn quota_project_id(&self) -> Option<&str> {
        self.quota_project_id.as_deref()
    }

    /// `POST token_uri` with `grant_type=refresh_token`.
    pub(crate) async fn fetch_token(&self, ctx: &AuthContext) -> Result<Minted, AuthError> {
        let url = self.token_uri.as_str();
        let now = ctx.clock.now_secs();
        let reply = http::send(
            &ctx.retry,
            GoogleCall::RefreshUser,
            url,
            http::TOKEN,
            false,
            || {
                ctx.http.post(url).form(&[
                    ("grant_type", "refresh_token"),
                    ("client_id", self.client_id.as_str()),
                    ("client_secret", self.client_secret.expose().as_str()),
                    ("refresh_token", self.refresh_token.expose().as_str()),
                ])
            },
        )
        .await?;
        super::token_from_reply(&reply, GoogleCall::RefreshUser.doing(), url, now, None)
    }
}
