//! The one JSON Web Token verifier of the local cloud. Four places take a JWT
//! from a caller: AWS STS AssumeRoleWithWebIdentity (an OIDC ID token), Google
//! STS (an OIDC subject token), the OAuth2 jwt-bearer grant and self-signed
//! service-account JWTs used as bearer tokens (both signed with a service
//! account's key); and `tokeninfo` reads back the cloud's own ID tokens. Each
//! of them only states its policy here (which keys, how much clock skew, how
//! long a token may live) and turns a typed [`JwtError`] into its own wire
//! error; none of them parses, verifies or does time arithmetic itself.
//!
//! What is checked, in this order: the compact JWS form (three base64url parts,
//! header and claims JSON objects), `alg` RS256 (the only algorithm the cloud
//! verifies; every caller's real service accepts it), the key (by `kid` in the
//! caller's key set; a key without a `kid` is a candidate for any token, a
//! token without a `kid` tries every key), the RSA PKCS#1 v1.5 SHA-256
//! signature (aws-lc-rs), and only then the time claims: `exp` (required),
//! `iat` and `nbf` as NumericDates (integers, or decimals, within `i64`).
//!
//! The time checks never overflow: bounds are computed from the clock with
//! saturating arithmetic (a bound past the end of time is the end of time), and
//! a token's lifetime `exp - iat` with checked arithmetic, so a lifetime that
//! does not fit (`iat = i64::MIN, exp = i64::MAX`) is refused, not wrapped.
//!
//! Written here rather than taken from a JOSE crate because the rules each
//! caller needs (kid-less keys as candidates, Google's and AWS's exact skews,
//! lifetime limits, refusing rather than wrapping an overflowing lifetime) and
//! the typed reasons its callers map to their services' words are most of
//! the code; the cryptography is aws-lc-rs's.

use aws_lc_rs::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

/// The only signing algorithm verified.
pub const RS256: &str = "RS256";

/// A verification key.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// RSA modulus and exponent, big-endian (a JWK's `n` and `e`).
    Components { n: Vec<u8>, e: Vec<u8> },
    /// A PKCS#1 `RSAPublicKey` in DER.
    Pkcs1Der(Vec<u8>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Key {
    kid: Option<String>,
    public: PublicKey,
}

/// The keys a token may be signed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Key>,
}

/// Why a JWKS document gives no key set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    #[error("a JWKS document needs a `keys` list")]
    NoKeysList,
    #[error("keys[{index}]: `{member}` is not base64url")]
    NotBase64 { index: usize, member: &'static str },
    #[error("no RSA signing key (kty RSA) in `keys`")]
    NoRsaKey,
}

impl JwksError {
    /// A JWKS is data the world or a caller gave: reading it again gives the same answer.
    pub fn is_transient(&self) -> bool {
        false
    }
}

impl KeySet {
    /// The RSA signing keys of a JWKS document (`{"keys": [...]}`). Keys of
    /// other types, and keys marked for encryption (`"use": "enc"`), are left out.
    pub fn from_jwks(doc: &Value) -> Result<KeySet, JwksError> {
        let list = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or(JwksError::NoKeysList)?;
        let mut keys = Vec::new();
        for (index, k) in list.iter().enumerate() {
            if k.get("kty").and_then(Value::as_str) != Some("RSA")
                || k.get("use")
                    .and_then(Value::as_str)
                    .is_some_and(|u| u != "sig")
            {
                continue;
            }
            let part = |member: &'static str| {
                k.get(member)
                    .and_then(Value::as_str)
                    .and_then(|s| URL_SAFE_NO_PAD.decode(s.trim_end_matches('=')).ok())
                    .filter(|b| !b.is_empty())
                    .ok_or(JwksError::NotBase64 { index, member })
            };
            keys.push(Key {
                kid: k.get("kid").and_then(Value::as_str).map(str::to_owned),
                public: PublicKey::Components {
                    n: part("n")?,
                    e: part("e")?,
                },
            });
        }
        if keys.is_empty() {
            return Err(JwksError::NoRsaKey);
        }
        Ok(KeySet { keys })
    }

    /// One PKCS#1 DER RSA public key (a service account's key, the cloud's own ID-token key).
    pub fn from_pkcs1_der(kid: Option<String>, der: Vec<u8>) -> KeySet {
        let mut s = KeySet::default();
        s.push_pkcs1_der(kid, der);
        s
    }

    pub fn push_pkcs1_der(&mut self, kid: Option<String>, der: Vec<u8>) {
        self.keys.push(Key {
            kid,
            public: PublicKey::Pkcs1Der(der),
        });
    }

    /// The cloud's own ID-token signing key.
    pub fn of_signer(signer: &crate::crypto::JwtSigner) -> KeySet {
        KeySet::from_pkcs1_der(Some(signer.kid.clone()), signer.public_key_der())
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// What a verifier accepts, stated by each caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// `iat` must be present.
    pub require_iat: bool,
    /// A token is still accepted this long after `exp`.
    pub expiry_leeway_secs: i64,
    /// `iat` and `nbf` may be this far in the future (the issuer's clock ahead of ours).
    pub future_skew_secs: i64,
    /// At most this long between `iat` and `exp`, when both are present.
    pub max_lifetime_secs: Option<i64>,
}

