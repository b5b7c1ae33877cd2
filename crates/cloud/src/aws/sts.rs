//! STS over the query protocol (`Action=…&Version=2011-06-15`, form body or
//! query string; XML answers): GetCallerIdentity and AssumeRole, with the
//! role's trust policy and the caller's identity policies decided as IAM does;
//! and AssumeRoleWithWebIdentity, unsigned, for OpenID Connect ID tokens of
//! Google (`accounts.google.com`, signed by this cloud's ID-token key) and of
//! the IAM OIDC providers the world declares (see [`web_identity`]).

use super::{Aws, AwsError, Caller, Proto, Received, policy};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use std::collections::BTreeMap;

const NS: &str = "https://sts.amazonaws.com/doc/2011-06-15/";

/// A tiny XML writer that escapes every text node.
pub struct Xml(String);

impl Default for Xml {
    fn default() -> Self {
        Self::new()
    }
}

impl Xml {
    pub fn new() -> Self {
        Xml(String::new())
    }
    /// `tag` may carry attributes (`Name xmlns="…"`); only the name is closed.
    pub fn open(&mut self, tag: &str) {
        self.0.push('<');
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn close(&mut self, tag: &str) {
        self.0.push_str("</");
        self.0.push_str(tag);
        self.0.push('>');
    }
    pub fn leaf(&mut self, tag: &str, text: &str) {
        self.open(tag);
        for c in text.chars() {
            match c {
                '<' => self.0.push_str("&lt;"),
                '>' => self.0.push_str("&gt;"),
                '&' => self.0.push_str("&amp;"),
                '"' => self.0.push_str("&quot;"),
                '\'' => self.0.push_str("&apos;"),
                c => self.0.push(c),
            }
        }
        self.close(tag);
    }
    pub fn finish(self) -> String {
        self.0
    }
}

fn err(status: u16, code: &str, msg: impl Into<String>) -> AwsError {
    AwsError::new(Proto::Query, status, code, msg)
}

pub(crate) fn params(r: &Received) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = r
        .uri
        .query()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    let form = r.headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("content-type")
            && v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
    });
    if form || (r.method == axum::http::Method::POST && !r.body.is_empty()) {
        out.extend(form_urlencoded::parse(&r.body).into_owned());
    }
    out
}

fn ok(action: &str, body: impl FnOnce(&mut Xml)) -> Response {
    let mut x = Xml::new();
    x.open(&format!("{action}Response xmlns=\"{NS}\""));
    x.open(&format!("{action}Result"));
    body(&mut x);
    x.close(&format!("{action}Result"));
    x.open("ResponseMetadata");
    x.leaf("RequestId", &super::uuid4().unwrap_or_default());
    x.close("ResponseMetadata");
    x.close(&format!("{action}Response"));
    let mut r = x.finish().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/xml"));
    r
}

pub fn dispatch(aws: &Aws, r: &Received) -> Result<Response, AwsError> {
    let p = params(r);
    let get = |k: &str| p.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    let Some(action) = get("Action") else {
        return Err(err(400, "MissingAction", "Missing Action"));
    };
    if let Some(v) = get("Version").filter(|v| *v != "2011-06-15") {
        return Err(err(
            400,
            "InvalidAction",
            format!("Could not find operation {action} for version {v}"),
        ));
    }
    if action == "AssumeRoleWithWebIdentity" {
        // Unsigned by design: the token is the credential.
        return web_identity::assume_role_with_web_identity(aws, &get);
    }
    let caller = aws.authenticate(r, "sts", Proto::Query)?;
    match action {
        "GetCallerIdentity" => Ok(ok("GetCallerIdentity", |x| {
            x.leaf("Arn", &caller.who.arn);
            x.leaf("UserId", &caller.user_id);
            x.leaf("Account", &caller.who.account);
        })),
        "AssumeRole" => assume_role(aws, &caller, &get),
        other => Err(err(
            400,
            "InvalidAction",
            format!("Could not find operation {other} for version 2011-06-15"),
        )),
    }
}

fn validation(field: &str, value: &str, constraint: &str) -> AwsError {
    err(
        400,
        "ValidationError",
        format!(
            "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
        ),
    )
}

