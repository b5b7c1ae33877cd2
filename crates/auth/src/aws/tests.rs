//! The chain against machines described as data (no network: only the
//! sources that need none, and refused URIs, are exercised here; the ECS
//! endpoint is exercised through the binary against the local cloud).

use super::*;
use crate::AuthContext;
use keyway_core::{Env, MemFs, SystemClock};
use std::sync::Arc;

fn ctx(env: Env, fs: MemFs) -> AuthContext {
    AuthContext::new(
        env,
        Arc::new(fs),
        Arc::new(SystemClock),
        reqwest::Client::new(),
    )
}

fn no_imds() -> AwsChainOptions {
    AwsChainOptions {
        probe_default_imds: false,
        ..AwsChainOptions::default()
    }
}

#[tokio::test]
async fn environment_first_and_secrets_hidden() {
    let env = Env::new()
        .with("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE123")
        .with("AWS_SECRET_ACCESS_KEY", "TOPSECRETKEY")
        .with("AWS_REGION", "eu-west-1")
        .with("HOME", "/h");
    let fs = MemFs::new().with(
        "/h/.aws/credentials",
        "[default]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = other\n",
    );
    let p = aws_default(&ctx(env, fs), no_imds()).await.unwrap();
    assert_eq!(p.source().kind, AwsSourceKind::Environment);
    assert_eq!(p.region(), Some(("eu-west-1", "AWS_REGION")));
    let c = p.credentials().await.unwrap();
    assert_eq!(c.access_key_id, "AKIAEXAMPLE123");
    assert!(!format!("{c:?} {p:?}").contains("TOPSECRETKEY"));
}

#[tokio::test]
async fn profiles_from_the_shared_files() {
    let env = Env::new()
        .with("AWS_PROFILE", "dev")
        .with("AWS_SHARED_CREDENTIALS_FILE", "/c")
        .with("AWS_CONFIG_FILE", "/cfg");
    let fs = MemFs::new()
        .with("/c", "# comment\n[default]\naws_access_key_id=A\naws_secret_access_key=B\n[dev]\naws_access_key_id = AKIADEV\naws_secret_access_key = devsecret\n")
        .with("/cfg", "[profile dev]\nregion = ap-northeast-1\n[profile assume]\nrole_arn = arn:aws:iam::123456789012:role/x\nsource_profile = dev\n");
    let p = aws_default(&ctx(env.clone(), fs.clone()), no_imds())
        .await
        .unwrap();
    assert_eq!(
        p.source().to_string(),
        "shared config/credentials files (profile dev)"
    );
    assert_eq!(p.region(), Some(("ap-northeast-1", "profile region")));
    assert_eq!(p.attempts().len(), 2);
    let e = aws_default(
        &ctx(env.clone().with("AWS_PROFILE", "assume"), fs.clone()),
        no_imds(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("role_arn is not supported yet"),
        "{e}"
    );
    let e = aws_default(&ctx(env.with("AWS_PROFILE", "nope"), fs), no_imds())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("no profile 'nope'"), "{e}");
}

#[tokio::test]
async fn nothing_configured_lists_every_source() {
    let env = Env::new()
        .with("AWS_EC2_METADATA_DISABLED", "true")
        .with("HOME", "/h");
    let e = aws_default(&ctx(env, MemFs::new()), AwsChainOptions::default())
        .await
        .unwrap_err();
    let AwsAuthError::NotConfigured { attempts } = &e else {
        panic!("{e}")
    };
    assert_eq!(attempts.len(), 5);
    assert!(
        e.to_string().contains("AWS_EC2_METADATA_DISABLED=true"),
        "{e}"
    );
}

