//! The token cache (reuse, refresh ahead, single flight) and what happens when
//! upstream misbehaves: transient statuses, stalls, resets, garbage, impostors,
//! permanent refusals.

use crate::support::*;
use keyway_auth::{AuthError, GoogleCredentials, HttpError, google_default};
use keyway_core::clock::ManualClock;
use keyway_core::{MemFs, vars};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

async fn metadata_creds(
    md: &FakeMetadata,
    clock: &ManualClock,
    deadline: Duration,
) -> GoogleCredentials {
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    google_default(
        &ctx_quick(env, MemFs::new(), clock, deadline),
        &scopes(&[CLOUD_PLATFORM]),
    )
    .await
    .unwrap()
}

/// User credentials refreshing at `token_uri`.
async fn user_creds(token_uri: &str, clock: &ManualClock, deadline: Duration) -> GoogleCredentials {
    let file = serde_json::json!({
        "type": "authorized_user", "client_id": "123", "client_secret": "secret",
        "refresh_token": "alabalaportocala", "token_uri": token_uri,
    });
    let fs = MemFs::new().with("/u.json", file.to_string());
    let env = base_env().with(vars::GOOGLE_APPLICATION_CREDENTIALS, "/u.json");
    google_default(&ctx_quick(env, fs, clock, deadline), &[])
        .await
        .unwrap()
}

fn token_uri(addr: SocketAddr) -> String {
    format!("http://{addr}/token")
}

#[tokio::test]
async fn sequential_calls_reuse_one_token() {
    let md = FakeMetadata::start().await;
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    for _ in 0..10 {
        assert_eq!(
            creds.access_token().await.unwrap().token.expose(),
            "ya29.metadata-token"
        );
    }
    // Clones share the cache.
    creds.clone().access_token().await.unwrap();
    assert_eq!(md.token_hits(), 1);
}

#[tokio::test]
async fn tokens_are_refreshed_ahead_of_expiry() {
    let md = FakeMetadata::start().await;
    *md.state.expires_in.lock().unwrap() = 3600;
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    assert_eq!(creds.access_token().await.unwrap().expires_at, T0 + 3600);

    // One second before the refresh-ahead point (3 min 45 s before expiry): still cached.
    clock.advance_secs(3600 - 225 - 1);
    assert_eq!(creds.access_token().await.unwrap().expires_at, T0 + 3600);
    assert_eq!(md.token_hits(), 1);

    // At the refresh-ahead point: a new token, although the old one is still valid.
    *md.state.access_token.lock().unwrap() = "ya29.second".into();
    clock.advance_secs(1);
    let tok = creds.access_token().await.unwrap();
    assert_eq!(tok.token.expose(), "ya29.second");
    assert_eq!(tok.expires_at, T0 + 3600 - 225 + 3600);
    assert_eq!(md.token_hits(), 2);
}

#[tokio::test]
async fn refresh_ahead_is_configurable() {
    let md = FakeMetadata::start().await;
    *md.state.expires_in.lock().unwrap() = 3600;
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let mut c = ctx(env, MemFs::new(), &clock);
    c.refresh_ahead = Duration::from_secs(600);
    let creds = google_default(&c, &[]).await.unwrap();
    creds.access_token().await.unwrap();
    clock.advance_secs(3000 - 1);
    creds.access_token().await.unwrap();
    assert_eq!(md.token_hits(), 1);
    clock.advance_secs(1);
    creds.access_token().await.unwrap();
    assert_eq!(md.token_hits(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_callers_send_one_request() {
    let md = FakeMetadata::start().await;
    *md.state.token_delay.lock().unwrap() = Duration::from_millis(300);
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "alabalaportocala");
    *oauth.state.delay.lock().unwrap() = Duration::from_millis(300);
    let clock = ManualClock::at_secs(T0);
    let m = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    let u = user_creds(&oauth.token_uri(), &clock, Duration::from_secs(5)).await;
    for creds in [m, u] {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let c = creds.clone();
                tokio::spawn(
                    async move { c.access_token().await.map(|t| t.token.expose().clone()) },
                )
            })
            .collect();
        for t in futures::future::join_all(tasks).await {
            assert!(t.unwrap().is_ok());
        }
    }
    assert_eq!(md.token_hits(), 1);
    assert_eq!(oauth.hits(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_callers_share_one_failure_too() {
    let md = FakeMetadata::start().await;
    md.script(&[Reply::Status(403)]);
    *md.state.token_delay.lock().unwrap() = Duration::from_millis(200);
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let c = creds.clone();
            tokio::spawn(async move { c.access_token().await.map(|_| ()) })
        })
        .collect();
    for t in futures::future::join_all(tasks).await {
        assert_eq!(t.unwrap().unwrap_err().status(), Some(403));
    }
    assert_eq!(md.token_hits(), 1);
}

#[tokio::test]
async fn transient_statuses_are_retried_until_success() {
    let md = FakeMetadata::start().await;
    md.script(&[Reply::Status(503), Reply::Status(500), Reply::Status(429)]);
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    assert_eq!(
        creds.access_token().await.unwrap().token.expose(),
        "ya29.metadata-token"
    );
    assert_eq!(md.token_hits(), 4);
}

#[tokio::test]
async fn a_server_that_always_fails_is_given_up_on_after_bounded_attempts() {
    let md = FakeMetadata::start().await;
    md.script(&vec![Reply::Status(500); 100]);
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(3)).await;
    let started = Instant::now();
    let err = creds.access_token().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(md.token_hits(), 5, "max_attempts");
    assert!(err.is_transient());
    assert_eq!(err.status(), Some(500));
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!(
            "getting an access token from the metadata server: http://{}/computeMetadata/v1/instance/service-accounts/default/token answered 500 Internal Server Error: UNAVAILABLE: fake failure",
            md.host()
        ),
        "the url is shown without its ?scopes= query"
    );
}

