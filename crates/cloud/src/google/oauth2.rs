//! OAuth 2.0: the token endpoint (refresh_token grant for users, jwt-bearer grant
//! for service-account keys), token revocation (`/revoke`), tokeninfo, and the
//! ID-token signing keys (JWKS).
//! Errors use RFC 6749's body (`{"error": "invalid_grant", ...}`), not the
//! `google.rpc.Status` envelope, as Google's token endpoint does.

use super::{Reply, Req, ok_json};
use crate::cloud::{Cloud, USER_SCOPES};
use crate::{crypto, jwt};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_wire::google::oauth2::{JwkSet, OAuthError, TokenInfo, TokenResponse};

pub const GOOGLE_TOKEN_AUDIENCE: &str = "https://oauth2.googleapis.com/token";

/// An RFC 6749 error (`{"error", "error_description"}`), as Google's token endpoints answer.
pub(super) fn oauth_error(status: u16, error: &str, description: &str) -> Response {
    let body = OAuthError {
        error: error.into(),
        error_description: Some(description.into()),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        serde_json::to_vec(&body).unwrap_or_default(),
    )
        .into_response()
}

/// The members of a token request's body when it is JSON (`None` when it is
/// not): each member through `member`, which may drop it. A JSON body that
/// is not an object has no fields.
pub(super) fn json_fields(
    req: &Req,
    member: impl Fn(&str, &serde_json::Value) -> Option<(String, String)>,
) -> Option<Vec<(String, String)>> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !ct.starts_with("application/json") {
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&req.body).unwrap_or_default();
    Some(
        v.as_object()
            .map(|m| m.iter().filter_map(|(k, v)| member(k, v)).collect())
            .unwrap_or_default(),
    )
}

/// Form fields and query parameters (or a JSON object's string members) of a token request.
fn fields(req: &Req) -> Vec<(String, String)> {
    if let Some(f) = json_fields(req, |k, v| Some((k.to_owned(), v.as_str()?.to_owned()))) {
        return f;
    }
    let mut f: Vec<(String, String)> = form_urlencoded::parse(&req.body).into_owned().collect();
    f.extend(req.query.iter().cloned());
    f
}

fn field<'a>(f: &'a [(String, String)], k: &str) -> Option<&'a str> {
    f.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
}

pub fn token(cloud: &Cloud, req: &Req) -> Reply {
    if req.method != axum::http::Method::POST {
        return Ok(oauth_error(
            405,
            "invalid_request",
            "The token endpoint takes POST.",
        ));
    }
    let f = fields(req);
    Ok(match field(&f, "grant_type") {
        Some("refresh_token") => refresh_grant(cloud, &f),
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => jwt_bearer_grant(cloud, &f),
        Some(other) => oauth_error(
            400,
            "unsupported_grant_type",
            &format!("Invalid grant_type: {other}"),
        ),
        None => oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: grant_type",
        ),
    })
}

fn refresh_grant(cloud: &Cloud, f: &[(String, String)]) -> Response {
    let (Some(client_id), Some(refresh)) = (field(f, "client_id"), field(f, "refresh_token"))
    else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: refresh_token or client_id",
        );
    };
    if client_id != cloud.oauth_client_id() {
        return oauth_error(401, "invalid_client", "The OAuth client was not found.");
    }
    if !cloud.oauth_client_secret_matches(field(f, "client_secret").unwrap_or("")) {
        return oauth_error(401, "invalid_client", "Unauthorized");
    }
    let user = cloud
        .live_user_with_refresh_token(refresh)
        .filter(|u| u.client_id == client_id);
    let Some(user) = user else {
        return oauth_error(400, "invalid_grant", "Token has been expired or revoked.");
    };
    let granted: Vec<String> = USER_SCOPES.iter().map(|s| s.to_string()).collect();
    let scopes = match field(f, "scope") {
        Some(s) if !s.trim().is_empty() => {
            let asked: Vec<String> = s.split_whitespace().map(str::to_owned).collect();
            if let Some(extra) = asked.iter().find(|a| !granted.contains(a)) {
                return oauth_error(
                    400,
                    "invalid_scope",
                    &format!("The scope {extra} was not granted to this refresh token."),
                );
            }
            asked
        }
        _ => granted,
    };
    let (access, life) =
        cloud.mint_access_token(&format!("user:{}", user.email), &scopes, client_id);
    let id_token = if scopes.iter().any(|s| s == "openid") {
        let now = cloud.clock.now_secs();
        cloud
            .sign_id_token(serde_json::json!({
                "iss": crypto::ID_TOKEN_ISSUER, "azp": client_id, "aud": client_id, "sub": user_sub(&user.email),
                "email": user.email, "email_verified": true, "iat": now, "exp": now + life,
            }))
            .ok()
    } else {
        None
    };
    ok_json(
        &TokenResponse {
            access_token: access,
            expires_in: life,
            token_type: "Bearer".into(),
            scope: Some(scopes.join(" ")),
            id_token,
            refresh_token: None,
        },
        false,
    )
}