#[tokio::test]
async fn web_identity_misconfigured_and_bad_env() {
    // A token file without a role (as botocore: a configuration error, not "not configured").
    let e = aws_default(
        &ctx(
            Env::new().with("AWS_WEB_IDENTITY_TOKEN_FILE", "/t"),
            MemFs::new(),
        ),
        no_imds(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            AwsAuthError::Config {
                kind: AwsSourceKind::WebIdentity,
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("AWS_ROLE_ARN is not"), "{e}");
    // The file named but missing.
    let env = Env::new()
        .with("AWS_WEB_IDENTITY_TOKEN_FILE", "/t")
        .with("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/r")
        .with("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9");
    let e = aws_default(&ctx(env, MemFs::new()), no_imds())
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("reading the web identity token file /t"),
        "{e}"
    );
    let e = aws_default(
        &ctx(
            Env::new().with("KEYWAY_AWS_WEB_IDENTITY", "google"),
            MemFs::new(),
        ),
        no_imds(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("KEYWAY_AWS_WEB_IDENTITY=google is set but AWS_ROLE_ARN is not"),
        "{e}"
    );
    let e = aws_default(
        &ctx(
            Env::new()
                .with("KEYWAY_AWS_WEB_IDENTITY", "azure")
                .with("AWS_ROLE_ARN", "arn:aws:iam::1:role/r"),
            MemFs::new(),
        ),
        no_imds(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("'azure' is not understood"), "{e}");
    let e = aws_default(
        &ctx(Env::new().with("AWS_ACCESS_KEY_ID", "A"), MemFs::new()),
        no_imds(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains("AWS_SECRET_ACCESS_KEY is not"),
        "{e}"
    );
}

#[tokio::test]
async fn full_uri_only_to_loopback_or_https() {
    for uri in [
        "http://10.0.0.5/creds",
        "http://example.com/creds",
        "ftp://127.0.0.1/x",
    ] {
        let env = Env::new().with("AWS_CONTAINER_CREDENTIALS_FULL_URI", uri);
        let e = aws_default(&ctx(env, MemFs::new()), no_imds())
            .await
            .unwrap_err();
        assert!(e.to_string().contains("is refused"), "{uri}: {e}");
    }
}

#[test]
fn ini() {
    let i = parse_ini("[ profile  x ]\nKey = v = w\n");
    assert_eq!(i["profile x"]["key"], "v = w");
}

mod endpoints {
    //! Fake ECS and IMDS endpoints on 127.0.0.1 (written here, not the local
    //! cloud's), to check the requests keyway sends and the cache.

    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::{get, put};
    use keyway_core::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const T0: i64 = 1_700_000_000;

    fn creds_doc(exp: i64) -> String {
        let e = jiff::Timestamp::from_second(exp)
            .map(|t| t.to_string())
            .unwrap_or_default();
        format!(
            r#"{{"Code":"Success","LastUpdated":"{e}","Type":"AWS-HMAC","AccessKeyId":"ASIATEST","SecretAccessKey":"SECRETKEYVALUE","Token":"SESSIONTOKENVALUE","Expiration":"{e}"}}"#
        )
    }

    async fn serve(app: Router) -> String {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn clock_ctx(env: Env, fs: MemFs, clock: &ManualClock) -> AuthContext {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        AuthContext::new(env, Arc::new(fs), Arc::new(clock.clone()), http)
    }

    #[tokio::test]
    async fn ecs_full_uri_with_token_file_is_cached_until_near_expiry() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = calls.clone();
        let app = Router::new().route(
            "/creds",
            get(move |h: HeaderMap| {
                let c = c.clone();
                async move {
                    if h.get("authorization").and_then(|v| v.to_str().ok()) != Some("tok-from-file")
                    {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    c.fetch_add(1, Ordering::SeqCst);
                    (StatusCode::OK, creds_doc(T0 + 3600))
                }
            }),
        );
        let base = serve(app).await;
        let clock = ManualClock::at_secs(T0);
        let env = Env::new()
            .with(
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{base}/creds"),
            )
            .with("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", "/var/run/token")
            .with("AWS_CONTAINER_AUTHORIZATION_TOKEN", "ignored-when-file-set")
            .with("AWS_REGION", "ap-northeast-1")
            .with("AWS_EC2_METADATA_DISABLED", "true");
        let fs = MemFs::new().with("/var/run/token", "tok-from-file\n");
        let p = aws_default(&clock_ctx(env, fs, &clock), AwsChainOptions::default())
            .await
            .unwrap();
        assert_eq!(p.source().kind, AwsSourceKind::EcsContainer);
        assert_eq!(p.attempts().len(), 4);
        for _ in 0..3 {
            let c = p.credentials().await.unwrap();
            assert_eq!(c.expires_at, Some(T0 + 3600));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1, "cached");
        clock.set_secs(T0 + 3600 - 200);
        p.credentials().await.unwrap();
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "refreshed within 5 minutes of Expiration"
        );
        let shown = format!("{p:?} {:?}", p.credentials().await.unwrap());
        assert!(
            !shown.contains("SECRETKEYVALUE")
                && !shown.contains("SESSIONTOKENVALUE")
                && !shown.contains("tok-from-file"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn imdsv2_token_role_credentials_and_region() {
        let app = Router::new()
            .route(
                "/latest/api/token",
                put(|h: HeaderMap| async move {
                    if h.get("x-aws-ec2-metadata-token-ttl-seconds").is_none() {
                        return (StatusCode::BAD_REQUEST, String::new());
                    }
                    (StatusCode::OK, "imds-session".to_owned())
                }),
            )
            .route(
                "/latest/meta-data/iam/security-credentials/",
                get(|h: HeaderMap| async move {
                    if h.get("x-aws-ec2-metadata-token")
                        .and_then(|v| v.to_str().ok())
                        != Some("imds-session")
                    {
                        return (StatusCode::UNAUTHORIZED, String::new());
                    }
                    (StatusCode::OK, "web-role".to_owned())
                }),
            )
            .route(
                "/latest/meta-data/iam/security-credentials/web-role",
                get(|| async { creds_doc(T0 + 21600) }),
            )
            .route(
                "/latest/meta-data/placement/region",
                get(|| async { "eu-west-3" }),
            );
        let base = serve(app).await;
        let clock = ManualClock::at_secs(T0);
        let env = Env::new()
            .with("AWS_EC2_METADATA_SERVICE_ENDPOINT", &format!("{base}/"))
            .with("HOME", "/h");
        let p = aws_default(
            &clock_ctx(env.clone(), MemFs::new(), &clock),
            AwsChainOptions {
                probe_default_imds: false,
                ..AwsChainOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(p.source().kind, AwsSourceKind::Imds);
        assert_eq!(p.region(), Some(("eu-west-3", "IMDS placement/region")));
        assert_eq!(p.credentials().await.unwrap().access_key_id, "ASIATEST");
        // Disabled wins over an endpoint.
        let e = aws_default(
            &clock_ctx(
                env.with("AWS_EC2_METADATA_DISABLED", "true"),
                MemFs::new(),
                &clock,
            ),
            AwsChainOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AwsAuthError::NotConfigured { .. }), "{e}");
    }
}

#[test]
fn relative_uri_goes_to_the_ecs_agent_and_wins_over_full() {
    let env = Env::new()
        .with(
            "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
            "/v2/credentials/abc",
        )
        .with("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:1/x");
    assert_eq!(
        ecs::url(&ctx(env, MemFs::new())).unwrap().as_deref(),
        Some("http://169.254.170.2/v2/credentials/abc")
    );
    let env = Env::new().with("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "v2/x");
    assert!(ecs::url(&ctx(env, MemFs::new())).is_err());
    for ok in [
        "https://creds.example.com/x",
        "http://127.0.0.1:8080/x",
        "http://[::1]:8080/x",
        "http://localhost/x",
        "http://169.254.170.23/v1/credentials",
    ] {
        let env = Env::new().with("AWS_CONTAINER_CREDENTIALS_FULL_URI", ok);
        assert!(ecs::url(&ctx(env, MemFs::new())).unwrap().is_some(), "{ok}");
    }
}

mod web_identity {
    //! AssumeRoleWithWebIdentity against a fake STS on 127.0.0.1: the request
    //! keyway sends (unsigned, the token read from the file at each refresh),
    //! the cache, the endpoint overrides, and refusals explained.

    use super::*;
    use axum::Router;
    use axum::http::{HeaderMap, StatusCode};
    use axum::routing::post;
    use keyway_core::RealFs;
    use keyway_core::clock::ManualClock;
    use std::sync::Mutex;

    const T0: i64 = 1_700_000_000;
    const ROLE: &str = "arn:aws:iam::123456789012:role/web";

    /// The form fields of each request, and whether it carried an Authorization header.
    type Seen = Arc<Mutex<Vec<(BTreeMap<String, String>, bool)>>>;
    use std::collections::BTreeMap;

    fn answer(exp: i64) -> String {
        let e = jiff::Timestamp::from_second(exp)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M:%SZ")
            .to_string();
        format!(
            "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult>\
             <SubjectFromWebIdentityToken>sys:sa</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience>\
             <AssumedRoleUser><AssumedRoleId>AROAX:s</AssumedRoleId><Arn>arn:aws:sts::123456789012:assumed-role/web/s</Arn></AssumedRoleUser>\
             <Credentials><AccessKeyId>ASIAWEBID</AccessKeyId><SecretAccessKey>WEBSECRET+/&amp;KEY</SecretAccessKey><SessionToken>WEBSESSIONTOKEN</SessionToken>\
             <Expiration>{e}</Expiration></Credentials><Provider>https://k8s.example</Provider></AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>"
        )
    }

    async fn fake_sts(seen: Seen, deny: bool, exp: i64) -> String {
        let app = Router::new().route(
            "/",
            post(move |h: HeaderMap, body: String| {
                let seen = seen.clone();
                async move {
                    let form: BTreeMap<String, String> = form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                    seen.lock().unwrap().push((form, h.contains_key("authorization")));
                    if deny {
                        let x = "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>Not authorized to perform sts:AssumeRoleWithWebIdentity</Message></Error></ErrorResponse>";
                        return (StatusCode::FORBIDDEN, x.to_owned());
                    }
                    (StatusCode::OK, answer(exp))
                }
            }),
        );
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(l, app).await });
        format!("http://{addr}")
    }

    fn ctx_at(env: Env, clock: &ManualClock) -> AuthContext {
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        AuthContext::new(env, Arc::new(RealFs), Arc::new(clock.clone()), http)
    }

    #[tokio::test]
    async fn token_file_is_exchanged_unsigned_cached_and_reread_at_refresh() {
        let seen: Seen = Arc::default();
        let base = fake_sts(seen.clone(), false, T0 + 3600).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "eyJ.first-token.sig\n").unwrap();
        let clock = ManualClock::at_secs(T0);
        let env = Env::new()
            .with("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap())
            .with("AWS_ROLE_ARN", ROLE)
            .with("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .with("AWS_ENDPOINT_URL_STS", &base)
            .with("AWS_REGION", "eu-west-1")
            .with("HOME", "/nonexistent");
        let p = aws_default(&ctx_at(env, &clock), no_imds()).await.unwrap();
        assert_eq!(p.source().kind, AwsSourceKind::WebIdentity);
        assert!(p.source().to_string().contains(ROLE), "{}", p.source());
        let c = p.credentials().await.unwrap();
        assert_eq!(c.access_key_id, "ASIAWEBID");
        assert_eq!(
            c.secret_access_key.expose(),
            "WEBSECRET+/&KEY",
            "XML entities are decoded"
        );
        assert_eq!(c.expires_at, Some(T0 + 3600));
        {
            let seen = seen.lock().unwrap();
            assert_eq!(seen.len(), 1, "the chain's answer is cached");
            let (f, signed) = &seen[0];
            assert!(!signed, "AssumeRoleWithWebIdentity is sent unsigned");
            assert_eq!(f["Action"], "AssumeRoleWithWebIdentity");
            assert_eq!(f["Version"], "2011-06-15");
            assert_eq!(f["RoleArn"], ROLE);
            assert_eq!(f["WebIdentityToken"], "eyJ.first-token.sig");
            assert!(f["RoleSessionName"].starts_with("keyway-"), "{f:?}");
        }
        // Kubernetes rotates the file; the next refresh sends the new token.
        std::fs::write(&file, "eyJ.second-token.sig").unwrap();
        p.credentials().await.unwrap();
        assert_eq!(seen.lock().unwrap().len(), 1, "cached until near expiry");
        clock.set_secs(T0 + 3600 - 100);
        p.credentials().await.unwrap();
        assert_eq!(
            seen.lock().unwrap()[1].0["WebIdentityToken"],
            "eyJ.second-token.sig"
        );
        let shown = format!("{p:?} {:?}", p.credentials().await.unwrap());
        for s in ["WEBSECRET", "WEBSESSIONTOKEN", "second-token"] {
            assert!(!shown.contains(s), "{shown}");
        }
    }

    #[tokio::test]
    async fn a_profile_with_web_identity_token_file_and_a_session_name() {
        let seen: Seen = Arc::default();
        let base = fake_sts(seen.clone(), false, T0 + 3600).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        std::fs::write(&file, "eyJ.profile-token.sig").unwrap();
        let config = dir.path().join("config");
        std::fs::write(&config, format!("[profile ci]\nweb_identity_token_file = {}\nrole_arn = {ROLE}\nrole_session_name = ci-run-7\n", file.display())).unwrap();
        let env = Env::new()
            .with("AWS_PROFILE", "ci")
            .with("AWS_CONFIG_FILE", config.to_str().unwrap())
            .with(
                "AWS_SHARED_CREDENTIALS_FILE",
                dir.path().join("none").to_str().unwrap(),
            )
            .with("AWS_ENDPOINT_URL", &base);
        let p = aws_default(&ctx_at(env, &ManualClock::at_secs(T0)), no_imds())
            .await
            .unwrap();
        assert_eq!(p.source().kind, AwsSourceKind::Profile);
        assert!(
            p.source()
                .to_string()
                .contains("profile ci: web_identity_token_file"),
            "{}",
            p.source()
        );
        let f = &seen.lock().unwrap()[0].0;
        assert_eq!(f["RoleSessionName"], "ci-run-7");
        assert_eq!(f["WebIdentityToken"], "eyJ.profile-token.sig");
    }

    #[tokio::test]
    async fn a_refusal_says_who_the_token_names_and_never_shows_it() {
        use base64::Engine;
        let seen: Seen = Arc::default();
        let base = fake_sts(seen.clone(), true, T0).await;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"iss":"https://accounts.google.com","sub":"104857600000000000077","azp":"104857600000000000077","aud":"sts.amazonaws.com"}"#);
        let token = format!("eyJhbGciOiJSUzI1NiJ9.{claims}.SIGNATUREPART");
        std::fs::write(&file, &token).unwrap();
        let env = Env::new()
            .with("AWS_WEB_IDENTITY_TOKEN_FILE", file.to_str().unwrap())
            .with("AWS_ROLE_ARN", ROLE)
            .with("AWS_ENDPOINT_URL_STS", &base);
        let e = aws_default(&ctx_at(env, &ManualClock::at_secs(T0)), no_imds())
            .await
            .unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(
                e,
                AwsAuthError::Rejected(ref r) if r.source == AwsSourceKind::WebIdentity
                    && r.code == AwsErrorCode::AccessDenied
            ),
            "{m}"
        );
        assert!(
            m.contains("403 AccessDenied: Not authorized to perform sts:AssumeRoleWithWebIdentity"),
            "{m}"
        );
        assert!(
            m.contains("azp=104857600000000000077")
                && m.contains(&format!("AssumeRoleWithWebIdentity for {ROLE}")),
            "{m}"
        );
        assert!(
            !m.contains("SIGNATUREPART") && !format!("{e:?}").contains("SIGNATUREPART"),
            "{m}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "a denial is not retried");
    }

    #[test]
    fn sts_endpoint_follows_the_sdks() {
        let c = |env: Env| {
            AuthContext::new(
                env,
                Arc::new(MemFs::new()),
                Arc::new(SystemClock),
                reqwest::Client::new(),
            )
        };
        assert_eq!(
            super::super::call::sts_endpoint(&c(Env::new()), None),
            "https://sts.amazonaws.com"
        );
        assert_eq!(
            super::super::call::sts_endpoint(&c(Env::new()), Some("ap-northeast-1")),
            "https://sts.ap-northeast-1.amazonaws.com"
        );
        let env = Env::new().with("AWS_ENDPOINT_URL", "http://127.0.0.1:1/");
        assert_eq!(
            super::super::call::sts_endpoint(&c(env.clone()), Some("x")),
            "http://127.0.0.1:1"
        );
        assert_eq!(
            super::super::call::sts_endpoint(
                &c(env.with("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:2")),
                None
            ),
            "http://127.0.0.1:2"
        );
    }
}
