//! The three token flows end to end against fakes: service account JWT bearer
//! (checked the way Google checks it), refresh token, metadata server; ID tokens
//! and identities.

use crate::support::*;
use keyway_auth::{AuthError, google_default};
use keyway_core::clock::ManualClock;
use keyway_core::{MemFs, vars};
use serde_json::json;

async fn sa_creds(
    oauth: &FakeOAuth,
    key: Option<&str>,
    clock: &ManualClock,
) -> keyway_auth::GoogleCredentials {
    oauth.expect_sa(SA_EMAIL, "1");
    let fs = MemFs::new().with("/k.json", sa_file(&oauth.token_uri(), key));
    let env = base_env().with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/k.json");
    google_default(&ctx(env, fs, clock), &scopes(&[CLOUD_PLATFORM, "openid"]))
        .await
        .unwrap()
}

#[tokio::test]
async fn service_account_jwt_bearer_is_what_google_expects() {
    let oauth = FakeOAuth::start().await;
    let clock = ManualClock::at_secs(T0);
    let creds = sa_creds(&oauth, None, &clock).await;
    let tok = creds.access_token().await.unwrap();
    assert_eq!(oauth.refusals(), Vec::<String>::new());
    assert_eq!(tok.token.expose(), "ya29.oauth-token");
    assert_eq!(tok.expires_at, T0 + 3599);
    assert_eq!(tok.scopes, Some(scopes(&[CLOUD_PLATFORM, "openid"])));
    let claims = oauth.state.assertions.lock().unwrap().clone();
    // The fake verified the signature with privatekey.pub, the kid, and exp - iat = 3600;
    // here: the claims themselves. aud is Google's endpoint although token_uri is the fake.
    assert_eq!(
        claims,
        vec![json!({
            "iss": SA_EMAIL,
            "aud": GOOGLE_AUD,
            "iat": T0,
            "exp": T0 + 3600,
            "scope": format!("{CLOUD_PLATFORM} openid"),
        })]
    );
    let id = creds.identity().await.unwrap();
    assert_eq!(id.email.as_deref(), Some(SA_EMAIL));
    assert_eq!(id.expires_at, Some(T0 + 3599));
    assert_eq!(creds.project_hint(), Some("example-project"));
}

#[tokio::test]
async fn service_account_keys_in_pkcs8_work() {
    let oauth = FakeOAuth::start().await;
    let clock = ManualClock::at_secs(T0);
    let creds = sa_creds(&oauth, Some(&data("privatekey_pkcs8.pem")), &clock).await;
    creds.access_token().await.unwrap();
    assert_eq!(oauth.refusals(), Vec::<String>::new());
    assert_eq!(oauth.hits(), 1);
}

#[tokio::test]
async fn service_account_id_tokens_use_target_audience() {
    let oauth = FakeOAuth::start().await;
    let clock = ManualClock::at_secs(T0);
    let creds = sa_creds(&oauth, None, &clock).await;
    let id = creds
        .id_token("https://my-service.example.com")
        .await
        .unwrap();
    assert_eq!(oauth.refusals(), Vec::<String>::new());
    let claims = oauth.state.assertions.lock().unwrap()[0].clone();
    assert_eq!(claims["target_audience"], "https://my-service.example.com");
    assert!(claims.get("scope").is_none());
    assert_eq!(claims["aud"], GOOGLE_AUD);
    assert_eq!(id.expose().split('.').count(), 3);
}

#[tokio::test]
async fn a_wrong_key_is_rejected_by_the_token_endpoint_and_not_retried() {
    // A valid RSA key, but not the one whose public half the endpoint knows.
    let oauth = FakeOAuth::start().await;
    let other = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
    use base64::Engine;
    let der: Pkcs8V1Der = other.as_der().unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(der.as_ref());
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{b64}\n-----END PRIVATE KEY-----\n");
    let clock = ManualClock::at_secs(T0);
    let creds = sa_creds(&oauth, Some(&pem), &clock).await;
    let err = creds.access_token().await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(
        err.to_string()
            .ends_with("answered 400 Bad Request: invalid_grant: Invalid JWT Signature."),
        "{err}"
    );
    assert_eq!(oauth.hits(), 1);
}