/// The parameters AssumeRole and AssumeRoleWithWebIdentity share: (role ARN, session name).
fn role_and_session<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<(&'a str, &'a str), AwsError> {
    let role_arn = get("RoleArn").ok_or_else(|| {
        err(
            400,
            "MissingParameter",
            "The request must contain the parameter RoleArn",
        )
    })?;
    let session = get("RoleSessionName").ok_or_else(|| {
        err(
            400,
            "MissingParameter",
            "The request must contain the parameter RoleSessionName",
        )
    })?;
    if !(2..=64).contains(&session.len()) {
        return Err(validation(
            "roleSessionName",
            session,
            "Member must have length between 2 and 64",
        ));
    }
    if !session
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_+=,.@-".contains(&b))
    {
        return Err(validation(
            "roleSessionName",
            session,
            "Member must satisfy regular expression pattern: [\\w+=,.@-]*",
        ));
    }
    if role_arn.len() < 20 || !role_arn.starts_with("arn:") {
        return Err(validation(
            "roleArn",
            role_arn,
            "Member must have length greater than or equal to 20",
        ));
    }
    if get("Policy").is_some() || get("PolicyArns.member.1.arn").is_some() {
        // Fail closed: a session policy only narrows, and ignoring it would grant more than AWS does.
        return Err(err(
            400,
            "ValidationError",
            "Session policies (Policy, PolicyArns) are not supported by the keyway local cloud.",
        ));
    }
    Ok((role_arn, session))
}

/// The longest session AWS issues (`DurationSeconds` ≤ 43200).
const MAX_DURATION_SECS: i64 = 43_200;
/// The longest session of a role assumed with a role session's credentials.
const CHAINED_MAX_SECS: i64 = 3600;

/// How long a session is: `DurationSeconds` (900 to 43200, AWS's constraint,
/// and at most `max`, the role's MaxSessionDuration, or an hour when
/// `chained`), else an hour capped at `max`. A number of any size is read
/// without overflow: one that does not fit is beyond either bound.
fn duration<'a>(
    get: &dyn Fn(&str) -> Option<&'a str>,
    max: i64,
    chained: bool,
) -> Result<i64, AwsError> {
    let max = if chained {
        max.min(CHAINED_MAX_SECS)
    } else {
        max
    };
    let Some(s) = get("DurationSeconds") else {
        return Ok(3600.min(max));
    };
    let (negative, digits) = match s.strip_prefix('-') {
        Some(d) => (true, d),
        None => (false, s),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(validation("durationSeconds", s, "Member must be a number"));
    }
    // Digits only: it fails to parse only when it does not fit, beyond either bound.
    let d = match digits.parse::<i64>() {
        Ok(d) if negative => -d,
        Ok(d) => d,
        Err(_) if negative => i64::MIN,
        Err(_) => i64::MAX,
    };
    if d < 900 {
        return Err(validation(
            "durationSeconds",
            s,
            "Member must have value greater than or equal to 900",
        ));
    }
    if d > MAX_DURATION_SECS {
        return Err(validation(
            "durationSeconds",
            s,
            "Member must have value less than or equal to 43200",
        ));
    }
    if d > max {
        return Err(err(
            400,
            "ValidationError",
            if chained {
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
            } else {
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
            },
        ));
    }
    Ok(d)
}

/// The `AssumedRoleUser` and `Credentials` elements.
fn write_session(
    x: &mut Xml,
    role: &super::model::Role,
    session: &str,
    creds: &super::TempCredentials,
) {
    x.open("AssumedRoleUser");
    x.leaf("AssumedRoleId", &format!("{}:{session}", role.id));
    x.leaf(
        "Arn",
        &format!(
            "arn:aws:sts::{}:assumed-role/{}/{session}",
            role.account, role.name
        ),
    );
    x.close("AssumedRoleUser");
    x.open("Credentials");
    x.leaf("AccessKeyId", &creds.access_key_id);
    x.leaf("SecretAccessKey", &creds.secret_access_key);
    x.leaf("SessionToken", &creds.session_token);
    x.leaf("Expiration", &creds.expiration());
    x.close("Credentials");
}

