//! `keyway exec --watch`: the loop that keeps a running command's secrets
//! current. Every interval it resolves every reference again (through the same
//! [`Resolver`], so credentials come from keyway-auth's caches), compares each
//! value with the one delivered, and hands what changed to keyway-exec as one
//! [`Update`] (files replaced atomically, then a signal or a restart).
//!
//! What is compared is the delivered value, through a keyed digest (HMAC-SHA256
//! under a key drawn at start and never written anywhere), so a new version
//! whose value (or whose `?field=`) is unchanged delivers nothing; the version
//! each answer names (Secret Manager's version number, Secrets Manager's
//! `VersionId`) is what the logs show. No value and no digest is ever logged.
//!
//! A round that fails for any reference changes nothing: the command keeps the
//! values it has, each failure is logged with its reference, variable and
//! cause (a warning when it starts, debug while it lasts), and the next round
//! tries again. A round that finds changes the command cannot receive (an
//! environment variable under `signal:`) logs them once and marks them seen.

use super::resolve::{Resolver, Wanted};
use crate::cli::OnChange;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use keyway_core::Delivery;
use keyway_exec::{Action, Update, UpdateError, Updater};
use keyway_secrets::Fetched;
use std::time::Duration;

/// What was last delivered for one reference.
struct Seen {
    version: Option<String>,
    digest: hmac::Tag,
}

pub struct Watch {
    resolver: Resolver,
    wanted: Vec<Wanted>,
    seen: Vec<Seen>,
    key: hmac::Key,
    interval: Duration,
    on_change: OnChange,
    /// For each reference that keeps failing, whether its failure is transient:
    /// a failure is warned about when it starts (or turns from transient to
    /// not, or back), then logged at debug level until the reference resolves.
    failing: Vec<Option<bool>>,
    /// keyway-exec refused the last update: warned once until one is delivered.
    refused: bool,
}

fn is_file(w: &Wanted) -> bool {
    matches!(w.reference.delivery, Delivery::File { .. })
}

/// `3` or `(none)`, for logs.
fn shown(version: &Option<String>) -> &str {
    version.as_deref().unwrap_or("(unnamed)")
}

impl Watch {
    /// Starts from what was delivered at start (`fetched`, in the order of `wanted`).
    pub fn new(
        mut resolver: Resolver,
        wanted: Vec<Wanted>,
        fetched: &[Fetched],
        interval: Duration,
        on_change: OnChange,
    ) -> anyhow::Result<Watch> {
        let key = hmac::Key::generate(hmac::HMAC_SHA256, &SystemRandom::new())
            .map_err(|_| anyhow::anyhow!("drawing a random key for --watch failed"))?;
        let seen = fetched
            .iter()
            .map(|f| Seen {
                version: f.version.clone(),
                digest: hmac::sign(&key, f.value.expose()),
            })
            .collect();
        // Rounds only log; hints (which ask who the credentials are) are for a start.
        resolver.hints = false;
        let failing = vec![None; wanted.len()];
        let watch = Watch {
            resolver,
            wanted,
            seen,
            key,
            interval,
            on_change,
            failing,
            refused: false,
        };
        watch.warn_undeliverable();
        Ok(watch)
    }

    /// Under `signal:`, environment variables cannot change: say so once, at start.
    fn warn_undeliverable(&self) {
        let OnChange::Signal(signal) = self.on_change else {
            return;
        };
        let env: Vec<&str> = self
            .wanted
            .iter()
            .filter(|w| !is_file(w))
            .map(|w| w.name.as_str())
            .collect();
        if !env.is_empty() {
            let signal = crate::cli::signal_name(signal);
            tracing::warn!(
                "--on-change=signal:{signal} cannot change the environment of a running command: if {} \
                 change, the command keeps the old values until it is restarted (deliver them as \
                 files with ?destination=tempfile, or use --on-change=restart or auto)",
                env.join(", ")
            );
        }
    }

    /// Watches until the workload ends (keyway-exec says so, or this future
    /// is dropped).
    pub async fn run(mut self, updater: Updater) {
        tracing::info!(
            references = self.wanted.len(),
            interval = ?self.interval,
            on_change = ?self.on_change,
            "watching the secrets for changes"
        );
        let start = tokio::time::Instant::now() + self.interval;
        let mut ticker = tokio::time::interval_at(start, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if self.round(&updater).await.is_err() {
                return;
            }
        }
    }

