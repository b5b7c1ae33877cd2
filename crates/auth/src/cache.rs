//! The cache every credential keeps (Google access and ID tokens, AWS
//! credentials): reuse a value until shortly before it expires, and make
//! concurrent callers share one refresh. A broker serving a burst of requests
//! must send exactly one request upstream, a refresh that fails while the old
//! value is still valid must not break callers, and while it is valid an
//! upstream outage must not turn every request into a slow upstream call.
//!
//! Readers take a snapshot under a short `std` read lock, so the hot path never
//! waits for an upstream request. Refreshing happens under an async mutex with a
//! generation counter: a caller with nothing valid notes the generation, waits
//! for the lock, and if a refresh completed while it waited it takes that
//! refresh's outcome (value or error) instead of starting another. While a
//! refresh is in flight, or shortly after one failed, callers are answered with
//! the still-valid value at once. A caller cancelled mid-refresh releases the
//! lock without bumping the generation, so the next waiter simply refreshes.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

/// A cached value's expiry, unix seconds; `None` never expires (long-term keys).
pub(crate) trait Expiring: Clone {
    fn expires_at(&self) -> Option<i64>;
}

/// How long after a failed refresh callers get the still-valid value without a
/// new upstream attempt.
pub(crate) const FAILURE_COOLDOWN_SECS: i64 = 5;

pub(crate) struct Cache<T, E> {
    refresh_ahead: Duration,
    generation: AtomicU64,
    current: RwLock<Current<T, E>>,
    refreshing: tokio::sync::Mutex<()>,
}

struct Current<T, E> {
    value: Option<Entry<T>>,
    /// The latest refresh's error and when it happened (unix seconds), until a refresh succeeds.
    failure: Option<(E, i64)>,
}

#[derive(Clone)]
struct Entry<T> {
    value: T,
    obtained_at: i64,
}

/// What the cache holds now, for schedulers and diagnostics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    /// Expiry of the cached value (unix seconds); `None` if it never expires.
    pub expires_at: Option<i64>,
    /// From this time on the value is due for replacement.
    pub refresh_at: Option<i64>,
    /// When the latest refresh failed, if it did and none succeeded since.
    pub failing_since: Option<i64>,
}

impl<T: Expiring> Entry<T> {
    /// Fresh: before `expires_at - ahead`, where `ahead` is the configured margin
    /// capped at half the value's lifetime (a 60 s token is reused for 30 s rather
    /// than refreshed on every call).
    fn refresh_at(&self, refresh_ahead: Duration) -> Option<i64> {
        let exp = self.value.expires_at()?;
        let lifetime = exp.saturating_sub(self.obtained_at).max(0);
        let ahead = i64::try_from(refresh_ahead.as_secs())
            .unwrap_or(i64::MAX)
            .min(lifetime / 2);
        Some(exp.saturating_sub(ahead))
    }

    fn is_fresh(&self, now: i64, refresh_ahead: Duration) -> bool {
        self.refresh_at(refresh_ahead).is_none_or(|at| now < at)
    }

    /// Still accepted upstream, though perhaps due for replacement.
    fn is_valid(&self, now: i64) -> bool {
        self.value.expires_at().is_none_or(|exp| now < exp)
    }
}

