//! The token cache every credential keeps: reuse a token until shortly before it
//! expires, and make concurrent callers share one refresh. A broker serving a
//! burst of requests must send exactly one request upstream, and a refresh
//! that fails while the old token is still valid must not break callers.
//!
//! Single-flight works with an async mutex and a generation counter: a caller
//! notes the generation, waits for the lock, and if a refresh completed while it
//! waited it takes that refresh's outcome (token or error) instead of starting
//! another. A caller cancelled mid-refresh releases the lock without bumping the
//! generation, so the next waiter simply refreshes.

use crate::error::AuthError;
use crate::google::AccessToken;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(crate) struct TokenCache {
    refresh_ahead: Duration,
    generation: AtomicU64,
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Default)]
struct Slot {
    token: Option<Cached>,
    /// The error of the latest refresh, when it failed.
    last_error: Option<AuthError>,
}

struct Cached {
    token: AccessToken,
    obtained_at: i64,
}

impl Cached {
    /// Fresh: before `expires_at - ahead`, where `ahead` is the configured margin
    /// capped at half the token's lifetime (a 60 s token is reused for 30 s rather
    /// than refreshed on every call).
    fn is_fresh(&self, now: i64, refresh_ahead: Duration) -> bool {
        let lifetime = (self.token.expires_at - self.obtained_at).max(0);
        let ahead = (refresh_ahead.as_secs() as i64).min(lifetime / 2);
        now < self.token.expires_at - ahead
    }

    /// Still accepted by Google, though due for replacement.
    fn is_valid(&self, now: i64) -> bool {
        now < self.token.expires_at
    }
}

impl TokenCache {
    pub(crate) fn new(refresh_ahead: Duration) -> Self {
        TokenCache {
            refresh_ahead,
            generation: AtomicU64::new(0),
            slot: tokio::sync::Mutex::new(Slot::default()),
        }
    }

    /// Starts with a token obtained elsewhere (e.g. cached in a gcloud ADC file).
    pub(crate) fn seeded(refresh_ahead: Duration, token: AccessToken, now: i64) -> Self {
        let slot = Slot {
            token: Some(Cached {
                token,
                obtained_at: now,
            }),
            last_error: None,
        };
        TokenCache {
            refresh_ahead,
            generation: AtomicU64::new(0),
            slot: tokio::sync::Mutex::new(slot),
        }
    }

    /// The cached token if fresh; otherwise the outcome of one refresh shared by
    /// every caller waiting for it. `now` is read after the lock is taken.
    pub(crate) async fn get<F, Fut>(
        &self,
        now: impl Fn() -> i64,
        fetch: F,
    ) -> Result<AccessToken, AuthError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<AccessToken, AuthError>>,
    {
        let seen = self.generation.load(Ordering::Acquire);
        let mut slot = self.slot.lock().await;
        let t = now();
        if let Some(c) = slot
            .token
            .as_ref()
            .filter(|c| c.is_fresh(t, self.refresh_ahead))
        {
            return Ok(c.token.clone());
        }
        if self.generation.load(Ordering::Acquire) != seen {
            // A refresh finished while this caller waited for the lock: share its outcome.
            if let Some(err) = &slot.last_error {
                return match slot.token.as_ref().filter(|c| c.is_valid(t)) {
                    Some(c) => Ok(c.token.clone()),
                    None => Err(err.clone()),
                };
            }
        }
        let started = t;
        let result = fetch().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        match result {
            Ok(token) => {
                slot.token = Some(Cached {
                    token: token.clone(),
                    obtained_at: started,
                });
                slot.last_error = None;
                Ok(token)
            }
            Err(e) => {
                slot.last_error = Some(e.clone());
                let t = now();
                match slot.token.as_ref().filter(|c| c.is_valid(t)) {
                    Some(c) => {
                        tracing::warn!(error = %e, expires_at = c.token.expires_at, "refreshing the access token failed; using the cached token, which is still valid");
                        Ok(c.token.clone())
                    }
                    None => Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyway_core::Secret;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, AtomicUsize};

    fn token(v: &str, expires_at: i64) -> AccessToken {
        AccessToken {
            token: Secret::new(v.to_owned()),
            expires_at,
            scopes: None,
        }
    }

    fn err() -> AuthError {
        AuthError::Rejected(Box::new(crate::error::Rejection {
            call: crate::error::GoogleCall::RefreshUser,
            url: "u".into(),
            status: 400,
            body: keyway_http::google::GoogleErrorBody::Text(None),
            server_time: None,
        }))
    }

    #[tokio::test]
    async fn reuses_then_refreshes_ahead() {
        let cache = TokenCache::new(Duration::from_secs(225));
        let now = AtomicI64::new(1000);
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(token("a", now.load(Ordering::SeqCst) + 3600))
        };
        let clock = || now.load(Ordering::SeqCst);
        cache.get(clock, fetch).await.unwrap();
        now.store(1000 + 3600 - 226, Ordering::SeqCst);
        cache.get(clock, fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        now.store(1000 + 3600 - 225, Ordering::SeqCst);
        cache.get(clock, fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn short_lived_tokens_are_reused_for_half_their_life() {
        let cache = TokenCache::new(Duration::from_secs(225));
        let calls = AtomicUsize::new(0);
        let fetch = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Ok(token("a", 1060))
        };
        cache.get(|| 1000, fetch).await.unwrap();
        cache.get(|| 1029, fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.get(|| 1030, fetch).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_failed_refresh_keeps_a_still_valid_token() {
        let cache = TokenCache::new(Duration::from_secs(225));
        cache
            .get(|| 1000, || async { Ok(token("old", 4600)) })
            .await
            .unwrap();
        let t = cache.get(|| 4500, || async { Err(err()) }).await.unwrap();
        assert_eq!(t.token.expose(), "old");
        // Once expired, the error surfaces.
        assert!(cache.get(|| 4600, || async { Err(err()) }).await.is_err());
    }

    #[tokio::test]
    async fn waiters_share_a_failed_refresh() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(225)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let cache = cache.clone();
            let calls = calls.clone();
            tasks.push(tokio::spawn(async move {
                cache
                    .get(
                        || 1000,
                        || async {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            Err::<AccessToken, _>(err())
                        },
                    )
                    .await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap().is_err());
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }
}
