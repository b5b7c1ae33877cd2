//! Secret Manager's `versions/{v}:access` over REST, with the payload's CRC32C
//! verified, through keyway-http: transient failures (408, 429, 5xx, connection
//! errors, timeouts) retried inside the fetcher's deadline, and the answer
//! capped at what Secret Manager can send ([`ACCESS_CAP`]).

use crate::{FetchError, Fetcher};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keyway_core::{Reference, Secret};
use keyway_http::google::{ErrorReason, GoogleErrorBody, RpcStatus};
use keyway_http::{Call, Cap, redact_url};
use keyway_wire::google::secretmanager::AccessSecretVersionResponse;
use zeroize::Zeroize;

/// The largest `:access` answer read. A payload is at most 64 KiB, which is
/// 87,384 bytes of base64; a JSON encoder may escape each `/` of it as `\/`,
/// so at worst twice that, plus the version's name and checksum.
pub const ACCESS_CAP: Cap = Cap::kib(192);

pub async fn access(
    f: &Fetcher,
    r: &Reference,
    token: &Secret<String>,
) -> Result<Secret<Vec<u8>>, FetchError> {
    access_versioned(f, r, token).await.map(|(value, _)| value)
}

/// [`access`], with the version that answered: the last segment of the
/// accessed version's `name` (`latest` resolved to its number), if present.
pub async fn access_versioned(
    f: &Fetcher,
    r: &Reference,
    token: &Secret<String>,
) -> Result<(Secret<Vec<u8>>, Option<String>), FetchError> {
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
    let call = Call {
        doing: "accessing the secret version",
        url: &url,
        cap: ACCESS_CAP,
    };
    keyway_http::with_retries(&f.retry, call.doing, &url, |_, timeout| {
        let request = f.http.get(url.as_str()).bearer_auth(token.expose());
        let (reference, url) = (&reference, &url);
        async move {
            let reply = keyway_http::exchange(request, timeout, &call)
                .await
                .map_err(|error| FetchError::Transport {
                    reference: reference.clone(),
                    error,
                })?;
            // The body is a Secret: zeroised when `reply` drops.
            if reply.status == 200 {
                return decode(reply.body.expose(), reference);
            }
            Err(classify(
                reference,
                &redact_url(url),
                reply.status,
                reply.body.expose(),
            ))
        }
    })
    .await
}

fn decode(body: &[u8], reference: &str) -> Result<(Secret<Vec<u8>>, Option<String>), FetchError> {
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
    let version = resp
        .name
        .rsplit_once("/versions/")
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty());
    Ok((data, version))
}

/// The permission `:access` needs.
const ACCESS_PERMISSION: &str = "secretmanager.versions.access";

/// Classifies an error answer by Google's typed signals: the status, the rpc
/// status and the `ErrorInfo` reason and metadata.
fn classify(reference: &str, url: &str, status: u16, body: &[u8]) -> FetchError {
    let parsed = GoogleErrorBody::parse(body);
    let message = match &parsed {
        GoogleErrorBody::Rpc(r) => r.message.clone(),
        other => other.to_string(),
    };
    let reference = reference.to_owned();
    let rpc_status = parsed.rpc().map(|r| &r.status);
    match (status, parsed.reason()) {
        (403, Some(ErrorReason::AccessTokenScopeInsufficient)) => {
            FetchError::InsufficientScopes { reference }
        }
        (403, Some(ErrorReason::ServiceDisabled)) => {
            FetchError::ServiceDisabled { reference, message }
        }
        (403, _) if rpc_status == Some(&RpcStatus::PermissionDenied) => {
            FetchError::PermissionDenied {
                reference,
                permission: parsed
                    .metadata("permission")
                    .unwrap_or(ACCESS_PERMISSION)
                    .to_owned(),
                resource: parsed.metadata("resource").map(str::to_owned),
                message,
            }
        }
        (401, _) => FetchError::Unauthenticated { reference, message },
        (404, _) => FetchError::NotFound {
            reference,
            message,
            code: "404 NOT_FOUND",
        },
        (400, _) if rpc_status == Some(&RpcStatus::FailedPrecondition) => {
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
        // The permission and resource come from ErrorInfo, not the message.
        let info = br#"{"error":{"code":403,"message":"Denied.","status":"PERMISSION_DENIED","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IAM_PERMISSION_DENIED","domain":"iam.googleapis.com","metadata":{"permission":"secretmanager.versions.get","resource":"projects/p/secrets/s"}}]}}"#;
        match classify("r", "u", 403, info) {
            FetchError::PermissionDenied {
                permission,
                resource,
                ..
            } => {
                assert_eq!(permission, "secretmanager.versions.get");
                assert_eq!(resource.as_deref(), Some("projects/p/secrets/s"));
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
    fn the_largest_answer_secret_manager_can_send_fits_the_cap() {
        // 64 KiB whose base64 is all '/', each escaped as \/ by the encoder.
        let payload = vec![0xffu8; 65_536];
        let data = STANDARD.encode(&payload).replace('/', "\\/");
        let body = format!(
            r#"{{"name":"projects/123456789012/secrets/{}/versions/1","payload":{{"data":"{data}","dataCrc32c":"{}"}}}}"#,
            "s".repeat(255),
            crc32c::crc32c(&payload)
        );
        assert!(
            body.len() <= ACCESS_CAP.bytes(),
            "{} > {ACCESS_CAP}",
            body.len()
        );
        let (value, version) = decode(body.as_bytes(), "r").unwrap();
        assert_eq!(value.expose(), &payload);
        assert_eq!(
            version.as_deref(),
            Some("1"),
            "the version is the name's last segment"
        );
    }

    #[test]
    fn crc_mismatch_is_caught() {
        let ok = format!(
            r#"{{"name":"n","payload":{{"data":"aGk=","dataCrc32c":"{}"}}}}"#,
            crc32c::crc32c(b"hi")
        );
        let (value, version) = decode(ok.as_bytes(), "r").unwrap();
        assert_eq!((value.expose().as_slice(), version), (&b"hi"[..], None));
        let bad = r#"{"name":"n","payload":{"data":"aGk=","dataCrc32c":"1"}}"#;
        assert!(matches!(
            decode(bad.as_bytes(), "r"),
            Err(FetchError::Corrupt { .. })
        ));
    }
}
