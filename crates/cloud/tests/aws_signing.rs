//! What the local cloud's SigV4 verifier refuses and accepts, through the AWS
//! router in process, as AWS does: presigned URLs (signed by the `aws-sigv4` crate) whose
//! `X-Amz-Expires` is not a number of seconds up to a week, or that are older
//! than the fifteen minutes STS and Secrets Manager give any signature;
//! signatures that leave out `host`, an `x-amz-*` header or the session token;
//! and a long-term `AKIA…` key sent with a session token. A presigned
//! GetCallerIdentity URL made by boto3 offline verifies, as EKS tokens need.

mod common;

use aws_sigv4::http_request::{
    SessionTokenMode, SignableBody, SignableRequest, SignatureLocation, SigningSettings,
};
use common::sign_sts;
use keyway_cloud::aws::sigv4;
use keyway_testkit::{Creds, Local, NOW, xml};
use serde_json::{Value, json};
use std::time::Duration;

const WORLD: &str = include_str!("worlds/aws_signing.toml");

const GCI: &str = "Action=GetCallerIdentity&Version=2011-06-15";
const SM_JSON: &str = "application/x-amz-json-1.1";
const GET_DB: &[u8] = br#"{"SecretId":"app/db"}"#;
const MISMATCH: &str = "SignatureDoesNotMatch";
const UNSIGNED: &str = "InvalidSignatureException";

/// The cloud on [`WORLD`] and its admin's keys.
fn open() -> (Local, Creds) {
    let e = Local::open(WORLD);
    let admin = e.user("111111111111", "admin");
    (e, admin)
}

/// AWS's URI encoding of a query key or value (everything but unreserved).
fn enc(s: &str) -> String {
    sigv4::uri_encode(s, false)
}

/// A URL of the cloud's AWS port presigned with `aws-sigv4` at `at`, valid
/// `expires`; `headers` (besides host) are signed and must be sent with it.
fn presign(
    e: &Local,
    c: &Creds,
    headers: &[(&str, &str)],
    expires: u64,
    at: i64,
    token: SessionTokenMode,
) -> String {
    let url = format!("http://{}/?{GCI}", e.host());
    let host = e.host();
    let mut all: Vec<(&str, &str)> = vec![("host", host.as_str())];
    all.extend_from_slice(headers);
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(Duration::from_secs(expires));
    settings.session_token_mode = token;
    let signable =
        SignableRequest::new("GET", &url, all.into_iter(), SignableBody::Bytes(b"")).unwrap();
    let instructions = sign_sts(signable, c, "us-east-1", at, settings);
    let (_, query_params) = instructions.into_parts();
    let mut out = url;
    for (k, v) in query_params {
        out.push('&');
        out.push_str(&enc(k));
        out.push('=');
        out.push_str(&enc(&v));
    }
    out
}

/// A GetCallerIdentity URL presigned as `c` at `at`, valid `expires` seconds.
fn gci_url(e: &Local, c: &Creds, expires: u64, at: i64) -> String {
    presign(e, c, &[], expires, at, SessionTokenMode::Include)
}

/// `headers` (which must hold `x-amz-date`) with a SigV4 `Authorization` that
/// lists only `signed` as signed headers, as a client that leaves headers out
/// of its signature sends it. The signature itself is right for what it lists.
fn with_authorization(
    c: &Creds,
    service: &str,
    headers: &[(String, String)],
    signed: &[&str],
    body: &[u8],
) -> Vec<(String, String)> {
    let date = headers
        .iter()
        .find(|(k, _)| k == "x-amz-date")
        .map(|(_, v)| v[..8].to_owned())
        .unwrap();
    let auth = |sig: &str| {
        format!(
            "AWS4-HMAC-SHA256 Credential={}/{date}/us-east-1/{service}/aws4_request, SignedHeaders={}, Signature={sig}",
            c.akid,
            signed.join(";")
        )
    };
    let mut with_auth = headers.to_vec();
    with_auth.push(("authorization".into(), auth("0")));
    let req = sigv4::Request {
        method: "POST",
        path: "/",
        query: "",
        headers: &with_auth,
        body,
    };
    let claimed = sigv4::parse(&req).unwrap();
    let sts = sigv4::string_to_sign(&sigv4::canonical_request(&req, &claimed), &claimed);
    let signature = sigv4::signature(&c.secret, &date, "us-east-1", service, &sts);
    with_auth.last_mut().unwrap().1 = auth(&signature);
    with_auth
}

