//! The local cloud's key material and what it does with it.
//!
//! * A 256-bit master key, kept in a file apart from the database, seals every
//!   secret payload and every other key with AES-256-GCM. The database alone
//!   reveals no payload.
//! * An HMAC-SHA256 key makes access tokens self-verifying, so validating a
//!   bearer token is a hash, not a database lookup, and tokens outlive a restart.
//! * An RSA-2048 key signs ID tokens (RS256), published as a JWKS. Tokens are
//!   verified in one place, [`crate::jwt`].

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// The `iss` of every ID token the ID-token key signs, as Google's
/// (`https://accounts.google.com`): OAuth2, the metadata servers, IAM
/// Credentials; and the issuer an OIDC provider may name without a JWKS.
pub const ID_TOKEN_ISSUER: &str = "https://accounts.google.com";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "decrypting a stored value failed: the master key does not match the store, or the data was altered"
    )]
    Open,
    #[error("the random number generator failed")]
    Rng,
    #[error("reading the master key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("signing failed")]
    Sign,
    #[error("a stored key is malformed: {0}")]
    BadKey(String),
}

pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut b = [0u8; N];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CryptoError::Rng)?;
    Ok(b)
}

/// Lowercase hex of `n` random bytes.
pub fn random_hex(n: usize) -> Result<String, CryptoError> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| CryptoError::Rng)?;
    Ok(hex(&b))
}

pub fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

pub fn sha256(b: &[u8]) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// AES-256-GCM with the master key. Sealed form: nonce (12 bytes) || ciphertext || tag.
pub struct MasterKey {
    key: LessSafeKey,
}

impl MasterKey {
    /// Loads the key file, or creates it (0600) when `create` is true and it is absent.
    pub fn load_or_create(path: &Path, create: bool) -> Result<Self, CryptoError> {
        let err = |reason: String| CryptoError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let raw = match std::fs::read_to_string(path) {
            Ok(s) => Zeroizing::new(s),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                let key = Zeroizing::new(random_bytes::<32>()?);
                let text = Zeroizing::new(hex(key.as_ref()));
                write_private(path, text.as_bytes())
                    .map_err(|e| err(format!("cannot create it: {e}")))?;
                return Self::from_bytes(key.as_ref());
            }
            Err(e) => return Err(err(e.to_string())),
        };
        let bytes =
            Zeroizing::new(unhex(raw.trim()).ok_or_else(|| err("expected 64 hex digits".into()))?);
        if bytes.len() != 32 {
            return Err(err(format!(
                "expected 64 hex digits, found {}",
                raw.trim().len()
            )));
        }
        Self::from_bytes(&bytes)
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self, CryptoError> {
        let unbound = UnboundKey::new(&AES_256_GCM, b)
            .map_err(|_| CryptoError::BadKey("master key".into()))?;
        Ok(MasterKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// Encrypts `plain`, binding it to `aad` (the row it belongs to), so a
    /// ciphertext copied to another row does not decrypt.
    pub fn seal(&self, aad: &[u8], plain: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let nonce_bytes = random_bytes::<NONCE_LEN>()?;
        let mut buf = Vec::with_capacity(NONCE_LEN + plain.len() + 16);
        buf.extend_from_slice(&nonce_bytes);
        let mut body = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce_bytes),
                Aad::from(aad),
                &mut body,
            )
            .map_err(|_| CryptoError::Rng)?;
        buf.extend_from_slice(&body);
        body.fill(0);
        Ok(buf)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + 16 {
            return Err(CryptoError::Open);
        }
        let (n, body) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).map_err(|_| CryptoError::Open)?;
        let mut buf = Zeroizing::new(body.to_vec());
        let plain_len = self
            .key
            .open_in_place(nonce, Aad::from(aad), buf.as_mut_slice())
            .map_err(|_| CryptoError::Open)?
            .len();
        buf.truncate(plain_len);
        Ok(buf)
    }
}

/// Writes a file readable only by its owner, replacing any previous content atomically.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

pub fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// What an access token says about its bearer. Tokens are
/// `ya29.<base64url(json claims)>.<base64url(hmac)>`; only the local cloud can mint them.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenClaims {
    /// The IAM member the token acts as: `user:…` or `serviceAccount:…`.
    pub sub: String,
    /// OAuth scopes granted to the token.
    pub scp: Vec<String>,
    pub iat: i64,
    pub exp: i64,
    /// The OAuth client (user tokens) or service account unique id.
    pub azp: String,
    /// A federated workload's pool, subject, groups and attributes (then `sub`
    /// is its `principal://` member). Absent in every other token, and in
    /// tokens minted before federation existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fed: Option<crate::iam::Federated>,
}

