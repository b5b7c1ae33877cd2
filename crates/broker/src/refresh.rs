//! Keeps the broker's default Google token and its AWS credentials fresh in
//! the background, so that no caller ever waits for an upstream refresh: one
//! task per credential wakes when the cached value becomes due (keyway-auth's
//! refresh-ahead margin, capped at half the value's lifetime), refreshes it,
//! and sleeps again. When a refresh fails the cached value is still served
//! until it truly expires (keyway-auth does that); the task retries with a
//! backoff (1 s doubling to 30 s) and logs why, once per failure streak at
//! `warn` and again when the value has expired.

use crate::Broker;
use keyway_auth::CacheStatus;
use keyway_core::Clock;
use std::sync::Arc;
use std::time::Duration;

const MIN_WAIT: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A value that never expires is looked at again after this long anyway.
const MAX_WAIT: Duration = Duration::from_secs(3600);

/// How long to sleep before the next refresh, given the cache's state after
/// the last attempt; `backoff` grows while refreshes fail.
pub fn next_wait(status: Option<&CacheStatus>, now: i64, backoff: &mut Duration) -> Duration {
    match status {
        Some(s) if s.failing_since.is_none() => {
            *backoff = MIN_WAIT;
            match s.refresh_at {
                Some(at) => secs(at.saturating_sub(now)).clamp(MIN_WAIT, MAX_WAIT),
                None => MAX_WAIT,
            }
        }
        // Failing, or nothing obtained yet: retry with a growing backoff.
        _ => {
            let wait = *backoff;
            *backoff = (*backoff * 2).min(MAX_BACKOFF);
            wait
        }
    }
}

fn secs(s: i64) -> Duration {
    Duration::from_secs(u64::try_from(s).unwrap_or(0))
}

/// Starts one refresher per credential the broker serves. The tasks end when
/// the runtime does (or when aborted through the handles).
pub fn spawn(b: &Broker, clock: Arc<dyn Clock>) -> Vec<tokio::task::JoinHandle<()>> {
    let mut tasks = Vec::new();
    if let Some(g) = &b.google {
        let creds = g.credentials().clone();
        let clock = clock.clone();
        tasks.push(tokio::spawn(async move {
            let mut backoff = MIN_WAIT;
            loop {
                let result = creds.access_token().await;
                let status = creds.token_status();
                log(
                    "google access token",
                    result.err().map(|e| e.to_string()),
                    status.as_ref(),
                    clock.now_secs(),
                );
                tokio::time::sleep(next_wait(status.as_ref(), clock.now_secs(), &mut backoff))
                    .await;
            }
        }));
    }
    if let Some(a) = &b.aws {
        let provider = a.provider().clone();
        tasks.push(tokio::spawn(async move {
            let mut backoff = MIN_WAIT;
            loop {
                let result = provider.credentials().await;
                let status = provider.status();
                log(
                    "aws credentials",
                    result.err().map(|e| e.to_string()),
                    status.as_ref(),
                    clock.now_secs(),
                );
                tokio::time::sleep(next_wait(status.as_ref(), clock.now_secs(), &mut backoff))
                    .await;
            }
        }));
    }
    tasks
}

/// An error means nothing valid is left (keyway-auth serves a still-valid
/// value through a failed refresh, and logs that itself).
fn log(what: &str, error: Option<String>, status: Option<&CacheStatus>, now: i64) {
    match (error, status) {
        (Some(e), _) => tracing::warn!(
            error = %e,
            "the broker has no valid {what}: requests for it are answered as the real endpoint answers when it has none, until a refresh succeeds"
        ),
        (None, Some(s)) if s.failing_since.is_some() => tracing::debug!(
            expires_in = ?s.expires_at.map(|e| e - now),
            "{what}: refresh failing; serving the cached value until it expires"
        ),
        (None, Some(s)) => tracing::debug!(
            expires_in = ?s.expires_at.map(|e| e - now),
            refresh_in = ?s.refresh_at.map(|r| r - now),
            "{what} is fresh"
        ),
        (None, None) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(refresh_at: i64, failing: bool) -> CacheStatus {
        CacheStatus {
            expires_at: Some(refresh_at + 225),
            refresh_at: Some(refresh_at),
            failing_since: failing.then_some(0),
        }
    }

    #[test]
    fn sleeps_until_due_and_backs_off_while_failing() {
        let mut b = MIN_WAIT;
        assert_eq!(
            next_wait(Some(&st(1100, false)), 1000, &mut b),
            Duration::from_secs(100)
        );
        // Due already (a refresh is in flight elsewhere): look again soon.
        assert_eq!(next_wait(Some(&st(900, false)), 1000, &mut b), MIN_WAIT);
        let waits: Vec<u64> = (0..7)
            .map(|_| next_wait(Some(&st(900, true)), 1000, &mut b).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        // A success resets the backoff.
        next_wait(Some(&st(5000, false)), 1000, &mut b);
        assert_eq!(next_wait(None, 1000, &mut b), MIN_WAIT);
        // Long-term keys: look again in an hour.
        let never = CacheStatus {
            expires_at: None,
            refresh_at: None,
            failing_since: None,
        };
        assert_eq!(next_wait(Some(&never), 1000, &mut b), MAX_WAIT);
    }
}
