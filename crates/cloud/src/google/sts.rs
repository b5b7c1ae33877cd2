//! Google's Security Token Service (`POST /v1/token`, RFC 8693 token exchange),
//! the server half of Workload Identity Federation: a workload presents a
//! credential of its own platform (an AWS-signed GetCallerIdentity request, or
//! an OIDC ID token) with the provider's resource name as `audience`; STS
//! verifies it, maps it through the provider's attribute mapping, applies the
//! attribute condition, and answers with a federated access token for
//! `principal://iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/subject/SUBJECT`.
//!
//! Errors are RFC 6749 bodies (`{"error": "invalid_grant", "error_description": …}`),
//! with Google's descriptions where they are known.

use super::attributes;
use super::{Reply, Req, ok_json};
use crate::cloud::Cloud;
use crate::iam::Federated;
use crate::jwt;
use crate::store::{WiProvider, WiTrust};
use axum::response::{IntoResponse, Response};
use keyway_wire::google::sts::{self as wire, AwsSubjectToken, StsTokenResponse};
use serde_json::{Value, json};
use std::sync::Arc;

/// Google limits a mapped `google.subject` to 127 bytes.
const MAX_SUBJECT_BYTES: usize = 127;
/// An OIDC ID token may be valid for at most this long (Google: 24 hours).
const MAX_ID_TOKEN_LIFETIME: i64 = 24 * 3600;
const SKEW: i64 = 300;

/// An RFC 6749 error.
#[derive(Debug)]
pub struct StsError {
    pub status: u16,
    pub error: &'static str,
    pub description: String,
}

fn e(status: u16, error: &'static str, description: impl Into<String>) -> StsError {
    StsError {
        status,
        error,
        description: description.into(),
    }
}

fn invalid_grant(d: impl Into<String>) -> StsError {
    e(400, "invalid_grant", d)
}

fn invalid_request(d: impl Into<String>) -> StsError {
    e(400, "invalid_request", d)
}

fn invalid_target() -> StsError {
    e(
        400,
        "invalid_target",
        "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
    )
}

impl IntoResponse for StsError {
    fn into_response(self) -> Response {
        super::oauth2::oauth_error(self.status, self.error, &self.description)
    }
}

/// The fields of a token-exchange request: a form body (as every client sends
/// it) or a JSON body with snake_case or camelCase names.
fn fields(req: &Req) -> Vec<(String, String)> {
    super::oauth2::json_fields(req, |k, v| {
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(|x| x.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            Value::Object(_) => v.to_string(),
            _ => return None,
        };
        Some((snake(k), v))
    })
    .unwrap_or_else(|| form_urlencoded::parse(&req.body).into_owned().collect())
}

