//! Workload Identity Federation and impersonation end to end, against a fake
//! Google STS + IAM Credentials and a fake ECS credentials endpoint written
//! here (127.0.0.1:0). The fakes check what Google checks of the shape of each
//! request (grant type, subject token type, the Bearer token of the previous
//! step, the lifetime) and record everything so tests assert on the wire.

use crate::support::*;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use keyway_auth::{AuthError, CredentialKind, google_default};
use keyway_core::clock::ManualClock;
use keyway_core::{Env, MemFs, vars};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

const AUD: &str = "//iam.googleapis.com/projects/123456/locations/global/workloadIdentityPools/pool/providers/prov";
const SA: &str = "wif-sa@my-proj.iam.gserviceaccount.com";
const SUBJECT: &str = "eyJhbGciOiJSUzI1NiJ9.SUBJECT-MARKER.sig";
const ECS_TOKEN: &str = "ECS-AUTH-MARKER";
const AWS_SECRET: &str = "aws-secret-MARKER";
const AWS_SESSION: &str = "aws-session-MARKER";

#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: BTreeMap<String, String>,
    body: String,
}

#[derive(Default)]
struct FedState {
    seen: Mutex<Vec<Seen>>,
    /// An error body STS answers with (status 400) when set.
    sts_error: Mutex<Option<Value>>,
}

#[derive(Clone)]
struct Fake {
    addr: SocketAddr,
    state: Arc<FedState>,
}

fn form(body: &str) -> BTreeMap<String, String> {
    form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect()
}

async fn handle(
    State(st): State<Arc<FedState>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body = String::from_utf8_lossy(&body).into_owned();
    let hs: BTreeMap<String, String> = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    let path = uri.path().to_owned();
    st.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: hs.clone(),
        body: body.clone(),
    });
    let n = st.seen.lock().unwrap().len();
    let bearer = hs.get("authorization").cloned().unwrap_or_default();
    if path == "/v1/token" {
        if let Some(e) = st.sts_error.lock().unwrap().clone() {
            return (StatusCode::BAD_REQUEST, axum::Json(e)).into_response();
        }
        let f = form(&body);
        if f.get("grant_type").map(String::as_str)
            != Some("urn:ietf:params:oauth:grant-type:token-exchange")
            || f.get("requested_token_type").map(String::as_str)
                != Some("urn:ietf:params:oauth:token-type:access_token")
            || f.get("subject_token").is_none_or(|s| s.is_empty())
        {
            return (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_request", "error_description": "bad form"})),
            )
                .into_response();
        }
        return axum::Json(json!({
            "access_token": format!("ya29.FEDERATED-{n}"),
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600,
        }))
        .into_response();
    }
    if let Some(rest) = path.strip_prefix("/v1/projects/-/serviceAccounts/") {
        let (email, verb) = rest.split_once(':').unwrap_or((rest, ""));
        if !bearer.starts_with("Bearer ya29.") {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": 401, "message": "Request had invalid authentication credentials.", "status": "UNAUTHENTICATED"}}))).into_response();
        }
        if email == "denied@my-proj.iam.gserviceaccount.com" {
            return (StatusCode::FORBIDDEN, axum::Json(json!({"error": {"code": 403, "message": "Permission 'iam.serviceAccounts.getAccessToken' denied on resource (or it may not exist).", "status": "PERMISSION_DENIED"}}))).into_response();
        }
        let b: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        return match verb {
            "generateAccessToken" => {
                let life: i64 = b["lifetime"]
                    .as_str()
                    .and_then(|l| l.strip_suffix('s'))
                    .and_then(|l| l.parse().ok())
                    .unwrap_or(0);
                let exp = jiff::Timestamp::from_second(T0 + life).unwrap().to_string();
                axum::Json(
                    json!({"accessToken": format!("ya29.SA-{email}-{n}"), "expireTime": exp}),
                )
                .into_response()
            }
            "generateIdToken" => axum::Json(
                json!({"token": format!("idtoken-for-{}", b["audience"].as_str().unwrap_or(""))}),
            )
            .into_response(),
            _ => StatusCode::NOT_FOUND.into_response(),
        };
    }
    if path == "/ecs/creds" {
        if hs.get("authorization").map(String::as_str) != Some(ECS_TOKEN) {
            return StatusCode::FORBIDDEN.into_response();
        }
        return axum::Json(json!({
            "AccessKeyId": "ASIAECSEXAMPLE",
            "SecretAccessKey": AWS_SECRET,
            "Token": AWS_SESSION,
            "Expiration": jiff::Timestamp::from_second(T0 + 6 * 3600).unwrap().to_string(),
        }))
        .into_response();
    }
    if path == "/subject" {
        if hs.get("metadata").map(String::as_str) != Some("True") {
            return StatusCode::FORBIDDEN.into_response();
        }
        return axum::Json(json!({"access_token": SUBJECT})).into_response();
    }
    StatusCode::NOT_FOUND.into_response()
}

