//! AWS Secrets Manager's GetSecretValue (JSON 1.1: `POST /`,
//! `X-Amz-Target: secretsmanager.GetSecretValue`), signed with SigV4 by the
//! `aws-sigv4` crate at the fetcher's clock, and STS GetCallerIdentity for
//! `whoami`. SecretString comes back as its bytes, SecretBinary base64-decoded.
//! Errors are read by keyway-http's one AWS error reader and classified by
//! their code so the user learns whether IAM, the secret, KMS or the
//! credentials are at fault; requests go through keyway-http (retries inside
//! the fetcher's deadline for transient statuses, the codes the SDKs retry and
//! connection failures; answers capped at what the API can send).

use crate::{FetchError, Fetcher};
use aws_sigv4::http_request::SigningSettings;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_auth::AwsCredentials;
pub use keyway_auth::aws::signature;
use keyway_core::{Clock, Reference, Secret};
use keyway_http::aws::{AwsError, error_of, xml_text};
use keyway_http::{Call, Cap, HttpError, Reply, RetryPolicy, redact_url};
use keyway_wire::aws::secretsmanager::{GetSecretValueRequest, GetSecretValueResponse};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroize;

/// The largest GetSecretValue answer read. SecretString is at most 65,536
/// bytes, which JSON may escape up to six bytes each (`\u0001`); SecretBinary
/// is at most 64 KiB, 87,384 bytes of base64. Plus the ARN, name, version id
/// and stages.
pub const GET_SECRET_VALUE_CAP: Cap = Cap::kib(400);
/// The largest GetCallerIdentity answer read (an ARN, an account, a user id).
pub const CALLER_IDENTITY_CAP: Cap = Cap::kib(64);

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

/// [`get_secret_value`], with the `VersionId` that answered (if the answer has one).
pub async fn get_secret_value_versioned(
    f: &Fetcher,
    r: &Reference,
) -> Result<(Secret<Vec<u8>>, Option<String>), FetchError> {
    let body = get_secret_value_response(f, r).await?;
    decode_versioned(body.expose(), &r.to_string())
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
        let mut checked: GetSecretValueResponse =
            serde_json::from_slice(body).map_err(|_| FetchError::Corrupt {
                reference: reference.to_owned(),
                reason: "the response is not a GetSecretValue response".into(),
            })?;
        checked.secret_string.zeroize();
        checked.secret_binary.zeroize();
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
    let call = Call {
        doing: "calling Secrets Manager GetSecretValue",
        url: &url,
        cap: GET_SECRET_VALUE_CAP,
    };
    let signed = Signed {
        http: &f.http,
        region: &region,
        service: "secretsmanager",
        content_type: "application/x-amz-json-1.1",
        target: Some("secretsmanager.GetSecretValue"),
        body: &body,
        clock: f.clock.as_ref(),
    };
    keyway_http::with_retries(&f.retry, call.doing, &url, |_, timeout| {
        let (reference, url, signed) = (&reference, &url, &signed);
        async move {
            // Fresh for every attempt: the provider refreshes credentials near their expiry.
            let creds = provider
                .credentials()
                .await
                .map_err(|e| FetchError::AwsCredentials {
                    reference: reference.clone(),
                    message: e.to_string(),
                })?;
            let reply = signed
                .post(&call, &creds, timeout)
                .await
                .map_err(|e| match e {
                    PostError::Http(error) => FetchError::Transport {
                        reference: reference.clone(),
                        error,
                    },
                    other => FetchError::Internal(other.to_string()),
                })?;
            // The body is a Secret: zeroised when `reply` drops.
            if reply.status == 200 {
                return decode(reply.body.expose(), reference);
            }
            Err(classify(reference, url, &reply))
        }
    })
    .await
}

/// A request to sign and send with whatever credentials are current.
struct Signed<'a> {
    http: &'a reqwest::Client,
    region: &'a str,
    service: &'a str,
    content_type: &'a str,
    target: Option<&'a str>,
    body: &'a [u8],
    clock: &'a dyn Clock,
}

enum PostError {
    Http(HttpError),
    Signing(String),
    /// A non-200 answer (only where the caller does not classify it itself).
    Refused {
        status: u16,
        error: Option<AwsError>,
    },
}

impl Signed<'_> {
    /// One signed POST through keyway-http; any status is a reply.
    async fn post(
        &self,
        call: &Call<'_>,
        creds: &AwsCredentials,
        timeout: Duration,
    ) -> Result<Reply, PostError> {
        let mut b = http::Request::builder()
            .method("POST")
            .uri(call.url)
            .header("content-type", self.content_type);
        if let Some(t) = self.target {
            b = b.header("x-amz-target", t);
        }
        let mut req = b
            .body(self.body.to_vec())
            .map_err(|e| PostError::Signing(format!("building the request: {e}")))?;
        let millis = self.clock.now_millis().max(0) as u64;
        let time = UNIX_EPOCH + Duration::from_millis(millis);
        sign_request(
            &mut req,
            creds,
            self.region,
            self.service,
            time,
            SigningSettings::default(),
        )
        .map_err(PostError::Signing)?;
        let (parts, body) = req.into_parts();
        let request = self.http.post(call.url).headers(parts.headers).body(body);
        keyway_http::exchange(request, timeout, call)
            .await
            .map_err(PostError::Http)
    }
}

