//! What the cloud's tests that sign with the `aws-sigv4` crate (the signer
//! AWS's own SDK uses) share.

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableRequest, SigningInstructions, SigningSettings, sign};
use aws_sigv4::sign::v4;
use keyway_testkit::Creds;
use std::time::{Duration, UNIX_EPOCH};

/// Signs `request` for STS in `region` as `c`, at `at` (seconds since the
/// epoch): what the signer adds to the request.
pub fn sign_sts(
    request: SignableRequest,
    c: &Creds,
    region: &str,
    at: i64,
    settings: SigningSettings,
) -> SigningInstructions {
    let (akid, secret, token) = (c.akid.clone(), c.secret.clone(), c.token.clone());
    let identity = Credentials::new(akid, secret, token, None, "test").into();
    let time = UNIX_EPOCH + Duration::from_secs(at as u64);
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region);
    let params = params.name("sts").time(time).settings(settings);
    let params = params.build().expect("the signing parameters").into();
    let (instructions, _) = sign(request, &params).expect("signing").into_parts();
    instructions
}