/// Gets an access token through the ADC chain of `c`: the subject token
/// `fake`'s STS was given for it.
async fn token_then_subject(c: &keyway_auth::AuthContext, fake: &Fake) -> String {
    let creds = google_default(c, &[]).await.unwrap();
    creds.access_token().await.unwrap();
    let sts = fake.seen().pop().unwrap();
    form(&sts.body)["subject_token"].clone()
}

impl Fake {
    /// [`Fake::env`] of an ECS task in eu-west-3 whose credentials endpoint
    /// (and its token) this fake serves.
    fn ecs_env(&self) -> Env {
        let endpoint = format!("{}/ecs/creds", self.base());
        self.env()
            .with("AWS_CONTAINER_CREDENTIALS_FULL_URI", &endpoint)
            .with("AWS_CONTAINER_AUTHORIZATION_TOKEN", ECS_TOKEN)
            .with("AWS_REGION", "eu-west-3")
    }

    async fn start() -> Self {
        let state = Arc::new(FedState::default());
        let addr = serve(Router::new().fallback(handle).with_state(state.clone())).await;
        Fake { addr, state }
    }
    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }
    fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }
    fn paths(&self) -> Vec<String> {
        self.seen().into_iter().map(|s| s.path).collect()
    }
    /// The environment a user sets to reach this fake: the two endpoint overrides.
    fn env(&self) -> Env {
        base_env()
            .with(
                vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_STS,
                &format!("{}/", self.base()),
            )
            .with(
                vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS,
                &format!("{}/", self.base()),
            )
            .with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/creds/wif.json")
    }
    fn imp_url(&self, email: &str) -> String {
        format!(
            "{}/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
            self.base()
        )
    }
    fn file(&self, source: Value, imp: Option<&str>, extra: Value) -> String {
        let mut f = json!({
            "type": "external_account",
            "audience": AUD,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": format!("{}/v1/token", self.base()),
            "credential_source": source,
        });
        if let Some(e) = imp {
            f["service_account_impersonation_url"] = json!(self.imp_url(e));
        }
        if let (Value::Object(m), Value::Object(x)) = (&mut f, extra) {
            m.extend(x);
        }
        f.to_string()
    }
}

