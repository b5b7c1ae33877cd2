//! Workload Identity Federation in the local cloud, end to end through its routers:
//! AWS subject tokens signed for real with the `aws-sigv4` crate (with the keys
//! of a world IAM user, or temporary credentials the cloud's AWS STS issued),
//! exchanged at `/v1/token`, then used to impersonate a service account and to
//! read Secret Manager directly; OIDC ID tokens from the local issuer and from
//! a foreign issuer with an inline JWKS; and every refusal, worded as Google's.

mod common;

use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::{claims_of, issuer_key, sign_sts};
use keyway_cloud::cloud::CredSource;
use keyway_testkit::CLOUD_PLATFORM as CP;
use keyway_testkit::worlds::fill;
use keyway_testkit::{Creds, Local, NOW};
use serde_json::{Value, json};

const NUMBER: &str = "424242424242";
const SA: &str = "wif-runner@fed-proj.iam.gserviceaccount.com";
const SA2: &str = "deep-runner@fed-proj.iam.gserviceaccount.com";

fn pool(p: &str) -> String {
    format!("projects/{NUMBER}/locations/global/workloadIdentityPools/{p}")
}

fn audience(p: &str, provider: &str) -> String {
    format!("//iam.googleapis.com/{}/providers/{provider}", pool(p))
}

fn world(jwks: &str) -> String {
    fill(
        include_str!("worlds/federation.toml"),
        &[
            ("NUMBER", NUMBER),
            ("SA", SA),
            ("SA2", SA2),
            ("jwks", jwks),
            ("aws_pool", &pool("aws-pool")),
            ("oidc_pool", &pool("oidc-pool")),
        ],
    )
}

/// The scope google-auth asks for when it impersonates, and the subject
/// token types of AWS and OIDC.
const IAM: &str = "https://www.googleapis.com/auth/iam";
const AWS4: &str = "urn:ietf:params:aws:token-type:aws4_request";
const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";

struct Fed {
    e: Local,
    ext_key: aws_lc_rs::signature::RsaKeyPair,
}

async fn start() -> Fed {
    let (ext_key, jwks) = issuer_key("ext-1");
    let e = Local::open(&world(&jwks));
    Fed { e, ext_key }
}

/// How a client shapes the serialized request.
#[derive(Clone, Copy)]
enum Style {
    /// google-auth (Python): target header added after signing, lowercase keys, URL-encoded JSON.
    Python,
    /// Go/Rust clients: target header signed, canonical-case keys, JSON not encoded again.
    Go,
}

