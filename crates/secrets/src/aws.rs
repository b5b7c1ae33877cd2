//! AWS Secrets Manager's GetSecretValue (JSON 1.1: `POST /`,
//! `X-Amz-Target: secretsmanager.GetSecretValue`), signed with SigV4 by the
//! `aws-sigv4` crate, and STS GetCallerIdentity for `whoami`. SecretString comes
//! back as its bytes, SecretBinary base64-decoded. Errors are classified by
//! `__type` so the user learns whether IAM, the secret, KMS or the credentials
//! are at fault; throttling, 5xx and connection failures are retried with
//! jittered backoff inside the fetcher's deadline.

use crate::{FetchError, Fetcher};
use aws_sigv4::http_request::SigningSettings;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_auth::AwsCredentials;
pub use keyway_auth::aws::signature;
use keyway_core::{Reference, Secret};
use keyway_wire::aws::JsonError;
use keyway_wire::aws::secretsmanager::{GetSecretValueRequest, GetSecretValueResponse};
use std::time::{Duration, Instant, SystemTime};
use zeroize::Zeroize;

/// Signs a request in place: adds `x-amz-date`, `x-amz-security-token` (for
/// temporary credentials) and `authorization`. The one signing path keyway uses.
pub fn sign_request(
    req: &mut http::Request<Vec<u8>>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<(), String> {
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let (added, _) = signature(
        req.method().as_str(),
        &uri,
        &headers,
        req.body(),
        creds,
        region,
        service,
        time,
        settings,
    )?;
    for (k, v) in added {
        let name = http::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|e| format!("signing produced a bad header name: {e}"))?;
        let mut value = http::HeaderValue::from_str(&v)
            .map_err(|_| format!("signing produced a bad value for {k}"))?;
        value.set_sensitive(k != "x-amz-date");
        req.headers_mut().insert(name, value);
    }
    Ok(())
}

/// `https://{service}.{region}.amazonaws.com`, or the endpoint the environment
/// names (AWS_ENDPOINT_URL_{SERVICE}, then AWS_ENDPOINT_URL). No trailing '/'.
pub fn endpoint(env: &keyway_core::Env, service_env: &str, service: &str, region: &str) -> String {
    env.non_empty(&format!("AWS_ENDPOINT_URL_{service_env}"))
        .or(env.non_empty("AWS_ENDPOINT_URL"))
        .map(|u| u.trim_end_matches('/').to_owned())
        .unwrap_or_else(|| format!("https://{service}.{region}.amazonaws.com"))
}

pub async fn get_secret_value(f: &Fetcher, r: &Reference) -> Result<Secret<Vec<u8>>, FetchError> {
    call_get_secret_value(f, r, decode).await
}

/// GetSecretValue's whole answer (the JSON body AWS sent: ARN, Name,
/// VersionId, SecretString or SecretBinary, VersionStages, CreatedDate), for
/// callers that hand it on as it is (the broker's Secrets Manager
/// Agent-compatible API). Failures are classified as for [`get_secret_value`].
pub async fn get_secret_value_response(
    f: &Fetcher,
    r: &Reference,
) -> Result<Secret<Vec<u8>>, FetchError> {
    call_get_secret_value(f, r, |body, reference| {
        serde_json::from_slice::<serde::de::IgnoredAny>(body).map_err(|_| FetchError::Corrupt {
            reference: reference.to_owned(),
            reason: "the response is not a GetSecretValue response".into(),
        })?;
        Ok(Secret::new(body.to_vec()))
    })
    .await
}

/// A 200 answer's body, turned into what the caller wants.
type Decode = fn(&[u8], &str) -> Result<Secret<Vec<u8>>, FetchError>;

