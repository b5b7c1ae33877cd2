//! One place where credential code talks HTTP, so every request gets the same
//! treatment: a timeout per attempt (a server that accepts and stalls cannot
//! hang keyway past the deadline), bounded retries with full-jitter exponential
//! backoff for transient failures only, a cap on response size, errors that
//! name the URL without its query string, and bodies kept in [`Secret`]s
//! because a token endpoint's answer is a credential.

use crate::context::RetryPolicy;
use crate::error::{AuthError, is_transient_status};
use keyway_core::Secret;
use keyway_wire::google::GoogleError;
use keyway_wire::google::oauth2::OAuthError;
use rand::Rng;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// Largest response body read from a token endpoint or metadata server.
const MAX_BODY: usize = 1 << 20;

/// A complete HTTP response.
pub(crate) struct Reply {
    pub status: u16,
    /// Whether the response carried `Metadata-Flavor: Google`.
    pub metadata_flavor: bool,
    pub content_type: Option<String>,
    pub body: Secret<Vec<u8>>,
}

/// Why one attempt failed, and whether another may succeed.
pub(crate) struct Failure {
    pub error: AuthError,
    pub retry: bool,
}

/// The URL as errors and logs may show it: no query, fragment or userinfo.
pub(crate) fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            // Both fail only for URLs that cannot have credentials; nothing to strip then.
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Err(_) => raw.split(['?', '#']).next().unwrap_or_default().to_owned(),
    }
}

/// Sends one request built by `build`, reading the whole body within `timeout`.
pub(crate) async fn exchange(
    build: reqwest::RequestBuilder,
    timeout: Duration,
    doing: &'static str,
    url: &str,
) -> Result<Reply, Failure> {
    let attempt = async {
        let mut resp = build.send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers();
        let metadata_flavor = headers
            .get("metadata-flavor")
            .is_some_and(|v| v.as_bytes() == b"Google");
        let content_type = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Secret::new(Vec::new());
        while let Some(chunk) = resp.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY {
                return Ok(Err(body.len() + chunk.len()));
            }
            body.expose_mut().extend_from_slice(&chunk);
        }
        Ok(Ok(Reply {
            status,
            metadata_flavor,
            content_type,
            body,
        }))
    };
    match tokio::time::timeout(timeout, attempt).await {
        Err(_) => Err(Failure {
            error: AuthError::Timeout {
                doing,
                url: redact_url(url),
                after: round_ms(timeout),
            },
            retry: true,
        }),
        Ok(Err(e)) => {
            let e: reqwest::Error = e;
            // Builder and redirect errors are mistakes no retry fixes.
            let retry = e.is_connect() || e.is_timeout() || e.is_request() || e.is_body();
            Err(Failure {
                error: AuthError::Unreachable {
                    doing,
                    url: redact_url(url),
                    reason: describe(e),
                },
                retry,
            })
        }
        Ok(Ok(Err(size))) => Err(Failure {
            error: AuthError::InvalidResponse {
                doing,
                url: redact_url(url),
                reason: format!("response body larger than {MAX_BODY} bytes (at least {size})"),
            },
            retry: false,
        }),
        Ok(Ok(Ok(reply))) => Ok(reply),
    }
}

/// To the nearest millisecond: a timeout cut short by the deadline by a few
/// microseconds reads "1s", not "999.999839ms".
fn round_ms(d: Duration) -> Duration {
    Duration::from_millis(((d.as_micros() + 500) / 1000) as u64)
}

