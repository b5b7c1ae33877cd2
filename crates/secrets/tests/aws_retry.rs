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
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const GET_SECRET_VALUE: &str = r#"{"ARN":"arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf","Name":"app/db","VersionId":"v1","SecretString":"value-7","VersionStages":["AWSCURRENT"],"CreatedDate":1.7e9}"#;

/// Reads one HTTP/1.1 request (head and Content-Length body); returns the request line.
async fn read_request(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    break;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            return head.lines().next().map(str::to_owned);
        }
    }
}

/// A loopback server answering each request with `answer(request line)`.
async fn serve(answer: impl Fn(&str) -> (u16, String) + Send + Sync + 'static) -> String {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let Some(line) = read_request(&mut s).await else {
                    return;
                };
                let (status, body) = answer(&line);
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    format!("http://{addr}")
}

/// An IMDS whose credentials have already expired (so every use must
/// refresh them: the cache serves no expired value, even after a failed
/// refresh) and whose credentials document fails with `fail_status` on the
/// calls numbered in `fail_on` (from 0).
async fn imds(calls: Arc<AtomicUsize>, fail_on: &'static [usize], fail_status: u16) -> String {
    serve(move |line| {
        if line.starts_with("PUT /latest/api/token") {
            return (200, "session-token".into());
        }
        if line.starts_with("GET /latest/meta-data/iam/security-credentials/ ") {
            return (200, "node-role".into());
        }
        if line.starts_with("GET /latest/meta-data/iam/security-credentials/node-role") {
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
    .await
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
    let imds = imds(calls.clone(), &[1], 503).await;
    let sm = serve(|_| (200, GET_SECRET_VALUE.into())).await;
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
    let imds = imds(calls.clone(), &[1, 2, 3, 4], 404).await;
    let sm = serve(|_| (200, GET_SECRET_VALUE.into())).await;
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
