//! The broker's GCE metadata API in process, backed by Google credentials
//! whose upstream is a counting metadata server (support.rs): the paths and
//! answers Google's libraries read, GCE's refusals, one upstream refresh for
//! a thousand callers, and the cached token through an upstream outage.

mod support;

use axum::Router;
use axum::body::Body;
use axum::http::StatusCode;
use keyway_broker::gce::{Google, Project};
use keyway_broker::{Broker, router};
use keyway_core::clock::ManualClock;
use serde_json::Value;
use std::sync::Arc;
use support::*;

/// The default service account's access and ID tokens.
const TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const IDENTITY: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

/// [`broker`] on a clock at [`T0`], which it returns.
async fn broker_at_t0(lifetime: i64) -> (ManualClock, Router, Upstream) {
    let clock = ManualClock::at_secs(T0);
    let (r, up) = broker(&clock, lifetime).await;
    (clock, r, up)
}

async fn broker(clock: &ManualClock, lifetime: i64) -> (Router, Upstream) {
    let up = Upstream::metadata(clock, lifetime).await;
    let ctx = ctx(up.env(), clock);
    let creds = keyway_auth::google_default(&ctx, &[CLOUD_PLATFORM.to_owned()])
        .await
        .unwrap();
    let g = Google::new(creds, Project::default(), Arc::new(clock.clone()))
        .await
        .unwrap();
    let b = Broker {
        google: Some(Arc::new(g)),
        ..Broker::default()
    };
    (router(Arc::new(b)), up)
}

fn text(b: &[u8]) -> String {
    String::from_utf8(b.to_vec()).unwrap()
}