/// Which part of a compact JWS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Header,
    Claims,
    Signature,
}

impl std::fmt::Display for Part {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Claims => "claims",
            Part::Signature => "signature",
        })
    }
}

/// Why a token is refused. Callers map these to their service's wire errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the token is not a compact JWS (three base64url parts separated by dots)")]
    NotCompact,
    #[error("the token's {0} is not base64url-encoded JSON")]
    BadPart(Part),
    #[error("the token is signed with {0:?}; only RS256 is accepted")]
    Alg(String),
    #[error("no key with the token's kid {kid:?}")]
    UnknownKey { kid: Option<String> },
    #[error("the token's signature does not verify with any of the keys")]
    BadSignature,
    #[error("the token has no `{0}` claim")]
    MissingClaim(&'static str),
    #[error("the token's `{0}` claim is not a NumericDate (seconds since the epoch)")]
    BadTime(&'static str),
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid before {nbf} (now {now})")]
    NotYetValid { nbf: i64, now: i64 },
    #[error("the token was issued in the future, at {iat} (now {now})")]
    IssuedInFuture { iat: i64, now: i64 },
    #[error("the token expires (exp {exp}) before it was issued (iat {iat})")]
    ExpiresBeforeIssued { iat: i64, exp: i64 },
    #[error("the token's lifetime (from iat {iat} to exp {exp}) is longer than allowed")]
    LifetimeTooLong {
        iat: i64,
        exp: i64,
        /// The policy's limit. `None`: the policy sets none, and the lifetime
        /// does not even fit in an `i64`.
        max: Option<i64>,
    },
}

impl JwtError {
    /// A token is refused for what it is: presenting it again gives the same answer.
    pub fn is_transient(&self) -> bool {
        false
    }

    /// A refusal about the token's times (rather than its form, key or signature).
    pub fn is_about_time(&self) -> bool {
        matches!(
            self,
            JwtError::MissingClaim(_)
                | JwtError::BadTime(_)
                | JwtError::Expired { .. }
                | JwtError::NotYetValid { .. }
                | JwtError::IssuedInFuture { .. }
                | JwtError::ExpiresBeforeIssued { .. }
                | JwtError::LifetimeTooLong { .. }
        )
    }
}

/// A token split and decoded, its signature not yet checked: what a caller
/// may read to choose the keys (the issuer), and nothing it may trust.
#[derive(Debug)]
pub struct Unverified<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signed: &'a str,
    signature: Vec<u8>,
}

/// The claims of a token whose signature and times held.
#[derive(Debug, Clone, PartialEq)]
pub struct Verified {
    pub claims: Map<String, Value>,
    pub exp: i64,
    pub iat: Option<i64>,
    pub nbf: Option<i64>,
}

impl Verified {
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }
}

fn json_object(b64: &str, part: Part) -> Result<Map<String, Value>, JwtError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| JwtError::BadPart(part))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(JwtError::BadPart(part)),
    }
}

/// Splits and decodes a compact JWS (surrounding whitespace ignored).
pub fn decode(token: &str) -> Result<Unverified<'_>, JwtError> {
    let token = token.trim();
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::NotCompact);
    };
    Ok(Unverified {
        header: json_object(h, Part::Header)?,
        claims: json_object(c, Part::Claims)?,
        signed: &token[..h.len() + 1 + c.len()],
        signature: URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| JwtError::BadPart(Part::Signature))?,
    })
}