/// Google's revocation endpoint (`POST https://oauth2.googleapis.com/revoke`),
/// with the token in the query or the form body: `gcloud auth
/// application-default revoke` sends `?token=REFRESH_TOKEN` with an empty
/// form body. 200 `{}` once revoked (see [`Cloud::revoke_token`] for what a
/// revocation reaches); 400 `invalid_token` for a token this cloud did not
/// issue, or one already revoked or expired.
pub fn revoke(cloud: &Cloud, req: &Req) -> Reply {
    if req.method != axum::http::Method::POST {
        return Ok(oauth_error(
            405,
            "invalid_request",
            "The revocation endpoint takes POST.",
        ));
    }
    let f = fields(req);
    let Some(token) = field(&f, "token").filter(|t| !t.is_empty()) else {
        return Ok(oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: token",
        ));
    };
    Ok(if cloud.revoke_token(token)? {
        ok_json(&serde_json::json!({}), false)
    } else {
        oauth_error(400, "invalid_token", "Token expired or revoked")
    })
}

/// A stable numeric subject for a user.
pub fn user_sub(email: &str) -> String {
    let h = crypto::sha256(email.as_bytes());
    format!(
        "1{:020}",
        u64::from_be_bytes([h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7]])
            % 10_000_000_000_000_000_000
    )
}

/// The jwt-bearer grant: a service account signs a JWT with its key; the
/// signature, issuer, audience and times are checked against the key the cloud minted.
fn jwt_bearer_grant(cloud: &Cloud, f: &[(String, String)]) -> Response {
    let Some(assertion) = field(f, "assertion") else {
        return oauth_error(
            400,
            "invalid_request",
            "Missing required parameter: assertion",
        );
    };
    let claims = match verify_service_account_jwt(cloud, assertion, Audience::TokenEndpoint) {
        Ok(c) => c,
        Err(e) => {
            return oauth_error(
                400,
                "invalid_grant",
                &e.description(&Audience::TokenEndpoint),
            );
        }
    };
    let now = cloud.clock.now_secs();
    let email = claims.iss.clone();
    let sa = cloud.store.read().service_accounts.get(&email).cloned();
    let Some(sa) = sa else {
        return oauth_error(400, "invalid_grant", "Invalid JWT Signature.");
    };
    if let Some(aud) = claims.target_audience.as_deref() {
        let life = cloud.token_lifetime();
        let id = cloud.sign_id_token(serde_json::json!({
            "iss": crypto::ID_TOKEN_ISSUER, "aud": aud, "azp": sa.unique_id, "sub": sa.unique_id, "email": sa.email,
            "email_verified": true, "iat": now, "exp": now + life,
        }));
        return match id {
            Ok(id) => (
                [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
                serde_json::to_vec(&serde_json::json!({"id_token": id})).unwrap_or_default(),
            )
                .into_response(),
            Err(_) => oauth_error(500, "internal_failure", "Signing failed."),
        };
    }
    let Some(scope) = claims.scope.filter(|s| !s.trim().is_empty()) else {
        return oauth_error(
            400,
            "invalid_scope",
            "Invalid OAuth scope or ID token audience provided.",
        );
    };
    let scopes: Vec<String> = scope.split_whitespace().map(str::to_owned).collect();
    let (access, life) = cloud.mint_access_token(
        &format!("serviceAccount:{}", sa.email),
        &scopes,
        &sa.unique_id,
    );
    ok_json(
        &TokenResponse {
            access_token: access,
            expires_in: life,
            token_type: "Bearer".into(),
            scope: None,
            id_token: None,
            refresh_token: None,
        },
        false,
    )
}

/// The claims of a verified service-account JWT.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct SaJwtClaims {
    pub iss: String,
    #[serde(default)]
    pub sub: Option<String>,
    /// Absent in self-signed JWTs that carry a `scope` claim instead (google-auth
    /// sends those for service-account keys with scopes).
    #[serde(default)]
    pub aud: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
    #[serde(default)]
    pub target_audience: Option<String>,
    /// From the verifier (a NumericDate may be a decimal).
    #[serde(skip)]
    pub iat: i64,
    #[serde(skip)]
    pub exp: i64,
}