impl<T: Expiring, E: Clone + std::fmt::Display> Cache<T, E> {
    pub(crate) fn new(refresh_ahead: Duration) -> Self {
        Cache {
            refresh_ahead,
            generation: AtomicU64::new(0),
            current: RwLock::new(Current {
                value: None,
                failure: None,
            }),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    /// Starts with a value obtained elsewhere (a token cached in a gcloud ADC
    /// file, the credentials the AWS chain found).
    pub(crate) fn seeded(refresh_ahead: Duration, value: T, now: i64) -> Self {
        let c = Cache::new(refresh_ahead);
        c.write().value = Some(Entry {
            value,
            obtained_at: now,
        });
        c
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current<T, E>> {
        self.current.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Current<T, E>> {
        self.current.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// What is cached now.
    pub(crate) fn status(&self) -> Option<CacheStatus> {
        let cur = self.read();
        let e = cur.value.as_ref()?;
        Some(CacheStatus {
            expires_at: e.value.expires_at(),
            refresh_at: e.refresh_at(self.refresh_ahead),
            failing_since: cur.failure.as_ref().map(|(_, at)| *at),
        })
    }

    /// The cached value if fresh; the still-valid value while another caller
    /// refreshes or shortly after a refresh failed; otherwise the outcome of one
    /// refresh shared by every caller waiting for it.
    pub(crate) async fn get<F, Fut>(&self, now: impl Fn() -> i64, fetch: F) -> Result<T, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let seen = self.generation.load(Ordering::Acquire);
        {
            let t = now();
            let cur = self.read();
            if let Some(e) = &cur.value {
                if e.is_fresh(t, self.refresh_ahead) {
                    return Ok(e.value.clone());
                }
                if e.is_valid(t) && cooling_down(&cur.failure, t) {
                    return Ok(e.value.clone());
                }
            }
        }
        // Due for a refresh. With a valid value in hand, never wait for someone
        // else's refresh: take the lock only if it is free.
        let guard = match self.refreshing.try_lock() {
            Ok(g) => g,
            Err(_) => {
                let t = now();
                if let Some(e) = self.read().value.as_ref().filter(|e| e.is_valid(t)) {
                    return Ok(e.value.clone());
                }
                self.refreshing.lock().await
            }
        };
        let t = now();
        {
            let cur = self.read();
            if let Some(e) = cur
                .value
                .as_ref()
                .filter(|e| e.is_fresh(t, self.refresh_ahead))
            {
                return Ok(e.value.clone());
            }
            // A refresh finished while this caller waited: share its outcome
            // rather than asking upstream again. (With nothing valid, a failure
            // is not cached beyond that: the next caller asks again.)
            if self.generation.load(Ordering::Acquire) != seen
                && let Some((err, _)) = &cur.failure
            {
                return match cur.value.as_ref().filter(|e| e.is_valid(t)) {
                    Some(e) => Ok(e.value.clone()),
                    None => Err(err.clone()),
                };
            }
        }
        let started = t;
        let result = fetch().await;
        self.generation.fetch_add(1, Ordering::AcqRel);
        let t = now();
        let mut cur = self.write();
        let out = match result {
            Ok(value) => {
                cur.value = Some(Entry {
                    value: value.clone(),
                    obtained_at: started,
                });
                cur.failure = None;
                Ok(value)
            }
            Err(e) => {
                let first = cur.failure.is_none();
                cur.failure = Some((e.clone(), t));
                match cur.value.as_ref().filter(|c| c.is_valid(t)) {
                    Some(c) => {
                        if first {
                            tracing::warn!(error = %e, expires_at = ?c.value.expires_at(), "refreshing failed; serving the cached value, which is still valid");
                        } else {
                            tracing::debug!(error = %e, "refreshing failed again; still serving the cached value");
                        }
                        Ok(c.value.clone())
                    }
                    None => Err(e),
                }
            }
        };
        drop(cur);
        drop(guard);
        out
    }
}

fn cooling_down<E>(failure: &Option<(E, i64)>, now: i64) -> bool {
    failure
        .as_ref()
        .is_some_and(|(_, at)| now.saturating_sub(*at) < FAILURE_COOLDOWN_SECS)
}

/// A small map of caches by key (scope sets, audiences), bounded: when full,
/// the entry whose value expires first is dropped.
pub(crate) struct Keyed<K, T, E> {
    max: usize,
    refresh_ahead: Duration,
    map: std::sync::Mutex<std::collections::HashMap<K, std::sync::Arc<Cache<T, E>>>>,
}

impl<K: std::hash::Hash + Eq + Clone, T: Expiring, E: Clone + std::fmt::Display> Keyed<K, T, E> {
    pub(crate) fn new(max: usize, refresh_ahead: Duration) -> Self {
        Keyed {
            max: max.max(1),
            refresh_ahead,
            map: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    pub(crate) fn get(&self, key: &K) -> std::sync::Arc<Cache<T, E>> {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = map.get(key) {
            return c.clone();
        }
        if map.len() >= self.max {
            let victim = map
                .iter()
                .min_by_key(|(_, c)| c.status().and_then(|s| s.expires_at).unwrap_or(i64::MIN))
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                map.remove(&k);
            }
        }
        let c = std::sync::Arc::new(Cache::new(self.refresh_ahead));
        map.insert(key.clone(), c.clone());
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AuthError;
    use crate::google::AccessToken;
    use keyway_core::Secret;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicI64, AtomicUsize};

    type TokenCache = Cache<AccessToken, AuthError>;

    fn token(v: &str, expires_at: i64) -> AccessToken {
        AccessToken {
            token: Secret::new(v.to_owned()),
            expires_at,
            scopes: None,
        }
    }

    /// A cache (refreshing 225 s ahead) that fetched "old", valid until 4600, at 1000.
    async fn holding_old() -> TokenCache {
        let cache = TokenCache::new(Duration::from_secs(225));
        cache
            .get(|| 1000, || async { Ok(token("old", 4600)) })
            .await
            .unwrap();
        cache
    }

    fn err() -> AuthError {
        AuthError::Rejected(Box::new(crate::error::Rejection {
            call: crate::error::GoogleCall::RefreshUser,
            url: "u".into(),
            status: 503,
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
        let s = cache.status().unwrap();
        assert_eq!(s.expires_at, Some(1000 + 3600 - 225 + 3600));
        assert_eq!(s.refresh_at, Some(1000 + 3600 - 225 + 3600 - 225));
        assert_eq!(s.failing_since, None);
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
        let cache = holding_old().await;
        let t = cache.get(|| 4500, || async { Err(err()) }).await.unwrap();
        assert_eq!(t.token.expose(), "old");
        assert_eq!(cache.status().unwrap().failing_since, Some(4500));
        // Once expired, the error surfaces.
        assert!(cache.get(|| 4600, || async { Err(err()) }).await.is_err());
        // A success clears the failure.
        cache
            .get(|| 4601, || async { Ok(token("new", 8200)) })
            .await
            .unwrap();
        assert_eq!(cache.status().unwrap().failing_since, None);
    }

    #[tokio::test]
    async fn during_an_outage_upstream_is_asked_at_most_once_per_cooldown() {
        let cache = holding_old().await;
        let calls = AtomicUsize::new(0);
        let failing = || async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err::<AccessToken, _>(err())
        };
        // Due at 4375; upstream is down.
        for t in [4400, 4401, 4404] {
            let got = cache.get(|| t, failing).await.unwrap();
            assert_eq!(got.token.expose(), "old");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        cache.get(|| 4405, failing).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        // Expired: the error; with nothing valid to serve, each caller asks again.
        assert!(cache.get(|| 4600, failing).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        assert!(cache.get(|| 4601, failing).await.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4);
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_callers_at_expiry_cause_one_refresh_and_none_waits_while_valid() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(225)));
        cache
            .get(|| 1000, || async { Ok(token("old", 4600)) })
            .await
            .unwrap();
        let calls = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (cache, calls, release) = (cache.clone(), calls.clone(), release.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(
                        || 4500,
                        || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            release.notified().await;
                            Ok(token("new", 8100))
                        },
                    )
                    .await
                    .unwrap()
            }));
        }
        // Every caller but the refreshing one is answered while the refresh hangs.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while tasks.iter().filter(|t| t.is_finished()).count() < 999 {
            assert!(
                std::time::Instant::now() < deadline,
                "callers waited for the refresh although the cached token was valid"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        release.notify_one();
        let mut old = 0;
        for t in tasks {
            if t.await.unwrap().token.expose() == "old" {
                old += 1;
            }
        }
        assert_eq!(
            old, 999,
            "every caller but the refreshing one got the still-valid token"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.status().unwrap().expires_at, Some(8100));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_thousand_callers_with_nothing_valid_share_one_refresh() {
        let cache = Arc::new(TokenCache::new(Duration::from_secs(225)));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..1000 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(
                        || 1000,
                        || async move {
                            calls.fetch_add(1, Ordering::SeqCst);
                            tokio::time::sleep(Duration::from_millis(20)).await;
                            Ok(token("t", 4600))
                        },
                    )
                    .await
                    .unwrap()
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap().token.expose(), "t");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keyed_caches_are_bounded() {
        let k: Keyed<String, AccessToken, AuthError> = Keyed::new(2, Duration::from_secs(225));
        for (i, name) in ["a", "b", "c"].iter().enumerate() {
            let c = k.get(&name.to_string());
            c.get(|| 1000, || async move { Ok(token(name, 2000 + i as i64)) })
                .await
                .unwrap();
        }
        // "a" expired first and was dropped: a fresh cache comes back for it.
        assert!(k.get(&"a".to_string()).status().is_none());
        assert!(k.get(&"c".to_string()).status().is_some());
    }
}