async fn call_get_secret_value(
    f: &Fetcher,
    r: &Reference,
    decode: Decode,
) -> Result<Secret<Vec<u8>>, FetchError> {
    let Reference::AwsSecretsManager {
        region,
        secret_id,
        version_stage,
        version_id,
        ..
    } = r
    else {
        return Err(FetchError::Internal("not an AWS reference".into()));
    };
    let reference = r.to_string();
    let provider = f.aws.as_ref().ok_or_else(|| FetchError::NoAwsCredentials {
        reference: reference.clone(),
    })?;
    let region = region
        .clone()
        .or_else(|| provider.region().map(|(r, _)| r.to_owned()))
        .ok_or_else(|| FetchError::AwsNoRegion {
            reference: reference.clone(),
        })?;
    let url = endpoint(&f.env, "SECRETSMANAGER", "secretsmanager", &region);
    let body = serde_json::to_vec(&GetSecretValueRequest {
        secret_id: secret_id.clone(),
        version_id: version_id.clone(),
        version_stage: version_stage.clone(),
    })
    .map_err(|e| FetchError::Internal(e.to_string()))?;
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let creds = provider
            .credentials()
            .await
            .map_err(|e| FetchError::AwsCredentials {
                reference: reference.clone(),
                message: e.to_string(),
            })?;
        let left = f.deadline.saturating_sub(start.elapsed());
        match once(f, &url, &region, &reference, &creds, &body, left, decode).await {
            Err(e) if e.is_transient() => {
                let backoff = Duration::from_millis(50) * 2u32.saturating_pow(attempt.min(8) - 1);
                let backoff = backoff.mul_f64(rand::random::<f64>());
                if start.elapsed() + backoff >= f.deadline || attempt >= 6 {
                    return Err(e);
                }
                tracing::debug!(%reference, attempt, error = %e, "transient failure, retrying");
                tokio::time::sleep(backoff).await;
            }
            other => return other,
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn once(
    f: &Fetcher,
    url: &str,
    region: &str,
    reference: &str,
    creds: &AwsCredentials,
    body: &[u8],
    left: Duration,
    decode: Decode,
) -> Result<Secret<Vec<u8>>, FetchError> {
    let unreachable = |reason: String| FetchError::Unreachable {
        reference: reference.to_owned(),
        url: url.to_owned(),
        reason,
    };
    if left.is_zero() {
        return Err(unreachable("no time left before the deadline".into()));
    }
    let (status, resp) = signed_post(
        f,
        url,
        region,
        "secretsmanager",
        creds,
        "application/x-amz-json-1.1",
        Some("secretsmanager.GetSecretValue"),
        body,
        left,
    )
    .await
    .map_err(unreachable)?;
    if status == 200 {
        let out = decode(&resp, reference);
        let mut resp = resp;
        resp.zeroize();
        return out;
    }
    Err(classify(reference, url, status, &resp))
}

/// A signed POST; the status and body.
#[allow(clippy::too_many_arguments)]
async fn signed_post(
    f: &Fetcher,
    url: &str,
    region: &str,
    service: &str,
    creds: &AwsCredentials,
    content_type: &str,
    target: Option<&str>,
    body: &[u8],
    left: Duration,
) -> Result<(u16, Vec<u8>), String> {
    let mut b = http::Request::builder()
        .method("POST")
        .uri(url)
        .header("content-type", content_type);
    if let Some(t) = target {
        b = b.header("x-amz-target", t);
    }
    let mut req = b
        .body(body.to_vec())
        .map_err(|e| format!("building the request: {e}"))?;
    sign_request(
        &mut req,
        creds,
        region,
        service,
        SystemTime::now(),
        SigningSettings::default(),
    )?;
    let (parts, body) = req.into_parts();
    let resp = f
        .http
        .post(url)
        .headers(parts.headers)
        .body(body)
        .timeout(left)
        .send()
        .await
        .map_err(|e| describe(&e))?;
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.map_err(|e| describe(&e))?;
    Ok((status, bytes.to_vec()))
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut src: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

fn decode(body: &[u8], reference: &str) -> Result<Secret<Vec<u8>>, FetchError> {
    let corrupt = |reason: &str| FetchError::Corrupt {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    let mut resp: GetSecretValueResponse = serde_json::from_slice(body)
        .map_err(|_| corrupt("the response is not a GetSecretValue response"))?;
    match (resp.secret_string.take(), resp.secret_binary.take()) {
        (Some(s), _) => Ok(Secret::new(s.into_bytes())),
        (None, Some(mut b)) => {
            let d = STANDARD
                .decode(b.trim())
                .map_err(|_| corrupt("SecretBinary is not base64"));
            b.zeroize();
            d.map(Secret::new)
        }
        (None, None) => Err(corrupt(
            "the response has neither SecretString nor SecretBinary",
        )),
    }
}

/// Classifies an error answer by its `__type` (`com.amazonaws...#AccessDeniedException` or bare).
pub fn classify(reference: &str, url: &str, status: u16, body: &[u8]) -> FetchError {
    let parsed: Option<JsonError> = serde_json::from_slice(body).ok();
    let reference = reference.to_owned();
    let (kind, message) = match &parsed {
        Some(e) => (
            e.type_.rsplit('#').next().unwrap_or("").to_owned(),
            e.message.clone(),
        ),
        None => (
            String::new(),
            String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
        ),
    };
    match kind.as_str() {
        "AccessDeniedException" => {
            let (principal, action, resource) = parse_denial(&message);
            FetchError::AwsAccessDenied {
                reference,
                principal,
                action,
                resource,
                message,
            }
        }
        "ResourceNotFoundException" => FetchError::NotFound {
            reference,
            message,
            code: "ResourceNotFoundException",
        },
        "DecryptionFailure" => FetchError::AwsDecryption { reference, message },
        "InvalidRequestException" => FetchError::AwsInvalidRequest { reference, message },
        "UnrecognizedClientException"
        | "InvalidSignatureException"
        | "ExpiredTokenException"
        | "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "ExpiredToken" => FetchError::AwsCredentials {
            reference,
            message: format!("{kind}: {message}"),
        },
        "ThrottlingException"
        | "InternalServiceError"
        | "InternalFailure"
        | "ServiceUnavailable" => FetchError::Rejected {
            reference,
            url: url.to_owned(),
            status: if status < 500 { 429 } else { status },
            message,
        },
        _ => FetchError::Rejected {
            reference,
            url: url.to_owned(),
            status,
            message: if kind.is_empty() {
                message
            } else {
                format!("{kind}: {message}")
            },
        },
    }
}

/// "User: P is not authorized to perform: A on resource: R because ..." → (P, A, R).
fn parse_denial(m: &str) -> (Option<String>, Option<String>, Option<String>) {
    let word = |after: &str| {
        m.split_once(after)
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(|w| w.trim_end_matches([',', '.']).to_owned())
    };
    (word("User: "), word("perform: "), word("resource: "))
}

/// STS GetCallerIdentity: (account, arn, user id).
pub async fn caller_identity(
    http: &reqwest::Client,
    env: &keyway_core::Env,
    creds: &AwsCredentials,
    region: &str,
) -> Result<(String, String, String), String> {
    let f = Fetcher {
        aws: None,
        ..Fetcher::new(http.clone(), env)
    };
    let url = endpoint(env, "STS", "sts", region);
    let body = b"Action=GetCallerIdentity&Version=2011-06-15";
    let (status, resp) = signed_post(
        &f,
        &url,
        region,
        "sts",
        creds,
        "application/x-www-form-urlencoded; charset=utf-8",
        None,
        body,
        Duration::from_secs(10),
    )
    .await?;
    let text = String::from_utf8_lossy(&resp).into_owned();
    let tag = |t: &str| {
        text.split_once(&format!("<{t}>"))
            .and_then(|(_, r)| r.split_once(&format!("</{t}>")))
            .map(|(v, _)| v.trim().to_owned())
    };
    if status != 200 {
        return Err(format!(
            "{url} answered {status}: {} {}",
            tag("Code").unwrap_or_default(),
            tag("Message").unwrap_or_default()
        ));
    }
    match (tag("Account"), tag("Arn"), tag("UserId")) {
        (Some(a), Some(arn), Some(u)) => Ok((a, arn, u)),
        _ => Err(format!(
            "{url} sent an unexpected GetCallerIdentity response"
        )),
    }
}

#[cfg(test)]
mod tests;
