//! The AWS half of the local cloud, on one loopback port: STS (query protocol,
//! `Action=` in the form body or the query; XML answers) and Secrets Manager
//! (JSON 1.1, `X-Amz-Target: secretsmanager.OP`), plus one IMDSv2 server per
//! EC2 instance and one ECS container-credentials server per task
//! ([`compute`]).
//!
//! Every API request is authenticated by its SigV4 signature ([`sigv4`]),
//! checked against IAM user keys in the store or against temporary
//! credentials this cloud issued. Temporary credentials are self-verifying,
//! like the Google half's access tokens: the session token carries its claims
//! (key id, role, session name, expiry) under an HMAC, and the secret key is
//! derived from the key id with the same HMAC key, so validating them needs no
//! lookup and they survive restarts. Decisions follow IAM ([`policy`]).

pub mod compute;
pub mod ecs;
pub mod error;
pub mod federation;
pub mod iam;
pub mod ids;
pub mod model;
pub mod policy;
pub mod secretsmanager;
pub mod seed;
pub mod sigv4;
pub mod sts;
pub mod world;
pub mod xml;

pub use error::{AwsError, Proto};

use crate::cloud::Cloud;
use crate::crypto;
use crate::error::CloudError;
use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use model::{IamUser, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

const SESSION_PREFIX: &str = "KWAYsts.";

/// The AWS services' shared context.
pub struct Aws {
    pub cloud: Arc<Cloud>,
    key: hmac::Key,
    /// Guards `/_keyway/` control calls (`keyway cloud env --task`).
    pub control_token: String,
    /// Derived SigV4 signing keys and opened IAM-user secrets (see [`KeyCache`]).
    keys: KeyCache,
}

/// Most entries either cache holds; on reaching it the cache starts over.
const KEY_CACHE_MAX: usize = 4096;

/// What SigV4 verification may reuse between requests, so a request costs one
/// HMAC of its string to sign instead of five plus an AES-GCM open.
///
/// - Signing keys, by credential scope (`AKID/DATE/REGION/SERVICE`). Each
///   entry remembers the secret it was derived from and is used only when the
///   secret found for the request (the store's, or the session's derived one)
///   is that same secret, so a rotated or different secret never meets a stale
///   key. The signature itself is computed and compared on every request.
/// - IAM users' secret access keys, by key id, with the sealed form they were
///   opened from: reused only while the store holds that same sealed form
///   (and the key's status is checked on every request before the cache).
///
/// Neither holds more than [`KEY_CACHE_MAX`] entries; both are cleared when full.
/// No `Debug`: the entries are secrets.
#[derive(Default)]
struct KeyCache {
    signing: std::sync::Mutex<std::collections::HashMap<String, SigningEntry>>,
    user_secrets: std::sync::Mutex<std::collections::HashMap<String, UserSecretEntry>>,
}

struct SigningEntry {
    secret: zeroize::Zeroizing<String>,
    key: Arc<hmac::Key>,
}

struct UserSecretEntry {
    sealed: String,
    secret: zeroize::Zeroizing<String>,
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The maps are replaced or cleared whole; a panic elsewhere cannot leave one half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl KeyCache {
    /// The signing key of `secret` for the scope of `c` (derived, or reused when
    /// derived earlier from the same secret).
    fn signing_key(&self, c: &sigv4::Claimed, secret: &str) -> Arc<hmac::Key> {
        let mut scope = String::with_capacity(
            c.access_key.len() + c.scope_date.len() + c.region.len() + c.service.len() + 3,
        );
        for (i, part) in [&c.access_key, &c.scope_date, &c.region, &c.service]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                scope.push('/');
            }
            scope.push_str(part);
        }
        if let Some(e) = lock(&self.signing).get(&scope)
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                e.secret.as_bytes(),
                secret.as_bytes(),
            )
            .is_ok()
        {
            return Arc::clone(&e.key);
        }
        let key = Arc::new(sigv4::signing_key(
            secret,
            &c.scope_date,
            &c.region,
            &c.service,
        ));
        let mut m = lock(&self.signing);
        if m.len() >= KEY_CACHE_MAX {
            m.clear();
        }
        m.insert(
            scope,
            SigningEntry {
                secret: zeroize::Zeroizing::new(secret.to_owned()),
                key: Arc::clone(&key),
            },
        );
        key
    }
}

