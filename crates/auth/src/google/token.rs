//! What a Google token endpoint answers: an [`AccessToken`] (with the `email`
//! of an ID token sent along, [`Minted`]), read from a token response by
//! [`token_from_reply`].

use super::jwt;
use crate::cache::Expiring;
use crate::error::AuthError;
use crate::http::{self, Reply};
use keyway_core::Secret;
use keyway_wire::google::oauth2::TokenResponse;

/// An OAuth2 access token.
#[derive(Debug, Clone)]
pub struct AccessToken {
    pub token: Secret<String>,
    /// Unix seconds.
    pub expires_at: i64,
    /// The scopes the token carries, when the issuer says (or, for a service
    /// account key, the scopes it was minted for).
    pub scopes: Option<Vec<String>>,
}

impl Expiring for AccessToken {
    fn expires_at(&self) -> Option<i64> {
        Some(self.expires_at)
    }
}

/// A token endpoint's answer.
pub(crate) struct Minted {
    pub token: AccessToken,
    /// The `email` claim of an ID token sent along, if any.
    pub email: Option<String>,
}

/// Reads a token endpoint's (or metadata server's) token response.
/// `default_scopes` fills in when the response names none.
pub(crate) fn token_from_reply(
    reply: &Reply,
    doing: &'static str,
    url: &str,
    now: i64,
    default_scopes: Option<&[String]>,
) -> Result<Minted, AuthError> {
    let TokenResponse {
        access_token,
        expires_in,
        token_type: _,
        scope,
        id_token,
        refresh_token,
    } = http::parse_json(
        reply,
        doing,
        url,
        "a token response with access_token and expires_in",
    )?;
    let token = Secret::new(access_token);
    drop(refresh_token.map(Secret::new));
    let id_token = id_token.map(Secret::new);
    let invalid = |reason: &str| AuthError::InvalidResponse {
        doing,
        url: http::redact_url(url),
        reason: reason.into(),
    };
    if token.expose().is_empty() {
        return Err(invalid("the access_token is empty"));
    }
    if expires_in <= 0 {
        return Err(invalid(&format!(
            "expires_in is {expires_in}; a token must live a positive number of seconds"
        )));
    }
    let scopes = match scope {
        Some(s) => Some(s.split_whitespace().map(str::to_owned).collect()),
        None => default_scopes
            .filter(|s| !s.is_empty())
            .map(<[String]>::to_vec),
    };
    let email = id_token
        .as_ref()
        .and_then(jwt::claims_unverified)
        .and_then(|c| c.get("email").and_then(|e| e.as_str()).map(str::to_owned));
    Ok(Minted {
        token: AccessToken {
            token,
            expires_at: now.saturating_add(expires_in),
            scopes,
        },
        email,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_token_debug_is_redacted() {
        let t = AccessToken {
            token: Secret::new("ya29.sekrit".into()),
            expires_at: 1,
            scopes: None,
        };
        assert!(!format!("{t:?}").contains("sekrit"));
    }
}
