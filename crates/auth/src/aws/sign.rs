//! SigV4 signing of a request given as parts, on the `aws-sigv4` crate: the one
//! signing routine for Secrets Manager calls and for the aws1 subject token of
//! Workload Identity Federation.

use super::AwsCredentials;
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
) -> Result<(Vec<(String, String)>, String), String> {
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
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let signable = SignableRequest::new(
        method,
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| format!("the request cannot be signed: {e}"))?;
    let (instructions, signature) = sign(signable, &params)
        .map_err(|e| format!("signing: {e}"))?
        .into_parts();
    let added = instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    Ok((added, signature))
}