/// What a service-account JWT must be addressed to.
pub enum Audience<'a> {
    /// An assertion for the jwt-bearer grant: `aud` is Google's token endpoint.
    TokenEndpoint,
    /// A self-signed JWT used directly as a bearer token for an API: `aud` is
    /// `https://SERVICE/`, or the JWT carries a `scope` claim instead.
    Service(&'a str),
}

/// Google's rule for JWTs signed with a service account's key: `iat` and `exp`
/// both present, at most an hour apart, `iat` at most five minutes ahead of
/// the clock, and not expired.
pub const SA_JWT_POLICY: jwt::Policy = jwt::Policy {
    require_iat: true,
    expiry_leeway_secs: 0,
    future_skew_secs: 300,
    max_lifetime_secs: Some(3600),
};

/// Why a service-account JWT is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaJwtError {
    #[error(transparent)]
    Jwt(#[from] jwt::JwtError),
    /// `iss` is not a service account of this cloud (or not a string).
    #[error("the issuer is not a known service account")]
    UnknownAccount,
    #[error("sub must equal iss")]
    SubjectNotIssuer,
    #[error("the claims are not those of a service-account JWT")]
    Claims,
    #[error("the JWT is addressed to another audience")]
    Audience,
}

impl SaJwtError {
    pub fn is_transient(&self) -> bool {
        false
    }

    /// The `error_description` Google's token endpoint gives for it.
    pub fn description(&self, audience: &Audience<'_>) -> String {
        use jwt::JwtError as J;
        match self {
            SaJwtError::Jwt(e) if e.is_about_time() => "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat and exp values in the JWT claim.".into(),
            SaJwtError::Jwt(J::Alg(_)) => "Invalid JWT: alg must be RS256.".into(),
            SaJwtError::Jwt(J::NotCompact | J::BadPart(jwt::Part::Header | jwt::Part::Claims))
            | SaJwtError::Claims => {
                "Invalid JWT: the token is not a JWT with base64url JSON header and claims (iss, aud, iat, exp).".into()
            }
            SaJwtError::Jwt(_) | SaJwtError::UnknownAccount => "Invalid JWT Signature.".into(),
            SaJwtError::SubjectNotIssuer => "Invalid JWT: sub must equal iss.".into(),
            SaJwtError::Audience => match audience {
                Audience::TokenEndpoint => format!("Invalid JWT: aud must be {GOOGLE_TOKEN_AUDIENCE}."),
                Audience::Service(svc) => format!(
                    "Invalid JWT: aud must be https://{svc}/ or the JWT must carry a scope claim."
                ),
            },
        }
    }
}

