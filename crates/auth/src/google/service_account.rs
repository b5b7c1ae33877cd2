//! Service account keys (`service_account` files): sign an RS256 JWT with the
//! key and trade it at the token endpoint (RFC 7523 JWT bearer grant) for an
//! access token (`scope` claim) or an ID token (`target_audience` claim).
//!
//! The assertion's `aud` is always Google's token endpoint, whatever
//! `token_uri` says: that is what Google's own libraries send, and what a
//! server emulating Google checks.

use super::file::{GOOGLE_TOKEN_URI, ServiceAccountConfig};
use super::jwt;
use super::token::{Minted, token_from_reply};
use crate::context::AuthContext;
use crate::error::{AuthError, GoogleCall};
use crate::http;
use keyway_core::Secret;
use serde_json::{Value, json};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Lifetime of an assertion, as Google's libraries use.
const ASSERTION_LIFETIME_SECS: i64 = 3600;

pub(crate) struct ServiceAccount {
    cfg: ServiceAccountConfig,
}

#[derive(serde::Deserialize)]
struct IdTokenResponse {
    id_token: String,
}

impl ServiceAccount {
    pub(crate) fn new(cfg: ServiceAccountConfig) -> Self {
        ServiceAccount { cfg }
    }

    pub(crate) fn email(&self) -> &str {
        &self.cfg.client_email
    }

    pub(crate) fn project_id(&self) -> Option<&str> {
        self.cfg.project_id.as_deref()
    }

    /// A signed assertion with the standard claims plus `extra`.
    fn assertion(
        &self,
        now: i64,
        extra: Option<(&str, Value)>,
    ) -> Result<Secret<String>, AuthError> {
        let mut claims = json!({
            "iss": self.cfg.client_email,
            "aud": GOOGLE_TOKEN_URI,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_SECS,
        });
        if let (Value::Object(m), Some((name, value))) = (&mut claims, extra) {
            m.insert(name.to_owned(), value);
        }
        jwt::sign_rs256(&self.cfg.key, self.cfg.private_key_id.as_deref(), &claims).map_err(
            |reason| AuthError::Signing {
                email: self.cfg.client_email.clone(),
                reason,
            },
        )
    }

    async fn exchange(
        &self,
        ctx: &AuthContext,
        call: GoogleCall,
        assertion: &Secret<String>,
    ) -> Result<http::Reply, AuthError> {
        let url = self.cfg.token_uri.as_str();
        http::send(&ctx.retry, call, url, http::TOKEN, false, || {
            ctx.http.post(url).form(&[
                ("grant_type", JWT_BEARER),
                ("assertion", assertion.expose().as_str()),
            ])
        })
        .await
    }

    /// An access token for `scopes` (space-joined into the `scope` claim, left out
    /// when no scopes were asked for: the token endpoint then says what it requires).
    pub(crate) async fn fetch_token(
        &self,
        ctx: &AuthContext,
        scopes: &[String],
    ) -> Result<Minted, AuthError> {
        const CALL: GoogleCall = GoogleCall::ServiceAccountToken;
        let now = ctx.clock.now_secs();
        let scope = (!scopes.is_empty()).then(|| ("scope", Value::String(scopes.join(" "))));
        let assertion = self.assertion(now, scope)?;
        let reply = self.exchange(ctx, CALL, &assertion).await?;
        let mut minted =
            token_from_reply(&reply, CALL.doing(), &self.cfg.token_uri, now, Some(scopes))?;
        // The id_token's email is the account's own; no need to learn it.
        minted.email = None;
        Ok(minted)
    }

    /// A Google-signed ID token whose `aud` is `audience`.
    pub(crate) async fn id_token(
        &self,
        ctx: &AuthContext,
        audience: &str,
    ) -> Result<Secret<String>, AuthError> {
        const CALL: GoogleCall = GoogleCall::ServiceAccountIdToken;
        const DOING: &str = CALL.doing();
        let now = ctx.clock.now_secs();
        let assertion = self.assertion(
            now,
            Some(("target_audience", Value::String(audience.to_owned()))),
        )?;
        let reply = self.exchange(ctx, CALL, &assertion).await?;
        let IdTokenResponse { id_token } = http::parse_json(
            &reply,
            DOING,
            &self.cfg.token_uri,
            "a response with id_token",
        )?;
        let id_token = Secret::new(id_token);
        if id_token.expose().is_empty() {
            return Err(AuthError::InvalidResponse {
                doing: DOING,
                url: http::redact_url(&self.cfg.token_uri),
                reason: "the id_token is empty".into(),
            });
        }
        Ok(id_token)
    }
}