fn assume_role<'a>(
    aws: &Aws,
    caller: &Caller,
    get: &dyn Fn(&str) -> Option<&'a str>,
) -> Result<Response, AwsError> {
    let (role_arn, session) = role_and_session(get)?;
    let mut ctx = BTreeMap::new();
    if let Some(e) = get("ExternalId") {
        ctx.insert("sts:ExternalId".to_owned(), e.to_owned());
    }
    ctx.insert(
        "aws:PrincipalArn".to_owned(),
        caller
            .who
            .principal_arns
            .first()
            .cloned()
            .unwrap_or_default(),
    );
    ctx.insert(
        "aws:PrincipalAccount".to_owned(),
        caller.who.account.clone(),
    );
    let st = aws.cloud.store.read();
    let denied = || {
        err(
            403,
            "AccessDenied",
            policy::denial_message(
                &caller.who,
                "sts:AssumeRole",
                role_arn,
                policy::Decision::ImplicitDeny {
                    resource_needed: false,
                },
            ),
        )
    };
    // AWS answers the same whether the role is missing or the caller may not assume it.
    let Some(role) = st.aws.roles.get(role_arn).cloned() else {
        return Err(denied());
    };
    drop(st);
    let d = policy::decide_trust(
        &caller.who,
        &caller.identity_policies,
        &role.trust,
        &role.account,
        &role.arn,
        "sts:AssumeRole",
        &ctx,
    );
    if d != policy::Decision::Allow {
        // The trust policy is the gate: a denial reads as AWS prints it for AssumeRole.
        let m = format!(
            "User: {} is not authorized to perform: sts:AssumeRole on resource: {}",
            caller.who.arn, role.arn
        );
        return Err(err(403, "AccessDenied", m));
    }
    let duration = duration(get, role.max_session_secs, caller.session.is_some())?;
    let creds = aws
        .issue(&role.arn, session, duration)
        .map_err(|e| AwsError::internal(Proto::Query, &e))?;
    Ok(ok("AssumeRole", |x| {
        write_session(x, &role, session, &creds)
    }))
}

pub mod web_identity {
    //! AssumeRoleWithWebIdentity. The token is an RS256 JWT whose signature is
    //! checked against its issuer's keys: `https://accounts.google.com` is this
    //! cloud's own ID-token key (the one the metadata servers and
    //! `generateIdToken` sign with); any other issuer must be an IAM OIDC
    //! provider of the role's account, with one of the token's audiences in its
    //! client id list. The token is verified by [`crate::jwt`] (RS256, the key
    //! by `kid`, then `exp`/`nbf`/`iat` with a minute of leeway), then the
    //! role's trust policy: a statement allowing `sts:AssumeRoleWithWebIdentity`
    //! to `Principal: {Federated: "accounts.google.com"}` or to the provider's
    //! ARN, with conditions on the keys AWS defines (`accounts.google.com:aud`
    //! is the token's `azp` when present, else `aud`; `:oaud` is `aud`; `:sub`;
    //! `HOST:aud` and `HOST:sub` for OIDC providers).
    //!
    //! The trust policy is decided by [`policy::decide_trust`] for the action
    //! `sts:AssumeRoleWithWebIdentity` and the `Federated` principal.

    use super::{Aws, AwsError, Proto, err, ok, policy, role_and_session, write_session};
    use crate::jwt;
    use axum::response::Response;
    use serde_json::Value;
    use std::collections::BTreeMap;

    const ACTION: &str = "sts:AssumeRoleWithWebIdentity";
    const GOOGLE: &str = "accounts.google.com";
    /// Clock skew tolerated on `exp`, `nbf` and `iat`.
    pub const LEEWAY_SECS: i64 = 60;
    /// AWS sets no lifetime limit on an IdP's tokens; the verifier still
    /// refuses one whose `exp - iat` does not fit.
    const POLICY: jwt::Policy = jwt::Policy {
        require_iat: false,
        expiry_leeway_secs: LEEWAY_SECS,
        future_skew_secs: LEEWAY_SECS,
        max_lifetime_secs: None,
    };

    fn invalid(msg: impl Into<String>) -> AwsError {
        err(400, "InvalidIdentityToken", msg)
    }

    fn not_a_jwt() -> AwsError {
        invalid(
            "The ID Token provided is not a valid JWT. (You may see this error if you sent an Access Token)",
        )
    }