/// Verifies a JWT signed by a service account's key ([`jwt`], under
/// [`SA_JWT_POLICY`]): `iss` names the account, the header's `kid` one of its
/// enabled keys, `sub` (when present) equals `iss`, and `aud` is what `audience` says.
pub fn verify_service_account_jwt(
    cloud: &Cloud,
    token: &str,
    audience: Audience<'_>,
) -> Result<SaJwtClaims, SaJwtError> {
    let unverified = jwt::decode(token)?;
    let iss = unverified
        .str_claim("iss")
        .ok_or(SaJwtError::UnknownAccount)?;
    let mut keys = jwt::KeySet::default();
    {
        let st = cloud.store.read();
        let sa = st
            .service_accounts
            .get(iss)
            .ok_or(SaJwtError::UnknownAccount)?;
        for k in sa.keys.iter().filter(|k| !k.disabled) {
            if let Ok(der) = STANDARD.decode(&k.public_der_b64) {
                keys.push_pkcs1_der(Some(k.id.clone()), der);
            }
        }
    }
    let verified = unverified.verify(&keys, &SA_JWT_POLICY, cloud.clock.now_secs())?;
    let (exp, iat) = (verified.exp, verified.iat.unwrap_or_default());
    let mut claims: SaJwtClaims =
        serde_json::from_value(serde_json::Value::Object(verified.claims))
            .map_err(|_| SaJwtError::Claims)?;
    claims.exp = exp;
    claims.iat = iat;
    if claims.sub.as_deref().is_some_and(|s| s != claims.iss) {
        return Err(SaJwtError::SubjectNotIssuer);
    }
    let aud = claims.aud.as_deref().unwrap_or("");
    let addressed = match audience {
        Audience::TokenEndpoint => aud == GOOGLE_TOKEN_AUDIENCE,
        Audience::Service(svc) => {
            claims.scope.is_some() || aud.trim_end_matches('/') == format!("https://{svc}")
        }
    };
    if !addressed {
        return Err(SaJwtError::Audience);
    }
    Ok(claims)
}

pub fn tokeninfo(cloud: &Cloud, req: &Req) -> Reply {
    let f = fields(req);
    let bad = || oauth_error(400, "invalid_token", "Invalid Value");
    if let Some(t) = field(&f, "access_token") {
        let Ok(c) = cloud.verify_access_token(t) else {
            return Ok(bad());
        };
        let now = cloud.clock.now_secs();
        let (kind, email) = c.member.split_once(':').unwrap_or(("", ""));
        let azp = cloud.tokens.verify(t).map(|c| c.azp).unwrap_or_default();
        // A federated token names its principal, and has no email.
        let federated = c.federated.is_some();
        let sub = if federated {
            c.member.clone()
        } else if kind == "user" {
            user_sub(email)
        } else {
            azp.clone()
        };
        let info = TokenInfo {
            azp: azp.clone(),
            aud: azp,
            sub: Some(sub),
            scope: c.scopes.join(" "),
            exp: c.expires_at.to_string(),
            expires_in: (c.expires_at - now).max(0).to_string(),
            email: (!federated).then(|| email.to_owned()),
            email_verified: (!federated).then(|| "true".into()),
            access_type: Some("online".into()),
        };
        return Ok(ok_json(&info, false));
    }
    if let Some(t) = field(&f, "id_token") {
        let Some(claims) = verify_id_token(cloud, t) else {
            return Ok(bad());
        };
        let mut out = serde_json::Map::new();
        if let Some(m) = claims.as_object() {
            for (k, v) in m {
                out.insert(
                    k.clone(),
                    match v {
                        serde_json::Value::String(s) => serde_json::Value::String(s.clone()),
                        other => serde_json::Value::String(other.to_string()),
                    },
                );
            }
        }
        out.insert("alg".into(), "RS256".into());
        out.insert("kid".into(), cloud.signer.kid.clone().into());
        return Ok(ok_json(&out, false));
    }
    Ok(oauth_error(
        400,
        "invalid_request",
        "Either access_token or id_token is required.",
    ))
}

/// How `tokeninfo` reads the cloud's own ID tokens: signed with its key, not expired.
const OWN_ID_TOKEN_POLICY: jwt::Policy = jwt::Policy {
    require_iat: false,
    expiry_leeway_secs: 0,
    future_skew_secs: 300,
    max_lifetime_secs: None,
};

/// The claims of an ID token this cloud signed and that has not expired.
pub fn verify_id_token(cloud: &Cloud, token: &str) -> Option<serde_json::Value> {
    let v = jwt::decode(token)
        .ok()?
        .verify(
            &jwt::KeySet::of_signer(&cloud.signer),
            &OWN_ID_TOKEN_POLICY,
            cloud.clock.now_secs(),
        )
        .ok()?;
    Some(serde_json::Value::Object(v.claims))
}

pub fn certs(cloud: &Cloud) -> Reply {
    Ok(ok_json(
        &JwkSet {
            keys: vec![cloud.signer.jwk()],
        },
        false,
    ))
}