/// The headers of a Secrets Manager GetSecretValue at [`NOW`], before any
/// authorization; `more` after them.
fn sm_headers(e: &Local, more: &[(&str, &str)]) -> Vec<(String, String)> {
    let target = "secretsmanager.GetSecretValue";
    let date = sigv4::format_amz_date(NOW);
    let fixed = [("host", e.host()), ("content-type", SM_JSON.into())];
    let fixed = fixed
        .into_iter()
        .chain([("x-amz-target", target.into()), ("x-amz-date", date)]);
    let more = more.iter().map(|(k, v)| (*k, v.to_string()));
    fixed.chain(more).map(|(k, v)| (k.to_owned(), v)).collect()
}

/// GETs a presigned URL of the cloud's AWS API (through its router).
async fn get(e: &Local, url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let target = url
        .strip_prefix(&format!("http://{}", e.host()))
        .unwrap_or_else(|| panic!("{url} is not the cloud's"));
    let r = e.aws_api.get(target, headers).await;
    (r.status, r.text())
}

async fn post(e: &Local, headers: &[(String, String)], body: &[u8]) -> (u16, String) {
    let mut r = http::Request::post("/");
    for (k, v) in headers {
        r = r.header(k, v);
    }
    let r = e.aws_api.send(r.body(body.to_vec()).unwrap()).await;
    (r.status, r.text())
}

/// An error's `json_key` (JSON answers) or `<xml_tag>` (XML ones); "" if none.
fn error_field(x: &str, json_key: &str, xml_tag: &str) -> String {
    if x.starts_with('{') {
        let v: Value = serde_json::from_str(x).unwrap();
        v[json_key].as_str().unwrap_or("").to_owned()
    } else if x.contains(&format!("<{xml_tag}>")) {
        xml(x, xml_tag)
    } else {
        String::new()
    }
}

fn code(x: &str) -> String {
    error_field(x, "__type", "Code")
}

fn message(x: &str) -> String {
    error_field(x, "Message", "Message")
}

/// Asserts an answer's status and error code; its body.
#[track_caller]
fn refused((s, x): (u16, String), status: u16, want: &str) -> String {
    assert_eq!((s, code(&x).as_str()), (status, want), "{x}");
    x
}

#[tokio::test]
async fn presigned_expires_must_be_seconds_up_to_a_week() {
    let (e, admin) = open();
    let week = gci_url(&e, &admin, 604_800, NOW);
    let (s, x) = get(&e, &week, &[]).await;
    assert_eq!(s, 200, "{x}");
    assert_eq!(xml(&x, "Arn"), "arn:aws:iam::111111111111:user/admin");

    // A week and a second, and a hundred years: aws-sigv4 signs them, AWS refuses them.
    for secs in [604_801u64, 100 * 365 * 86_400] {
        let url = gci_url(&e, &admin, secs, NOW);
        let x = refused(
            get(&e, &url, &[]).await,
            400,
            "AuthorizationQueryParametersError",
        );
        assert_eq!(
            message(&x),
            "X-Amz-Expires must be less than a week (in seconds); that is, the given X-Amz-Expires must be less than 604800 seconds",
            "{secs}"
        );
    }
    // Values no signer produces: refused before any signature is computed.
    for (v, want) in [
        ("-5", "X-Amz-Expires must be non-negative"),
        ("-9223372036854775808", "X-Amz-Expires must be non-negative"),
        ("0", "X-Amz-Expires must be at least 1 second"),
        ("abc", "X-Amz-Expires should be a number"),
        ("", "X-Amz-Expires should be a number"),
        ("1e3", "X-Amz-Expires should be a number"),
        ("+60", "X-Amz-Expires should be a number"),
        (
            "9223372036854775807",
            "X-Amz-Expires must be less than a week",
        ),
        (
            "99999999999999999999999",
            "X-Amz-Expires must be less than a week",
        ),
    ] {
        let url = week.replace("X-Amz-Expires=604800", &format!("X-Amz-Expires={v}"));
        assert_ne!(url, week);
        let x = refused(
            get(&e, &url, &[]).await,
            400,
            "AuthorizationQueryParametersError",
        );
        assert!(message(&x).starts_with(want), "{v}: {x}");
    }
}

