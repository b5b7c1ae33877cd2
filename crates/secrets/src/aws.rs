//! AWS Secrets Manager's GetSecretValue (JSON 1.1: `POST /`,
//! `X-Amz-Target: secretsmanager.GetSecretValue`), signed with SigV4 by the
//! `aws-sigv4` crate at the fetcher's clock. SecretString comes back as its
//! bytes, SecretBinary base64-decoded. Errors are read by keyway-http's one
//! AWS error reader and classified by their typed code so the user learns
//! whether IAM, the secret, KMS or the credentials are at fault (a refused
//! signature keeps AWS's `Date` beside the time keyway signed at, so a clock
//! far off is a fact); requests go through keyway-http (retries inside the
//! fetcher's deadline for transient statuses, the codes the SDKs retry,
//! connection failures, and transient failures of the credential chain;
//! answers capped at what the API can send). Who the credentials are (STS
//! GetCallerIdentity) is keyway-auth's.

use crate::{FetchError, Fetcher};
use aws_sigv4::http_request::SigningSettings;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_auth::AwsCredentials;
pub use keyway_auth::aws::signature;
use keyway_auth::aws::{AwsService, Rejection, SigningError};
use keyway_core::vars;
use keyway_core::{Clock, Reference, Secret};
use keyway_http::aws::{AwsError, AwsErrorCode, AwsErrorKind, error_of};
use keyway_http::{Call, Cap, HttpError, Reply, redact_url};
use keyway_wire::aws::secretsmanager::{GetSecretValueRequest, GetSecretValueResponse};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroize;

/// The largest GetSecretValue answer read. SecretString is at most 65,536
/// bytes, which JSON may escape up to six bytes each (`\u0001`); SecretBinary
/// is at most 64 KiB, 87,384 bytes of base64. Plus the ARN, name, version id
/// and stages.
pub const GET_SECRET_VALUE_CAP: Cap = Cap::kib(400);

/// Signs a request in place: adds `x-amz-date`, `x-amz-security-token` (for
/// temporary credentials) and `authorization`. The one signing path keyway uses.
pub fn sign_request(
    req: &mut http::Request<Vec<u8>>,
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<(), SigningError> {
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
        let name = http::header::HeaderName::from_bytes(k.as_bytes()).map_err(|e| {
            SigningError::Signing(format!("signing produced a bad header name: {e}"))
        })?;
        let mut value = http::HeaderValue::from_str(&v)
            .map_err(|_| SigningError::Signing(format!("signing produced a bad value for {k}")))?;
        value.set_sensitive(k != "x-amz-date");
        req.headers_mut().insert(name, value);
    }
    Ok(())
}

/// `https://{service}.{region}.amazonaws.com`, or the endpoint the environment
/// names (AWS_ENDPOINT_URL_{SERVICE}, then AWS_ENDPOINT_URL). No trailing '/'.
pub fn endpoint(env: &keyway_core::Env, service_env: &str, service: &str, region: &str) -> String {
    env.non_empty(&format!("AWS_ENDPOINT_URL_{service_env}"))
        .or(env.non_empty(vars::AWS_ENDPOINT_URL))
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
            // A transient failure of the chain (IMDS or the ECS agent briefly
            // down at a refresh) is retried like any other.
            let creds =
                provider
                    .credentials()
                    .await
                    .map_err(|error| FetchError::AwsCredentials {
                        reference: reference.clone(),
                        error,
                    })?;
            let (reply, signed_at) =
                signed
                    .post(&call, &creds, timeout)
                    .await
                    .map_err(|e| match e {
                        PostError::Http(error) => FetchError::Transport {
                            reference: reference.clone(),
                            error,
                        },
                        PostError::Signing(e) => FetchError::Internal(e.to_string()),
                    })?;
            // The body is a Secret: zeroised when `reply` drops.
            if reply.status == 200 {
                return decode(reply.body.expose(), reference);
            }
            let source = provider.source().kind;
            Err(classify(reference, url, &reply, source, signed_at))
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
    Signing(SigningError),
}

impl Signed<'_> {
    /// One signed POST through keyway-http; any status is a reply, returned
    /// with the unix second it was signed at.
    async fn post(
        &self,
        call: &Call<'_>,
        creds: &AwsCredentials,
        timeout: Duration,
    ) -> Result<(Reply, i64), PostError> {
        let mut b = http::Request::builder()
            .method("POST")
            .uri(call.url)
            .header("content-type", self.content_type);
        if let Some(t) = self.target {
            b = b.header("x-amz-target", t);
        }
        let mut req = b.body(self.body.to_vec()).map_err(|e| {
            PostError::Signing(SigningError::Request(format!("building the request: {e}")))
        })?;
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
        let reply = keyway_http::exchange(request, timeout, call)
            .await
            .map_err(PostError::Http)?;
        Ok((reply, (millis / 1000) as i64))
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

/// Classifies an error answer by its typed code (`__type`,
/// `x-amzn-ErrorType`, or an XML `Code`), as keyway-http's AWS error reader
/// finds it. `source` is where the credentials came from and `signed_at`
/// when the request was signed (for a refused signature).
pub fn classify(
    reference: &str,
    url: &str,
    reply: &Reply,
    source: keyway_auth::AwsSourceKind,
    signed_at: i64,
) -> FetchError {
    let reference = reference.to_owned();
    let url = redact_url(url);
    let AwsError { code, message } =
        error_of(reply.body.expose(), reply.header("x-amzn-errortype")).unwrap_or_else(|| {
            AwsError {
                code: AwsErrorCode::Other(String::new()),
                message: String::from_utf8_lossy(&reply.body.expose()[..reply.body.len().min(200)])
                    .into_owned(),
            }
        });
    match code.kind() {
        AwsErrorKind::AccessDenied => FetchError::AwsAccessDenied { reference, message },
        AwsErrorKind::NotFound => FetchError::NotFound {
            reference,
            message,
            code: "ResourceNotFoundException",
        },
        AwsErrorKind::Decryption => FetchError::AwsDecryption { reference, message },
        AwsErrorKind::InvalidRequest if code == AwsErrorCode::InvalidRequestException => {
            FetchError::AwsInvalidRequest { reference, message }
        }
        AwsErrorKind::ExpiredCredentials
        | AwsErrorKind::UnknownCredentials
        | AwsErrorKind::BadSignature => FetchError::AwsRefused {
            reference,
            rejection: Box::new(Rejection {
                source,
                service: AwsService::SecretsManager,
                url,
                status: reply.status,
                code,
                message,
                role_arn: None,
                presented: None,
                signed_at: Some(signed_at),
                server_time: reply.date(),
            }),
        },
        AwsErrorKind::Transient => FetchError::Throttled {
            reference,
            url,
            status: reply.status,
            code: code.as_str().to_owned(),
            message,
        },
        _ => FetchError::Rejected {
            reference,
            url,
            status: reply.status,
            message: if code.is_empty() {
                message
            } else {
                format!("{code}: {message}")
            },
        },
    }
}

impl std::fmt::Display for PostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PostError::Http(e) => e.fmt(f),
            PostError::Signing(e) => e.fmt(f),
        }
    }
}

#[cfg(test)]
mod tests;