/// A NumericDate: an integer, or a decimal (floored), within `i64`.
fn numeric_date(v: &Value, name: &'static str) -> Result<i64, JwtError> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    // `as_f64` also answers for integers beyond i64 (u64), which are out of range.
    match v.as_f64() {
        Some(f) if v.is_f64() && f.is_finite() && f >= -(2f64.powi(63)) && f < 2f64.powi(63) => {
            Ok(f.floor() as i64)
        }
        _ => Err(JwtError::BadTime(name)),
    }
}

impl<'a> Unverified<'a> {
    /// An untrusted string claim (to find the issuer's keys).
    pub fn str_claim(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    pub fn kid(&self) -> Option<&str> {
        self.header.get("kid").and_then(Value::as_str)
    }

    /// Checks the algorithm, the signature against `keys`, then the time claims
    /// under `policy` at `now` (seconds since the epoch).
    pub fn verify(self, keys: &KeySet, policy: &Policy, now: i64) -> Result<Verified, JwtError> {
        let alg = self.header.get("alg").and_then(Value::as_str).unwrap_or("");
        if alg != RS256 {
            return Err(JwtError::Alg(alg.to_owned()));
        }
        if self.header.get("kid").is_some_and(|k| !k.is_string()) {
            return Err(JwtError::BadPart(Part::Header));
        }
        let kid = self.kid();
        let candidates: Vec<&Key> = keys
            .keys
            .iter()
            .filter(|k| kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
            .collect();
        if candidates.is_empty() {
            return Err(JwtError::UnknownKey {
                kid: kid.map(str::to_owned),
            });
        }
        let alg = &signature::RSA_PKCS1_2048_8192_SHA256;
        let signed = self.signed.as_bytes();
        let verified = candidates.iter().any(|k| match &k.public {
            PublicKey::Components { n, e } => RsaPublicKeyComponents {
                n: n.as_slice(),
                e: e.as_slice(),
            }
            .verify(alg, signed, &self.signature)
            .is_ok(),
            PublicKey::Pkcs1Der(der) => UnparsedPublicKey::new(alg, der)
                .verify(signed, &self.signature)
                .is_ok(),
        });
        if !verified {
            return Err(JwtError::BadSignature);
        }
        let time = |name: &'static str| {
            self.claims
                .get(name)
                .map(|v| numeric_date(v, name))
                .transpose()
        };
        let exp = time("exp")?.ok_or(JwtError::MissingClaim("exp"))?;
        let iat = time("iat")?;
        let nbf = time("nbf")?;
        if policy.require_iat && iat.is_none() {
            return Err(JwtError::MissingClaim("iat"));
        }
        check_times(policy, now, exp, iat, nbf)?;
        Ok(Verified {
            claims: self.claims,
            exp,
            iat,
            nbf,
        })
    }
}

/// The time rules, with no arithmetic on a claim that could overflow.
fn check_times(
    policy: &Policy,
    now: i64,
    exp: i64,
    iat: Option<i64>,
    nbf: Option<i64>,
) -> Result<(), JwtError> {
    if now.saturating_sub(policy.expiry_leeway_secs) >= exp {
        return Err(JwtError::Expired { exp, now });
    }
    if let Some(iat) = iat {
        if exp < iat {
            return Err(JwtError::ExpiresBeforeIssued { iat, exp });
        }
        match (exp.checked_sub(iat), policy.max_lifetime_secs) {
            (None, max) => return Err(JwtError::LifetimeTooLong { iat, exp, max }),
            (Some(life), Some(max)) if life > max => {
                return Err(JwtError::LifetimeTooLong {
                    iat,
                    exp,
                    max: Some(max),
                });
            }
            _ => {}
        }
    }
    let latest = now.saturating_add(policy.future_skew_secs);
    if let Some(iat) = iat.filter(|iat| *iat > latest) {
        return Err(JwtError::IssuedInFuture { iat, now });
    }
    if let Some(nbf) = nbf.filter(|nbf| *nbf > latest) {
        return Err(JwtError::NotYetValid { nbf, now });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::JwtSigner;
    use serde_json::json;

    const NOW: i64 = 1_800_000_000;
    const HOUR: Policy = Policy {
        require_iat: true,
        expiry_leeway_secs: 0,
        future_skew_secs: 300,
        max_lifetime_secs: Some(3600),
    };
    const OPEN: Policy = Policy {
        require_iat: false,
        expiry_leeway_secs: 60,
        future_skew_secs: 60,
        max_lifetime_secs: None,
    };

    fn signer() -> JwtSigner {
        JwtSigner::generate().unwrap().0
    }

    fn check(s: &JwtSigner, policy: &Policy, claims: Value) -> Result<Verified, JwtError> {
        let t = s.sign_jwt(&claims).unwrap();
        decode(&t)?.verify(&KeySet::of_signer(s), policy, NOW)
    }

    #[test]
    fn times_at_the_extremes_never_overflow() {
        let s = signer();
        let (min, max) = (i64::MIN, i64::MAX);
        let cases: Vec<(Value, Value, JwtError)> = vec![
            (
                json!(min),
                json!(max),
                JwtError::LifetimeTooLong {
                    iat: min,
                    exp: max,
                    max: Some(3600),
                },
            ),
            (
                json!(max),
                json!(min),
                JwtError::Expired { exp: min, now: NOW },
            ),
            (
                json!(min),
                json!(min),
                JwtError::Expired { exp: min, now: NOW },
            ),
            (
                json!(max),
                json!(max),
                JwtError::IssuedInFuture { iat: max, now: NOW },
            ),
            (
                json!(NOW),
                json!(max),
                JwtError::LifetimeTooLong {
                    iat: NOW,
                    exp: max,
                    max: Some(3600),
                },
            ),
            (
                json!(NOW + 10),
                json!(NOW + 5),
                JwtError::ExpiresBeforeIssued {
                    iat: NOW + 10,
                    exp: NOW + 5,
                },
            ),
            (json!(NOW), json!(1e300), JwtError::BadTime("exp")),
            (json!(NOW), json!(u64::MAX), JwtError::BadTime("exp")),
            (json!(-1e300), json!(NOW + 1), JwtError::BadTime("iat")),
            (json!("0"), json!(NOW + 1), JwtError::BadTime("iat")),
            (
                json!(NOW),
                json!(NOW),
                JwtError::Expired { exp: NOW, now: NOW },
            ),
        ];
        for (iat, exp, want) in cases {
            let got = check(&s, &HOUR, json!({"iat": iat, "exp": exp}));
            assert_eq!(got, Err(want), "iat {iat}, exp {exp}");
        }
        // Without a lifetime limit, a lifetime that does not fit is still refused.
        assert_eq!(
            check(&s, &OPEN, json!({"iat": min, "exp": max})),
            Err(JwtError::LifetimeTooLong {
                iat: min,
                exp: max,
                max: None
            })
        );
        assert_eq!(
            check(&s, &OPEN, json!({"nbf": max, "exp": NOW + 10})),
            Err(JwtError::NotYetValid { nbf: max, now: NOW })
        );
        // Clocks at either end of time saturate rather than wrap.
        let strict = Policy {
            expiry_leeway_secs: 0,
            ..OPEN
        };
        let t = s.sign_jwt(&json!({"exp": max, "nbf": min})).unwrap();
        let at = |now: i64| {
            decode(&t)
                .unwrap()
                .verify(&KeySet::of_signer(&s), &strict, now)
                .map(|v| v.exp)
        };
        assert_eq!(at(min), Ok(max));
        assert_eq!(at(max), Err(JwtError::Expired { exp: max, now: max }));
    }

    #[test]
    fn limits_hold_at_their_edges() {
        let s = signer();
        let ok = |c: Value| check(&s, &HOUR, c).is_ok();
        assert!(ok(json!({"iat": NOW, "exp": NOW + 3600})));
        assert!(!ok(json!({"iat": NOW, "exp": NOW + 3601})));
        assert!(ok(json!({"iat": NOW + 300, "exp": NOW + 600})));
        assert!(!ok(json!({"iat": NOW + 301, "exp": NOW + 600})));
        assert!(ok(json!({"iat": NOW - 1, "exp": NOW + 1})));
        assert!(ok(
            json!({"iat": NOW as f64 - 1.5, "exp": NOW as f64 + 1.5})
        ));
        assert_eq!(
            check(&s, &HOUR, json!({"exp": NOW + 1})),
            Err(JwtError::MissingClaim("iat"))
        );
        assert_eq!(
            check(&s, &HOUR, json!({"iat": NOW})),
            Err(JwtError::MissingClaim("exp"))
        );
        // The leeway on exp.
        let open = |c: Value| check(&s, &OPEN, c).is_ok();
        assert!(open(json!({"exp": NOW - 59})));
        assert!(!open(json!({"exp": NOW - 60})));
        assert!(open(json!({"exp": NOW + 1, "nbf": NOW + 60})));
        assert!(!open(json!({"exp": NOW + 1, "nbf": NOW + 61})));
    }

    #[test]
    fn form_alg_key_and_signature() {
        let s = signer();
        let other = signer();
        let keys = KeySet::of_signer(&s);
        let t = s.sign_jwt(&json!({"exp": NOW + 10})).unwrap();
        assert!(decode(&t).unwrap().verify(&keys, &OPEN, NOW).is_ok());
        assert!(
            decode(&format!(" {t}\n"))
                .unwrap()
                .verify(&keys, &OPEN, NOW)
                .is_ok()
        );
        assert_eq!(decode("a.b").unwrap_err(), JwtError::NotCompact);
        assert_eq!(decode("a.b.c.d").unwrap_err(), JwtError::NotCompact);
        assert_eq!(
            decode("!.e30.AA").unwrap_err(),
            JwtError::BadPart(Part::Header)
        );
        assert_eq!(
            decode("e30.W10.AA").unwrap_err(),
            JwtError::BadPart(Part::Claims)
        );
        let (signed, _) = t.rsplit_once('.').unwrap();
        assert_eq!(
            decode(&format!("{signed}.*")).unwrap_err(),
            JwtError::BadPart(Part::Signature)
        );
        // Another key, the same kid-less set: the signature fails.
        let wrong = KeySet::from_pkcs1_der(None, other.public_key_der());
        assert_eq!(
            decode(&t).unwrap().verify(&wrong, &OPEN, NOW).unwrap_err(),
            JwtError::BadSignature
        );
        // A set whose keys all name another kid.
        let named = KeySet::from_pkcs1_der(Some("not-it".into()), s.public_key_der());
        assert_eq!(
            decode(&t).unwrap().verify(&named, &OPEN, NOW).unwrap_err(),
            JwtError::UnknownKey {
                kid: Some(s.kid.clone())
            }
        );
        // alg none, HS256: refused before any key is tried.
        let claims = URL_SAFE_NO_PAD.encode(br#"{"exp":9999999999}"#);
        for alg in ["none", "HS256", "RS512"] {
            let h = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"{alg}"}}"#));
            let tok = format!("{h}.{claims}.");
            assert_eq!(
                decode(&tok).unwrap().verify(&keys, &OPEN, NOW).unwrap_err(),
                JwtError::Alg(alg.into())
            );
        }
        // Claims altered after signing.
        let (h, rest) = t.split_once('.').unwrap();
        let sig = rest.rsplit_once('.').unwrap().1;
        let forged = format!(
            "{h}.{}.{sig}",
            URL_SAFE_NO_PAD.encode(br#"{"exp":9999999999}"#)
        );
        assert_eq!(
            decode(&forged)
                .unwrap()
                .verify(&keys, &OPEN, NOW)
                .unwrap_err(),
            JwtError::BadSignature
        );
    }

    #[test]
    fn jwks_documents() {
        let s = signer();
        let doc = json!({"keys": [
            {"kty": "EC", "kid": "ec", "crv": "P-256"},
            {"kty": "RSA", "use": "enc", "kid": "enc", "n": "AQAB", "e": "AQAB"},
            s.jwk(),
        ]});
        let keys = KeySet::from_jwks(&doc).unwrap();
        let t = s.sign_jwt(&json!({"exp": NOW + 10})).unwrap();
        assert!(decode(&t).unwrap().verify(&keys, &OPEN, NOW).is_ok());
        assert_eq!(
            KeySet::from_jwks(&json!({"nokeys": []})),
            Err(JwksError::NoKeysList)
        );
        assert_eq!(
            KeySet::from_jwks(&json!({"keys": [{"kty": "EC"}]})),
            Err(JwksError::NoRsaKey)
        );
        assert_eq!(
            KeySet::from_jwks(&json!({"keys": [{"kty": "RSA", "n": "*", "e": "AQAB"}]})),
            Err(JwksError::NotBase64 {
                index: 0,
                member: "n"
            })
        );
    }
}