fn decode_subject(token: &str) -> Value {
    let decoded = percent_decode(token);
    serde_json::from_str(&decoded).unwrap()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[tokio::test]
async fn aws1_via_the_ecs_endpoint_then_sts_then_impersonation() {
    let fake = Fake::start().await;
    let file = fake.file(
        json!({"environment_id": "aws1", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
        Some(SA),
        json!({"subject_token_type": "urn:ietf:params:aws:token-type:aws4_request", "service_account_impersonation": {"token_lifetime_seconds": 1800}}),
    );
    let env = fake.ecs_env();
    let clock = ManualClock::at_secs(T0);
    let creds = google_default(&ctx(env, wif(file), &clock), &scopes(&[CLOUD_PLATFORM]))
        .await
        .unwrap();
    let source = creds.source();
    assert_eq!(
        source.credential_kind(),
        Some(CredentialKind::ExternalAccount)
    );
    let shown = source.to_string();
    assert!(
        shown.starts_with("external_account credentials from /creds/wif.json (GOOGLE_APPLICATION_CREDENTIALS): aws1 via ECS container credentials endpoint ("),
        "{shown}"
    );
    assert!(
        shown.contains("region eu-west-3 (AWS_REGION) → STS "),
        "{shown}"
    );
    assert!(
        shown.ends_with(&format!("/v1/token → impersonating {SA}")),
        "{shown}"
    );

    let t = creds.access_token().await.unwrap();
    assert!(t.token.expose().starts_with(&format!("ya29.SA-{SA}-")));
    assert_eq!(t.expires_at, T0 + 1800);
    let seen = fake.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/ecs/creds",
            "/v1/token",
            &format!("/v1/projects/-/serviceAccounts/{SA}:generateAccessToken")
        ]
    );
    let f = form(&seen[1].body);
    assert_eq!(f["audience"], AUD);
    assert_eq!(f["scope"], "https://www.googleapis.com/auth/iam");
    assert_eq!(
        f["subject_token_type"],
        "urn:ietf:params:aws:token-type:aws4_request"
    );
    let st = decode_subject(&f["subject_token"]);
    assert_eq!(st["method"], "POST");
    assert_eq!(
        st["url"],
        "https://sts.eu-west-3.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"
    );
    let h: BTreeMap<String, String> = st["headers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().to_owned(),
                h["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert!(
        h["Authorization"].starts_with("AWS4-HMAC-SHA256 Credential=ASIAECSEXAMPLE/"),
        "{}",
        h["Authorization"]
    );
    assert!(h["Authorization"].contains("/eu-west-3/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="));
    assert_eq!(h["x-amz-security-token"], AWS_SESSION);
    assert_eq!(h["x-goog-cloud-target-resource"], AUD);
    assert_eq!(h["host"], "sts.eu-west-3.amazonaws.com");
    let imp: Value = serde_json::from_str(&seen[2].body).unwrap();
    assert_eq!(
        imp,
        json!({"delegates": null, "scope": [CLOUD_PLATFORM], "lifetime": "1800s"})
    );
    assert_eq!(seen[2].headers["authorization"], "Bearer ya29.FEDERATED-2");

    // Past the impersonated token's life: a new exchange, but the ECS credentials are reused.
    clock.advance_secs(1800);
    creds.access_token().await.unwrap();
    assert_eq!(
        fake.paths().iter().filter(|p| *p == "/ecs/creds").count(),
        1
    );
    assert_eq!(fake.paths().iter().filter(|p| *p == "/v1/token").count(), 2);

    let id = creds.identity().await.unwrap();
    assert_eq!(id.email.as_deref(), Some(SA));
    let idt = creds.id_token("https://service.example.com").await.unwrap();
    assert_eq!(idt.expose(), "idtoken-for-https://service.example.com");
    let last = fake.seen().pop().unwrap();
    assert_eq!(
        last.path,
        format!("/v1/projects/-/serviceAccounts/{SA}:generateIdToken")
    );
    assert_eq!(
        serde_json::from_str::<Value>(&last.body).unwrap(),
        json!({"audience": "https://service.example.com", "includeEmail": true, "delegates": null})
    );
}

#[tokio::test]
async fn aws1_from_environment_keys_without_impersonation() {
    let fake = Fake::start().await;
    let file = fake.file(
        json!({"environment_id": "aws1", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
        None,
        json!({"subject_token_type": "urn:ietf:params:aws:token-type:aws4_request"}),
    );
    let env = fake
        .env()
        .with("AWS_ACCESS_KEY_ID", "AKIAENVEXAMPLE")
        .with("AWS_SECRET_ACCESS_KEY", AWS_SECRET)
        .with("AWS_DEFAULT_REGION", "us-east-2");
    let clock = ManualClock::at_secs(T0);
    let creds = google_default(&ctx(env, wif(file), &clock), &scopes(&["scope1", "scope2"]))
        .await
        .unwrap();
    let shown = creds.source().to_string();
    assert!(
        shown.contains(
            "aws1 via environment (AWS_ACCESS_KEY_ID), region us-east-2 (AWS_DEFAULT_REGION)"
        ),
        "{shown}"
    );
    assert!(
        shown.ends_with("→ federated token used directly"),
        "{shown}"
    );
    let t = creds.access_token().await.unwrap();
    assert_eq!(t.token.expose(), "ya29.FEDERATED-1");
    let f = form(&fake.seen()[0].body);
    assert_eq!(f["scope"], "scope1 scope2");
    let h = decode_subject(&f["subject_token"]);
    assert!(!h.to_string().contains("x-amz-security-token"));
    // No impersonation: no ID tokens, and the error says how to get them.
    let e = creds.id_token("https://a").await.unwrap_err().to_string();
    assert!(e.contains("service_account_impersonation_url"), "{e}");
}

#[tokio::test]
async fn file_and_url_sources() {
    let fake = Fake::start().await;
    let clock = ManualClock::at_secs(T0);
    // A JSON file.
    let file = fake.file(
        json!({"file": "/var/run/oidc/token.json", "format": {"type": "json", "subject_token_field_name": "id_token"}}),
        Some(SA),
        json!({}),
    );
    let fs = MemFs::new().with("/creds/wif.json", file).with(
        "/var/run/oidc/token.json",
        json!({"id_token": SUBJECT}).to_string(),
    );
    let creds = adc(fake.env(), fs, &clock).await.unwrap();
    assert!(
        creds
            .source()
            .to_string()
            .contains(": file /var/run/oidc/token.json → STS"),
        "{}",
        creds.source()
    );
    creds.access_token().await.unwrap();
    assert_eq!(form(&fake.seen()[0].body)["subject_token"], SUBJECT);

    // The file is missing: the error names it.
    let file = fake.file(json!({"file": "/nope/token"}), None, json!({}));
    let creds = adc(fake.env(), wif(file), &clock).await.unwrap();
    let e = creds.access_token().await.unwrap_err();
    assert!(matches!(e, AuthError::SubjectToken { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with("getting the subject token from the file /nope/token: cannot read it"),
        "{e}"
    );

    // A URL with headers and a JSON body.
    let url = format!("{}/subject?audience=x", fake.base());
    let file = fake.file(
        json!({"url": url, "headers": {"Metadata": "True"}, "format": {"type": "json", "subject_token_field_name": "access_token"}}),
        None,
        json!({}),
    );
    let creds = adc(fake.env(), wif(file), &clock).await.unwrap();
    assert!(
        creds
            .source()
            .to_string()
            .contains(&format!(": url {}/subject → STS", fake.base()))
    );
    creds.access_token().await.unwrap();
    let last = fake.seen().pop().unwrap();
    assert_eq!(form(&last.body)["subject_token"], SUBJECT);
    // The wrong field: the error names the URL and the field, not the body.
    let file = fake.file(
        json!({"url": url, "headers": {"Metadata": "True"}, "format": {"type": "json", "subject_token_field_name": "token"}}),
        None,
        json!({}),
    );
    let creds = adc(fake.env(), wif(file), &clock).await.unwrap();
    let e = creds.access_token().await.unwrap_err().to_string();
    assert!(
        e.contains(&format!(
            "the URL {}/subject: the JSON has no field \"token\"",
            fake.base()
        )),
        "{e}"
    );
    assert!(
        !e.contains("SUBJECT-MARKER") && !e.contains("audience=x"),
        "{e}"
    );
}

#[tokio::test]
async fn sts_and_iam_errors_carry_googles_words_and_no_token() {
    let fake = Fake::start().await;
    let clock = ManualClock::at_secs(T0);
    let fs = |f: String| MemFs::new().with("/creds/wif.json", f).with("/t", SUBJECT);
    *fake.state.sts_error.lock().unwrap() = Some(
        json!({"error": "invalid_grant", "error_description": "The audience in ID Token [x] does not match the expected audience."}),
    );
    let creds = adc(
        fake.env(),
        fs(fake.file(json!({"file": "/t"}), Some(SA), json!({}))),
        &clock,
    )
    .await
    .unwrap();
    let e = creds.access_token().await.unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.status(), Some(400));
    assert!(
        msg.contains("exchanging the subject token at Google STS"),
        "{msg}"
    );
    assert!(msg.contains("400 Bad Request: invalid_grant: The audience in ID Token [x] does not match the expected audience."), "{msg}");
    assert!(!format!("{msg} {e:?}").contains("MARKER"), "{msg}");
    *fake.state.sts_error.lock().unwrap() = None;

    let creds = adc(
        fake.env(),
        fs(fake.file(
            json!({"file": "/t"}),
            Some("denied@my-proj.iam.gserviceaccount.com"),
            json!({}),
        )),
        &clock,
    )
    .await
    .unwrap();
    let e = creds.access_token().await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("generateAccessToken"), "{msg}");
    assert!(msg.contains("403 Forbidden: PERMISSION_DENIED: Permission 'iam.serviceAccounts.getAccessToken' denied"), "{msg}");
    assert!(!format!("{msg} {e:?}").contains("FEDERATED"), "{msg}");
}

#[tokio::test]
async fn endpoints_outside_google_need_the_override() {
    let fake = Fake::start().await;
    let clock = ManualClock::at_secs(T0);
    let file = fake.file(json!({"file": "/t"}), Some(SA), json!({}));
    let env = base_env().with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/creds/wif.json");
    let e = adc(env.clone(), wif(file.clone()), &clock)
        .await
        .unwrap_err();
    let AuthError::InvalidConfig { field, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*field, Some("token_url"));
    assert!(
        e.to_string()
            .contains("set CLOUDSDK_API_ENDPOINT_OVERRIDES_STS to its base URL"),
        "{e}"
    );
    // The STS override alone does not let the impersonation URL through.
    let env = env.with(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_STS, &fake.base());
    let e = adc(env, wif(file), &clock).await.unwrap_err();
    let AuthError::InvalidConfig { field, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(*field, Some("service_account_impersonation_url"));
    assert!(fake.seen().is_empty());
}

fn script(dir: &std::path::Path, name: &str, body: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn executable_source() {
    let fake = Fake::start().await;
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::at_secs(T0);
    let log = dir.path().join("env.log");
    let out = dir.path().join("out.json");
    // The script records what it was told and answers with a JWT.
    let ok = script(
        dir.path(),
        "ok.sh",
        &format!(
            r#"echo "$GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE|$GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE|$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE|$GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL|$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE|$1" >> {}
echo '{{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt","id_token":"{SUBJECT}","expiration_time":{}}}'"#,
            log.display(),
            T0 + 600
        ),
    );
    let exe = |cmd: &str, extra: Value| {
        let mut e = json!({"command": cmd, "timeout_millis": 5000});
        if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
            m.extend(x);
        }
        json!({"executable": e})
    };
    let run = |file: String, allow: bool| {
        let mut env = fake.env();
        if allow {
            env = env.with(vars::GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES, "1");
        }
        let c = ctx(env, wif(file), &clock);
        async move { google_default(&c, &[]).await.unwrap().access_token().await }
    };

    // Not allowed without the opt-in; the script never runs.
    let file = fake.file(exe(&format!("{ok} --flag"), json!({})), Some(SA), json!({}));
    let e = run(file.clone(), false).await.unwrap_err().to_string();
    assert!(
        e.contains("set GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1"),
        "{e}"
    );
    assert!(!log.exists());

    run(file, true).await.unwrap();
    let logged = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        logged.trim(),
        format!("{AUD}|urn:ietf:params:oauth:token-type:jwt|0|{SA}||--flag")
    );
    assert_eq!(form(&fake.seen()[0].body)["subject_token"], SUBJECT);

    // With an output file: a valid cached response is used without running the command.
    std::fs::write(
        &out,
        json!({"version": 1, "success": true, "token_type": "urn:ietf:params:oauth:token-type:id_token", "id_token": "cached.jwt.token", "expiration_time": T0 + 60}).to_string(),
    )
    .unwrap();
    let real_fs_file = fake.file(
        exe(&ok, json!({"output_file": out.display().to_string()})),
        None,
        json!({}),
    );
    let mut env = fake
        .env()
        .with(vars::GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES, "1");
    let cfg = dir.path().join("wif.json");
    std::fs::write(&cfg, &real_fs_file).unwrap();
    env.set(vars::GOOGLE_APPLICATION_CREDENTIALS, cfg.to_str().unwrap());
    let c = keyway_auth::AuthContext::new(
        env,
        Arc::new(keyway_core::RealFs),
        Arc::new(clock.clone()),
        http_client(),
    );
    assert_eq!(token_then_subject(&c, &fake).await, "cached.jwt.token");
    assert_eq!(std::fs::read_to_string(&log).unwrap().lines().count(), 1);
    // Once it has expired, the command runs again and is told the output file.
    clock.advance_secs(60);
    assert_eq!(token_then_subject(&c, &fake).await, SUBJECT);
    let last = std::fs::read_to_string(&log).unwrap();
    assert!(
        last.lines()
            .last()
            .unwrap()
            .ends_with(&format!("||{}|", out.display())),
        "{last}"
    );

    // Failures: the exit code; the executable's own error; a bad field; a timeout.
    let fail = script(dir.path(), "fail.sh", &format!("echo '{SUBJECT}'; exit 3"));
    let e = run(fake.file(exe(&fail, json!({})), None, json!({})), true)
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        format!(
            "getting the subject token from the executable `{fail}`: the command failed with exit code 3"
        )
    );
    let err = script(
        dir.path(),
        "err.sh",
        r#"echo '{"version":1,"success":false,"code":"401","message":"Caller not authorized."}'"#,
    );
    let e = run(fake.file(exe(&err, json!({})), None, json!({})), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.ends_with("the executable reported an error: code 401: Caller not authorized."),
        "{e}"
    );
    let bad = script(
        dir.path(),
        "bad.sh",
        &format!(r#"echo '{{"version":2,"success":true,"id_token":"{SUBJECT}"}}'"#),
    );
    let e = run(fake.file(exe(&bad, json!({})), None, json!({})), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("\"version\" is 2; only version 1 is supported") && !e.contains("MARKER"),
        "{e}"
    );
    let slow = script(dir.path(), "slow.sh", "exec sleep 30");
    let started = std::time::Instant::now();
    let e = run(fake.file(exe(&slow, json!({})), None, json!({})), true)
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("did not finish within 5s"), "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
}

#[tokio::test]
async fn impersonated_service_account_with_delegates() {
    let fake = Fake::start().await;
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "refresh");
    let clock = ManualClock::at_secs(T0);
    let file = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": fake.imp_url(SA),
        "delegates": ["projects/-/serviceAccounts/middle@my-proj.iam.gserviceaccount.com"],
        "source_credentials": {"type": "authorized_user", "client_id": "123", "client_secret": "secret", "refresh_token": "refresh", "token_uri": oauth.token_uri()},
    })
    .to_string();
    let creds = google_default(
        &ctx(fake.env(), wif(file), &clock),
        &scopes(&[CLOUD_PLATFORM]),
    )
    .await
    .unwrap();
    assert_eq!(
        creds.source().credential_kind(),
        Some(CredentialKind::ImpersonatedServiceAccount)
    );
    assert_eq!(
        creds.source().chain(),
        Some(format!("authorized_user source credentials → impersonating {SA} via delegates projects/-/serviceAccounts/middle@my-proj.iam.gserviceaccount.com").as_str())
    );
    let t = creds.access_token().await.unwrap();
    assert_eq!(t.expires_at, T0 + 3600);
    let seen = fake.seen();
    let body: Value = serde_json::from_str(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"delegates": ["projects/-/serviceAccounts/middle@my-proj.iam.gserviceaccount.com"], "scope": [CLOUD_PLATFORM], "lifetime": "3600s"})
    );
    assert!(seen[0].headers["authorization"].starts_with("Bearer ya29."));
    assert_eq!(creds.identity().await.unwrap().email.as_deref(), Some(SA));
    let id = creds.id_token("https://run.example.com").await.unwrap();
    assert_eq!(id.expose(), "idtoken-for-https://run.example.com");

    // An external_account as the source.
    let file = json!({
        "type": "impersonated_service_account",
        "service_account_impersonation_url": fake.imp_url(SA),
        "source_credentials": serde_json::from_str::<Value>(&fake.file(json!({"file": "/t"}), None, json!({}))).unwrap(),
    })
    .to_string();
    let creds = adc(
        fake.env(),
        MemFs::new()
            .with("/creds/wif.json", file)
            .with("/t", SUBJECT),
        &clock,
    )
    .await
    .unwrap();
    let chain = creds.source().chain().unwrap().to_owned();
    assert!(
        chain.starts_with("external_account source credentials (file /t → STS "),
        "{chain}"
    );
    assert!(
        chain.ends_with(&format!(
            "federated token used directly) → impersonating {SA}"
        )),
        "{chain}"
    );
    creds.access_token().await.unwrap();
    let seen = fake.seen();
    let n = seen.len();
    assert_eq!(seen[n - 2].path, "/v1/token");
    assert_eq!(form(&seen[n - 2].body)["scope"], CLOUD_PLATFORM);
    assert_eq!(
        seen[n - 1].headers["authorization"],
        format!("Bearer ya29.FEDERATED-{}", n - 1)
    );
}

