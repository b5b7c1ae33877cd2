//! The little JWT work Google's flows need: load a service account's RSA key
//! from PEM, sign an RS256 assertion, and read (without verifying) the claims
//! of an ID token a token endpoint returned to us over TLS. Keys and decoded
//! key bytes stay inside [`Secret`]s or aws-lc's own key object.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keyway_core::Secret;
use serde_json::{Map, Value};

/// Parses a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Google issues)
/// or PKCS#1 (`BEGIN RSA PRIVATE KEY`, found in older and test keys).
/// The error never quotes the key.
pub(crate) fn rsa_key_from_pem(pem: &Secret<String>) -> Result<RsaKeyPair, String> {
    let text = pem.expose();
    let begin = text
        .find("-----BEGIN ")
        .ok_or("no PEM block (expected -----BEGIN PRIVATE KEY-----)")?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("malformed PEM header")?;
    let label = &rest[..label_end];
    if label.len() > 40 || !label.chars().all(|c| c.is_ascii_uppercase() || c == ' ') {
        return Err("malformed PEM header".into());
    }
    let body_and_end = &rest[label_end + 5..];
    let end_marker = format!("-----END {label}-----");
    let end = body_and_end
        .find(&end_marker)
        .ok_or_else(|| format!("PEM block {label:?} has no END line"))?;
    let b64: Secret<String> = Secret::new(
        body_and_end[..end]
            .chars()
            .filter(|c| !c.is_ascii_whitespace())
            .collect(),
    );
    let der: Secret<Vec<u8>> = Secret::new(
        STANDARD
            .decode(b64.expose().as_bytes())
            .map_err(|_| format!("PEM block {label:?} is not valid base64"))?,
    );
    match label {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(der.expose())
            .map_err(|e| format!("not an RSA PKCS#8 private key ({e})")),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(der.expose())
            .map_err(|e| format!("not an RSA PKCS#1 private key ({e})")),
        "ENCRYPTED PRIVATE KEY" => {
            Err("the private key is encrypted; Google key files hold unencrypted keys".into())
        }
        other => Err(format!(
            "unsupported PEM block {other:?} (expected PRIVATE KEY)"
        )),
    }
}

/// `header.claims.signature`, RS256, with `kid` when the key has an id.
pub(crate) fn sign_rs256(
    key: &RsaKeyPair,
    kid: Option<&str>,
    claims: &Value,
) -> Result<Secret<String>, String> {
    let mut header = Map::new();
    header.insert("alg".into(), "RS256".into());
    header.insert("typ".into(), "JWT".into());
    if let Some(kid) = kid {
        header.insert("kid".into(), kid.into());
    }
    let header = serde_json::to_vec(&Value::Object(header)).map_err(|e| e.to_string())?;
    let claims = serde_json::to_vec(claims).map_err(|e| e.to_string())?;
    let mut jwt = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        jwt.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "RSA signing failed".to_owned())?;
    jwt.push('.');
    jwt.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(Secret::new(jwt))
}

/// The claims of a JWT, without checking its signature: for reading the
/// `email` of an ID token the token endpoint just sent us.
pub(crate) fn claims_unverified(jwt: &Secret<String>) -> Option<Map<String, Value>> {
    let payload = jwt.expose().split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    match serde_json::from_slice(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

    const PKCS1: &str = include_str!("../../tests/data/privatekey.pem");
    const PKCS8: &str = include_str!("../../tests/data/privatekey_pkcs8.pem");
    const PUB: &str = include_str!("../../tests/data/privatekey.pub");

    fn public_der() -> Vec<u8> {
        let body: String = PUB.lines().filter(|l| !l.starts_with("-----")).collect();
        STANDARD.decode(body).unwrap()
    }

    #[test]
    fn signs_verifiably_with_pkcs1_and_pkcs8_keys() {
        for pem in [PKCS1, PKCS8] {
            let key = rsa_key_from_pem(&Secret::new(pem.to_owned())).unwrap();
            let jwt = sign_rs256(&key, Some("kid1"), &serde_json::json!({"iss": "a@b"})).unwrap();
            let parts: Vec<&str> = jwt.expose().split('.').collect();
            assert_eq!(parts.len(), 3);
            let header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
            assert_eq!(
                header,
                serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": "kid1"})
            );
            let sig = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            let msg = format!("{}.{}", parts[0], parts[1]);
            UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public_der())
                .verify(msg.as_bytes(), &sig)
                .unwrap();
            assert_eq!(claims_unverified(&jwt).unwrap()["iss"], "a@b");
        }
    }

    #[test]
    fn bad_keys_are_explained_without_quoting_them() {
        let cases = [
            ("MARKER-not-pem", "no PEM block"),
            (
                "-----BEGIN PRIVATE KEY-----\nMARKER!!\n-----END PRIVATE KEY-----\n",
                "not valid base64",
            ),
            (
                "-----BEGIN PRIVATE KEY-----\nTUFSS0VSTUFSS0VS\n-----END PRIVATE KEY-----\n",
                "not an RSA PKCS#8",
            ),
            (
                "-----BEGIN EC PRIVATE KEY-----\nTUFSS0VS\n-----END EC PRIVATE KEY-----\n",
                "unsupported PEM block",
            ),
            ("-----BEGIN PRIVATE KEY-----\nTUFSS0VS\n", "no END line"),
        ];
        for (pem, want) in cases {
            let e = rsa_key_from_pem(&Secret::new(pem.to_owned())).unwrap_err();
            assert!(e.contains(want), "{e}");
            assert!(!e.contains("MARKER") && !e.contains("TUFSS0VS"), "{e}");
        }
    }
}