/// The reason behind a reqwest error, without the URL (which may carry a query).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Runs `op` until it succeeds, fails permanently, runs out of attempts, or the
/// deadline passes. `op` gets the attempt number (from 0) and the time it may take.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    doing: &'static str,
    url: &str,
    mut op: F,
) -> Result<T, AuthError>
where
    F: FnMut(u32, Duration) -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let start = Instant::now();
    let deadline = start + policy.deadline;
    let mut attempt: u32 = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = policy.attempt_timeout.min(left);
        let failure = match op(attempt, timeout).await {
            Ok(v) => return Ok(v),
            Err(f) => f,
        };
        attempt += 1;
        if !failure.retry {
            tracing::debug!(doing, url = %redact_url(url), attempt, error = %failure.error, "permanent failure, not retrying");
            return Err(failure.error);
        }
        if attempt >= policy.max_attempts.max(1) {
            tracing::warn!(doing, url = %redact_url(url), attempts = attempt, error = %failure.error, "giving up after the last allowed attempt");
            return Err(failure.error);
        }
        let bound = backoff_bound(policy, attempt - 1);
        // Full jitter: anywhere between zero and the bound.
        let wait = Duration::from_millis(rand::rng().random_range(0..=bound.as_millis() as u64));
        let now = Instant::now();
        if now + wait >= deadline {
            tracing::warn!(doing, url = %redact_url(url), attempts = attempt, elapsed = ?now - start, error = %failure.error, "giving up: the deadline would pass before the next attempt");
            return Err(failure.error);
        }
        tracing::info!(doing, url = %redact_url(url), attempt, wait = ?wait, error = %failure.error, "transient failure, retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Sends the request `build` makes (once per attempt) until a 2xx reply, with
/// retries per `policy`. With `metadata`, the reply must come from a metadata server.
pub(crate) async fn send(
    policy: &RetryPolicy,
    doing: &'static str,
    url: &str,
    metadata: bool,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<Reply, AuthError> {
    with_retries(policy, doing, url, |attempt, timeout| {
        let req = build();
        async move {
            tracing::debug!(doing, url = %redact_url(url), attempt, ?timeout, "sending request");
            let reply = exchange(req, timeout, doing, url).await?;
            tracing::debug!(doing, url = %redact_url(url), status = reply.status, bytes = reply.body.len(), "got response");
            expect_success(reply, doing, url, metadata)
        }
    })
    .await
}

/// `base * 2^n`, capped at `max_delay`.
fn backoff_bound(policy: &RetryPolicy, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
    policy
        .base_delay
        .saturating_mul(factor)
        .min(policy.max_delay)
}

/// Classifies a reply for a request that expects 2xx: transient statuses are
/// retried, other errors are permanent. With `metadata`, a 2xx reply must carry
/// `Metadata-Flavor: Google` (anything else is not a metadata server).
pub(crate) fn expect_success(
    reply: Reply,
    doing: &'static str,
    url: &str,
    metadata: bool,
) -> Result<Reply, Failure> {
    if (200..300).contains(&reply.status) {
        if metadata && !reply.metadata_flavor {
            return Err(Failure {
                error: AuthError::InvalidResponse {
                    doing,
                    url: redact_url(url),
                    reason: "the response lacks the header Metadata-Flavor: Google, so it is not from a metadata server; refusing it".into(),
                },
                retry: false,
            });
        }
        return Ok(reply);
    }
    let summary = summarize_error_body(&reply);
    Err(Failure {
        error: AuthError::Rejected {
            doing,
            url: redact_url(url),
            status: reply.status,
            summary,
        },
        retry: is_transient_status(reply.status),
    })
}

/// What an error body says, briefly: OAuth's `error: error_description`,
/// `google.rpc.Status`'s `STATUS: message`, or the first line of plain text.
fn summarize_error_body(reply: &Reply) -> Option<String> {
    let body = reply.body.expose();
    if let Ok(e) = serde_json::from_slice::<OAuthError>(body) {
        return Some(match e.error_description {
            Some(d) if !d.is_empty() => format!("{}: {}", e.error, clip(&d)),
            _ => e.error,
        });
    }
    if let Ok(g) = serde_json::from_slice::<GoogleError>(body) {
        let status = if g.error.status.is_empty() {
            g.error.code.to_string()
        } else {
            g.error.status
        };
        return Some(format!("{status}: {}", clip(&g.error.message)));
    }
    let text = String::from_utf8_lossy(body);
    let line = text.lines().map(str::trim).find(|l| !l.is_empty())?;
    Some(clip(line))
}

/// At most 200 printable characters.
fn clip(s: &str) -> String {
    let cleaned: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if cleaned.chars().count() > 200 {
        let mut out: String = cleaned.chars().take(200).collect();
        out.push('…');
        out
    } else {
        cleaned
    }
}

/// The body as JSON of type `T`, or an error that says what arrived instead
/// (never the body itself, which may hold a credential).
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(
    reply: &Reply,
    doing: &'static str,
    url: &str,
    expected: &str,
) -> Result<T, AuthError> {
    serde_json::from_slice(reply.body.expose()).map_err(|e| AuthError::InvalidResponse {
        doing,
        url: redact_url(url),
        reason: format!(
            "expected {expected}, got {} bytes{} that do not parse ({})",
            reply.body.len(),
            reply
                .content_type
                .as_deref()
                .map(|c| format!(" of {c}"))
                .unwrap_or_default(),
            json_error(&e)
        ),
    })
}

/// serde_json's message for syntax and missing-field errors; a generic one for
/// type errors, whose message can quote a value.
fn json_error(e: &serde_json::Error) -> String {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => {
            let msg = e.to_string();
            if msg.starts_with("missing field") {
                msg
            } else {
                format!(
                    "a field has the wrong type at line {} column {}",
                    e.line(),
                    e.column()
                )
            }
        }
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_query_and_userinfo() {
        assert_eq!(
            redact_url("http://u:p@127.0.0.1:8/computeMetadata/v1/x?audience=a&format=full#f"),
            "http://127.0.0.1:8/computeMetadata/v1/x"
        );
        assert_eq!(redact_url("not a url?x=1"), "not a url");
    }

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(backoff_bound(&p, 0), Duration::from_millis(50));
        assert_eq!(backoff_bound(&p, 1), Duration::from_millis(100));
        assert_eq!(backoff_bound(&p, 3), Duration::from_millis(400));
        assert_eq!(backoff_bound(&p, 40), p.max_delay);
    }

    fn reply(status: u16, body: &str) -> Reply {
        Reply {
            status,
            metadata_flavor: false,
            content_type: None,
            body: Secret::new(body.as_bytes().to_vec()),
        }
    }

    #[test]
    fn error_bodies_are_summarized() {
        let r = reply(
            400,
            r#"{"error":"invalid_grant","error_description":"Bad Request"}"#,
        );
        assert_eq!(
            summarize_error_body(&r).as_deref(),
            Some("invalid_grant: Bad Request")
        );
        let r = reply(
            403,
            r#"{"error":{"code":403,"message":"denied","status":"PERMISSION_DENIED"}}"#,
        );
        assert_eq!(
            summarize_error_body(&r).as_deref(),
            Some("PERMISSION_DENIED: denied")
        );
        let r = reply(404, "\n  Not Found\nmore");
        assert_eq!(summarize_error_body(&r).as_deref(), Some("Not Found"));
        assert_eq!(summarize_error_body(&reply(500, "")), None);
    }

    #[test]
    fn type_errors_do_not_quote_values() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct T {
            n: u32,
        }
        let r = reply(200, r#"{"n":"sekrit"}"#);
        let e = parse_json::<T>(&r, "x", "http://h/p", "a T")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("sekrit"), "{e}");
        assert!(e.contains("wrong type"), "{e}");
    }
}