#[tokio::test]
async fn a_presigned_url_lives_fifteen_minutes_whatever_its_expires_says() {
    let (e, admin) = open();
    let week = gci_url(&e, &admin, 604_800, NOW);
    // STS and Secrets Manager do not honour X-Amz-Expires (only S3 does): a
    // presigned request is good for the same 15 minutes as any signature.
    e.clock.advance_secs(14 * 60);
    assert_eq!(get(&e, &week, &[]).await.0, 200);
    e.clock.advance_secs(2 * 60);
    let x = refused(get(&e, &week, &[]).await, 403, MISMATCH);
    assert!(
        message(&x).starts_with("Signature expired: ") && message(&x).contains("15 min."),
        "{x}"
    );
    // Two hours later (the week-long URL of the report): still refused.
    e.clock.advance_secs(2 * 3600);
    assert_eq!(get(&e, &week, &[]).await.0, 403);

    // A short X-Amz-Expires (EKS tokens say 60) is not cut short either: AWS
    // STS accepts such a URL for its 15 minutes, and EKS relies on that.
    let cluster = |id| [("x-k8s-aws-id", id)];
    let now = e.clock_now();
    let eks = presign(
        &e,
        &admin,
        &cluster("cluster-1"),
        60,
        now,
        SessionTokenMode::Include,
    );
    e.clock.advance_secs(5 * 60);
    let (s, x) = get(&e, &eks, &cluster("cluster-1")).await;
    assert_eq!(s, 200, "{x}");
    // The signed EKS header is part of the signature.
    refused(get(&e, &eks, &cluster("cluster-2")).await, 403, MISMATCH);
    // Signed in the future beyond the skew.
    let later = gci_url(&e, &admin, 60, e.clock_now() + 16 * 60);
    let x = refused(get(&e, &later, &[]).await, 403, MISMATCH);
    assert!(message(&x).starts_with("Signature not yet current"), "{x}");
}

#[tokio::test]
async fn host_must_be_signed() {
    let (e, admin) = open();
    let body = GCI.as_bytes().to_vec();
    let headers = vec![
        ("host".to_owned(), e.host()),
        (
            "content-type".to_owned(),
            "application/x-www-form-urlencoded; charset=utf-8".to_owned(),
        ),
        ("x-amz-date".to_owned(), sigv4::format_amz_date(NOW)),
    ];
    // The control: host and the date signed.
    let sent = with_authorization(&admin, "sts", &headers, &["host", "x-amz-date"], &body);
    assert_eq!(post(&e, &sent, &body).await.0, 200);
    for signed in [&["x-amz-date"][..], &["content-type", "x-amz-date"], &[]] {
        let sent = with_authorization(&admin, "sts", &headers, signed, &body);
        let x = refused(post(&e, &sent, &body).await, 403, MISMATCH);
        assert_eq!(
            message(&x),
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            "{signed:?}"
        );
    }
    // Secrets Manager words it as a JSON service does.
    let signed = ["content-type", "x-amz-date", "x-amz-target"];
    let sent = with_authorization(
        &admin,
        "secretsmanager",
        &sm_headers(&e, &[]),
        &signed,
        GET_DB,
    );
    let x = refused(post(&e, &sent, GET_DB).await, 400, UNSIGNED);
    assert!(!x.contains("the-db-password"));
    // A presigned URL without host in X-Amz-SignedHeaders.
    let url = gci_url(&e, &admin, 60, NOW);
    let url = url.replace("X-Amz-SignedHeaders=host", "X-Amz-SignedHeaders=");
    let x = refused(get(&e, &url, &[]).await, 403, MISMATCH);
    assert!(message(&x).starts_with("'Host'"), "{x}");
}

#[tokio::test]
async fn every_x_amz_header_sent_must_be_signed() {
    let (e, admin) = open();
    let headers = sm_headers(&e, &[]);
    let all = ["content-type", "host", "x-amz-date", "x-amz-target"];
    let sign = |headers: &[(String, String)], signed: &[&str]| {
        with_authorization(&admin, "secretsmanager", headers, signed, GET_DB)
    };
    let (s, x) = post(&e, &sign(&headers, &all), GET_DB).await;
    assert_eq!(s, 200, "{x}");
    assert!(x.contains("the-db-password"));

    // The attack of the report: x-amz-target left out of the signature, so the
    // same signature would serve any action.
    let mut sent = sign(&headers, &["content-type", "host", "x-amz-date"]);
    for target in [
        "secretsmanager.GetSecretValue",
        "secretsmanager.DescribeSecret",
    ] {
        sent[2].1 = target.to_owned();
        let x = refused(post(&e, &sent, GET_DB).await, 400, UNSIGNED);
        assert_eq!(
            message(&x),
            "There were headers present in the request which were not signed: x-amz-target",
            "{target}"
        );
    }
    // The date header that dates the signature must be signed too.
    let sent = sign(&headers, &["content-type", "host", "x-amz-target"]);
    let x = refused(post(&e, &sent, GET_DB).await, 400, UNSIGNED);
    assert!(message(&x).ends_with("not signed: x-amz-date"), "{x}");
    // Any other x-amz-* header a client adds after signing.
    let mut sent = sign(&headers, &all);
    sent.push(("X-Amz-Content-Sha256".into(), "UNSIGNED-PAYLOAD".to_owned()));
    sent.push(("x-amz-user-agent".into(), "after/1.0".to_owned()));
    let x = refused(post(&e, &sent, GET_DB).await, 400, UNSIGNED);
    assert!(
        message(&x).ends_with("not signed: x-amz-content-sha256, x-amz-user-agent"),
        "{x}"
    );
    // Headers outside x-amz-* (user-agent, x-amzn-trace-id) need not be signed.
    let mut sent = sign(&headers, &all);
    sent.push(("x-amzn-trace-id".into(), "Root=1-abc".to_owned()));
    sent.push(("user-agent".into(), "curl/8".to_owned()));
    assert_eq!(post(&e, &sent, GET_DB).await.0, 200);
}