fn decode(body: &[u8], reference: &str) -> Result<Secret<Vec<u8>>, FetchError> {
    decode_versioned(body, reference).map(|(value, _)| value)
}

/// The value of a GetSecretValue answer and its `VersionId` (if not empty).
fn decode_versioned(
    body: &[u8],
    reference: &str,
) -> Result<(Secret<Vec<u8>>, Option<String>), FetchError> {
    let corrupt = |reason: &str| FetchError::Corrupt {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    };
    let mut resp: GetSecretValueResponse = serde_json::from_slice(body)
        .map_err(|_| corrupt("the response is not a GetSecretValue response"))?;
    let version = Some(std::mem::take(&mut resp.version_id)).filter(|v| !v.is_empty());
    let value = match (resp.secret_string.take(), resp.secret_binary.take()) {
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
    };
    value.map(|v| (v, version))
}

/// Classifies an error answer by its code (`__type`, `x-amzn-ErrorType`, or
/// an XML `Code`), as keyway-http's AWS error reader finds it.
pub fn classify(reference: &str, url: &str, reply: &Reply) -> FetchError {
    classify_body(
        reference,
        url,
        reply.status,
        reply.body.expose(),
        reply.header("x-amzn-errortype"),
    )
}

fn classify_body(
    reference: &str,
    url: &str,
    status: u16,
    body: &[u8],
    error_type: Option<&str>,
) -> FetchError {
    let reference = reference.to_owned();
    let url = redact_url(url);
    let AwsError { code, message } = error_of(body, error_type).unwrap_or_else(|| AwsError {
        code: String::new(),
        message: String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    });
    match code.as_str() {
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
            message: format!("{code}: {message}"),
        },
        c if keyway_http::aws::is_transient_code(c) => FetchError::Throttled {
            reference,
            url,
            status,
            code,
            message,
        },
        _ => FetchError::Rejected {
            reference,
            url,
            status,
            message: if code.is_empty() {
                message
            } else {
                format!("{code}: {message}")
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
    clock: &dyn Clock,
    creds: &AwsCredentials,
    region: &str,
) -> Result<(String, String, String), String> {
    let url = endpoint(env, "STS", "sts", region);
    let call = Call {
        doing: "calling STS GetCallerIdentity",
        url: &url,
        cap: CALLER_IDENTITY_CAP,
    };
    let signed = Signed {
        http,
        region,
        service: "sts",
        content_type: "application/x-www-form-urlencoded; charset=utf-8",
        target: None,
        body: b"Action=GetCallerIdentity&Version=2011-06-15",
        clock,
    };
    let policy = RetryPolicy::with_deadline(Duration::from_secs(10));
    let reply = keyway_http::with_retries(&policy, call.doing, &url, |_, timeout| {
        let signed = &signed;
        async move {
            let reply = signed.post(&call, creds, timeout).await?;
            if reply.status != 200 {
                return Err(PostError::Refused {
                    status: reply.status,
                    error: error_of(reply.body.expose(), reply.header("x-amzn-errortype")),
                });
            }
            Ok(reply)
        }
    })
    .await
    .map_err(|e| match e {
        PostError::Refused { status, error } => format!(
            "{} answered {status}: {}",
            redact_url(&url),
            error
                .map(|e| format!("{} {}", e.code, e.message))
                .unwrap_or_default()
        ),
        other => other.to_string(),
    })?;
    let text = String::from_utf8_lossy(reply.body.expose()).into_owned();
    match (
        xml_text(&text, "Account"),
        xml_text(&text, "Arn"),
        xml_text(&text, "UserId"),
    ) {
        (Some(a), Some(arn), Some(u)) => Ok((a, arn, u)),
        _ => Err(format!(
            "{} sent an unexpected GetCallerIdentity response",
            redact_url(&url)
        )),
    }
}

impl keyway_http::Transient for PostError {
    fn is_transient(&self) -> bool {
        match self {
            PostError::Http(e) => e.is_transient(),
            PostError::Signing(_) => false,
            PostError::Refused { status, error } => {
                keyway_http::is_transient_status(*status)
                    || error.as_ref().is_some_and(AwsError::is_transient)
            }
        }
    }
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Http(e) => e.fmt(f),
            PostError::Signing(m) => f.write_str(m),
            PostError::Refused { status, error } => match error {
                Some(e) => write!(f, "answered {status}: {} {}", e.code, e.message),
                None => write!(f, "answered {status}"),
            },
        }
    }
}

#[cfg(test)]
mod tests;
