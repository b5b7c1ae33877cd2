//! Lifetimes in the local cloud never overflow and keep the real services'
//! limits, at each place a token's times are checked: self-signed
//! service-account JWTs used as bearer tokens and jwt-bearer assertions (at most
//! an hour, as Google), OIDC subject tokens at Google's STS (at most a day),
//! ID tokens at AWS's AssumeRoleWithWebIdentity, and AWS session durations.
//! Every case uses the extremes (`i64::MIN`/`i64::MAX`, `exp` before `iat`,
//! numbers no clock reaches) next to the values that must still pass.

mod common;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::{issuer_key, key_from_pem};
use keyway_testkit::worlds::fill;
use keyway_testkit::{Api, Creds, Local, NOW, xml};
use serde_json::{Value, json};

const SA: &str = "signer@jwt-proj.iam.gserviceaccount.com";
const NUMBER: &str = "555000000001";
const ACCOUNT: &str = "111122223333";
const ISSUER: &str = "https://issuer.example.com";
const MIN: i64 = i64::MIN;
const MAX: i64 = i64::MAX;

fn world(jwks: &str) -> String {
    fill(
        include_str!("worlds/token_lifetimes.toml"),
        &[
            ("NUMBER", NUMBER),
            ("ISSUER", ISSUER),
            ("ACCOUNT", ACCOUNT),
            ("jwks", jwks),
        ],
    )
}

struct T {
    e: Local,
    issuer: aws_lc_rs::signature::RsaKeyPair,
    sa_key: aws_lc_rs::signature::RsaKeyPair,
    sa_kid: String,
}

async fn setup() -> T {
    let (issuer, jwks) = issuer_key("iss-1");
    let e = Local::open(&world(&jwks));
    let (_, minted) = e.cloud.mint_key(SA).unwrap().unwrap();
    T {
        e,
        issuer,
        sa_key: key_from_pem(&minted.private_pem),
        sa_kid: minted.key_id,
    }
}

impl T {
    fn sa_jwt(&self, claims: Value) -> String {
        keyway_cloud::crypto::sign_rs256(
            &self.sa_key,
            &json!({"alg": "RS256", "typ": "JWT", "kid": self.sa_kid}),
            &claims,
        )
        .unwrap()
    }

    fn issuer_jwt(&self, claims: Value) -> String {
        keyway_cloud::crypto::sign_rs256(
            &self.issuer,
            &json!({"alg": "RS256", "typ": "JWT", "kid": "iss-1"}),
            &claims,
        )
        .unwrap()
    }

    /// A form POST to the Google or the AWS API (through its router).
    async fn form(&self, api: &Api, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let r = api.form(path, None, form).await;
        (r.status, r.text())
    }
}

async fn bearer(t: &T, jwt: String) -> (u16, String) {
    let r =
        t.e.google
            .get(
                "/v1/projects/jwt-proj/secrets/s/versions/latest:access",
                &[("authorization", &format!("Bearer {jwt}"))],
            )
            .await;
    (r.status, r.text())
}

async fn grant(t: &T, assertion: String) -> (u16, String) {
    t.form(
        &t.e.google,
        "/token",
        &[
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", &assertion),
        ],
    )
    .await
}

async fn exchange(t: &T, token: String) -> (u16, String) {
    let aud = format!(
        "//iam.googleapis.com/projects/{NUMBER}/locations/global/workloadIdentityPools/oidc-pool/providers/ext-oidc"
    );
    t.form(
        &t.e.google,
        "/v1/token",
        &[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", &aud),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", &token),
            ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
        ],
    )
    .await
}

/// `(iat, exp)` pairs no issuer may use, whatever the limit: overflowing
/// differences, `exp` before `iat`, issued far in the future, already expired.
fn never_valid() -> Vec<(Value, Value)> {
    vec![
        (json!(MIN), json!(MAX)),
        (json!(MAX), json!(MIN)),
        (json!(MIN), json!(MIN)),
        (json!(MAX), json!(MAX)),
        (json!(NOW), json!(MAX)),
        (json!(MIN), json!(NOW + 60)),
        (json!(NOW + 60), json!(NOW + 30)),
        (json!(NOW + 3600), json!(NOW + 3700)),
        (json!(NOW - 7200), json!(NOW - 3600)),
        // Numbers outside i64, or not numbers at all.
        (json!(NOW), json!(1e300)),
        (json!(-1e300), json!(NOW + 60)),
        (json!(NOW), json!(u64::MAX)),
        (json!(NOW), json!("9999999999")),
        (json!(NOW), Value::Null),
    ]
}