#[tokio::test]
async fn the_session_token_must_be_signed() {
    let (e, admin) = open();
    let session = e
        .assume(&admin, "arn:aws:iam::111111111111:role/deployer")
        .await;
    let token = session.token.clone().unwrap();
    let (s, v) = e
        .signed(&session, "us-east-1")
        .sm("GetSecretValue", json!({"SecretId": "app/db"}))
        .await;
    assert_eq!(s, 200, "{v}");

    // Header form: the token sent but left out of SignedHeaders.
    let headers = sm_headers(&e, &[("x-amz-security-token", &token)]);
    let signed = ["content-type", "host", "x-amz-date", "x-amz-target"];
    let sent = with_authorization(&session, "secretsmanager", &headers, &signed, GET_DB);
    let x = refused(post(&e, &sent, GET_DB).await, 400, UNSIGNED);
    assert!(message(&x).ends_with("x-amz-security-token"), "{x}");
    assert!(!x.contains(&token) && !x.contains("the-db-password"));

    // Presigned form: signed with the token in the query, it verifies…
    let url = gci_url(&e, &session, 60, NOW);
    assert!(url.contains("X-Amz-Security-Token="));
    assert_eq!(get(&e, &url, &[]).await.0, 200);
    // …but the token moved out of the query into an unsigned header does not.
    let start_tok = url.find("&X-Amz-Security-Token=").unwrap();
    let end_tok = url[start_tok + 1..]
        .find('&')
        .map(|i| start_tok + 1 + i)
        .unwrap_or(url.len());
    let without = format!("{}{}", &url[..start_tok], &url[end_tok..]);
    let answer = get(&e, &without, &[("x-amz-security-token", &token)]).await;
    let x = refused(answer, 403, MISMATCH);
    assert!(message(&x).ends_with("x-amz-security-token"), "{x}");
    // A presigned URL whose token was added after signing (SessionTokenMode::Exclude).
    let after = presign(&e, &session, &[], 60, NOW, SessionTokenMode::Exclude);
    assert!(after.contains("X-Amz-Security-Token="));
    refused(get(&e, &after, &[]).await, 403, MISMATCH);
}

#[tokio::test]
async fn a_long_term_key_with_a_session_token_is_an_invalid_token() {
    let (e, admin) = open();
    assert!(admin.akid.starts_with("AKIA"));
    let session = e
        .assume(&admin, "arn:aws:iam::111111111111:role/deployer")
        .await;
    // Any token, even one this cloud issued, and signed: AWS refuses the pair.
    for token in [session.token.clone().unwrap(), "anything".to_owned()] {
        let with_token = Creds {
            token: Some(token),
            ..admin.clone()
        };
        let answer = e.sts(&with_token, &[("Action", "GetCallerIdentity")]).await;
        let x = refused(answer, 403, "InvalidClientTokenId");
        assert_eq!(
            message(&x),
            "The security token included in the request is invalid."
        );
        let (s, v) = e
            .signed(&with_token, "us-east-1")
            .sm("GetSecretValue", json!({"SecretId": "app/db"}))
            .await;
        assert_eq!(
            (s, v["__type"].as_str().unwrap_or("")),
            (400, "UnrecognizedClientException"),
            "{v}"
        );
        assert!(!v.to_string().contains("the-db-password"));
        let url = gci_url(&e, &with_token, 60, NOW);
        refused(get(&e, &url, &[]).await, 403, "InvalidClientTokenId");
    }
}

