//! What the cloud's tests share beyond keyway-testkit: signing with the
//! `aws-sigv4` crate (the signer AWS's own SDK uses) and RSA keys of their own.
#![allow(dead_code)] // each test crate uses some of it

use aws_credential_types::Credentials;
use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use aws_sigv4::http_request::{SignableRequest, SigningInstructions, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
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

/// A new RSA key of an issuer of the test's, and its JWKS (key id `kid`).
pub fn issuer_key(kid: &str) -> (RsaKeyPair, String) {
    let pair = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pk = pair.public_key();
    let b64 = |n: &[u8]| URL_SAFE_NO_PAD.encode(n);
    let jwks = serde_json::json!({"keys": [{
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
        "n": b64(pk.modulus().big_endian_without_leading_zero()),
        "e": b64(pk.exponent().big_endian_without_leading_zero()),
    }]});
    (pair, jwks.to_string())
}

/// The key of a PEM `PRIVATE KEY` (PKCS #8), as a key file holds it.
pub fn key_from_pem(pem: &str) -> RsaKeyPair {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = STANDARD.decode(body).expect("the PEM's base64");
    RsaKeyPair::from_pkcs8(&der).expect("a PKCS #8 RSA key")
}

/// The claims of a JWT, unverified.
pub fn claims_of(jwt: &str) -> serde_json::Value {
    let payload = jwt.split('.').nth(1).expect("a JWT of three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64url claims"))
        .expect("JSON claims")
}