#[tokio::test]
async fn the_deadline_bounds_retries() {
    let md = FakeMetadata::start().await;
    md.script(&vec![Reply::Status(503); 1000]);
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let mut c = ctx(env, MemFs::new(), &clock);
    c.retry.deadline = Duration::from_secs(1);
    c.retry.max_attempts = 1000;
    let creds = google_default(&c, &[]).await.unwrap();
    let started = Instant::now();
    let err = creds.access_token().await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "{took:?}");
    assert_eq!(err.status(), Some(503));
    let hits = md.token_hits();
    assert!((2..1000).contains(&hits), "{hits} attempts");
}

#[tokio::test]
async fn a_stalling_server_times_out_within_the_deadline() {
    // A token endpoint that accepts connections and never answers.
    let (addr, conns) = stall_server().await;
    let clock = ManualClock::at_secs(T0);
    let creds = user_creds(&token_uri(addr), &clock, Duration::from_secs(1)).await;
    let started = Instant::now();
    let err = creds.access_token().await.unwrap_err();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "{took:?}");
    assert!(took >= Duration::from_millis(900), "{took:?}");
    let AuthError::Transport(HttpError::Timeout { url, after, .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!(url, &token_uri(addr));
    assert!(*after <= Duration::from_secs(1));
    assert!(err.is_transient());
    assert!(conns.load(std::sync::atomic::Ordering::SeqCst) >= 1);

    // Same for a metadata server whose token endpoint hangs.
    let md = FakeMetadata::start().await;
    md.script(&[Reply::Stall; 10]);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(1)).await;
    let started = Instant::now();
    let err = creds.access_token().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(err, AuthError::Transport(HttpError::Timeout { .. })),
        "{err}"
    );
    assert!(
        err.to_string().ends_with("did not answer within 1s"),
        "{err}"
    );
}

#[tokio::test]
async fn per_request_timeouts_let_a_retry_succeed_after_a_stall() {
    let md = FakeMetadata::start().await;
    md.script(&[Reply::Stall]);
    let clock = ManualClock::at_secs(T0);
    let env = base_env().with(vars::GCE_METADATA_HOST, &md.host());
    let mut c = ctx(env, MemFs::new(), &clock);
    c.retry.deadline = Duration::from_secs(5);
    c.retry.attempt_timeout = Duration::from_millis(300);
    let creds = google_default(&c, &[]).await.unwrap();
    creds.access_token().await.unwrap();
    assert_eq!(md.token_hits(), 2);
}