    /// Who issued the token, as far as AWS is concerned.
    struct Issuer {
        /// What the trust policy's `Federated` names: `accounts.google.com` or the provider ARN.
        principal: String,
        /// The condition keys' prefix: `accounts.google.com` or the provider's URL.
        prefix: String,
        keys: jwt::KeySet,
        /// The OIDC provider's client ids (Google: none, the trust policy decides).
        client_ids: Option<Vec<String>>,
    }

    fn issuer(aws: &Aws, iss: &str, role_account: &str) -> Result<Issuer, AwsError> {
        if iss == "https://accounts.google.com" || iss == GOOGLE {
            return Ok(Issuer {
                principal: GOOGLE.into(),
                prefix: GOOGLE.into(),
                keys: jwt::KeySet::of_signer(&aws.cloud.signer),
                client_ids: None,
            });
        }
        let none = || {
            invalid(format!(
                "No OpenIDConnect provider found in your account for {iss}"
            ))
        };
        let url = crate::aws::world::oidc_host(iss).ok_or_else(none)?;
        let p = aws
            .cloud
            .store
            .read()
            .aws
            .oidc_providers
            .values()
            .find(|p| p.account == role_account && p.url == url)
            .cloned()
            .ok_or_else(none)?;
        let doc = match (&p.jwks, &p.jwks_file) {
            (Some(v), _) => v.clone(),
            (None, Some(f)) => {
                let unreachable = || {
                    invalid(
                        "Couldn't retrieve verification key from your identity provider,  please reference AssumeRoleWithWebIdentity documentation for requirements",
                    )
                };
                let text = std::fs::read_to_string(f).map_err(|e| {
                    tracing::warn!(file = %f, %e, "reading an OIDC provider's JWKS");
                    unreachable()
                })?;
                serde_json::from_str(&text).map_err(|_| unreachable())?
            }
            (None, None) => Value::Null,
        };
        let keys = jwt::KeySet::from_jwks(&doc).map_err(|m| {
            invalid(format!(
                "Couldn't retrieve verification key from your identity provider ({m})"
            ))
        })?;
        Ok(Issuer {
            principal: p.arn.clone(),
            prefix: p.url.clone(),
            keys,
            client_ids: Some(p.client_ids.clone()),
        })
    }

    /// AWS's answer to a token the verifier refused.
    fn refusal(e: &jwt::JwtError) -> AwsError {
        use jwt::JwtError as J;
        match e {
            J::NotCompact | J::BadPart(_) => not_a_jwt(),
            J::Alg(alg) => invalid(format!(
                "The token is signed with '{alg}'; the keyway local cloud verifies RS256 only"
            )),
            J::UnknownKey { kid } => invalid(format!(
                "The token's signing key (kid '{}') is not among the identity provider's keys",
                kid.as_deref().unwrap_or("")
            )),
            J::BadSignature => invalid(
                "The signature of the token does not verify with the identity provider's keys",
            ),
            J::MissingClaim(name) => invalid(format!(
                "The token has no {} ({name})",
                if *name == "exp" {
                    "expiration time"
                } else {
                    "issue time"
                }
            )),
            J::BadTime(name) => invalid(format!(
                "The token's {name} is not a NumericDate (seconds since the epoch)"
            )),
            J::Expired { exp, now } => err(
                400,
                "ExpiredTokenException",
                format!(
                    "Token expired: current date/time {now} must be before the expiration date/time {exp}"
                ),
            ),
            J::NotYetValid { nbf, now } => invalid(format!(
                "Token is not valid yet: current date/time {now} is before the not-before date/time {nbf}"
            )),
            J::IssuedInFuture { iat, now } => invalid(format!(
                "Token used before issued: current date/time {now} is before the issue date/time {iat}"
            )),
            J::ExpiresBeforeIssued { iat, exp } => invalid(format!(
                "Token expires before it was issued: the expiration date/time {exp} is before the issue date/time {iat}"
            )),
            J::LifetimeTooLong { iat, exp, .. } => invalid(format!(
                "Token lifetime out of range: from the issue date/time {iat} to the expiration date/time {exp}"
            )),
        }
    }

