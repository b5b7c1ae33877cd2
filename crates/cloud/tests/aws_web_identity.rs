//! STS AssumeRoleWithWebIdentity of the local cloud (through its router), unsigned
//! as the SDKs send it: a Google ID token from a VM's metadata server (over
//! loopback HTTP, on the VM's own port) and a
//! Kubernetes-style token of a declared IAM OIDC provider are exchanged for
//! temporary credentials that then authenticate; a tampered signature, an
//! unknown issuer, an audience the trust condition does not allow, an expired
//! token and a trust policy without the federated principal are refused with
//! AWS's codes and words.

mod common;

use common::claims_of;
use keyway_cloud::crypto::JwtSigner;
use keyway_testkit::worlds::fill;
use keyway_testkit::{Creds, Local, NOW, xml};
use serde_json::{Value, json};

const ACCOUNT: &str = "111122223333";
const SA_ID: &str = "104857600000000000042";
const OTHER_SA_ID: &str = "104857600000000000077";
const K8S: &str = "oidc.k8s.example.com/id/CLUSTER1";
const K8S_SUB: &str = "system:serviceaccount:payments:api";

/// The cloud on [`world`] and the Kubernetes cluster's OIDC signer.
struct T {
    env: Local,
    k8s: JwtSigner,
    _dir: tempfile::TempDir,
}

fn world(jwks_file: &str) -> String {
    fill(
        include_str!("worlds/aws_web_identity.toml"),
        &[
            ("ACCOUNT", ACCOUNT),
            ("SA_ID", SA_ID),
            ("OTHER_SA_ID", OTHER_SA_ID),
            ("K8S", K8S),
            ("K8S_SUB", K8S_SUB),
            ("jwks_file", jwks_file),
        ],
    )
}

fn role(name: &str) -> String {
    format!("arn:aws:iam::{ACCOUNT}:role/{name}")
}

async fn setup() -> T {
    let dir = tempfile::tempdir().unwrap();
    let (k8s, _) = JwtSigner::generate().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        serde_json::to_vec(&json!({"keys": [k8s.jwk()]})).unwrap(),
    )
    .unwrap();
    let env = Local::start(&world(&jwks.display().to_string())).await;
    T {
        env,
        k8s,
        _dir: dir,
    }
}

impl T {
    /// An unsigned AssumeRoleWithWebIdentity, as botocore sends it.
    async fn exchange(&self, role_arn: &str, token: &str) -> (u16, String) {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("Action", "AssumeRoleWithWebIdentity")
            .append_pair("Version", "2011-06-15")
            .append_pair("RoleArn", role_arn)
            .append_pair("RoleSessionName", "wi-test")
            .append_pair("WebIdentityToken", token)
            .finish();
        self.post(
            "application/x-www-form-urlencoded; charset=utf-8",
            body.into_bytes(),
        )
        .await
    }

    /// An unsigned POST to the AWS API (through its router).
    async fn post(&self, content_type: &str, body: Vec<u8>) -> (u16, String) {
        let r = self
            .env
            .aws_api
            .send(
                http::Request::post("/")
                    .header("content-type", content_type)
                    .body(body)
                    .unwrap(),
            )
            .await;
        (r.status, r.text())
    }

    /// An ID token from the VM's metadata server, as GCE serves it.
    async fn vm_token(&self, vm: &str, audience: &str) -> String {
        let query = format!("audience={audience}&format=full");
        let (s, token) = identity(&self.env, vm, &query).await;
        assert_eq!(s, 200);
        token
    }

    fn k8s_token(&self, claims: Value) -> String {
        self.k8s.sign_jwt(&claims).unwrap()
    }