/// A presigned GetCallerIdentity URL as boto3 makes it for an EKS token, made
/// offline (the clock and keys fixed) by:
///
/// ```python
/// import datetime, botocore.auth, boto3
/// class Fixed(datetime.datetime):
///     @classmethod
///     def utcnow(cls): return datetime.datetime(2026, 1, 2, 3, 4, 5)
///     @classmethod
///     def now(cls, tz=None): return datetime.datetime(2026, 1, 2, 3, 4, 5, tzinfo=tz)
/// botocore.auth.datetime.datetime = Fixed
/// sts = boto3.client("sts", region_name="us-east-1", endpoint_url="http://127.0.0.1:4566",
///     aws_access_key_id=KEY_ID, aws_secret_access_key="keyway/test+secret/0123456789abcdefghijkl",
///     aws_session_token=TOKEN)  # AKIAKEYWAYTEST000001 and no token; ASIAKEYWAYTEST000002 and BOTO3_TOKEN
/// sts.meta.events.register("before-sign.sts.GetCallerIdentity",
///     lambda request, **kw: request.headers.__setitem__("x-k8s-aws-id", "cluster-1"))
/// sts.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
/// ```
const BOTO3_SECRET: &str = "keyway/test+secret/0123456789abcdefghijkl";
const BOTO3_AT: i64 = 1_767_323_045; // 2026-01-02T03:04:05Z
const BOTO3_URL: &str = "/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAKEYWAYTEST000001%2F20260102%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Signature=d802f58452a3c4d32509d61cfbb04262601866af3cce7e8fa5794b702e6e8b32";
const BOTO3_TOKEN: &str = "IQoJb3JpZ2luX2VjEMz//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+/=";
const BOTO3_SESSION_URL: &str = "/?Action=GetCallerIdentity&Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=ASIAKEYWAYTEST000002%2F20260102%2Fus-east-1%2Fsts%2Faws4_request&X-Amz-Date=20260102T030405Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host%3Bx-k8s-aws-id&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEMz%2F%2F%2F%2F%2F%2F%2F%2F%2F%2FwEaCXVzLWVhc3QtMSJHMEUCIQD%2B%2F%3D&X-Amz-Signature=3f481d7787194e555883e20af8a023dc9260a0e0cc392ebf207e130ddc44df8b";

fn boto3_request<'a>(query: &'a str, headers: &'a [(String, String)]) -> sigv4::Request<'a> {
    sigv4::Request {
        method: "GET",
        path: "/",
        query,
        headers,
        body: b"",
    }
}

#[test]
fn boto3_presigned_get_caller_identity_urls_verify() {
    for url in [BOTO3_URL, BOTO3_SESSION_URL] {
        let query = url.strip_prefix("/?").unwrap();
        let headers = vec![
            ("host".to_owned(), "127.0.0.1:4566".to_owned()),
            ("x-k8s-aws-id".to_owned(), "cluster-1".to_owned()),
            ("user-agent".to_owned(), "python-requests/2.34".to_owned()),
        ];
        let req = boto3_request(query, &headers);
        let c = sigv4::check(&req, BOTO3_AT + 5 * 60).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            c.access_key.starts_with("A")
                && c.access_key
                    .ends_with(if url == BOTO3_URL { "01" } else { "02" })
        );
        assert_eq!(c.signed_headers, ["host", "x-k8s-aws-id"]);
        assert_eq!(
            c.security_token.as_deref(),
            (url == BOTO3_SESSION_URL).then_some(BOTO3_TOKEN)
        );
        assert!(sigv4::verify(&req, &c, BOTO3_SECRET), "{url}");
        assert!(!sigv4::verify(&req, &c, "another-secret"));
        // Another cluster id, or another action: the signature no longer holds.
        let other = vec![
            ("host".to_owned(), "127.0.0.1:4566".to_owned()),
            ("x-k8s-aws-id".to_owned(), "cluster-2".to_owned()),
        ];
        assert!(!sigv4::verify(
            &boto3_request(query, &other),
            &c,
            BOTO3_SECRET
        ));
        let q2 = query.replace("GetCallerIdentity", "GetSessionToken");
        let r2 = boto3_request(&q2, &headers);
        assert!(!sigv4::verify(
            &r2,
            &sigv4::check(&r2, BOTO3_AT).unwrap(),
            BOTO3_SECRET
        ));
        // Fifteen minutes and a second after its date, whatever X-Amz-Expires says.
        assert!(matches!(
            sigv4::check(&req, BOTO3_AT + 15 * 60 + 1),
            Err(sigv4::SigError::Expired { .. })
        ));
    }
}