    pub fn assume_role_with_web_identity<'a>(
        aws: &Aws,
        get: &dyn Fn(&str) -> Option<&'a str>,
    ) -> Result<Response, AwsError> {
        let (role_arn, session) = role_and_session(get)?;
        let Some(token) = get("WebIdentityToken") else {
            return Err(err(
                400,
                "MissingParameter",
                "The request must contain the parameter WebIdentityToken",
            ));
        };
        if !(4..=20000).contains(&token.len()) {
            // The token is a credential: the message names the member, never its value.
            return Err(err(
                400,
                "ValidationError",
                "1 validation error detected: Value at 'webIdentityToken' failed to satisfy constraint: Member must have length between 4 and 20000",
            ));
        }
        if get("ProviderId").is_some() {
            return Err(err(
                400,
                "ValidationError",
                "ProviderId (OAuth 2.0 access tokens of www.amazon.com and graph.facebook.com) is not supported by the keyway local cloud; send an OpenID Connect ID token.",
            ));
        }
        let unverified = jwt::decode(token).map_err(|e| refusal(&e))?;
        let iss = unverified
            .str_claim("iss")
            .ok_or_else(not_a_jwt)?
            .to_owned();
        let iss = iss.as_str();
        // The providers consulted are the role's account's.
        let role_account = role_arn.split(':').nth(4).unwrap_or("");
        let who = issuer(aws, iss, role_account)?;
        let claims = unverified
            .verify(&who.keys, &POLICY, aws.cloud.clock.now_secs())
            .map_err(|e| refusal(&e))?
            .claims;
        let auds: Vec<String> = match claims.get("aud") {
            Some(Value::String(a)) => vec![a.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        let sub = claims
            .get("sub")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| invalid("The token has no subject (sub)"))?
            .to_owned();
        let mut ctx = BTreeMap::new();
        let audience = match &who.client_ids {
            Some(ids) => {
                let Some(a) = auds.iter().find(|a| ids.contains(a)) else {
                    return Err(invalid("Incorrect token audience"));
                };
                ctx.insert(format!("{}:aud", who.prefix), a.clone());
                a.clone()
            }
            None => {
                let oaud = auds
                    .first()
                    .cloned()
                    .ok_or_else(|| invalid("Incorrect token audience"))?;
                let aud = claims
                    .get("azp")
                    .and_then(Value::as_str)
                    .map(str::to_owned)
                    .unwrap_or_else(|| oaud.clone());
                ctx.insert(format!("{GOOGLE}:oaud"), oaud);
                ctx.insert(format!("{GOOGLE}:aud"), aud.clone());
                aud
            }
        };
        ctx.insert(format!("{}:sub", who.prefix), sub.clone());
        ctx.insert("aws:FederatedProvider".into(), who.principal.clone());
        let denied = || {
            err(
                403,
                "AccessDenied",
                format!("Not authorized to perform {ACTION}"),
            )
        };
        let Some(role) = aws.cloud.store.read().aws.roles.get(role_arn).cloned() else {
            return Err(denied());
        };
        let federated = policy::Who {
            arn: who.principal.clone(),
            account: role.account.clone(),
            principal_arns: Vec::new(),
            service: None,
            federated: Some(who.principal.clone()),
        };
        let d = policy::decide_trust(
            &federated,
            &[],
            &role.trust,
            &role.account,
            &role.arn,
            ACTION,
            &ctx,
        );
        if d != policy::Decision::Allow {
            tracing::info!(role = %role.arn, provider = %who.principal, %sub, "AssumeRoleWithWebIdentity refused by the trust policy");
            return Err(denied());
        }
        let duration = super::duration(get, role.max_session_secs, false)?;
        let creds = aws
            .issue(&role.arn, session, duration)
            .map_err(|e| AwsError::internal(Proto::Query, &e))?;
        let provider = if who.client_ids.is_some() {
            iss.to_owned()
        } else {
            GOOGLE.to_owned()
        };
        Ok(ok("AssumeRoleWithWebIdentity", |x| {
            x.leaf("SubjectFromWebIdentityToken", &sub);
            x.leaf("Audience", &audience);
            write_session(x, &role, session, &creds);
            x.leaf("Provider", &provider);
        }))
    }
}
