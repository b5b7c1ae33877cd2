//! The broker's ECS container-credentials API in process, backed by keyway's
//! AWS chain whose upstream is a counting ECS endpoint (support.rs): the
//! document the SDKs read, the token check, refusals, one upstream refresh for
//! a thousand callers, credentials through an outage, and long-term keys refused.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use keyway_auth::{AwsChainOptions, aws_default};
use keyway_broker::ecs::{Aws, AwsError};
use keyway_broker::{Broker, Token, router};
use keyway_core::Env;
use keyway_core::clock::ManualClock;
use serde_json::Value;
use std::sync::Arc;
use support::*;

const PATH: &str = "/aws/credentials";

async fn broker(clock: &ManualClock, lifetime: i64) -> (Router, Upstream, Arc<Token>) {
    let up = Upstream::ecs(clock, lifetime).await;
    let ctx = ctx(up.ecs_env(), clock);
    let provider = aws_default(&ctx, AwsChainOptions::default()).await.unwrap();
    let token = Arc::new(Token::random());
    let a = Aws::new(provider, token.clone()).await.unwrap();
    let b = Broker {
        aws: Some(Arc::new(a)),
        ..Broker::default()
    };
    (router(Arc::new(b)), up, token)
}

fn with_token(path: &str, token: &str) -> axum::http::Request<Body> {
    get(path)
        .header("Authorization", token)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn the_document_the_sdks_read() {
    let clock = ManualClock::at_secs(T0);
    let (r, up, token) = broker(&clock, 3600).await;
    let (s, h, b) = call(&r, with_token(PATH, token.expose())).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["AccessKeyId"], "ASIAUPSTREAM0001");
    assert_eq!(v["SecretAccessKey"], "upstream-secret-1");
    assert_eq!(v["Token"], "upstream-session-1");
    let exp = jiff::Timestamp::from_second(T0 + 3600)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert_eq!(v["Expiration"], exp.as_str());
    for _ in 0..20 {
        call(&r, with_token(PATH, token.expose())).await;
    }
    assert_eq!(up.knobs.hits(), 1, "cached");
}

#[tokio::test]
async fn refusals() {
    let clock = ManualClock::at_secs(T0);
    let (r, up, token) = broker(&clock, 3600).await;
    let hits = up.knobs.hits();
    let (s, _, b) = call(&r, get(PATH).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["code"], "InvalidAuthorizationToken");
    let wrong = Token::random();
    let (s, _, _) = call(&r, with_token(PATH, wrong.expose())).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A prefix, or the token with something after it, is not the token.
    let (s, _, _) = call(&r, with_token(PATH, &token.expose()[..32])).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&r, with_token(PATH, &format!("{}x", token.expose()))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _, _) = call(&r, with_token(PATH, &format!("Bearer {}", token.expose()))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);

    let (s, _, b) = call(
        &r,
        get(PATH)
            .header("Authorization", token.expose())
            .header("X-Forwarded-For", "10.1.2.3")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(!String::from_utf8_lossy(&b).contains("upstream-secret"));
    for m in ["POST", "PUT", "DELETE"] {
        let (s, _, _) = call(
            &r,
            axum::http::Request::builder()
                .method(m)
                .uri(PATH)
                .header("Authorization", token.expose())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m}");
    }
    let (s, _, _) = call(&r, with_token("/aws/credentials/x", token.expose())).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // Without the metadata API the broker has no `/`.
    let (s, _, _) = call(&r, with_token("/", token.expose())).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(up.knobs.hits(), hits);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_at_expiry_cause_one_upstream_refresh() {
    let clock = ManualClock::at_secs(T0);
    let (r, up, token) = broker(&clock, 3600).await;
    clock.advance_secs(3601);
    up.knobs.set_delay_ms(200);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (r, t) = (r.clone(), token.expose().to_owned());
        tasks.push(tokio::spawn(
            async move { call(&r, with_token(PATH, &t)).await },
        ));
    }
    for t in tasks {
        let (s, _, b) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["AccessKeyId"], "ASIAUPSTREAM0002");
    }
    assert_eq!(up.knobs.hits(), 2);
}

#[tokio::test]
async fn an_outage_serves_cached_credentials_until_they_expire_then_503() {
    let clock = ManualClock::at_secs(T0);
    let (r, up, token) = broker(&clock, 3600).await;
    up.knobs.set_down(true);
    // Within botocore's 15-minute window keyway refreshes; the upstream is down.
    clock.advance_secs(3000);
    for _ in 0..10 {
        let (s, _, b) = call(&r, with_token(PATH, token.expose())).await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["AccessKeyId"], "ASIAUPSTREAM0001");
    }
    clock.advance_secs(600);
    let (s, _, b) = call(&r, with_token(PATH, token.expose())).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["code"], "CredentialsUnavailable");
    assert!(!v.to_string().contains("upstream-secret"));
}

#[tokio::test]
async fn long_term_keys_are_not_served() {
    let clock = ManualClock::at_secs(T0);
    let env = Env::new()
        .with("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE12")
        .with("AWS_SECRET_ACCESS_KEY", "long-term-secret")
        .with("AWS_EC2_METADATA_DISABLED", "true");
    let provider = aws_default(&ctx(env, &clock), AwsChainOptions::default())
        .await
        .unwrap();
    let e = match Aws::new(provider, Arc::new(Token::random())).await {
        Err(e) => e,
        Ok(_) => panic!("long-term keys were accepted"),
    };
    assert!(matches!(e, AwsError::LongTerm { .. }));
    let m = e.to_string();
    assert!(m.contains("temporary credentials only"), "{m}");
    assert!(!m.contains("long-term-secret"), "{m}");
}