#[tokio::test]
async fn self_signed_service_account_jwts_live_at_most_an_hour() {
    let t = setup().await;
    let claims = |iat: Value, exp: Value| json!({"iss": SA, "sub": SA, "aud": "https://secretmanager.googleapis.com/", "iat": iat, "exp": exp});
    // Authenticated (IAM then refuses: the account has no role on the secret).
    for (iat, exp) in [
        (NOW, NOW + 3600),
        (NOW - 3000, NOW + 600),
        (NOW + 299, NOW + 600),
    ] {
        let (s, b) = bearer(&t, t.sa_jwt(claims(json!(iat), json!(exp)))).await;
        assert_eq!(s, 403, "iat {iat}, exp {exp}: {b}");
        assert!(b.contains("IAM_PERMISSION_DENIED"), "{b}");
    }
    let mut refused = never_valid();
    refused.push((json!(NOW), json!(NOW + 3601)));
    refused.push((json!(NOW - 3601), json!(NOW + 1)));
    for (iat, exp) in refused {
        let (s, b) = bearer(&t, t.sa_jwt(claims(iat.clone(), exp.clone()))).await;
        assert_eq!(s, 401, "iat {iat}, exp {exp}: {b}");
        assert!(b.contains("UNAUTHENTICATED"), "{b}");
    }
}

#[tokio::test]
async fn jwt_bearer_assertions_live_at_most_an_hour() {
    let t = setup().await;
    let claims = |iat: Value, exp: Value| json!({"iss": SA, "scope": "https://www.googleapis.com/auth/cloud-platform", "aud": "https://oauth2.googleapis.com/token", "iat": iat, "exp": exp});
    let (s, b) = grant(&t, t.sa_jwt(claims(json!(NOW), json!(NOW + 3600)))).await;
    assert_eq!(s, 200, "{b}");
    let mut refused = never_valid();
    refused.push((json!(NOW), json!(NOW + 3601)));
    for (iat, exp) in refused {
        let (s, b) = grant(&t, t.sa_jwt(claims(iat.clone(), exp.clone()))).await;
        assert_eq!(s, 400, "iat {iat}, exp {exp}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["error"], "invalid_grant", "{b}");
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .starts_with("Invalid JWT"),
            "{b}"
        );
    }
    // The times are checked only once the signature holds: a forged token with
    // the extremes is a bad signature, not a lifetime problem.
    let good = t.sa_jwt(claims(json!(NOW), json!(NOW + 60)));
    let (h, rest) = good.split_once('.').unwrap();
    let sig = rest.split_once('.').unwrap().1;
    let forged = format!(
        "{h}.{}.{sig}",
        URL_SAFE_NO_PAD.encode(claims(json!(MIN), json!(MAX)).to_string())
    );
    let (s, b) = grant(&t, forged).await;
    assert_eq!(s, 400);
    assert!(b.contains("Invalid JWT Signature."), "{b}");
}

