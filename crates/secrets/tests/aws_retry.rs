//! A transient failure of the AWS credential chain inside a Secrets Manager
//! fetch is retried: credentials from IMDS that have expired (so they must be
//! refreshed), an IMDS that answers 503 once at that refresh, and the fetch still succeeds within
//! its deadline (the credential chain itself is told not to retry, so the
//! retry seen is the fetch's, decided by the error's typed `is_transient`).
//! A refusal (404 from IMDS, not transient) is not retried.

use keyway_auth::{AuthContext, AwsChainOptions, AwsSourceKind, ImdsEndpoint, aws_default};
use keyway_core::{Env, MemFs, SecretRef, SystemClock};
use keyway_http::RetryPolicy;
use keyway_secrets::{FetchError, Fetcher};
use keyway_testkit::servers::{Answer, scripted};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

const GET_SECRET_VALUE: &str = r#"{"ARN":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf","Name":"app/db","VersionId":"v1","SecretString":"value-7","VersionStages":["AWSCURRENT"],"CreatedDate":1.7e9}"#;

/// A loopback server answering each request with `answer(method, path)`.
fn serve(answer: impl Fn(&str, &str) -> (u16, String) + Send + Sync + 'static) -> String {
    let addr = scripted(move |h| {
        let (status, body) = answer(&h.method, &h.path);
        Answer::Json(status, body)
    });
    format!("http://{addr}")
}

/// An IMDS whose credentials have already expired (so every use must
/// refresh them: the cache serves no expired value, even after a failed
/// refresh) and whose credentials document fails with `fail_status` on the
/// calls numbered in `fail_on` (from 0).
fn imds(calls: Arc<AtomicUsize>, fail_on: &'static [usize], fail_status: u16) -> String {
    serve(move |method, path| {
        let creds = "/latest/meta-data/iam/security-credentials/";
        if (method, path) == ("PUT", "/latest/api/token") {
            return (200, "session-token".into());
        }
        if (method, path) == ("GET", creds) {
            return (200, "node-role".into());
        }
        if method == "GET" && path == format!("{creds}node-role") {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            if fail_on.contains(&n) {
                return (fail_status, String::new());
            }
            let exp = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(10);
            return (
                200,
                format!(
                    r#"{{"Code":"Success","LastUpdated":"2025-01-01T00:00:00Z","Type":"AWS-HMAC","AccessKeyId":"ASIANODE{n}","SecretAccessKey":"s","Token":"t","Expiration":"{exp}"}}"#
                ),
            );
        }
        (404, String::new())
    })
}

async fn fetcher(imds: &str, sm: &str) -> Result<Fetcher, keyway_auth::AwsAuthError> {
    let env = Env::new()
        .with("AWS_REGION", "eu-west-1")
        .with("AWS_ENDPOINT_URL", sm)
        .with("HOME", "/nonexistent-home");
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let mut ctx = AuthContext::new(
        env.clone(),
        Arc::new(MemFs::new()),
        Arc::new(SystemClock),
        http.clone(),
    );
    // The chain does not retry on its own: any retry seen is the fetch's.
    ctx.retry = RetryPolicy {
        max_attempts: 1,
        ..RetryPolicy::default()
    };
    let provider = aws_default(
        &ctx,
        AwsChainOptions {
            sources: vec![AwsSourceKind::Imds],
            imds: ImdsEndpoint::At(imds.to_owned()),
            ..AwsChainOptions::default()
        },
    )
    .await?;
    let mut f = Fetcher::new(http, &env, std::sync::Arc::new(keyway_core::SystemClock));
    f.aws = Some(provider);
    f.retry = RetryPolicy {
        base_delay: Duration::from_millis(5),
        ..keyway_secrets::retry_within(Duration::from_secs(10))
    };
    Ok(f)
}

#[tokio::test]
async fn a_transient_imds_failure_at_refresh_is_retried_by_the_fetch() {
    let calls = Arc::new(AtomicUsize::new(0));
    let imds = imds(calls.clone(), &[1], 503);
    let sm = serve(|_, _| (200, GET_SECRET_VALUE.into()));
    let f = fetcher(&imds, &sm).await.unwrap();
    let r = SecretRef::parse("aws-sm://app/db").unwrap();
    let v = f.fetch(&r, None).await.unwrap();
    assert_eq!(v.expose(), b"value-7");
    // Call 0 found the credentials, call 1 (the refresh) got 503, call 2 succeeded.
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn a_refusal_at_refresh_is_not_retried() {
    let calls = Arc::new(AtomicUsize::new(0));
    let imds = imds(calls.clone(), &[1, 2, 3, 4], 404);
    let sm = serve(|_, _| (200, GET_SECRET_VALUE.into()));
    let f = fetcher(&imds, &sm).await.unwrap();
    let r = SecretRef::parse("aws-sm://app/db").unwrap();
    let e = f.fetch(&r, None).await.unwrap_err();
    let FetchError::AwsCredentials { error, .. } = &e else {
        panic!("{e}")
    };
    assert_eq!(error.rejection().map(|r| r.status), Some(404), "{e}");
    assert!(!e.is_transient());
    assert_eq!(calls.load(Ordering::SeqCst), 2, "not retried");
}