pub struct TokenKey {
    key: hmac::Key,
}

pub const TOKEN_PREFIX: &str = "ya29.";

impl TokenKey {
    pub fn from_bytes(b: &[u8]) -> Self {
        TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, b),
        }
    }

    pub fn mint(&self, claims: &TokenClaims) -> String {
        // Serialising a struct of strings and integers cannot fail.
        let json = serde_json::to_vec(claims).unwrap_or_default();
        let mut token = String::with_capacity(TOKEN_PREFIX.len() + json.len() * 4 / 3 + 50);
        token.push_str(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(&json, &mut token);
        let tag = hmac::sign(&self.key, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        token
    }

    /// The claims of a token this cloud minted, or `None` for anything else
    /// (foreign, truncated, altered). Expiry is the caller's check.
    pub fn verify(&self, token: &str) -> Option<TokenClaims> {
        let rest = token.strip_prefix(TOKEN_PREFIX)?;
        let dot = rest.rfind('.')?;
        let signed = &token[..TOKEN_PREFIX.len() + dot];
        let tag = URL_SAFE_NO_PAD.decode(&rest[dot + 1..]).ok()?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).ok()?;
        let json = URL_SAFE_NO_PAD.decode(&rest[..dot]).ok()?;
        serde_json::from_slice(&json).ok()
    }
}

/// An RSA key that signs JWTs (ID tokens) and publishes itself as a JWK.
pub struct JwtSigner {
    pair: RsaKeyPair,
    pub kid: String,
}

impl JwtSigner {
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), CryptoError> {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::Rng)?;
        let der = pair
            .as_der()
            .map_err(|_| CryptoError::BadKey("rsa export".into()))?;
        let pkcs8 = Zeroizing::new(der.as_ref().to_vec());
        Ok((Self::from_pkcs8(&pkcs8)?, pkcs8))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, CryptoError> {
        let pair = RsaKeyPair::from_pkcs8(pkcs8).map_err(|e| CryptoError::BadKey(e.to_string()))?;
        let kid = hex(&sha256(pair.public_key().as_ref())[..20]);
        Ok(JwtSigner { pair, kid })
    }

    /// A compact RS256 JWS over `claims` with this key's `kid`.
    pub fn sign_jwt(&self, claims: &serde_json::Value) -> Result<String, CryptoError> {
        let header = serde_json::json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"});
        sign_rs256(&self.pair, &header, claims)
    }

    pub fn jwk(&self) -> keyway_wire::google::oauth2::Jwk {
        public_jwk(&self.pair, &self.kid)
    }

    /// The DER SubjectPublicKeyInfo-less RSAPublicKey (PKCS#1) bytes.
    pub fn public_key_der(&self) -> Vec<u8> {
        self.pair.public_key().as_ref().to_vec()
    }
}

pub fn sign_rs256(
    pair: &RsaKeyPair,
    header: &serde_json::Value,
    claims: &serde_json::Value,
) -> Result<String, CryptoError> {
    let mut out =
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(header).map_err(|_| CryptoError::Sign)?);
    out.push('.');
    out.push_str(
        &URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).map_err(|_| CryptoError::Sign)?),
    );
    let mut sig = vec![0u8; pair.public_modulus_len()];
    pair.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        out.as_bytes(),
        &mut sig,
    )
    .map_err(|_| CryptoError::Sign)?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(&sig));
    Ok(out)
}

pub fn public_jwk(pair: &RsaKeyPair, kid: &str) -> keyway_wire::google::oauth2::Jwk {
    let pk = pair.public_key();
    keyway_wire::google::oauth2::Jwk {
        kty: "RSA".into(),
        alg: "RS256".into(),
        use_: "sig".into(),
        kid: kid.to_owned(),
        n: URL_SAFE_NO_PAD.encode(pk.modulus().big_endian_without_leading_zero()),
        e: URL_SAFE_NO_PAD.encode(pk.exponent().big_endian_without_leading_zero()),
    }
}

/// A freshly minted service-account key: the PEM for the JSON key file (never
/// stored by the cloud, as Google keeps no private half) and the public key it keeps.
pub struct MintedKey {
    pub key_id: String,
    pub private_pem: Zeroizing<String>,
    pub public_der: Vec<u8>,
}