#[tokio::test]
async fn oidc_subject_tokens_at_google_sts_live_at_most_a_day() {
    let t = setup().await;
    let claims = |iat: Value, exp: Value| json!({"iss": ISSUER, "aud": "my-aud", "sub": "job-1", "iat": iat, "exp": exp});
    for (iat, exp) in [(NOW, NOW + 24 * 3600), (NOW + 299, NOW + 600)] {
        let (s, b) = exchange(&t, t.issuer_jwt(claims(json!(iat), json!(exp)))).await;
        assert_eq!(s, 200, "iat {iat}, exp {exp}: {b}");
    }
    let mut refused = never_valid();
    refused.push((json!(NOW), json!(NOW + 24 * 3600 + 1)));
    for (iat, exp) in refused {
        let (s, b) = exchange(&t, t.issuer_jwt(claims(iat.clone(), exp.clone()))).await;
        assert_eq!(s, 400, "iat {iat}, exp {exp}: {b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        assert_eq!(v["error"], "invalid_grant", "{b}");
    }
}

async fn web_identity(t: &T, token: &str, duration: Option<&str>) -> (u16, String) {
    let mut form = vec![
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", "arn:aws:iam::111122223333:role/web"),
        ("RoleSessionName", "lifetimes"),
        ("WebIdentityToken", token),
    ];
    if let Some(d) = duration {
        form.push(("DurationSeconds", d));
    }
    t.form(&t.e.aws_api, "/", &form).await
}

#[tokio::test]
async fn web_identity_token_times_never_overflow() {
    let t = setup().await;
    let claims = |extra: Value| {
        let mut c = json!({"iss": ISSUER, "aud": "sts.amazonaws.com", "sub": "job-1", "iat": NOW, "exp": NOW + 3600});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    for extra in [
        json!({}),
        json!({"iat": NOW - 3600, "exp": NOW - 30}),
        json!({"iat": NOW + 59, "nbf": NOW + 59}),
    ] {
        let (s, x) = web_identity(&t, &t.issuer_jwt(claims(extra.clone())), None).await;
        assert_eq!(s, 200, "{extra}: {x}");
    }
    for (extra, code) in [
        (json!({"iat": MIN, "exp": MAX}), "InvalidIdentityToken"),
        (json!({"iat": MAX, "exp": MIN}), "ExpiredTokenException"),
        (json!({"exp": MIN}), "ExpiredTokenException"),
        (json!({"exp": NOW - 61}), "ExpiredTokenException"),
        (json!({"nbf": MAX}), "InvalidIdentityToken"),
        (json!({"iat": MAX, "exp": MAX}), "InvalidIdentityToken"),
        (json!({"iat": NOW + 61}), "InvalidIdentityToken"),
        (
            json!({"iat": NOW + 60, "exp": NOW + 30}),
            "InvalidIdentityToken",
        ),
        (json!({"exp": 1e300}), "InvalidIdentityToken"),
        (json!({"nbf": -1e300}), "InvalidIdentityToken"),
        (json!({"exp": u64::MAX}), "InvalidIdentityToken"),
        (json!({"exp": "soon"}), "InvalidIdentityToken"),
        (json!({"exp": null}), "InvalidIdentityToken"),
    ] {
        let (s, x) = web_identity(&t, &t.issuer_jwt(claims(extra.clone())), None).await;
        assert_eq!((s, xml(&x, "Code")), (400, code.to_owned()), "{extra}: {x}");
    }
}

async fn chain(t: &T, session: &Creds, d: &str) -> (u16, String) {
    t.e.sts(
        session,
        &[
            ("Action", "AssumeRole"),
            ("RoleArn", "arn:aws:iam::111122223333:role/web"),
            ("RoleSessionName", "chained"),
            ("DurationSeconds", d),
        ],
    )
    .await
}

#[tokio::test]
async fn session_durations_keep_aws_limits() {
    let t = setup().await;
    let token = t.issuer_jwt(
        json!({"iss": ISSUER, "aud": "sts.amazonaws.com", "sub": "job-1", "iat": NOW, "exp": NOW + 3600}),
    );
    let (s, x) = web_identity(&t, &token, Some("7200")).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(
        xml(&x, "Expiration"),
        keyway_cloud::time::rfc3339_seconds((NOW + 7200) * 1000)
    );
    for (d, needle) in [
        ("899", "Member must have value greater than or equal to 900"),
        ("-1", "Member must have value greater than or equal to 900"),
        (
            "-9223372036854775808",
            "Member must have value greater than or equal to 900",
        ),
        ("7201", "exceeds the MaxSessionDuration set for this role"),
        (
            "43201",
            "Member must have value less than or equal to 43200",
        ),
        (
            "9223372036854775807",
            "Member must have value less than or equal to 43200",
        ),
        (
            "99999999999999999999999",
            "Member must have value less than or equal to 43200",
        ),
        ("1e4", "Member must be a number"),
        ("", "Member must be a number"),
    ] {
        let (s, x) = web_identity(&t, &token, Some(d)).await;
        assert_eq!(
            (s, xml(&x, "Code").as_str()),
            (400, "ValidationError"),
            "{d}: {x}"
        );
        assert!(xml(&x, "Message").contains(needle), "{d}: {x}");
    }

    // Role chaining: a session assuming a role gets at most an hour.
    let admin = t.e.user(ACCOUNT, "admin");
    let session =
        t.e.assume(&admin, "arn:aws:iam::111122223333:role/web")
            .await;
    assert_eq!(chain(&t, &session, "3600").await.0, 200);
    let (s, x) = chain(&t, &session, "3601").await;
    assert_eq!((s, xml(&x, "Code").as_str()), (400, "ValidationError"));
    assert_eq!(
        xml(&x, "Message"),
        "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining."
    );
    let (s, x) = chain(&t, &session, "9223372036854775807").await;
    assert_eq!(
        (s, xml(&x, "Code").as_str()),
        (400, "ValidationError"),
        "{x}"
    );
}