/// A GetCallerIdentity request signed with `aws-sigv4` at `at` (seconds), serialized as a subject token.
fn subject_token(c: &Creds, region: &str, target: &str, at: i64, style: Style) -> String {
    let host = if region == "us-east-1-global" {
        "sts.amazonaws.com".to_owned()
    } else {
        format!("sts.{region}.amazonaws.com")
    };
    let scope_region = if region == "us-east-1-global" {
        "us-east-1"
    } else {
        region
    };
    let url = format!("https://{host}?Action=GetCallerIdentity&Version=2011-06-15");
    let mut headers: Vec<(String, String)> = vec![("host".into(), host.clone())];
    if matches!(style, Style::Go) {
        headers.push(("x-goog-cloud-target-resource".into(), target.to_owned()));
    }
    let signable = SignableRequest::new(
        "POST",
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(b""),
    )
    .unwrap();
    let instructions = sign_sts(signable, c, scope_region, at, SigningSettings::default());
    let mut all: Vec<(String, String)> = instructions
        .headers()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    all.extend(headers);
    if matches!(style, Style::Python) {
        all.push(("x-goog-cloud-target-resource".into(), target.to_owned()));
    }
    let canon = |k: &str| {
        k.split('-')
            .map(|w| {
                let mut c = w.chars();
                c.next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("-")
    };
    let headers: Vec<Value> = all
        .iter()
        .map(|(k, v)| json!({"key": if matches!(style, Style::Go) { canon(k) } else if k == "authorization" { "Authorization".to_owned() } else { k.clone() }, "value": v}))
        .collect();
    let body = json!({"url": url, "method": "POST", "headers": headers}).to_string();
    match style {
        Style::Python => {
            percent_encoding::utf8_percent_encode(&body, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        }
        Style::Go => body,
    }
}

impl Fed {
    /// The Google base URL the in-process API answers as.
    fn base(&self) -> String {
        format!("http://{}", self.e.google.host())
    }

    async fn exchange(
        &self,
        audience: &str,
        token: &str,
        token_type: &str,
        scope: &str,
    ) -> (u16, Value) {
        let form = [
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience),
            ("scope", scope),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", token),
            ("subject_token_type", token_type),
        ];
        let r = self.e.google.form("/v1/token", None, &form).await;
        (r.status, serde_json::from_slice(&r.body).unwrap())
    }

    async fn aws_token(
        &self,
        c: &Creds,
        provider: &str,
        style: Style,
        scope: &str,
    ) -> (u16, Value) {
        let aud = audience("aws-pool", provider);
        let t = subject_token(c, "us-east-2", &aud, NOW, style);
        self.exchange(&aud, &t, AWS4, scope).await
    }

    /// [`Fed::aws_token`] that must succeed: the answer.
    async fn aws_ok(&self, c: &Creds, provider: &str, style: Style, scope: &str) -> Value {
        let (s, t) = self.aws_token(c, provider, style, scope).await;
        assert_eq!(s, 200, "{t}");
        t
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        bearer: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.e.google.call(method, path, Some(bearer), body).await
    }

    async fn impersonate(&self, bearer: &str, sa: &str, body: Value) -> (u16, Value) {
        self.call(
            "POST",
            &format!("/v1/projects/-/serviceAccounts/{sa}:generateAccessToken"),
            bearer,
            Some(body),
        )
        .await
    }

    async fn id_token(&self, bearer: &str, body: Value) -> (u16, Value) {
        let path = format!("/v1/projects/-/serviceAccounts/{SA}:generateIdToken");
        self.call("POST", &path, bearer, Some(body)).await
    }

    /// Exchanges each `(audience, subject token, its type)` and asserts the
    /// refusal: the error and what its description names.
    async fn refusals(&self, cases: &[(&str, &str, &str, &str, &str)]) {
        for (aud, token, token_type, error, needle) in cases {
            let r = self.exchange(aud, token, token_type, CP).await;
            assert_refused(&r, error, needle);
        }
    }

    async fn access(&self, bearer: &str, secret: &str) -> (u16, Value) {
        self.call(
            "GET",
            &format!("/v1/projects/fed-proj/secrets/{secret}/versions/latest:access"),
            bearer,
            None,
        )
        .await
    }
}

fn payload(v: &Value) -> String {
    String::from_utf8(
        STANDARD
            .decode(v["payload"]["data"].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// A time as Google's APIs write it.
fn rfc3339(secs: i64) -> String {
    let t = jiff::Timestamp::from_second(secs).unwrap();
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

const GRANT: &str = "invalid_grant";
const REQUEST: &str = "invalid_request";

fn assert_refused(r: &(u16, Value), error: &str, needle: &str) {
    assert_eq!(r.0, 400, "{}", r.1);
    assert_eq!(r.1["error"], error, "{}", r.1);
    let d = r.1["error_description"].as_str().unwrap();
    assert!(d.contains(needle), "description {d:?} lacks {needle:?}");
}

#[tokio::test]
async fn aws_user_exchanges_impersonates_and_reads_a_secret() {
    let f = start().await;
    let admin = f.e.user("111111111111", "admin");
    let t = f.aws_ok(&admin, "aws-main", Style::Python, IAM).await;
    assert_eq!(
        t["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(t["token_type"], "Bearer");
    assert!(t["expires_in"].as_i64().unwrap() > 0 && t["expires_in"].as_i64().unwrap() <= 3600);
    let fed = t["access_token"].as_str().unwrap();
    let caller = f.e.cloud.verify_access_token(fed).unwrap();
    assert_eq!(
        caller.member,
        format!(
            "principal://iam.googleapis.com/{}/subject/arn:aws:iam::111111111111:user/admin",
            pool("aws-pool")
        )
    );
    assert_eq!(
        caller.federated.as_ref().unwrap().attributes["account"],
        "111111111111"
    );
    let info: Value = serde_json::from_slice(
        &f.e.google
            .get(&format!("/tokeninfo?access_token={fed}"), &[])
            .await
            .body,
    )
    .unwrap();
    assert_eq!(info["sub"], caller.member.as_str());
    assert!(info.get("email").is_none(), "{info}");

    // The federated token (scope iam, as google-auth asks when impersonating) cannot read secrets itself.
    let (s, b) = f.access(fed, "db-pass").await;
    assert_eq!(s, 403, "{b}");

    let (s, b) = f
        .impersonate(
            fed,
            SA,
            json!({"delegates": null, "scope": [CP], "lifetime": "3600s"}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let sa_token = b["accessToken"].as_str().unwrap();
    let expire = b["expireTime"].as_str().unwrap();
    assert_eq!(expire, rfc3339(NOW + 3600));
    let (s, b) = f.access(sa_token, "db-pass").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(payload(&b), "s3cr3t-db");
    // The service account was not granted direct-secret.
    assert_eq!(f.access(sa_token, "direct-secret").await.0, 403);
}

/// `[settings] token_lifetime_secs` shortens every token the cloud issues:
/// STS's federated token, impersonated access tokens whatever lifetime is
/// asked, and ID tokens (brokers and clients are tested across refreshes).
#[tokio::test]
async fn a_world_with_short_token_lifetimes_caps_every_issuer() {
    let (ext_key, jwks) = issuer_key("ext-1");
    let e = Local::open(&format!(
        "[settings]\ntoken_lifetime_secs = 30\n{}",
        world(&jwks)
    ));
    let f = Fed { e, ext_key };
    let admin = f.e.user("111111111111", "admin");
    let t = f.aws_ok(&admin, "aws-main", Style::Python, IAM).await;
    assert_eq!(t["expires_in"], 30, "{t}");
    let fed = t["access_token"].as_str().unwrap();
    let (s, b) = f
        .impersonate(fed, SA, json!({"scope": [CP], "lifetime": "3600s"}))
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["expireTime"], rfc3339(NOW + 30), "{b}");
    let (s, b) = f
        .id_token(fed, json!({"audience": "https://broker.example"}))
        .await;
    assert_eq!(s, 200, "{b}");
    let claims = claims_of(b["token"].as_str().unwrap());
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        30
    );
}

#[tokio::test]
async fn a_federated_token_reads_a_secret_bound_to_its_principal_set() {
    let f = start().await;
    let nobody = f.e.user("111111111111", "nobody");
    let t = f.aws_ok(&nobody, "aws-main", Style::Python, CP).await;
    let fed = t["access_token"].as_str().unwrap();
    let (s, b) = f.access(fed, "direct-secret").await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(payload(&b), "direct-value");
    // Not bound on db-pass, and not allowed to impersonate (no workloadIdentityUser for this subject).
    assert_eq!(f.access(fed, "db-pass").await.0, 403);
    let (s, b) = f.impersonate(fed, SA, json!({"scope": [CP]})).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(b["error"]["status"], "PERMISSION_DENIED");
    assert_eq!(
        b["error"]["message"],
        "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist)."
    );
    assert_eq!(b["error"]["details"][0]["reason"], "IAM_PERMISSION_DENIED");
    // A service account that does not exist gets the same answer.
    let (s, b2) = f
        .impersonate(
            fed,
            "ghost-sa@fed-proj.iam.gserviceaccount.com",
            json!({"scope": [CP]}),
        )
        .await;
    assert_eq!((s, &b2["error"]["message"]), (403, &b["error"]["message"]));
}

#[tokio::test]
async fn role_session_credentials_in_the_go_shape_are_accepted() {
    let f = start().await;
    let admin = f.e.user("111111111111", "admin");
    let session =
        f.e.assume(&admin, "arn:aws:iam::111111111111:role/deployer")
            .await;
    assert!(session.akid.starts_with("ASIA"));
    let t = f.aws_ok(&session, "aws-main", Style::Go, IAM).await;
    let fed = t["access_token"].as_str().unwrap();
    let caller = f.e.cloud.verify_access_token(fed).unwrap();
    assert!(
        caller
            .member
            .ends_with("/subject/arn:aws:sts::111111111111:assumed-role/deployer/test"),
        "{}",
        caller.member
    );
    let (s, b) = f
        .impersonate(fed, SA, json!({"scope": [CP], "lifetime": "600s"}))
        .await;
    assert_eq!(s, 200, "{b}");
    // Google's default AWS mapping: attribute.aws_role is the role ARN without the session.
    let t = f.aws_ok(&session, "aws-dflt", Style::Python, CP).await;
    let fed = t["access_token"].as_str().unwrap();
    let caller = f.e.cloud.verify_access_token(fed).unwrap();
    assert_eq!(
        caller.federated.as_ref().unwrap().attributes["aws_role"],
        "arn:aws:sts::111111111111:assumed-role/deployer"
    );
    let (s, b) = f.access(fed, "direct-secret").await;
    assert_eq!(s, 200, "{b}");
    // The global endpoint (sts.amazonaws.com, scoped to us-east-1) works too.
    let aud = audience("aws-pool", "aws-main");
    let tok = subject_token(&session, "us-east-1-global", &aud, NOW, Style::Python);
    assert_eq!(f.exchange(&aud, &tok, AWS4, CP).await.0, 200);
}

#[tokio::test]
async fn aws_refusals() {
    let f = start().await;
    let admin = f.e.user("111111111111", "admin");
    let aud = audience("aws-pool", "aws-main");

    // A tampered signature.
    let tok = subject_token(&admin, "us-east-2", &aud, NOW, Style::Python);
    let decoded = percent_encoding::percent_decode_str(&tok)
        .decode_utf8()
        .unwrap()
        .into_owned();
    let sig_at = decoded.find("Signature=").unwrap() + "Signature=".len();
    let mut bad = decoded.clone().into_bytes();
    bad[sig_at] = if bad[sig_at] == b'0' { b'1' } else { b'0' };
    let r = f
        .exchange(&aud, &String::from_utf8(bad).unwrap(), AWS4, CP)
        .await;
    assert_refused(
        &r,
        "invalid_grant",
        "Received invalid AWS response of type SignatureDoesNotMatch",
    );
    assert!(!r.1.to_string().contains(&admin.secret));

    use Style::{Go, Python};
    let sign =
        |c: &Creds, target: &str, at: i64, style| subject_token(c, "us-east-2", target, at, style);
    // A secret key that is not the user's; an access key the emulated AWS never issued.
    let wrong = Creds {
        secret: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
        ..admin.clone()
    };
    let unknown = Creds {
        akid: "AKIAIOSFODNN7EXAMPLE".into(),
        ..admin.clone()
    };
    // The target-resource header names another provider than the audience
    // (also when the header is signed, as Go signs it).
    let other = audience("aws-pool", "aws-strict");
    // A provider that trusts another AWS account.
    let account = audience("aws-pool", "aws-other");
    // Not a GetCallerIdentity request, a non-STS host.
    let signed_go = sign(&admin, &aud, NOW, Go);
    let assume = signed_go.replace("GetCallerIdentity", "AssumeRole");
    let evil = signed_go.replace("sts.us-east-2.amazonaws.com", "evil.example.com");
    let tokens = [
        sign(&wrong, &aud, NOW, Python),
        sign(&unknown, &aud, NOW, Python),
        sign(&admin, &other, NOW, Python),
        sign(&admin, &other, NOW, Go),
        sign(&admin, &account, NOW, Python),
        // Signed more than 15 minutes ago, or 15 minutes ahead.
        sign(&admin, &aud, NOW - 16 * 60, Python),
        sign(&admin, &aud, NOW + 16 * 60, Python),
    ];
    let target = "x-goog-cloud-target-resource";
    f.refusals(&[
        (&aud, &tokens[0], AWS4, GRANT, "SignatureDoesNotMatch"),
        (&aud, &tokens[1], AWS4, GRANT, "InvalidClientTokenId"),
        (&aud, &tokens[2], AWS4, GRANT, target),
        (&aud, &tokens[3], AWS4, GRANT, target),
        (&account, &tokens[4], AWS4, GRANT, "222222222222"),
        (&aud, &tokens[5], AWS4, GRANT, "Signature expired"),
        (&aud, &tokens[6], AWS4, GRANT, "Signature not yet current"),
        (&aud, &assume, AWS4, REQUEST, "GetCallerIdentity"),
        (&aud, &evil, AWS4, REQUEST, "STS endpoint"),
        (
            &aud,
            "not-a-token",
            AWS4,
            REQUEST,
            "Invalid AWS subject token",
        ),
        (
            &aud,
            &sign(&admin, &aud, NOW, Python),
            JWT,
            REQUEST,
            "subject_token_type",
        ),
    ])
    .await;

    // An audience that names no provider, a disabled provider, a provider of a disabled pool.
    for a in [
        audience("aws-pool", "nope-provider"),
        audience("aws-pool", "aws-off"),
        audience("off-pool", "aws-in-off"),
        "//iam.googleapis.com/garbage".to_owned(),
    ] {
        let tok = sign(&admin, &a, NOW, Python);
        let r = f.exchange(&a, &tok, AWS4, CP).await;
        assert_refused(
            &r,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid",
        );
    }

    // 14 minutes old is still fine.
    let tok = sign(&admin, &aud, NOW - 14 * 60, Python);
    assert_eq!(f.exchange(&aud, &tok, AWS4, CP).await.0, 200);

    // The attribute condition does not hold for this caller.
    let nobody = f.e.user("111111111111", "nobody");
    assert_refused(
        &f.aws_token(&nobody, "aws-strict", Python, CP).await,
        "unauthorized_client",
        "The given credential is rejected by the attribute condition.",
    );
    assert_eq!(f.aws_token(&admin, "aws-strict", Python, CP).await.0, 200);

    // Expired session credentials.
    let session =
        f.e.assume(&admin, "arn:aws:iam::111111111111:role/deployer")
            .await;
    f.e.clock.advance_secs(2 * 3600);
    let tok = sign(&session, &aud, NOW + 2 * 3600, Python);
    f.refusals(&[(&aud, &tok, AWS4, GRANT, "ExpiredToken")])
        .await;
    f.e.clock.set_secs(NOW);

    // Another grant type.
    let r =
        f.e.google
            .form("/v1/token", None, &[("grant_type", "client_credentials")])
            .await;
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"], "unsupported_grant_type");
}

#[tokio::test]
async fn impersonation_rules() {
    let f = start().await;
    let admin = f.e.user("111111111111", "admin");
    let fed = f.aws_token(&admin, "aws-main", Style::Python, IAM).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Too long a lifetime, no scope.
    let (s, b) = f
        .impersonate(&fed, SA, json!({"scope": [CP], "lifetime": "7200s"}))
        .await;
    assert_eq!(
        (s, b["error"]["status"].as_str()),
        (400, Some("INVALID_ARGUMENT")),
        "{b}"
    );
    let (s, _) = f.impersonate(&fed, SA, json!({"scope": []})).await;
    assert_eq!(s, 400);
    // Delegation: the federated principal → wif-runner (workloadIdentityUser) → deep-runner (tokenCreator for wif-runner).
    let (s, b) = f
        .impersonate(
            &fed,
            SA2,
            json!({"scope": [CP], "delegates": [format!("projects/-/serviceAccounts/{SA}")]}),
        )
        .await;
    assert_eq!(s, 200, "{b}");
    let c =
        f.e.cloud
            .verify_access_token(b["accessToken"].as_str().unwrap())
            .unwrap();
    assert_eq!(c.member, format!("serviceAccount:{SA2}"));
    // Without the middle hop the principal has nothing on deep-runner.
    let (s, _) = f.impersonate(&fed, SA2, json!({"scope": [CP]})).await;
    assert_eq!(s, 403);
    // A token without cloud-platform or iam scope is refused before IAM.
    let narrow = f
        .aws_token(
            &admin,
            "aws-main",
            Style::Python,
            "https://www.googleapis.com/auth/devstorage.read_only",
        )
        .await
        .1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (s, b) = f.impersonate(&narrow, SA, json!({"scope": [CP]})).await;
    assert_eq!(s, 403, "{b}");
    assert_eq!(
        b["error"]["details"][0]["reason"],
        "ACCESS_TOKEN_SCOPE_INSUFFICIENT"
    );

    // ID tokens, with and without the email.
    let with_email = json!({"audience": "https://svc.example.com", "includeEmail": true});
    let (s, b) = f.id_token(&fed, with_email).await;
    assert_eq!(s, 200, "{b}");
    // Verified against the cloud's published JWKS, as a relying party would.
    let jwks =
        keyway_cloud::jwt::KeySet::from_jwks(&json!({"keys": [f.e.cloud.signer.jwk()]})).unwrap();
    let policy = keyway_cloud::jwt::Policy {
        require_iat: true,
        expiry_leeway_secs: 0,
        future_skew_secs: 0,
        max_lifetime_secs: Some(3600),
    };
    let claims = keyway_cloud::jwt::decode(b["token"].as_str().unwrap())
        .unwrap()
        .verify(&jwks, &policy, NOW)
        .unwrap()
        .claims;
    let unique = f.e.cloud.store.read().service_accounts[SA]
        .unique_id
        .clone();
    assert_eq!(claims["iss"], "https://accounts.google.com");
    assert_eq!(claims["aud"], "https://svc.example.com");
    assert_eq!(claims["sub"], unique);
    assert_eq!(claims["azp"], unique);
    assert_eq!(claims["email"], SA);
    assert_eq!(claims["email_verified"], true);
    let (_, b) = f.id_token(&fed, json!({"audience": "x"})).await;
    let claims = claims_of(b["token"].as_str().unwrap());
    assert!(claims.get("email").is_none());
}

fn ext_jwt(key: &aws_lc_rs::signature::RsaKeyPair, claims: Value) -> String {
    keyway_cloud::crypto::sign_rs256(
        key,
        &json!({"alg": "RS256", "kid": "ext-1", "typ": "JWT"}),
        &claims,
    )
    .unwrap()
}

#[tokio::test]
async fn oidc_subject_tokens() {
    let f = start().await;
    let local_aud = format!("https:{}", audience("oidc-pool", "local"));
    let good = json!({"iss": "https://accounts.google.com", "aud": local_aud, "sub": "workload-7", "iat": NOW, "exp": NOW + 600});
    let tok = f.e.cloud.sign_id_token(good.clone()).unwrap();
    let (s, t) = f
        .exchange(&audience("oidc-pool", "local"), &tok, JWT, IAM)
        .await;
    assert_eq!(s, 200, "{t}");
    let fed = t["access_token"].as_str().unwrap();
    assert!(
        f.e.cloud
            .verify_access_token(fed)
            .unwrap()
            .member
            .ends_with("/oidc-pool/subject/workload-7")
    );
    // principalSet://…/oidc-pool/* holds workloadIdentityUser on the SA.
    let (s, b) = f.impersonate(fed, SA, json!({"scope": [CP]})).await;
    assert_eq!(s, 200, "{b}");

    let aud = audience("oidc-pool", "local");
    let local = |change: &dyn Fn(&mut Value)| {
        let mut claims = good.clone();
        change(&mut claims);
        f.e.cloud.sign_id_token(claims).unwrap()
    };
    let wrong_aud = local(&|c| c["aud"] = "https://someone-else".into());
    let expired = local(&|c| c["exp"] = (NOW - 1).into());
    let wrong_iss = local(&|c| c["iss"] = "https://issuer.example.com".into());
    // Signed by a key the provider does not trust.
    let untrusted = ext_jwt(&f.ext_key, good.clone());
    // Altered claims.
    let (h, rest) = tok.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    let mut more = good.clone();
    more["sub"] = "admin".into();
    let forged = format!("{h}.{}.{sig}", URL_SAFE_NO_PAD.encode(more.to_string()));
    f.refusals(&[
        (
            &aud,
            &wrong_aud,
            JWT,
            GRANT,
            "The audience in ID Token [https://someone-else] does not match the expected audience.",
        ),
        (&aud, &expired, JWT, GRANT, "expired"),
        (&aud, &wrong_iss, JWT, GRANT, "issuer"),
        (&aud, &untrusted, JWT, GRANT, "signature"),
        (&aud, &forged, JWT, GRANT, "signature"),
    ])
    .await;

    // The foreign issuer with its inline JWKS and an explicit allowed audience.
    let ext_aud = audience("oidc-pool", "ext-issuer");
    let claims = json!({"iss": "https://issuer.example.com", "aud": ["other", "my-aud"], "sub": "ci-job-1", "iat": NOW, "exp": NOW + 300});
    let (s, t) = f
        .exchange(
            &ext_aud,
            &ext_jwt(&f.ext_key, claims.clone()),
            "urn:ietf:params:oauth:token-type:id_token",
            CP,
        )
        .await;
    assert_eq!(s, 200, "{t}");
    // The default audience is not accepted when allowed_audiences is set; the local key is not the issuer's.
    let mut c2 = claims.clone();
    c2["aud"] = format!("https:{ext_aud}").into();
    let default_audience = ext_jwt(&f.ext_key, c2);
    let local_key = f.e.cloud.sign_id_token(claims).unwrap();
    f.refusals(&[
        (&ext_aud, &default_audience, JWT, GRANT, "audience"),
        (&ext_aud, &local_key, JWT, GRANT, "signature"),
        // An AWS token at an OIDC provider.
        (&ext_aud, "x.y.z", AWS4, REQUEST, "subject_token_type"),
    ])
    .await;
}

#[tokio::test]
async fn cred_config_is_what_gcloud_writes_and_pools_read_back() {
    let f = start().await;
    let aws = |imdsv2| CredSource::Aws { imds: None, imdsv2 };
    let file = |path: &str| CredSource::File {
        path: path.into(),
        json_field: None,
    };
    let base = f.base();
    let config = |project, pool, provider, sa, source: &CredSource| {
        f.e.cloud
            .cred_config(&base, project, pool, provider, sa, source)
    };
    let cfg = config("fed-proj", "aws-pool", "aws-main", Some(SA), &aws(false)).unwrap();
    assert_eq!(
        cfg,
        json!({
            "universe_domain": "googleapis.com",
            "type": "external_account",
            "audience": audience("aws-pool", "aws-main"),
            "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
            "token_url": format!("{}/v1/token", f.base()),
            "service_account_impersonation_url": format!("{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", f.base()),
            "credential_source": {
                "environment_id": "aws1",
                "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
                "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
                "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
            },
        })
    );
    let cfg = config(NUMBER, "oidc-pool", "local", None, &file("/tmp/t")).unwrap();
    assert_eq!(cfg["credential_source"], json!({"file": "/tmp/t"}));
    assert_eq!(cfg["subject_token_type"], JWT);
    assert!(cfg.get("service_account_impersonation_url").is_none());
    assert!(config("fed-proj", "aws-pool", "aws-main", None, &file("/t")).is_err());
    assert!(config("fed-proj", "aws-pool", "nope", None, &aws(true)).is_err());

    // The IAM v1 read API, as the owner.
    let (token, _) =
        f.e.cloud
            .mint_access_token("user:owner@example.com", &[CP.to_owned()], "c");
    let (s, b) = f.call("GET", "/v1/projects/fed-proj/locations/global/workloadIdentityPools/aws-pool/providers/aws-main", &token, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        b["name"],
        format!("{}/providers/aws-main", pool("aws-pool"))
    );
    assert_eq!(b["aws"]["accountId"], "111111111111");
    assert_eq!(
        b["attributeCondition"],
        "assertion.account == '111111111111'"
    );
    let (s, b) = f.call("GET", "/v1/projects/fed-proj/locations/global/workloadIdentityPools/aws-pool/providers/aws-dflt", &token, None).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["attributeMapping"]["google.subject"], "assertion.arn");
    assert!(
        b["attributeMapping"]["attribute.aws_role"]
            .as_str()
            .unwrap()
            .contains("assumed-role")
    );
    // A principal without a role on the project sees nothing.
    let (nobody, _) =
        f.e.cloud
            .mint_access_token("user:nobody@example.com", &[CP.to_owned()], "c");
    assert_eq!(
        f.call(
            "GET",
            "/v1/projects/fed-proj/locations/global/workloadIdentityPools/aws-pool",
            &nobody,
            None
        )
        .await
        .0,
        403
    );
    let (s, b) = f
        .call(
            "GET",
            "/v1/projects/fed-proj/locations/global/workloadIdentityPools/off-pool",
            &token,
            None,
        )
        .await;
    assert_eq!((s, b["disabled"].as_bool()), (200, Some(true)));
}