    /// One round. `Err` only when the workload has ended.
    async fn round(&mut self, updater: &Updater) -> Result<(), UpdateError> {
        let fetched = match self.resolver.resolve(&self.wanted).await {
            Ok(f) => f,
            Err(failures) => {
                for f in failures {
                    let i = self.wanted.iter().position(|w| w.name == f.name);
                    let last = i.and_then(|i| self.failing[i].replace(f.transient));
                    if last == Some(f.transient) {
                        tracing::debug!(var = %f.name, "still failing: {}", f.error);
                        continue;
                    }
                    tracing::warn!(
                        var = %f.name,
                        reference = %f.reference,
                        transient = f.transient,
                        "could not resolve again: {}; the command keeps the values it has \
                         (trying again every {:?})",
                        f.error,
                        self.interval
                    );
                }
                return Ok(());
            }
        };
        for (w, failing) in self.wanted.iter().zip(&mut self.failing) {
            if failing.take().is_some() {
                tracing::info!(var = %w.name, reference = %w.reference, "resolves again");
            }
        }
        // Which references have a new value, with their new digest.
        let mut changed = Vec::new();
        for (i, f) in fetched.iter().enumerate() {
            let digest = hmac::sign(&self.key, f.value.expose());
            let seen = &mut self.seen[i];
            if digest.as_ref() == seen.digest.as_ref() {
                if f.version != seen.version {
                    tracing::info!(
                        var = %self.wanted[i].name,
                        reference = %self.wanted[i].reference,
                        "new version {} (was {}) has the value delivered: nothing to do",
                        shown(&f.version),
                        shown(&seen.version)
                    );
                    seen.version = f.version.clone();
                }
                continue;
            }
            changed.push((i, digest));
        }
        if changed.is_empty() {
            tracing::debug!("no secret changed");
            return Ok(());
        }
        let env_changed = changed.iter().any(|(i, _)| !is_file(&self.wanted[*i]));
        let action = match self.on_change {
            OnChange::Auto if env_changed => Action::Restart,
            OnChange::Auto => Action::Signal(libc::SIGHUP),
            OnChange::Restart => Action::Restart,
            OnChange::Signal(s) => Action::Signal(s),
        };
        for (i, _) in &changed {
            let (w, f) = (&self.wanted[*i], &fetched[*i]);
            let delivery = if is_file(w) { "file" } else { "environment" };
            tracing::info!(
                var = %w.name,
                reference = %w.reference,
                delivery,
                "secret changed: version {} (was {})",
                shown(&f.version),
                shown(&self.seen[*i].version)
            );
        }
        // Under a signal, changed environment variables cannot be delivered:
        // say so, and count them as seen so that this is said once per change.
        let mut files = Vec::new();
        let mut vars = Vec::new();
        let mut delivered = Vec::new();
        let restart = action == Action::Restart;
        let mut digests: Vec<Option<hmac::Tag>> = vec![None; fetched.len()];
        for (i, d) in changed {
            digests[i] = Some(d);
        }
        for (i, (w, f)) in self.wanted.iter().zip(fetched).enumerate() {
            let digest = digests[i].take();
            match (is_file(w), digest) {
                (true, Some(d)) => {
                    files.push((w.name.clone(), f.value));
                    delivered.push((i, f.version, d));
                }
                (false, Some(d)) if !restart => {
                    tracing::warn!(
                        var = %w.name,
                        reference = %w.reference,
                        "{} changed, but a signal cannot change a running command's environment: \
                         it keeps the old value until it is restarted",
                        w.name
                    );
                    self.seen[i] = Seen {
                        version: f.version,
                        digest: d,
                    };
                }
                (false, d) if restart => {
                    vars.push((w.name.clone(), f.value));
                    if let Some(d) = d {
                        delivered.push((i, f.version, d));
                    }
                }
                _ => {}
            }
        }
        if files.is_empty() && !restart {
            return Ok(());
        }
        let (replaced, action_text) = (files.len(), describe(action));
        match updater
            .apply(Update {
                files,
                vars,
                action,
            })
            .await
        {
            Ok(()) => {
                self.refused = false;
                tracing::info!(files = replaced, "new values delivered: {action_text}");
                for (i, version, digest) in delivered {
                    self.seen[i] = Seen { version, digest };
                }
                Ok(())
            }
            Err(UpdateError::Refused(e)) => {
                if std::mem::replace(&mut self.refused, true) {
                    tracing::debug!("still refused: {e}");
                    return Ok(());
                }
                tracing::warn!(
                    transient = e.is_transient(),
                    "could not deliver the new values: {}; the command keeps the values it has \
                     (next try in {:?})",
                    e,
                    self.interval
                );
                Ok(())
            }
            Err(UpdateError::Ended) => Err(UpdateError::Ended),
        }
    }
}

fn describe(action: Action) -> String {
    match action {
        Action::Restart => "the command was restarted".to_owned(),
        Action::Signal(s) => format!(
            "files replaced, the command got {}",
            crate::cli::signal_name(s)
        ),
    }
}