#[tokio::test]
async fn connection_resets_are_retried() {
    let ok = r#"{"access_token":"ya29.after-resets","expires_in":3599,"token_type":"Bearer"}"#;
    let (addr, conns) = reset_server(2, ok).await;
    let clock = ManualClock::at_secs(T0);
    let creds = user_creds(&token_uri(addr), &clock, Duration::from_secs(5)).await;
    assert_eq!(
        creds.access_token().await.unwrap().token.expose(),
        "ya29.after-resets"
    );
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_server_that_always_resets_is_unreachable() {
    let (addr, conns) = reset_server(usize::MAX, "").await;
    let clock = ManualClock::at_secs(T0);
    let creds = user_creds(&token_uri(addr), &clock, Duration::from_secs(5)).await;
    let err = creds.access_token().await.unwrap_err();
    let AuthError::Transport(HttpError::Unreachable { url, reason, .. }) = &err else {
        panic!("{err}")
    };
    assert_eq!(url, &token_uri(addr));
    assert!(!reason.is_empty());
    assert!(err.is_transient());
    assert!(
        err.to_string().starts_with(&format!(
            "refreshing user credentials: could not reach {}: ",
            token_uri(addr)
        )),
        "{err}"
    );
    assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 5);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable() {
    let nobody = closed_port().await;
    let clock = ManualClock::at_secs(T0);
    let creds = user_creds(&token_uri(nobody), &clock, Duration::from_secs(2)).await;
    let err = creds.access_token().await.unwrap_err();
    assert!(
        matches!(err, AuthError::Transport(HttpError::Unreachable { .. })),
        "{err}"
    );
    assert!(err.to_string().to_lowercase().contains("connect"), "{err}");
}

#[tokio::test]
async fn garbage_is_a_clear_error_and_not_retried() {
    let md = FakeMetadata::start().await;
    md.script(&[Reply::Garbage]);
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    let err = creds.access_token().await.unwrap_err();
    assert!(matches!(err, AuthError::InvalidResponse { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("sent an invalid response: expected a token response with access_token and expires_in, got 51 bytes of text/html that do not parse (expected value at line 1 column 1)"), "{msg}");
    assert!(!msg.contains("hotel"), "the body is not quoted: {msg}");
    assert_eq!(md.token_hits(), 1);

    // The same from a token endpoint.
    let oauth = FakeOAuth::start().await;
    oauth.script(&[Reply::Garbage]);
    let creds = user_creds(&oauth.token_uri(), &clock, Duration::from_secs(5)).await;
    let err = creds.access_token().await.unwrap_err();
    assert!(
        err.to_string().contains("of text/html that do not parse"),
        "{err}"
    );
    assert_eq!(oauth.hits(), 1);
}

#[tokio::test]
async fn a_token_without_metadata_flavor_is_refused() {
    let md = FakeMetadata::start().await;
    md.script(&[Reply::NoFlavor]);
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    let err = creds.access_token().await.unwrap_err();
    assert!(matches!(err, AuthError::InvalidResponse { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("lacks the header Metadata-Flavor: Google"),
        "{err}"
    );
    assert_eq!(md.token_hits(), 1);
    // The next call asks again (failures are not cached) and succeeds.
    creds.access_token().await.unwrap();
    assert_eq!(md.token_hits(), 2);
}

#[tokio::test]
async fn invalid_grant_is_returned_at_once() {
    let oauth = FakeOAuth::start().await;
    oauth.expect_user("123", "secret", "a-different-refresh-token");
    let clock = ManualClock::at_secs(T0);
    let creds = user_creds(&oauth.token_uri(), &clock, Duration::from_secs(5)).await;
    let err = creds.access_token().await.unwrap_err();
    assert_eq!(oauth.hits(), 1);
    assert!(!err.is_transient());
    assert_eq!(
        err.to_string(),
        format!(
            "refreshing user credentials: {} answered 400 Bad Request: invalid_grant: Bad Request",
            oauth.token_uri()
        )
    );
}

#[tokio::test]
async fn permanent_statuses_are_not_retried() {
    for status in [401, 403, 404] {
        let md = FakeMetadata::start().await;
        md.script(&[Reply::Status(status)]);
        let clock = ManualClock::at_secs(T0);
        let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
        let err = creds.access_token().await.unwrap_err();
        assert_eq!(err.status(), Some(status));
        assert_eq!(md.token_hits(), 1, "{status}");
    }
}

#[tokio::test]
async fn a_failed_refresh_while_the_old_token_is_valid_keeps_it() {
    let md = FakeMetadata::start().await;
    *md.state.expires_in.lock().unwrap() = 3600;
    let clock = ManualClock::at_secs(T0);
    let creds = metadata_creds(&md, &clock, Duration::from_secs(5)).await;
    creds.access_token().await.unwrap();
    md.script(&[Reply::Status(403)]);
    clock.advance_secs(3600 - 100);
    let tok = creds.access_token().await.unwrap();
    assert_eq!(tok.expires_at, T0 + 3600, "the old, still valid token");
    assert_eq!(md.token_hits(), 2);
    md.script(&[Reply::Status(403)]);
    clock.advance_secs(100);
    assert_eq!(
        creds.access_token().await.unwrap_err().status(),
        Some(403),
        "expired: the error surfaces"
    );
}