fn snake(k: &str) -> String {
    let mut s = String::with_capacity(k.len() + 4);
    for c in k.chars() {
        if c.is_ascii_uppercase() {
            s.push('_');
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A provider named by an audience
/// (`//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/ID`),
/// with the project's number.
#[derive(Debug, Clone)]
pub struct Target {
    pub number: u64,
    pub provider: WiProvider,
}

impl Target {
    /// `projects/N/locations/global/workloadIdentityPools/POOL`.
    pub fn pool_name(&self) -> String {
        format!(
            "projects/{}/locations/global/workloadIdentityPools/{}",
            self.number, self.provider.pool
        )
    }

    /// `//iam.googleapis.com/projects/N/locations/global/workloadIdentityPools/POOL/providers/ID`.
    pub fn audience(&self) -> String {
        format!(
            "{}{}/providers/{}",
            crate::iam::IAM_HOST,
            self.pool_name(),
            self.provider.id
        )
    }
}

/// Finds the enabled provider an audience names; `None` when it does not
/// parse, does not exist, or it or its pool is disabled (one answer for all, as Google gives).
pub fn resolve_target(cloud: &Cloud, audience: &str) -> Option<Target> {
    let rest = audience
        .strip_prefix("https:")
        .unwrap_or(audience)
        .strip_prefix(crate::iam::IAM_HOST)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [
        "projects",
        project,
        "locations",
        "global",
        "workloadIdentityPools",
        pool,
        "providers",
        id,
    ] = parts.as_slice()
    else {
        return None;
    };
    let st = cloud.store.read();
    let p = st.project(project)?;
    let pool_doc = st.wi_pools.get(&crate::store::WiPool::key(&p.id, pool))?;
    let provider = st.wi_providers.get(&WiProvider::key(&p.id, pool, id))?;
    if pool_doc.disabled || provider.disabled {
        return None;
    }
    Some(Target {
        number: p.number,
        provider: provider.clone(),
    })
}

/// `POST /v1/token`.
pub fn token(cloud: &Arc<Cloud>, req: &Req) -> Reply {
    Ok(match exchange(cloud, req) {
        Ok(r) => ok_json(&r, false),
        Err(err) => {
            tracing::info!(error = err.error, description = %err.description, "sts token exchange refused");
            err.into_response()
        }
    })
}

fn exchange(cloud: &Arc<Cloud>, req: &Req) -> Result<StsTokenResponse, StsError> {
    if req.method != axum::http::Method::POST {
        return Err(e(405, "invalid_request", "The token endpoint takes POST."));
    }
    let f = fields(req);
    let get = |k: &str| {
        f.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    match get("grant_type") {
        Some(wire::GRANT_TOKEN_EXCHANGE) => {}
        Some(other) => {
            return Err(e(
                400,
                "unsupported_grant_type",
                format!(
                    "The grant_type {other} is not supported; use {}.",
                    wire::GRANT_TOKEN_EXCHANGE
                ),
            ));
        }
        None => return Err(invalid_request("Missing required parameter: grant_type")),
    }
    match get("requested_token_type") {
        Some(wire::TOKEN_TYPE_ACCESS_TOKEN) => {}
        Some(other) => {
            return Err(invalid_request(format!(
                "The requested_token_type {other} is not supported; use {}.",
                wire::TOKEN_TYPE_ACCESS_TOKEN
            )));
        }
        None => {
            return Err(invalid_request(
                "Missing required parameter: requested_token_type",
            ));
        }
    }
    let audience =
        get("audience").ok_or_else(|| invalid_request("Missing required parameter: audience"))?;
    let subject_token = get("subject_token")
        .ok_or_else(|| invalid_request("Missing required parameter: subject_token"))?;
    let subject_token_type = get("subject_token_type")
        .ok_or_else(|| invalid_request("Missing required parameter: subject_token_type"))?;
    if let Some(opts) = get("options") {
        let decoded = percent_encoding::percent_decode_str(opts).decode_utf8_lossy();
        let v: Value = serde_json::from_str(opts)
            .or_else(|_| serde_json::from_str(&decoded))
            .map_err(|_| invalid_request("The options parameter is not a JSON object."))?;
        if !v.is_object() {
            return Err(invalid_request(
                "The options parameter is not a JSON object.",
            ));
        }
        // `userProject` names the quota project of workforce pools; workload
        // identity pools bill their own project, so it changes nothing here.
    }
    let target = resolve_target(cloud, audience).ok_or_else(invalid_target)?;
    let assertion = match (&target.provider.trust, subject_token_type) {
        (WiTrust::Aws { account_id }, wire::TOKEN_TYPE_AWS4) => {
            verify_aws(cloud, &target, account_id, subject_token)?
        }
        (
            WiTrust::Oidc {
                issuer_uri,
                allowed_audiences,
                jwks_json,
            },
            wire::TOKEN_TYPE_JWT | wire::TOKEN_TYPE_ID_TOKEN,
        ) => verify_oidc(
            cloud,
            &target,
            issuer_uri,
            allowed_audiences,
            jwks_json.as_deref(),
            subject_token,
        )?,
        (WiTrust::Aws { .. }, other) => {
            return Err(invalid_request(format!(
                "The subject_token_type {other} is not supported by an AWS provider; use {}.",
                wire::TOKEN_TYPE_AWS4
            )));
        }
        (WiTrust::Oidc { .. }, other) => {
            return Err(invalid_request(format!(
                "The subject_token_type {other} is not supported by an OIDC provider; use {} or {}.",
                wire::TOKEN_TYPE_JWT,
                wire::TOKEN_TYPE_ID_TOKEN
            )));
        }
    };
    let mapped = attributes::map_attributes(&target.provider.attribute_mapping, &assertion)
        .map_err(|err| invalid_grant(format!("The attribute mapping of provider {} could not be applied to the credential: {err}", target.audience())))?;
    if mapped.subject.is_empty() {
        return Err(invalid_grant(
            "The mapped attribute google.subject is empty. Either modify your attribute mapping or the incoming assertion to produce a non-empty google.subject.",
        ));
    }
    if mapped.subject.len() > MAX_SUBJECT_BYTES {
        return Err(invalid_grant(format!(
            "The size of mapped attribute google.subject exceeds the {MAX_SUBJECT_BYTES} bytes limit. Either modify your attribute mapping or the incoming assertion to produce a mapped attribute that is less than {MAX_SUBJECT_BYTES} bytes."
        )));
    }
    if let Some(cond) = &target.provider.attribute_condition {
        let holds = attributes::condition_holds(cond, &assertion, &mapped).unwrap_or_else(|err| {
            tracing::info!(%err, "attribute condition did not evaluate; refusing");
            false
        });
        if !holds {
            return Err(e(
                400,
                "unauthorized_client",
                "The given credential is rejected by the attribute condition.",
            ));
        }
    }
    let scopes: Vec<String> = match get("scope") {
        Some(s) => s.split_whitespace().map(str::to_owned).collect(),
        None => vec![crate::world::CLOUD_PLATFORM.to_owned()],
    };
    let fed = Federated {
        pool: target.pool_name(),
        subject: mapped.subject.clone(),
        groups: mapped.groups.clone(),
        attributes: mapped.attributes.clone().into_iter().collect(),
    };
    let life = cloud.token_lifetime().min(3600);
    let access_token = cloud.mint_federated_token(&fed, &scopes, life);
    tracing::info!(principal = %fed.member(), "sts issued a federated token");
    Ok(StsTokenResponse {
        access_token,
        issued_token_type: wire::TOKEN_TYPE_ACCESS_TOKEN.into(),
        token_type: "Bearer".into(),
        expires_in: life,
    })
}

/// Decodes an AWS subject token: JSON, URL-encoded once (Python, Go, Rust
/// clients) or not at all.
pub fn decode_aws_subject_token(token: &str) -> Option<AwsSubjectToken> {
    let t = token.trim();
    if t.starts_with('{') {
        return serde_json::from_str(t).ok();
    }
    let decoded = percent_encoding::percent_decode_str(t).decode_utf8().ok()?;
    serde_json::from_str(decoded.trim()).ok()
}

/// The region of an STS endpoint host: `sts.amazonaws.com` is us-east-1.
fn sts_host_region(host: &str) -> Option<String> {
    let host = host.to_ascii_lowercase();
    if host == "sts.amazonaws.com" {
        return Some("us-east-1".into());
    }
    let region = host.strip_prefix("sts.")?.strip_suffix(".amazonaws.com")?;
    (!region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
    .then(|| region.to_owned())
}

fn aws_refusal(code: &str, message: &str) -> StsError {
    invalid_grant(format!(
        "Received invalid AWS response of type {code} with error message: {message}"
    ))
}

fn verify_aws(
    cloud: &Arc<Cloud>,
    target: &Target,
    account_id: &str,
    subject_token: &str,
) -> Result<Value, StsError> {
    let bad = |what: &str| invalid_request(format!("Invalid AWS subject token: {what}."));
    let t = decode_aws_subject_token(subject_token)
        .ok_or_else(|| bad("it must be the URL-encoded JSON of a signed request ({\"url\", \"method\", \"headers\": [{\"key\", \"value\"}]})"))?;
    let rest = t
        .url
        .strip_prefix("https://")
        .ok_or_else(|| bad("the url must be an https:// URL of AWS STS"))?;
    let (authority, path_query) = match rest.find(['/', '?']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, q),
        None => (path_query, ""),
    };
    let path = if path.is_empty() { "/" } else { path };
    let region = sts_host_region(authority).ok_or_else(|| bad("the url's host is not an AWS STS endpoint (sts.amazonaws.com or sts.REGION.amazonaws.com)"))?;
    let q: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let qget = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    if qget("Action") != Some("GetCallerIdentity") || qget("Version") != Some("2011-06-15") {
        return Err(bad(
            "the request must be sts:GetCallerIdentity (Action=GetCallerIdentity&Version=2011-06-15)",
        ));
    }
    let method = t.method.to_ascii_uppercase();
    if method != "POST" && method != "GET" {
        return Err(bad("the method must be POST or GET"));
    }
    let header = |name: &str| {
        t.headers
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    };
    match header("host") {
        Some(h) if h.eq_ignore_ascii_case(authority) => {}
        Some(_) => return Err(bad("its host header does not match the url's host")),
        None => return Err(bad("it has no host header")),
    }
    let resource = header("x-goog-cloud-target-resource")
        .ok_or_else(|| bad("the x-goog-cloud-target-resource header is missing"))?;
    let names_this_provider = resource == target.audience()
        || resolve_target(cloud, resource).is_some_and(|r| r.audience() == target.audience());
    if !names_this_provider {
        return Err(invalid_grant(format!(
            "The x-goog-cloud-target-resource header of the AWS subject token ({resource}) does not match the audience ({}).",
            target.audience()
        )));
    }
    // AWS refuses a signature scoped to another region than the endpoint's.
    let auth = header("authorization").unwrap_or("");
    if let Some(scope_region) = auth
        .split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        && scope_region != region
    {
        return Err(aws_refusal(
            "SignatureDoesNotMatch",
            &format!("Credential should be scoped to a valid region, not '{scope_region}'. "),
        ));
    }
    let headers: Vec<(String, String)> = t
        .headers
        .iter()
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    let pq = if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    };
    let body = t.body.clone().unwrap_or_default().into_bytes();
    let id =
        crate::aws::federation::get_caller_identity(cloud.clone(), &method, &pq, headers, body)
            .map_err(|err| aws_refusal(&err.code, &err.message))?;
    if id.account != account_id {
        return Err(invalid_grant(format!(
            "The AWS account {} of the caller is not the account {account_id} trusted by provider {}.",
            id.account,
            target.audience()
        )));
    }
    Ok(json!({ "arn": id.arn, "account": id.account, "userid": id.user_id }))
}

/// How Google's STS takes an OIDC subject token: `iat` and `exp` present, at
/// most 24 hours apart, `iat` and `nbf` at most five minutes ahead, not expired.
const OIDC_POLICY: jwt::Policy = jwt::Policy {
    require_iat: true,
    expiry_leeway_secs: 0,
    future_skew_secs: SKEW,
    max_lifetime_secs: Some(MAX_ID_TOKEN_LIFETIME),
};

/// Google's description of a refused ID token.
fn oidc_refusal(err: &jwt::JwtError) -> StsError {
    use jwt::JwtError as J;
    let rfc3339 = |secs: i64| crate::time::rfc3339_seconds(secs.saturating_mul(1000));
    invalid_grant(match err {
        J::NotCompact => {
            "Unable to parse the ID Token: it is not a JWT (three base64url parts).".to_owned()
        }
        J::BadPart(part) => format!("Unable to parse the ID Token {part}."),
        J::Alg(_) => "The ID Token must be signed with RS256.".to_owned(),
        J::UnknownKey { .. } | J::BadSignature => {
            "The ID Token signature could not be verified with the provider's keys (JWKS)."
                .to_owned()
        }
        J::MissingClaim(name) => format!("The ID Token has no {name} claim."),
        J::BadTime(name) => {
            format!("The ID Token's {name} claim is not a NumericDate (seconds since the epoch).")
        }
        J::Expired { exp, now } => format!(
            "The ID Token expired at {} (now {}).",
            rfc3339(*exp),
            rfc3339(*now)
        ),
        J::IssuedInFuture { .. } => "The ID Token was issued in the future (iat).".to_owned(),
        J::NotYetValid { .. } => "The ID Token is not valid yet (nbf).".to_owned(),
        J::ExpiresBeforeIssued { .. } => {
            "The ID Token expires before it was issued (exp is before iat).".to_owned()
        }
        J::LifetimeTooLong { .. } => {
            "The ID Token is valid for more than 24 hours (exp - iat), which is not accepted."
                .to_owned()
        }
    })
}

fn verify_oidc(
    cloud: &Cloud,
    target: &Target,
    issuer: &str,
    allowed: &[String],
    jwks: Option<&str>,
    token: &str,
) -> Result<Value, StsError> {
    let unverified = jwt::decode(token).map_err(|e| oidc_refusal(&e))?;
    let keys = match jwks {
        // A JWKS with no usable key verifies nothing: the signature is refused.
        Some(j) => serde_json::from_str::<Value>(j)
            .ok()
            .and_then(|v| jwt::KeySet::from_jwks(&v).ok())
            .unwrap_or_default(),
        None => jwt::KeySet::of_signer(&cloud.signer),
    };
    let verified = unverified
        .verify(&keys, &OIDC_POLICY, cloud.clock.now_secs())
        .map_err(|e| oidc_refusal(&e))?;
    let iss = verified.str_claim("iss").unwrap_or("");
    if iss != issuer {
        return Err(invalid_grant(format!(
            "The issuer in ID Token {iss} does not match the expected ones: {issuer}."
        )));
    }
    let auds: Vec<&str> = match verified.claims.get("aud") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let expected: Vec<String> = if allowed.is_empty() {
        let a = target.audience();
        vec![format!("https:{a}"), a]
    } else {
        allowed.to_vec()
    };
    if !auds.iter().any(|a| expected.iter().any(|x| x == a)) {
        return Err(invalid_grant(format!(
            "The audience in ID Token [{}] does not match the expected audience.",
            auds.join(", ")
        )));
    }
    Ok(Value::Object(verified.claims))
}
