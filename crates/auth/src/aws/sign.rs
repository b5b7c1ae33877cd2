//! SigV4 signing of a request given as parts, on the `aws-sigv4` crate: the one
//! signing routine for Secrets Manager calls and for the aws1 subject token of
//! Workload Identity Federation.

use super::credentials::AwsCredentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::time::SystemTime;

/// The headers SigV4 adds to a request given as parts, and the signature.
/// keyway-secrets' `sign_request` and the aws1 subject token use it; the AWS
/// SigV4 suite runs against it (in keyway-secrets' tests).
#[allow(clippy::too_many_arguments)]
pub fn signature(
    method: &str,
    uri: &str,
    headers: &[(String, String)],
    body: &[u8],
    creds: &AwsCredentials,
    region: &str,
    service: &str,
    time: SystemTime,
    settings: SigningSettings,
) -> Result<(Vec<(String, String)>, String), SigningError> {
    // aws-sigv4 panics when it must take the Host from a URI that has none.
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host"))
        && url::Url::parse(uri).map_or(true, |u| u.host_str().is_none_or(str::is_empty))
    {
        return Err(SigningError::NoHost {
            uri: uri.to_owned(),
        });
    }
    let identity = aws_credential_types::Credentials::new(
        creds.access_key_id.clone(),
        creds.secret_access_key.expose().clone(),
        creds.session_token.as_ref().map(|t| t.expose().clone()),
        None,
        "keyway",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SigningError::Parameters(e.to_string()))?
        .into();
    let signable = SignableRequest::new(
        method,
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SigningError::Request(e.to_string()))?;
    let (instructions, signature) = sign(signable, &params)
        .map_err(|e| SigningError::Signing(e.to_string()))?
        .into_parts();
    let added = instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok((added, signature))
}

/// Why a request could not be signed (a request keyway built that aws-sigv4
/// does not accept: never expected, never transient).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("signing parameters: {0}")]
    Parameters(String),
    /// The URI has no host and no Host header was given (aws-sigv4 would panic).
    #[error("the request cannot be signed: {uri:?} names no host and there is no Host header")]
    NoHost { uri: String },
    #[error("the request cannot be signed: {0}")]
    Request(String),
    #[error("signing: {0}")]
    Signing(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_without_a_host_is_refused_not_a_panic() {
        // Found by fuzz/sigv4: aws-sigv4 panics on this.
        let creds = AwsCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: String::from("secret").into(),
            session_token: None,
            expires_at: None,
        };
        let sign = |uri: &str, headers: &[(String, String)]| {
            signature(
                "POST",
                uri,
                headers,
                b"",
                &creds,
                "us-east-1",
                "sts",
                SystemTime::UNIX_EPOCH,
                SigningSettings::default(),
            )
        };
        let e = sign("/", &[]).unwrap_err();
        assert_eq!(e, SigningError::NoHost { uri: "/".into() });
        assert!(e.to_string().contains("names no host"), "{e}");
        assert!(sign("/", &[("Host".into(), "example.com".into())]).is_ok());
        assert!(sign("https://sts.amazonaws.com/", &[]).is_ok());
    }
}