#[tokio::test]
async fn ping_and_listings_as_gce_answers_them() {
    let clock = ManualClock::at_secs(T0);
    let (r, _up) = broker(&clock, 3600).await;

    // Python google-auth pings `/` (with the header); the root answers without it too.
    let (s, h, b) = call(&r, get("/").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["metadata-flavor"], "Google");
    assert_eq!(h["server"], "Metadata Server for VM");
    assert_eq!(text(&b), "computeMetadata/\n");

    // Node pings `/computeMetadata/v1/instance`: redirected to the directory.
    let (s, h, _) = call(&r, md("/computeMetadata/v1/instance")).await;
    assert_eq!(s, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h["location"], "/computeMetadata/v1/instance/");
    assert_eq!(h["metadata-flavor"], "Google");
    let (s, h, b) = call(&r, md("/computeMetadata/v1/instance/")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/text");
    assert_eq!(text(&b), "attributes/\nservice-accounts/\n");

    let (_, _, b) = call(&r, md("/computeMetadata/v1/instance/service-accounts/")).await;
    assert_eq!(text(&b), format!("default/\n{SA}/\n"));
    let (s, h, b) = call(
        &r,
        md("/computeMetadata/v1/instance/service-accounts/default/?recursive=true"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["email"], SA);
    assert_eq!(v["aliases"][0], "default");
    assert_eq!(v["scopes"][0], CLOUD_PLATFORM);

    for (path, want) in [
        ("instance/service-accounts/default/email", SA.to_owned()),
        (
            &format!("instance/service-accounts/{SA}/email"),
            SA.to_owned(),
        ),
        (
            "instance/service-accounts/default/aliases",
            "default\n".into(),
        ),
        (
            "instance/service-accounts/default/scopes",
            format!("{CLOUD_PLATFORM}\n"),
        ),
        ("project/project-id", "proj-a".into()),
        ("universe/universe-domain", "googleapis.com".into()),
    ] {
        let (s, h, b) = call(&r, md(&format!("/computeMetadata/v1/{path}"))).await;
        assert_eq!(s, StatusCode::OK, "{path}");
        assert_eq!(h["content-type"], "application/text", "{path}");
        assert_eq!(text(&b), want, "{path}");
    }
    let (_, h, b) = call(
        &r,
        md("/computeMetadata/v1/instance/service-accounts/default/email?alt=json"),
    )
    .await;
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(text(&b), format!("\"{SA}\""));

    // Not known here: GCE's 404 page.
    for path in [
        "/computeMetadata/v1/project/numeric-project-id",
        "/computeMetadata/v1/instance/zone",
        "/computeMetadata/v1/instance/service-accounts/other@x.iam.gserviceaccount.com/token",
        "/computeMetadata/v2/",
        "/elsewhere",
    ] {
        let (s, h, b) = call(&r, md(path)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(h["metadata-flavor"], "Google");
        assert!(text(&b).contains("404"), "{path}");
    }
    let (_, _, b) = call(&r, md("/computeMetadata/v1/?recursive=true")).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["project"]["projectId"], "proj-a");
    assert_eq!(v["instance"]["serviceAccounts"]["default"]["email"], SA);
    assert_eq!(v["universe"]["universeDomain"], "googleapis.com");
}

#[tokio::test]
async fn refusals_as_gce_refuses() {
    let (_clock, r, up) = broker_at_t0(3600).await;
    let hits = up.knobs.hits();
    let token = "/computeMetadata/v1/instance/service-accounts/default/token";

    let (s, h, b) = call(&r, get(token).body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(h["metadata-flavor"], "Google");
    assert!(text(&b).contains("Metadata-Flavor: Google"));
    let (s, _, _) = call(
        &r,
        get(token)
            .header("Metadata-Flavor", "google")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "the value is case-sensitive");

    for (name, value) in [
        ("X-Forwarded-For", "10.0.0.8"),
        ("Forwarded", "for=10.0.0.8"),
    ] {
        let (s, _, b) = call(
            &r,
            get(token)
                .header("Metadata-Flavor", "Google")
                .header(name, value)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{name}");
        assert!(!text(&b).contains("ya29"));
    }
    for m in ["POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"] {
        let (s, h, _) = call(
            &r,
            axum::http::Request::builder()
                .method(m)
                .uri(token)
                .header("Metadata-Flavor", "Google")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(h["allow"], "GET");
    }
    assert_eq!(up.knobs.hits(), hits, "no refused request reached upstream");
}

#[tokio::test]
async fn tokens_are_cached_and_count_down() {
    let (clock, r, up) = broker_at_t0(3600).await;
    let (s, h, b) = call(&r, md(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(h["metadata-flavor"], "Google");
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    let first = v["access_token"].as_str().unwrap().to_owned();
    assert!(first.starts_with("ya29.upstream-"));
    for _ in 0..50 {
        call(&r, md(TOKEN)).await;
    }
    clock.advance_secs(600);
    let (_, _, b) = call(&r, md(TOKEN)).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["access_token"], first.as_str());
    assert_eq!(v["expires_in"], 3000);
    assert_eq!(up.knobs.hits(), 1, "one upstream token for every request");
    // By email too (Python asks by the email it read).
    let (s, _, _) = call(
        &r,
        md(&format!(
            "/computeMetadata/v1/instance/service-accounts/{SA}/token"
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(up.knobs.hits(), 1);
}

#[tokio::test]
async fn other_scopes_get_their_own_token() {
    let (_clock, r, up) = broker_at_t0(3600).await;
    let base = "/computeMetadata/v1/instance/service-accounts/default/token";
    call(&r, md(base)).await;
    // The default set, spelled by a client: the same cache.
    call(&r, md(&format!("{base}?scopes={CLOUD_PLATFORM}"))).await;
    assert_eq!(up.knobs.hits(), 1);
    let other = "https://www.googleapis.com/auth/bigquery,https://www.googleapis.com/auth/devstorage.read_only";
    let (s, _, _) = call(&r, md(&format!("{base}?scopes={other}"))).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(up.knobs.hits(), 2);
    // Same set, other order: cached.
    call(
        &r,
        md(&format!(
            "{base}?scopes=https://www.googleapis.com/auth/devstorage.read_only,https://www.googleapis.com/auth/bigquery"
        )),
    )
    .await;
    assert_eq!(up.knobs.hits(), 2);
    let (s, _, _) = call(&r, md(&format!("{base}?scopes=a%20b"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_callers_at_expiry_cause_one_upstream_refresh() {
    let (clock, r, up) = broker_at_t0(60).await;
    call(&r, md(TOKEN)).await;
    assert_eq!(up.knobs.hits(), 1);
    // The token has expired; the upstream takes a while to answer.
    clock.advance_secs(61);
    up.knobs.set_delay_ms(200);
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let r = r.clone();
        tasks.push(tokio::spawn(async move { call(&r, md(TOKEN)).await }));
    }
    let mut tokens = std::collections::BTreeSet::new();
    for t in tasks {
        let (s, _, b) = t.await.unwrap();
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).unwrap();
        tokens.insert(v["access_token"].as_str().unwrap().to_owned());
    }
    assert_eq!(up.knobs.hits(), 2, "exactly one upstream refresh");
    assert_eq!(tokens.len(), 1, "{tokens:?}");
}

#[tokio::test]
async fn an_outage_serves_the_cached_token_until_it_expires_then_503() {
    let (clock, r, up) = broker_at_t0(3600).await;
    let (_, _, b) = call(&r, md(TOKEN)).await;
    let v: Value = serde_json::from_slice(&b).unwrap();
    let token = v["access_token"].as_str().unwrap().to_owned();
    up.knobs.set_down(true);
    // Due for refresh (refresh-ahead 225 s); upstream down: the cached token, still valid.
    clock.advance_secs(3500);
    for _ in 0..20 {
        let (s, _, b) = call(&r, md(TOKEN)).await;
        assert_eq!(s, StatusCode::OK);
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["access_token"], token.as_str());
        assert_eq!(v["expires_in"], 100);
    }
    let tried = up.knobs.hits();
    assert!(
        tried <= 1 + 2,
        "at most one refresh (of two attempts) in the cooldown: {tried}"
    );
    // Expired: answered as the metadata server does when it cannot mint one.
    clock.advance_secs(100);
    let (s, h, b) = call(&r, md(TOKEN)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(h["metadata-flavor"], "Google");
    assert!(
        text(&b).starts_with("Unable to generate an access token"),
        "{}",
        text(&b)
    );
    // Back up: served again.
    up.knobs.set_down(false);
    let (s, _, b) = call(&r, md(TOKEN)).await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_ne!(v["access_token"], token.as_str());
}

#[tokio::test]
async fn identity_tokens_need_an_audience_and_are_cached_per_audience() {
    let (_clock, r, up) = broker_at_t0(3600).await;
    let base = IDENTITY;
    let (s, _, b) = call(&r, md(base)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(text(&b).contains("audience"));
    let (s, _, _) = call(&r, md(&format!("{base}?audience=x&format=weird"))).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    for _ in 0..3 {
        let (s, h, b) = call(
            &r,
            md(&format!("{base}?audience=https://svc.example&format=full")),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h["content-type"], "application/text");
        assert_eq!(text(&b).split('.').count(), 3);
    }
    call(&r, md(&format!("{base}?audience=https://other.example"))).await;
    assert_eq!(
        up.knobs
            .identity_hits
            .load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}
