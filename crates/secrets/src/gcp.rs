//! Secret Manager's `versions/{v}:access` over REST, with the payload's CRC32C
//! verified and transient failures (429, 5xx, connection errors) retried with
//! jittered exponential backoff inside the fetcher's deadline.

use crate::{FetchError, Fetcher};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_core::{Reference, Secret};
use keyway_wire::google::GoogleError;
use keyway_wire::google::error::reason;
use keyway_wire::google::secretmanager::AccessSecretVersionResponse;
use std::time::{Duration, Instant};
use zeroize::Zeroize;

pub async fn access(
    f: &Fetcher,
    r: &Reference,
    token: &Secret<String>,
) -> Result<Secret<Vec<u8>>, FetchError> {
    let Reference::GcpSecretManager {
        project,
        secret,
        version,
    } = r
    else {
        return Err(FetchError::Internal("not a Google reference".into()));
    };
    let url = format!(
        "{}v1/projects/{project}/secrets/{secret}/versions/{version}:access",
        f.secretmanager
    );
    let reference = r.to_string();
    let start = Instant::now();
    let mut attempt = 0u32;
    loop {
        attempt += 1;
        let left = f.deadline.saturating_sub(start.elapsed());
        let result = once(f, &url, &reference, token, left).await;
        match result {
            Err(e) if e.is_transient() => {
                let backoff =
                    jitter(Duration::from_millis(50) * 2u32.saturating_pow(attempt.min(8) - 1));
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

fn jitter(max: Duration) -> Duration {
    max.mul_f64(rand::random::<f64>())
}

async fn once(
    f: &Fetcher,
    url: &str,
    reference: &str,
    token: &Secret<String>,
    left: Duration,
) -> Result<Secret<Vec<u8>>, FetchError> {
    let unreachable = |reason: String| FetchError::Unreachable {
        reference: reference.to_owned(),
        url: url.to_owned(),
        reason,
    };
    if left.is_zero() {
        return Err(unreachable("no time left before the deadline".into()));
    }
    let resp = f
        .http
        .get(url)
        .bearer_auth(token.expose())
        .timeout(left)
        .send()
        .await
        .map_err(|e| unreachable(describe(&e)))?;
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map_err(|e| unreachable(describe(&e)))?;
    if status == 200 {
        let out = decode(&body, reference);
        wipe(body);
        return out;
    }
    Err(classify(reference, url, status, &body))
}

fn wipe(b: bytes::Bytes) {
    if let Ok(mut m) = b.try_into_mut() {
        m.as_mut().zeroize();
    }
}

/// reqwest's error Display includes the URL (never a secret here) and the cause.
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
    let mut resp: AccessSecretVersionResponse = serde_json::from_slice(body)
        .map_err(|_| corrupt("the response is not an AccessSecretVersionResponse"))?;
    let data = STANDARD
        .decode(resp.payload.data.trim())
        .map_err(|_| corrupt("payload.data is not base64"));
    resp.payload.data.zeroize();
    let data = Secret::new(data?);
    if let Some(crc) = resp.payload.data_crc32c
        && crc32c::crc32c(data.expose()) as i64 != crc
    {
        return Err(corrupt(
            "the payload's CRC32C does not match payload.dataCrc32c: it was damaged in transit",
        ));
    }
    Ok(data)
}

fn classify(reference: &str, url: &str, status: u16, body: &[u8]) -> FetchError {
    let parsed: Option<GoogleError> = serde_json::from_slice(body).ok();
    let message = parsed
        .as_ref()
        .map(|e| e.error.message.clone())
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let reference = reference.to_owned();
    let rpc_status = parsed
        .as_ref()
        .map(|e| e.error.status.as_str())
        .unwrap_or("");
    let why = parsed.as_ref().and_then(|e| e.reason());
    match (status, why) {
        (403, Some(reason::SCOPE_INSUFFICIENT)) => FetchError::InsufficientScopes { reference },
        (403, _) if message.contains("insufficient authentication scopes") => {
            FetchError::InsufficientScopes { reference }
        }
        (403, _)
            if message.starts_with("Permission '")
                || why == Some(reason::IAM_PERMISSION_DENIED) =>
        {
            let permission = parsed
                .as_ref()
                .and_then(|e| e.metadata("permission"))
                .map(str::to_owned)
                .or_else(|| message.split('\'').nth(1).map(str::to_owned))
                .unwrap_or_else(|| "secretmanager.versions.access".into());
            FetchError::PermissionDenied {
                reference,
                permission,
                message,
            }
        }
        (401, _) => FetchError::Unauthenticated { reference, message },
        (404, _) => FetchError::NotFound {
            reference,
            message,
            code: "404 NOT_FOUND",
        },
        (400, _) if rpc_status == "FAILED_PRECONDITION" => {
            FetchError::NotEnabled { reference, message }
        }
        _ => FetchError::Rejected {
            reference,
            url: url.to_owned(),
            status,
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_googles_signals() {
        let scope = br#"{"error":{"code":403,"message":"Request had insufficient authentication scopes.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"ACCESS_TOKEN_SCOPE_INSUFFICIENT","domain":"googleapis.com"}]}}"#;
        assert!(matches!(
            classify("r", "u", 403, scope),
            FetchError::InsufficientScopes { .. }
        ));
        let iam = br#"{"error":{"code":403,"message":"Permission 'secretmanager.versions.access' denied for resource 'projects/p/secrets/s/versions/latest' (or it may not exist).","status":"PERMISSION_DENIED"}}"#;
        match classify("r", "u", 403, iam) {
            FetchError::PermissionDenied { permission, .. } => {
                assert_eq!(permission, "secretmanager.versions.access")
            }
            other => panic!("{other:?}"),
        }
        let nf = br#"{"error":{"code":404,"message":"Secret [projects/1/secrets/s] not found or has no versions.","status":"NOT_FOUND"}}"#;
        assert!(matches!(
            classify("r", "u", 404, nf),
            FetchError::NotFound { .. }
        ));
        let dis = br#"{"error":{"code":400,"message":"Secret Version [x] is in DISABLED state.","status":"FAILED_PRECONDITION"}}"#;
        assert!(matches!(
            classify("r", "u", 400, dis),
            FetchError::NotEnabled { .. }
        ));
        assert!(classify("r", "u", 503, b"<html>oops</html>").is_transient());
        assert!(!classify("r", "u", 400, b"{}").is_transient());
    }

    #[test]
    fn crc_mismatch_is_caught() {
        let ok = format!(
            r#"{{"name":"n","payload":{{"data":"aGk=","dataCrc32c":"{}"}}}}"#,
            crc32c::crc32c(b"hi")
        );
        assert_eq!(decode(ok.as_bytes(), "r").unwrap().expose(), b"hi");
        let bad = r#"{"name":"n","payload":{"data":"aGk=","dataCrc32c":"1"}}"#;
        assert!(matches!(
            decode(bad.as_bytes(), "r"),
            Err(FetchError::Corrupt { .. })
        ));
    }
}