#[tokio::test]
async fn user_credentials_refresh_and_learn_the_email_from_the_id_token() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "alabalaportocala");
    *oauth.state.user_id_token_email.lock().unwrap() = Some("alice@example.com".into());
    *oauth.state.user_scope.lock().unwrap() = Some(format!(
        "openid https://www.googleapis.com/auth/userinfo.email {CLOUD_PLATFORM}"
    ));
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new().with(GCLOUD_FILE, data("authorized_user.json"));
    let env = base_env().with(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2, &oauth.base());
    let creds = adc_for(env, fs, &clock, &[CLOUD_PLATFORM]).await.unwrap();
    let id = creds.identity().await.unwrap();
    assert_eq!(id.email.as_deref(), Some("alice@example.com"));
    assert_eq!(id.scopes.as_ref().map(|s| s.len()), Some(3));
    assert_eq!(id.expires_at, Some(T0 + 3599));
    assert_eq!(oauth.hits(), 1);
}

#[tokio::test]
async fn user_credentials_prefer_the_files_account_and_honour_token_uri() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "alabalaportocala");
    let file = json!({
        "type": "authorized_user", "client_id": "123", "client_secret": "secret",
        "refresh_token": "alabalaportocala", "account": "bob@example.com",
        "token_uri": oauth.token_uri(), "quota_project_id": "bobs-project",
    });
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new().with(GCLOUD_FILE, file.to_string());
    // The override is ignored when the file names its endpoint.
    let env = base_env().with(
        vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2,
        "http://127.0.0.1:1/",
    );
    let creds = adc(env, fs, &clock).await.unwrap();
    let id = creds.identity().await.unwrap();
    assert_eq!(id.email.as_deref(), Some("bob@example.com"));
    assert_eq!(id.scopes, None, "the endpoint named no scopes");
    assert_eq!(creds.project_hint(), Some("bobs-project"));

    let err = creds.id_token("https://aud").await.unwrap_err();
    assert!(matches!(err, AuthError::OperationUnsupported { .. }));
    assert!(
        err.to_string()
            .starts_with("getting an id token: not possible with authorized_user credentials: "),
        "{err}"
    );
}

#[tokio::test]
async fn user_credentials_without_account_or_id_token_have_no_email() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "alabalaportocala");
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new().with(GCLOUD_FILE, data("authorized_user.json"));
    let env = base_env().with(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2, &oauth.base());
    let creds = adc(env, fs, &clock).await.unwrap();
    assert_eq!(creds.identity().await.unwrap().email, None);
}

#[tokio::test]
async fn a_token_cached_in_the_gcloud_file_is_used_until_due() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "alabalaportocala");
    let expiry = jiff::Timestamp::from_second(T0 + 3000).unwrap().to_string();
    let file = json!({
        "type": "authorized_user", "client_id": "123", "client_secret": "secret",
        "refresh_token": "alabalaportocala", "token": "ya29.from-the-file", "expiry": expiry,
    });
    let clock = ManualClock::at_secs(T0);
    let fs = MemFs::new().with(GCLOUD_FILE, file.to_string());
    let env = base_env().with(vars::CLOUDSDK_API_ENDPOINT_OVERRIDES_OAUTH2, &oauth.base());
    let creds = adc(env, fs, &clock).await.unwrap();
    let tok = creds.access_token().await.unwrap();
    assert_eq!(
        (tok.token.expose().as_str(), tok.expires_at),
        ("ya29.from-the-file", T0 + 3000)
    );
    assert_eq!(oauth.hits(), 0);
    clock.advance_secs(3000 - 225);
    assert_eq!(
        creds.access_token().await.unwrap().token.expose(),
        "ya29.oauth-token"
    );
    assert_eq!(oauth.hits(), 1);
}

#[tokio::test]
async fn metadata_id_tokens_ask_for_the_full_format() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let creds = adc(env, MemFs::new(), &clock).await.unwrap();
    let id = creds.id_token("https://svc.example.com/a?b").await.unwrap();
    assert_eq!(id.expose(), &md.state.id_token);
    let q = md
        .state
        .last_identity_query
        .lock()
        .unwrap()
        .clone()
        .unwrap();
    let pairs: Vec<(String, String)> = form_urlencoded::parse(q.as_bytes()).into_owned().collect();
    assert_eq!(
        pairs,
        vec![
            (
                "audience".to_owned(),
                "https://svc.example.com/a?b".to_owned()
            ),
            ("format".to_owned(), "full".to_owned())
        ]
    );
}
