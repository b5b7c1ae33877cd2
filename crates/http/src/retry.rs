//! The one retry policy of keyway's client side: transient failures
//! (connection errors, timeouts, and the statuses Google and AWS document as
//! retryable: 408, 429, 500, 502, 503, 504) are retried with full-jitter
//! exponential backoff until the policy's attempts or its overall deadline run
//! out; anything else returns at once. Whether a failure is transient is the
//! error's own typed answer ([`Transient`]), never a reading of its text.

use crate::error::redact_url;
use rand::Rng;
use std::fmt::Display;
use std::future::Future;
use std::time::Duration;
use tokio::time::Instant;

/// An error that knows whether trying again may help.
pub trait Transient {
    fn is_transient(&self) -> bool;
}

/// The statuses a client retries: request timeout, too many requests, and the
/// server-side failures that are usually brief (500, 502, 503, 504).
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// How requests are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Overall time allowed for one operation (all attempts and waits).
    pub deadline: Duration,
    /// Time allowed for one request, from connecting to the last body byte
    /// (capped by what is left of the deadline).
    pub attempt_timeout: Duration,
    /// Most requests sent for one operation.
    pub max_attempts: u32,
    /// Backoff before the second attempt (upper bound; the wait is random below it).
    pub base_delay: Duration,
    /// Largest backoff bound.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            deadline: Duration::from_secs(10),
            attempt_timeout: Duration::from_secs(5),
            max_attempts: 5,
            base_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy with the given overall deadline and defaults otherwise.
    pub fn with_deadline(deadline: Duration) -> Self {
        RetryPolicy {
            deadline,
            ..RetryPolicy::default()
        }
    }

    /// `base * 2^n`, capped at `max_delay`.
    fn backoff_bound(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(20)).unwrap_or(u32::MAX);
        self.base_delay.saturating_mul(factor).min(self.max_delay)
    }
}

/// Runs `op` until it succeeds, fails permanently, runs out of attempts, or the
/// deadline would pass before the next attempt. `op` gets the attempt number
/// (from 0) and the time that attempt may take. The last error is returned.
pub async fn with_retries<T, E, F, Fut>(
    policy: &RetryPolicy,
    doing: &'static str,
    url: &str,
    mut op: F,
) -> Result<T, E>
where
    E: Transient + Display,
    F: FnMut(u32, Duration) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let deadline = start + policy.deadline;
    let mut attempt: u32 = 0;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let timeout = policy.attempt_timeout.min(left);
        let error = match op(attempt, timeout).await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        attempt += 1;
        if !error.is_transient() {
            tracing::debug!(doing, url = %redact_url(url), attempt, %error, "permanent failure, not retrying");
            return Err(error);
        }
        if attempt >= policy.max_attempts.max(1) {
            tracing::info!(doing, url = %redact_url(url), attempts = attempt, %error, "giving up after the last allowed attempt");
            return Err(error);
        }
        let bound = policy.backoff_bound(attempt - 1);
        // Full jitter: anywhere between zero and the bound.
        let wait = Duration::from_millis(rand::rng().random_range(0..=bound.as_millis() as u64));
        let now = Instant::now();
        if now + wait >= deadline {
            tracing::info!(doing, url = %redact_url(url), attempts = attempt, elapsed = ?now - start, %error, "giving up: the deadline would pass before the next attempt");
            return Err(error);
        }
        tracing::info!(doing, url = %redact_url(url), attempt, ?wait, %error, "transient failure, retrying");
        tokio::time::sleep(wait).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let p = RetryPolicy::default();
        assert_eq!(p.backoff_bound(0), Duration::from_millis(50));
        assert_eq!(p.backoff_bound(1), Duration::from_millis(100));
        assert_eq!(p.backoff_bound(3), Duration::from_millis(400));
        assert_eq!(p.backoff_bound(40), p.max_delay);
    }

    #[test]
    fn one_set_of_transient_statuses() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(is_transient_status(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 501] {
            assert!(!is_transient_status(s), "{s}");
        }
    }

    #[derive(Debug)]
    struct E(bool);
    impl Transient for E {
        fn is_transient(&self) -> bool {
            self.0
        }
    }
    impl std::fmt::Display for E {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "e{}", self.0)
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_up_to_the_limit_permanent_ones_not() {
        let p = RetryPolicy {
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        };
        for (transient, attempts) in [(true, p.max_attempts), (false, 1)] {
            let mut n = 0;
            let r: Result<(), E> = with_retries(&p, "t", "u", |_, _| {
                n += 1;
                async move { Err(E(transient)) }
            })
            .await;
            assert!(r.is_err());
            assert_eq!(n, attempts, "transient: {transient}");
        }
    }
}