/// What a session token says.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SessionClaims {
    /// The ASIA access key id.
    pub k: String,
    /// The role's ARN.
    pub r: String,
    /// The session name.
    pub s: String,
    pub iat: i64,
    pub exp: i64,
}

/// Temporary credentials, as every issuer hands them out.
#[derive(Debug, Clone)]
pub struct TempCredentials {
    pub access_key_id: String,
    pub secret_access_key: zeroize::Zeroizing<String>,
    pub session_token: String,
    pub expiration_secs: i64,
    pub claims: SessionClaims,
}

impl TempCredentials {
    pub fn expiration(&self) -> String {
        crate::time::rfc3339_seconds(self.expiration_secs * 1000)
    }
}

impl Aws {
    pub fn new(cloud: Arc<Cloud>) -> Result<Arc<Aws>, CloudError> {
        let store = &cloud.store;
        let raw = match store.meta_get("aws_key")? {
            Some(s) => store.master.open(b"aws_key", &s)?,
            None => {
                let k = crypto::random_bytes::<32>()?;
                store.meta_put("aws_key", &store.master.seal(b"aws_key", &k)?)?;
                zeroize::Zeroizing::new(k.to_vec())
            }
        };
        let control_token = crypto::random_hex(24)?;
        Ok(Arc::new(Aws {
            key: hmac::Key::new(hmac::HMAC_SHA256, &raw),
            cloud,
            control_token,
            keys: KeyCache::default(),
        }))
    }

    pub(crate) fn mac(&self, label: &str, data: &str) -> Vec<u8> {
        let mut m = hmac::Context::with_key(&self.key);
        m.update(label.as_bytes());
        m.update(&[0]);
        m.update(data.as_bytes());
        m.sign().as_ref().to_vec()
    }

    fn derived_secret(&self, access_key: &str) -> String {
        let mut s = STANDARD.encode(self.mac("secret", access_key));
        s.truncate(40);
        s
    }

    /// Issues temporary credentials for a session of `role_arn`.
    pub fn issue(
        &self,
        role_arn: &str,
        session: &str,
        lifetime_secs: i64,
    ) -> Result<TempCredentials, CloudError> {
        let now = self.cloud.clock.now_secs();
        // Callers bound the lifetime (STS: 900..=43200); a world with short
        // tokens shortens it; a clock at the end of time saturates.
        let lifetime_secs = self.cloud.cap_lifetime(lifetime_secs);
        let exp = now.saturating_add(lifetime_secs.max(0));
        let k = format!("ASIA{}", ids::random_upper(16)?);
        let claims = SessionClaims {
            k: k.clone(),
            r: role_arn.to_owned(),
            s: session.to_owned(),
            iat: now,
            exp,
        };
        let json = serde_json::to_vec(&claims).unwrap_or_default();
        let mut token = String::from(SESSION_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let tag = self.mac("session", &token);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag, &mut token);
        Ok(TempCredentials {
            secret_access_key: zeroize::Zeroizing::new(self.derived_secret(&k)),
            access_key_id: k,
            session_token: token,
            expiration_secs: exp,
            claims,
        })
    }