#[tokio::test]
async fn secrets_stay_out_of_debug_and_errors() {
    let fake = Fake::start().await;
    let clock = ManualClock::at_secs(T0);
    let file = fake.file(
        json!({"environment_id": "aws1", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15"}),
        Some("denied@my-proj.iam.gserviceaccount.com"),
        json!({}),
    );
    let env = fake.ecs_env();
    let creds = adc(env, wif(file), &clock).await.unwrap();
    let e = creds.access_token().await.unwrap_err();
    let text = format!(
        "{creds:?} {} {:?} {e} {e:?} {:?}",
        creds.source(),
        creds.attempts(),
        creds.id_token("https://a").await
    );
    for m in ["MARKER", "FEDERATED", "AWS4-HMAC"] {
        assert!(!text.contains(m), "{m} leaks: {text}");
    }
    // A wrong ECS authorization token: named as the ECS endpoint's failure, without the token.
    let env = fake
        .env()
        .with(
            "AWS_CONTAINER_CREDENTIALS_FULL_URI",
            &format!("{}/ecs/creds", fake.base()),
        )
        .with("AWS_CONTAINER_AUTHORIZATION_TOKEN", "WRONG-MARKER")
        .with("AWS_REGION", "eu-west-3");
    let file = fake.file(json!({"environment_id": "aws1", "regional_cred_verification_url": "https://sts.{region}.amazonaws.com"}), None, json!({}));
    let e = adc(env, wif(file), &clock).await.unwrap_err();
    let msg = format!("{e} {e:?}");
    assert!(
        msg.contains("ECS container credentials endpoint") && msg.contains("403"),
        "{msg}"
    );
    assert!(!msg.contains("MARKER"), "{msg}");
}