pub fn mint_service_account_key() -> Result<MintedKey, CryptoError> {
    let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| CryptoError::Rng)?;
    let der = pair
        .as_der()
        .map_err(|_| CryptoError::BadKey("rsa export".into()))?;
    let pem = Zeroizing::new(pem("PRIVATE KEY", der.as_ref()));
    Ok(MintedKey {
        key_id: random_hex(20)?,
        private_pem: pem,
        public_der: pair.public_key().as_ref().to_vec(),
    })
}

pub fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut s = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str(&format!("-----END {label}-----\n"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_roundtrip_and_aad_binding() {
        let k = MasterKey::from_bytes(&[7u8; 32]).unwrap();
        let s = k.seal(b"row-1", b"payload").unwrap();
        assert_eq!(k.open(b"row-1", &s).unwrap().as_slice(), b"payload");
        assert!(
            k.open(b"row-2", &s).is_err(),
            "ciphertext must be bound to its row"
        );
        let other = MasterKey::from_bytes(&[8u8; 32]).unwrap();
        assert!(other.open(b"row-1", &s).is_err());
        assert!(!s.windows(7).any(|w| w == b"payload"));
    }

    #[test]
    fn tokens_verify_and_reject_tampering() {
        let k = TokenKey::from_bytes(b"k1");
        let c = TokenClaims {
            sub: "user:a@b".into(),
            scp: vec!["s".into()],
            iat: 1,
            exp: 2,
            azp: "c".into(),
            fed: None,
        };
        let t = k.mint(&c);
        assert!(t.starts_with("ya29."));
        assert_eq!(k.verify(&t), Some(c));
        let mut bad = t.clone().into_bytes();
        let i = 10;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert_eq!(k.verify(std::str::from_utf8(&bad).unwrap()), None);
        assert_eq!(TokenKey::from_bytes(b"k2").verify(&t), None);
        assert_eq!(k.verify("ya29.garbage"), None);
        assert_eq!(k.verify(""), None);
    }

    #[test]
    fn tokens_minted_before_federation_still_verify() {
        // The claims layout of tokens minted by earlier builds (no `fed`).
        let k = TokenKey::from_bytes(b"k1");
        let json = br#"{"sub":"user:a@b","scp":["s"],"iat":1,"exp":2,"azp":"c"}"#;
        let mut token = String::from(TOKEN_PREFIX);
        URL_SAFE_NO_PAD.encode_string(json, &mut token);
        let tag = hmac::sign(&k.key, token.as_bytes());
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
        let c = k.verify(&token).unwrap();
        assert_eq!(c.sub, "user:a@b");
        assert_eq!(c.fed, None);
        // And a federated token carries its pool context through.
        let fed = crate::iam::Federated {
            pool: "projects/1/locations/global/workloadIdentityPools/p".into(),
            subject: "s".into(),
            groups: vec!["g".into()],
            attributes: Default::default(),
        };
        let c = TokenClaims {
            sub: fed.member(),
            scp: vec![],
            iat: 1,
            exp: 2,
            azp: String::new(),
            fed: Some(fed.clone()),
        };
        assert_eq!(k.verify(&k.mint(&c)).unwrap().fed, Some(fed));
    }

    #[test]
    fn jwt_signature_verifies_with_published_key() {
        let (s, _) = JwtSigner::generate().unwrap();
        let jwt = s
            .sign_jwt(&serde_json::json!({"aud": "x", "exp": 2}))
            .unwrap();
        let published =
            crate::jwt::KeySet::from_jwks(&serde_json::json!({"keys": [s.jwk()]})).unwrap();
        let policy = crate::jwt::Policy {
            require_iat: false,
            expiry_leeway_secs: 0,
            future_skew_secs: 0,
            max_lifetime_secs: None,
        };
        let v = crate::jwt::decode(&jwt)
            .unwrap()
            .verify(&published, &policy, 1)
            .unwrap();
        assert_eq!(v.str_claim("aud"), Some("x"));
        let (other, _) = JwtSigner::generate().unwrap();
        let theirs = crate::jwt::KeySet::of_signer(&other);
        assert!(
            crate::jwt::decode(&jwt)
                .unwrap()
                .verify(&theirs, &policy, 1)
                .is_err()
        );
    }
}