    /// The claims of a session token this cloud issued (expiry is the caller's check).
    pub fn verify_session(&self, token: &str) -> Option<SessionClaims> {
        let rest = token.strip_prefix(SESSION_PREFIX)?;
        let dot = rest.rfind('.')?;
        let signed = &token[..SESSION_PREFIX.len() + dot];
        let tag = URL_SAFE_NO_PAD.decode(&rest[dot + 1..]).ok()?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.mac("session", signed), &tag)
            .ok()?;
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&rest[..dot]).ok()?).ok()
    }

    /// A short-lived token for an EC2 instance's IMDS, or an ECS task's auth token.
    pub fn opaque_token(&self, label: &str, subject: &str, exp: i64) -> String {
        let body = format!("{subject}|{exp}");
        let mut t = URL_SAFE_NO_PAD.encode(body.as_bytes());
        t.push('.');
        URL_SAFE_NO_PAD.encode_string(self.mac(label, &body), &mut t);
        t
    }

    /// The subject of a valid, unexpired [`Self::opaque_token`].
    pub fn check_opaque_token(&self, label: &str, token: &str) -> Option<String> {
        let (body, tag) = token.split_once('.')?;
        let body = String::from_utf8(URL_SAFE_NO_PAD.decode(body).ok()?).ok()?;
        let tag = URL_SAFE_NO_PAD.decode(tag).ok()?;
        aws_lc_rs::constant_time::verify_slices_are_equal(&self.mac(label, &body), &tag).ok()?;
        let (subject, exp) = body.rsplit_once('|')?;
        (exp.parse::<i64>().ok()? > self.cloud.clock.now_secs()).then(|| subject.to_owned())
    }

    /// The secret access key of an IAM user's key.
    pub fn user_key_secret(&self, access_key: &str) -> Option<zeroize::Zeroizing<String>> {
        let st = self.cloud.store.read();
        let sealed = &st
            .aws
            .keys
            .get(access_key)
            .filter(|k| k.status == "Active")?
            .sealed_secret;
        if let Some(e) = lock(&self.keys.user_secrets)
            .get(access_key)
            .filter(|e| e.sealed == *sealed)
        {
            return Some(e.secret.clone());
        }
        let sealed = sealed.clone();
        drop(st);
        let raw = STANDARD.decode(&sealed).ok()?;
        let plain = self
            .cloud
            .store
            .master
            .open(format!("aws-key:{access_key}").as_bytes(), &raw)
            .ok()?;
        let secret = zeroize::Zeroizing::new(String::from_utf8_lossy(&plain).into_owned());
        let mut m = lock(&self.keys.user_secrets);
        if m.len() >= KEY_CACHE_MAX {
            m.clear();
        }
        m.insert(
            access_key.to_owned(),
            UserSecretEntry {
                sealed,
                secret: secret.clone(),
            },
        );
        Some(secret)
    }
}

/// The authenticated caller of an API request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub who: policy::Who,
    /// `AIDA…` for a user, `AROA…:SESSION` for a session.
    pub user_id: String,
    pub identity_policies: Vec<Value>,
    pub access_key: String,
    /// The region in the signature's credential scope: the region called.
    pub region: String,
    pub session: Option<SessionClaims>,
}

impl Caller {
    /// The decision of the caller's identity policies alone (no resource
    /// policy), on a resource of the caller's own account.
    pub fn decide_own(
        &self,
        action: &str,
        resource: &str,
        ctx: &BTreeMap<String, String>,
    ) -> policy::Decision {
        policy::decide(
            &self.who,
            &self.identity_policies,
            None,
            &self.who.account,
            action,
            resource,
            ctx,
        )
    }

    /// Adds the global condition keys that name the caller
    /// (`aws:PrincipalArn`, `aws:PrincipalAccount`) to a request's context.
    pub fn add_principal_keys(&self, ctx: &mut BTreeMap<String, String>) {
        ctx.insert(
            "aws:PrincipalArn".to_owned(),
            self.who.principal_arns.first().cloned().unwrap_or_default(),
        );
        ctx.insert("aws:PrincipalAccount".to_owned(), self.who.account.clone());
    }
}

pub fn user_who(u: &IamUser) -> policy::Who {
    policy::Who {
        arn: u.arn.clone(),
        account: u.account.clone(),
        principal_arns: vec![u.arn.clone()],
        service: None,
        federated: None,
    }
}

pub fn session_who(role: &Role, session: &str) -> policy::Who {
    let arn = format!(
        "arn:aws:sts::{}:assumed-role/{}/{session}",
        role.account, role.name
    );
    policy::Who {
        principal_arns: vec![role.arn.clone(), arn.clone()],
        arn,
        account: role.account.clone(),
        service: None,
        federated: None,
    }
}

/// A caller acting as a session of `role` (compute identities, ECS's execution role).
pub fn session_caller(role: &Role, session: &str, region: &str) -> Caller {
    Caller {
        who: session_who(role, session),
        user_id: format!("{}:{session}", role.id),
        identity_policies: role.policies.documents(),
        access_key: String::new(),
        region: region.to_owned(),
        session: None,
    }
}