    fn k8s_claims(&self) -> Value {
        json!({"iss": format!("https://{K8S}"), "aud": ["sts.amazonaws.com"], "sub": K8S_SUB, "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 3600})
    }
}

fn creds(x: &str) -> Creds {
    Creds {
        akid: xml(x, "AccessKeyId"),
        secret: xml(x, "SecretAccessKey"),
        token: Some(xml(x, "SessionToken")),
    }
}

/// What an answer must be: its status, `<Code>`, and what `<Message>` says.
type Refusal<'a> = (u16, &'a str, &'a str);

const DENIED: Refusal = (
    403,
    "AccessDenied",
    "Not authorized to perform sts:AssumeRoleWithWebIdentity",
);

fn invalid(message: &str) -> Refusal<'_> {
    (400, "InvalidIdentityToken", message)
}

/// Asserts the refusal; the answer's body.
#[track_caller]
fn refused((status, x): (u16, String), (want_status, code, message): Refusal) -> String {
    assert_eq!(status, want_status, "{x}");
    assert_eq!(xml(&x, "Code"), code, "{x}");
    assert!(
        xml(&x, "Message").contains(message),
        "expected '{message}' in {x}"
    );
    x
}

/// GETs an ID token from `vm`'s metadata server with this query.
async fn identity(e: &Local, vm: &str, query: &str) -> (u16, String) {
    let md = &e.ep().instances[vm].metadata;
    let path = "computeMetadata/v1/instance/service-accounts/default/identity";
    let url = format!("http://{md}/{path}?{query}");
    e.request("GET", &url, &[("Metadata-Flavor", "Google")])
        .await
}

#[tokio::test]
async fn metadata_id_tokens_carry_googles_claims() {
    let t = setup().await;
    let full = claims_of(&t.vm_token("etl-vm", "sts.amazonaws.com").await);
    assert_eq!(full["iss"], "https://accounts.google.com");
    assert_eq!(full["aud"], "sts.amazonaws.com");
    assert_eq!(full["azp"], SA_ID, "azp is the account's unique id");
    assert_eq!(full["sub"], SA_ID);
    assert_eq!(full["email"], "etl-runner@etl-prod.iam.gserviceaccount.com");
    assert_eq!(full["google"]["compute_engine"]["instance_name"], "etl-vm");
    // The standard format carries no email and no instance details.
    let (_, std_token) = identity(&t.env, "etl-vm", "audience=x").await;
    let std = claims_of(&std_token);
    assert_eq!(std["sub"], SA_ID);
    assert!(
        std.get("email").is_none() && std.get("google").is_none(),
        "{std}"
    );
}

#[tokio::test]
async fn a_google_vm_token_becomes_a_role_session() {
    let t = setup().await;
    let token = t.vm_token("etl-vm", "sts.amazonaws.com").await;
    let (s, x) = t.exchange(&role("gcp-reader"), &token).await;
    assert_eq!(s, 200, "{x}");
    assert!(x.starts_with("<AssumeRoleWithWebIdentityResponse"), "{x}");
    assert_eq!(xml(&x, "SubjectFromWebIdentityToken"), SA_ID);
    assert_eq!(
        xml(&x, "Audience"),
        SA_ID,
        "Google's aud key is the token's azp"
    );
    assert_eq!(xml(&x, "Provider"), "accounts.google.com");
    let session = format!("arn:aws:sts::{ACCOUNT}:assumed-role/gcp-reader/wi-test");
    assert_eq!(xml(&x, "Arn"), session);
    assert!(xml(&x, "AccessKeyId").starts_with("ASIA"));
    assert!(!x.contains(&token), "the token is not echoed");
    // The credentials authenticate as the session.
    let (s, who) = t
        .env
        .sts(&creds(&x), &[("Action", "GetCallerIdentity")])
        .await;
    assert_eq!(s, 200, "{who}");
    assert_eq!(xml(&who, "Arn"), session);
}

#[tokio::test]
async fn a_kubernetes_token_of_a_declared_oidc_provider_becomes_a_role_session() {
    let t = setup().await;
    let (s, x) = t
        .exchange(&role("k8s-reader"), &t.k8s_token(t.k8s_claims()))
        .await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(xml(&x, "SubjectFromWebIdentityToken"), K8S_SUB);
    assert_eq!(xml(&x, "Audience"), "sts.amazonaws.com");
    assert_eq!(xml(&x, "Provider"), format!("https://{K8S}"));
    // Another subject of the same cluster is not in the trust condition; an
    // audience outside the provider's client id list.
    let cases = [
        ("sub", json!("system:serviceaccount:payments:batch"), DENIED),
        ("aud", json!("vault"), invalid("Incorrect token audience")),
    ];
    for (claim, value, want) in cases {
        let mut c = t.k8s_claims();
        c[claim] = value;
        refused(t.exchange(&role("k8s-reader"), &t.k8s_token(c)).await, want);
    }
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    let t = setup().await;
    let token = t.vm_token("etl-vm", "sts.amazonaws.com").await;
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig = sig.as_bytes().to_vec();
    sig[10] = if sig[10] == b'A' { b'B' } else { b'A' };
    let tampered = format!("{head}.{}", String::from_utf8(sig).unwrap());
    // Claims changed under the original signature.
    let mut c = claims_of(&token);
    c["azp"] = json!(OTHER_SA_ID);
    use base64::Engine;
    let forged = format!(
        "{}.{}.{}",
        token.split('.').next().unwrap(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(c.to_string()),
        token.rsplit('.').next().unwrap()
    );
    // A token of the OIDC provider signed with another key.
    let (stranger, _) = JwtSigner::generate().unwrap();
    let strange = stranger.sign_jwt(&t.k8s_claims()).unwrap();
    let cases = [
        ("gcp-reader", tampered.as_str(), "signature"),
        ("gcp-reader", &forged, "signature"),
        ("k8s-reader", &strange, ""),
        ("gcp-reader", "not-a-jwt", "not a valid JWT"),
    ];
    for (name, token, message) in cases {
        refused(t.exchange(&role(name), token).await, invalid(message));
    }
}

#[tokio::test]
async fn an_issuer_without_an_oidc_provider_is_refused() {
    let t = setup().await;
    // Validly signed by the cloud's own key, but claiming another issuer.
    let claims = json!({"iss": "https://token.actions.githubusercontent.com", "aud": "sts.amazonaws.com", "sub": "repo:x/y:ref:refs/heads/main", "iat": NOW, "exp": NOW + 600});
    let token = t.env.cloud.sign_id_token(claims).unwrap();
    let no_provider = "No OpenIDConnect provider found";
    refused(
        t.exchange(&role("gcp-reader"), &token).await,
        invalid(&format!(
            "{no_provider} in your account for https://token.actions.githubusercontent.com"
        )),
    );
    // The provider is declared in another account than the role's.
    let other = "arn:aws:iam::444455556666:role/k8s-reader";
    let k8s = t.k8s_token(t.k8s_claims());
    refused(t.exchange(other, &k8s).await, invalid(no_provider));
}

#[tokio::test]
async fn a_service_account_outside_the_trust_condition_is_refused() {
    let t = setup().await;
    // A VM of the same project, whose service account is not the one the
    // role names; the right account with another audience fails the `oaud`
    // condition.
    for (vm, audience) in [
        ("other-vm", "sts.amazonaws.com"),
        ("etl-vm", "https://example.com/app"),
    ] {
        let token = t.vm_token(vm, audience).await;
        refused(t.exchange(&role("gcp-reader"), &token).await, DENIED);
    }
}

#[tokio::test]
async fn an_expired_token_is_refused_with_aws_words() {
    let t = setup().await;
    let google = |iat: i64, exp: i64| {
        let claims = json!({"iss": "https://accounts.google.com", "aud": "sts.amazonaws.com", "azp": SA_ID, "sub": SA_ID, "iat": iat, "exp": exp});
        t.env.cloud.sign_id_token(claims).unwrap()
    };
    let exp = NOW - 3600;
    let expired = format!(
        "Token expired: current date/time {NOW} must be before the expiration date/time {exp}"
    );
    let answer = t
        .exchange(&role("gcp-reader"), &google(exp - 3600, exp))
        .await;
    refused(answer, (400, "ExpiredTokenException", &expired));
    // Within the minute of leeway it is still accepted.
    let (s, x) = t
        .exchange(&role("gcp-reader"), &google(NOW - 3600, NOW - 30))
        .await;
    assert_eq!(s, 200, "{x}");
    // Not valid before a time well in the future.
    let mut c = t.k8s_claims();
    c["nbf"] = json!(NOW + 3600);
    let answer = t.exchange(&role("k8s-reader"), &t.k8s_token(c)).await;
    refused(answer, invalid("not valid yet"));
}

#[tokio::test]
async fn a_trust_policy_without_the_federated_principal_is_refused() {
    let t = setup().await;
    let token = t.vm_token("etl-vm", "sts.amazonaws.com").await;
    for r in ["no-federation", "wrong-action", "missing-role"] {
        refused(t.exchange(&role(r), &token).await, DENIED);
    }
}

#[tokio::test]
async fn parameters_are_validated_and_the_token_never_echoed() {
    let t = setup().await;
    let token = t.vm_token("etl-vm", "sts.amazonaws.com").await;
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("Action", "AssumeRoleWithWebIdentity")
        .append_pair("RoleArn", &role("gcp-reader"))
        .append_pair("RoleSessionName", "wi-test")
        .append_pair("WebIdentityToken", &token)
        .append_pair("DurationSeconds", "100")
        .finish();
    let answer = t
        .post("application/x-www-form-urlencoded", body.into_bytes())
        .await;
    let validation = |message| (400, "ValidationError", message);
    refused(answer, validation("greater than or equal to 900"));
    let long = "x".repeat(20001);
    let x = refused(
        t.exchange(&role("gcp-reader"), &long).await,
        validation("webIdentityToken"),
    );
    assert!(!x.contains("xxxx"), "{x}");
}
