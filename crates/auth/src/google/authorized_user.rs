//! User credentials (`authorized_user`, what `gcloud auth application-default
//! login` writes): trade the long-lived refresh token for an access token at the
//! file's token endpoint. This is the "it just worked on my laptop / in Colab" case.

use super::file::AuthorizedUserConfig;
use super::token::{Minted, token_from_reply};
use crate::context::AuthContext;
use crate::error::{AuthError, GoogleCall};
use crate::http;

/// The file's configuration, without the cached token (the caller seeded the
/// credentials' cache with it).
pub(crate) struct AuthorizedUser(AuthorizedUserConfig);

impl AuthorizedUser {
    /// Takes the configuration; its cached token (if any) is for the caller to seed the cache.
    pub(crate) fn new(cfg: AuthorizedUserConfig) -> Self {
        AuthorizedUser(AuthorizedUserConfig {
            cached: None,
            ..cfg
        })
    }

    pub(crate) fn account(&self) -> Option<&str> {
        self.0.account.as_deref()
    }

    pub(crate) fn quota_project_id(&self) -> Option<&str> {
        self.0.quota_project_id.as_deref()
    }

    /// `POST token_uri` with `grant_type=refresh_token`.
    pub(crate) async fn fetch_token(&self, ctx: &AuthContext) -> Result<Minted, AuthError> {
        let cfg = &self.0;
        let url = cfg.token_uri.as_str();
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
                    ("client_id", cfg.client_id.as_str()),
                    ("client_secret", cfg.client_secret.expose().as_str()),
                    ("refresh_token", cfg.refresh_token.expose().as_str()),
                ])
            },
        )
        .await?;
        token_from_reply(&reply, GoogleCall::RefreshUser.doing(), url, now, None)
    }
}