pub struct Received {
    pub method: Method,
    pub uri: Uri,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Aws {
    /// Verifies the request's SigV4 signature for `service` and returns the caller.
    pub fn authenticate(
        &self,
        r: &Received,
        service: &str,
        proto: Proto,
    ) -> Result<Caller, AwsError> {
        let req = sigv4::Request {
            method: r.method.as_str(),
            path: r.uri.path(),
            query: r.uri.query().unwrap_or(""),
            headers: &r.headers,
            body: &r.body,
        };
        let (json, q) = (proto == Proto::Json, proto);
        let bad_sig = |m: String| {
            AwsError::new(
                q,
                if json { 400 } else { 403 },
                if json {
                    "InvalidSignatureException"
                } else {
                    "SignatureDoesNotMatch"
                },
                m,
            )
        };
        let invalid_token = || {
            AwsError::new(
                q,
                if json { 400 } else { 403 },
                if json {
                    "UnrecognizedClientException"
                } else {
                    "InvalidClientTokenId"
                },
                "The security token included in the request is invalid.",
            )
        };
        let now = self.cloud.clock.now_secs();
        let c = match sigv4::check(&req, now) {
            Ok(c) => c,
            Err(e) => return Err(signature_refusal(proto, e)),
        };
        if c.service != service {
            return Err(bad_sig(format!(
                "Credential should be scoped to correct service: '{service}'. "
            )));
        }
        // A long-term key never travels with a session token (AWS refuses the pair).
        if !c.access_key.starts_with("ASIA") && c.security_token.is_some() {
            return Err(invalid_token());
        }
        let st = self.cloud.store.read();
        let (secret, caller) = if c.access_key.starts_with("ASIA") {
            let Some(claims) = c
                .security_token
                .as_deref()
                .and_then(|t| self.verify_session(t))
            else {
                return Err(invalid_token());
            };
            if claims.k != c.access_key {
                return Err(invalid_token());
            }
            if claims.exp <= now {
                return Err(AwsError::new(
                    q,
                    if json { 400 } else { 403 },
                    if json {
                        "ExpiredTokenException"
                    } else {
                        "ExpiredToken"
                    },
                    "The security token included in the request is expired",
                ));
            }
            let Some(role) = st.aws.roles.get(&claims.r) else {
                return Err(invalid_token());
            };
            let mut caller = session_caller(role, &claims.s, &c.region);
            caller.access_key = c.access_key.clone();
            caller.session = Some(claims.clone());
            (
                zeroize::Zeroizing::new(self.derived_secret(&c.access_key)),
                caller,
            )
        } else {
            let Some(key) = st.aws.keys.get(&c.access_key) else {
                return Err(invalid_token());
            };
            let Some(user) = st.aws.users.get(&key.user_arn) else {
                return Err(invalid_token());
            };
            let caller = Caller {
                who: user_who(user),
                user_id: user.id.clone(),
                identity_policies: user.policies.documents(),
                access_key: c.access_key.clone(),
                region: c.region.clone(),
                session: None,
            };
            drop(st);
            let Some(secret) = self.user_key_secret(&c.access_key) else {
                return Err(invalid_token());
            };
            (secret, caller)
        };
        if !sigv4::verify_with_key(&req, &c, &self.keys.signing_key(&c, &secret)) {
            return Err(bad_sig(
                "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.".into(),
            ));
        }
        Ok(caller)
    }
}

/// AWS's answer to a request whose signature [`sigv4::check`] refused, in the
/// codes of the request's protocol.
fn signature_refusal(proto: Proto, e: sigv4::SigError) -> AwsError {
    use sigv4::SigError as S;
    let json = proto == Proto::Json;
    let (status, code) = match &e {
        S::Missing if json => (400, "MissingAuthenticationTokenException"),
        S::Missing => {
            return AwsError::new(
                proto,
                403,
                "MissingAuthenticationToken",
                "Request is missing Authentication Token",
            );
        }
        S::Incomplete(_) | S::BadDate(_) if json => (400, "IncompleteSignatureException"),
        S::Incomplete(_) | S::BadDate(_) => (400, "IncompleteSignature"),
        S::ExpiresParameter(_) => (400, "AuthorizationQueryParametersError"),
        S::HostNotSigned
        | S::NotSigned(_)
        | S::Expired { .. }
        | S::NotYetCurrent { .. }
        | S::ScopeDate { .. }
            if json =>
        {
            (400, "InvalidSignatureException")
        }
        S::HostNotSigned
        | S::NotSigned(_)
        | S::Expired { .. }
        | S::NotYetCurrent { .. }
        | S::ScopeDate { .. } => (403, "SignatureDoesNotMatch"),
    };
    AwsError::new(proto, status, code, e.to_string())
}

/// The router for the AWS API port.
pub fn router(aws: Arc<Aws>) -> axum::Router {
    axum::Router::new().fallback(handle).with_state(aws)
}

async fn handle(
    State(aws): State<Arc<Aws>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let hs: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let r = Received {
        method: method.clone(),
        uri: uri.clone(),
        headers: hs,
        body,
    };
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // Writes wait on fsync; keep them off the async workers. Reads (the hot
    // GetSecretValue path, STS) are served inline from memory.
    let writes = matches!(
        target.as_deref(),
        Some(
            "secretsmanager.CreateSecret"
                | "secretsmanager.PutSecretValue"
                | "secretsmanager.DeleteSecret"
                | "secretsmanager.RestoreSecret"
                | "AmazonEC2ContainerServiceV20141113.RegisterTaskDefinition"
        )
    ) || (target.is_none()
        && (iam::writes(&r) || r.uri.path().starts_with("/_keyway/")));
    // Every AWS answer carries the service's own time, from its clock (hyper
    // would add the machine's): a client whose signature was refused as
    // expired can compare it with the time it signed at.
    let date = http_date(aws.cloud.clock.now_secs());
    let reply = if writes {
        match tokio::task::spawn_blocking(move || dispatch(&aws, &r, target.as_deref())).await {
            Ok(r) => r,
            Err(e) => Err(AwsError::internal(Proto::Json, &e)),
        }
    } else {
        dispatch(&aws, &r, target.as_deref())
    };
    let mut response = reply.unwrap_or_else(IntoResponse::into_response);
    if let Some(date) = date {
        response
            .headers_mut()
            .insert(axum::http::header::DATE, date);
    }
    tracing::debug!(%method, path = %uri.path(), status = response.status().as_u16(), "aws api");
    response
}

/// `Wed, 02 Dec 2026 12:22:06 GMT` (RFC 9110's IMF-fixdate).
fn http_date(secs: i64) -> Option<axum::http::HeaderValue> {
    let t = jiff::Timestamp::from_second(secs).ok()?;
    let s = jiff::fmt::rfc2822::DateTimePrinter::new()
        .timestamp_to_rfc9110_string(&t)
        .ok()?;
    axum::http::HeaderValue::from_str(&s).ok()
}

fn dispatch(aws: &Aws, r: &Received, target: Option<&str>) -> Result<Response, AwsError> {
    if r.uri.path().starts_with("/_keyway/") {
        return compute::control(aws, r);
    }
    if let Some(t) = target {
        return match t.split_once('.') {
            Some(("secretsmanager", op)) => secretsmanager::dispatch(aws, r, op),
            Some((ecs::TARGET_PREFIX, op)) => ecs::dispatch(aws, r, op),
            _ => Err(AwsError::new(
                Proto::Json,
                400,
                "UnknownOperationException",
                format!("The operation {t} is not served by the local cloud."),
            )),
        };
    }
    if iam::handles(r) {
        return iam::dispatch(aws, r);
    }
    sts::dispatch(aws, r)
}

/// A 200 with a JSON 1.1 body.
pub fn ok_json<T: Serialize>(v: &T) -> Response {
    // Sized for a GetSecretValue answer, so serialising it does not regrow the buffer.
    let mut body = Vec::with_capacity(512);
    if serde_json::to_writer(&mut body, v).is_err() {
        body.clear();
    }
    ([(header::CONTENT_TYPE, "application/x-amz-json-1.1")], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Change;
    use keyway_core::clock::ManualClock;

    fn signed(secret: &str) -> (Vec<(String, String)>, Vec<u8>) {
        let mut headers = vec![
            ("host".to_owned(), "127.0.0.1:1".to_owned()),
            (
                "x-amz-target".to_owned(),
                "secretsmanager.GetSecretValue".to_owned(),
            ),
        ];
        let body = br#"{"SecretId":"s"}"#.to_vec();
        let r = sigv4::Request::post(&headers, &body);
        let add = sigv4::sign(
            &r,
            "AKIAEXAMPLE",
            secret,
            None,
            "us-east-1",
            "secretsmanager",
            1_700_000_000,
        );
        headers.extend(add);
        (headers, body)
    }

    #[test]
    fn cached_signing_keys_still_verify_every_signature_and_follow_the_secret() {
        let cache = KeyCache::default();
        let (headers, body) = signed("right-secret");
        let r = sigv4::Request::post(&headers, &body);
        let c = sigv4::parse(&r).unwrap();
        // Whether `claimed` verifies on `req` with the (cached) key of `c`'s scope and `secret`.
        let verifies = |req: &sigv4::Request, claimed: &sigv4::Claimed, secret: &str| {
            sigv4::verify_with_key(req, claimed, &cache.signing_key(&c, secret))
        };
        assert!(verifies(&r, &c, "right-secret"));
        // The same scope again: the cached key, and still a real check of each request.
        assert!(verifies(&r, &c, "right-secret"));
        let tampered_body = br#"{"SecretId":"t"}"#;
        let t = sigv4::Request {
            body: tampered_body,
            ..r
        };
        assert!(!verifies(&t, &c, "right-secret"));
        let mut bad = c.clone();
        bad.signature.replace_range(
            ..1,
            if bad.signature.starts_with('0') {
                "1"
            } else {
                "0"
            },
        );
        assert!(!verifies(&r, &bad, "right-secret"));
        // Another secret for the same key id and scope never meets the cached key.
        assert!(!verifies(&r, &c, "other-secret"));
        assert!(verifies(&r, &c, "right-secret"));
        assert_eq!(lock(&cache.signing).len(), 1);
    }

    #[test]
    fn the_signing_key_cache_is_bounded() {
        let cache = KeyCache::default();
        let (headers, body) = signed("s");
        let r = sigv4::Request::post(&headers, &body);
        let mut c = sigv4::parse(&r).unwrap();
        for i in 0..KEY_CACHE_MAX + 10 {
            c.access_key = format!("AKIA{i:016}");
            cache.signing_key(&c, "s");
        }
        assert!(lock(&cache.signing).len() <= KEY_CACHE_MAX);
    }

    #[test]
    fn answers_carry_the_cloud_clock_as_an_http_date() {
        let d = http_date(1_796_214_126).unwrap();
        assert_eq!(d.to_str().unwrap(), "Wed, 02 Dec 2026 12:22:06 GMT");
        let back = jiff::fmt::rfc2822::DateTimeParser::new()
            .parse_timestamp(d.to_str().unwrap())
            .unwrap();
        assert_eq!(back.as_second(), 1_796_214_126);
    }

    #[test]
    fn cached_user_secrets_follow_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let world = crate::world::parse(
            "t.toml",
            "[[aws_account]]\nid = \"111111111111\"\n[[aws_user]]\naccount = \"111111111111\"\nname = \"dev\"\n",
        )
        .unwrap();
        let (cloud, _) = Cloud::open(
            dir.path(),
            &dir.path().join("master.key"),
            Some(&world),
            Arc::new(ManualClock::at_secs(1_700_000_000)),
        )
        .unwrap();
        let aws = Aws::new(Arc::new(cloud)).unwrap();
        let key = aws
            .cloud
            .store
            .read()
            .aws
            .keys
            .values()
            .next()
            .cloned()
            .unwrap();
        let first = aws.user_key_secret(&key.id).unwrap();
        assert_eq!(aws.user_key_secret(&key.id).unwrap(), first);
        let put = |k: model::AccessKey| {
            aws.cloud
                .store
                .write(|_| {
                    Ok::<_, crate::store::StoreError>((
                        vec![Change::PutAws(model::AwsDoc::Key(k))],
                        (),
                    ))
                })
                .unwrap()
        };
        // Deactivated: refused although its secret is cached.
        put(model::AccessKey {
            status: "Inactive".into(),
            ..key.clone()
        });
        assert!(aws.user_key_secret(&key.id).is_none());
        // A new secret under the same id: the new one, not the cached one.
        let sealed = aws
            .cloud
            .store
            .master
            .seal(
                format!("aws-key:{}", key.id).as_bytes(),
                b"a-brand-new-secret",
            )
            .unwrap();
        put(model::AccessKey {
            sealed_secret: STANDARD.encode(sealed),
            ..key.clone()
        });
        assert_eq!(
            aws.user_key_secret(&key.id).unwrap().as_str(),
            "a-brand-new-secret"
        );
    }
}
